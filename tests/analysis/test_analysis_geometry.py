"""inoc.analysis.geometry against numpy's SVD, sklearn, loop implementations and the reference files."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.preprocessing import StandardScaler

from inoc.analysis import geometry
from inoc.analysis.geometry import (
    PAIR_TYPES,
    angle_group_stats,
    angle_matrices,
    component_correlation,
    pairwise_angles,
    pca,
    prompt_group_angles,
    token_decompositions,
    truncated_svd,
)
from inoc.analysis.matrices import token_weight_matrix


def _low_rank(rng, n, k, rank=4, noise=0.1, dtype=np.float64):
    X = rng.normal(size=(n, rank)) * np.array([5.0, 3.0, 2.0, 1.0])[:rank] @ rng.normal(size=(rank, k))
    return (X + noise * rng.normal(size=(n, k)) + 0.3 * rng.normal(size=k)).astype(dtype)


def _flip(U, Vt):
    """sklearn's svd_flip(u_based_decision=False), written out independently."""
    for i in range(Vt.shape[0]):
        j = int(np.argmax(np.abs(Vt[i])))
        if Vt[i, j] < 0:
            Vt[i] *= -1
            U[:, i] *= -1
    return U, Vt


@pytest.mark.parametrize("shape", [(12, 300), (7, 20000), (40, 9)])  # wide, wide over >1 block, tall
def test_pca_equals_exact_numpy_svd(shape):
    rng = np.random.default_rng(0)
    X = _low_rank(rng, *shape, rank=min(4, min(shape)))
    Xc = X - X.mean(axis=0)
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    U, Vt = _flip(U[:, :3], Vt[:3])
    d = pca(X, 3)
    np.testing.assert_allclose(d.singular_values, s[:3], rtol=1e-10)
    np.testing.assert_allclose(d.components, Vt, atol=1e-10)
    np.testing.assert_allclose(d.coords, U * s[:3], atol=1e-9 * s[0])
    np.testing.assert_allclose(d.explained_variance_ratio, s[:3] ** 2 / np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(d.explained_variance, s[:3] ** 2 / (shape[0] - 1), rtol=1e-10)
    np.testing.assert_allclose(d.mean, X.mean(axis=0), rtol=1e-12, atol=1e-15)


def test_pca_matches_sklearn_full_solver():
    rng = np.random.default_rng(1)
    X = _low_rank(rng, 20, 500)
    sk = PCA(4, svd_solver="full").fit(X)
    d = pca(X, 4)
    np.testing.assert_allclose(d.components, sk.components_, atol=1e-10)
    np.testing.assert_allclose(d.coords, sk.transform(X), atol=1e-9)
    np.testing.assert_allclose(d.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(d.explained_variance, sk.explained_variance_, rtol=1e-10)
    # float32 input: same numbers to float32 accuracy, computed in float64 internally.
    X32 = X.astype(np.float32)
    d32 = pca(X32, 4)
    np.testing.assert_allclose(d32.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-5)
    assert d32.coords.dtype == np.float64


def test_standardized_pca_matches_sklearn_pipeline_with_padding_columns():
    rng = np.random.default_rng(2)
    X = _low_rank(rng, 15, 400)
    X[:, -30:] = 0.0  # right-padding: constant columns keep scale 1 (sklearn's rule)
    X[:, 5] = 2.5  # a non-zero constant column
    Z = StandardScaler().fit_transform(X)
    sk = PCA(3, svd_solver="full").fit(Z)
    d = pca(X, 3, standardize=True)
    assert d.scale is not None and (d.scale[-30:] == 1.0).all() and d.scale[5] == 1.0
    np.testing.assert_allclose(d.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(d.components, sk.components_, atol=1e-10)
    np.testing.assert_allclose(d.coords, sk.transform(Z), atol=1e-9)


@pytest.mark.parametrize("shape", [(10, 250), (6, 20000), (30, 8)])
def test_truncated_svd_equals_numpy_and_sklearn(shape):
    rng = np.random.default_rng(3)
    X = _low_rank(rng, *shape, rank=min(4, min(shape)))
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    U, Vt = _flip(U[:, :3], Vt[:3])
    d = truncated_svd(X, 3)
    np.testing.assert_allclose(d.singular_values, s[:3], rtol=1e-10)
    np.testing.assert_allclose(d.components, Vt, atol=1e-10)
    np.testing.assert_allclose(d.coords, U * s[:3], atol=1e-9 * s[0])
    np.testing.assert_allclose(d.energy_ratio, s[:3] ** 2 / np.sum(X**2), rtol=1e-10)
    assert d.mean is None
    sk = TruncatedSVD(3, algorithm="arpack", tol=0.0).fit(X)
    np.testing.assert_allclose(d.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(d.explained_variance, sk.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(d.components, sk.components_, atol=1e-8)


def test_decomposition_input_errors():
    X = np.ones((4, 5))
    with pytest.raises(ValueError, match="n_components: expected an integer in \\[1, 4\\]"):
        pca(X, 5)
    with pytest.raises(ValueError, match="PCA needs at least 2 rows"):
        pca(X[:1], 1)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="W: contains NaN or ±inf; choose a policy"):
        truncated_svd(bad, 1)
    with pytest.raises(ValueError, match="W: expected a 2-D"):
        pca(np.ones(5), 1)
    with pytest.raises(ValueError, match="W: empty matrix"):
        pca(np.ones((3, 0)), 1)


@pytest.mark.parametrize("n_cols", [6, 3])  # Gram path (wide) and direct path (tall)
def test_rank_deficient_components_are_zero_not_garbage(n_cols):
    X = np.tile(np.arange(1.0, n_cols + 1), (5, 1)) * np.arange(1, 6)[:, None]  # rank 1, centred rank 1
    for d in (pca(X, 3), truncated_svd(X, 3)):
        assert d.explained_variance_ratio[0] == pytest.approx(1.0)
        assert np.all(d.components[1:] == 0) and np.all(d.coords[:, 1:] == 0) and np.all(d.singular_values[1:] == 0)


def test_coords_frame_and_component_correlation():
    rng = np.random.default_rng(4)
    X = _low_rank(rng, 8, 60)
    d = pca(X, 2)
    f = d.coords_frame([f"k{i}" for i in range(8)], prefix="pc")
    assert list(f.columns) == ["pc1", "pc2"] and f.index.name == "prompt_key"
    ph = X.mean(axis=1)
    r = component_correlation(d, ph, component=1)
    assert r.r == pytest.approx(np.corrcoef(d.coords[:, 0], ph)[0, 1], rel=1e-12) and r.n == 8
    with pytest.raises(ValueError, match="component"):
        component_correlation(d, ph, component=3)
    with pytest.raises(ValueError, match="values: length"):
        component_correlation(d, ph[:5])


def _angle_loop(X):
    n = X.shape[0]
    out = np.full((n, n), np.nan)
    for i in range(n):
        for j in range(n):
            a, b = X[i].astype(float), X[j].astype(float)
            na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
            if na < 1e-10 or nb < 1e-10:
                continue
            out[i, j] = 0.0 if i == j else math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b) / (na * nb)))))
    return out


