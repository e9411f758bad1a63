"""Section 1 of the slides — predicting inoculation strength: four figures, each a grid of
experiments × prefix types, suppression of the prompt's own trait against one predictor, with an
OLS line and its 95% confidence band. Data come from SQL on `slides_dataset` only.
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd

from inoc.analysis.sigmoid import linear_fit
from inoc.figures import ROLE_COLORS, plt

#: slide name → (x column, x label). Labels of component axes get their explained variance added.
SLIDES = {
    "elicitation": ("elicitation", "elicitation of the trait (pp over no prefix)"),
    "ph": ("ph_combined", "PH: mean logprob gain of the training data"),
    "pca": ("pc1", "token-level PCA PC1"),
    "svd": ("sv1", "token-level TruncatedSVD SV1"),
}

# Own-trait rows (the trait the prompt's group elicits) and neutral prompts' rows for both traits.
QUERY = """
SELECT * FROM slides_dataset
WHERE suppression IS NOT NULL AND (target = 'trait' OR target IS NULL)
"""


def _variance_label(con: duckdb.DuckDBPyConnection, experiment: str, prefix_type: str, method: str) -> str:
    row = con.execute(
        "SELECT explained_variance_ratio FROM pca_variance WHERE experiment = ? AND matrix = ? AND method = ? AND component = 1",
        [experiment, f"{prefix_type}_tokens", method],
    ).fetchone()
    return f" ({100 * row[0]:.1f}%)" if row else ""


def _panels(data: pd.DataFrame, usable) -> tuple[list[tuple[str, str, pd.DataFrame]], list[str]]:
    """(experiment, prefix type, rows) of each panel that has a point, and why each other panel is not drawn."""
    panels, missing = [], []
    for exp in sorted(data.experiment.unique()):
        for prefix_type in ("fixed", "mix"):
            sub = data[(data.experiment == exp) & (data.prefix_type == prefix_type)]
            ok = usable(sub)
            if sub.empty:
                missing.append(f"{exp} · {prefix_type}: no {prefix_type} runs")
            elif not ok.any():
                missing.append(f"{exp} · {prefix_type}: no values")
            else:
                panels.append((exp, prefix_type, sub[ok]))
    return panels, missing


def _missing_note(missing: list[str]) -> str:
    if not missing:
        return ""
    shown = "; ".join(missing[:6]) + (f"; and {len(missing) - 6} more" if len(missing) > 6 else "")
    return f"\nnot drawn — {shown}"


def slide_figure(con: duckdb.DuckDBPyConnection, slide: str) -> plt.Figure | None:
    """Suppression of the prompt's own trait against the slide's predictor, one panel per experiment ×
    prefix type with data (2 per row); None when no experiment has both values for any prompt."""
    column, label = SLIDES[slide]
    data = con.execute(QUERY).df()
    panels, missing = _panels(data, lambda sub: np.isfinite(sub[column].to_numpy(float)) & np.isfinite(sub.suppression.to_numpy(float)))
    if not panels:
        return None
    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(10.5, 3.6 * rows), squeeze=False)
    roles_seen: dict[str, object] = {}
    for ax, (exp, prefix_type, sub) in zip(axes.flat, panels):
        x, y = sub[column].to_numpy(float), sub.suppression.to_numpy(float)
        xlabel = label
        if slide in ("pca", "svd"):
            xlabel += _variance_label(con, exp, prefix_type, "pca" if slide == "pca" else "truncated_svd")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("suppression of own trait (pp)")
        err = np.vstack([sub.suppression - sub.suppression_ci_lo, sub.suppression_ci_hi - sub.suppression])
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="lightgrey", elinewidth=0.8, zorder=1)
        roles = ["neutral" if pd.isna(t) else r for t, r in zip(sub.target, sub.trait_role)]
        for role in dict.fromkeys(roles):
            sel = np.array([r == role for r in roles])
            roles_seen.setdefault(role, ax.scatter(x[sel], y[sel], color=ROLE_COLORS[role], s=16, zorder=2))
        traits = ", ".join(sorted(sub.trait_name[sub.target == "trait"].unique()))
        if len(x) < 3 or np.ptp(x) == 0:
            ax.set_title(f"{exp} · {prefix_type} ({traits})   n = {len(x)}: no fit")
            continue
        fit = linear_fit(x, y)
        ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
        r = "n/a" if math.isnan(fit.r) else f"{fit.r:+.2f}"
        ax.set_title(f"{exp} · {prefix_type} ({traits})   r = {r}, n = {fit.n}")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"Suppression of the prompt's own trait vs {label} (95% CI bars; OLS line with 95% band)"
                 + _missing_note(missing), fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.legend(list(roles_seen.values()), [f"{r} prompt" for r in roles_seen], title="prompt role", loc="upper left",
               bbox_to_anchor=(1.0, 0.95))  # fmt: skip
    return fig


#: Embedding slides (3b/3c, 4b/4c): prompts placed by their token-level coordinates, coloured by suppression.
EMBEDDINGS = {"pca_embedding": ("pc", "PCA"), "svd_embedding": ("sv", "TruncatedSVD")}


def embedding_figure(con: duckdb.DuckDBPyConnection, slide: str, dims: int = 2) -> plt.Figure | None:
    """Prompts at their token-level coordinates, coloured by suppression, one panel per experiment ×
    prefix type with coordinates; None when no experiment has token-level coordinates."""
    prefix, label = EMBEDDINGS[slide]
    data = con.execute(QUERY).df()
    data = data[data.target == "trait"]
    cols = [f"{prefix}{k}" for k in range(1, dims + 1)]
    panels, missing = _panels(data, lambda sub: sub[cols + ["suppression"]].notna().all(axis=1).to_numpy())
    if not panels:
        return None
    rows = math.ceil(len(panels) / 2)
    fig = plt.figure(figsize=(11, 4.4 * rows))
    method = "pca" if prefix == "pc" else "truncated_svd"
    for i, (exp, prefix_type, sub) in enumerate(panels):
        kw = {"projection": "3d"} if dims == 3 else {}
        ax = fig.add_subplot(rows, 2, i + 1, **kw)
        traits = ", ".join(sorted(sub.trait_name.unique()))
        ax.set_title(f"{exp} · {prefix_type} ({traits})")
        names = [f"{label} {k}{_variance_label(con, exp, prefix_type, method) if k == 1 else ''}" for k in range(1, dims + 1)]
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if dims == 3:
            ax.set_zlabel(names[2])
        pts = [sub[c].to_numpy(float) for c in cols]
        sc = ax.scatter(*pts, c=sub.suppression.to_numpy(float), cmap="viridis", s=22)
        fig.colorbar(sc, ax=ax, label="suppression of own trait (pp)", shrink=0.8, pad=0.12 if dims == 3 else 0.05)
    fig.suptitle(f"Prompts in {label} token space ({dims}-D), coloured by suppression of their own trait" + _missing_note(missing),
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig
