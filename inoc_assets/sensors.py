"""Sensors: keep the prompt partitions in step with the experiment YAMLs, without a restart."""


from pathlib import Path

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from inoc_assets.partitions import prompt_partitions
from inoc_assets.sync import plan_sync


def prompt_partition_sensor(experiments_dir: Path, minimum_interval_seconds: int = 30):
    @sensor(
        name="prompt_partitions_sensor",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Reads every YAML in {experiments_dir} and registers prompts that have no partition yet. "
            "Never removes a partition. Launches nothing: backfill new prompts explicitly (GPU cost)."
        ),
    )
    def _sensor(context: SensorEvaluationContext):
        plan = plan_sync(context.instance, experiments_dir)
        for err in plan.errors:
            context.log.error(f"invalid experiment config (skipped):\n{err}")
        for defn, keys in plan.orphaned.items():
            context.log.info(f"{defn}: {keys} are no longer in the YAML; their partitions and data are kept")
        if not plan.to_add:
            return SkipReason("every configured prompt already has its partition")
        requests = [
            prompt_partitions(defn.removesuffix("__prompts")).build_add_request(keys)
            for defn, keys in plan.to_add.items()
        ]
        context.log.info(f"registering {plan.n_added} new prompt partition(s): {plan.to_add}")
        return SensorResult(dynamic_partitions_requests=requests)

    return _sensor
