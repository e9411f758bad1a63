"""The Dagster code location: one asset group per experiment YAML.

Built from the YAMLs in the experiments folder (`INOC_EXPERIMENTS_DIR`, default `experiments/`)
that `INOC_EXPERIMENTS` selects (default: every one; see inoc.config.selection). An invalid YAML is
logged and skipped so the other experiments stay available.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from dagster import Definitions

from inoc import settings
from inoc.config import load_all
from inoc.config.selection import parse_selection, select_experiments
from inoc_assets.assets.catalog import catalog_assets
from inoc_assets.assets.figures import figures_asset
from inoc_assets.assets.geometry import geometry_asset
from inoc_assets.assets.imported import imported_assets, imported_key
from inoc_assets.assets.outcomes import suppression_asset
from inoc_assets.assets.pipeline import pipeline_assets
from inoc_assets.assets.prediction import prediction_assets
from inoc_assets.assets.rephrasings import rephrasings_asset
from inoc_assets.assets.slides import slides_assets
from inoc_assets.resources import default_resources
from inoc_assets.sensors import prompt_partition_sensor

log = logging.getLogger("inoc")


def build_definitions(experiments_dir: str | Path | None = None, selection: Iterable[str] | None = None) -> Definitions:
    """The code location of the experiments `selection` picks (names, `local`, `all`); None: `INOC_EXPERIMENTS`."""
    directory = Path(experiments_dir) if experiments_dir else settings.experiments_dir()
    catalog = load_all(directory)
    for err in catalog.errors:
        log.error("skipping invalid experiment config:\n%s", err)
    words = list(selection) if selection is not None else parse_selection(settings.experiment_selection())
    source = "experiment selection" if selection is not None else "INOC_EXPERIMENTS"
    assets = []
    for name in select_experiments(catalog, words, source):
        cfg = catalog.configs[name]
        path = catalog.paths[name]
        assets += catalog_assets(name, path)
        if not cfg.is_import or cfg.rephrasings.source == "reference":
            # An import keeps the original's pools when it has them; it never generates new ones.
            assets.append(rephrasings_asset(name, path))
        if cfg.is_import:
            # Results come from files; the analysis layer reads them from the warehouse like computed ones.
            assets += imported_assets(name, path)
            if cfg.import_.score_files:
                assets.append(suppression_asset(name, path, [imported_key(name, "scores")]))
            kinds = {k.path[-1] for a in assets for k in a.keys if k.path[0] == name}
            if "imported_logprobs" in kinds:
                deps = [imported_key(name, k) for k in ("logprobs", "elicitation") if f"imported_{k}" in kinds]
                assets.append(geometry_asset(name, path, deps))
            analysis = [k for a in assets for k in a.keys if k.path[0] == name and k.path[-1] != "prompt"]
            assets.append(figures_asset(name, path, analysis))
        else:
            # Computed: every stage of the study, from instructions to figures.
            assets += pipeline_assets(name, path)
    # The slides read every experiment's analysis tables.
    analysis = [
        k for a in assets for k in a.keys if k.path[-1] in ("experiment", "prompt", "suppression", "prompt_geometry")
    ]
    assets += slides_assets(analysis) + prediction_assets()
    return Definitions(
        assets=assets,
        sensors=[prompt_partition_sensor(directory)],
        resources=default_resources(),
    )


defs = build_definitions()
