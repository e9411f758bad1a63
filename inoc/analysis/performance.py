"""Heuristic performance table (docs/methods.md#heuristic-performance): Pearson r of heuristics vs outcomes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps

from inoc.analysis._checks import as_vector, same_length

#: Below this std a variable is treated as constant and r is undefined (the original's threshold).
MIN_STD = 1e-12


class PearsonResult(NamedTuple):
    r: float
    r2: float
    p: float  # two-sided, H0: r = 0
    n: int  # pairs where both values are finite


def pearson(x: ArrayLike, y: ArrayLike, *, min_n: int = 3) -> PearsonResult:
    """Pearson r over the pairs where both x and y are finite; NaN when n < min_n or either is constant."""
    xv = as_vector(x, "x", allow_inf=True)
    yv = as_vector(y, "y", allow_inf=True)
    same_length(xv, yv, "x", "y")
    ok = np.isfinite(xv) & np.isfinite(yv)
    n = int(ok.sum())
    if n < max(min_n, 2):
        return PearsonResult(math.nan, math.nan, math.nan, n)
    xs, ys = xv[ok], yv[ok]
    if xs.std() < MIN_STD or ys.std() < MIN_STD:
        return PearsonResult(math.nan, math.nan, math.nan, n)
    res = sps.pearsonr(xs, ys)
    r = float(res.statistic)
    return PearsonResult(r, r * r, float(res.pvalue), n)


def _labelled(columns: Sequence[str] | Mapping[str, str], name: str) -> dict[str, str]:
    mapping = dict(columns) if isinstance(columns, Mapping) else {c: c for c in columns}
    if not mapping:
        raise ValueError(f"{name}: no columns given")
    return mapping


def heuristic_performance(
    frame: pd.DataFrame,
    heuristics: Sequence[str] | Mapping[str, str],
    outcomes: Sequence[str] | Mapping[str, str],
    *,
    min_n: int = 3,
) -> pd.DataFrame:
    """Tidy table of Pearson r, r², p and n for every (heuristic, outcome) pair of `frame`'s columns.

    `heuristics` / `outcomes` are column names, or {label: column} to name them as in the published
    table ("H2 Logprob diff (PH)": "ph_combined"). Each pair uses the rows where both are finite, so
    restrict `frame` first for a subset target (fixed rows, mix rows), and put the row-appropriate X in
    one column (the original used a heuristic's `_mix` column on mix rows).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame: expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError("frame: no rows")
    hs, os_ = _labelled(heuristics, "heuristics"), _labelled(outcomes, "outcomes")
    missing = [c for c in [*hs.values(), *os_.values()] if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: missing column(s) {missing}")
    rows = []
    for h_label, h_col in hs.items():
        x = pd.to_numeric(frame[h_col], errors="raise").to_numpy(dtype=np.float64)
        for o_label, o_col in os_.items():
            y = pd.to_numeric(frame[o_col], errors="raise").to_numpy(dtype=np.float64)
            res = pearson(x, y, min_n=min_n)
            rows.append({"heuristic": h_label, "outcome": o_label, **res._asdict()})
    return pd.DataFrame(rows, columns=["heuristic", "outcome", "r", "r2", "p", "n"])


def performance_wide(tidy: pd.DataFrame) -> pd.DataFrame:
    """The published layout: one row per heuristic, columns `{outcome} r`, `{outcome} r2`, `{outcome} n`."""
    need = {"heuristic", "outcome", "r", "r2", "n"}
    if not need <= set(tidy.columns):
        raise ValueError(f"tidy: missing column(s) {sorted(need - set(tidy.columns))}")
    h_order = list(dict.fromkeys(tidy["heuristic"]))
    o_order = list(dict.fromkeys(tidy["outcome"]))
    wide = pd.DataFrame(index=pd.Index(h_order, name="heuristic"))
    for o in o_order:
        sub = tidy[tidy["outcome"] == o].set_index("heuristic")
        for stat in ("r", "r2", "n"):
            wide[f"{o} {stat}"] = sub[stat].reindex(h_order)
    return wide.reset_index()
