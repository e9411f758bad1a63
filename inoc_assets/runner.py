"""Run asset selections on the persistent instance, so CLI runs show in the UI's run history."""

from __future__ import annotations

from typing import Sequence

from dagster import AssetKey, DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.execution_result import ExecutionResult



def run_assets(
    instance: DagsterInstance,
    selection: Sequence[AssetKey],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    max_concurrent: int = 4,
    log_level: str = "DEBUG",
    tags: dict[str, str] | None = None,
    in_process: bool = False,
) -> ExecutionResult:
    """Materialize `selection` in one run: multiprocess executor (steps in parallel), or in this
    process (`in_process`: no per-step interpreter start, for short chains of dependent steps)."""
    run_tags = dict(tags or {})
    if partition_key is not None:
        run_tags["dagster/partition"] = partition_key
    if partition_range is not None:
        run_tags["dagster/asset_partition_range_start"], run_tags["dagster/asset_partition_range_end"] = partition_range
    result = execute_job(
        ReconstructableRepository.for_module("inoc_assets.definitions", "defs").get_reconstructable_job("__ASSET_JOB"),
        instance=instance,
        asset_selection=list(selection),
        tags=run_tags,
        run_config={
            "execution": {"config": {"in_process": {}} if in_process
                          else {"multiprocess": {"max_concurrent": max_concurrent}}},
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        raise_on_error=False,
    )
    return result
