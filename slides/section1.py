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
from inoc.figures import ROLE_COLORS, plt, to_png

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


def slide_figure(con: duckdb.DuckDBPyConnection, slide: str) -> bytes:
    column, label = SLIDES[slide]
    data = con.execute(QUERY).df()
    experiments = sorted(data.experiment.unique()) or ["(no experiment with suppression)"]
    fig, axes = plt.subplots(len(experiments), 2, figsize=(10, 3.6 * len(experiments)), squeeze=False)
    for i, exp in enumerate(experiments):
        for j, prefix_type in enumerate(("fixed", "mix")):
            ax = axes[i][j]
            sub = data[(data.experiment == exp) & (data.prefix_type == prefix_type)]
            x, y = sub[column].to_numpy(float), sub.suppression.to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            xlabel = label
            if slide in ("pca", "svd"):
                xlabel += _variance_label(con, exp, prefix_type, "pca" if slide == "pca" else "truncated_svd")
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("suppression (pp)", fontsize=8)
            if ok.sum() < 3:
                ax.text(0.5, 0.5, f"{int(ok.sum())} prompt(s) with both values", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9, color="grey")  # fmt: skip
                ax.set_title(f"{exp} · {prefix_type}", fontsize=9)
                continue
            err = np.vstack([sub.suppression - sub.suppression_ci_lo, sub.suppression_ci_hi - sub.suppression])[:, ok]
            colors = [ROLE_COLORS["neutral"] if pd.isna(t) else ROLE_COLORS[r] for t, r in zip(sub.target[ok], sub.trait_role[ok])]
            ax.errorbar(x[ok], y[ok], yerr=err, fmt="none", ecolor="lightgrey", elinewidth=0.8, zorder=1)
            ax.scatter(x[ok], y[ok], c=colors, s=16, zorder=2)
            fit = linear_fit(x[ok], y[ok])
            ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
            ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
            r = "n/a" if math.isnan(fit.r) else f"{fit.r:+.2f}"
            ax.set_title(f"{exp} · {prefix_type}   r = {r}, n = {fit.n}", fontsize=9)
    fig.suptitle(f"Suppression of the prompt's own trait vs {label} (95% CI bars; OLS line with 95% band)", fontsize=10)
    fig.tight_layout()
    return to_png(fig)


#: Embedding slides (3b/3c, 4b/4c): prompts placed by their token-level coordinates, coloured by suppression.
EMBEDDINGS = {"pca_embedding": ("pc", "PCA"), "svd_embedding": ("sv", "TruncatedSVD")}


def embedding_figure(con: duckdb.DuckDBPyConnection, slide: str, dims: int = 2) -> bytes:
    prefix, label = EMBEDDINGS[slide]
    data = con.execute(QUERY).df()
    data = data[data.target == "trait"]
    experiments = sorted(data.experiment.unique()) or ["(no experiment with suppression)"]
    fig = plt.figure(figsize=(10, 4.2 * len(experiments)))
    for i, exp in enumerate(experiments):
        for j, prefix_type in enumerate(("fixed", "mix")):
            kw = {"projection": "3d"} if dims == 3 else {}
            ax = fig.add_subplot(len(experiments), 2, 2 * i + j + 1, **kw)
            sub = data[(data.experiment == exp) & (data.prefix_type == prefix_type)]
            cols = [f"{prefix}{k}" for k in range(1, dims + 1)]
            ok = sub[cols + ["suppression"]].notna().all(axis=1).to_numpy()
            ax.set_title(f"{exp} · {prefix_type}", fontsize=9)
            method = "pca" if prefix == "pc" else "truncated_svd"
            names = [f"{label} {k}{_variance_label(con, exp, prefix_type, method) if k == 1 else ''}" for k in range(1, dims + 1)]
            ax.set_xlabel(names[0], fontsize=7)
            ax.set_ylabel(names[1], fontsize=7)
            if dims == 3:
                ax.set_zlabel(names[2], fontsize=7)
            if ok.sum() == 0:
                ax.text2D(0.5, 0.5, "no token-level coordinates", transform=ax.transAxes, ha="center", color="grey") if dims == 3 else \
                    ax.text(0.5, 0.5, "no token-level coordinates", transform=ax.transAxes, ha="center", color="grey")  # fmt: skip
                continue
            pts = [sub[c].to_numpy(float)[ok] for c in cols]
            sc = ax.scatter(*pts, c=sub.suppression.to_numpy(float)[ok], cmap="viridis", s=22)
            fig.colorbar(sc, ax=ax, label="suppression (pp)", shrink=0.8)
    fig.suptitle(f"Prompts in {label} token space ({dims}-D), coloured by suppression of their own trait", fontsize=10)
    fig.tight_layout()
    return to_png(fig)
