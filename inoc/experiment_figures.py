"""An experiment's figures, built from warehouse SQL only, so they are the same for imported and
computed experiments: training and loss curves, the EM suite, the LLS grid, angle points, the
fixed-vs-mix grid, sigmoid fits, Exp 10's combined scatter, Exp 13's PCA-prompt figures, and Exp 20's
per-trait grids and Exp 19's Q1/Q2 grids (``inoc.gap_and_angle_figures``). A
figure whose inputs do not exist is not drawn, and the reason is returned with the figures instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from inoc import figures
from inoc.analysis.heuristics import FIXED_VS_MIX_HEURISTICS
from inoc.analysis.sigmoid import fit_sigmoid, linear_fit
from inoc.config import ExperimentConfig
from inoc.gap_and_angle_figures import exp19_figures, exp20_figures
from inoc.heuristics.compute import trait_set
from inoc.heuristics.registry import lls_grid
from inoc.tables.suppression import control_run_id

LLS = lls_grid()  # the registry's W-row metrics of W_fixed, then PPD
FVM = list(FIXED_VS_MIX_HEURISTICS)


@dataclass
class ExperimentFigures:
    figures: dict[str, figures.plt.Figure] = field(default_factory=dict)
    not_drawn: dict[str, str] = field(default_factory=dict)  # figure name → why
    fits: list[dict] = field(default_factory=list)  # rows of `sigmoid_fits`
    numbers: dict[str, float | int] = field(default_factory=dict)  # the key numbers the figures show


def _skip(out: ExperimentFigures, name: str, fig, why: str) -> None:
    if fig is None:
        out.not_drawn[name] = why
    else:
        out.figures[name] = fig


def experiment_figures(query, cfg: ExperimentConfig, experiment: str) -> ExperimentFigures:
    """``query(sql, params)`` → DataFrame on the warehouse (``Warehouse.query``)."""
    q = lambda sql: query(sql, [experiment])  # noqa: E731
    out = ExperimentFigures()
    note = f" — {cfg.import_.note}" if cfg.import_ is not None and cfg.import_.note else ""
    known = dict(cfg.import_.run_prefix_types) if cfg.import_ is not None else {}
    runs = q("SELECT * FROM runs WHERE experiment = ?")
    summary = q("SELECT s.* FROM run_summary s JOIN runs r USING (experiment, run) WHERE s.experiment = ?")
    if len(runs) and len(summary):
        control = control_run_id(cfg, runs)
        batch = runs.set_index("run").batch[control]
        summary = summary[summary.run.isin(runs[runs.batch == batch].run)]
        out.figures["training_curves"] = figures.training_curves(
            summary, f"{experiment}: runs of batch {batch}{note}", known
        )
        out.numbers["checkpoints_per_run"] = int(summary.groupby("run").step.nunique().max())
    else:
        out.not_drawn["training_curves"] = "no scored checkpoints in run_summary"
    em = q("SELECT * FROM em_summary WHERE experiment = ?")
    if len(em):
        groups = {r.run: cfg.group_of(r.prompt_key) for r in runs.itertuples() if r.prompt_key in cfg.prompts}
        out.figures["em_rates"] = figures.em_rates(em, groups, f"{experiment}: emergent misalignment{note}", known)
    losses = q("SELECT * FROM training_losses WHERE experiment = ?")
    if len(losses):
        out.figures["loss_curves"] = figures.loss_curves(losses, f"{experiment}: training loss{note}", known)
        last = losses.sort_values("step").groupby("run").loss.last()
        out.numbers["final_loss_mean"] = float(last.mean())
    else:
        out.not_drawn["loss_curves"] = "no training losses recorded"
    supp = q("SELECT * FROM suppression WHERE experiment = ? AND target = 'trait'")
    heur = q("SELECT * FROM prompt_heuristics WHERE experiment = ?")
    fixed = supp[supp.prefix_type == "fixed"]
    lls = heur[heur.prefix_type == "fixed"].pivot_table(index="prompt_key", columns="heuristic", values="value")
    grid = fixed.merge(lls, left_on="prompt_key", right_index=True, how="left")
    for col in LLS:
        grid[col] = grid[col] if col in grid else np.nan
    ylabel = figures._trait_label(list(fixed.trait), "fixed suppression") + " (pp)"
    _skip(
        out,
        "lls_grid",
        figures.scatter_grid(
            grid,
            LLS,
            "suppression",
            ylabel,
            f"{experiment}: LLS metrics of W_fixed vs suppression of each prompt's trait",
            ci=("ci_lo", "ci_hi"),
        ),
        "no prompt has both a fixed suppression and an LLS metric",
    )
    groups = q("SELECT * FROM angle_groups WHERE experiment = ?")
    if len(groups):
        matrix = "fixed" if "fixed" in set(groups.matrix) else groups.matrix.iloc[0]
        _skip(
            out,
            "angle_bars",
            figures.angle_bars(groups[groups.matrix == matrix], f"{experiment}: angles between W_{matrix} rows"),
            "no pair type has a pair",
        )
    else:
        out.not_drawn["angle_bars"] = "no W-matrix angles (no log-probabilities)"
    fvm = q("SELECT * FROM fixed_vs_mix_heuristics WHERE experiment = ? AND variant = 'raw'")
    gap = q("SELECT * FROM suppression_gap WHERE experiment = ? AND target = 'trait'")
    wide = (
        fvm.pivot_table(index="prompt_key", columns="heuristic", values="value")
        if len(fvm)
        else pd.DataFrame(columns=FVM)
    )
    gfr = gap.merge(wide, left_on="prompt_key", right_index=True, how="left")
    for col in FVM:
        gfr[col] = gfr[col] if col in gfr else np.nan
    _skip(
        out,
        "fixed_vs_mix_grid",
        figures.scatter_grid(
            gfr,
            FVM,
            "gap",
            "S_fixed − S_mix (pp)",
            f"{experiment}: fixed-vs-mix heuristics vs the suppression gap of each prompt's trait",
            ci=("ci_lo", "ci_hi"),
        ),
        "no prompt has both a fixed and a mix run with its heuristics",
    )
    out.numbers["n_prompts_with_gap"] = int(gap.prompt_key.nunique())
    elic = heur[heur.prefix_type.isna() & heur.heuristic.str.startswith("elicitation_")]
    for prefix_type in ("fixed", "mix"):
        s = supp[supp.prefix_type == prefix_type]
        e = elic.assign(trait=elic.heuristic.str.removeprefix("elicitation_"))
        m = s.merge(e[["prompt_key", "trait", "value"]], on=["prompt_key", "trait"])
        ok = m[np.isfinite(m.value) & np.isfinite(m.suppression)]
        name = f"sigmoid_elicitation_{prefix_type}"
        if len(ok) < 5:
            out.not_drawn[name] = f"{len(ok)} prompt(s) with elicitation and {prefix_type} suppression; a fit needs 5"
            continue
        fit = fit_sigmoid(ok.value.to_numpy(), ok.suppression.to_numpy(), n_boot=1000, seed=0)
        out.fits.append(
            {
                "heuristic": "elicitation",
                "prefix_type": prefix_type,
                "method": fit.method,
                "a": fit.a,
                "b": fit.b,
                "c": fit.c,
                "d": fit.d,
                "r2": fit.r2,
                "f_vs_linear": fit.f_vs_linear,
                "p_vs_linear": fit.p_vs_linear,
                "n": fit.n,
                "n_boot_ok": fit.n_boot_ok,
            }
        )
        out.numbers[f"sigmoid_r2_{prefix_type}"] = float(fit.r2)
        traits = list(ok.trait)
        out.figures[name] = figures.sigmoid_panel(
            ok.value.to_numpy(),
            ok.suppression.to_numpy(),
            ok.ci_lo.to_numpy(),
            ok.ci_hi.to_numpy(),
            fit,
            figures._trait_label(traits, "elicitation") + " (pp over no prefix)",
            figures._trait_label(traits, f"{prefix_type} suppression") + " (pp)",
            f"{experiment} · {prefix_type}: suppression vs elicitation",
        )
    fig, why = exp10_scatter(cfg, experiment, supp_all=q("SELECT * FROM suppression WHERE experiment = ?"), heur=heur)
    _skip(out, "exp10_elicitation_vs_suppression", fig, why)
    supp_all = q("SELECT * FROM suppression WHERE experiment = ?")
    coords = q("SELECT * FROM prompt_coords WHERE experiment = ? AND method = 'pca' AND component <= 4")
    variance = q("SELECT * FROM pca_variance WHERE experiment = ? AND method = 'pca'")
    s = supp_all.suppression.to_numpy(float) if len(supp_all) else np.array([])
    s = s[np.isfinite(s)]
    supp_range = tuple(np.percentile(s, [2, 98])) if s.size else (np.nan, np.nan)
    for level, name, matrices in (
        ("point-wise", "point", ("fixed", "mix")),
        ("token-wise", "tokens", ("fixed_tokens", "mix_tokens")),
    ):
        fig_name = f"exp13_pca_prompts_{name}"
        if cfg.trait("negative") is None or cfg.trait("positive") is None:
            out.not_drawn[fig_name] = "the experiment has no negative/positive trait pair"
            continue
        versions = {
            m.removesuffix("_tokens"): (
                exp13_frame(cfg, coords[coords.matrix == m], heur, supp_all, m.removesuffix("_tokens")),
                variance[variance.matrix == m],
            )
            for m in matrices
            if (coords.matrix == m).any()
        }
        if not versions:
            out.not_drawn[fig_name] = f"no {level} W matrix (no {level} log-probabilities)"
            continue
        out.figures[fig_name] = exp13_figure(cfg, experiment, versions, level, supp_range)
    drawn, skipped = exp20_figures(
        cfg,
        experiment,
        q("SELECT * FROM fixed_vs_mix_rank1 WHERE experiment = ?"),
        q("SELECT * FROM fixed_vs_mix_gap WHERE experiment = ?"),
        q("SELECT * FROM fixed_vs_mix_gap_correlations WHERE experiment = ?"),
    )
    out.figures.update(drawn)
    out.not_drawn.update(skipped)
    drawn, skipped = exp19_figures(
        cfg,
        experiment,
        q("SELECT * FROM prompt_angle_predictors WHERE experiment = ?"),
        q("SELECT * FROM angle_questions WHERE experiment = ?"),
        supp_all,
    )
    out.figures.update(drawn)
    out.not_drawn.update(skipped)
    return out


def exp10_columns(cfg: ExperimentConfig) -> dict[str, str]:
    """Exp 10's X columns (`prompt_heuristics` names → axis labels) for the negative trait's side."""
    neg, pos = cfg.trait("negative"), cfg.trait("positive")
    n, p = neg.name, pos.name
    return {
        f"elicitation_{n}": f"elicitation of {n} (pp over no prefix)",
        f"ph_{n.lower()}": f"{n} PH ({n}-only completions)",
        f"ppd_{p.lower()}": f"{p} PPD ({p}-only completions)",
        f"ph_{p.lower()}": f"{p} PH ({p}-only completions)",
    }


def exp10_scatter(cfg: ExperimentConfig, experiment: str, supp_all: pd.DataFrame, heur: pd.DataFrame):
    """Exp 10's combined scatter (docs/methods.md#exp10-scatter): the negative trait's side (its family + neutral
    prompts), rows fixed / mix, columns elicitation of the negative trait and the single-trait-completion
    heuristics (negative-trait PH, positive-trait PPD, positive-trait PH); Y = suppression of the negative
    trait (95 % CI bars), OLS line with its t-based 95 % band. Returns (figure or None, why not drawn)."""
    neg, pos = cfg.trait("negative"), cfg.trait("positive")
    if neg is None or pos is None:
        return None, "the experiment has no negative/positive trait pair"
    keys = trait_set(cfg, "negative", cfg.prompt_keys)[0]
    supp = supp_all[(supp_all.trait == neg.name) & supp_all.prompt_key.isin(keys)] if len(supp_all) else supp_all
    if supp.empty:
        return None, f"no {neg.name} suppression of a {neg.name}-side prompt"
    cols = exp10_columns(cfg)
    x = heur[heur.heuristic.isin(list(cols))] if len(heur) else heur
    wide = x.pivot_table(index="prompt_key", columns="heuristic", values="value") if len(x) else pd.DataFrame()
    frame = supp.merge(wide, left_on="prompt_key", right_index=True, how="left")
    for c in cols:
        frame[c] = frame[c] if c in frame else np.nan
    ok = lambda g, c: np.isfinite(g[c].to_numpy(float)) & np.isfinite(g.suppression.to_numpy(float))  # noqa: E731
    rows = [pt for pt in ("fixed", "mix") if (frame.prefix_type == pt).any()]
    drawn = [c for c in cols if any(ok(frame[frame.prefix_type == pt], c).any() for pt in rows)]
    if not drawn:
        return None, f"no {neg.name}-side prompt has both {neg.name} suppression and one of {', '.join(cols)}"
    fig, axes = figures.plt.subplots(
        len(rows), len(drawn), figsize=(max(7.0, 3.6 * len(drawn) + 0.6), 3.2 * len(rows) + 0.6), squeeze=False
    )
    for i, pt in enumerate(rows):
        g = frame[frame.prefix_type == pt]
        for j, c in enumerate(drawn):
            ax = axes[i, j]
            m = ok(g, c)
            if not m.any():
                ax.set_visible(False)  # this row has no point for the column: omitted, the title says so
                continue
            xv, yv = g[c].to_numpy(float)[m], g.suppression.to_numpy(float)[m]
            lo, hi = g.ci_lo.to_numpy(float)[m], g.ci_hi.to_numpy(float)[m]
            ax.errorbar(xv, yv, yerr=np.vstack([yv - lo, hi - yv]), fmt="none", ecolor="lightgrey", elinewidth=0.8)
            ax.scatter(xv, yv, s=14, color=figures.PREFIX_COLORS[pt], zorder=2)
            ax.set_xlabel(cols[c])
            ax.set_ylabel(f"{pt} suppression of {neg.name} (pp)")
            if len(xv) >= 3 and np.ptp(xv) > 0:
                fit = linear_fit(xv, yv)
                ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
                ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
                ax.set_title(f"{pt}: r = {fit.r:+.2f} (p = {fit.p:.2g}), n = {fit.n}")
            else:
                ax.set_title(f"{pt}: n = {len(xv)}, too few distinct points for a line")
    missing = [c for c in cols if c not in drawn]
    note = f"\nnot drawn (no prompt with a value): {', '.join(missing)}" if missing else ""
    fig.suptitle(
        f"{experiment}: {neg.name} suppression vs elicitation and single-trait PH/PPD\n"
        f"{neg.name}-side prompts ({neg.name} family + neutral); OLS line with its 95% band{note}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig, ""


#: Exp 13's heat-map rows: per-prompt quantities correlated with PC1–PC4 (docs/methods.md#exp13-pca-prompts).
EXP13_METRICS = (
    "elicitation_neg",
    "elicitation_pos",
    "ph",
    "gamma",
    "sigma",
    "snr",
    "suppression_neg",
    "suppression_pos",
)


def exp13_frame(
    cfg: ExperimentConfig, coords: pd.DataFrame, heur: pd.DataFrame, supp: pd.DataFrame, prefix: str
) -> pd.DataFrame:
    """Per prompt of one decomposition: pc1…pcK (the stored PCA coordinates), role, and EXP13_METRICS —
    elicitation of each trait, the W metrics of the version's prefix type, each trait's suppression by
    the version's runs (NaN where a prompt has none)."""
    neg, pos = cfg.trait("negative"), cfg.trait("positive")
    wide = coords.pivot_table(index="prompt_key", columns="component", values="value")
    wide.columns = [f"pc{int(c)}" for c in wide.columns]
    roles = {k: cfg.groups[cfg.group_of(k)].role for k in cfg.prompt_keys}
    wide = wide.loc[[k for k in cfg.prompt_keys if k in wide.index]]
    wide["role"] = [roles[k] for k in wide.index]

    def pick(frame: pd.DataFrame, name: str, prefix_type: str | None) -> pd.Series:
        if frame.empty:
            return pd.Series(dtype=float)
        sel = frame[
            (frame.heuristic == name)
            & ((frame.prefix_type == prefix_type) if prefix_type else frame.prefix_type.isna())
        ]
        return sel.groupby("prompt_key").value.mean()

    for label, trait in (("neg", neg), ("pos", pos)):
        wide[f"elicitation_{label}"] = pick(heur, f"elicitation_{trait.name}", None) if trait else np.nan
        s = (
            supp[(supp.prefix_type == prefix) & (supp.trait == trait.name)]
            if trait is not None and len(supp)
            else supp.iloc[0:0]
        )
        wide[f"suppression_{label}"] = s.groupby("prompt_key").suppression.mean() if len(s) else np.nan
    for name in ("ph", "gamma", "sigma", "snr"):
        wide[name] = pick(heur, name, prefix)
    return wide


