"""inoc.analysis.sigmoid: logistic fit, bootstrap band, R², F-tests, OLS band."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from inoc.analysis import sigmoid
from inoc.analysis.sigmoid import fit_sigmoid, linear_fit, logistic4


def _data(seed=0, n=60, noise=3.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    y = 100 * logistic4(x, 5.0, 0.5, 0.1, 0.8) + rng.normal(0, noise, n)
    return x, y


def test_fit_recovers_parameters_and_statistics():
    x, y = _data()
    fit = fit_sigmoid(x, y, n_boot=1000)
    assert fit.method == "logistic4" and fit.n == 60 and fit.n_boot == 1000
    assert (
        fit.a == pytest.approx(5.0, rel=0.3)
        and fit.c == pytest.approx(0.1, abs=0.05)
        and fit.d == pytest.approx(0.8, abs=0.05)
    )
    # Independent recomputation of R² and both F-tests from the fitted curve and an OLS fit.
    ys = y / 100
    ss_res = np.sum((ys - logistic4(x, fit.a, fit.b, fit.c, fit.d)) ** 2)
    ss_tot = np.sum((ys - ys.mean()) ** 2)
    assert fit.r2 == pytest.approx(1 - ss_res / ss_tot, rel=1e-10)
    f_mean = ((ss_tot - ss_res) / 3) / (ss_res / 56)
    assert fit.f_vs_mean == pytest.approx(f_mean, rel=1e-10)
    assert fit.p_vs_mean == pytest.approx(stats.f.sf(f_mean, 3, 56), rel=1e-8)
    slope, icpt = np.polyfit(x, ys, 1)
    ss_lin = np.sum((ys - (slope * x + icpt)) ** 2)
    assert fit.f_vs_linear == pytest.approx(((ss_lin - ss_res) / 2) / (ss_res / 56), rel=1e-8)
    assert fit.p_vs_linear < 0.01  # clearly sigmoidal data beats the line
    # The band brackets the curve and is seeded (reproducible), in y units.
    assert fit.n_boot_ok > 900
    assert np.all(fit.band_lo <= fit.curve + 1e-9) and np.all(fit.curve <= fit.band_hi + 1e-9)
    again = fit_sigmoid(x, y, n_boot=50, seed=0)
    other = fit_sigmoid(x, y, n_boot=50, seed=1)
    np.testing.assert_array_equal(again.band_lo, fit_sigmoid(x, y, n_boot=50, seed=0).band_lo)
    assert not np.array_equal(again.band_lo, other.band_lo)
    np.testing.assert_allclose(fit.predict(fit.grid), fit.curve)


def test_nan_pairs_dropped_and_input_errors():
    x, y = _data(n=30)
    x[0], y[1] = np.nan, np.nan
    assert fit_sigmoid(x, y, n_boot=0).n == 28
    with pytest.raises(ValueError, match="need at least 5"):
        fit_sigmoid([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="x: constant"):
        fit_sigmoid(np.ones(10), np.arange(10.0))
    with pytest.raises(ValueError, match="x and y: lengths differ"):
        fit_sigmoid(np.arange(10.0), np.arange(9.0))
    with pytest.raises(ValueError, match="y_scale"):
        fit_sigmoid(x, y, y_scale=0)


def test_too_few_bootstrap_refits_gives_nan_band():
    x, y = _data(n=20)
    fit = fit_sigmoid(x, y, n_boot=5)
    assert fit.n_boot_ok <= 5 and np.isnan(fit.band_lo).all() and np.isfinite(fit.curve).all()


def test_failed_fit_falls_back_to_ols(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found")

    monkeypatch.setattr(sigmoid, "_curve_fit", fail)
    x, y = _data()
    fit = fit_sigmoid(x, y)
    assert fit.method == "linear" and math.isnan(fit.a) and math.isnan(fit.f_vs_mean)
    np.testing.assert_array_equal(fit.curve, fit.linear.curve)
    assert fit.r2 == pytest.approx(fit.linear.r2)


def test_linear_fit_band_matches_textbook():
    x, y = _data(seed=3, n=25, noise=10.0)
    g = np.array([-0.5, 0.0, 0.7])
    lf = linear_fit(x, y, grid=g)
    res = stats.linregress(x, y)
    n = 25
    s = math.sqrt(np.sum((y - (res.intercept + res.slope * x)) ** 2) / (n - 2))
    half = stats.t.ppf(0.975, n - 2) * s * np.sqrt(1 / n + (g - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    np.testing.assert_allclose(lf.curve, res.intercept + res.slope * g)
    np.testing.assert_allclose(lf.band_hi - lf.curve, half, rtol=1e-10)
    assert lf.r == pytest.approx(res.rvalue) and lf.p == pytest.approx(res.pvalue) and lf.n == n
