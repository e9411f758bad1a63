"""Cross-experiment assets (group `slides`): the slides dataset, heuristic performance, section-1 figures."""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from inoc import figures
from inoc.outcomes import heuristic_performance_table
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from slides.dataset import build_slides_dataset
from slides.section1 import SLIDES, slide_figure
from warehouse import replace_rows

DATASET_KEY = AssetKey(["slides", "slides_dataset"])


def slides_assets(upstream: list[AssetKey]) -> list[AssetsDefinition]:
    @asset(
        key=DATASET_KEY,
        group_name="slides",
        kinds={"duckdb"},
        deps=upstream,
        description=(
            "`slides_dataset`: one row per (experiment, prompt, trait role, prefix type) with elicitation, PH, "
            "token-level PCA/SVD coordinates, suppression with CI, control and run scores, cross-trait suppression "
            "and the fixed-vs-mix gap (SQL in slides/dataset.sql); and `heuristic_performance`: Pearson r, r², n "
            "of each heuristic against each suppression measure, per experiment and pooled."
        ),
    )
    def slides_dataset(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        wh = warehouse.warehouse
        with wh.writer() as conn:
            n = build_slides_dataset(conn)
            frame = conn.execute("SELECT * FROM slides_dataset").df()
            perf = heuristic_performance_table(frame)
            replace_rows(conn, "heuristic_performance", perf, {})
        counts = frame.groupby("experiment").size().to_dict()
        context.log.info(f"slides_dataset: {n} rows {counts}")
        pooled = perf[(perf.scope == "pooled") & (perf.outcome == "trait_suppression_all")]
        return MaterializeResult(
            metadata={
                "rows": n,
                "rows_per_experiment": MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "with_suppression": int(frame.suppression.notna().sum()),
                "performance_pooled": MetadataValue.md(pooled.round(3).to_markdown(index=False)),
            }
        )

    @asset(
        key=AssetKey(["slides", "section1_figures"]),
        group_name="slides",
        deps=[DATASET_KEY],
        description="Section-1 slide figures from SQL on slides_dataset: suppression vs elicitation, PH, token PCA "
        "PC1 and TruncatedSVD SV1, each experiments × prefix types, with OLS line and 95% band.",
    )
    def section1_figures(warehouse: WarehouseResource, artifacts: ArtifactStoreResource) -> MaterializeResult:
        meta = {}
        with warehouse.warehouse.reader() as con:
            for slide in SLIDES:
                png = slide_figure(con, slide)
                url = artifacts.store.write_bytes(png, "slides", f"section1_{slide}.png")
                meta[slide] = MetadataValue.md(figures.markdown_image(png, slide))
        meta["folder"] = MetadataValue.path(url.rsplit("/", 1)[0])
        return MaterializeResult(metadata=meta)

    return [slides_dataset, section1_figures]
