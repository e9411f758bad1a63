"""Outcome statistics (docs/methods.md#run-score, #suppression, #gap): run scores with CIs, paired suppression, gaps.

Judge scores are 0-100 with NaN for a failed judgement; NaN is excluded, never treated as a value.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from inoc.analysis._checks import as_vector, exact_mean, same_length

#: Normal multiplier of the plotted score CIs (docs/methods.md#run-score: mean ± 1.96·SE), kept as the original had it
#: rather than a t quantile so plotted bands match the published figures.
Z_95 = 1.96


class ScoreSummary(NamedTuple):
    """Mean judge score of one (run, step, condition, trait) with its 95% CI."""

    n: int  # non-NaN values used
    n_nan: int  # NaN values excluded (failed judgements)
    mean: float
    ci_lo: float  # NaN when n < 2: one value has no spread estimate (never a zero-width CI)
    ci_hi: float


class PairedDifference(NamedTuple):
    """mean(a_i − b_i) over the items where both a_i and b_i are non-NaN, with a Student-t CI."""

    n: int  # valid pairs
    mean: float
    se: float  # std(d, ddof=1)/√n
    ci_lo: float  # NaN when n < 2
    ci_hi: float
    mean_a: float  # nan-mean of all of `a` (not only the paired items), as the original's no_inoc_score
    mean_b: float  # nan-mean of all of `b` (inoc_score)


class GapEstimate(NamedTuple):
    """Suppression gap S_fixed − S_mix with a combined CI half-width √(h_fixed² + h_mix²)."""

    gap: float
    ci_lo: float
    ci_hi: float


def score_summary(values: ArrayLike, *, z: float = Z_95) -> ScoreSummary:
    """Run score: mean over non-NaN values with CI = mean ± z·std(ddof=1)/√n (docs/methods.md#run-score).

    The mean is correctly rounded (math.fsum), which reproduces the reference files' stored means exactly.
    """
    v = as_vector(values, "values")
    valid = v[~np.isnan(v)]
    n = int(valid.size)
    mean = exact_mean(valid)
    if n >= 2:
        half = z * float(valid.std(ddof=1)) / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = math.nan
    return ScoreSummary(n=n, n_nan=int(v.size - n), mean=mean, ci_lo=lo, ci_hi=hi)


def paired_difference(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> PairedDifference:
    """Paired a − b over items (eval instructions) where both are non-NaN; t-based CI with n−1 dof."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    av, bv = as_vector(a, "a"), as_vector(b, "b")
    same_length(av, bv, "a", "b")
    both = ~np.isnan(av) & ~np.isnan(bv)
    d = av[both] - bv[both]
    n = int(d.size)
    mean_a = exact_mean(av[~np.isnan(av)])
    mean_b = exact_mean(bv[~np.isnan(bv)])
    if n == 0:
        return PairedDifference(0, math.nan, math.nan, math.nan, math.nan, mean_a, mean_b)
    mean = exact_mean(d)
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, mean_a, mean_b)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    return PairedDifference(n, mean, se, mean - half, mean + half, mean_a, mean_b)


def suppression(control: ArrayLike, run: ArrayLike, *, confidence: float = 0.95) -> PairedDifference:
    """Trait suppression = control's final default score − run's, paired per instruction (docs/methods.md#suppression).

    Pass the other trait's scores to get cross-trait suppression.
    """
    return paired_difference(control, run, confidence=confidence)


def score_gap(fixed: ArrayLike, mix: ArrayLike, *, confidence: float = 0.95) -> PairedDifference:
    """Gap (docs/methods.md#gap) = fixed run's default score − mix run's, paired per instruction.

    Both runs are evaluated on the same instructions, so pairing is valid; with no NaN it equals the
    difference of the stored means that the original's fixed-vs-mix figure used (its Row 1).
    """
    return paired_difference(fixed, mix, confidence=confidence)


def suppression_gap(fixed: PairedDifference, mix: PairedDifference) -> GapEstimate:
    """Slides/heuristic-table gap (docs/methods.md#gap) = S_fixed − S_mix, positive ⇒ fixed suppresses more.

    Note the sign: S_fixed − S_mix = mix score − fixed score, the opposite of `score_gap`. The CI
    half-width combines the two suppression half-widths in quadrature, as the original did.
    """
    gap = fixed.mean - mix.mean
    h = math.sqrt(((fixed.ci_hi - fixed.ci_lo) / 2.0) ** 2 + ((mix.ci_hi - mix.ci_lo) / 2.0) ** 2)
    return GapEstimate(gap=gap, ci_lo=gap - h, ci_hi=gap + h)
