"""The predictor's inputs: one row per prompt and prefix type, the prompt's own trait only.

A prompt's *own trait* is the trait its group elicits: the config's group role (positive → the
experiment's positive trait, negative → its negative trait). slides_dataset does not carry the role,
so `own_trait_rows` takes it, in this order, from `roles` when given (``group_roles`` builds that
from configs), from the row's suppression `target` (``trait`` / ``cross_trait``, set from the config
where the prompt has a run), and otherwise from the family name, which every shipped config spells
as the trait (family ``playful`` ↔ trait Playful, ``german`` ↔ German, …). Neutral prompts (and any
family that names no trait of its experiment) have no own trait: they are left out, so nothing is
trained on or predicted for them.

Features are z-scored within experiment (ddof 1, over the experiment's own-trait rows of the prefix
type, every registered prompt whether or not it has a run), so one experiment's pp and nats scale
matches another's: a model trained on Playful/French can be applied to German/Flattering. The raw
value stays beside it as ``raw_<feature>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

#: The default inputs. `elicitation` (H1, pp over the neutral baseline, the trait's own) is finite for
#: every prompt of both reference studies and of a computed study; `ph_prefix` (H2, PH of the row's
#: prefix type on the training completions) for GF and computed studies, not for PF (its point-wise
#: file was not published). `predict_all` uses, per fit, the features that are finite for nearly
#: every row (`usable_features`), so PF's models run on elicitation alone.
FEATURES: tuple[str, ...] = ("elicitation", "ph_prefix")

#: Share of rows (training and to-predict) that must have a finite value for a feature to be used.
MIN_FINITE_SHARE = 0.9

PREFIX_TYPES = ("fixed", "mix")

#: Identifying columns of an own-trait row, in output order.
ID_COLUMNS = ["experiment", "prompt_key", "prompt_group", "prompt_family", "trait_name", "prefix_type"]
OUTCOME_COLUMNS = ["suppression", "suppression_ci_lo", "suppression_ci_hi"]


def group_roles(configs: Iterable) -> dict[tuple[str, str], str]:
    """{(experiment, group): role} from `ExperimentConfig`s, for `own_trait_rows(roles=...)`."""
    return {(cfg.name, name): g.role for cfg in configs for name, g in cfg.groups.items()}


def _own_mask(slides: pd.DataFrame, roles: Mapping[tuple[str, str], str] | None) -> pd.Series:
    by_family = slides.prompt_family.astype(str).str.lower() == slides.trait_name.astype(str).str.lower()
    if "target" in slides.columns:  # a run's suppression row knows the config's role
        ran = slides.suppression.notna()
        by_family = (slides.target == "trait").where(ran, by_family).astype(bool)
    if not roles:
        return by_family
    role = pd.Series([roles.get((e, g)) for e, g in zip(slides.experiment, slides.prompt_group)], index=slides.index)
    # A configured role decides; groups the mapping does not know fall back to the family name.
    return role.eq(slides.trait_role).where(role.notna(), by_family).astype(bool)


def zscore_within(frame: pd.DataFrame, column: str, by: str = "experiment") -> pd.Series:
    """(x − mean) / std (ddof 1) within each `by` group, NaN ignored; NaN where the group's std is 0 or undefined."""
    x = pd.to_numeric(frame[column], errors="coerce").astype(float).where(lambda s: np.isfinite(s))
    g = x.groupby(frame[by])
    mean, std = g.transform("mean"), g.transform("std")
    return ((x - mean) / std.where(std > 0)).astype(float)


def own_trait_rows(
    slides: pd.DataFrame,
    prefix_type: str,
    features: Sequence[str] = FEATURES,
    *,
    roles: Mapping[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """One row per prompt with an own trait: the ID columns, each feature z-scored within experiment
    (and ``raw_<feature>``), and suppression with its CI (NaN when the prompt has no run)."""
    if prefix_type not in PREFIX_TYPES:
        raise ValueError(f"prefix_type {prefix_type!r}: expected one of {PREFIX_TYPES}")
    needed = [
        "experiment",
        "prompt_key",
        "prompt_group",
        "prompt_family",
        "trait_role",
        "trait_name",
        "prefix_type",
        "suppression",
    ]
    missing = [c for c in [*needed, *features] if c not in slides.columns]
    if missing:
        raise ValueError(
            f"slides_dataset frame lacks column(s) {missing}; expected the columns of slides/dataset.sql "
            f"and the registry's slide columns (features asked: {list(features)})"
        )
    rows = slides[(slides.prefix_type == prefix_type)]
    rows = rows[_own_mask(rows, roles)].copy()
    dupes = rows.duplicated(["experiment", "prompt_key"])
    if dupes.any():
        raise ValueError(
            f"slides_dataset has more than one own-trait {prefix_type} row for "
            f"{rows.loc[dupes, ['experiment', 'prompt_key']].values.tolist()[:5]}; expected one per prompt"
        )
    for col in OUTCOME_COLUMNS:
        if col not in rows.columns:
            rows[col] = np.nan
    out = rows[ID_COLUMNS + OUTCOME_COLUMNS].copy()
    for f in features:
        out[f"raw_{f}"] = pd.to_numeric(rows[f], errors="coerce").astype(float)
        out[f] = zscore_within(rows, f)
    for col in OUTCOME_COLUMNS:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    return out.sort_values(["experiment", "prompt_key"]).reset_index(drop=True)


def usable_features(
    frames: Iterable[pd.DataFrame], features: Sequence[str], min_share: float = MIN_FINITE_SHARE
) -> list[str]:
    """The features finite on at least `min_share` of the rows of every frame (e.g. training rows and rows to predict)."""
    frames = [f for f in frames if len(f)]
    return [
        f for f in features if frames and all(np.isfinite(fr[f].to_numpy(float)).mean() >= min_share for fr in frames)
    ]
