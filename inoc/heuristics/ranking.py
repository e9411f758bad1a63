"""The heuristic-performance table as the original computes it (SPEC-DETAILED §8.10).

Every registry heuristic with a `performance_label` (and the slides dataset's own H1/H2 columns)
against five targets, over **all** rows of `slides_dataset` (both trait rows of every prompt, not only
the prompt's own trait): `Trait sup (all)`, `(fixed)`, `(mix)`, `Cross-trait sup (all)`, `Gap (mix)`.
A heuristic's column holds its mix value on mix rows where it has one (the registry's `slide_prefix`).
Pearson r, r², n over the rows where X and Y are finite; NaN when n < 3 or either is constant.
Scopes: every experiment and 'pooled'.
"""

from __future__ import annotations

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
COLUMNS = ["scope", "heuristic_id", "heuristic", "x_column", "target", "r", "r2", "n"]


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
            t = t.rename(columns={"outcome": "target"}).assign(
                scope=scope,
                heuristic_id=t.heuristic.map(lambda label: heuristics[label][0]),
                x_column=t.heuristic.map(lambda label: heuristics[label][1]),
            )
            frames.append(t)
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)
