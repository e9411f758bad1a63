"""Sensors: keep the prompt and run partitions in step with the experiment YAMLs, without a restart."""

from pathlib import Path

from dagster import (
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from inoc_assets.sync import migrate_legacy_run_partitions, plan_sync


def prompt_partition_sensor(experiments_dir: Path, minimum_interval_seconds: int = 30):
    @sensor(
        name="prompt_partitions_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Reads every YAML in {experiments_dir} and registers prompts and planned runs that have no partition yet. "
            "Never removes a partition. Launches nothing: backfill new prompts explicitly (GPU cost)."
        ),
    )
    def _sensor(context: SensorEvaluationContext):
        plan = plan_sync(context.instance, experiments_dir)
        for err in plan.errors:
            context.log.error(f"invalid experiment config (skipped):\n{err}")
        for defn, keys in plan.orphaned.items():
            context.log.info(f"{defn}: {keys} are no longer in the YAML; their partitions and data are kept")
        for cfg in plan.configs:  # an instance from before run partitions had their own dimension
            if not cfg.is_import and (moved := migrate_legacy_run_partitions(context.instance, cfg)):
                context.log.info(f"{cfg.name}: migrated {moved} legacy run materialization(s)")
        if not plan.to_add:
            return SkipReason("every configured prompt and run already has its partition")
        requests = [
            DynamicPartitionsDefinition(name=defn).build_add_request(keys) for defn, keys in plan.to_add.items()
        ]
        context.log.info(f"registering {plan.n_added} new partition(s): {plan.to_add}")
        return SensorResult(dynamic_partitions_requests=requests)

    return _sensor
