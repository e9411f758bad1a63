"""Self-perplexity of the inoculation prompts (docs/methods.md#self-perplexity), through the score job.

How surprised the study's base model is by each prompt string. Two heuristics per prompt, both a
**negative log-likelihood per token** in nats — NLL/token = −mean log p, *not* exp(NLL) — as the
original's ``raw_neg_logprob_per_tok`` / ``context_neg_logprob_per_tok`` (its ``dataset.csv`` columns
``selfperp_raw`` / ``selfperp_ctx``, 2.1–9.1 NLL/token):

* ``self_ppl_raw`` — the prompt string on its own, no chat template: a raw-text pair
  ``{"id", "text": prompt}``. The score job tokenizes it with ``add_special_tokens=True`` and scores
  every token after the first, which is the mean of ``model(ids, labels=ids)``. A tokenizer that
  adds a BOS (Llama-3) has every prompt token scored; one that adds none (Qwen) has the prompt's
  first token as context only.
* ``self_ppl_context`` — the prompt as the user turn after the study's neutral system message:
  ``{"id", "messages": [system], "completion": prompt, "completion_role": "user"}``. The rendered
  system message and the user turn's header are context (label-masked); the prompt's tokens are
  scored, the end-of-turn tokens that close the user turn are not (``SCORE_FIELDS`` sets
  ``score_end_of_turn: false``). This is where a user-prefix inoculation sits in training: right
  after the user header, before the instruction.

Usage from an asset (the model is the study's base model, no adapters)::

    write_self_perplexity_pairs(cfg, folder / "pairs.jsonl")
    result = gpu_jobs.run(context, "score", {"output_dir": str(folder / "out"), "model": {...},
                                             "pairs": str(folder / "pairs.jsonl"), **SCORE_FIELDS})
    rows = self_perplexity_rows(cfg.name, result.path("scores.parquet"))   # → prompt_heuristics
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from inoc.config import ExperimentConfig

#: variant (the pair's ``meta.variant``) → heuristic name in ``prompt_heuristics``.
HEURISTICS = {"raw": "self_ppl_raw", "context": "self_ppl_context"}
#: Score-spec fields the self-perplexity job needs (merge them into the spec).
SCORE_FIELDS = {"score_end_of_turn": False}
COLUMNS = ["experiment", "prompt_key", "prefix_type", "heuristic", "value"]


def _keys(cfg: ExperimentConfig, keys: Sequence[str] | None) -> list[str]:
    if keys is None:
        return list(cfg.prompt_keys)
    unknown = [k for k in keys if k not in cfg.prompts]
    if unknown:
        raise ValueError(f"{cfg.name}: unknown prompt key(s) {unknown}")
    return list(keys)


def self_perplexity_pairs(cfg: ExperimentConfig, keys: Sequence[str] | None = None) -> list[dict]:
    """Score-job pair rows: ``<key>/raw`` and ``<key>/context`` for each prompt (default: all, in
    group order), each with ``meta = {"prompt_key", "variant"}``."""
    rows = []
    for key in _keys(cfg, keys):
        text = cfg.prompts[key]
        rows.append({"id": f"{key}/raw", "text": text, "meta": {"prompt_key": key, "variant": "raw"}})
        rows.append(
            {
                "id": f"{key}/context",
                "messages": [{"role": "system", "content": cfg.system_prompt}],
                "completion": text,
                "completion_role": "user",
                "meta": {"prompt_key": key, "variant": "context"},
            }
        )
    return rows


def write_self_perplexity_pairs(cfg: ExperimentConfig, path: str | Path, keys: Sequence[str] | None = None) -> Path:
    """``self_perplexity_pairs`` as the score job's JSONL file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self_perplexity_pairs(cfg, keys)), encoding="utf-8"
    )
    return path


def self_perplexity_rows(experiment: str, scores: pd.DataFrame | str | Path) -> pd.DataFrame:
    """Tidy ``prompt_heuristics`` rows from the score job's ``scores.parquet`` (a path or the frame).

    value = −mean_logprob (NLL per token, nats); NaN when the job scored no token (a one-token prompt
    under a tokenizer without BOS). Rows whose ``meta`` is not a self-perplexity pair are an error.
    """
    frame = (
        scores if isinstance(scores, pd.DataFrame) else pd.read_parquet(scores, columns=["id", "meta", "mean_logprob"])
    )
    rows, seen = [], set()
    for rid, meta, mean in zip(frame["id"], frame["meta"], frame["mean_logprob"]):
        info = json.loads(meta) if isinstance(meta, str) else (meta or {})
        key, variant = info.get("prompt_key"), info.get("variant")
        if not isinstance(key, str) or variant not in HEURISTICS:
            raise ValueError(
                f"scores row {rid!r}: meta {meta!r} is not a self-perplexity pair "
                "(expected prompt_key and variant raw|context)"
            )
        if (key, variant) in seen:
            raise ValueError(f"scores row {rid!r}: prompt {key!r} variant {variant!r} appears twice")
        seen.add((key, variant))
        value = -float(mean) if mean is not None and math.isfinite(float(mean)) else math.nan
        rows.append((experiment, key, None, HEURISTICS[variant], value))
    return pd.DataFrame(rows, columns=COLUMNS)
