"""Token-level heuristics (SPEC-DETAILED §8.9) on small matrices worked out by hand or by brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.decomposition import TruncatedSVD

from inoc.analysis import token_heuristics as th
from inoc.analysis.trait_svd import oriented_trait_svd, zsum


def test_delta_matrix_compares_only_the_overlap_of_each_example():
    D = th.token_delta_matrix([[0.0, -1.0, -2.0], [-1.0]], [[1.0, 0.0], [-0.5, 7.0]])
    np.testing.assert_array_equal(D, [[1.0, 1.0], [0.5, np.nan]])
    with pytest.raises(ValueError, match="expected 2"):
        th.token_delta_matrix([[0.0], [0.0]], [[0.0]])


def test_flat_heuristics_by_hand():
    D = np.array([[1.0, -0.2, np.nan], [0.6, -2.0, 0.1]])  # valid: 1, -0.2, 0.6, -2, 0.1
    v = np.array([1.0, -0.2, 0.6, -2.0, 0.1])
    assert th.h11_mean_abs_diff(D) == pytest.approx(np.abs(v).mean())
    assert th.h12_abs_minus_signed(D) == pytest.approx(np.abs(v).mean() - v.mean())
    assert th.h13_mean_sq_diff(D) == pytest.approx((v**2).mean())
    assert th.h14_mean_signed_tok_diff(D) == pytest.approx(v.mean())
    assert th.ha2_filter(D) == pytest.approx((1.0 + 0.6 - 2.0) / 5)  # |Δ| > 0.5 kept, others 0, n = 5
    assert th.ha3_topk(D) == pytest.approx(-2.0)  # n_top = max(1, int(1.25)) = 1: the largest |Δ|, signed
    assert th.ha4_grad_mag(D) == pytest.approx((1 - np.exp(-np.abs(v))).mean())
    big = np.abs(v) > 0.5
    assert th.ha5_filter_grad(D) == pytest.approx(((1 - np.exp(-np.abs(v))) * big).mean())
    assert math.isnan(th.h11_mean_abs_diff(np.full((2, 2), np.nan)))


def test_simulation_matches_a_plain_loop():
    D = np.array([[0.3, 2.0], [0.0, np.nan]])
    acc, res = [], []
    for L in (0.3, 2.0, 0.0):
        a = 0.0
        for _ in range(32):
            g = 1 - math.exp(-L)
            a += g
            L = max(L - 0.01 * g, 0.0)
        acc.append(a)
        res.append(L)
    assert th.hb2_sim_loss_decay(D) == pytest.approx(np.mean(acc), rel=1e-12)
    assert th.hb6_sim_residual(D) == pytest.approx(np.mean(res), rel=1e-12)


def test_persistent_loss_fraction_counts_positions_valid_in_ten_examples():
    D = np.full((12, 3), np.nan)
    D[:, 0] = [0.5] * 6 + [0.0] * 6  # 6/12 = 50 % above 0.1: persistent
    D[:10, 1] = [0.5] * 4 + [0.0] * 6  # 40 %: not persistent
    D[:9, 2] = 1.0  # valid in 9 examples only: not eligible
    assert th.hb3_persistent_loss_frac(D) == pytest.approx(0.5)
    assert math.isnan(th.hb3_persistent_loss_frac(D[:5]))


def test_hb1_and_hb5_follow_sklearn_truncated_svd():
    rng = np.random.default_rng(1)
    D = rng.normal(size=(30, 600)) + np.outer(rng.normal(size=30), rng.normal(size=600))
    D[3, 500:] = np.nan
    X = np.nan_to_num(D[:, :512], nan=0.0)
    ratios = TruncatedSVD(29, algorithm="arpack", random_state=42).fit(X).explained_variance_ratio_
    assert th.hb1_pc1_var_frac(D) == pytest.approx(ratios[0], rel=1e-6)
    assert th.hb5_effective_rank(D) == float(np.flatnonzero(np.cumsum(ratios) >= 0.5)[0] + 1)


def test_oriented_trait_svd_points_trait_prompts_away_from_neutral():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(6, 50))
    W[:3] += 3.0  # trait prompts shifted
    neutral = [False, False, False, True, True, True]
    res = oriented_trait_svd(W, list("abcdef"), neutral, 2)
    sk = TruncatedSVD(2, random_state=42).fit_transform(W)
    for c in range(2):
        assert np.allclose(np.abs(res.coords[:, c]), np.abs(sk[:, c]), atol=1e-8)
        assert res.coords[:3, c].mean() >= res.coords[3:, c].mean()
    z = zsum(res.coords)
    manual = sum((res.coords[:, c] - res.coords[:, c].mean()) / res.coords[:, c].std() for c in range(2))
    np.testing.assert_allclose(z, manual)
    with pytest.raises(ValueError, match="both neutral and trait"):
        oriented_trait_svd(W, list("abcdef"), [True] * 6, 2)
