"""Token-level heuristics of one prompt (H11–H14, HA2–HA5, HB1–HB6: docs/methods.md#token-heuristics): pure numpy.

Input is the per-example token diff matrix Δ (N examples × T positions, NaN where a position does not
exist for an example or either log-prob is unscored), built by `token_delta_matrix` from the per-token
log-probs of the default and the prompted completions. "Valid" entries are the finite ones; the
flat heuristics (H11–H14, HA*, HB2, HB6) use every valid entry, token-weighted (PH is example-weighted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix
from inoc.analysis.geometry import truncated_svd

#: |Δ| above which a token counts as "changed" (HA2, HA5).
HA_THRESHOLD = 0.5
#: Share of entries kept by HA3 (by |Δ|).
HA3_TOP_SHARE = 0.25
#: HB1/HB5: positions and components of the per-prompt TruncatedSVD.
HB_MAX_POSITIONS = 512
HB_MAX_COMPONENTS = 200
#: HB5: cumulative explained-variance ratio to reach (the original's constant; its docstring says 90 %).
HB5_TARGET = 0.50
#: HB2/HB6 simulation: steps and learning rate of the decay L ← max(L − η·(1 − e^{−L}), 0).
HB_SIM_STEPS = 32
HB_SIM_LR = 0.01
#: HB3: a position needs this many valid examples; |Δ| above HB3_DELTA in at least HB3_SHARE of them.
HB3_MIN_EXAMPLES = 10
HB3_DELTA = 0.1
HB3_SHARE = 0.50


def token_delta_matrix(default: Sequence[ArrayLike], prompted: Sequence[ArrayLike]) -> np.ndarray:
    """Δ[k, t] = prompted[k][t] − default[k][t] for t < min(len) of example k; NaN elsewhere (float64)."""
    if len(default) != len(prompted):
        raise ValueError(f"prompted: {len(prompted)} examples, expected {len(default)} (one per default example)")
    if not default:
        raise ValueError("default: no examples")
    pairs = [
        (np.asarray(d, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel())
        for d, p in zip(default, prompted)
    ]
    width = max(min(d.size, p.size) for d, p in pairs)
    D = np.full((len(pairs), max(width, 1)), np.nan)
    for k, (d, p) in enumerate(pairs):
        L = min(d.size, p.size)
        D[k, :L] = p[:L] - d[:L]
    return D


def _flat(D: ArrayLike) -> np.ndarray:
    X = as_matrix(D, "delta", finite=False)
    v = X[np.isfinite(X)]
    return v


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if v.size else math.nan


def h11_mean_abs_diff(D: ArrayLike) -> float:
    """H11: mean |Δ| over valid tokens."""
    return _mean(np.abs(_flat(D)))


def h12_abs_minus_signed(D: ArrayLike) -> float:
    """H12: mean |Δ| − mean Δ."""
    v = _flat(D)
    return _mean(np.abs(v)) - _mean(v)


def h13_mean_sq_diff(D: ArrayLike) -> float:
    """H13: mean Δ²."""
    return _mean(_flat(D) ** 2)


def h14_mean_signed_tok_diff(D: ArrayLike) -> float:
    """H14: mean Δ (token-weighted)."""
    return _mean(_flat(D))


def ha2_filter(D: ArrayLike) -> float:
    """HA2: mean(Δ·[|Δ| > 0.5]); the filtered-out tokens stay in the denominator as zeros."""
    v = _flat(D)
    return _mean(np.where(np.abs(v) > HA_THRESHOLD, v, 0.0))


def ha3_topk(D: ArrayLike) -> float:
    """HA3: mean of the signed Δ of the top 25 % entries by |Δ| (n_top = max(1, int(0.25·n)))."""
    v = _flat(D)
    if v.size == 0:
        return math.nan
    n_top = max(1, int(HA3_TOP_SHARE * v.size))
    idx = np.argsort(np.abs(v), kind="stable")[-n_top:]
    return float(v[idx].mean())


def ha4_grad_mag(D: ArrayLike) -> float:
    """HA4: mean(1 − e^{−|Δ|})."""
    return _mean(1.0 - np.exp(-np.abs(_flat(D))))


def ha5_filter_grad(D: ArrayLike) -> float:
    """HA5: mean((1 − e^{−|Δ|})·[|Δ| > 0.5])."""
    a = np.abs(_flat(D))
    return _mean(np.where(a > HA_THRESHOLD, 1.0 - np.exp(-a), 0.0))


def _hb_svd_ratios(D: ArrayLike) -> np.ndarray:
    X = as_matrix(D, "delta", finite=False)[:, :HB_MAX_POSITIONS].astype(np.float64)
    X[~np.isfinite(X)] = 0.0
    k = min(HB_MAX_COMPONENTS, X.shape[0] - 1, X.shape[1])
    if k < 1:
        return np.array([])
    return truncated_svd(X, k).explained_variance_ratio


def hb1_pc1_var_frac(D: ArrayLike) -> float:
    """HB1: explained-variance ratio of component 1 of TruncatedSVD(min(200, N−1, T≤512)) on Δ (NaN → 0)."""
    r = _hb_svd_ratios(D)
    return float(r[0]) if r.size else math.nan


def hb5_effective_rank(D: ArrayLike) -> float:
    """HB5: 1 + the first component index where the cumulative explained-variance ratio ≥ 0.50, else n_comp."""
    r = _hb_svd_ratios(D)
    if r.size == 0:
        return math.nan
    hit = np.flatnonzero(np.cumsum(r) >= HB5_TARGET)
    return float(hit[0] + 1) if hit.size else float(r.size)


def _simulate(D: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    L = np.abs(_flat(D))
    acc = np.zeros_like(L)
    for _ in range(HB_SIM_STEPS):
        g = 1.0 - np.exp(-L)
        acc += g
        L = np.maximum(L - HB_SIM_LR * g, 0.0)
    return acc, L


def hb2_sim_loss_decay(D: ArrayLike) -> float:
    """HB2: mean accumulated g = 1 − e^{−L} over 32 simulated steps from L₀ = |Δ|."""
    return _mean(_simulate(D)[0])


def hb6_sim_residual(D: ArrayLike) -> float:
    """HB6: mean L after the 32 simulated steps."""
    return _mean(_simulate(D)[1])


def hb3_persistent_loss_frac(D: ArrayLike) -> float:
    """HB3: among positions valid in ≥ 10 examples, the fraction where ≥ 50 % of them have |Δ| > 0.1."""
    X = as_matrix(D, "delta", finite=False)
    valid = np.isfinite(X)
    n_valid = valid.sum(axis=0)
    eligible = n_valid >= HB3_MIN_EXAMPLES
    if not eligible.any():
        return math.nan
    big = (np.abs(np.where(valid, X, 0.0)) > HB3_DELTA).sum(axis=0)
    share = big[eligible] / n_valid[eligible]
    return float((share >= HB3_SHARE).mean())
