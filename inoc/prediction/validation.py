"""Out-of-sample checks of the predictor against the group-mean baseline.

- `leave_one_prompt_out`: each trained prompt of a scope is predicted by a fit on the others.
- `leave_one_study_out`: every trained prompt of one experiment is predicted by a fit on another's.

Both run the predictor (model ``predictor``, of `kind`) and the baseline (`group_mean`, see `inoc.prediction.model`) on the
same held-out rows and report, per model: n, R² (1 − SS_res/SS_tot about the held-out rows' own
mean, so a constant at the wrong level scores below 0), Spearman ρ (NaN when either side is constant:
a baseline that predicts one value cannot rank) and the share of held-out suppressions inside the
interval. `beats_baseline` says whether the predictor's R² is above both the baseline's and 0 (a
model no better than a constant at the held-out rows' mean does not count as beating anything).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from inoc.prediction.model import DEFAULT_KIND, MIN_TRAIN, TARGET, fit

BASELINE = "group_mean"
PREDICTOR = "predictor"
SUMMARY_COLUMNS = [
    "scheme",
    "train_scope",
    "test_scope",
    "prefix_type",
    "model",
    "kind",
    "features",
    "n",
    "r2",
    "spearman",
    "coverage",
    "nominal_coverage",
    "mean_width",
]


def _trained(rows: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    ok = np.isfinite(rows[TARGET].to_numpy(float))
    for f in features:
        ok &= np.isfinite(rows[f].to_numpy(float))
    return rows[ok]


def metrics(observed: np.ndarray, prediction: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    """n, R², Spearman ρ, interval coverage and mean interval width over the rows with a prediction."""
    y, p, lo, hi = (np.asarray(a, float) for a in (observed, prediction, lo, hi))
    ok = np.isfinite(y) & np.isfinite(p)
    y, p, lo, hi = y[ok], p[ok], lo[ok], hi[ok]
    n = len(y)
    if n == 0:
        return {"n": 0, "r2": np.nan, "spearman": np.nan, "coverage": np.nan, "mean_width": np.nan}
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - p) ** 2).sum()) / ss_tot if n > 1 and ss_tot > 0 else np.nan
    rho = float(spearmanr(y, p).statistic) if n > 2 and np.ptp(y) > 0 and np.ptp(p) > 0 else np.nan
    return {
        "n": n,
        "r2": r2,
        "spearman": rho,
        "coverage": float(((y >= lo) & (y <= hi)).mean()),
        "mean_width": float(np.mean(hi - lo)),
    }


def _summarize(
    held: pd.DataFrame,
    scheme: str,
    train_scope: str,
    test_scope: str,
    prefix_type: str,
    features: Sequence[str],
    coverage: float,
    kind: str,
) -> list[dict]:
    out = []
    for model, g in held.groupby("model", sort=False):
        out.append(
            {
                "scheme": scheme,
                "train_scope": train_scope,
                "test_scope": test_scope,
                "prefix_type": prefix_type,
                "model": model,
                "kind": kind if model == PREDICTOR else BASELINE,
                "features": ",".join(features) if model == PREDICTOR else "",
                **metrics(g.observed, g.prediction, g.lo, g.hi),
                "nominal_coverage": coverage,
            }
        )
    return out


def _held_rows(
    rows: pd.DataFrame, pred: pd.DataFrame, model: str, scheme: str, train_scope: str, test_scope: str
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scheme": scheme,
            "train_scope": train_scope,
            "test_scope": test_scope,
            "model": model,
            "experiment": rows["experiment"].to_numpy(),
            "prompt_key": rows["prompt_key"].to_numpy(),
            "prompt_group": rows["prompt_group"].to_numpy(),
            "prompt_family": rows["prompt_family"].to_numpy(),
            "prefix_type": rows["prefix_type"].to_numpy(),
            "observed": rows[TARGET].to_numpy(float),
            "prediction": pred["prediction"].to_numpy(float),
            "lo": pred["lo"].to_numpy(float),
            "hi": pred["hi"].to_numpy(float),
        }
    )


def leave_one_prompt_out(
    rows: pd.DataFrame,
    features: Sequence[str],
    *,
    kind: str = DEFAULT_KIND,
    coverage: float = 0.9,
    scope: str = "experiment",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, held-out predictions) of leave-one-prompt-out over the trained rows of one prefix type
    (`own_trait_rows` of one experiment, or of several for a pooled scope named by `scope`)."""
    train = _trained(rows, features)
    if len(train) < MIN_TRAIN + 1:
        raise ValueError(
            f"leave-one-prompt-out in {scope}: {len(train)} prompt(s) with a suppression and finite "
            f"{list(features)}; need at least {MIN_TRAIN + 1} (a fit needs {MIN_TRAIN})"
        )
    prefix_type = str(train["prefix_type"].iloc[0])
    held = []
    for model, model_kind, feats in ((PREDICTOR, kind, features), (BASELINE, BASELINE, [])):
        preds = []
        for i in range(len(train)):
            keep = np.arange(len(train)) != i
            p = fit(train[keep], feats, kind=model_kind, coverage=coverage)
            preds.append(p.predict(train.iloc[i : i + 1]))
        held.append(_held_rows(train, pd.concat(preds), model, "leave_one_prompt_out", scope, scope))
    held = pd.concat(held, ignore_index=True)
    summary = pd.DataFrame(
        _summarize(held, "leave_one_prompt_out", scope, scope, prefix_type, features, coverage, kind),
        columns=SUMMARY_COLUMNS,
    )
    return summary, held


