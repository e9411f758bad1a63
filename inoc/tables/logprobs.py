"""`logprob_vectors` / `logprob_tokens` rows from the score job's output, and one prompt's PH and PPD
(docs/methods.md#lp, #ph, #ppd)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from inoc.analysis.heuristics import perplexity_heuristic, pointwise_perplexity_drift

#: The vectors whose per-token values are kept (the training sample's; the token-level W matrices).
TOKEN_VECTORS = ("train_default", "train_inoc", "train_mix")
TOKEN_COLUMNS = ["prompt_key", "vector", "example_idx", "token_idx", "lp"]


def logprob_rows(scores: pd.DataFrame, token_level: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(vectors, tokens) from the score job's ``scores.parquet``: one mean lp per scored pair, and with
    ``token_level`` one row per token of the training vectors. Both keep ``prompt_key`` (None: baseline)."""
    meta = scores["meta"].map(json.loads)
    vec = pd.DataFrame(
        {
            "prompt_key": meta.map(lambda m: m["prompt_key"]),
            "vector": meta.map(lambda m: m["vector"]),
            "example_idx": meta.map(lambda m: m["idx"]).astype(int),
            "lp": scores["mean_logprob"].astype(float),
        }
    )
    frames = []
    if token_level and "token_logprobs" in scores:
        for (pk, v, k), lps in zip(zip(vec.prompt_key, vec.vector, vec.example_idx), scores["token_logprobs"]):
            if v in TOKEN_VECTORS:
                lps = np.asarray(lps, dtype=float)
                frames.append(
                    pd.DataFrame(
                        {"prompt_key": pk, "vector": v, "example_idx": k, "token_idx": np.arange(len(lps)), "lp": lps}
                    )
                )
    tokens = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TOKEN_COLUMNS)
    return vec, tokens


def vector_length_errors(vec: pd.DataFrame, expected: dict[tuple, int]) -> dict[str, list[int]]:
    """``<prompt or ->/<vector>`` → [rows found, rows expected] for every vector of the wrong length."""
    got = vec.groupby(["prompt_key", "vector"], dropna=False).size().to_dict()
    got = {(None if isinstance(k[0], float) else k[0], k[1]): n for k, n in got.items()}
    return {f"{k[0] or '-'}/{k[1]}": [got.get(k, 0), n] for k, n in expected.items() if got.get(k, 0) != n}


def _paired(own: pd.DataFrame, base: pd.DataFrame, vector: str, baseline: str) -> tuple[np.ndarray, np.ndarray] | None:
    a = own[own.vector == vector].set_index("example_idx").lp
    b = base[base.vector == baseline].set_index("example_idx").lp
    if a.empty or b.empty:
        return None
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return joined.a.to_numpy(), joined.b.to_numpy()


def prompt_drifts(own: pd.DataFrame, base: pd.DataFrame) -> dict[str, float]:
    """One prompt's PH (train_inoc − train_default), its mix PH (train_mix) and PPD (control completions),
    paired by example; NaN where a vector is missing."""
    out = {}
    for name, vector, baseline, fn in (
        ("ph", "train_inoc", "train_default", perplexity_heuristic),
        ("ph_mix", "train_mix", "train_default", perplexity_heuristic),
        ("ppd", "ctrl_inoc", "ctrl_default", pointwise_perplexity_drift),
    ):
        pair = _paired(own, base, vector, baseline)
        out[name] = float(fn(*pair)) if pair is not None else math.nan
    return out
