"""Predicted against observed suppression, out of sample: one panel per validation (leave-one-prompt-out
per study and pooled, leave-one-study-out per direction) and prefix type, with the interval bars, and
R², Spearman ρ and coverage of the predictor against the group-mean baseline in the title."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from inoc.prediction.validation import BASELINE, PREDICTOR

SCHEME_LABEL = {"leave_one_prompt_out": "LOPO", "leave_one_study_out": "LOSO"}


def _fmt(v: float) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.2f}"


def panel_title(summary: pd.DataFrame, scheme: str, train: str, test: str, prefix_type: str) -> str:
    """`LOPO a · fixed` / `LOSO a → b · mix`, then R², ρ, coverage as `predictor (baseline)` and n."""
    head = (
        f"{SCHEME_LABEL[scheme]} {train}"
        + (f" → {test}" if scheme == "leave_one_study_out" else "")
        + f" · {prefix_type}"
    )
    s = summary[
        (summary.scheme == scheme)
        & (summary.train_scope == train)
        & (summary.test_scope == test)
        & (summary.prefix_type == prefix_type)
    ].set_index("model")
    if PREDICTOR not in s.index:
        return head
    p = s.loc[PREDICTOR]
    b = s.loc[BASELINE] if BASELINE in s.index else pd.Series(dtype=float)
    return (
        f"{head}, n={int(p.n)}\nR² {_fmt(p.r2)} ({_fmt(b.get('r2'))}) · ρ {_fmt(p.spearman)} ({_fmt(b.get('spearman'))})"
        f" · cov {_fmt(p.coverage)} ({_fmt(b.get('coverage'))})"
    )


def predicted_vs_observed(held: pd.DataFrame, summary: pd.DataFrame, title: str) -> plt.Figure | None:
    """Columns: the validations present (LOPO per scope, then LOSO per direction); rows: prefix types.
    Points: the predictor's held-out predictions (bars: its interval) against the observed suppression;
    the dashed line is y = x. Titles: predictor (group-mean baseline). None when nothing was validated."""
    held = held[held.model == PREDICTOR] if len(held) else held
    if held.empty:
        return None
    order = {"leave_one_prompt_out": 0, "leave_one_study_out": 1}
    cols = sorted(
        {(s, a, b) for s, a, b in zip(held.scheme, held.train_scope, held.test_scope)},
        key=lambda c: (order[c[0]], c[1] == "pooled", c[1], c[2]),
    )
    types = [t for t in ("fixed", "mix") if t in set(held.prefix_type)]
    fig, axes = plt.subplots(len(types), len(cols), figsize=(5.2 * len(cols), 4.6 * len(types) + 0.6), squeeze=False)
    for r, prefix_type in enumerate(types):
        for c, (scheme, train, test) in enumerate(cols):
            ax = axes[r][c]
            h = held[
                (held.scheme == scheme)
                & (held.train_scope == train)
                & (held.test_scope == test)
                & (held.prefix_type == prefix_type)
            ]
            h = h[np.isfinite(h.observed) & np.isfinite(h.prediction)]
            if h.empty:
                ax.axis("off")
                ax.text(
                    0.5,
                    0.5,
                    f"{SCHEME_LABEL[scheme]} {train} · {prefix_type}:\nnot validated (too few prompts)",
                    ha="center",
                    va="center",
                    fontsize=9,
                    transform=ax.transAxes,
                )
                continue
            below = (h.prediction - h.lo).fillna(0).clip(lower=0)
            above = (h.hi - h.prediction).fillna(0).clip(lower=0)
            ax.errorbar(
                h.observed,
                h.prediction,
                yerr=np.vstack([below, above]),
                fmt="o",
                ms=4,
                color="tab:blue",
                ecolor="tab:blue",
                elinewidth=0.8,
                alpha=0.8,
                capsize=0,
            )
            # One scale on both axes, so y = x is the diagonal and a miss reads as a distance.
            vals = np.concatenate([h.observed, h.prediction, h.lo, h.hi])
            vals = vals[np.isfinite(vals)]
            pad = 0.04 * max(float(np.ptp(vals)), 1.0)
            lim = (float(vals.min()) - pad, float(vals.max()) + pad)
            ax.plot(lim, lim, ls="--", color="0.5", lw=1)
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            ax.set_title(panel_title(summary, scheme, train, test, prefix_type), fontsize=9)
            ax.set_xlabel("observed suppression (pp)", fontsize=9)
            ax.set_ylabel("predicted suppression (pp)", fontsize=9)
            ax.tick_params(labelsize=8)
    fig.suptitle(
        title + "\ntitles: predictor (group-mean baseline); bars: the predictor's interval; dashed: y = x", fontsize=10
    )
    fig.tight_layout()
    return fig
