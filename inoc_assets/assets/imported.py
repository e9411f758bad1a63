"""`<experiment>/imported_<kind>`: the assets of experiments whose results are imported from files, one per kind
of result file: `imported_scores`, `imported_elicitation`, `imported_losses`, `imported_jobs`, `imported_logprobs`,
`imported_em_scores`. Each parses all of
its files before writing, then replaces exactly the batches (prompt keys for elicitation and
logprobs) its files hold, in one transaction: other batches stay, a malformed file fails the step
with the file and JSON path and leaves the warehouse as it was.
"""

from pathlib import Path

import dagster as dg

from inoc.config import load_experiment
from inoc.importers.experiment import (
    ImportRefused,
    configured_kinds,
    counts,
    describe,
    nan_counts,
    parse_configured,
    results_dir,
    write_parsed,
)
from inoc.importers.reference import ReferenceFormatError
from inoc_assets.plumbing import key
from inoc_assets.resources import WarehouseResource
from inoc_assets.stages import SETUP, stage_tag

DESCRIPTIONS = {
    "scores": "Run scores per (run, step, condition, trait, instruction) from scores_*.json → `runs`, `trait_scores`.",
    "elicitation": "Base-model elicitation scores per prompt and trait → `elicitation_scores` (other settings, "
    "e.g. the legacy system-prompt file → `elicitation_scores_by_setting`).",
    "losses": "Training losses per run → `training_losses`.",
    "jobs": "The original's training-job ids, status and model repos per run → `run_jobs`.",
    "logprobs": "Base-model logprob vectors (and token-level lps) → `logprob_vectors`, `logprob_tokens`.",
    "em_scores": "Coherence and alignment per (run, step, eval set, condition, question) → `runs`, `em_scores`.",
}


def imported_key(experiment: str, kind: str) -> dg.AssetKey:
    return key(experiment, f"imported_{kind}")


def _import_asset(experiment: str, config_path: Path, kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=imported_key(experiment, kind),
        group_name=experiment,
        tags=stage_tag(SETUP),
        kinds={"duckdb"},
        deps=[key(experiment, "experiment")],
        description=DESCRIPTIONS[kind],
    )
    def imported(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        cfg = load_experiment(config_path)
        try:
            folder = results_dir(cfg)
            parsed = parse_configured(cfg, kind)
        except (ReferenceFormatError, FileNotFoundError) as exc:
            raise dg.Failure(description=f"import of {kind} for {experiment} failed, nothing written: {exc}") from None
        try:
            with warehouse.warehouse.writer() as conn:
                reports = write_parsed(conn, experiment, parsed)
        except ImportRefused as exc:
            raise dg.Failure(description=str(exc)) from None
        for note in parsed.notes:
            context.log.warning(note)
        lines = describe(reports)
        context.log.info(f"{experiment}: imported from {folder}\n" + "\n".join(lines))
        meta = {f"rows_{t}": n for t, n in counts(reports).items()}
        meta["writes"] = dg.MetadataValue.md("\n".join(f"- {line.strip()}" for line in lines))
        meta.update({f"nan_{t}": n for t, n in nan_counts(parsed).items()})
        meta["source_folder"] = dg.MetadataValue.path(str(folder))
        if "runs" in parsed.tables:
            meta["n_runs"] = len(parsed.tables["runs"])
        if parsed.notes:
            meta["skipped"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in parsed.notes))
        return dg.MaterializeResult(metadata=meta)

    return imported


def imported_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    cfg = load_experiment(config_path)
    return [_import_asset(experiment, config_path, kind) for kind in configured_kinds(cfg)]
