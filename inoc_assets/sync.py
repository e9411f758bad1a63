"""Register each experiment's prompts and planned runs as dynamic partitions (the sensor, `inoc sync`, the CLI).

Only additions: a prompt or run removed from a YAML keeps its partition and all its data, so removing a
line from a config can never delete results.

Run partitions used to be a prompt × prefix-type grid (`MultiPartitionKey`, `<type>|<prompt>`). An instance
from then is migrated in place: each planned run's latest legacy materialization is re-recorded under its
`<prompt>/<type>` key (same metadata plus the config digest of the run that made it, tagged with that run), so a finished
study stays finished and nothing is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster import AssetKey, AssetMaterialization, AssetRecordsFilter, DagsterInstance

from inoc.config import ConfigError, ExperimentConfig, load_all
from inoc_assets.partitions import (
    legacy_run_partition_key,
    prompt_partitions_name,
    run_partition_key,
    run_partitions_name,
)

RUN_ASSETS = ("runs", "run_eval", "run_scores")
DIGEST_TAG = "inoc/config_digest"
MIGRATED_FROM = "migrated_from_partition"  # a metadata entry: tag values cannot hold "|"
SOURCE_RUN_TAG = "inoc/source_run"


@dataclass
class SyncPlan:
    to_add: dict[str, list[str]] = field(default_factory=dict)  # partitions-def name → new keys
    orphaned: dict[str, list[str]] = field(default_factory=dict)  # registered but no longer in the YAML
    errors: list[ConfigError] = field(default_factory=list)
    configs: list[ExperimentConfig] = field(default_factory=list)

    @property
    def n_added(self) -> int:
        return sum(len(v) for v in self.to_add.values())


def planned_partitions(cfg: ExperimentConfig) -> dict[str, list[str]]:
    """Partitions-def name → the keys the config plans: its prompts and (unless an import) its runs."""
    out = {prompt_partitions_name(cfg.name): list(cfg.prompt_keys)}
    if not cfg.is_import:
        out[run_partitions_name(cfg.name)] = [run_partition_key(p, t) for p, t in cfg.run_partition_keys()]
    return out


def plan_sync(instance: DagsterInstance, experiments_dir: str | Path) -> SyncPlan:
    catalog = load_all(experiments_dir)
    plan = SyncPlan(errors=catalog.errors, configs=list(catalog.configs.values()))
    for cfg in catalog.configs.values():
        for defn, keys in planned_partitions(cfg).items():
            registered = set(instance.get_dynamic_partitions(defn))
            new = [k for k in keys if k not in registered]
            gone = sorted(registered - set(keys))
            if new:
                plan.to_add[defn] = new
            if gone:
                plan.orphaned[defn] = gone
    return plan


def apply_sync(instance: DagsterInstance, plan: SyncPlan) -> int:
    """Register the new partitions, then migrate legacy run materializations; returns how many were migrated."""
    for defn, keys in plan.to_add.items():
        instance.add_dynamic_partitions(defn, keys)
    return sum(migrate_legacy_run_partitions(instance, cfg) for cfg in plan.configs if not cfg.is_import)


def migrate_legacy_run_partitions(instance: DagsterInstance, cfg: ExperimentConfig) -> int:
    """Re-record each planned run's legacy `<type>|<prompt>` materialization under `<prompt>/<type>` (idempotent)."""
    moved = 0
    for name in RUN_ASSETS:
        asset_key = AssetKey([cfg.name, name])
        done = instance.get_materialized_partitions(asset_key)
        for prompt, prefix_type in cfg.run_partition_keys():
            old, new = legacy_run_partition_key(prompt, prefix_type), run_partition_key(prompt, prefix_type)
            if old not in done or new in done:
                continue
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, asset_partitions=[old]), limit=1
            ).records
            if not records:
                continue
            event = records[0].asset_materialization
            source = instance.get_run_by_id(records[0].run_id)
            # Asset event tag values are limited to 63 characters: the 64-hex config digest goes in the metadata.
            meta = {**event.metadata, MIGRATED_FROM: old}
            if source is not None and DIGEST_TAG in source.tags:
                meta[DIGEST_TAG] = source.tags[DIGEST_TAG]
            instance.report_runless_asset_event(
                AssetMaterialization(
                    asset_key=asset_key,
                    partition=new,
                    metadata=meta,
                    tags={SOURCE_RUN_TAG: records[0].run_id},
                    description=f"migrated from the legacy partition {old}",
                )
            )
            moved += 1
    return moved
