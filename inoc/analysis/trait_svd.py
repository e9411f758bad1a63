"""Trait-resolved TruncatedSVD coordinates (H3, H4: docs/methods.md#trait-svd): pure numpy.

For one trait: the W rows of the prompts of the trait's family and of the neutral family, an
uncentred TruncatedSVD, and each component's sign chosen so that the trait prompts lie above the
neutral ones on average (flip when mean(neutral) > mean(non-neutral)). H3 uses the point-wise
W_fixed and keeps ≥ 2 components; H4 the token-wise W_fixed with min(3, N − 1) components and adds
`tok_svd_zsum` = z(c1) + z(c2) + z(c3) with z over the prompts of the set (ddof 0, NaN skipped).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, check_keys
from inoc.analysis.geometry import truncated_svd


class TraitSVD(NamedTuple):
    keys: list[str]
    coords: np.ndarray  # (N, r) oriented coordinates
    explained_variance_ratio: np.ndarray  # (r,) sklearn TruncatedSVD's ratio


def oriented_trait_svd(W: ArrayLike, keys: Sequence[str], neutral: Sequence[bool], n_components: int) -> TraitSVD:
    """TruncatedSVD(n_components) of W (non-finite → 0), each component oriented away from the neutral prompts."""
    X = as_matrix(W, "W", finite=False).astype(np.float64)
    keys = check_keys(keys, X.shape[0])
    is_neutral = np.asarray(neutral, dtype=bool)
    if is_neutral.shape != (X.shape[0],):
        raise ValueError(f"neutral: expected {X.shape[0]} flags, got {is_neutral.shape}")
    if is_neutral.all() or not is_neutral.any():
        raise ValueError("neutral: the set needs both neutral and trait prompts to orient the components")
    X[~np.isfinite(X)] = 0.0
    dec = truncated_svd(X, n_components)
    coords = dec.coords.copy()
    for c in range(coords.shape[1]):
        if coords[is_neutral, c].mean() > coords[~is_neutral, c].mean():
            coords[:, c] = -coords[:, c]
    return TraitSVD(keys, coords, dec.explained_variance_ratio)


def zsum(coords: np.ndarray) -> np.ndarray:
    """Σ_c z(coords[:, c]) with z = (x − mean)/std, ddof 0, over the finite rows (`tok_svd_zsum`)."""
    with warnings.catch_warnings():  # an all-NaN component (fewer prompts than components) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        z = (coords - np.nanmean(coords, axis=0)) / np.nanstd(coords, axis=0)
    return z.sum(axis=1)
