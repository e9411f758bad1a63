"""Exp 20's per-trait fixed-vs-mix grid and Exp 19's Q1/Q2 angle-question grids, drawn from the
warehouse tables the geometry asset writes (`fixed_vs_mix_gap`, `fixed_vs_mix_gap_correlations`,
`fixed_vs_mix_rank1`; `prompt_angle_predictors`, `angle_questions`, `suppression`).

Every panel's r, p and n are the table's, so a figure never shows a number the warehouse does not
hold; the points are the rows that r was computed over. A panel with no point is left out and named
in the figure's title. Called by ``inoc.experiment_figures.experiment_figures``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from inoc import figures
from inoc.analysis.angle_questions import OTHER, Q2_PREDICTORS
from inoc.analysis.heuristics import FIXED_VS_MIX_HEURISTICS
from inoc.analysis.performance import MIN_STD
from inoc.config import ExperimentConfig
from inoc.heuristics.fixed_vs_mix import GAP_TARGETS

VARIANTS = {"raw": "raw W", "pca_rank1": "PCA rank-1", "svd_rank1": "SVD rank-1"}
GAP_LABELS = {"fixed_minus_mix": "fixed − mix score (pp)", "control_minus_mix": "control − mix score (pp)"}
#: Exp 19's levels: figure suffix → the W matrices drawn, one block of rows each (docs/methods.md#angle-questions).
LEVELS = {"point": ("fixed", "mix"), "tokens": ("fixed_tokens", "mix_tokens")}
#: Q1's columns: (predictor dimension, role of the trait whose suppression is Y); on-diagonal first, then swapped.
Q1_COLUMNS = ((1, "negative"), (2, "positive"), (1, "positive"), (2, "negative"))
Q2_LABELS = {
    "angle_from_pca_axis": "angle from the PC1 axis (°)",
    "angle_from_svd_axis": "angle from the SV1 axis (°)",
    "angle_to_centroid_raw": "angle to other trait's centroid, raw W (°)",
    "angle_to_centroid_pca2": "angle to other trait's centroid, PCA-2D (°)",
    "angle_to_centroid_svd2": "angle to other trait's centroid, SVD-2D (°)",
}


def slug(name: str) -> str:
    """A figure-file-safe form of a trait name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _constant(x: np.ndarray) -> bool:
    """X without spread (as `pearson` sees it, or equal up to rounding): r is undefined, no line is drawn."""
    return len(x) == 0 or float(np.std(x)) < max(MIN_STD, 1e-9 * float(np.abs(x).max()))


def _title(r: float, p: float, n: int, x: np.ndarray) -> str:
    if np.isfinite(r):
        return f"r = {r:+.2f} (p = {p:.2g}), n = {n}"
    if n >= 3 and _constant(x):
        return f"constant X, n = {n}"
    return f"no r: n = {n}"


def _panel(
    ax, x: np.ndarray, y: np.ndarray, roles: list[str], r: float, p: float, n: int, xlabel: str, ylabel: str
) -> None:
    """Points coloured by prompt role, the OLS line where X varies, the table's r/p/n as the title."""
    for role, color in figures.ROLE_COLORS.items():
        m = np.array([ro == role for ro in roles], bool)
        if m.any():
            ax.scatter(x[m], y[m], s=22, color=color, zorder=2)
    if _constant(x):  # a rank-1 reconstruction often makes a heuristic constant: centre the points
        v = float(np.mean(x))
        ax.set_xlim(v - max(0.05 * abs(v), 0.5), v + max(0.05 * abs(v), 0.5))
    elif len(x) >= 2:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, intercept + slope * grid, color="black", linewidth=1)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))  # no offset text over the x label
    ax.set_title(_title(r, p, n, x), fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)


def _role_legend(fig, roles: set[str], what: str = "prompts") -> None:
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=f"{r} {what}")
        for r, c in figures.ROLE_COLORS.items()
        if r in roles
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9)


