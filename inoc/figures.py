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
