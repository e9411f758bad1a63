"""inoc.analysis.performance: Pearson table against numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from inoc.analysis.performance import heuristic_performance, pearson, performance_wide


def test_pearson_drops_nan_pairs_and_matches_numpy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    y += 0.5 * x
    x[3], y[7], y[9] = np.nan, np.nan, np.inf
    ok = np.isfinite(x) & np.isfinite(y)
    res = pearson(x, y)
    r = np.corrcoef(x[ok], y[ok])[0, 1]
    assert res.n == 47 and res.r == pytest.approx(r, rel=1e-12) and res.r2 == pytest.approx(r * r, rel=1e-12)
    t = r * math.sqrt((47 - 2) / (1 - r * r))
    from scipy import stats

    assert res.p == pytest.approx(2 * stats.t.sf(abs(t), 45), rel=1e-8)


def test_pearson_undefined_cases():
    assert math.isnan(pearson([1.0, 2.0], [2.0, 1.0]).r)  # n < 3
    c = pearson([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert math.isnan(c.r) and c.n == 4
    with pytest.raises(ValueError, match="x and y: lengths differ"):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])


def test_heuristic_performance_tidy_and_wide():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"ph": rng.normal(size=30), "elic": rng.normal(size=30)})
    df["supp"] = 2 * df["ph"] + rng.normal(size=30)
    df["gap"] = np.where(np.arange(30) % 2 == 0, df["elic"], np.nan)  # "mix rows only"
    tidy = heuristic_performance(df, {"H2 PH": "ph", "H1 Elicitation": "elic"}, {"Trait sup": "supp", "Gap": "gap"})
    assert list(tidy.columns) == ["heuristic", "outcome", "r", "r2", "p", "n"] and len(tidy) == 4
    row = tidy[(tidy.heuristic == "H2 PH") & (tidy.outcome == "Trait sup")].iloc[0]
    assert row.r == pytest.approx(np.corrcoef(df.ph, df.supp)[0, 1]) and row.n == 30
    gap = tidy[(tidy.heuristic == "H1 Elicitation") & (tidy.outcome == "Gap")].iloc[0]
    assert gap.n == 15 and gap.r == pytest.approx(1.0)
    wide = performance_wide(tidy)
    assert list(wide.columns) == ["heuristic", "Trait sup r", "Trait sup r2", "Trait sup n", "Gap r", "Gap r2", "Gap n"]
    assert wide.loc[wide.heuristic == "H2 PH", "Trait sup r"].item() == pytest.approx(row.r)


def test_heuristic_performance_errors():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 3.0, 2.0]})
    with pytest.raises(ValueError, match="frame: missing column"):
        heuristic_performance(df, ["a"], ["zzz"])
    with pytest.raises(ValueError, match="frame: no rows"):
        heuristic_performance(df.iloc[:0], ["a"], ["b"])
    with pytest.raises(ValueError, match="heuristics: no columns"):
        heuristic_performance(df, [], ["b"])