def exp20_figures(
    cfg: ExperimentConfig, experiment: str, rank1: pd.DataFrame, gap: pd.DataFrame, corr: pd.DataFrame
) -> tuple[dict[str, figures.plt.Figure], dict[str, str]]:
    """Exp 20's grid per trait (docs/methods.md#exp20-per-trait): rows raw W, PCA rank-1, SVD rank-1 × the outcomes
    fixed − mix and control − mix, a column per fixed-vs-mix heuristic; each panel the heuristic against
    the outcome over the trait's subset, OLS line, r from `fixed_vs_mix_gap_correlations` ("constant X"
    where a rank-1 reconstruction makes the heuristic constant). Figure `exp20_fixed_vs_mix_<trait>`."""
    drawn: dict[str, figures.plt.Figure] = {}
    skipped: dict[str, str] = {}
    traits = [t for t in cfg.traits if t.role in ("positive", "negative")]
    if gap.empty:
        skipped["exp20_fixed_vs_mix"] = (
            "no trait subset has prompts with W_fixed, W_mix and both a fixed and a mix run "
            "scored on the trait (fixed_vs_mix_gap is empty)"
        )
        return drawn, skipped
    roles = {k: cfg.groups[cfg.group_of(k)].role for k in cfg.prompt_keys}
    rows = [(v, t) for v in VARIANTS for t in GAP_TARGETS]
    for trait in traits:
        name = f"exp20_fixed_vs_mix_{slug(trait.name)}"
        g = gap[gap.trait == trait.name]
        if g.empty:
            skipped[name] = (
                f"no {trait.name} subset prompt has W_fixed, W_mix and both a fixed and a mix {trait.name} score"
            )
            continue
        c = corr[corr.trait == trait.name].set_index(["variant", "heuristic", "target"])
        fig, axes = figures.plt.subplots(
            len(rows),
            len(FIXED_VS_MIX_HEURISTICS),
            figsize=(2.6 * len(FIXED_VS_MIX_HEURISTICS), 2.3 * len(rows) + 1.4),
            squeeze=False,
        )
        hidden = []
        for i, (variant, target) in enumerate(rows):
            for j, h in enumerate(FIXED_VS_MIX_HEURISTICS):
                ax = axes[i, j]
                sel = g[(g.variant == variant) & (g.heuristic == h)]
                ok = np.isfinite(sel.value.to_numpy(float)) & np.isfinite(sel[target].to_numpy(float))
                if not ok.any():
                    ax.set_visible(False)
                    hidden.append(f"{h} ({VARIANTS[variant]})")
                    continue
                sel = sel[ok]
                key = (variant, h, target)
                r, p, n = (
                    (c.loc[key, "r"], c.loc[key, "p"], int(c.loc[key, "n"]))
                    if key in c.index
                    else (np.nan, np.nan, len(sel))
                )
                _panel(
                    ax,
                    sel.value.to_numpy(float),
                    sel[target].to_numpy(float),
                    [roles.get(k, "neutral") for k in sel.prompt_key],
                    r,
                    p,
                    n,
                    f"{h} ({VARIANTS[variant]})",
                    f"{VARIANTS[variant]}: {GAP_LABELS[target]}" if j == 0 else GAP_LABELS[target],
                )
        fit = rank1[rank1.trait == trait.name].set_index("method")
        var = ", ".join(
            f"{label} {100 * fit.loc[m, 'pc1_variance']:.1f}%"
            for m, label in (("pca", "PCA"), ("truncated_svd", "TruncatedSVD"))
            if m in fit.index
        )
        keys = fit.prompt_keys.iloc[0].split(",") if len(fit) else sorted(set(g.prompt_key))
        note = f"\nnot drawn (no value): {', '.join(sorted(set(hidden)))}" if hidden else ""
        fig.suptitle(
            f"{experiment} · {trait.name}: fixed-vs-mix heuristics vs the outcomes on the trait's subset "
            f"({len(keys)} prompts: {', '.join(keys)})\nrank-1 fits on W_fixed, PC1 variance: {var or 'none'}; "
            f"Y = the trait's final default-condition scores; OLS lines{note}",
            fontsize=10,
        )
        _role_legend(fig, {roles.get(k, "neutral") for k in g.prompt_key})
        fig.tight_layout(rect=(0, 0.03, 1, 0.95))
        drawn[name] = fig
    return drawn, skipped


