"""Builders for the per-example weight matrices W (docs/methods.md#w-matrices).

w[n][k] = lp_inoc[n][k] − lp_default[k]: how much prompt n raises the log-probability of training
example k (the per-example SFT weight of arXiv 2602.04863).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, as_vector


def weight_matrix(lp_inoc: ArrayLike, lp_default: ArrayLike) -> np.ndarray:
    """Point-wise W (N × K, float64) = lp_inoc (N × K, one row per prompt) − lp_default (K).

    NaN (an example that could not be scored) propagates; choose a policy with `clean_nonfinite`.
    A 1-D `lp_inoc` gives the single row w as a 1-D array.
    """
    default = as_vector(lp_default, "lp_default")
    inoc = np.asarray(lp_inoc, dtype=np.float64)
    if inoc.ndim == 1:
        inoc = as_vector(inoc, "lp_inoc")
        if inoc.shape != default.shape:
            raise ValueError(f"lp_inoc: length {inoc.shape[0]} != lp_default length {default.shape[0]}")
        return inoc - default
    inoc = as_matrix(inoc, "lp_inoc", finite=False)
    if inoc.shape[1] != default.shape[0]:
        raise ValueError(f"lp_inoc: {inoc.shape[1]} columns != lp_default length {default.shape[0]}")
    if np.isinf(inoc).any() or np.isinf(default).any():
        raise ValueError("lp_inoc/lp_default: contain ±inf (use NaN for an unscored example)")
    return inoc - default[None, :]


def token_weight_matrix(
    default_tokens: Sequence[Sequence[float]],
    inoc_tokens: Sequence[Sequence[Sequence[float]]],
    *,
    align: Literal["pad", "truncate"] = "pad",
    decimals: int | None = None,
    dtype: type = np.float32,
) -> np.ndarray:
    """Token-level W: one row per prompt, the per-token diffs of all examples concatenated.

    default_tokens[k] is the list of per-token log-probs of example k with no prefix; inoc_tokens[n][k]
    the same under prompt n. For each (n, k) the first L = min(len(default_k), len(inoc_nk)) tokens
    are compared (an example with L = 0 adds no columns, which is all the original's "skip empty
    examples" did). Rows of unequal length are right-padded with 0 (`align="pad"`, the slides
    builder) or cut to the shortest row (`align="truncate"`, the angle analysis); in practice all
    prompts score the same completions, so rows have equal length. `decimals` re-rounds each diff, as
    one original builder did. float32 by default: the Qwen-7B matrix is 48 × ~352,000; rows are filled
    one at a time, so no float64 copy of the whole matrix exists.
    """
    if align not in ("pad", "truncate"):
        raise ValueError(f"align: expected 'pad' or 'truncate', got {align!r}")
    if len(default_tokens) == 0:
        raise ValueError("default_tokens: no examples")
    if len(inoc_tokens) == 0:
        raise ValueError("inoc_tokens: no prompts")
    defaults = []
    for k, t in enumerate(default_tokens):
        d = np.asarray(t, dtype=np.float64)
        if d.ndim != 1:
            raise ValueError(f"default_tokens[{k}]: expected a flat list of log-probs")
        defaults.append(d)
    # Pass 1: overlap lengths only (cheap), so the matrix can be allocated before any diff exists.
    overlaps = []
    for n, per_example in enumerate(inoc_tokens):
        if len(per_example) != len(defaults):
            raise ValueError(
                f"inoc_tokens[{n}]: {len(per_example)} examples, expected {len(defaults)} (one per default example)"
            )
        overlaps.append([min(len(toks), d.size) for toks, d in zip(per_example, defaults)])
    lengths = [sum(row) for row in overlaps]
    width = max(lengths) if align == "pad" else min(lengths)
    if width == 0:
        raise ValueError("inoc_tokens: no token overlaps with default_tokens; the matrix would be empty")
    W = np.zeros((len(inoc_tokens), width), dtype=dtype)
    # Pass 2: fill row by row.
    for n, per_example in enumerate(inoc_tokens):
        pos = 0
        for k, (toks, L) in enumerate(zip(per_example, overlaps[n])):
            take = min(L, width - pos)
            if take <= 0:
                if pos >= width:
                    break
                continue
            inoc = np.asarray(toks[:take], dtype=np.float64)
            if inoc.ndim != 1:
                raise ValueError(f"inoc_tokens[{n}][{k}]: expected a flat list of log-probs")
            diff = inoc - defaults[k][:take]
            W[n, pos : pos + take] = diff if decimals is None else np.round(diff, decimals)
            pos += take
    return W


def clean_nonfinite(W: ArrayLike, how: Literal["zero", "drop_columns"] = "zero") -> np.ndarray:
    """Apply an explicit non-finite policy before a decomposition (the original used both, per script).

    "zero": NaN/±inf → 0 (angle analysis, PCA classifier); "drop_columns": remove every column that has
    a non-finite value in any row (PCA-prompt and LLS figures). Returns a new array of the same dtype.
    """
    arr = as_matrix(W, "W", finite=False)
    if how == "zero":
        out = arr.copy()
        out[~np.isfinite(out)] = 0.0
        return out
    if how == "drop_columns":
        keep = np.isfinite(arr).all(axis=0)
        if not keep.any():
            raise ValueError("W: every column has a non-finite value; nothing left after dropping")
        return arr[:, keep]
    raise ValueError(f"how: expected 'zero' or 'drop_columns', got {how!r}")
