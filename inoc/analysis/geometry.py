"""Geometry of the prompt weight matrices (docs/methods.md#pca-svd, #angles).

PCA (mean-centred, optionally StandardScaler'd) and TruncatedSVD (uncentred) with sklearn's
semantics — `components_`, `fit_transform` coordinates, `explained_variance_ratio_` and the
deterministic sign flip (each component's largest-magnitude loading positive) — computed *exactly*.

Why not call sklearn directly: for these shapes (48 × 1000, 48 × ~352,000) sklearn's "auto" solver is
randomized (approximate), and its "full" solver works in the input's float32. W has few rows, so the
exact thin SVD comes cheaply from the N × N Gram matrix, accumulated in float64 over column blocks:
no float64 copy of the whole token matrix is ever made (temporary memory ~ N × 8192 × 8 bytes), and
the result equals an exact float64 SVD to ~1e-12 for the leading components (tests check it against
numpy's SVD and sklearn's full solver).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, as_vector, check_keys
from inoc.analysis.performance import PearsonResult, pearson

#: Columns per float64 block when streaming over a wide matrix (bounds temporary memory).
BLOCK_COLS = 8192
#: Components with s ≤ NULL_RTOL·s₁ are returned as zero (axis, coordinates, s). The Gram path
#: resolves s only down to ~√eps·s₁ ≈ 1.5e-8·s₁, so below this a direction would be rounding noise;
#: such a component explains < 1e-14 of the variance.
NULL_RTOL = 1e-7

ROLES = ("negative", "positive", "neutral")
PAIR_TYPES = ("within_negative", "within_positive", "cross_trait", "negative_x_neutral", "positive_x_neutral")


@dataclass(frozen=True)
class Decomposition:
    """One fitted decomposition of an N × K matrix (rows = prompts). Arrays are float64."""

    method: str  # "pca" | "pca_standardized" | "truncated_svd"
    components: np.ndarray  # (r, K) principal axes, sklearn `components_`
    coords: np.ndarray  # (N, r) per-prompt coordinates, sklearn `fit_transform`
    singular_values: np.ndarray  # (r,)
    explained_variance: np.ndarray  # (r,) sklearn `explained_variance_`
    explained_variance_ratio: np.ndarray  # (r,) sklearn `explained_variance_ratio_` (not ordered for SVD)
    energy_ratio: np.ndarray  # (r,) s² / ‖decomposed matrix‖²_F (the angle script's SVD labels)
    mean: np.ndarray | None  # (K,) column mean removed before the SVD; None for TruncatedSVD
    scale: np.ndarray | None  # (K,) StandardScaler scale (constant columns → 1); None unless standardized

    def coords_frame(self, keys: Sequence[str], prefix: str = "pc") -> pd.DataFrame:
        """Per-prompt coordinates as a DataFrame indexed by prompt key, columns `{prefix}1..{prefix}r`."""
        keys = check_keys(keys, self.coords.shape[0])
        cols = [f"{prefix}{i + 1}" for i in range(self.coords.shape[1])]
        return pd.DataFrame(self.coords, index=pd.Index(keys, name="prompt_key"), columns=cols)


def _blocks(n_cols: int, block: int = BLOCK_COLS) -> Iterator[slice]:
    for start in range(0, n_cols, block):
        yield slice(start, min(start + block, n_cols))


def _block64(X: np.ndarray, sl: slice, mean: np.ndarray | None, scale: np.ndarray | None) -> np.ndarray:
    B = X[:, sl].astype(np.float64)  # always a fresh float64 block, safe to modify in place
    if mean is not None:
        B -= mean[sl]
    if scale is not None:
        B /= scale[sl]
    return B


def _column_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and variance (ddof=0) in float64, two-pass per block."""
    mean = np.empty(X.shape[1])
    var = np.empty(X.shape[1])
    for sl in _blocks(X.shape[1]):
        B = X[:, sl].astype(np.float64)
        mean[sl] = B.mean(axis=0)
        var[sl] = B.var(axis=0)
    return mean, var


