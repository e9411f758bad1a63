"""Predict before you train: a prompt's own-trait suppression from its base-model heuristics (issue 20).

Plain pandas in, pandas out (no Dagster): `features` builds the per-prompt rows from slides_dataset,
`model` fits the predictor with jackknife+ intervals, `validation` scores it against the group-mean
baseline out of sample, and `predict_all` does all of it for every experiment and pooled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from inoc.prediction.features import FEATURES, PREFIX_TYPES, own_trait_rows, usable_features
from inoc.prediction.model import DEFAULT_KIND, MIN_TRAIN, TARGET, Predictor, fit
from inoc.prediction.validation import SUMMARY_COLUMNS, leave_one_prompt_out, leave_one_study_out

__all__ = [
    "FEATURES",
    "MIN_TRAIN",
    "Predictor",
    "fit",
    "own_trait_rows",
    "predict_all",
    "PredictionResult",
    "prediction_inputs",
    "usable_features",
]

POOLED = "pooled"
PREDICTION_COLUMNS = [
    "experiment",
    "prompt_key",
    "prefix_type",
    "trait",
    "scope",
    "model_version",
    "prediction",
    "lo",
    "hi",
    "coverage",
    "observed",
    "trained",
    "extrapolated",
]
MODEL_COLUMNS = [
    "model_version",
    "scope",
    "experiment",
    "prefix_type",
    "kind",
    "features",
    "hyper_parameters",
    "n_train",
    "trained_on",
    "fitted_at",
]


class PredictionResult(tuple):
    """`predict_all`'s (predictions, validation, models), with what does not belong in those tables as
    attributes (not DataFrame.attrs: pandas compares attrs on concat, and DataFrames there cannot be compared)."""

    held_out: pd.DataFrame
    predictors: dict
    skipped: list[str]

    def __new__(
        cls,
        predictions: pd.DataFrame,
        validation: pd.DataFrame,
        models: pd.DataFrame,
        *,
        held_out: pd.DataFrame,
        predictors: dict,
        skipped: list[str],
    ) -> "PredictionResult":
        self = super().__new__(cls, (predictions, validation, models))
        self.held_out, self.predictors, self.skipped = held_out, predictors, skipped
        return self


def _model_row(p: Predictor, scope: str, experiment: str | None, prefix_type: str, fitted_at: datetime) -> dict:
    return {
        "model_version": p.version,
        "scope": scope,
        "experiment": experiment,
        "prefix_type": prefix_type,
        "kind": p.kind,
        "features": json.dumps(p.features),
        "hyper_parameters": json.dumps(
            p.hyper_parameters | {"coefficients": p.coefficients(), "rank_clamped": p.rank_clamped}
        ),
        "n_train": p.n_train,
        "trained_on": json.dumps([list(k) for k in p.trained_on]),
        "fitted_at": fitted_at,
    }


def _predictions(p: Predictor, rows: pd.DataFrame, scope: str) -> pd.DataFrame:
    pred = p.predict(rows)
    trained = set(p.trained_on)
    out = pd.DataFrame(
        {
            "experiment": rows["experiment"].to_numpy(),
            "prompt_key": rows["prompt_key"].to_numpy(),
            "prefix_type": rows["prefix_type"].to_numpy(),
            "trait": rows["trait_name"].to_numpy(),
            "scope": scope,
            "model_version": p.version,
            "prediction": pred.prediction.to_numpy(),
            "lo": pred.lo.to_numpy(),
            "hi": pred.hi.to_numpy(),
            "coverage": p.coverage,
            "observed": rows[TARGET].to_numpy(float),
            "trained": [(str(e), str(k)) in trained for e, k in zip(rows["experiment"], rows["prompt_key"])],
            "extrapolated": pred.extrapolated.to_numpy(bool),
        }
    )
    # The inputs each prediction used, kept beside it until `prediction_inputs` turns them into rows.
    for f in p.used_features if p.kind == "ridge" else p.features:
        out[f"input:{f}"] = rows[f].to_numpy(float)
        out[f"raw:{f}"] = rows[f"raw_{f}"].to_numpy(float) if f"raw_{f}" in rows else np.nan
    return out


def prediction_inputs(predictions: pd.DataFrame) -> pd.DataFrame:
    """`prediction_inputs` rows: per prediction, each feature's model input (z-scored) and raw value."""
    feats = [c.split(":", 1)[1] for c in predictions.columns if c.startswith("input:")]
    keys = ["experiment", "prompt_key", "prefix_type", "scope", "model_version"]
    parts = []
    for f in feats:
        part = predictions[keys + [f"input:{f}", f"raw:{f}"]].dropna(subset=[f"input:{f}"], how="all")
        part = part[part[f"input:{f}"].notna() | part[f"raw:{f}"].notna()]
        parts.append(part.rename(columns={f"input:{f}": "value", f"raw:{f}": "raw_value"}).assign(feature=f))
    cols = [*keys, "feature", "value", "raw_value"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def predict_all(
    slides: pd.DataFrame,
    *,
    features: Sequence[str] = FEATURES,
    kind: str = DEFAULT_KIND,
    coverage: float = 0.9,
    roles: Mapping[tuple[str, str], str] | None = None,
) -> "PredictionResult":
    """(predictions, validation, models) for fixed and mix, per experiment and pooled (a `PredictionResult`:
    unpacks as that 3-tuple, with `held_out`, `predictors` and `skipped` as attributes).

    predictions: one row per own-trait prompt row and model (the `suppression_predictions` columns, plus
    ``input:<f>`` / ``raw:<f>`` for `prediction_inputs`). A model uses the `features` finite for nearly
    every one of its training rows and rows to predict (`usable_features`); an experiment with fewer
    than `MIN_TRAIN` trained prompts gets no model of its own (`skipped` says so, and why).
    validation: `predictor_validation` rows (leave-one-prompt-out per experiment and pooled, leave-one-study-out
    for every ordered pair); `held_out` holds the held-out predictions behind them (the figure's points).
    models: `predictor_models` rows; `predictors` the `Predictor` objects keyed by (scope, experiment or None, prefix_type).
    """
    fitted_at = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    predictions, summaries, held, model_rows, skipped, predictors = [], [], [], [], [], {}
    for prefix_type in PREFIX_TYPES:
        rows = own_trait_rows(slides, prefix_type, features, roles=roles)
        if rows.empty:
            continue
        has_run = rows[TARGET].notna()
        scopes = [(e, rows[rows.experiment == e]) for e in sorted(rows.experiment.unique())]
        if sum(int(has_run[rows.experiment == e].sum()) > 0 for e, _ in scopes) >= 2:
            scopes.append((None, rows))
        for experiment, part in scopes:
            scope = POOLED if experiment is None else "experiment"
            label = experiment or POOLED
            use = usable_features([part[part[TARGET].notna()], part], features)
            if not use:
                skipped.append(
                    f"{label} {prefix_type}: no feature of {list(features)} is finite on {int(100 * 0.9)}% of its rows"
                )
                continue
            try:
                p = fit(part, use, kind=kind, coverage=coverage)
            except ValueError as err:
                skipped.append(f"{label} {prefix_type}: {err}")
                continue
            predictors[(scope, experiment, prefix_type)] = p
            model_rows.append(_model_row(p, scope, experiment, prefix_type, fitted_at))
            predictions.append(_predictions(p, part, scope))
            try:
                s, h = leave_one_prompt_out(part, use, kind=kind, coverage=coverage, scope=label)
                summaries.append(s)
                held.append(h)
            except ValueError as err:
                skipped.append(f"leave-one-prompt-out {label} {prefix_type}: {err}")
        trained = rows[has_run]
        if trained.experiment.nunique() >= 2:
            use = usable_features([g for _, g in trained.groupby("experiment")], features)
            try:
                if not use:
                    raise ValueError(
                        f"no feature of {list(features)} is finite on 90% of every experiment's trained rows"
                    )
                s, h = leave_one_study_out(rows, use, kind=kind, coverage=coverage)
                summaries.append(s)
                held.append(h)
            except ValueError as err:
                skipped.append(f"leave-one-study-out {prefix_type}: {err}")
    predictions = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(columns=PREDICTION_COLUMNS)
    validation = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame(columns=SUMMARY_COLUMNS)
    models = pd.DataFrame(model_rows, columns=MODEL_COLUMNS)
    return PredictionResult(
        predictions,
        validation,
        models,
        held_out=pd.concat(held, ignore_index=True) if held else pd.DataFrame(),
        predictors=predictors,
        skipped=skipped,
    )