def exp13_figure(
    cfg: ExperimentConfig,
    experiment: str,
    versions: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    level: str,
    supp_range: tuple[float, float],
):
    """Exp 13's PCA-prompt figure (docs/methods.md#exp13-pca-prompts) for one level (point-wise or token-wise W):
    a row per version (fixed, mix) with (A) PC1×PC2 by group (open markers: positive-trait prompts),
    (B, C) coloured by the negative / positive trait's suppression, (D) by PH, (E–G) the same on
    PC3×PC4, and a heat-map of Pearson r between PC1–PC4 and EXP13_METRICS (* p < 0.05, ** p < 0.01).
    versions: prefix type → (exp13_frame, pca_variance rows of that matrix). Suppression colours share
    one scale (2nd–98th percentile of all suppression values of the experiment)."""
    from inoc.analysis.performance import pearson

    neg, pos = cfg.trait("negative"), cfg.trait("positive")
    names = {"neg": neg.name, "pos": pos.name}
    n_pc = max(sum(c.startswith("pc") for c in f.columns) for f, _ in versions.values())
    pairs = [(1, 2)] + ([(3, 4)] if n_pc >= 4 else [])
    ncols = 4 * len(pairs) - (len(pairs) - 1) + 1  # A + 3 per pair + heat-map
    fig, axes = figures.plt.subplots(
        len(versions),
        ncols,
        figsize=(3.3 * ncols + 3.0, 3.4 * len(versions) + 0.9),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.0] * (ncols - 1) + [1.9]},
    )
    vmin, vmax = supp_range
    for row, (prefix, (f, var)) in enumerate(versions.items()):
        pct = {int(r.component): 100 * r.explained_variance_ratio for r in var.itertuples()}
        axrow = list(axes[row])
        col = 0
        for a, b in pairs:
            xa, xb = f[f"pc{a}"].to_numpy(float), f[f"pc{b}"].to_numpy(float)
            labx, laby = f"PC{a} ({pct.get(a, np.nan):.1f}%)", f"PC{b} ({pct.get(b, np.nan):.1f}%)"
            panels = ([("group", None)] if a == 1 else []) + [
                (f"suppression of {names['neg']}", "suppression_neg"),
                (f"suppression of {names['pos']}", "suppression_pos"),
                (f"PH of W_{prefix}", "ph"),
            ]
            for title, column in panels:
                ax = axrow[col]
                col += 1
                if column is None:
                    for role, color in figures.ROLE_COLORS.items():
                        m = (f.role == role).to_numpy()
                        if m.any():
                            ax.scatter(
                                xa[m],
                                xb[m],
                                s=22,
                                label=role,
                                edgecolors=color,
                                linewidths=1.1,
                                facecolors="none" if role == "positive" else color,
                            )
                else:
                    c = f[column].to_numpy(float)
                    has = np.isfinite(c)
                    scale = dict(vmin=vmin, vmax=vmax) if column.startswith("suppression") else {}
                    if has.any():
                        sc = ax.scatter(xa[has], xb[has], c=c[has], cmap="RdYlGn", s=22, **scale)
                        fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02).set_label(title + (" (pp)" if scale else ""))
                    if (~has).any():
                        ax.scatter(xa[~has], xb[~has], marker="x", color="grey", s=16)
                ax.set_xlabel(labx)
                ax.set_ylabel(laby)
                ax.set_title(
                    f"{prefix}: {title}" if column is None else f"{prefix}: {title}\n(grey ×: none)", fontsize=9
                )
        ax = axrow[col]
        pcs = [c for c in f.columns if c.startswith("pc")][:4]
        R = np.full((len(EXP13_METRICS), len(pcs)), np.nan)
        P = np.full_like(R, np.nan)
        for i, metric in enumerate(EXP13_METRICS):
            for j, pc in enumerate(pcs):
                res = pearson(f[pc].to_numpy(float), f[metric].to_numpy(float))
                R[i, j], P[i, j] = res.r, res.p
        im = ax.imshow(R, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        for i in range(R.shape[0]):
            for j in range(R.shape[1]):
                if np.isfinite(R[i, j]):
                    star = "**" if P[i, j] < 0.01 else "*" if P[i, j] < 0.05 else ""
                    ax.text(j, i, f"{R[i, j]:.2f}{star}", ha="center", va="center", fontsize=8)
        labels = [m.replace("_neg", f" {names['neg']}").replace("_pos", f" {names['pos']}") for m in EXP13_METRICS]
        ax.set_xticks(range(len(pcs)), [p.upper() for p in pcs])
        ax.set_yticks(range(len(labels)), labels)
        ax.set_title(f"{prefix}: Pearson r (* p<0.05, ** p<0.01)", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label("r")
    present = set().union(*(set(f.role) for f, _ in versions.values()))
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markeredgecolor=c,
            markerfacecolor="none" if r == "positive" else c,
            label=f"{r} prompts",
        )
        for r, c in figures.ROLE_COLORS.items()
        if r in present
    ]
    handles.append(Line2D([], [], marker="x", linestyle="", color="grey", label="no run of this prefix type"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    note = "" if len(pairs) == 2 else f"; PC3×PC4 not drawn: {n_pc} components stored for this level"
    fig.suptitle(f"{experiment}: PCA of {level} W (prompts), fixed and mix{note}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig
