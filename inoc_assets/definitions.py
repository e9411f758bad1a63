"""The Dagster code location: one asset group per experiment YAML, wired here.

Each asset lives in `inoc_assets/assets/<asset name>.py` (a run/control pair in the module of the run
flavour's name); this module only says which assets an experiment has and what each depends on:

    base_model, instructions, eval_instructions → training_data, control_completions
    prompt[p] → rephrasings[p] → elicitation[p] (+ elicitation_baseline), logprobs[p] (+ logprob_baseline)
    training_data → control_run → control_eval → control_scores
    prompt[p], rephrasings[p], training_data → runs[p × fixed|mix|close_mix] → run_eval → run_scores
    rephrasings → text_heuristics (self-perplexity, embeddings)
    run_scores, control_scores → suppression; logprobs, elicitation, text_heuristics → prompt_geometry; all → figures
    every experiment's analysis → slides/slides_dataset → section1_figures, suppression_predictor

Built from the YAMLs in the experiments folder (`INOC_EXPERIMENTS_DIR`, default `experiments/`)
that `INOC_EXPERIMENTS` selects (default: every one; see inoc.config.selection). An invalid YAML is
logged and skipped so the other experiments stay available.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from dagster import AssetsDefinition, Definitions

from inoc import settings
from inoc.config import load_all
from inoc.config.selection import parse_selection, select_experiments
from inoc_assets.assets.base_model import base_model_asset
from inoc_assets.assets.control_completions import control_completions_asset
from inoc_assets.assets.elicitation import elicitation_assets
from inoc_assets.assets.experiment import experiment_asset
from inoc_assets.assets.figures import figures_asset
from inoc_assets.assets.imported import imported_assets, imported_key
from inoc_assets.assets.instructions import instructions_asset
from inoc_assets.assets.logprobs import logprob_assets
from inoc_assets.assets.prompt import prompt_asset
from inoc_assets.assets.prompt_geometry import prompt_geometry_asset
from inoc_assets.assets.rephrasings import rephrasings_asset
from inoc_assets.assets.run_eval import run_eval_assets
from inoc_assets.assets.run_scores import run_scores_assets
from inoc_assets.assets.runs import run_assets
from inoc_assets.assets.section1_figures import section1_figures_asset
from inoc_assets.assets.slides_dataset import slides_dataset_asset
from inoc_assets.assets.suppression import suppression_asset
from inoc_assets.assets.suppression_predictor import suppression_predictor_asset
from inoc_assets.assets.text_heuristics import text_heuristics_asset
from inoc_assets.assets.training_data import training_data_asset
from inoc_assets.plumbing import key
from inoc_assets.resources import default_resources
from inoc_assets.sensors import prompt_partition_sensor

log = logging.getLogger("inoc")


def computed_assets(experiment: str, config_path: Path) -> list[AssetsDefinition]:
    """Every stage of a computed study after its experiment, prompt and rephrasings assets."""
    k = lambda name: key(experiment, name)  # noqa: E731
    return [
        base_model_asset(experiment, config_path),
        instructions_asset(experiment, config_path),
        training_data_asset(experiment, config_path),
        control_completions_asset(experiment, config_path),
        *elicitation_assets(experiment, config_path),
        *logprob_assets(experiment, config_path),
        *run_assets(experiment, config_path),
        *run_eval_assets(experiment, config_path),
        *run_scores_assets(experiment, config_path),
        suppression_asset(experiment, config_path, [k("control_scores"), k("run_scores")]),
        text_heuristics_asset(experiment, config_path),
        prompt_geometry_asset(
            experiment,
            config_path,
            [k("logprob_baseline"), k("logprobs"), k("elicitation_baseline"), k("elicitation"), k("text_heuristics")],
        ),
        figures_asset(experiment, config_path, [k("suppression"), k("prompt_geometry"), k("control_run"), k("runs")]),
    ]


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
        assets += [experiment_asset(name, path), prompt_asset(name, path)]
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
                assets.append(prompt_geometry_asset(name, path, deps))
            analysis = [k for a in assets for k in a.keys if k.path[0] == name and k.path[-1] != "prompt"]
            assets.append(figures_asset(name, path, analysis))
        else:
            # Computed: every stage of the study, from instructions to figures.
            assets += computed_assets(name, path)
    # The slides read every experiment's analysis tables.
    analysis = [
        k for a in assets for k in a.keys if k.path[-1] in ("experiment", "prompt", "suppression", "prompt_geometry")
    ]
    assets += [slides_dataset_asset(analysis), section1_figures_asset(), suppression_predictor_asset()]
    return Definitions(
        assets=assets,
        sensors=[prompt_partition_sensor(directory)],
        resources=default_resources(),
    )


defs = build_definitions()
