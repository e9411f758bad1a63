"""Figures as PNG bytes (matplotlib, headless). Every plotted score carries its 95% CI."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

PREFIX_COLORS = {"fixed": "#1f77b4", "mix": "#ff7f0e", "close_mix": "#2ca02c"}


def prefix_type_of_run(run: str, known: dict[str, str] | None = None) -> str:
    """fixed, mix or close_mix from a run id: computed ``<prompt>/<type>`` or the original's
    ``<key>``, ``<key>_mix``, ``<key>_close_mix``; ``known`` (original run key → type) wins."""
    name = run.rsplit("/", 1)[-1]
    if known and name in known:
        return known[name]
    if name in PREFIX_COLORS:
        return name
    return "close_mix" if name.endswith("_close_mix") else "mix" if name.endswith("_mix") else "fixed"


def to_png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG for Dagster's markdown metadata, so the figure shows in the UI."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def run_label(run: str, short: bool = False) -> str:
    """A run's name in a figure: computed ``[lr…/]<prompt>/<type>`` → ``<prompt> (<type>)`` (``short``:
    ``<prompt>``, for panels already split by type); an original's ``<batch>/<key>`` → ``<key>``."""
    parts = run.split("/")
    if len(parts) >= 2 and parts[-1] in PREFIX_COLORS:
        return parts[-2] if short else f"{parts[-2]} ({parts[-1]})"
    return parts[-1]