def _supp_by_role(supp: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """prompt_key × trait role → suppression of that trait by the prompt's runs of `prefix` (as angle_question_rows)."""
    s = supp[supp.prefix_type == prefix] if len(supp) else supp
    if s.empty:
        return pd.DataFrame(columns=["negative", "positive"], dtype=float)
    return s.pivot_table(index="prompt_key", columns="trait_role", values="suppression")


def _predictor_frame(pred: pd.DataFrame, matrix: str) -> tuple[pd.DataFrame, pd.Series]:
    p = pred[pred.matrix == matrix]
    return p.pivot_table(index="prompt_key", columns="predictor", values="value", dropna=False), p.drop_duplicates(
        "prompt_key"
    ).set_index("prompt_key").role


def exp19_figures(
    cfg: ExperimentConfig, experiment: str, pred: pd.DataFrame, questions: pd.DataFrame, supp: pd.DataFrame
) -> tuple[dict[str, figures.plt.Figure], dict[str, str]]:
    """Exp 19's Q1 and Q2 figures (docs/methods.md#angle-questions) per level (point-wise, token-wise W).

    Q1 (`exp19_q1_<level>`): a row per (matrix, method PCA | SVD), columns Dim1 vs the negative trait's
    suppression, Dim2 vs the positive trait's (on-diagonal), then the swapped pairs; signed coordinates,
    every prompt. Q2 (`exp19_q2_<level>`): a row per matrix, a column per Q2 predictor, Y = cross-trait
    suppression (a negative-role prompt's suppression of the positive trait and vice versa). Y uses the
    runs of the matrix's prefix type; r, p, n are `angle_questions`' rows."""
    drawn: dict[str, figures.plt.Figure] = {}
    skipped: dict[str, str] = {}
    neg, pos = cfg.trait("negative"), cfg.trait("positive")
    if neg is None or pos is None:
        for level in LEVELS:
            for q in ("q1", "q2"):
                skipped[f"exp19_{q}_{level}"] = "the experiment has no negative/positive trait pair"
        return drawn, skipped
    trait_name = {"negative": neg.name, "positive": pos.name}
    for level, matrices in LEVELS.items():
        present = [m for m in matrices if len(pred) and (pred.matrix == m).any()]
        with_q = [m for m in present if len(questions) and (questions.matrix == m).any()]
        for q in ("q1", "q2"):
            name = f"exp19_{q}_{level}"
            if not present:
                skipped[name] = (
                    f"no {'point-wise' if level == 'point' else 'token-level'} W matrix (no such log-probabilities)"
                )
            elif not with_q:
                skipped[name] = (
                    f"no runs of the prefix type of {', '.join(present)}: the angle predictors have no outcome"
                )
            else:
                fig = (_q1_figure if q == "q1" else _q2_figure)(
                    experiment, with_q, pred, questions, supp, trait_name, level
                )
                if fig is None:
                    skipped[name] = f"no prompt has both a {q.upper()} predictor and its suppression outcome"
                else:
                    drawn[name] = fig
    return drawn, skipped


LEVEL_LABELS = {"point": "point-wise", "tokens": "token-level"}


def _question_grid(rows: list[list[dict | None]], width: float, title: str, hidden: list[str]):
    """Panels (dicts of `_panel` arguments, None where no prompt has both values) in a grid; a column
    with no panel in any row is left out, a single empty panel hidden, and both named in the title."""
    keep = [j for j in range(len(rows[0])) if any(r[j] is not None for r in rows)]
    if not keep:
        return None
    fig, axes = figures.plt.subplots(
        len(rows), len(keep), figsize=(width * len(keep) + 0.6, 3.0 * len(rows) + 1.4), squeeze=False
    )
    roles_seen: set[str] = set()
    for i, row in enumerate(rows):
        for jj, j in enumerate(keep):
            spec = row[j]
            if spec is None:
                axes[i, jj].set_visible(False)
                continue
            prefix = spec.pop("prefix")
            _panel(axes[i, jj], **spec)
            axes[i, jj].set_title(f"{prefix}: {axes[i, jj].get_title()}", fontsize=9)
            roles_seen |= set(spec["roles"])
    note = f"\nnot drawn (no prompt with both the value and the outcome): {', '.join(hidden)}" if hidden else ""
    fig.suptitle(title + note, fontsize=10)
    _role_legend(fig, roles_seen)
    fig.tight_layout(rect=(0, 0.05, 1, 0.93))
    return fig


def _spec(
    x: pd.Series,
    y: pd.Series,
    role: pd.Series,
    stat: tuple[float, float, int] | None,
    xlabel: str,
    ylabel: str,
    prefix: str,
) -> dict | None:
    both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").dropna()
    if both.empty:
        return None
    r, p, n = stat if stat is not None else (np.nan, np.nan, len(both))
    return dict(
        x=both.x.to_numpy(float),
        y=both.y.to_numpy(float),
        roles=[role.get(k, "neutral") for k in both.index],
        r=float(r),
        p=float(p),
        n=int(n),
        xlabel=xlabel,
        ylabel=ylabel,
        prefix=prefix,
    )


def _stat(table: pd.DataFrame, key) -> tuple[float, float, int] | None:
    return tuple(table.loc[key, c] for c in ("r", "p", "n")) if key in table.index else None


def _q1_figure(experiment, matrices, pred, questions, supp, trait_name, level):
    rows, hidden = [], []
    for m in matrices:
        wide, role = _predictor_frame(pred, m)
        ys = _supp_by_role(supp, m.removesuffix("_tokens"))
        qm = questions[(questions.matrix == m) & (questions.question == "q1")].set_index(["predictor", "outcome"])
        for method in ("pca", "svd"):
            row = []
            for dim, trole in Q1_COLUMNS:
                pname, outcome = f"{method}_dim{dim}", f"{trole}_trait_suppression"
                spec = _spec(
                    wide.get(pname, pd.Series(dtype=float)),
                    ys.get(trole, pd.Series(dtype=float)),
                    role,
                    _stat(qm, (pname, outcome)),
                    f"{m}: {method.upper()} dim {dim} (signed)",
                    f"{m.removesuffix('_tokens')} suppression of {trait_name[trole]} (pp)",
                    f"{m} {method.upper()}",
                )
                if spec is None:
                    hidden.append(f"{m} {method.upper()} dim {dim} vs {trait_name[trole]}")
                row.append(spec)
            rows.append(row)
    return _question_grid(
        rows,
        3.6,
        f"{experiment}: Exp 19 Q1, do the signed top-2 coordinates of the {LEVEL_LABELS[level]} W rows predict suppression?\n"
        f"columns: dim 1 vs {trait_name['negative']}, dim 2 vs {trait_name['positive']} (on-diagonal), then swapped; "
        f"every prompt with a run of the matrix's prefix type; OLS lines",
        hidden,
    )


def _q2_figure(experiment, matrices, pred, questions, supp, trait_name, level):
    rows, hidden = [], []
    for m in matrices:
        wide, role = _predictor_frame(pred, m)
        ys = _supp_by_role(supp, m.removesuffix("_tokens"))
        cross = pd.Series(
            {
                k: ys.loc[k, OTHER[r]] if k in ys.index and OTHER[r] in ys else np.nan
                for k, r in role.items()
                if r in OTHER
            },
            dtype=float,
        )
        qm = questions[(questions.matrix == m) & (questions.question == "q2")].set_index("predictor")
        row = []
        for pname in Q2_PREDICTORS:
            spec = _spec(
                wide.get(pname, pd.Series(dtype=float)),
                cross,
                role,
                _stat(qm, pname),
                Q2_LABELS[pname],
                f"{m.removesuffix('_tokens')}: cross-trait suppression (pp)",
                m,
            )
            if spec is None:
                hidden.append(f"{m} {pname}")
            row.append(spec)
        rows.append(row)
    return _question_grid(
        rows,
        3.4,
        f"{experiment}: Exp 19 Q2, does a prompt's direction in the {LEVEL_LABELS[level]} W predict its cross-trait suppression?\n"
        f"{trait_name['negative']} prompts → suppression of {trait_name['positive']}, {trait_name['positive']} prompts → "
        f"suppression of {trait_name['negative']}; neutral prompts excluded; OLS lines",
        hidden,
    )