def leave_one_study_out(
    rows: pd.DataFrame, features: Sequence[str], *, kind: str = DEFAULT_KIND, coverage: float = 0.9
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, held-out predictions): for each ordered pair of experiments (A, B) with enough trained
    rows, fit on A's and predict B's. Features must be comparable across experiments (z-scored within
    experiment by `own_trait_rows`)."""
    train = _trained(rows, features)
    experiments = sorted(train["experiment"].unique())
    sizes = train.groupby("experiment").size().to_dict()
    fit_ok = [e for e in experiments if sizes[e] >= MIN_TRAIN]
    if len(experiments) < 2 or not fit_ok:
        raise ValueError(
            f"leave-one-study-out: trained prompts per experiment {sizes}; need two experiments, "
            f"one with at least {MIN_TRAIN}"
        )
    summaries, held = [], []
    prefix_type = str(train["prefix_type"].iloc[0])
    for a in fit_ok:
        models = {
            PREDICTOR: fit(train[train.experiment == a], features, kind=kind, coverage=coverage),
            BASELINE: fit(train[train.experiment == a], [], kind=BASELINE, coverage=coverage),
        }
        for b in experiments:
            if b == a:
                continue
            test = train[train.experiment == b]
            h = pd.concat(
                [_held_rows(test, m.predict(test), name, "leave_one_study_out", a, b) for name, m in models.items()],
                ignore_index=True,
            )
            held.append(h)
            summaries += _summarize(h, "leave_one_study_out", a, b, prefix_type, features, coverage, kind)
    return pd.DataFrame(summaries, columns=SUMMARY_COLUMNS), pd.concat(held, ignore_index=True)


def beats_baseline(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (scheme, train_scope, test_scope, prefix_type): the predictor's and the baseline's R²
    and whether the predictor's is above both the baseline's and 0 (False when the predictor's is NaN;
    a NaN baseline R² counts as 0)."""
    keys = ["scheme", "train_scope", "test_scope", "prefix_type"]
    wide = summary.pivot_table(index=keys, columns="model", values="r2", aggfunc="first", dropna=False).reset_index()
    wide = wide.rename(columns={PREDICTOR: "r2_predictor", BASELINE: "r2_baseline"})
    wide["beats_baseline"] = (wide.r2_predictor > wide.r2_baseline.fillna(0).clip(lower=0)).fillna(False).astype(bool)
    return wide
