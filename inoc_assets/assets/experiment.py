"""`<experiment>/experiment`: the experiment's row in `experiments` and a resolved config snapshot.

It re-reads the YAML when it runs: a running code server may hold an older copy.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from inoc.config import load_experiment
from inoc.config.digest import config_digest
from inoc.config.records import experiment_record
from inoc_assets.plumbing import key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import SETUP, stage_tag
from warehouse import replace_rows


def experiment_asset(name: str, config_path: Path) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(name, "experiment"),
        group_name=name,
        tags=stage_tag(SETUP),
        kinds={"duckdb"},
        description=f"The `{name}` experiment: its row in `experiments` and a resolved config snapshot.",
        check_specs=[
            dg.AssetCheckSpec(
                "warehouse_row_matches_config",
                asset=key(name, "experiment"),
                description="The `experiments` row read back from the warehouse snapshot equals the YAML.",
            )
        ],
    )
    def experiment(context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        record = experiment_record(cfg)
        wh = warehouse.warehouse
        with wh.writer() as conn:
            replace_rows(conn, "experiments", pd.DataFrame([record]), {"experiment": name})
        digest = config_digest(cfg)
        url = artifacts.store.write_json(cfg.model_dump(mode="json", by_alias=True), name, "experiment", "config.json")
        context.log.info(f"{name}: {len(cfg.prompts)} prompts in {len(cfg.groups)} groups, model {cfg.model.id}")
        back = wh.query("SELECT * FROM experiments WHERE experiment = ?", [name]).to_dict("records")
        yield dg.MaterializeResult(
            data_version=dg.DataVersion(digest[:16]),
            metadata={
                "model": cfg.model.id,
                "n_prompts": len(cfg.prompts),
                "groups": ", ".join(cfg.groups),
                "config_sha256": digest,
                "config_snapshot": dg.MetadataValue.path(url),
                "source_file": dg.MetadataValue.path(str(config_path)),
            },
        )
        ok = back == [record]
        yield dg.AssetCheckResult(
            check_name="warehouse_row_matches_config",
            passed=ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"read_back": dg.MetadataValue.json(back)},
        )

    return experiment
