"""`slides/section1_figures`: the section-1 slide figures, from SQL on `slides_dataset` (slides/section1.py)."""

import dagster as dg

from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import SLIDES_DATASET_KEY, key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import SLIDES as SLIDES_STAGE  # not `SLIDES`: section1's slide table has that name
from inoc_assets.stages import stage_tag
from slides.section1 import (
    EMBEDDINGS,
    SLIDES,
    embedding_figure,
    h_table_figure,
    original_layout_figures,
    slide_figure,
)


def section1_figures_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=key("slides", "section1_figures"),
        group_name="slides",
        tags=stage_tag(SLIDES_STAGE),
        deps=[SLIDES_DATASET_KEY],
        description="Section-1 slide figures from SQL on slides_dataset: suppression vs elicitation, PH, token PCA "
        "PC1 and TruncatedSVD SV1 (experiments × prefix types, OLS line and 95% band), and the 2-D/3-D token-space "
        "prompt embeddings coloured by suppression; the original's slides in its layouts, each also as `_filtered` "
        "(each trait's own-family and neutral prompts only): slides 1 and 2 (slide1_elicitation, slide2_ph: a row per "
        "experiment, fixed | mix, suppression of both trait rows — red negative, blue positive — against elicitation "
        "or PH with an OLS line per trait), the 2 × 8 slides 3a/4a (pca_grid, svd_grid: suppression against C1, C2, "
        "C1+C2, C1−C2 of the token-level PCA / TruncatedSVD, an OLS line with 95% band and r, R², p, n per trait) and "
        "3b/4b (pca_scatter, svd_scatter: fixed | mix × negative | positive trait, prompts on C1 × C2 coloured by "
        "suppression, prompts without a run as grey ×); and the H-table (h_table: the pooled heuristic_ranking as a "
        "heat-map of r with n, a row per heuristic with its Group).",
    )
    def section1_figures(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        publisher = FigurePublisher(artifacts.store, context.log)
        with warehouse.warehouse.reader() as con:
            built = {slide: slide_figure(con, slide) for slide in SLIDES}
            for slide in EMBEDDINGS:
                for dims in (2, 3):
                    built[f"{slide}_{dims}d"] = embedding_figure(con, slide, dims)
            built.update(original_layout_figures(con))  # slides 1, 2, 3a/4a, 3b/4b, each also _filtered
            built["h_table"] = h_table_figure(con)
        for name, fig in built.items():
            if fig is None:
                publisher.not_drawn(name, "no experiment has both this predictor and a suppression for any prompt")
            else:
                publisher.publish(name, fig, "slides", f"section1_{name}.png")
        meta = publisher.summary()
        meta["folder"] = dg.MetadataValue.path(artifacts.store.url("slides"))
        return dg.MaterializeResult(metadata=meta)

    return section1_figures
