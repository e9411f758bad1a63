"""The heuristic-performance table as the original computes it (docs/methods.md#heuristic-ranking).

Every registry heuristic with a `performance_label` (and the slides dataset's own H1/H2 columns)
against five targets, over **all** rows of `slides_dataset` (both trait rows of every prompt, not only
the prompt's own trait): `Trait sup (all)`, `(fixed)`, `(mix)`, `Cross-trait sup (all)`, `Gap (mix)`.
A heuristic's column holds its mix value on mix rows where it has one (the registry's `slide_prefix`).
Pearson r, r², n over the rows where X and Y are finite; NaN when n < 3 or either is constant.
Scopes: every experiment and 'pooled'. Each r carries a 95 % bootstrap CI (`BOOTSTRAP` resamples of
the (x, y) rows, percentiles 2.5/97.5, resamples with a constant x or y skipped; seeded, so reproducible).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from inoc.analysis.performance import heuristic_performance
from inoc.heuristics.registry import REGISTRY

#: target label → (row filter on prefix_type or None, slides_dataset column)
TARGETS = {
    "Trait sup (all)": (None, "suppression"),
    "Trait sup (fixed)": ("fixed", "suppression"),
    "Trait sup (mix)": ("mix", "suppression"),
    "Cross-trait sup (all)": (None, "cross_trait_suppression"),
    "Gap (mix)": ("mix", "gap"),
}
COLUMNS = [
    "scope",
    "heuristic_id",
    "heuristic",
    "x_column",
    "target",
    "r",
    "r2",
    "n",
    "ci_lo",
    "ci_hi",
    "heuristic_group",
]
#: The original table's Group column (docs/methods.md#heuristic-group). The spec names the four groups, not their
#: members; by family: the step-1 token heuristics HA*, the cumulative (simulated-training) HB*, the
#: cross-trait projections H9a, H9b, H10, and the heuristics that existed before those (H1–H7, H11–H14).
GROUPS = ("Existing", "Cross-trait", "A: Step-1", "B: Cumulative")
CROSS_TRAIT_IDS = ("H9a", "H9b", "H10")
BOOTSTRAP = 1000
SEED = 0
MIN_STD = 1e-12


def bootstrap_ci(x: np.ndarray, y: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """95 % percentile CI of Pearson r over `n_boot` resamples of the finite (x, y) pairs; NaN when n < 3."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.size
    if n < 3:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xs, ys = x[idx], y[idx]
    xc, yc = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    sx, sy = np.sqrt((xc**2).mean(axis=1)), np.sqrt((yc**2).mean(axis=1))
    good = (sx > MIN_STD) & (sy > MIN_STD)
    if good.sum() < 10:
        return math.nan, math.nan
    r = (xc[good] * yc[good]).mean(axis=1) / (sx[good] * sy[good])
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


def heuristic_group(heuristic_id: str | None) -> str | None:
    """The original's Group of a paper heuristic id; a registry entry may set its own in
    `extra["performance_group"]` (checked by the caller); None for an id outside the paper's families."""
    if not heuristic_id:
        return None
    entry = next((h for h in REGISTRY.values() if h.id == heuristic_id and "performance_group" in h.extra), None)
    if entry is not None:
        return entry.extra["performance_group"]
    if heuristic_id.startswith("HA"):
        return "A: Step-1"
    if heuristic_id.startswith("HB"):
        return "B: Cumulative"
    if heuristic_id in CROSS_TRAIT_IDS:
        return "Cross-trait"
    return "Existing" if heuristic_id[:1] == "H" and heuristic_id[1:2].isdigit() else None


def ranked_heuristics() -> dict[str, tuple[str | None, str]]:
    """label → (paper id, slides_dataset column): H1 and H2 from dataset.sql, then the registry's ranked ones."""
    out = {"H1 Elicitation": ("H1", "elicitation"), "H2 Logprob diff (PH)": ("H2", "ph_combined")}
    for h in REGISTRY.values():
        if h.performance_label and h.id and h.slide_column and h.id not in ("H1", "H2"):
            out[h.performance_label] = (h.id, h.slide_column)
    return out


def ranking_table(slides: pd.DataFrame) -> pd.DataFrame:
    """Tidy table: one row per (scope, heuristic, target)."""
    heuristics = ranked_heuristics()
    frames = []
    for scope in ["pooled", *sorted(slides.experiment.unique())]:
        rows = slides if scope == "pooled" else slides[slides.experiment == scope]
        for target, (prefix, column) in TARGETS.items():
            sub = rows if prefix is None else rows[rows.prefix_type == prefix]
            if sub.empty:
                continue
            t = heuristic_performance(sub, {label: col for label, (_, col) in heuristics.items()}, {target: column})
            cis = [
                bootstrap_ci(pd.to_numeric(sub[heuristics[label][1]]).to_numpy(float), sub[column].to_numpy(float))
                for label in t.heuristic
            ]
            t = t.rename(columns={"outcome": "target"}).assign(
                ci_lo=[c[0] for c in cis],
                ci_hi=[c[1] for c in cis],
                scope=scope,
                heuristic_id=t.heuristic.map(lambda label: heuristics[label][0]),
                x_column=t.heuristic.map(lambda label: heuristics[label][1]),
                heuristic_group=t.heuristic.map(lambda label: heuristic_group(heuristics[label][0])),
            )
            frames.append(t)
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