def suppression_bars(table: pd.DataFrame, title: str) -> bytes:
    """Per prompt (grouped), suppression of its targeted trait (neutral prompts: the negative trait),
    fixed vs mix (vs close_mix), with 95% CI error bars."""
    shown = table[(table.target == "trait") | (table.target.isna() & (table.trait_role == "negative"))]
    if shown.empty:
        shown = table
    prompts = list(dict.fromkeys(shown.prompt_key))
    x = np.arange(len(prompts))
    types = [t for t in PREFIX_COLORS if t != "close_mix" or (shown.prefix_type == t).any()]
    width = 0.8 / len(types)
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(prompts) + 2), 4.2))
    for i, prefix_type in enumerate(types):
        sub = shown[shown.prefix_type == prefix_type].set_index("prompt_key").reindex(prompts)
        err = np.vstack([sub.suppression - sub.ci_lo, sub.ci_hi - sub.suppression])
        ax.bar(x + (i - (len(types) - 1) / 2) * width, sub.suppression, width, yerr=err, capsize=2,
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


def suppression_vs_learning_rate(table: pd.DataFrame, title: str) -> bytes:
    """Suppression of the targeted trait (neutral prompts: the negative trait) against the learning
    rate, one line per prompt and prefix type, each point against its own rate's control (95% CI)."""
    shown = table[(table.target == "trait") | (table.target.isna() & (table.trait_role == "negative"))]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = {"fixed": "-", "mix": "--", "close_mix": ":"}
    for (key, prefix_type), g in shown.groupby(["prompt_key", "prefix_type"], sort=False):
        g = g.sort_values("learning_rate")
        err = np.vstack([g.suppression - g.ci_lo, g.ci_hi - g.suppression])
        ax.errorbar(g.learning_rate, g.suppression, yerr=err, capsize=2, marker="o", markersize=4,
                    linestyle=styles.get(prefix_type, "-"), label=f"{key} ({prefix_type})")  # fmt: skip
    ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("suppression vs the rate's own control (pp, 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
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


def _no_data(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="grey")


def training_curves(summary: pd.DataFrame, title: str, known: dict[str, str] | None = None) -> bytes:
    """Mean trait score vs step per run with shaded 95% CI bands: one row per (trait, condition), one
    column per prefix type (fixed, mix, close_mix), the control in black in every panel for reference."""
    traits = sorted(summary.trait.unique())
    conds = [c for c in ("default", "training") if c in set(summary.condition)]
    is_control = summary.run.str.rsplit("/", n=1).str[-1].str.startswith("no_inoc")
    kind = summary.run.map(lambda r: prefix_type_of_run(r, known)).where(~is_control, "control")
    cols = [t for t in PREFIX_COLORS if (kind == t).any()] or ["control"]
    fig, axes = plt.subplots(len(traits) * len(conds), len(cols), figsize=(4.6 * len(cols) + 1.5, 2.9 * len(traits) * len(conds)),
                             squeeze=False, sharex=True)  # fmt: skip
    cmap = plt.get_cmap("tab10")
    for i, (trait, cond) in enumerate((t, c) for t in traits for c in conds):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            runs = list(dict.fromkeys(summary.run[(kind == col) | is_control]))
            for k, run in enumerate(runs):
                s = summary[(summary.run == run) & (summary.trait == trait) & (summary.condition == cond)].sort_values("step")
                if s.empty:
                    continue
                color = "black" if is_control[summary.run == run].iloc[0] else cmap(k % 10)
                ax.plot(s.step, s["mean"], marker="o", markersize=2.5, linewidth=1, color=color, label=run_label(run, short=True))
                ax.fill_between(s.step, s.ci_lo, s.ci_hi, color=color, alpha=0.15, linewidth=0)
            ax.set_title(f"{trait} · {cond} · {col}", fontsize=9)
            ax.set_ylim(-2, 102)
            if i == 0:
                ax.legend(fontsize=5.5, loc="best")
        axes[i][0].set_ylabel("judge score (0-100, 95% CI)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("training step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def loss_curves(losses: pd.DataFrame, title: str, known: dict[str, str] | None = None) -> bytes:
    """Training loss per run, one panel per prefix type (controls, fixed, mix, close_mix), so a study
    of many runs stays readable; the control is drawn in black in every panel for reference."""
    kind = losses.run.map(lambda r: "control" if r.rsplit("/", 1)[-1].startswith("no_inoc") else prefix_type_of_run(r, known))
    panels = [k for k in ("control", *PREFIX_COLORS) if (kind == k).any()]
    control = losses[losses.run.str.rsplit("/", n=1).str[-1] == "no_inoculation"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 4), sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel != "control":
            for run, g in control.groupby("run", sort=False):
                g = g.sort_values("step")
                ax.plot(g.step, g.loss, linewidth=1.2, color="black", label=f"{run.split('/')[-1]} (control)")
        for run, g in losses[kind == panel].groupby("run", sort=False):
            g = g.sort_values("step")
            ax.plot(g.step, g.loss, linewidth=0.8, label=run_label(run, short=True))
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=5.5, loc="upper right")
    axes[0][0].set_ylabel("training loss")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def scatter_grid(frame: pd.DataFrame, xs: list[str], y: str, ylabel: str, title: str, ci: tuple[str, str] | None = None) -> bytes:
    """One panel per X column: y against it with an OLS line and its 95% band (and y CI bars if given)."""
    from inoc.analysis.sigmoid import linear_fit

    cols = min(4, len(xs))
    rows = int(np.ceil(len(xs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.0 * rows), squeeze=False)
    for ax, x in zip(axes.flat, xs):
        xv, yv = frame[x].to_numpy(float), frame[y].to_numpy(float)
        ok = np.isfinite(xv) & np.isfinite(yv)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=7)
        if ok.sum() < 3:
            _no_data(ax, f"{int(ok.sum())} point(s)")
            continue
        if ci is not None:
            lo, hi = frame[ci[0]].to_numpy(float)[ok], frame[ci[1]].to_numpy(float)[ok]
            ax.errorbar(xv[ok], yv[ok], yerr=np.vstack([yv[ok] - lo, hi - yv[ok]]), fmt="none", ecolor="lightgrey", elinewidth=0.8)
        ax.scatter(xv[ok], yv[ok], s=14, color="#1f77b4", zorder=2)
        if np.ptp(xv[ok]) == 0:  # every point at one x (a few prompts alike): no line to fit
            ax.set_title(f"no fit: {x} is {xv[ok][0]:.3g} for all n = {int(ok.sum())}", fontsize=8)
            continue
        fit = linear_fit(xv[ok], yv[ok])
        ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
        ax.set_title(f"r = {fit.r:+.2f}, n = {fit.n}", fontsize=8)
    for ax in list(axes.flat)[len(xs):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)


def angle_bars(groups: pd.DataFrame, title: str) -> bytes:
    """Mean pairwise angle per pair type and representation, error bars = ±1 population std."""
    reps = list(dict.fromkeys(groups.representation))
    types = list(dict.fromkeys(groups.pair_type))
    x = np.arange(len(types))
    width = 0.8 / max(1, len(reps))
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, rep in enumerate(reps):
        g = groups[groups.representation == rep].set_index("pair_type").reindex(types)
        ax.bar(x + (i - (len(reps) - 1) / 2) * width, g.mean_deg, width, yerr=g.std_deg, capsize=2, label=rep)
    ax.set_xticks(x, [t.replace("_", " ") for t in types], fontsize=8)
    ax.set_ylabel("angle (degrees, mean ± std)")
    ax.set_title(title, fontsize=10)
    ax.legend(title="representation", fontsize=8)
    return to_png(fig)


def sigmoid_panel(x: np.ndarray, y: np.ndarray, y_lo: np.ndarray, y_hi: np.ndarray, fit, xlabel: str, title: str) -> bytes:
    """Points (with their 95% CI) and a 4-parameter logistic fit with its bootstrap 95% band (or the OLS fallback)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(x, y, yerr=np.vstack([y - y_lo, y_hi - y]), fmt="none", ecolor="lightgrey", elinewidth=0.8)
    ax.scatter(x, y, s=16, color="#1f77b4", zorder=2)
    ax.plot(fit.grid, fit.curve, color="black", linewidth=1.2, label=fit.method)
    if np.isfinite(fit.band_lo).any():
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0, label="95% band")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("suppression (pp)")
    ax.set_title(f"{title}\nR² = {fit.r2:.2f}, n = {fit.n}", fontsize=9)
    ax.legend(fontsize=8)
    return to_png(fig)


def em_rates(summary: pd.DataFrame, prompt_groups: dict[str, str], title: str, known: dict[str, str] | None = None) -> bytes:
    """The EM suite at the final step: (1) EM rate per run, by eval set × condition; (2) in- vs
    out-of-distribution EM rate per run; (3) EM rate by prompt type × rephrasing (fixed, mix, close_mix).
    Binomial 95% CIs."""
    step = int(summary.step.max())
    final = summary[summary.step == step]
    runs = list(dict.fromkeys(sorted(final.run, key=lambda r: (prompt_groups.get(r, "~"), r))))
    fig, axes = plt.subplots(3, 1, figsize=(max(8, 0.45 * len(runs) + 3), 12))
    cells = [(e, c) for e in ("em", "fa") for c in ("default", "training")]
    width = 0.8 / len(cells)
    x = np.arange(len(runs))
    for i, (e, c) in enumerate(cells):
        sub = final[(final.eval_set == e) & (final.condition == c)].set_index("run").reindex(runs)
        err = np.vstack([sub.em_rate - sub.em_rate_ci_lo, sub.em_rate_ci_hi - sub.em_rate]).clip(min=0) * 100
        axes[0].bar(x + (i - 1.5) * width, 100 * sub.em_rate, width, yerr=err, capsize=1.5, label=f"{e}/{c}")
    axes[0].set_xticks(x, [run_label(r) for r in runs], rotation=70, ha="right", fontsize=7)
    axes[0].set_ylabel("EM rate (%, 95% CI)")
    axes[0].legend(fontsize=7, title="eval set / condition")
    axes[0].set_title(f"(1) EM rate by run, step {step}", fontsize=9)
    d = final[final.condition == "default"].pivot_table(index="run", columns="eval_set", values=["em_rate", "n_pairs"])
    if {"em", "fa"} <= set(d.columns.get_level_values(1)):
        for run in d.index:
            p_fa, p_em = d.loc[run, ("em_rate", "fa")], d.loc[run, ("em_rate", "em")]
            n_fa, n_em = d.loc[run, ("n_pairs", "fa")], d.loc[run, ("n_pairs", "em")]
            axes[1].errorbar(100 * p_fa, 100 * p_em, xerr=196 * np.sqrt(p_fa * (1 - p_fa) / n_fa),
                             yerr=196 * np.sqrt(p_em * (1 - p_em) / n_em), fmt="o", markersize=4, capsize=2)  # fmt: skip
            axes[1].annotate(run_label(run), (100 * p_fa, 100 * p_em), fontsize=6, xytext=(3, 3), textcoords="offset points")
    axes[1].set_xlabel("in-distribution (fa) EM rate, default condition (%)")
    axes[1].set_ylabel("general (em) EM rate (%)")
    axes[1].set_title("(2) in- vs out-of-distribution", fontsize=9)
    axes[1].set_xlim(-5, 105)
    axes[1].set_ylim(-5, 105)
    g = final[(final.eval_set == "em") & (final.condition == "default")].copy()
    g["group"] = g.run.map(lambda r: prompt_groups.get(r, "control"))
    g["prefix"] = g.run.map(lambda r: prefix_type_of_run(r, known))
    types = list(dict.fromkeys(sorted(g.group)))
    xt = np.arange(len(types))
    prefixes = [p for p in PREFIX_COLORS if (g.prefix == p).any()]  # e.g. a study without mix runs
    w = 0.8 / max(1, len(prefixes))
    for j, prefix in enumerate(prefixes):
        sub = g[g.prefix == prefix]
        agg = sub.assign(k=sub.em_rate * sub.n_pairs, n=sub.n_pairs).groupby("group")[["k", "n"]].sum().reindex(types)
        p = agg.k / agg.n
        axes[2].bar(xt + (j - (len(prefixes) - 1) / 2) * w, 100 * p, w, yerr=196 * np.sqrt(p * (1 - p) / agg.n),
                    capsize=2, label=prefix, color=PREFIX_COLORS[prefix])
    axes[2].set_xticks(xt, types, fontsize=8)
    axes[2].set_ylabel("EM rate on general questions (%, 95% CI)")
    axes[2].legend(fontsize=8, title="rephrasing")
    axes[2].set_title("(3) prompt type × rephrasing (pooled runs)", fontsize=9)
    axes[2].set_ylim(-2, 100)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return to_png(fig)
