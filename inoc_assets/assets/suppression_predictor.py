"""`slides/suppression_predictor` (issue 20, group `slides`): predictions for every own-trait prompt, its
validation against the group-mean baseline, and the predicted-vs-observed figure."""

import math

import dagster as dg
import pandas as pd

from inoc import settings
from inoc.config import load_all
from inoc.prediction import PREDICTION_COLUMNS, predict_all, prediction_inputs
from inoc.prediction.features import group_roles
from inoc.prediction.figure import predicted_vs_observed
from inoc.prediction.rounds import new_history_rows, prior_predictions, round_summary, rounds_figure
from inoc.prediction.validation import PREDICTOR, beats_baseline
from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import SLIDES_DATASET_KEY, key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import SLIDES, stage_tag
from warehouse import replace_rows

PREDICTOR_KEY = key("slides", "suppression_predictor")
TABLES = ("suppression_predictions", "prediction_inputs", "predictor_models", "predictor_validation")


def _number(v: float) -> "float | None":
    return None if v is None or not math.isfinite(float(v)) else round(float(v), 4)


def key_numbers(validation: pd.DataFrame) -> "dict[str, float | None]":
    """`lopo_<metric>[_baseline]_<scope>_<type>` and `loso_<metric>[_baseline]_<train>_to_<test>_<type>`."""
    out: "dict[str, float | None]" = {}
    for r in validation.itertuples():
        where = r.train_scope if r.scheme == "leave_one_prompt_out" else f"{r.train_scope}_to_{r.test_scope}"
        scheme = "lopo" if r.scheme == "leave_one_prompt_out" else "loso"
        suffix = "" if r.model == PREDICTOR else "_baseline"
        for metric in ("r2", "spearman", "coverage"):
            out[f"{scheme}_{metric}{suffix}_{where}_{r.prefix_type}"] = _number(getattr(r, metric))
        if r.model == PREDICTOR:
            out[f"{scheme}_n_{where}_{r.prefix_type}"] = int(r.n)
    return out


def _roles() -> dict[tuple[str, str], str]:
    """Group roles from the experiment YAMLs (own_trait_rows falls back on the data where a group is unknown)."""
    return group_roles(load_all(settings.experiments_dir()).configs.values())


def suppression_predictor_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=PREDICTOR_KEY,
        group_name="slides",
        tags=stage_tag(SLIDES),
        kinds={"duckdb"},
        deps=[SLIDES_DATASET_KEY],
        description=(
            "Predict before you train (inoc/prediction): a ridge model of a prompt's own-trait fixed and mix "
            "suppression from its base-model heuristics (elicitation, PH; z-scored within experiment), per "
            "experiment and pooled, with jackknife+ intervals → `suppression_predictions` (every own-trait prompt, "
            "with or without a run), `prediction_inputs` (the exact feature values each prediction used), "
            "`predictor_models` (version, features, hyper-parameters, the rows fit on) and `predictor_validation` "
            "(leave-one-prompt-out per study and pooled, leave-one-study-out in both directions: R², Spearman, "
            "interval coverage, for the predictor and for the group-mean baseline). Figure: held-out predicted "
            "vs observed suppression per validation, with the intervals."
        ),
    )
    def suppression_predictor(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
    ) -> dg.MaterializeResult:
        wh = warehouse.warehouse
        built = wh.query("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'slides_dataset'").n.item()
        if not built:  # selected without its upstream (e.g. a partial materialization): nothing to read yet
            context.log.warning(
                "suppression predictor: slides_dataset does not exist yet; materialize slides/slides_dataset first"
            )
            return dg.MaterializeResult(
                metadata={"n_predictions": 0, "skipped": dg.MetadataValue.json(["slides_dataset does not exist yet"])}
            )
        slides = wh.query("SELECT * FROM slides_dataset")
        result = predict_all(slides, roles=_roles())
        predictions, validation, models = result
        inputs = prediction_inputs(predictions)
        history = wh.query("SELECT * FROM suppression_prediction_history")
        new = new_history_rows(
            history, predictions[PREDICTION_COLUMNS], models.fitted_at.max() if len(models) else None
        )
        history = pd.concat([history, new], ignore_index=True) if len(history) else new
        prior = prior_predictions(history, predictions)
        with wh.writer() as conn:
            replace_rows(conn, "suppression_predictions", predictions[PREDICTION_COLUMNS], {})
            replace_rows(conn, "prediction_inputs", inputs, {})
            replace_rows(conn, "predictor_models", models, {})
            replace_rows(conn, "predictor_validation", validation, {})
            if len(new):  # append-only: the predictions each model version made, before any prompt's run
                conn.register("_new_history", new)
                conn.execute("INSERT INTO suppression_prediction_history BY NAME SELECT * FROM _new_history")
                conn.unregister("_new_history")
            replace_rows(conn, "prediction_rounds", prior, {})
        for why in result.skipped:
            context.log.info(f"suppression predictor: {why}")
        publisher = FigurePublisher(artifacts.store, context.log)
        fig = predicted_vs_observed(
            result.held_out, validation, "Suppression predictor: held-out predicted vs observed"
        )
        if fig is None:
            publisher.not_drawn(
                "predicted_vs_observed", "nothing was validated: no experiment has enough prompts with runs"
            )
        else:
            publisher.publish("predicted_vs_observed", fig, "slides", "suppression_predictor.png")
        summary = round_summary(history, prior)
        rounds_meta: dict[str, float] = {}
        for (exp, prefix_type), part in prior.groupby(["experiment", "prefix_type"]):
            name = f"prediction_rounds_{exp}_{prefix_type}"
            publisher.publish(name, rounds_figure(prior, summary, exp, prefix_type), "slides", f"{name}.png")
            rounds_meta[f"prior_mean_abs_error_{exp}_{prefix_type}"] = _number(part.abs_error.mean())
            rounds_meta[f"prior_coverage_{exp}_{prefix_type}"] = _number(part.covered.mean())
        wins = beats_baseline(validation) if len(validation) else pd.DataFrame()
        return dg.MaterializeResult(
            metadata={
                "n_predictions": len(predictions),
                "n_candidates": int((~predictions.trained).sum()) if len(predictions) else 0,
                "models": dg.MetadataValue.md(
                    models.drop(columns=["hyper_parameters", "trained_on"]).to_markdown(index=False)
                    if len(models)
                    else "none"
                ),
                "validation": dg.MetadataValue.md(
                    validation.round(3).to_markdown(index=False) if len(validation) else "none"
                ),
                "beats_baseline": dg.MetadataValue.md(wins.round(3).to_markdown(index=False) if len(wins) else "none"),
                "skipped": dg.MetadataValue.json(result.skipped),
                "n_history_added": len(new),
                **rounds_meta,
                **key_numbers(validation),
                **publisher.summary(),
            }
        )

    return suppression_predictor
