"""`heuristic_performance`: each registry heuristic of `slides_dataset` against each suppression measure, per
experiment and pooled (docs/methods.md#heuristic-performance)."""

from __future__ import annotations

import pandas as pd

from inoc.analysis.performance import heuristic_performance
from inoc.heuristics.registry import performance_columns

#: Heuristic columns of `slides_dataset` (X) ranked against the suppression measures (Y): the registry's.
PERFORMANCE_HEURISTICS = performance_columns()


def heuristic_performance_table(slides: pd.DataFrame) -> pd.DataFrame:
    """Pearson r, r², p, n of each heuristic against each suppression measure (docs/methods.md#heuristic-performance), per
    experiment and pooled over experiments and traits (`scope` = experiment name or 'pooled')."""
    own = slides[slides.target == "trait"]
    targets = {
        "trait_suppression_all": (own, "suppression"),
        "trait_suppression_fixed": (own[own.prefix_type == "fixed"], "suppression"),
        "trait_suppression_mix": (own[own.prefix_type == "mix"], "suppression"),
        "cross_trait_suppression_all": (own, "cross_trait_suppression"),
        "gap_mix": (own[own.prefix_type == "mix"], "gap"),
    }
    frames = []
    scopes = [("pooled", None)] + [(e, e) for e in sorted(slides.experiment.unique())]
    for scope, exp in scopes:
        for outcome, (rows, column) in targets.items():
            sub = rows if exp is None else rows[rows.experiment == exp]
            if sub.empty:
                continue
            t = heuristic_performance(sub, PERFORMANCE_HEURISTICS, {outcome: column})
            frames.append(t.assign(scope=scope))
    cols = ["scope", "heuristic", "outcome", "r", "r2", "p", "n"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
