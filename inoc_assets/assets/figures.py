"""Per-experiment figures: training and loss curves, LLS grid, angle points, fixed-vs-mix grid, sigmoid fits,
Exp 10's combined scatter, Exp 13's PCA-prompt figures, Exp 20's per-trait grids and Exp 19's Q1/Q2 grids.

Built from warehouse SQL only (``inoc.experiment_figures``), so they are the same for imported and
computed experiments. A figure whose inputs do not exist for this experiment is not drawn, and its
`<name>_not_drawn` metadata says why.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from inoc.config import load_experiment
from inoc.experiment_figures import experiment_figures
from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import AGGREGATE, stage_tag
from warehouse import replace_rows


def figures_asset(experiment: str, config_path: Path, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(experiment, "figures"),
        group_name=experiment,
        tags=stage_tag(AGGREGATE),
        deps=deps,
        description="Training curves with 95% CI bands, smoothed loss curves, LLS-metric grid, angle points, "
        "fixed-vs-mix heuristic grid and sigmoid fits (→ sigmoid_fits) for this experiment; Exp 10's combined scatter "
        "(exp10_elicitation_vs_suppression: the negative trait's family + neutral prompts, rows fixed | mix, columns "
        "elicitation of the negative trait, its single-trait PH, the positive trait's PPD and PH, Y = suppression of "
        "the negative trait with 95% CI bars, OLS line with its 95% band; columns without data are named in the title); "
        "Exp 13's PCA-prompt figures (exp13_pca_prompts_point / _tokens: a row per version fixed | mix, PC1×PC2 by "
        "prompt role, coloured by each trait's suppression (one shared scale, 2nd–98th percentile) and by PH, the "
        "same on PC3×PC4, and a heat-map of Pearson r between PC1–PC4 and elicitation, PH, γ, σ, SNR and suppression); "
        "Exp 20 per trait (exp20_fixed_vs_mix_<trait>, from fixed_vs_mix_gap / _gap_correlations / _rank1: the trait's "
        "family + neutral prompts with fixed and mix runs; rows raw W, PCA rank-1, SVD rank-1 × Y = fixed − mix and "
        "control − mix score, a column per fixed-vs-mix heuristic, OLS line, the table's r/p/n in each title, "
        "'constant X' where a rank-1 reconstruction makes the heuristic constant; PC1 variances in the title); "
        "Exp 19's angle questions per level (exp19_q1_point / _tokens: rows fixed and mix × PCA | SVD, columns signed "
        "dim 1 vs the negative trait's and dim 2 vs the positive trait's suppression, then swapped; exp19_q2_point / "
        "_tokens: rows fixed | mix, columns angle from the PC1 / SV1 axis and angle to the other trait's centroid in raw "
        "W, PCA-2D, SVD-2D, Y = cross-trait suppression, neutral prompts excluded; r/p/n from angle_questions; points "
        "coloured by prompt role; panels without data named in the title); "
        "each a PNG under artifacts/<experiment>/figures/, shown downscaled here.",
    )
    def figures(context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        wh = warehouse.warehouse
        built = experiment_figures(wh.query, cfg, experiment)
        publisher = FigurePublisher(artifacts.store, context.log)
        for name, fig in built.figures.items():
            publisher.publish(name, fig, experiment, "figures", f"{name}.png")
        for name, why in built.not_drawn.items():
            publisher.not_drawn(name, why)
        # Written after the PNGs: a failed figure leaves the previous fits in place with the previous files.
        with wh.writer() as conn:
            replace_rows(conn, "sigmoid_fits", pd.DataFrame(built.fits), {"experiment": experiment})
        meta = publisher.summary()
        meta.update(built.numbers)
        meta["n_sigmoid_fits"] = len(built.fits)
        meta["folder"] = dg.MetadataValue.path(artifacts.store.url(experiment, "figures"))
        context.log.info(
            f"{experiment}: wrote {len(built.figures)} figures; not drawn: {', '.join(built.not_drawn) or 'none'}"
        )
        return dg.MaterializeResult(metadata=meta)

    return figures
