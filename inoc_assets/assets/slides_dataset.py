"""`slides/slides_dataset`: the cross-experiment dataset of the slides (SQL in slides/dataset.sql), the heuristic
performance and ranking tables, and the ranking figures."""

import dagster as dg

from inoc import figures
from inoc.heuristics.ranking import TARGETS, ranking_table
from inoc.tables.heuristic_performance import heuristic_performance_table
from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import SLIDES_DATASET_KEY
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import SLIDES, stage_tag
from slides.dataset import build_slides_dataset, write_ranking
from warehouse import replace_rows


def slides_dataset_asset(upstream: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """Built after every experiment's analysis tables (``upstream``)."""

    @dg.asset(
        key=SLIDES_DATASET_KEY,
        group_name="slides",
        tags=stage_tag(SLIDES),
        kinds={"duckdb"},
        deps=upstream,
        description=(
            "`slides_dataset`: one row per (experiment, prompt, trait role, prefix type) with elicitation, PH, "
            "token-level PCA/SVD coordinates, suppression with CI, control and run scores, cross-trait suppression "
            "and the fixed-vs-mix gap (SQL in slides/dataset.sql); and `heuristic_performance`: Pearson r, r², n "
            "of each heuristic against each suppression measure, per experiment and pooled; `heuristic_ranking`: the "
            "original's table (§8.10), the registry's H1–HB6 against five targets over all rows; the registry's "
            "heuristic columns are generated from inoc/heuristics/registry.py (also written as `heuristic_registry`). "
            "Figures heuristic_ranking_<target>: one panel per scope (pooled, each experiment), a bar per heuristic "
            "with its Pearson r against the target over all rows, sorted, with the 95% bootstrap CI and n; "
            "heuristics without an r are named under the panel."
        ),
    )
    def slides_dataset(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        wh = warehouse.warehouse
        with wh.writer() as conn:
            n = build_slides_dataset(conn)
            frame = conn.execute("SELECT * FROM slides_dataset").df()
            perf = heuristic_performance_table(frame)
            replace_rows(conn, "heuristic_performance", perf, {})
            ranking = ranking_table(frame)
            write_ranking(conn, ranking)
        publisher = FigurePublisher(artifacts.store, context.log)
        for target in TARGETS:
            name = "heuristic_ranking_" + "".join(c if c.isalnum() else "_" for c in target.lower()).strip("_").replace(
                "__", "_"
            )
            fig = figures.heuristic_ranking_bars(
                ranking, target, f"Heuristics ranked by Pearson r with {target} (all rows)"
            )
            if fig is None:
                publisher.not_drawn(name, f"no heuristic has 3 or more rows with a value and a {target} value")
            else:
                publisher.publish(name, fig, "slides", f"{name}.png")
        counts = frame.groupby("experiment").size().to_dict()
        context.log.info(f"slides_dataset: {n} rows {counts}")
        pooled = perf[(perf.scope == "pooled") & (perf.outcome == "trait_suppression_all")]
        return dg.MaterializeResult(
            metadata={
                "rows": n,
                "rows_per_experiment": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "with_suppression": int(frame.suppression.notna().sum()),
                **publisher.summary(),
                "performance_pooled": dg.MetadataValue.md(pooled.round(3).to_markdown(index=False)),
                "ranking_pooled_trait_sup_all": dg.MetadataValue.md(
                    ranking[(ranking.scope == "pooled") & (ranking.target == "Trait sup (all)")]
                    .sort_values("r", key=abs, ascending=False, na_position="last")
                    .round(3)
                    .to_markdown(index=False)
                ),
            }
        )

    return slides_dataset
