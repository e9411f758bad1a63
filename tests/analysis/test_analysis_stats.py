"""inoc.analysis.stats against independent computations and the reference score file."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from inoc.analysis.stats import paired_difference, score_gap, score_summary, suppression, suppression_gap


def _with_nans(rng, n, frac):
    v = rng.uniform(0, 100, n)
    v[rng.random(n) < frac] = np.nan
    return v


def test_score_summary_matches_textbook_formula():
    rng = np.random.default_rng(0)
    v = _with_nans(rng, 200, 0.05)
    valid = [x for x in v if not math.isnan(x)]
    n = len(valid)
    mean = sum(valid) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in valid) / (n - 1))
    s = score_summary(v)
    assert (s.n, s.n_nan) == (n, 200 - n)
    assert s.mean == pytest.approx(mean, rel=1e-14)
    assert s.ci_lo == pytest.approx(mean - 1.96 * sd / math.sqrt(n), rel=1e-12)
    assert s.ci_hi == pytest.approx(mean + 1.96 * sd / math.sqrt(n), rel=1e-12)


def test_score_summary_small_n_gives_nan_ci_not_zero():
    one = score_summary([np.nan, 42.0, np.nan])
    assert (one.n, one.n_nan, one.mean) == (1, 2, 42.0)
    assert math.isnan(one.ci_lo) and math.isnan(one.ci_hi)
    none = score_summary([np.nan, np.nan])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.ci_lo)
    # Two equal values: a real (zero-width) interval, since std is defined.
    two = score_summary([5.0, 5.0])
    assert two.ci_lo == two.ci_hi == 5.0


@pytest.mark.parametrize(
    "bad, match",
    [([], "values: empty"), ([[1.0, 2.0]], "values: expected a 1-D"), ([1.0, np.inf], "values: contains ±inf")],
)
def test_score_summary_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        score_summary(bad)


def test_paired_difference_matches_scipy_paired_t():
    rng = np.random.default_rng(1)
    a, b = _with_nans(rng, 200, 0.05), _with_nans(rng, 200, 0.05)
    both = ~np.isnan(a) & ~np.isnan(b)
    ref = sps.ttest_rel(a[both], b[both])
    ci = ref.confidence_interval(0.95)
    res = paired_difference(a, b)
    assert res.n == both.sum()
    assert res.mean == pytest.approx(np.mean(a[both] - b[both]), rel=1e-13)
    assert (res.ci_lo, res.ci_hi) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # Means of each side use all their own non-NaN values, not only the paired items.
    assert res.mean_a == pytest.approx(np.nanmean(a), rel=1e-14)
    assert res.mean_b == pytest.approx(np.nanmean(b), rel=1e-14)
    assert res.mean_a - res.mean_b != pytest.approx(res.mean, rel=1e-9)  # they differ when NaNs are unpaired


def test_paired_difference_edge_cases():
    r = paired_difference([1.0, np.nan, 3.0], [0.5, 2.0, np.nan])
    assert r.n == 1 and r.mean == 0.5 and math.isnan(r.ci_lo)
    r0 = paired_difference([np.nan, 1.0], [1.0, np.nan])
    assert r0.n == 0 and math.isnan(r0.mean)
    with pytest.raises(ValueError, match="a and b: lengths differ"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [1.0, 2.0], confidence=95)


def test_suppression_and_gap_signs():
    rng = np.random.default_rng(2)
    control, fixed, mix = rng.uniform(60, 90, 50), rng.uniform(0, 20, 50), rng.uniform(20, 60, 50)
    s_fixed, s_mix = suppression(control, fixed), suppression(control, mix)
    assert s_fixed.mean == pytest.approx(np.mean(control - fixed))
    # score gap (SPEC §11) is fixed − mix; the suppression gap (slides) is S_fixed − S_mix = mix − fixed.
    assert score_gap(fixed, mix).mean == pytest.approx(np.mean(fixed - mix))
    g = suppression_gap(s_fixed, s_mix)
    assert g.gap == pytest.approx(np.mean(mix - fixed))
    h = math.hypot((s_fixed.ci_hi - s_fixed.ci_lo) / 2, (s_mix.ci_hi - s_mix.ci_lo) / 2)
    assert (g.ci_lo, g.ci_hi) == pytest.approx((g.gap - h, g.gap + h))


@pytest.mark.shared
def test_reference_score_means_and_nan_counts(gf_scores):
    """Every stored (run, step, condition, trait) `mean` is reproduced exactly, NaN excluded."""
    checked = with_nan = 0
    for run, spec in gf_scores.items():
        for step, conds in spec["steps"].items():
            for cond, traits in conds.items():
                for trait, entry in traits.items():
                    s = score_summary(entry["values"])
                    where = f"{run}/{step}/{cond}/{trait}"
                    assert s.mean == entry["mean"], where  # bit for bit: both are correctly rounded
                    if "n_nan" in entry:
                        assert s.n_nan == entry["n_nan"], where
                    assert s.n + s.n_nan == len(entry["values"])
                    with_nan += s.n_nan > 0
                    checked += 1
    assert checked > 100 and with_nan > 0


@pytest.mark.shared
def test_reference_suppression_equals_difference_of_means_without_nans(gf_scores):
    control = gf_scores["no_inoculation"]["steps"]["313"]["default"]
    run = gf_scores["answer_german"]["steps"]["313"]["default"]
    for trait in control:
        c, r = np.array(control[trait]["values"], float), np.array(run[trait]["values"], float)
        s = suppression(c, r)
        if not (np.isnan(c).any() or np.isnan(r).any()):
            assert s.mean == pytest.approx(control[trait]["mean"] - run[trait]["mean"], abs=1e-12)
        assert s.ci_lo < s.mean < s.ci_hi
