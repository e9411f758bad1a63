"""Figures as matplotlib Figures (headless), rendered by ``render``. Every plotted score carries its 95% CI.

Rules every figure keeps (checked by ``inoc.figure_checks``): no panel without data (a panel with
nothing to show is omitted and the title says why), text at 8 pt or more, legends outside the
axes, a legend or colorbar for every scatter's colours, and trait names in axis labels.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from inoc.figure_checks import FigureProblem, figure_problems  # noqa: E402

PREFIX_COLORS = {"fixed": "#1f77b4", "mix": "#ff7f0e", "close_mix": "#2ca02c"}
ROLE_COLORS = {"negative": "#d62728", "positive": "#1f77b4", "neutral": "#7f7f7f", "mixed": "#9467bd"}
FONT = 8  # the smallest text on any figure (pt)
#: Width in pixels of the downscaled copy shown in the Dagster UI (its metadata dialog is about this wide).
THUMBNAIL_PX = 640
DPI = 130

plt.rcParams.update(
    {
        "font.size": 9,
        "axes.titlesize": 9,
        "axes.labelsize": 9,
        "xtick.labelsize": FONT,
        "ytick.labelsize": FONT,
        "legend.fontsize": FONT,
        "legend.title_fontsize": FONT,
    }
)


def prefix_type_of_run(run: str, known: dict[str, str] | None = None) -> str:
    """fixed, mix or close_mix from a run id: computed ``<prompt>/<type>`` or the original's
    ``<key>``, ``<key>_mix``, ``<key>_close_mix``; ``known`` (original run key → type) wins."""
    name = run.rsplit("/", 1)[-1]
    if known and name in known:
        return known[name]
    if name in PREFIX_COLORS:
        return name
    return "close_mix" if name.endswith("_close_mix") else "mix" if name.endswith("_mix") else "fixed"


@dataclass
class Rendered:
    """A figure as a full-size PNG, a downscaled PNG for the UI, and what keeps it off a slide."""

    png: bytes
    thumbnail: bytes
    problems: list[FigureProblem] = field(default_factory=list)


def to_png(fig: plt.Figure, dpi: float = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _thumbnail(png: bytes) -> bytes:
    """At most THUMBNAIL_PX wide, palette-quantized: tens of kB for the UI instead of the full file."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > THUMBNAIL_PX:
        img = img.resize((THUMBNAIL_PX, round(img.height * THUMBNAIL_PX / img.width)), Image.LANCZOS)
    buf = io.BytesIO()
    # Octree keeps the few saturated marker colours that median-cut merges into grey on a white figure.
    img.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def render(fig: plt.Figure) -> Rendered:
    """Check the figure, then render it (full size and thumbnail) and close it."""
    try:
        problems = figure_problems(fig)
        png = to_png(fig)
    finally:
        plt.close(fig)
    return Rendered(png, _thumbnail(png), problems)


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG for Dagster's markdown metadata (pass a thumbnail: the UI shows it without a click)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def run_label(run: str, short: bool = False) -> str:
    """A run's name in a figure: computed ``[lr…/]<prompt>/<type>`` → ``<prompt> (<type>)`` (``short``:
    ``<prompt>``, for panels already split by type); an original's ``<batch>/<key>`` → ``<key>``."""
    parts = run.split("/")
    if len(parts) >= 2 and parts[-1] in PREFIX_COLORS:
        return parts[-2] if short else f"{parts[-2]} ({parts[-1]})"
    return parts[-1]


def _legend_outside(ax: plt.Axes, **kw) -> None:
    """Legend to the right of the axes: it never covers data, whatever the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def _trait_label(traits: list[str], what: str) -> str:
    """``what`` of the named trait: one trait by name, several as each prompt's own trait (named)."""
    traits = sorted({t for t in traits if isinstance(t, str)})
    if len(traits) == 1:
        return f"{what} of {traits[0]}"
    return f"{what} of each prompt's own trait ({', '.join(traits)})"


def _shown_suppression(table: pd.DataFrame) -> pd.DataFrame:
    """Each prompt's own trait (neutral prompts: the negative trait)."""
    return table[(table.target == "trait") | (table.target.isna() & (table.trait_role == "negative"))]


