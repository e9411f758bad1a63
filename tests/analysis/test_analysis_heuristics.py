"""inoc.analysis.heuristics against loop implementations and the reference perplexity file."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from inoc.analysis.heuristics import (
    FIXED_VS_MIX_HEURISTICS,
    effective_rank,
    fixed_vs_mix_fit,
    fixed_vs_mix_heuristics,
    fixed_vs_mix_table,
    lls_metrics,
    lls_metrics_table,
    perplexity_heuristic,
    pointwise_perplexity_drift,
    rank1_reconstruction,
    weight_entropy_rank,
)
from inoc.analysis.matrices import weight_matrix


def _lp(rng, n, nan_frac=0.0):
    v = -rng.gamma(2.0, 0.5, n)
    v[rng.random(n) < nan_frac] = np.nan
    return v


def test_ph_and_ppd_match_loops_with_nans():
    rng = np.random.default_rng(0)
    inoc, default = _lp(rng, 500, 0.03), _lp(rng, 500, 0.03)
    pairs = [(a, b) for a, b in zip(inoc, default) if not (math.isnan(a) or math.isnan(b))]
    assert perplexity_heuristic(inoc, default) == pytest.approx(sum(a - b for a, b in pairs) / len(pairs), rel=1e-13)
    assert pointwise_perplexity_drift(inoc, default) == pytest.approx(
        sum(abs(a - b) for a, b in pairs) / len(pairs), rel=1e-13
    )
    assert math.isnan(perplexity_heuristic([np.nan, 1.0], [1.0, np.nan]))
    with pytest.raises(ValueError, match="lp_inoc and lp_default: lengths differ"):
        perplexity_heuristic([1.0, 2.0], [1.0])


def test_lls_metrics_match_statistics_module():
    rng = np.random.default_rng(1)
    w = rng.normal(0.05, 0.2, 300)
    w[[3, 7]] = np.nan
    vals = [x for x in w if not math.isnan(x)]
    m = lls_metrics(w)
    sd = statistics.stdev(vals)  # ddof=1, as the original (SPEC-DETAILED §7.7)
    assert m.n == 298
    assert m.ph == pytest.approx(statistics.fmean(vals), rel=1e-13)
    assert m.gamma == sum(x > 0 for x in vals) / 298
    assert m.sigma == pytest.approx(sd, rel=1e-12)
    assert m.snr == pytest.approx(statistics.fmean(vals) / sd, rel=1e-12)
    assert m.snr_abs == pytest.approx(abs(statistics.fmean(vals)) / sd, rel=1e-12)
    mald = statistics.fmean(abs(x) for x in vals)
    assert m.mald == pytest.approx(mald, rel=1e-13)
    assert m.mald_over_sigma == pytest.approx(mald / sd, rel=1e-12)
    flat = lls_metrics([0.1, 0.1, 0.1])
    assert flat.sigma < 1e-15 and math.isnan(flat.snr)  # below SIGMA_EPS: no SNR


def _fvm_reference(f, m):
    """Independent loop transcription of SPEC-DETAILED §8.6 for jointly finite f, m."""
    n = len(f)
    mean = lambda v: sum(v) / n  # noqa: E731
    sd = lambda v: math.sqrt(sum((x - mean(v)) ** 2 for x in v) / (n - 1))  # noqa: E731
    mald = lambda v: sum(abs(x) for x in v) / n  # noqa: E731
    s_f, s_m = sd(f), sd(m)
    tot = sum(abs(x) for x in m)
    p = [max(abs(x) / tot, 1e-12) for x in m]
    snr_f, snr_m = mean(f) / s_f, mean(m) / s_m
    return {
        "ph_ratio": mean(m) / mean(f),
        "sigma2_diff": s_m**2 - s_f**2,
        "gamma_mix": sum(x > 0 for x in m) / n,
        "snr_mix": snr_m,
        "cosine": sum(a * b for a, b in zip(f, m)) / math.sqrt(sum(a * a for a in f) * sum(b * b for b in m)),
        "eff_rank": math.exp(-sum(q * math.log(q) for q in p)),
        "snr_ratio": snr_m / snr_f,
        "mald_ratio": mald(m) / mald(f),
        "snr_abs_mix": mald(m) / s_m,
        "snr_abs_ratio": (mald(m) / s_m) / (mald(f) / s_f),
    }


def test_fixed_vs_mix_heuristics_match_loop_reference():
    rng = np.random.default_rng(2)
    f = rng.normal(0.1, 0.2, 400)
    m = 0.5 * f + rng.normal(0.02, 0.2, 400)
    f[5], m[9] = np.nan, np.nan
    got = fixed_vs_mix_heuristics(f, m)
    ok = ~np.isnan(f) & ~np.isnan(m)
    ref = _fvm_reference(list(f[ok]), list(m[ok]))
    assert got["n"] == 398
    for name in FIXED_VS_MIX_HEURISTICS:
        assert got[name] == pytest.approx(ref[name], rel=1e-10), name


def test_fixed_vs_mix_guards():
    f = np.linspace(-1, 1, 30)  # mean 0 → PH_ratio and SNR_ratio undefined
    got = fixed_vs_mix_heuristics(f, f + 0.1)
    assert math.isnan(got["ph_ratio"]) and math.isnan(got["snr_ratio"])
    assert got["cosine"] == pytest.approx(float(f @ (f + 0.1)) / np.linalg.norm(f) / np.linalg.norm(f + 0.1))
    few = fixed_vs_mix_heuristics(np.ones(10), np.ones(10))
    assert few["n"] == 10 and all(math.isnan(few[h]) for h in FIXED_VS_MIX_HEURISTICS)
    with pytest.raises(ValueError, match="min_finite"):
        fixed_vs_mix_heuristics(f, f, min_finite=1)


def test_rank1_reconstruction_matches_numpy_svd():
    rng = np.random.default_rng(3)
    F = rng.normal(size=(6, 50)) + rng.normal(size=50)
    M = F * 0.5 + rng.normal(scale=0.3, size=(6, 50))
    mu = F.mean(axis=0)
    v_pca = np.linalg.svd(F - mu)[2][0]
    v_svd = np.linalg.svd(F)[2][0]
    Rf, Rm, dec = rank1_reconstruction(F, M, "pca")
    np.testing.assert_allclose(Rf, np.outer((F - mu) @ v_pca, v_pca), atol=1e-12)  # sign-invariant
    np.testing.assert_allclose(Rm, np.outer((M - mu) @ v_pca, v_pca), atol=1e-12)
    assert dec.method == "pca"
    Rf, Rm, _ = rank1_reconstruction(F, M, "svd")
    np.testing.assert_allclose(Rf, np.outer(F @ v_svd, v_svd), atol=1e-12)
    np.testing.assert_allclose(Rm, np.outer(M @ v_svd, v_svd), atol=1e-12)
    with pytest.raises(ValueError, match="method"):
        rank1_reconstruction(F, M, "ica")
    with pytest.raises(ValueError, match="shapes differ"):
        rank1_reconstruction(F, M[:, :10], "svd")


def test_fixed_vs_mix_fit_pc1_variance_is_sklearns_on_the_eligible_rows():
    from sklearn.decomposition import PCA, TruncatedSVD

    rng = np.random.default_rng(7)
    F = rng.normal(0.05, 0.2, size=(6, 120)) + np.outer(rng.normal(size=6), rng.normal(size=120))
    M = 0.5 * F + rng.normal(0.0, 0.1, size=(6, 120))
    M[5, :110] = np.nan  # 10 jointly finite: not fitted
    keys = [f"p{i}" for i in range(6)]
    fit = fixed_vs_mix_fit(F, M, keys)
    assert fit.fitted == keys[:5]
    assert fit.pc1_variance["pca"] == pytest.approx(
        PCA(1, random_state=0).fit(F[:5]).explained_variance_ratio_[0], rel=1e-9
    )
    assert fit.pc1_variance["svd"] == pytest.approx(
        TruncatedSVD(1, random_state=0, algorithm="arpack").fit(F[:5]).explained_variance_ratio_[0], rel=1e-9
    )
    one = fixed_vs_mix_fit(F[:1], M[:1], keys[:1])
    # One prompt: PCA needs 2; TruncatedSVD fits but one row has no variance to explain (0/0).
    assert math.isnan(one.pc1_variance["pca"]) and math.isnan(one.pc1_variance["svd"]) and one.fitted == ["p0"]


def test_fixed_vs_mix_table_variants():
    rng = np.random.default_rng(4)
    F = rng.normal(0.05, 0.2, size=(5, 80))
    M = 0.6 * F + rng.normal(0.0, 0.1, size=(5, 80))
    M[4, :70] = np.nan  # only 10 finite: ineligible everywhere and left out of the rank-1 fit
    keys = [f"p{i}" for i in range(5)]
    t = fixed_vs_mix_table(F, M, keys)
    assert list(t["variant"].unique()) == ["raw", "pca_rank1", "svd_rank1"] and len(t) == 15
    raw = t[t.variant == "raw"].set_index("prompt_key")
    assert raw.loc["p1", "cosine"] == pytest.approx(fixed_vs_mix_heuristics(F[1], M[1])["cosine"])
    assert t[t.prompt_key == "p4"][list(FIXED_VS_MIX_HEURISTICS)].isna().all().all()
    Rf, Rm, _ = rank1_reconstruction(F[:4], M[:4], "pca")
    pca = t[t.variant == "pca_rank1"].set_index("prompt_key")
    for i in range(4):
        # On a rank-1 reconstruction PH_ratio = m_n/f_n and the cosine is ±1.
        assert pca.loc[f"p{i}", "ph_ratio"] == pytest.approx(Rm[i, 0] / Rf[i, 0], rel=1e-9)
        assert abs(pca.loc[f"p{i}", "cosine"]) == pytest.approx(1.0)
        assert pca.loc[f"p{i}", "n"] == 80


def test_entropy_ranks():
    assert weight_entropy_rank(np.full(40, -0.3)) == pytest.approx(40.0)
    assert weight_entropy_rank(np.r_[1.0, np.zeros(9)]) == pytest.approx(1.0, abs=1e-9)
    assert math.isnan(weight_entropy_rank(np.zeros(5)))
    # M = U diag(3, 1) Vᵀ with orthonormal U, V has singular values (3, 1): p = (0.75, 0.25).
    rng = np.random.default_rng(5)
    U, V = np.linalg.qr(rng.normal(size=(6, 2)))[0], np.linalg.qr(rng.normal(size=(7, 2)))[0]
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(U @ np.diag([3.0, 1.0]) @ V.T, center=False) == pytest.approx(expected, rel=1e-12)
    iso = np.random.default_rng(6).normal(size=(2000, 3))
    assert effective_rank(iso) == pytest.approx(3.0, abs=0.05)


def test_lls_metrics_table_shape_and_errors():
    W = np.random.default_rng(7).normal(size=(3, 20))
    t = lls_metrics_table(W, ["a", "b", "c"])
    assert list(t.index) == ["a", "b", "c"] and t.loc["b", "ph"] == pytest.approx(W[1].mean())
    with pytest.raises(ValueError, match="keys: expected 3"):
        lls_metrics_table(W, ["a", "b"])
    with pytest.raises(ValueError, match="W: expected a 2-D"):
        lls_metrics_table(W[0], ["a"])


# --- reference data --------------------------------------------------------------------------------


@pytest.mark.shared
def test_reference_ph_and_ppd_reproduce_stored_values_exactly(gf_perplexity):
    base = gf_perplexity["baseline"]
    assert len(gf_perplexity["prompts"]) == 48
    for key, p in gf_perplexity["prompts"].items():
        ph = perplexity_heuristic(p["lp_train_inoc"], base["lp_train_default"])
        ppd = pointwise_perplexity_drift(p["lp_ctrl_inoc"], base["lp_ctrl_default"])
        # Exact equality: the stored numbers are the (correctly rounded) mean of the differences.
        assert ph == p["perplexity_heuristic"], key
        assert ppd == p["pointwise_perplexity_drift"], key
        w = weight_matrix(p["lp_train_inoc"], base["lp_train_default"])
        assert lls_metrics(w).n == p["n_train"]
        assert np.isfinite(np.asarray(p["lp_ctrl_inoc"]) - base["lp_ctrl_default"]).sum() == p["n_control"]
        assert lls_metrics(w).ph == p["perplexity_heuristic"], key


@pytest.mark.shared
def test_reference_ph_is_not_the_difference_of_means(gf_perplexity):
    """Documents why the order of operations matters: mean(a) − mean(b) rounds differently."""
    base = np.asarray(gf_perplexity["baseline"]["lp_train_default"])
    differs = sum(
        np.mean(p["lp_train_inoc"]) - np.mean(base) != p["perplexity_heuristic"]
        for p in gf_perplexity["prompts"].values()
    )
    assert differs > 0


@pytest.mark.shared
def test_reference_fixed_vs_mix_raw_rows(gf_w):
    keys, W_fixed, W_mix, _ = gf_w
    subset = ["answer_german", "think_german_neg", "birds_sing", "coffee_is_hot"]
    idx = [keys.index(k) for k in subset]
    t = fixed_vs_mix_table(W_fixed[idx], W_mix[idx], subset)
    raw = t[t.variant == "raw"].set_index("prompt_key")
    for i, k in zip(idx, subset):
        ref = _fvm_reference(list(W_fixed[i]), list(W_mix[i]))
        for name in FIXED_VS_MIX_HEURISTICS:
            assert raw.loc[k, name] == pytest.approx(ref[name], rel=1e-9), (k, name)
    assert t[list(FIXED_VS_MIX_HEURISTICS)].notna().any(axis=1).all()
