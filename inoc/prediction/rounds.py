"""The loop, closed: how each trained prompt's prediction *before* it was trained compares with what training
then showed, round by round.

Every materialization of the predictor appends its predictions to `suppression_prediction_history` under the
model's version (a new version whenever the training data or features change). A prompt's *prior* prediction is
the latest one made while it was still untrained (`trained` false), by the study's own model where there was
one, else by the pooled model. Its *round* is the number of model versions of that experiment, prefix type and
scope up to the one that made it: round 1 is the first model, which knew only the seed prompts; a prompt
promoted after a refit is predicted in a later round.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from inoc.prediction import PREDICTION_COLUMNS

#: `suppression_predictions`' columns (but the per-row extrapolation flag) and when the version was recorded.
HISTORY_COLUMNS = ["recorded_at", *(c for c in PREDICTION_COLUMNS if c != "extrapolated")]
PRIOR_COLUMNS = [
    "experiment",
    "prefix_type",
    "prompt_key",
    "scope",
    "round",
    "model_version",
    "prediction",
    "lo",
    "hi",
    "observed",
    "abs_error",
    "covered",
]


def new_history_rows(history: pd.DataFrame, predictions: pd.DataFrame, recorded_at) -> pd.DataFrame:
    """The rows of ``predictions`` whose model version is not in ``history`` yet (a rerun of the same model adds none)."""
    known = set(history.model_version) if len(history) else set()
    new = predictions[~predictions.model_version.isin(known)]
    return new.assign(recorded_at=recorded_at)[HISTORY_COLUMNS]


def model_rounds(history: pd.DataFrame) -> pd.DataFrame:
    """(experiment, prefix_type, scope, model_version) → round: the model versions in the order they were first recorded."""
    first = (
        history.groupby(["experiment", "prefix_type", "scope", "model_version"], as_index=False)
        .recorded_at.min()
        .sort_values("recorded_at")
    )
    first["round"] = first.groupby(["experiment", "prefix_type", "scope"]).cumcount() + 1
    return first.drop(columns="recorded_at")


def prior_predictions(history: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """One row per prompt trained now (finite `observed` in ``current``) that was predicted before it was trained."""
    if history.empty or current.empty:
        return pd.DataFrame(columns=PRIOR_COLUMNS)
    h = history[~history.trained.astype(bool) & np.isfinite(history.prediction.astype(float))]
    h = h.merge(model_rounds(history), on=["experiment", "prefix_type", "scope", "model_version"])
    # the study's own model where it predicted the prompt, else the pooled one; then the latest round
    h = h.assign(_own=(h.scope == "experiment").astype(int)).sort_values(["_own", "round", "recorded_at"])
    prior = h.groupby(["experiment", "prefix_type", "prompt_key"], as_index=False).last()
    observed = (
        current[np.isfinite(current.observed.astype(float))]
        .groupby(["experiment", "prefix_type", "prompt_key"], as_index=False)["observed"]
        .first()
    )
    out = prior.drop(columns="observed").merge(observed, on=["experiment", "prefix_type", "prompt_key"])
    out["abs_error"] = (out.prediction - out.observed).abs()
    out["covered"] = (out.observed >= out.lo) & (out.observed <= out.hi)
    return out[PRIOR_COLUMNS].sort_values(["experiment", "prefix_type", "round", "prompt_key"]).reset_index(drop=True)


def round_summary(history: pd.DataFrame, prior: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, prefix type, scope, round): the mean interval width over the prompts that model predicted
    untrained, and the error and coverage of its predictions for the prompts later trained."""
    if history.empty:
        return pd.DataFrame()
    h = history[~history.trained.astype(bool)].merge(
        model_rounds(history), on=["experiment", "prefix_type", "scope", "model_version"]
    )
    keys = ["experiment", "prefix_type", "scope", "round"]
    width = (
        h.assign(width=h.hi - h.lo)
        .groupby(keys, as_index=False)
        .agg(n_untrained=("prompt_key", "size"), mean_width=("width", "mean"))
    )
    err = prior.groupby(keys, as_index=False).agg(
        n_trained_after=("prompt_key", "size"), mean_abs_error=("abs_error", "mean"), coverage=("covered", "mean")
    )
    return width.merge(err, on=keys, how="left")


def rounds_figure(prior: pd.DataFrame, summary: pd.DataFrame, experiment: str, prefix_type: str) -> plt.Figure | None:
    """Left: prior prediction (with its interval) against observed suppression, a colour per round. Right: per
    round, the mean interval width over the untrained prompts and the mean |error| of the prompts then trained."""
    p = prior[(prior.experiment == experiment) & (prior.prefix_type == prefix_type)]
    s = summary[(summary.experiment == experiment) & (summary.prefix_type == prefix_type)] if len(summary) else summary
    if p.empty:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6))
    colors = plt.get_cmap("viridis")
    rounds = sorted(p["round"].unique())
    for i, r in enumerate(rounds):
        q = p[p["round"] == r]
        c = colors(i / max(1, len(rounds) - 1))
        ax.errorbar(
            q.observed,
            q.prediction,
            yerr=[(q.prediction - q.lo).clip(lower=0), (q.hi - q.prediction).clip(lower=0)],
            fmt="o",
            color=c,
            ecolor=c,
            alpha=0.85,
            capsize=3,
            label=f"round {r} (n={len(q)})",
        )
    lims = [min(p.observed.min(), p.lo.min()), max(p.observed.max(), p.hi.max())]
    pad = 0.05 * (lims[1] - lims[0] or 1)
    lims = [lims[0] - pad, lims[1] + pad]
    ax.plot(lims, lims, "--", color="grey", lw=1, label="predicted = observed")
    ax.set(
        xlim=lims,
        ylim=lims,
        xlabel=f"observed {prefix_type} suppression (pp)",
        ylabel="predicted before training (pp), 90% interval",
    )
    cov = p.covered.mean()
    ax.set_title(
        f"{experiment}: {len(p)} prompts trained after a prediction\nmean |error| {p.abs_error.mean():.1f} pp, "
        f"interval coverage {cov:.0%}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.3)
    if len(s):
        for scope, g in s.groupby("scope"):
            bx.plot(g["round"], g.mean_width, "o-", label=f"mean interval width ({scope} model)")
            e = g.dropna(subset=["mean_abs_error"])
            if len(e):
                bx.plot(e["round"], e.mean_abs_error, "s--", label=f"mean |error| of prompts trained next ({scope})")
        bx.set(xlabel="round (model version, in order of fitting)", ylabel="pp")
        bx.set_xticks(sorted(s["round"].unique()))
        bx.set_title("by round", fontsize=10)
        bx.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.18), borderaxespad=0.0)
    else:
        bx.axis("off")
    fig.tight_layout()
    return fig
