"""The asset graph of a computed experiment: every stage of the study, wired in one place.

base_model, instructions, eval_instructions → training_data, control_completions
prompt[p] → rephrasings[p] → elicitation[p] (+ elicitation_baseline), logprobs[p] (+ logprob_baseline)
training_data → control_run → control_eval → control_scores
prompt[p], rephrasings[p], training_data → runs[p × fixed|mix|close_mix] → run_eval → run_scores
rephrasings → text_heuristics (self-perplexity, embeddings)
run_scores, control_scores → suppression; logprobs, elicitation, text_heuristics → prompt_geometry; all → figures
"""

from pathlib import Path

from dagster import AssetKey, AssetsDefinition

from inoc_assets.assets.data import data_assets
from inoc_assets.assets.elicitation import elicitation_assets
from inoc_assets.assets.figures import figures_asset
from inoc_assets.assets.geometry import geometry_asset
from inoc_assets.assets.logprobs import logprob_assets
from inoc_assets.assets.outcomes import suppression_asset
from inoc_assets.assets.runs import training_assets
from inoc_assets.assets.text_heuristics import text_heuristics_asset


def pipeline_assets(experiment: str, config_path: Path) -> list[AssetsDefinition]:
    k = lambda name: AssetKey([experiment, name])  # noqa: E731
    assets = data_assets(experiment, config_path)
    assets += elicitation_assets(experiment, config_path)
    assets += logprob_assets(experiment, config_path)
    assets += training_assets(experiment, config_path)
    assets.append(suppression_asset(experiment, config_path, [k("control_scores"), k("run_scores")]))
    assets.append(text_heuristics_asset(experiment, config_path))
    assets.append(
        geometry_asset(
            experiment,
            config_path,
            [k("logprob_baseline"), k("logprobs"), k("elicitation_baseline"), k("elicitation"), k("text_heuristics")],
        )
    )
    assets.append(
        figures_asset(experiment, config_path, [k("suppression"), k("prompt_geometry"), k("control_run"), k("runs")])
    )
    return assets
