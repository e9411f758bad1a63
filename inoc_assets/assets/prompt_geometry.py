"""`<experiment>/prompt_geometry`: prompt heuristics and W-matrix geometry (PCA, TruncatedSVD, angles) with figures."""

from pathlib import Path

import dagster as dg

from inoc import figures
from inoc.config import load_experiment
from inoc.tables.prompt_geometry import prompt_geometry_tables
from inoc.tables.prompt_tables import prompt_roles
from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import TEXT_HEURISTICS_FILE, key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import AGGREGATE, stage_tag
from inoc_assets.table_metadata import table as table_md
from warehouse import bulk, replace_rows
from warehouse.bulk import TokenPartitions


def _has_suppression(config_path: Path) -> bool:
    """Whether the experiment has a `suppression` asset (computed, or an import with score files)."""
    cfg = load_experiment(config_path)
    return not cfg.is_import or bool(cfg.import_.score_files)


def prompt_geometry_asset(experiment: str, config_path: Path, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    k = key(experiment, "prompt_geometry")
    if _has_suppression(config_path):  # Exp 20's outcomes (fixed_vs_mix_gap) read the suppression table
        deps = [*deps, key(experiment, "suppression")]

    @dg.asset(
        key=k,
        group_name=experiment,
        tags=stage_tag(AGGREGATE),
        kinds={"duckdb"},
        deps=deps,
        description=(
            "Per-prompt heuristics (PH, PPD, γ, σ, SNR, MALD; elicitation) and the geometry of the W matrices "
            "(fixed, mix, token level): PCA and TruncatedSVD variance and coordinates, pairwise angles in three "
            "representations and their pair-type statistics → prompt_heuristics, pca_variance, prompt_coords, "
            "prompt_angles, angle_groups, fixed_vs_mix_heuristics (raw and rank-1 reconstructions), pca_correlations; "
            "Exp 20 per trait (the trait's family + neutral prompts with fixed and mix runs): the rank-1 PCA / "
            "TruncatedSVD fits on W_fixed and their PC1 variance → fixed_vs_mix_rank1, the ten heuristics with the "
            "outcomes fixed − mix and control − mix → fixed_vs_mix_gap, and their r → fixed_vs_mix_gap_correlations; "
            "Exp 19's angle questions per W matrix: signed PCA/SVD top-2 coordinates, angles from the PC1/SV1 axis, "
            "angles to the other trait's centroid and mean angles to each role → prompt_angle_predictors, and their r "
            "with each trait's suppression (Q1) and with cross-trait suppression (Q2) → angle_questions; "
            "the registry's catalogue (H3/H4 trait SVDs, token heuristics H11–HB6, point-wise fixed-vs-mix columns) "
            "into prompt_heuristics and, for every heuristic a prompt lacks, the reason in heuristic_availability; "
            "PCA scatters and angle heatmaps."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "matrix_shapes",
                asset=k,
                description="Every W matrix has one row per prompt with logprobs and the same number of columns "
                "as the baseline has examples (point-wise) or at least as many as any row's tokens.",
            )
        ],
    )
    def prompt_geometry(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
    ):
        cfg = load_experiment(config_path)
        wh = warehouse.warehouse
        vectors = wh.query(
            "SELECT prompt_key, vector, example_idx, lp FROM logprob_vectors WHERE experiment = ?", [experiment]
        )
        with wh.reader() as conn:  # token W is read partition by partition, never as one frame
            tokens = TokenPartitions(bulk.partitions(conn, "logprob_tokens", experiment))
        elicitation = wh.query("SELECT * FROM elicitation_summary WHERE experiment = ?", [experiment])
        text = (
            artifacts.store.read_parquet(experiment, *TEXT_HEURISTICS_FILE)
            if artifacts.store.exists(experiment, *TEXT_HEURISTICS_FILE)
            else None
        )
        suppression = wh.query("SELECT * FROM suppression WHERE experiment = ?", [experiment])
        built = prompt_geometry_tables(cfg, vectors, tokens, elicitation, text, suppression)
        matrices, frames = built.matrices, built.tables
        pca_variance, prompt_coords, pairs = frames["pca_variance"], frames["prompt_coords"], frames["prompt_angles"]
        rank1 = frames["fixed_vs_mix_rank1"]
        with wh.writer() as conn:
            for table, frame in frames.items():
                replace_rows(conn, table, frame.drop(columns=["experiment"]), {"experiment": experiment})
        roles = prompt_roles(cfg)
        meta: dict = {f"rows_{t}": len(f) for t, f in frames.items()}
        if len(elicitation):  # the batch-wide view of the per-prompt elicitation partitions
            wide = elicitation.pivot_table(index="prompt_key", columns="trait", values="relative_pp").reset_index()
            meta["elicitation_vs_baseline_pp"] = table_md(wide.rename(columns={"prompt_key": "prompt"}))
        meta["matrices"] = dg.MetadataValue.md(
            "\n".join(f"- `{m.name}`: {m.W.shape[0]} × {m.W.shape[1]}" for m in matrices) or "none"
        )
        publisher = FigurePublisher(artifacts.store, context.log)
        for m in matrices:
            sel = (pca_variance.matrix == m.name) & (pca_variance.method == "pca")
            publisher.publish(
                f"pca_{m.name}",
                figures.pca_scatter(
                    prompt_coords[(prompt_coords.matrix == m.name) & (prompt_coords.method == "pca")],
                    pca_variance[sel],
                    roles,
                    f"{experiment}: PCA of W_{m.name}",
                ),
                experiment,
                "figures",
                f"pca_{m.name}.png",
            )
            raw = pairs[(pairs.matrix == m.name) & (pairs.representation == "raw")]
            publisher.publish(
                f"angles_{m.name}",
                figures.angle_heatmap(raw, m.keys, f"{experiment}: angles between W_{m.name} rows"),
                experiment,
                "figures",
                f"angles_{m.name}.png",
            )
            ratios = pca_variance[sel].explained_variance_ratio.head(2).tolist()
            meta[f"pc1_variance_{m.name}"] = float(ratios[0])
            context.log.info(f"W_{m.name} {m.W.shape}: PCA PC1 {100 * ratios[0]:.1f}%, PC2 {100 * ratios[1]:.1f}%")
        for r in rank1.itertuples():  # golden G8 on the German/Flattering import
            meta[f"fixed_vs_mix_pc1_{r.method}_{r.trait}"] = float(r.pc1_variance)
        meta.update(publisher.summary())
        meta["folder"] = dg.MetadataValue.path(artifacts.store.url(experiment, "figures"))
        yield dg.MaterializeResult(metadata=meta)
        problems = [
            f"{m.name}: {m.W.shape}"
            for m in matrices
            if m.W.shape[0] != len(m.keys)
            or (
                m.name in ("fixed", "mix")
                and m.W.shape[1] != len(vectors[vectors.prompt_key.isna() & (vectors.vector == "train_default")])
            )
        ]
        yield dg.AssetCheckResult(
            check_name="matrix_shapes", passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
        )

    return prompt_geometry
