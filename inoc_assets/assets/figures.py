"""Per-experiment figures: training and loss curves, LLS grid, angle bars, fixed-vs-mix grid, sigmoid fits.

Built from warehouse SQL only, so they are the same for imported and computed experiments. A
figure whose inputs do not exist for this experiment says so in its panel instead of failing.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from inoc import figures
from inoc.analysis.sigmoid import fit_sigmoid
from inoc.config import load_experiment
from inoc.outcomes import control_run_id
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from warehouse import replace_rows
from inoc_assets.stages import AGGREGATE, stage_tag

LLS = ["ph", "gamma", "sigma", "snr", "snr_abs", "mald", "ppd"]
FVM = ["ph_ratio", "sigma2_diff", "gamma_mix", "snr_mix", "cosine", "eff_rank", "snr_ratio", "mald_ratio", "snr_abs_mix", "snr_abs_ratio"]


def figures_asset(experiment: str, config_path: Path, deps: list[AssetKey]) -> AssetsDefinition:
    @asset(
        key=AssetKey([experiment, "figures"]),
        group_name=experiment,
        tags=stage_tag(AGGREGATE),
        deps=deps,
        description="Training curves with 95% CI bands, loss curves, LLS-metric grid, angle bar chart, "
        "fixed-vs-mix heuristic grid and sigmoid fits (→ sigmoid_fits) for this experiment.",
    )
    def _asset(context: AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        wh = warehouse.warehouse
        q = lambda sql: wh.query(sql, [experiment])  # noqa: E731
        out: dict[str, bytes] = {}
        note = f" — {cfg.import_.note}" if cfg.import_ is not None and cfg.import_.note else ""
        known = dict(cfg.import_.run_prefix_types) if cfg.import_ is not None else {}
        runs = q("SELECT * FROM runs WHERE experiment = ?")
        summary = q("SELECT s.* FROM run_summary s JOIN runs r USING (experiment, run) WHERE s.experiment = ?")
        if len(runs) and len(summary):
            control = control_run_id(cfg, runs)
            batch = runs.set_index("run").batch[control]
            summary = summary[summary.run.isin(runs[runs.batch == batch].run)]
            out["training_curves"] = figures.training_curves(summary, f"{experiment}: runs of batch {batch}{note}", known)
        em = q("SELECT * FROM em_summary WHERE experiment = ?")
        if len(em):
            groups = {r.run: cfg.group_of(r.prompt_key) for r in runs.itertuples() if r.prompt_key in cfg.prompts}
            out["em_rates"] = figures.em_rates(em, groups, f"{experiment}: emergent misalignment{note}", known)
        losses = q("SELECT * FROM training_losses WHERE experiment = ?")
        if len(losses):
            out["loss_curves"] = figures.loss_curves(losses, f"{experiment}: training loss{note}", known)
        supp = q("SELECT * FROM suppression WHERE experiment = ? AND target = 'trait'")
        heur = q("SELECT * FROM prompt_heuristics WHERE experiment = ?")
        fixed = supp[supp.prefix_type == "fixed"]
        lls = heur[heur.prefix_type == "fixed"].pivot_table(index="prompt_key", columns="heuristic", values="value")
        grid = fixed.merge(lls, left_on="prompt_key", right_index=True, how="left")
        for col in LLS:
            grid[col] = grid[col] if col in grid else np.nan
        out["lls_grid"] = figures.scatter_grid(
            grid, LLS, "suppression", "fixed suppression (pp)", f"{experiment}: LLS metrics of W_fixed vs suppression",
            ci=("ci_lo", "ci_hi"),
        )  # fmt: skip
        groups = q("SELECT * FROM angle_groups WHERE experiment = ?")
        if len(groups):
            matrix = "fixed" if "fixed" in set(groups.matrix) else groups.matrix.iloc[0]
            out["angle_bars"] = figures.angle_bars(groups[groups.matrix == matrix], f"{experiment}: angles between W_{matrix} rows")
        fvm = q("SELECT * FROM fixed_vs_mix_heuristics WHERE experiment = ? AND variant = 'raw'")
        gap = q("SELECT * FROM suppression_gap WHERE experiment = ? AND target = 'trait'")
        wide = fvm.pivot_table(index="prompt_key", columns="heuristic", values="value") if len(fvm) else pd.DataFrame(columns=FVM)
        gfr = gap.merge(wide, left_on="prompt_key", right_index=True, how="left")
        for col in FVM:
            gfr[col] = gfr[col] if col in gfr else np.nan
        out["fixed_vs_mix_grid"] = figures.scatter_grid(
            gfr, FVM, "gap", "S_fixed − S_mix (pp)", f"{experiment}: fixed-vs-mix heuristics vs the suppression gap",
            ci=("ci_lo", "ci_hi"),
        )  # fmt: skip
        fits = []
        elic = heur[heur.prefix_type.isna() & heur.heuristic.str.startswith("elicitation_")]
        for prefix_type in ("fixed", "mix"):
            s = supp[supp.prefix_type == prefix_type]
            e = elic.assign(trait=elic.heuristic.str.removeprefix("elicitation_"))
            m = s.merge(e[["prompt_key", "trait", "value"]], on=["prompt_key", "trait"])
            ok = m[np.isfinite(m.value) & np.isfinite(m.suppression)]
            if len(ok) < 5:
                continue
            fit = fit_sigmoid(ok.value.to_numpy(), ok.suppression.to_numpy(), n_boot=1000, seed=0)
            fits.append({
                "heuristic": "elicitation", "prefix_type": prefix_type, "method": fit.method, "a": fit.a, "b": fit.b,
                "c": fit.c, "d": fit.d, "r2": fit.r2, "f_vs_linear": fit.f_vs_linear, "p_vs_linear": fit.p_vs_linear,
                "n": fit.n, "n_boot_ok": fit.n_boot_ok,
            })  # fmt: skip
            out[f"sigmoid_elicitation_{prefix_type}"] = figures.sigmoid_panel(
                ok.value.to_numpy(), ok.suppression.to_numpy(), ok.ci_lo.to_numpy(), ok.ci_hi.to_numpy(), fit,
                "elicitation of the trait (pp)",
                f"{experiment} · {prefix_type}: suppression vs elicitation",
            )  # fmt: skip
        with wh.writer() as conn:
            replace_rows(conn, "sigmoid_fits", pd.DataFrame(fits), {"experiment": experiment})
        meta = {}
        for name, png in out.items():
            url = artifacts.store.write_bytes(png, experiment, "figures", f"{name}.png")
            meta[name] = MetadataValue.md(figures.markdown_image(png, name))
        meta["folder"] = MetadataValue.path(url.rsplit("/", 1)[0])
        meta["n_sigmoid_fits"] = len(fits)
        context.log.info(f"{experiment}: wrote {len(out)} figures")
        return MaterializeResult(metadata=meta)

    return _asset
