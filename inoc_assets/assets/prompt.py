"""`<experiment>/prompt`, partitioned by prompt: one prompt's row in `prompts` and prompt/<key>.json.

Every downstream per-prompt asset depends on the prompt partition, so a new prompt in the YAML is a new
partition whose backfill starts here. It re-reads the YAML when it runs: the sensor registers new
prompts without a restart.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from inoc.config import load_experiment
from inoc.config.digest import prompt_identity
from inoc.config.records import prompt_record
from inoc_assets.partitions import prompt_partitions
from inoc_assets.plumbing import PROMPT_IDENTITY, key, partition_prompts
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import PROMPT, stage_tag
from warehouse import replace_rows


def prompt_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(experiment, "prompt"),
        group_name=experiment,
        tags=stage_tag(PROMPT),
        kinds={"duckdb"},
        partitions_def=prompt_partitions(experiment),
        # A backfill of many prompts is one run (cheap per-prompt work; no step per partition).
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[key(experiment, "experiment")],
        description="One inoculation prompt (partition = prompt key): its row in `prompts` and prompt/<key>.json.",
        check_specs=[
            dg.AssetCheckSpec(
                "prompt_text_in_warehouse",
                asset=key(experiment, "prompt"),
                description="The prompt's text, group and family read back from the warehouse equal the YAML.",
            )
        ],
    )
    def prompt(context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        keys = partition_prompts(context, cfg, config_path)
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
        yield dg.MaterializeResult(
            metadata={
                "n_prompts": len(records),
                "prompts": dg.MetadataValue.md(
                    "\n".join(f"- `{r['prompt_key']}` ({r['prompt_group']}): {r['prompt_text']}" for r in records)
                ),
                "artifacts": dg.MetadataValue.path(urls[0].rsplit("/", 1)[0]),
            }
        )
        mismatched = [r["prompt_key"] for r in records if back.get(r["prompt_key"]) != r]
        yield dg.AssetCheckResult(
            check_name="prompt_text_in_warehouse",
            passed=not mismatched,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"checked": len(records), "mismatched": dg.MetadataValue.json(mismatched)},
        )

    return prompt