def suppression_bars(table: pd.DataFrame, title: str) -> plt.Figure:
    """Per prompt (grouped), suppression of its targeted trait (neutral prompts: the negative trait),
    fixed vs mix (vs close_mix), with 95% CI error bars; the trait is named on the axis, or per
    prompt when prompts target different traits."""
    shown = _shown_suppression(table)
    if shown.empty:
        shown = table
    prompts = list(dict.fromkeys(shown.prompt_key))
    trait_of = shown.drop_duplicates("prompt_key").set_index("prompt_key").trait.reindex(prompts)
    mixed = trait_of.nunique() > 1
    x = np.arange(len(prompts))
    types = [t for t in PREFIX_COLORS if (shown.prefix_type == t).any()]
    width = 0.8 / max(1, len(types))
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(prompts) + 2), 4.2))
    for i, prefix_type in enumerate(types):
        sub = shown[shown.prefix_type == prefix_type].set_index("prompt_key").reindex(prompts)
        err = np.vstack([sub.suppression - sub.ci_lo, sub.ci_hi - sub.suppression])
        ax.bar(
            x + (i - (len(types) - 1) / 2) * width,
            sub.suppression,
            width,
            yerr=err,
            capsize=2,
            label=prefix_type,
            color=PREFIX_COLORS[prefix_type],
            error_kw={"elinewidth": 0.8},
        )
    ax.axhline(0, color="black", linewidth=0.6)
    ticks = [f"{p} · {trait_of[p]}" for p in prompts] if mixed else prompts
    ax.set_xticks(x, ticks, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_ylabel(_trait_label(list(trait_of), "suppression") + "\n(pp vs control, 95% CI)")
    ax.set_title(title, fontsize=10)
    _legend_outside(ax, title="prefix")
    # Group boundaries help read the study's prompt groups.
    groups = shown.drop_duplicates("prompt_key").set_index("prompt_key").reindex(prompts).prompt_group.tolist()
    for j in range(1, len(groups)):
        if groups[j] != groups[j - 1]:
            ax.axvline(j - 0.5, color="grey", linewidth=0.5, linestyle=":")
    return fig


def suppression_vs_learning_rate(table: pd.DataFrame, title: str) -> plt.Figure:
    """Suppression of the targeted trait (neutral prompts: the negative trait) against the learning
    rate, one line per prompt and prefix type, each point against its own rate's control (95% CI)."""
    shown = _shown_suppression(table)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    styles = {"fixed": "-", "mix": "--", "close_mix": ":"}
    for (key, prefix_type), g in shown.groupby(["prompt_key", "prefix_type"], sort=False):
        g = g.sort_values("learning_rate")
        err = np.vstack([g.suppression - g.ci_lo, g.ci_hi - g.suppression])
        ax.errorbar(
            g.learning_rate,
            g.suppression,
            yerr=err,
            capsize=2,
            marker="o",
            markersize=4,
            linestyle=styles.get(prefix_type, "-"),
            label=f"{key} ({prefix_type}, {g.trait.iloc[0]})",
        )
    ax.set_xscale("log")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(_trait_label(list(shown.trait), "suppression") + "\n(pp vs the rate's own control, 95% CI)")
    ax.set_title(title, fontsize=10)
    _legend_outside(ax)
    return fig


def pca_scatter(coords: pd.DataFrame, variance: pd.DataFrame, roles: dict[str, str], title: str) -> plt.Figure:
    """PC1 vs PC2 of each prompt's W row, coloured by role; axis labels carry explained variance."""
    wide = coords.pivot(index="prompt_key", columns="component", values="value")
    ratio = variance.set_index("component").explained_variance_ratio
    side = min(11.0, 5 + 0.05 * len(wide))
    fig, ax = plt.subplots(figsize=(side + 1.5, side * 0.8))
    for role, color in ROLE_COLORS.items():
        keys = [k for k in wide.index if roles.get(k) == role]
        if keys:
            ax.scatter(wide.loc[keys, 1], wide.loc[keys, 2], s=22, color=color, label=role)
    for key, row in wide.iterrows():
        ax.annotate(key, (row[1], row[2]), fontsize=FONT, alpha=0.75, xytext=(2, 2), textcoords="offset points")
    ax.axhline(0, color="grey", linewidth=0.4)
    ax.axvline(0, color="grey", linewidth=0.4)
    ax.set_xlabel(f"component 1 ({100 * ratio.get(1, np.nan):.1f}% of variance)")
    ax.set_ylabel(f"component 2 ({100 * ratio.get(2, np.nan):.1f}% of variance)")
    ax.set_title(title, fontsize=10)
    _legend_outside(ax, title="prompt role")
    return fig


def angle_heatmap(pairs: pd.DataFrame, keys: list[str], title: str) -> plt.Figure:
    """Pairwise angles (degrees) between prompts, in config order."""
    mat = pairs.pivot(index="prompt_a", columns="prompt_b", values="angle_deg").reindex(index=keys, columns=keys)
    np.fill_diagonal(mat.values, 0.0)
    side = max(5.0, 0.14 * len(keys) + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(mat.to_numpy(float), cmap="viridis", vmin=0, vmax=180)
    ax.set_xticks(range(len(keys)), keys, rotation=90)
    ax.set_yticks(range(len(keys)), keys)
    fig.colorbar(im, ax=ax, label="angle (degrees)", shrink=0.8)
    ax.set_title(title, fontsize=10)
    return fig


def _is_control(runs: pd.Series) -> pd.Series:
    return runs.str.rsplit("/", n=1).str[-1].str.startswith("no_inoc")


def _run_colors(labels: list[str]) -> dict[str, object]:
    """One colour per prompt label, the same in every panel (controls are black)."""
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _step_axis(ax: plt.Axes, steps: np.ndarray) -> str:
    """Power-of-two checkpoint schedules read on a symlog axis; others linearly."""
    s = np.unique(steps[np.isfinite(steps)])
    if len(s) >= 5 and s.max() > 0 and np.median(s) < 0.25 * s.max():
        ax.set_xscale("symlog", linthresh=1)
        return "training step (symlog scale)"
    return "training step"


def training_curves(summary: pd.DataFrame, title: str, known: dict[str, str] | None = None) -> plt.Figure:
    """Mean trait score vs step per run with shaded 95% CI bands: one row per (trait, condition), one
    column per prefix type (fixed, mix, close_mix), the control in black in every panel for reference."""
    traits = sorted(summary.trait.unique())
    conds = [c for c in ("default", "training") if c in set(summary.condition)]
    is_control = _is_control(summary.run)
    kind = summary.run.map(lambda r: prefix_type_of_run(r, known)).where(~is_control, "control")
    cols = [t for t in PREFIX_COLORS if (kind == t).any()] or ["control"]
    labels = list(dict.fromkeys(run_label(r, short=True) for r in summary.run[~is_control]))
    colors = _run_colors(labels)
    n_steps = summary.step.nunique()
    fig, axes = plt.subplots(
        len(traits) * len(conds),
        len(cols),
        figsize=(4.4 * len(cols) + 1.5, 2.9 * len(traits) * len(conds)),
        squeeze=False,
        sharex=True,
    )
    handles: dict[str, object] = {}
    for i, (trait, cond) in enumerate((t, c) for t in traits for c in conds):
        for j, col in enumerate(cols):
            ax = axes[i][j]
            runs = list(dict.fromkeys(summary.run[(kind == col) | is_control]))
            for run in runs:
                s = summary[(summary.run == run) & (summary.trait == trait) & (summary.condition == cond)].sort_values(
                    "step"
                )
                if s.empty:
                    continue
                control = bool(is_control[summary.run == run].iloc[0])
                label = f"{run_label(run)} (control)" if control else run_label(run, short=True)
                color = "black" if control else colors[label]
                (line,) = ax.plot(
                    s.step, s["mean"], marker="o", markersize=3, linewidth=1.2 if control else 1, color=color
                )
                ax.fill_between(s.step, s.ci_lo, s.ci_hi, color=color, alpha=0.12, linewidth=0)
                handles.setdefault(label, line)
            ax.set_title(f"{trait} · {cond} condition · {col}")
            ax.set_ylim(-2, 102)
        axes[i][0].set_ylabel(f"{trait} score (0-100, 95% CI)")
    xlabel = _step_axis(axes[-1][0], summary.step.to_numpy(float))
    for ax in axes[-1]:
        ax.set_xlabel(xlabel)
    fig.suptitle(f"{title} · {n_steps} checkpoint(s) per run", fontsize=10)
    fig.tight_layout()
    _run_legend(fig, handles, 0.95)
    return fig


MAX_LEGEND = 24  # run names beyond this are unreadable in a legend


def _run_legend(fig: plt.Figure, handles: dict[str, object], y: float) -> None:
    """One legend for all panels, right of them; with many runs only the controls are named (and the title says so)."""
    if len(handles) > MAX_LEGEND:
        handles = {k: v for k, v in handles.items() if k.endswith("(control)")}
        title = f"runs (colours; {MAX_LEGEND}+ runs, only controls named)"
    else:
        title = "run"
    if handles:
        fig.legend(list(handles.values()), list(handles.keys()), loc="upper left", bbox_to_anchor=(1.0, y), title=title)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (shrinking at the ends), NaN-aware."""
    return pd.Series(values).rolling(window, center=True, min_periods=1).mean().to_numpy()


def loss_curves(losses: pd.DataFrame, title: str, known: dict[str, str] | None = None) -> plt.Figure:
    """Training loss per run, one panel per prefix type (controls, fixed, mix, close_mix), so a study
    of many runs stays readable: a centred moving average over ~5% of the steps, the raw loss faint
    in the same colour; the control is drawn in black in every panel for reference."""
    is_control = _is_control(losses.run)
    kind = losses.run.map(lambda r: prefix_type_of_run(r, known)).where(~is_control, "control")
    panels = [k for k in ("control", *PREFIX_COLORS) if (kind == k).any()]
    control = losses[losses.run.str.rsplit("/", n=1).str[-1] == "no_inoculation"]
    colors = _run_colors(list(dict.fromkeys(run_label(r, short=True) for r in losses.run[~is_control])))
    window = max(1, int(round(0.05 * losses.groupby("run").size().max())))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 4), sharey=True, squeeze=False)
    handles: dict[str, object] = {}

    def draw(ax, run, g, color, lw):
        g = g.sort_values("step")
        ax.plot(g.step, g.loss, linewidth=0.6, color=color, alpha=0.25)
        (line,) = ax.plot(g.step, smooth(g.loss.to_numpy(float), window), linewidth=lw, color=color)
        return line

    for ax, panel in zip(axes[0], panels):
        if panel != "control":
            for run, g in control.groupby("run", sort=False):
                handles.setdefault(f"{run.split('/')[-1]} (control)", draw(ax, run, g, "black", 1.3))
        for run, g in losses[kind == panel].groupby("run", sort=False):
            label = f"{run.split('/')[-1]} (control)" if panel == "control" else run_label(run, short=True)
            handles.setdefault(label, draw(ax, run, g, "black" if panel == "control" else colors[label], 1.1))
        ax.set_title(panel)
        ax.set_xlabel("optimizer step")
    axes[0][0].set_ylabel("training loss")
    smoothing = f"moving average over {window} steps, raw loss faint" if window > 1 else "raw loss"
    fig.suptitle(f"{title} ({smoothing})", fontsize=10)
    fig.tight_layout()
    _run_legend(fig, handles, 0.92)
    return fig


def scatter_grid(
    frame: pd.DataFrame, xs: list[str], y: str, ylabel: str, title: str, ci: tuple[str, str] | None = None
) -> plt.Figure | None:
    """One panel per X column that has data: y against it, with an OLS line and its 95% band where
    there are 3 or more points that vary in x (and y CI bars if given). Columns without any point
    are omitted and named in the title; None when no column has a point."""
    from inoc.analysis.sigmoid import linear_fit

    def finite(x: str) -> np.ndarray:
        return np.isfinite(frame[x].to_numpy(float)) & np.isfinite(frame[y].to_numpy(float))

    drawn = [x for x in xs if finite(x).any()]
    missing = [x for x in xs if x not in drawn]
    if not drawn:
        return None
    cols = min(4, len(drawn))
    rows = int(np.ceil(len(drawn) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols, 3.1 * rows), squeeze=False)
    for ax, x in zip(axes.flat, drawn):
        ok = finite(x)
        xv, yv = frame[x].to_numpy(float)[ok], frame[y].to_numpy(float)[ok]
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        if ci is not None:
            lo, hi = frame[ci[0]].to_numpy(float)[ok], frame[ci[1]].to_numpy(float)[ok]
            ax.errorbar(xv, yv, yerr=np.vstack([yv - lo, hi - yv]), fmt="none", ecolor="lightgrey", elinewidth=0.8)
        ax.scatter(xv, yv, s=14, color="#1f77b4", zorder=2)
        if len(xv) < 3:
            ax.set_title(f"n = {len(xv)}: too few points for a fit")
            continue
        if np.ptp(xv) == 0:  # every point at one x (a few prompts alike): no line to fit
            ax.set_title(f"no fit: {x} is {xv[0]:.3g} for all n = {len(xv)}")
            continue
        fit = linear_fit(xv, yv)
        ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
        ax.set_title(f"r = {fit.r:+.2f}, n = {fit.n}")
    for ax in list(axes.flat)[len(drawn) :]:
        ax.axis("off")
    note = f"\nnot drawn (no prompt with a value): {', '.join(missing)}" if missing else ""
    fig.suptitle(title + note, fontsize=10)
    fig.tight_layout()
    return fig


def angle_bars(groups: pd.DataFrame, title: str) -> plt.Figure | None:
    """Mean pairwise angle per pair type and representation as points, with ±1 population std as
    error bars clipped to the angle's range [0°, 180°]. Pair types without a pair are named in the
    title instead of drawn; None when no pair type has one."""
    groups = groups[np.isfinite(groups.mean_deg.to_numpy(float)) & (groups.n_pairs.fillna(0) > 0)]
    if groups.empty:
        return None
    reps = list(dict.fromkeys(groups.representation))
    types = list(dict.fromkeys(groups.pair_type))
    x = np.arange(len(types))
    width = 0.8 / max(1, len(reps))
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(types) + 3), 4))
    cmap = plt.get_cmap("tab10")
    for i, rep in enumerate(reps):
        g = groups[groups.representation == rep].set_index("pair_type").reindex(types)
        mean, std = g.mean_deg.to_numpy(float), np.nan_to_num(g.std_deg.to_numpy(float))
        err = np.vstack([np.minimum(std, mean), np.minimum(std, 180 - mean)])
        ax.errorbar(
            x + (i - (len(reps) - 1) / 2) * width,
            mean,
            yerr=err,
            fmt="o",
            markersize=5,
            capsize=3,
            color=cmap(i % 10),
            label=rep,
        )
    n = groups.groupby("pair_type").n_pairs.max().reindex(types)
    ax.set_xticks(x, [f"{t.replace('_', ' ')}\n({int(k)} pairs)" for t, k in zip(types, n)])
    ax.set_ylim(0, max(90, float(np.nanmax(groups.mean_deg + groups.std_deg.fillna(0)))) + 5)
    ax.set_ylabel("angle (degrees; mean, ±1 std clipped at 0°)")
    ax.set_title(title, fontsize=10)
    _legend_outside(ax, title="representation")
    return fig


def sigmoid_panel(
    x: np.ndarray, y: np.ndarray, y_lo: np.ndarray, y_hi: np.ndarray, fit, xlabel: str, ylabel: str, title: str
) -> plt.Figure:
    """Points (with their 95% CI) and a 4-parameter logistic fit with its bootstrap 95% band (or the OLS fallback)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.errorbar(x, y, yerr=np.vstack([y - y_lo, y_hi - y]), fmt="none", ecolor="lightgrey", elinewidth=0.8)
    ax.scatter(x, y, s=16, color="#1f77b4", zorder=2, label="prompt (95% CI)")
    ax.plot(fit.grid, fit.curve, color="black", linewidth=1.2, label=fit.method)
    if np.isfinite(fit.band_lo).any():
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0, label="95% band")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\nR² = {fit.r2:.2f}, n = {fit.n}")
    _legend_outside(ax)
    return fig


def em_rates(
    summary: pd.DataFrame, prompt_groups: dict[str, str], title: str, known: dict[str, str] | None = None
) -> plt.Figure:
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
    axes[0].set_xticks(x, [run_label(r) for r in runs], rotation=60, ha="right", rotation_mode="anchor")
    axes[0].set_ylabel("EM rate (%, 95% CI)")
    _legend_outside(axes[0], title="eval set / condition")
    axes[0].set_title(f"(1) EM rate by run, step {step}")
    d = final[final.condition == "default"].pivot_table(index="run", columns="eval_set", values=["em_rate", "n_pairs"])
    if {"em", "fa"} <= set(d.columns.get_level_values(1)):
        for run in d.index:
            p_fa, p_em = d.loc[run, ("em_rate", "fa")], d.loc[run, ("em_rate", "em")]
            n_fa, n_em = d.loc[run, ("n_pairs", "fa")], d.loc[run, ("n_pairs", "em")]
            axes[1].errorbar(
                100 * p_fa,
                100 * p_em,
                xerr=196 * np.sqrt(p_fa * (1 - p_fa) / n_fa),
                yerr=196 * np.sqrt(p_em * (1 - p_em) / n_em),
                fmt="o",
                markersize=4,
                capsize=2,
            )
            axes[1].annotate(
                run_label(run), (100 * p_fa, 100 * p_em), fontsize=FONT, xytext=(3, 3), textcoords="offset points"
            )
    else:  # no in-distribution set evaluated: panel (2) has nothing to show
        axes[1].set_visible(False)
        title += " · (2) not drawn: no in-distribution (fa) eval set"
    axes[1].set_xlabel("in-distribution (fa) EM rate, default condition (%)")
    axes[1].set_ylabel("general (em) EM rate (%)")
    axes[1].set_title("(2) in- vs out-of-distribution")
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
        axes[2].bar(
            xt + (j - (len(prefixes) - 1) / 2) * w,
            100 * p,
            w,
            yerr=196 * np.sqrt(p * (1 - p) / agg.n),
            capsize=2,
            label=prefix,
            color=PREFIX_COLORS[prefix],
        )
    axes[2].set_xticks(xt, types)
    axes[2].set_ylabel("EM rate on general questions (%, 95% CI)")
    _legend_outside(axes[2], title="rephrasing")
    axes[2].set_title("(3) prompt type × rephrasing (pooled runs)")
    axes[2].set_ylim(-2, 100)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _wrap_items(head: str, items: list[str], width: int = 60) -> str:
    """``head`` and the items, comma-separated, in lines of about ``width`` characters, never splitting an item."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > width and line:
            lines.append(line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    return "\n".join([*lines, line])


def heuristic_ranking_bars(ranking: pd.DataFrame, target: str, title: str) -> plt.Figure | None:
    """One panel per scope (pooled first, then each experiment): Pearson r of each heuristic against
    `target`, sorted by r, with its 95% bootstrap CI and n. Heuristics without an r in a scope (no or
    too few rows with a value) are named under the panel instead of drawn; None when no scope has one."""
    rows = ranking[ranking.target == target]
    scopes = [s for s in dict.fromkeys(["pooled", *sorted(rows.scope.unique())]) if s in set(rows.scope)]
    drawn = [s for s in scopes if np.isfinite(rows[rows.scope == s].r.to_numpy(float)).any()]
    if not drawn:
        return None
    height = max(3.0, 0.28 * rows.heuristic.nunique() + 1.6)
    fig, axes = plt.subplots(1, len(drawn), figsize=(4.6 * len(drawn), height), squeeze=False)
    for ax, scope in zip(axes.flat, drawn):
        g = rows[rows.scope == scope]
        ok = g[np.isfinite(g.r.to_numpy(float))].sort_values("r")
        y = np.arange(len(ok))
        lo = np.where(np.isfinite(ok.ci_lo), ok.r - ok.ci_lo, 0.0)
        hi = np.where(np.isfinite(ok.ci_hi), ok.ci_hi - ok.r, 0.0)
        ax.barh(y, ok.r, color=np.where(ok.r >= 0, "#1f77b4", "#d62728"), height=0.7)
        ax.errorbar(ok.r, y, xerr=np.vstack([lo, hi]), fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_yticks(y, [f"{h} (n={int(n)})" for h, n in zip(ok.heuristic, ok.n)])
        ax.axvline(0, color="grey", linewidth=0.6)
        ax.set_xlim(-1.05, 1.05)
        ax.set_xlabel(f"Pearson r with {target} (95% bootstrap CI)")
        absent = sorted(set(g.heuristic) - set(ok.heuristic))
        ax.set_title(
            scope + ("\n" + _wrap_items("no r (under 3 rows with a value, or constant):", absent) if absent else "")
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
