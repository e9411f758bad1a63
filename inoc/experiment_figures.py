"""An experiment's figures, built from warehouse SQL only, so they are the same for imported and
computed experiments: training and loss curves, the EM suite, the LLS grid, angle points, the
fixed-vs-mix grid and sigmoid fits. A figure whose inputs do not exist is not drawn, and the reason
is returned with the figures instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from inoc import figures
from inoc.analysis.heuristics import FIXED_VS_MIX_HEURISTICS
from inoc.analysis.sigmoid import fit_sigmoid
from inoc.config import ExperimentConfig
from inoc.heuristics.registry import lls_grid
from inoc.outcomes import control_run_id

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
        out.figures["training_curves"] = figures.training_curves(summary, f"{experiment}: runs of batch {batch}{note}", known)
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
    _skip(out, "lls_grid", figures.scatter_grid(grid, LLS, "suppression", ylabel,
                                                f"{experiment}: LLS metrics of W_fixed vs suppression of each prompt's trait",
                                                ci=("ci_lo", "ci_hi")),
          "no prompt has both a fixed suppression and an LLS metric")  # fmt: skip
    groups = q("SELECT * FROM angle_groups WHERE experiment = ?")
    if len(groups):
        matrix = "fixed" if "fixed" in set(groups.matrix) else groups.matrix.iloc[0]
        _skip(out, "angle_bars", figures.angle_bars(groups[groups.matrix == matrix], f"{experiment}: angles between W_{matrix} rows"),
              "no pair type has a pair")  # fmt: skip
    else:
        out.not_drawn["angle_bars"] = "no W-matrix angles (no log-probabilities)"
    fvm = q("SELECT * FROM fixed_vs_mix_heuristics WHERE experiment = ? AND variant = 'raw'")
    gap = q("SELECT * FROM suppression_gap WHERE experiment = ? AND target = 'trait'")
    wide = fvm.pivot_table(index="prompt_key", columns="heuristic", values="value") if len(fvm) else pd.DataFrame(columns=FVM)
    gfr = gap.merge(wide, left_on="prompt_key", right_index=True, how="left")
    for col in FVM:
        gfr[col] = gfr[col] if col in gfr else np.nan
    _skip(out, "fixed_vs_mix_grid", figures.scatter_grid(
        gfr, FVM, "gap", "S_fixed − S_mix (pp)", f"{experiment}: fixed-vs-mix heuristics vs the suppression gap of each prompt's trait",
        ci=("ci_lo", "ci_hi")), "no prompt has both a fixed and a mix run with its heuristics")  # fmt: skip
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
        out.fits.append({
            "heuristic": "elicitation", "prefix_type": prefix_type, "method": fit.method, "a": fit.a, "b": fit.b,
            "c": fit.c, "d": fit.d, "r2": fit.r2, "f_vs_linear": fit.f_vs_linear, "p_vs_linear": fit.p_vs_linear,
            "n": fit.n, "n_boot_ok": fit.n_boot_ok,
        })  # fmt: skip
        out.numbers[f"sigmoid_r2_{prefix_type}"] = float(fit.r2)
        traits = list(ok.trait)
        out.figures[name] = figures.sigmoid_panel(
            ok.value.to_numpy(), ok.suppression.to_numpy(), ok.ci_lo.to_numpy(), ok.ci_hi.to_numpy(), fit,
            figures._trait_label(traits, "elicitation") + " (pp over no prefix)",
            figures._trait_label(traits, f"{prefix_type} suppression") + " (pp)",
            f"{experiment} · {prefix_type}: suppression vs elicitation",
        )  # fmt: skip
    return out
