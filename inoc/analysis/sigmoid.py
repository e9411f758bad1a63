"""Curve fits for heuristic-vs-suppression panels (docs/methods.md#sigmoid-fits).

4-parameter logistic f(x) = c + (d − c)/(1 + exp(−(a·x + b))) fitted to y/y_scale (suppression in pp
→ fraction), with a bootstrap 95% band, nonlinear R² and F-tests; and the OLS line with its t-based
mean-response band, used as the comparison model and as the fallback when the logistic fit fails.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from scipy import stats as sps

from inoc.analysis._checks import as_vector, same_length

#: Bounds on (a, b, c, d) in units of y/y_scale: a, b free; lower plateau c ∈ [−0.2, 1]; upper d ∈ [0, 1.2].
BOUNDS = ([-np.inf, -np.inf, -0.2, 0.0], [np.inf, np.inf, 1.0, 1.2])


def logistic4(x: ArrayLike, a: float, b: float, c: float, d: float) -> np.ndarray:
    """c + (d − c)/(1 + exp(−clip(a·x + b, −500, 500))); the clip avoids overflow far from the midpoint."""
    z = np.clip(a * np.asarray(x, dtype=np.float64) + b, -500.0, 500.0)
    return c + (d - c) / (1.0 + np.exp(-z))


def _logistic4_jac(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    # Analytic Jacobian: ~3× fewer function calls per fit, which matters for 1000 bootstrap refits.
    raw = a * x + b
    z = np.clip(raw, -500.0, 500.0)
    s = 1.0 / (1.0 + np.exp(-z))
    ds = np.where((raw > -500.0) & (raw < 500.0), s * (1.0 - s), 0.0)
    return np.column_stack([(d - c) * ds * x, (d - c) * ds, 1.0 - s, s])


@dataclass(frozen=True)
class LinearFit:
    """OLS y = slope·x + intercept with a t-based mean-response band on `grid` (y units)."""

    slope: float
    intercept: float
    r: float
    r2: float
    p: float  # two-sided p of the slope (= of r)
    n: int
    ss_res: float
    grid: np.ndarray
    curve: np.ndarray
    band_lo: np.ndarray
    band_hi: np.ndarray


@dataclass(frozen=True)
class SigmoidFit:
    """Result of `fit_sigmoid`. Curves and band are in y units (multiplied back by y_scale)."""

    method: str  # "logistic4", or "linear" when the logistic fit failed (then params/F are NaN)
    a: float
    b: float
    c: float  # lower plateau, fraction of y_scale
    d: float  # upper plateau, fraction of y_scale
    n: int
    r2: float  # nonlinear R² = 1 − SS_res/SS_tot
    f_vs_mean: float  # ((SS_tot − SS_res)/3)/(SS_res/(n − 4)): the original's F-test (vs the mean-only model)
    p_vs_mean: float
    f_vs_linear: float  # ((SS_lin − SS_res)/2)/(SS_res/(n − 4)): extra-sum-of-squares F vs the OLS line
    p_vs_linear: float
    linear: LinearFit
    grid: np.ndarray
    curve: np.ndarray
    band_lo: np.ndarray  # NaN when fewer than `min_boot_ok` bootstrap refits succeeded
    band_hi: np.ndarray
    n_boot: int
    n_boot_ok: int
    y_scale: float

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Fitted curve at x, in y units."""
        if self.method == "logistic4":
            return self.y_scale * logistic4(x, self.a, self.b, self.c, self.d)
        return self.linear.slope * np.asarray(x, dtype=np.float64) + self.linear.intercept


def _xy(x: ArrayLike, y: ArrayLike, min_n: int) -> tuple[np.ndarray, np.ndarray]:
    xv = as_vector(x, "x", allow_inf=True)
    yv = as_vector(y, "y", allow_inf=True)
    same_length(xv, yv, "x", "y")
    ok = np.isfinite(xv) & np.isfinite(yv)
    xv, yv = xv[ok], yv[ok]
    if xv.size < min_n:
        raise ValueError(f"x, y: {xv.size} finite pairs, need at least {min_n}")
    if np.ptp(xv) == 0:
        raise ValueError("x: constant; no curve can be fitted")
    return xv, yv


def _grid(x: np.ndarray, grid: ArrayLike | None, grid_size: int) -> np.ndarray:
    if grid is None:
        return np.linspace(x.min(), x.max(), grid_size)
    return as_vector(grid, "grid", allow_nan=False)


def linear_fit(
    x: ArrayLike, y: ArrayLike, *, grid: ArrayLike | None = None, grid_size: int = 200, confidence: float = 0.95
) -> LinearFit:
    """OLS line with the t-based (n − 2 dof) confidence band of the mean response, over finite pairs."""
    xv, yv = _xy(x, y, 3)
    g = _grid(xv, grid, grid_size)
    n = xv.size
    res = sps.linregress(xv, yv)
    fitted = res.slope * xv + res.intercept
    ss_res = float(np.sum((yv - fitted) ** 2))
    s_err = math.sqrt(ss_res / (n - 2))
    sxx = float(np.sum((xv - xv.mean()) ** 2))
    half = sps.t.ppf(0.5 + confidence / 2.0, n - 2) * s_err * np.sqrt(1.0 / n + (g - xv.mean()) ** 2 / sxx)
    curve = res.slope * g + res.intercept
    return LinearFit(
        slope=float(res.slope),
        intercept=float(res.intercept),
        r=float(res.rvalue),
        r2=float(res.rvalue**2),
        p=float(res.pvalue),
        n=n,
        ss_res=ss_res,
        grid=g,
        curve=curve,
        band_lo=curve - half,
        band_hi=curve + half,
    )


def _curve_fit(x: np.ndarray, y: np.ndarray, p0: np.ndarray, maxfev: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", optimize.OptimizeWarning)  # a fit without covariance counts as failed
        popt, _ = optimize.curve_fit(logistic4, x, y, p0=p0, bounds=BOUNDS, jac=_logistic4_jac, maxfev=maxfev)
    return popt


def fit_sigmoid(
    x: ArrayLike,
    y: ArrayLike,
    *,
    y_scale: float = 100.0,
    n_boot: int = 1000,
    seed: int = 0,
    grid: ArrayLike | None = None,
    grid_size: int = 200,
    confidence: float = 0.95,
    min_boot_ok: int = 10,
) -> SigmoidFit:
    """4-parameter logistic fit of y/y_scale on x (finite pairs, n ≥ 5) with a bootstrap band.

    Start: a = sign(corr(x, y))·0.1, b = 0, c/d = 5th/95th percentile of y/y_scale (clipped into the
    bounds); `curve_fit(maxfev=10000)`. Band: `n_boot` resamples of the (x, y) pairs drawn with
    `np.random.default_rng(seed)`, resamples with std(x) < 1e-10 skipped, each refitted from the
    full-data optimum (maxfev=5000); band = the (1 ± confidence)/2 percentiles of the refitted curves
    on `grid`. If the full fit fails, the OLS line and its t band are returned (`method="linear"`).
    """
    if y_scale <= 0:
        raise ValueError(f"y_scale: must be positive, got {y_scale}")
    if n_boot < 0:
        raise ValueError(f"n_boot: must be ≥ 0, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    xv, yv = _xy(x, y, 5)  # 4 parameters + 1 residual dof for the F-tests
    g = _grid(xv, grid, grid_size)
    lin = linear_fit(xv, yv, grid=g, confidence=confidence)
    ys = yv / y_scale
    n = xv.size
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    corr = np.corrcoef(xv, ys)[0, 1] if np.ptp(ys) > 0 else 0.0
    p0 = np.array(
        [
            (np.sign(corr) if np.isfinite(corr) and corr != 0 else 1.0) * 0.1,
            0.0,
            np.clip(np.percentile(ys, 5), BOUNDS[0][2], BOUNDS[1][2]),
            np.clip(np.percentile(ys, 95), BOUNDS[0][3], BOUNDS[1][3]),
        ]
    )
    nan_band = np.full(g.shape, np.nan)
    try:
        popt = _curve_fit(xv, ys, p0, 10000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return SigmoidFit(
            method="linear",
            a=math.nan,
            b=math.nan,
            c=math.nan,
            d=math.nan,
            n=n,
            r2=lin.r2,
            f_vs_mean=math.nan,
            p_vs_mean=math.nan,
            f_vs_linear=math.nan,
            p_vs_linear=math.nan,
            linear=lin,
            grid=g,
            curve=lin.curve,
            band_lo=lin.band_lo,
            band_hi=lin.band_hi,
            n_boot=n_boot,
            n_boot_ok=0,
            y_scale=y_scale,
        )

    ss_res = float(np.sum((ys - logistic4(xv, *popt)) ** 2))
    ss_lin = lin.ss_res / y_scale**2
    dof = n - 4
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    if ss_res > 0:
        f_mean = ((ss_tot - ss_res) / 3.0) / (ss_res / dof)
        f_lin = ((ss_lin - ss_res) / 2.0) / (ss_res / dof)
        p_mean, p_lin = float(sps.f.sf(f_mean, 3, dof)), float(sps.f.sf(f_lin, 2, dof))
    else:  # a perfect fit: F is unbounded
        f_mean = f_lin = math.inf
        p_mean = p_lin = 0.0

    rng = np.random.default_rng(seed)
    curves = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        if xv[idx].std() < 1e-10:
            continue
        try:
            curves.append(logistic4(g, *_curve_fit(xv[idx], ys[idx], popt, 5000)))
        except (RuntimeError, ValueError, optimize.OptimizeWarning):
            continue
    if len(curves) >= min_boot_ok:
        q = 100.0 * (1.0 - confidence) / 2.0
        lo, hi = np.percentile(np.asarray(curves), [q, 100.0 - q], axis=0)
        band_lo, band_hi = lo * y_scale, hi * y_scale
    else:
        band_lo, band_hi = nan_band, nan_band.copy()
    return SigmoidFit(
        method="logistic4",
        a=float(popt[0]),
        b=float(popt[1]),
        c=float(popt[2]),
        d=float(popt[3]),
        n=n,
        r2=r2,
        f_vs_mean=float(f_mean),
        p_vs_mean=p_mean,
        f_vs_linear=float(f_lin),
        p_vs_linear=p_lin,
        linear=lin,
        grid=g,
        curve=y_scale * logistic4(g, *popt),
        band_lo=band_lo,
        band_hi=band_hi,
        n_boot=n_boot,
        n_boot_ok=len(curves),
        y_scale=y_scale,
    )