def _standard_scale(X: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    # sklearn StandardScaler: near-constant columns (by the Chan-Golub-LeVeque bound it uses) get
    # scale 1 so they stay 0 after centring instead of exploding; right-padded zero columns hit this.
    n = X.shape[0]
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return scale


def _gram(X: np.ndarray, mean: np.ndarray | None = None, scale: np.ndarray | None = None) -> np.ndarray:
    """Z Zᵀ (N × N, float64) for Z = (X − mean)/scale, streamed over column blocks."""
    G = np.zeros((X.shape[0], X.shape[0]))
    for sl in _blocks(X.shape[1]):
        B = _block64(X, sl, mean, scale)
        G += B @ B.T
    return (G + G.T) / 2.0  # exact symmetry for eigh


def _thin_svd(
    X: np.ndarray, r: int, mean: np.ndarray | None, scale: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Top-r exact SVD of Z = (X − mean)/scale: U (N × r), s (r), V (r × K) and ‖Z‖²_F, sklearn-signed."""
    N, K = X.shape
    if N <= K:
        # Wide (the usual case): eigen-decompose the N × N Gram matrix, then V = Uᵀ Z / s.
        G = _gram(X, mean, scale)
        total_ss = float(np.trace(G))
        evals, evecs = np.linalg.eigh(G)
        order = np.argsort(evals)[::-1][:r]
        s = np.sqrt(np.clip(evals[order], 0.0, None))
        U = evecs[:, order]
        tiny = s <= s[0] * NULL_RTOL if s[0] > 0 else np.ones(r, dtype=bool)
        inv = np.where(tiny, 0.0, 1.0 / np.where(tiny, 1.0, s))
        V = np.empty((r, K))
        for sl in _blocks(K):
            V[:, sl] = (U.T @ _block64(X, sl, mean, scale)) * inv[:, None]
    else:
        # Tall: at most K columns, so a float64 copy is small; LAPACK's thin SVD is exact.
        Z = X.astype(np.float64)
        if mean is not None:
            Z -= mean
        if scale is not None:
            Z /= scale
        total_ss = float(np.sum(Z * Z))
        Uf, sf, Vt = np.linalg.svd(Z, full_matrices=False)
        U, s, V = Uf[:, :r].copy(), sf[:r].copy(), Vt[:r].copy()
        tiny = s <= s[0] * NULL_RTOL if s[0] > 0 else np.ones(r, dtype=bool)
    # Null directions have no well-defined axis (any orthonormal completion is as good): zero them.
    U[:, tiny] = 0.0
    V[tiny] = 0.0
    s = np.where(tiny, 0.0, s)
    # sklearn's svd_flip(u_based_decision=False): largest-|loading| of each component positive.
    signs = np.sign(V[np.arange(r), np.argmax(np.abs(V), axis=1)])
    signs[signs == 0] = 1.0
    return U * signs, s, V * signs[:, None], total_ss


def _check_r(n_components: int, shape: tuple[int, int]) -> int:
    if not isinstance(n_components, (int, np.integer)) or not 1 <= n_components <= min(shape):
        raise ValueError(
            f"n_components: expected an integer in [1, {min(shape)}] for a {shape} matrix, got {n_components!r}"
        )
    return int(n_components)


def pca(W: ArrayLike, n_components: int, *, standardize: bool = False) -> Decomposition:
    """PCA of W (rows = prompts) = sklearn `PCA(n_components)` fitted on W, computed exactly.

    `standardize=True` first applies sklearn's `StandardScaler` (the token-level recipe). The
    explained-variance ratio is s²/‖centred W‖²_F, sklearn's definition.
    """
    X = as_matrix(W, "W")
    if X.shape[0] < 2:
        raise ValueError(f"W: PCA needs at least 2 rows (prompts), got {X.shape[0]}")
    r = _check_r(n_components, X.shape)
    mean, var = _column_moments(X)
    scale = _standard_scale(X, mean, var) if standardize else None
    U, s, V, total_ss = _thin_svd(X, r, mean, scale)
    N = X.shape[0]
    ratio = s**2 / total_ss if total_ss > 0 else np.full(r, np.nan)
    return Decomposition(
        method="pca_standardized" if standardize else "pca",
        components=V,
        coords=U * s,
        singular_values=s,
        explained_variance=s**2 / (N - 1),
        explained_variance_ratio=ratio,
        energy_ratio=ratio.copy(),
        mean=mean,
        scale=scale,
    )


def truncated_svd(W: ArrayLike, n_components: int) -> Decomposition:
    """TruncatedSVD of W (no centring) = sklearn `TruncatedSVD(n_components)`, computed exactly.

    sklearn's `explained_variance_ratio_` for it is var(coordinates)/Σ column variances (both ddof=0):
    not ordered and not the energy share; `energy_ratio` holds s²/‖W‖²_F.
    """
    X = as_matrix(W, "W")
    r = _check_r(n_components, X.shape)
    U, s, V, total_ss = _thin_svd(X, r, None, None)
    coords = U * s
    _, col_var = _column_moments(X)
    full_var = float(col_var.sum())
    exp_var = coords.var(axis=0)
    return Decomposition(
        method="truncated_svd",
        components=V,
        coords=coords,
        singular_values=s,
        explained_variance=exp_var,
        explained_variance_ratio=exp_var / full_var if full_var > 0 else np.full(r, np.nan),
        energy_ratio=s**2 / total_ss if total_ss > 0 else np.full(r, np.nan),
        mean=None,
        scale=None,
    )


def token_decompositions(W_tokens: ArrayLike, n_components: int = 3) -> dict[str, Decomposition]:
    """Token-level recipe (docs/methods.md#pca-svd).

    "pca": StandardScaler then PCA(n_components); "svd": TruncatedSVD(n_components) on the unscaled W.
    """
    X = as_matrix(W_tokens, "W_tokens")
    return {"pca": pca(X, n_components, standardize=True), "svd": truncated_svd(X, n_components)}


def component_correlation(decomposition: Decomposition, values: ArrayLike, component: int = 1) -> PearsonResult:
    """Pearson r between the coordinates on component `component` (1-based: 1 = PC1) and `values`.

    E.g. r(PC1, PH) with `values` = the per-prompt PH in the same row order as the decomposed W.
    """
    r = decomposition.coords.shape[1]
    if not isinstance(component, (int, np.integer)) or not 1 <= component <= r:
        raise ValueError(f"component: expected an integer in [1, {r}], got {component!r}")
    v = as_vector(values, "values")
    if v.size != decomposition.coords.shape[0]:
        raise ValueError(f"values: length {v.size} != number of decomposed rows {decomposition.coords.shape[0]}")
    return pearson(decomposition.coords[:, component - 1], v)


def pairwise_angles(X: ArrayLike, *, min_norm: float = 1e-10) -> np.ndarray:
    """N × N angles in degrees, arccos(clip(cos(x_i, x_j), −1, 1)), between the rows of X.

    Rows with norm < `min_norm` have no direction: their angles are NaN. Diagonal = 0.
    """
    A = as_matrix(X, "X")
    G = _gram(A)
    norms = np.sqrt(np.diag(G))
    degenerate = norms < min_norm
    safe = np.where(degenerate, 1.0, norms)
    cos = np.clip(G / safe[:, None] / safe[None, :], -1.0, 1.0)
    angles = np.degrees(np.arccos(cos))
    np.fill_diagonal(angles, 0.0)  # arccos of a rounded 1.0 would give ~1e-6°, not the exact 0
    angles[degenerate, :] = np.nan
    angles[:, degenerate] = np.nan
    return angles


def angle_matrices(W: ArrayLike, n_components: int = 2) -> dict[str, np.ndarray]:
    """Pairwise angles in the three representations of docs/methods.md#angles.

    "raw": rows of W; "pca": PCA top-`n_components` coordinates (centred); "svd": TruncatedSVD
    top-`n_components` coordinates (uncentred).
    """
    X = as_matrix(W, "W")
    return {
        "raw": pairwise_angles(X),
        "pca": pairwise_angles(pca(X, n_components).coords),
        "svd": pairwise_angles(truncated_svd(X, n_components).coords),
    }


def _role_array(keys: Sequence[str], roles: Mapping[str, str], n: int) -> np.ndarray:
    keys = check_keys(keys, n)
    missing = [k for k in keys if k not in roles]
    if missing:
        raise ValueError(f"roles: no role for {missing[:5]}{' …' if len(missing) > 5 else ''}")
    bad = sorted({roles[k] for k in keys} - set(ROLES))
    if bad:
        raise ValueError(f"roles: unknown role(s) {bad}; expected one of {ROLES}")
    return np.array([roles[k] for k in keys])


def _square(angles: ArrayLike) -> np.ndarray:
    A = np.asarray(angles, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        raise ValueError(f"angles: expected a non-empty square matrix, got shape {A.shape}")
    return A


def angle_group_stats(
    angles: ArrayLike, keys: Sequence[str], roles: Mapping[str, str], *, ordered: bool = False
) -> pd.DataFrame:
    """Angle statistics per pair type: mean, population std (ddof=0) and pair count n.

    Pair types: within_negative / within_positive (pairs of distinct prompts of that role),
    cross_trait (negative × positive), negative_x_neutral, positive_x_neutral. Pairs with a NaN angle
    are left out. Within-role pairs are unordered by default (docs/methods.md#angles); `ordered=True` counts both
    directions as the original's JSON did — each angle then appears twice, so mean and std are the
    same and only n doubles.
    """
    A = _square(angles)
    role = _role_array(keys, roles, A.shape[0])
    idx = {r: np.flatnonzero(role == r) for r in ROLES}
    rows = []
    for pair_type, (ra, rb) in zip(
        PAIR_TYPES,
        [
            ("negative", "negative"),
            ("positive", "positive"),
            ("negative", "positive"),
            ("negative", "neutral"),
            ("positive", "neutral"),
        ],
    ):
        ia, ib = idx[ra], idx[rb]
        if ra == rb:
            iu, ju = np.triu_indices(ia.size, k=1)
            vals = A[ia[iu], ia[ju]]
            if ordered:
                vals = np.concatenate([vals, A[ia[ju], ia[iu]]])
        else:
            vals = A[np.ix_(ia, ib)].ravel()
        vals = vals[~np.isnan(vals)]
        rows.append(
            {
                "pair_type": pair_type,
                "mean": float(vals.mean()) if vals.size else np.nan,
                "std": float(vals.std(ddof=0)) if vals.size else np.nan,
                "n": int(vals.size),
            }
        )
    return pd.DataFrame(rows, columns=["pair_type", "mean", "std", "n"])


def prompt_group_angles(angles: ArrayLike, keys: Sequence[str], roles: Mapping[str, str]) -> pd.DataFrame:
    """Per prompt: mean angle to all negative-role and to all positive-role prompts, itself excluded."""
    A = _square(angles)
    role = _role_array(keys, roles, A.shape[0])
    out = []
    for i, key in enumerate(check_keys(keys, A.shape[0])):
        rec = {"prompt_key": key, "role": role[i]}
        for target in ("negative", "positive"):
            cols = np.flatnonzero((role == target) & (np.arange(role.size) != i))
            vals = A[i, cols]
            vals = vals[~np.isnan(vals)]
            rec[f"mean_angle_to_{target}"] = float(vals.mean()) if vals.size else np.nan
        out.append(rec)
    return pd.DataFrame(out, columns=["prompt_key", "role", "mean_angle_to_negative", "mean_angle_to_positive"])
