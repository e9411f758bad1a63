"""Figures as PNG bytes (matplotlib, headless). Every plotted score carries its 95% CI."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PREFIX_COLORS = {"fixed": "#1f77b4", "mix": "#ff7f0e"}


def to_png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG for Dagster's markdown metadata, so the figure shows in the UI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def suppression_bars(table: pd.DataFrame, title: str) -> bytes:
    """Per prompt (grouped), suppression of its targeted trait, fixed vs mix, with 95% CI error bars."""
    shown = table[(table.target == "trait")]
    if shown.empty:
        shown = table
    prompts = list(dict.fromkeys(shown.prompt_key))
    x = np.arange(len(prompts))
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(prompts) + 2), 4.2))
    for i, prefix_type in enumerate(("fixed", "mix")):
        sub = shown[shown.prefix_type == prefix_type].set_index("prompt_key").reindex(prompts)
        err = np.vstack([sub.suppression - sub.ci_lo, sub.ci_hi - sub.suppression])
        ax.bar(x + (i - 0.5) * width, sub.suppression, width, yerr=err, capsize=2,
               label=prefix_type, color=PREFIX_COLORS[prefix_type])  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x, prompts, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("suppression of the targeted trait (pp, 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(title="prefix")
    # Group boundaries help read the study's prompt groups.
    groups = shown.drop_duplicates("prompt_key").set_index("prompt_key").reindex(prompts).prompt_group.tolist()
    for j in range(1, len(groups)):
        if groups[j] != groups[j - 1]:
            ax.axvline(j - 0.5, color="grey", linewidth=0.5, linestyle=":")
    return to_png(fig)


ROLE_COLORS = {"negative": "#d62728", "positive": "#1f77b4", "neutral": "#7f7f7f", "mixed": "#9467bd"}


def pca_scatter(coords: pd.DataFrame, variance: pd.DataFrame, roles: dict[str, str], title: str) -> bytes:
    """PC1 vs PC2 of each prompt's W row, coloured by role; axis labels carry explained variance."""
    wide = coords.pivot(index="prompt_key", columns="component", values="value")
    ratio = variance.set_index("component").explained_variance_ratio
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for role, color in ROLE_COLORS.items():
        keys = [k for k in wide.index if roles.get(k) == role]
        if keys:
            ax.scatter(wide.loc[keys, 1], wide.loc[keys, 2], s=22, color=color, label=role)
    for key, row in wide.iterrows():
        ax.annotate(key, (row[1], row[2]), fontsize=5.5, alpha=0.75, xytext=(2, 2), textcoords="offset points")
    ax.axhline(0, color="grey", linewidth=0.4)
    ax.axvline(0, color="grey", linewidth=0.4)
    ax.set_xlabel(f"component 1 ({100 * ratio.get(1, np.nan):.1f}%)")
    ax.set_ylabel(f"component 2 ({100 * ratio.get(2, np.nan):.1f}%)")
    ax.set_title(title, fontsize=10)
    ax.legend(title="prompt role", fontsize=8)
    return to_png(fig)


def angle_heatmap(pairs: pd.DataFrame, keys: list[str], title: str) -> bytes:
    """Pairwise angles (degrees) between prompts, in config order."""
    mat = pairs.pivot(index="prompt_a", columns="prompt_b", values="angle_deg").reindex(index=keys, columns=keys)
    np.fill_diagonal(mat.values, 0.0)
    fig, ax = plt.subplots(figsize=(max(5, 0.16 * len(keys) + 2), max(4.5, 0.16 * len(keys) + 1.5)))
    im = ax.imshow(mat.to_numpy(float), cmap="viridis", vmin=0, vmax=180)
    ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=5)
    ax.set_yticks(range(len(keys)), keys, fontsize=5)
    fig.colorbar(im, ax=ax, label="angle (degrees)")
    ax.set_title(title, fontsize=10)
    return to_png(fig)