def test_pairwise_angles_match_loop_and_handle_zero_rows():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(7, 40))
    X[3] = 0.0
    X[5] = -X[1]  # exactly opposite: 180°
    A = pairwise_angles(X)
    np.testing.assert_allclose(A, _angle_loop(X), atol=1e-9, equal_nan=True)
    assert A[1, 5] == pytest.approx(180.0) and np.isnan(A[3]).all() and np.isnan(A[:, 3]).all()
    np.testing.assert_allclose(A, A.T, equal_nan=True)


def test_angle_matrices_three_representations():
    rng = np.random.default_rng(6)
    X = _low_rank(rng, 9, 120)
    A = angle_matrices(X)
    np.testing.assert_allclose(A["raw"], _angle_loop(X), atol=1e-9)
    np.testing.assert_allclose(A["pca"], _angle_loop(PCA(2, svd_solver="full").fit_transform(X)), atol=1e-7)
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(A["svd"], _angle_loop(U[:, :2] * s[:2]), atol=1e-7)  # angles are sign-free


def _roles(n_neg, n_pos, n_neu):
    keys = [f"n{i}" for i in range(n_neg)] + [f"p{i}" for i in range(n_pos)] + [f"z{i}" for i in range(n_neu)]
    roles = {k: {"n": "negative", "p": "positive", "z": "neutral"}[k[0]] for k in keys}
    return keys, roles


def _group_loop(A, keys, roles, ordered):
    groups = {}
    for (i, ki), (j, kj) in itertools.product(enumerate(keys), repeat=2):
        if i == j or math.isnan(A[i, j]):
            continue
        ri, rj = roles[ki], roles[kj]
        if ri == rj and ri != "neutral":
            if ordered or i < j:
                groups.setdefault(f"within_{ri}", []).append(A[i, j])
        elif {ri, rj} == {"negative", "positive"} and ri == "negative":
            groups.setdefault("cross_trait", []).append(A[i, j])
        elif rj == "neutral" and ri != "neutral":
            groups.setdefault(f"{ri}_x_neutral", []).append(A[i, j])
    return groups


@pytest.mark.parametrize("ordered", [False, True])
def test_angle_group_stats_match_loop(ordered):
    rng = np.random.default_rng(7)
    keys, roles = _roles(5, 4, 3)
    X = rng.normal(size=(12, 30))
    X[2] = 0.0  # NaN angles are skipped
    A = pairwise_angles(X)
    t = angle_group_stats(A, keys, roles, ordered=ordered).set_index("pair_type")
    assert list(t.index) == list(PAIR_TYPES)
    ref = _group_loop(A, keys, roles, ordered)
    for pt in PAIR_TYPES:
        vals = ref[pt]
        m = sum(vals) / len(vals)
        assert t.loc[pt, "n"] == len(vals)
        assert t.loc[pt, "mean"] == pytest.approx(m, rel=1e-12)
        assert t.loc[pt, "std"] == pytest.approx(math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals)), rel=1e-10)
    assert t.loc["within_negative", "n"] == (4 * 3 if ordered else 6)  # 5 negatives, one degenerate
    assert t.loc["cross_trait", "n"] == 4 * 4


def test_angle_group_stats_errors_and_prompt_means():
    keys, roles = _roles(2, 2, 1)
    A = pairwise_angles(np.random.default_rng(8).normal(size=(5, 6)))
    with pytest.raises(ValueError, match="roles: no role for"):
        angle_group_stats(A, keys, {k: v for k, v in roles.items() if k != "z0"})
    with pytest.raises(ValueError, match="unknown role"):
        angle_group_stats(A, keys, {**roles, "z0": "metric"})
    with pytest.raises(ValueError, match="angles: expected a non-empty square"):
        angle_group_stats(A[:, :3], keys, roles)
    t = prompt_group_angles(A, keys, roles).set_index("prompt_key")
    assert t.loc["n0", "mean_angle_to_negative"] == pytest.approx(A[0, 1])  # itself excluded
    assert t.loc["z0", "mean_angle_to_positive"] == pytest.approx((A[4, 2] + A[4, 3]) / 2)


def test_streaming_keeps_float32_input_and_small_temporaries(monkeypatch):
    """The Gram path never materialises a float64 copy of the whole matrix."""
    seen = []
    real = geometry._block64

    def spy(X, sl, mean, scale):
        B = real(X, sl, mean, scale)
        seen.append(B.shape[1])
        return B

    monkeypatch.setattr(geometry, "_block64", spy)
    X = _low_rank(np.random.default_rng(9), 6, 3 * geometry.BLOCK_COLS + 5, dtype=np.float32)
    token_decompositions(X, 3)
    assert max(seen) <= geometry.BLOCK_COLS


