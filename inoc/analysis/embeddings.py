"""Embedding-geometry heuristics of a prompt (docs/methods.md#embeddings): pure numpy.

Inputs are embedding vectors (one row per text). Every quantity is computed in float64.

* **Rephrasing spread** of a prompt (``rephrasing_spread``), from the prompt's vector p and its
  pool's vectors r_1 … r_n: c_i = cos(r_i, p); ``emb_cos_mean`` = mean(c), ``emb_cos_std`` = std(c)
  with ddof 0 (numpy's default), ``emb_cos_min`` = min(c); ``emb_eff_rank`` = exp(H(σ/Σσ)) of the
  singular values σ of the column-centred n × d matrix R (``inoc.analysis.heuristics.effective_rank``;
  at most min(n − 1, d)).
* **Position among the prompts** (``centroid_heuristics``), from the prompts' *own* vectors (not
  their rephrasings): ``emb_l2_neutral`` = ‖p − mean(neutral prompts)‖₂, ``emb_cos_negative`` /
  ``emb_cos_positive`` = cos(p, mean(negative / positive prompts)), where neutral, negative and
  positive are the prompts of the groups with that role. The centroid is the plain mean of the
  vectors, not renormalised. With ``exclude_self`` (the default) a prompt is left out of its own
  group's centroid (leave-one-out: otherwise a prompt of a 4-prompt group would be a quarter of the
  centroid it is compared with); the original does not say which it did (docs/methods.md#embeddings).
  A centroid with no prompt in it gives no value (the key is absent from the result).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, as_vector
from inoc.analysis.heuristics import effective_rank

#: The heuristics of ``rephrasing_spread``.
SPREAD_HEURISTICS = ("emb_cos_mean", "emb_cos_std", "emb_cos_min", "emb_eff_rank")
#: The heuristics of ``centroid_heuristics``, with the group role whose centroid each one uses.
CENTROID_HEURISTICS = {"emb_l2_neutral": "neutral", "emb_cos_negative": "negative", "emb_cos_positive": "positive"}


def unit_rows(X: ArrayLike, name: str = "X") -> np.ndarray:
    """Rows scaled to unit L2 norm (float64); a zero or non-finite row is an error."""
    M = as_matrix(X, name).astype(np.float64)
    norms = np.linalg.norm(M, axis=1)
    bad = np.flatnonzero(~(norms > 0))
    if bad.size:
        raise ValueError(f"{name}: row {int(bad[0])} has zero length; an embedding must not be the zero vector")
    return M / norms[:, None]


def cosines(X: ArrayLike, v: ArrayLike) -> np.ndarray:
    """cos(X[i], v) for every row of X."""
    M = unit_rows(X, "X")
    u = unit_rows(as_vector(v, "v", allow_nan=False)[None, :], "v")[0]
    if M.shape[1] != u.shape[0]:
        raise ValueError(f"X has {M.shape[1]} columns but v has {u.shape[0]} entries")
    return M @ u


def rephrasing_spread(prompt: ArrayLike, rephrasings: ArrayLike) -> dict[str, float]:
    """mean / std (ddof 0) / min cosine of the rephrasings to the prompt, and the effective rank of
    the centred rephrasing matrix (NaN for a pool of one)."""
    R = as_matrix(rephrasings, "rephrasings").astype(np.float64)
    c = cosines(R, prompt)
    return {
        "emb_cos_mean": float(np.mean(c)),
        "emb_cos_std": float(np.std(c)),
        "emb_cos_min": float(np.min(c)),
        "emb_eff_rank": effective_rank(R, center=True) if R.shape[0] > 1 else math.nan,
    }


def centroid_heuristics(
    vectors: Mapping[str, ArrayLike],
    roles: Mapping[str, str],
    *,
    keys: Sequence[str] | None = None,
    exclude_self: bool = True,
) -> dict[str, dict[str, float]]:
    """``{key: {heuristic: value}}`` for ``keys`` (default: every key of ``vectors``).

    ``vectors`` holds every prompt's own embedding, ``roles`` every prompt's group role (neutral,
    negative, positive; other roles form no centroid). See the module docstring.
    """
    names = list(vectors)
    missing = [k for k in names if k not in roles]
    if missing:
        raise ValueError(f"roles: no role for prompt(s) {missing}")
    V = as_matrix(np.stack([as_vector(vectors[k], f"vectors[{k!r}]", allow_nan=False) for k in names]), "vectors")
    V = V.astype(np.float64)
    row = {k: i for i, k in enumerate(names)}
    members = {role: [row[k] for k in names if roles[k] == role] for role in set(CENTROID_HEURISTICS.values())}
    out: dict[str, dict[str, float]] = {}
    for key in names if keys is None else keys:
        if key not in row:
            raise ValueError(f"keys: {key!r} has no vector")
        p = V[row[key]]
        values: dict[str, float] = {}
        for heuristic, role in CENTROID_HEURISTICS.items():
            idx = [i for i in members[role] if not (exclude_self and i == row[key])]
            if not idx:
                continue
            centroid = V[idx].mean(axis=0)
            if heuristic == "emb_l2_neutral":
                values[heuristic] = float(np.linalg.norm(p - centroid))
            else:
                denom = float(np.linalg.norm(p) * np.linalg.norm(centroid))
                values[heuristic] = float(p @ centroid) / denom if denom > 0 else math.nan
        out[key] = values
    return out
