"""Log-probability heuristics per prompt (docs/methods.md#ph, #ppd, #lls-metrics, #fixed-vs-mix).

All take lp vectors or weight vectors w = lp_inoc − lp_default (see `inoc.analysis.matrices`).
NaN marks an unscored example; every metric uses only the finite entries (jointly finite for pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, as_vector, check_keys, exact_mean, same_length
from inoc.analysis.geometry import Decomposition, pca, truncated_svd

#: σ at or below this is "no spread": SNR-type ratios are NaN rather than huge (original: 1e-9).
SIGMA_EPS = 1e-9
#: |PH_fixed|, MALD_fixed below this make a ratio NaN (original: 1e-9 for PH_ratio).
RATIO_EPS = 1e-9
#: |SNR_fixed| below this makes SNR_ratio NaN (original: 1e-6).
SNR_RATIO_EPS = 1e-6

FIXED_VS_MIX_HEURISTICS = (
    "ph_ratio",
    "sigma2_diff",
    "gamma_mix",
    "snr_mix",
    "cosine",
    "eff_rank",
    "snr_ratio",
    "mald_ratio",
    "snr_abs_mix",
    "snr_abs_ratio",
)
FIXED_VS_MIX_VARIANTS = ("raw", "pca_rank1", "svd_rank1")


def _paired_finite(a: ArrayLike, b: ArrayLike, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    av, bv = as_vector(a, name_a), as_vector(b, name_b)
    same_length(av, bv, name_a, name_b)
    ok = np.isfinite(av) & np.isfinite(bv)
    return av[ok], bv[ok]


def perplexity_heuristic(lp_inoc: ArrayLike, lp_default: ArrayLike) -> float:
    """PH = mean_k (lp_inoc[k] − lp_default[k]) over the examples where both are finite.

    The mean of the differences, correctly rounded: the stored `perplexity_heuristic` values equal it
    bit for bit (the difference of the two means does not: it rounds differently in 44 of 48 prompts).
    """
    a, b = _paired_finite(lp_inoc, lp_default, "lp_inoc", "lp_default")
    return exact_mean(a - b)


def pointwise_perplexity_drift(lp_ctrl_inoc: ArrayLike, lp_ctrl_default: ArrayLike) -> float:
    """PPD = mean_i |lp_ctrl_inoc[i] − lp_ctrl_default[i]| on the control completions (jointly finite)."""
    a, b = _paired_finite(lp_ctrl_inoc, lp_ctrl_default, "lp_ctrl_inoc", "lp_ctrl_default")
    return exact_mean(np.abs(a - b))


class LLSMetrics(NamedTuple):
    """Distributional metrics of one weight vector w (docs/methods.md#lls-metrics)."""

    n: int  # finite entries used
    ph: float  # mean(w)
    gamma: float  # fraction of w > 0
    sigma: float  # std(w, ddof=1), the original's choice (§7.7); NaN when n < 2
    snr: float  # ph / sigma; NaN when sigma ≤ SIGMA_EPS
    snr_abs: float  # |ph| / sigma (docs/methods.md#lls-metrics)
    mald: float  # mean |w|
    mald_over_sigma: float  # mean|w| / sigma: what the original's fixed-vs-mix code called SNR_abs


def lls_metrics(w: ArrayLike) -> LLSMetrics:
    """PH, γ, σ (ddof=1), SNR, SNR_abs, MALD of one prompt's weight vector (finite entries only)."""
    v = as_vector(w, "w", allow_inf=True)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return LLSMetrics(0, *([math.nan] * 7))
    ph = exact_mean(v)
    mald = exact_mean(np.abs(v))
    sigma = float(v.std(ddof=1)) if n >= 2 else math.nan
    ok = n >= 2 and sigma > SIGMA_EPS
    return LLSMetrics(
        n=n,
        ph=ph,
        gamma=float((v > 0).mean()),
        sigma=sigma,
        snr=ph / sigma if ok else math.nan,
        snr_abs=abs(ph) / sigma if ok else math.nan,
        mald=mald,
        mald_over_sigma=mald / sigma if ok else math.nan,
    )


def lls_metrics_table(W: ArrayLike, keys: Sequence[str]) -> pd.DataFrame:
    """`lls_metrics` of every row of W (N × K, NaN allowed), indexed by prompt key."""
    X = as_matrix(W, "W", finite=False)
    keys = check_keys(keys, X.shape[0])
    recs = [lls_metrics(X[i]) for i in range(X.shape[0])]
    return pd.DataFrame(recs, index=pd.Index(keys, name="prompt_key"), columns=LLSMetrics._fields)


def weight_entropy_rank(w: ArrayLike) -> float:
    """exp(H(p)) with p = clip(|w|/Σ|w|, 1e-12): the "eff_rank" fixed-vs-mix heuristic (§8.6 #6).

    The clip only guards log(0); p is not renormalised afterwards, as in the original.
    """
    v = as_vector(w, "w", allow_inf=True)
    a = np.abs(v[np.isfinite(v)])
    total = a.sum()
    if a.size == 0 or total <= 0:
        return math.nan
    p = np.clip(a / total, 1e-12, None)
    return float(np.exp(-np.sum(p * np.log(p))))


def effective_rank(M: ArrayLike, *, center: bool = True) -> float:
    """exp(entropy(σ/Σσ)) of the singular values of M (rows = items), column-centred by default.

    The embedding heuristic of docs/methods.md#embeddings (rephrasing-embedding matrix, centred).
    """
    X = as_matrix(M, "M").astype(np.float64)
    if center:
        X = X - X.mean(axis=0)
    s = np.linalg.svd(X, compute_uv=False)
    total = s.sum()
    if total <= 0:
        return math.nan
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def fixed_vs_mix_heuristics(w_fixed: ArrayLike, w_mix: ArrayLike, *, min_finite: int = 20) -> dict[str, float]:
    """The ten fixed-vs-mix heuristics of one prompt (docs/methods.md#fixed-vs-mix), plus `n`.

    Uses the examples where both weights are finite; all NaN when fewer than `min_finite` (the
    original skipped such prompts). σ is ddof=1; MALD = mean|w|; SNR_abs = MALD/σ as the original
    code computed it (docs/methods.md#lls-metrics writes |mean|/σ for the per-prompt metric: see `lls_metrics`).
    """
    if min_finite < 2:
        raise ValueError(f"min_finite: must be ≥ 2 (σ needs two values), got {min_finite}")
    f, m = _paired_finite(w_fixed, w_mix, "w_fixed", "w_mix")
    n = int(f.size)
    out = {name: math.nan for name in FIXED_VS_MIX_HEURISTICS}
    out["n"] = n
    if n < min_finite:
        return out

    def stats(w: np.ndarray) -> tuple[float, float, float]:
        return exact_mean(w), float(w.std(ddof=1)), exact_mean(np.abs(w))

    ph_f, s_f, mald_f = stats(f)
    ph_m, s_m, mald_m = stats(m)
    snr_f = ph_f / s_f if s_f > SIGMA_EPS else math.nan
    snr_m = ph_m / s_m if s_m > SIGMA_EPS else math.nan
    sabs_f = mald_f / s_f if s_f > SIGMA_EPS else math.nan
    sabs_m = mald_m / s_m if s_m > SIGMA_EPS else math.nan
    norm = float(np.linalg.norm(f) * np.linalg.norm(m))

    out["ph_ratio"] = ph_m / ph_f if abs(ph_f) > RATIO_EPS else math.nan
    out["sigma2_diff"] = s_m**2 - s_f**2
    out["gamma_mix"] = float((m > 0).mean())
    out["snr_mix"] = snr_m
    out["cosine"] = float(f @ m) / norm if norm > 0 else math.nan
    out["eff_rank"] = weight_entropy_rank(m)
    out["snr_ratio"] = snr_m / snr_f if abs(snr_f) > SNR_RATIO_EPS else math.nan  # NaN snr_f fails the test too
    out["mald_ratio"] = mald_m / mald_f if mald_f > RATIO_EPS else math.nan
    out["snr_abs_mix"] = sabs_m
    out["snr_abs_ratio"] = sabs_m / sabs_f if abs(sabs_f) > SNR_RATIO_EPS else math.nan
    return out


def rank1_reconstruction(
    W_fixed: ArrayLike, W_mix: ArrayLike, method: Literal["pca", "svd"]
) -> tuple[np.ndarray, np.ndarray, Decomposition]:
    """Rank-1 reconstructions of W_fixed and W_mix on the first axis v1 fitted on W_fixed (§8.6).

    PCA: f_n = (Wf_n − μ)·v1, m_n = (Wm_n − μ)·v1 with μ the column mean of W_fixed; reconstruction
    f_n·v1 (the mean is *not* added back, as in the original). SVD: f_n = Wf_n·v1 (uncentred).
    Non-finite entries are set to 0 (no change of log-prob) before fitting and projecting.
    Returns (R_fixed, R_mix, the rank-1 decomposition of W_fixed).
    """
    F = as_matrix(W_fixed, "W_fixed", finite=False).astype(np.float64)
    M = as_matrix(W_mix, "W_mix", finite=False).astype(np.float64)
    if F.shape != M.shape:
        raise ValueError(f"W_fixed and W_mix: shapes differ ({F.shape} vs {M.shape})")
    F[~np.isfinite(F)] = 0.0
    M[~np.isfinite(M)] = 0.0
    if method == "pca":
        dec = pca(F, 1)
        mu = dec.mean
    elif method == "svd":
        dec = truncated_svd(F, 1)
        mu = np.zeros(F.shape[1])
    else:
        raise ValueError(f"method: expected 'pca' or 'svd', got {method!r}")
    v1 = dec.components[0]
    return np.outer((F - mu) @ v1, v1), np.outer((M - mu) @ v1, v1), dec


class FixedVsMixFit(NamedTuple):
    """`fixed_vs_mix_fit` of one prompt set: the long heuristics table and the rank-1 fits' PC1 variance."""

    table: pd.DataFrame  # one row per (variant, prompt): the ten heuristics and n
    fitted: list[str]  # the prompts the rank-1 axes were fitted on (≥ min_finite jointly finite examples)
    pc1_variance: dict[str, float]  # "pca" / "svd" → explained_variance_ratio_[0] of the fit on W_fixed


def fixed_vs_mix_fit(
    W_fixed: ArrayLike, W_mix: ArrayLike, keys: Sequence[str], *, min_finite: int = 20
) -> FixedVsMixFit:
    """The ten heuristics on raw W and on the rank-1 PCA / TruncatedSVD reconstructions, with the fits.

    Variants: "raw" (W itself), "pca_rank1" and "svd_rank1" (`rank1_reconstruction`). The rank-1 axis is
    fitted on the rows given, so pass the prompt subset the fit is meant for (docs/methods.md#exp20-per-trait fits one
    per trait). Prompts with fewer than `min_finite` jointly finite examples are NaN in every variant and
    are left out of the fit. `pc1_variance` is sklearn's `explained_variance_ratio_[0]` of `PCA(1)` and of
    `TruncatedSVD(1)` (var(coords)/total column variance) on W_fixed of the fitted prompts: golden G8.
    """
    F = as_matrix(W_fixed, "W_fixed", finite=False)
    M = as_matrix(W_mix, "W_mix", finite=False)
    if F.shape != M.shape:
        raise ValueError(f"W_fixed and W_mix: shapes differ ({F.shape} vs {M.shape})")
    keys = check_keys(keys, F.shape[0])
    raw = [fixed_vs_mix_heuristics(F[i], M[i], min_finite=min_finite) for i in range(F.shape[0])]
    eligible = np.array([r["n"] >= min_finite for r in raw], dtype=bool)
    idx = np.flatnonzero(eligible)
    rows = [{"variant": FIXED_VS_MIX_VARIANTS[0], "prompt_key": k, **r} for k, r in zip(keys, raw)]
    pc1: dict[str, float] = {}
    for variant, method in zip(FIXED_VS_MIX_VARIANTS[1:], ("pca", "svd")):
        recon: dict[int, dict[str, float]] = {}
        if idx.size >= (2 if method == "pca" else 1):
            Rf, Rm, dec = rank1_reconstruction(F[idx], M[idx], method)
            pc1[method] = float(dec.explained_variance_ratio[0])
            # Reconstructions are finite everywhere, so n = K: the raw eligibility rule already applied.
            recon = {int(i): fixed_vs_mix_heuristics(Rf[j], Rm[j], min_finite=2) for j, i in enumerate(idx)}
        else:
            pc1[method] = math.nan
        for i, k in enumerate(keys):
            r = recon.get(i, {**{h: math.nan for h in FIXED_VS_MIX_HEURISTICS}, "n": raw[i]["n"]})
            rows.append({"variant": variant, "prompt_key": k, **r})
    table = pd.DataFrame(rows, columns=["variant", "prompt_key", "n", *FIXED_VS_MIX_HEURISTICS])
    return FixedVsMixFit(table, [keys[i] for i in idx], pc1)


def fixed_vs_mix_table(
    W_fixed: ArrayLike, W_mix: ArrayLike, keys: Sequence[str], *, min_finite: int = 20
) -> pd.DataFrame:
    """Long table: one row per (variant, prompt) with the ten heuristics and n (`fixed_vs_mix_fit`'s table)."""
    return fixed_vs_mix_fit(W_fixed, W_mix, keys, min_finite=min_finite).table