# --- reference data --------------------------------------------------------------------------------


@pytest.mark.shared
def test_reference_gf_pca_exact_and_close_to_original_recipe(gf_w):
    """Exact = sklearn's full solver; the original's PCA(4, random_state=42) ran sklearn's randomized
    solver, which agrees on the ratios to ~1e-12 but is off by up to ~1e-5 on PC3/PC4 coordinates."""
    keys, W_fixed, W_mix, _ = gf_w
    for W in (W_fixed, W_mix):
        d = pca(W, 4)
        full = PCA(4, svd_solver="full").fit(W)
        np.testing.assert_allclose(d.explained_variance_ratio, full.explained_variance_ratio_, rtol=1e-10)
        np.testing.assert_allclose(d.coords, full.transform(W), atol=1e-9)
        original = PCA(4, random_state=42).fit(W)
        np.testing.assert_allclose(d.explained_variance_ratio, original.explained_variance_ratio_, rtol=1e-8)
        np.testing.assert_allclose(d.coords[:, :2], original.transform(W)[:, :2], atol=1e-6)
        np.testing.assert_allclose(d.coords, original.transform(W), atol=1e-4)
        ph = W.mean(axis=1)
        r = component_correlation(d, ph)
        assert r.r == pytest.approx(np.corrcoef(full.transform(W)[:, 0], ph)[0, 1], abs=1e-12)


@pytest.mark.shared
def test_reference_gf_angle_statistics_match_loop(gf_w, gf_roles):
    GF_ROLES = gf_roles
    keys, W_fixed, _, _ = gf_w
    assert set(keys) == set(GF_ROLES)
    A = angle_matrices(W_fixed)
    for name, mat in A.items():
        t = angle_group_stats(mat, keys, GF_ROLES).set_index("pair_type")
        ref = _group_loop(mat, keys, GF_ROLES, ordered=False)
        for pt in PAIR_TYPES:
            assert t.loc[pt, "n"] == len(ref[pt]), (name, pt)
            assert t.loc[pt, "mean"] == pytest.approx(np.mean(ref[pt]), rel=1e-12), (name, pt)
            assert t.loc[pt, "std"] == pytest.approx(np.std(ref[pt]), rel=1e-10), (name, pt)
    np.testing.assert_allclose(A["raw"], _angle_loop(W_fixed), atol=1e-9)


@pytest.mark.shared
def test_reference_token_matrix_and_decompositions(pf_tokens_debug):
    base = pf_tokens_debug["baseline"]["lp_train_default_tokens"]
    keys = list(pf_tokens_debug["prompts"])
    inoc = [pf_tokens_debug["prompts"][k]["lp_train_inoc_tokens"] for k in keys]
    W = token_weight_matrix(base, inoc)
    naive = np.array(
        [
            np.concatenate([np.subtract(i[: min(len(i), len(d))], d[: min(len(i), len(d))]) for i, d in zip(row, base)])
            for row in inoc
        ]
    )
    assert W.dtype == np.float32 and W.shape == naive.shape == (len(keys), sum(len(d) for d in base))
    np.testing.assert_allclose(W, naive, atol=1e-6)
    dec = token_decompositions(W, 3)
    Z = StandardScaler().fit_transform(W.astype(np.float64))
    sk = PCA(3, svd_solver="full").fit(Z)
    np.testing.assert_allclose(dec["pca"].explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(dec["pca"].coords, sk.transform(Z), atol=1e-7)
    sv = TruncatedSVD(3, algorithm="arpack", tol=0.0).fit(W.astype(np.float64))
    np.testing.assert_allclose(dec["svd"].explained_variance_ratio, sv.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(dec["svd"].coords), np.abs(sv.transform(W.astype(np.float64))), atol=1e-6)
