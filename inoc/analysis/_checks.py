"""Shared helpers of the analysis modules: input validation (every error names the argument), exact mean."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike


def as_vector(values: ArrayLike, name: str, *, allow_nan: bool = True, allow_inf: bool = False) -> np.ndarray:
    """`values` as a non-empty 1-D float64 array (copied only when the dtype changes)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a 1-D array of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: empty array")
    if not allow_inf and np.isinf(arr).any():
        raise ValueError(f"{name}: contains ±inf (use NaN for a missing value)")
    if not allow_nan and np.isnan(arr).any():
        raise ValueError(f"{name}: contains NaN")
    return arr


def as_matrix(values: ArrayLike, name: str, *, finite: bool = True) -> np.ndarray:
    """A non-empty 2-D float array; float32 input stays float32 (token matrices are large)."""
    arr = np.asarray(values)
    if arr.dtype not in (np.float32, np.float64):
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: expected a 2-D array of numbers ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (prompts × columns), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: empty matrix of shape {arr.shape}")
    if finite and not _all_finite(arr):
        raise ValueError(
            f"{name}: contains NaN or ±inf; choose a policy first "
            "(inoc.analysis.matrices.clean_nonfinite: 'zero' or 'drop_columns')"
        )
    return arr


def _all_finite(arr: np.ndarray, block: int = 65536) -> bool:
    # Column blocks: np.isfinite on the whole token matrix would allocate a 17 MB bool temporary.
    for start in range(0, arr.shape[1], block):
        if not np.isfinite(arr[:, start : start + block]).all():
            return False
    return True


def check_keys(keys: Sequence[str], n: int, name: str = "keys") -> list[str]:
    keys = [str(k) for k in keys]
    if len(keys) != n:
        raise ValueError(f"{name}: expected {n} keys (one per matrix row), got {len(keys)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name}: duplicate keys")
    return keys


def same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b}: lengths differ ({a.shape[0]} vs {b.shape[0]}); values must be paired")


def exact_mean(values: np.ndarray) -> float:
    """Correctly rounded mean (math.fsum): the stored aggregates of the reference files (score means,
    PH, PPD) equal it bit for bit, while np.mean's pairwise sum is off by an ulp in ~1/3 of them."""
    return math.fsum(values.tolist()) / values.size if values.size else math.nan
