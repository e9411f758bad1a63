"""The experiment's catalogue assets: its configuration and its prompts, in the warehouse.

`<experiment>/experiment` records the experiment (the `experiments` table and a resolved config
snapshot in the artifact store); `<experiment>/prompt` is partitioned by prompt and records one
prompt (the `prompts` table and `prompt/<key>.json`). Every downstream per-prompt asset depends on
the prompt partition, so a new prompt in the YAML is a new partition whose backfill starts here.

Both re-read the YAML when they run: a running code server may hold an older copy, and the sensor
registers new prompts without a restart.
"""

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from inoc.config import load_experiment
from inoc.config.digest import config_digest, prompt_identity
from inoc.config.records import experiment_record, prompt_record
from inoc_assets.partitions import prompt_partitions
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import PROMPT, SETUP, stage_tag
from warehouse import replace_rows

#: Per-partition metadata of `<experiment>/prompt`: `inoc.config.digest.prompt_identity` when it was computed.
PROMPT_IDENTITY = "inoc/prompt_identity"


def catalog_assets(experiment: str, config_path: Path) -> list[AssetsDefinition]:
    group = experiment

    @asset(
        key=AssetKey([experiment, "experiment"]),
        group_name=group,
        tags=stage_tag(SETUP),
        kinds={"duckdb"},
        description=f"The `{experiment}` experiment: its row in `experiments` and a resolved config snapshot.",
        check_specs=[
            AssetCheckSpec(
                "warehouse_row_matches_config",
                asset=AssetKey([experiment, "experiment"]),
                description="The `experiments` row read back from the warehouse snapshot equals the YAML.",
            )
        ],
    )
    def experiment_asset(
        context: AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource
    ):
        cfg = load_experiment(config_path)
        record = experiment_record(cfg)
        wh = warehouse.warehouse
        with wh.writer() as conn:
            replace_rows(conn, "experiments", pd.DataFrame([record]), {"experiment": experiment})
        digest = config_digest(cfg)
        url = artifacts.store.write_json(
            cfg.model_dump(mode="json", by_alias=True), experiment, "experiment", "config.json"
        )
        context.log.info(f"{experiment}: {len(cfg.prompts)} prompts in {len(cfg.groups)} groups, model {cfg.model.id}")
        back = wh.query("SELECT * FROM experiments WHERE experiment = ?", [experiment]).to_dict("records")
        yield MaterializeResult(
            data_version=DataVersion(digest[:16]),
            metadata={
                "model": cfg.model.id,
                "n_prompts": len(cfg.prompts),
                "groups": ", ".join(cfg.groups),
                "config_sha256": digest,
                "config_snapshot": MetadataValue.path(url),
                "source_file": MetadataValue.path(str(config_path)),
            },
        )
        ok = back == [record]
        yield AssetCheckResult(
            check_name="warehouse_row_matches_config",
            passed=ok,
            severity=AssetCheckSeverity.ERROR,
            metadata={"read_back": MetadataValue.json(back)},
        )

    @asset(
        key=AssetKey([experiment, "prompt"]),
        group_name=group,
        tags=stage_tag(PROMPT),
        kinds={"duckdb"},
        partitions_def=prompt_partitions(experiment),
        # A backfill of many prompts is one run (cheap per-prompt work; no step per partition).
        backfill_policy=BackfillPolicy.single_run(),
        deps=[AssetKey([experiment, "experiment"])],
        description="One inoculation prompt (partition = prompt key): its row in `prompts` and prompt/<key>.json.",
        check_specs=[
            AssetCheckSpec(
                "prompt_text_in_warehouse",
                asset=AssetKey([experiment, "prompt"]),
                description="The prompt's text, group and family read back from the warehouse equal the YAML.",
            )
        ],
    )
    def prompt_asset(context: AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        keys = list(context.partition_keys)
        removed = [k for k in keys if k not in cfg.prompts]
        if removed:
            # A prompt removed from the YAML keeps its partition and data; it just cannot be recomputed.
            raise Failure(
                description=f"prompt(s) {removed} are no longer in {config_path}; their existing data is kept. "
                "Add them back to recompute them."
            )
        records = [prompt_record(cfg, k) for k in keys]
        wh = warehouse.warehouse
        with wh.writer() as conn:
            for record in records:
                replace_rows(
                    conn,
                    "prompts",
                    pd.DataFrame([record]),
                    {"experiment": experiment, "prompt_key": record["prompt_key"]},
                )
        urls = [artifacts.store.write_json(r, experiment, "prompt", f"{r['prompt_key']}.json") for r in records]
        for k in keys:  # what this partition was computed from: `inoc main` compares it with the YAML's
            context.add_asset_metadata(
                {
                    PROMPT_IDENTITY: prompt_identity(cfg, k),
                    "prompt_text": cfg.prompts[k],
                    "prompt_group": cfg.group_of(k),
                    "candidate": k in cfg.candidates,
                },
                partition_key=k,
            )
        back = {
            r["prompt_key"]: r
            for r in wh.query("SELECT * FROM prompts WHERE experiment = ?", [experiment]).to_dict("records")
        }
        # One result covers every partition of the run (a single-run backfill records each of them).
        yield MaterializeResult(
            metadata={
                "n_prompts": len(records),
                "prompts": MetadataValue.md(
                    "\n".join(f"- `{r['prompt_key']}` ({r['prompt_group']}): {r['prompt_text']}" for r in records)
                ),
                "artifacts": MetadataValue.path(urls[0].rsplit("/", 1)[0]),
            }
        )
        mismatched = [r["prompt_key"] for r in records if back.get(r["prompt_key"]) != r]
        yield AssetCheckResult(
            check_name="prompt_text_in_warehouse",
            passed=not mismatched,
            severity=AssetCheckSeverity.ERROR,
            metadata={"checked": len(records), "mismatched": MetadataValue.json(mismatched)},
        )

    return [experiment_asset, prompt_asset]
