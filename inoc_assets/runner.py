"""Run asset selections on the persistent instance, so CLI runs show in the UI's run history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from dagster import AssetKey, DagsterInstance, JobExecutionResult, execute_job

if TYPE_CHECKING:
    from dagster._core.definitions.reconstruct import ReconstructableJob


def implicit_asset_job() -> ReconstructableJob:
    """The code location's implicit job of all its assets (Dagster's ``__ASSET_JOB``), as a handle that
    every step process of the multiprocess executor can rebuild from ``inoc_assets.definitions``.

    The one private Dagster use here, kept to this function: Dagster has no public way to get a
    reconstructable handle on a code location's *implicit* asset job. The public ``reconstructable()``
    and ``build_reconstructable_job()`` wrap a job in a repository of its own, which refuses the
    reserved name ``__ASSET_JOB``; ``materialize()`` runs in process only; and an explicit
    ``define_asset_job`` over every asset would move CLI runs to another job in the UI. What is
    missing is a public handle on a job of a module's ``Definitions`` by name, as
    ``ReconstructableRepository.for_module(...).get_reconstructable_job`` gives.
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module("inoc_assets.definitions", "defs").get_reconstructable_job(
        "__ASSET_JOB"
    )


def run_assets(
    instance: DagsterInstance,
    selection: Sequence[AssetKey],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    max_concurrent: int = 4,
    log_level: str = "DEBUG",
    tags: dict[str, str] | None = None,
    in_process: bool = False,
) -> JobExecutionResult:
    """Materialize `selection` in one run: multiprocess executor (steps in parallel), or in this
    process (`in_process`: no per-step interpreter start, for short chains of dependent steps)."""
    run_tags = dict(tags or {})
    if partition_key is not None:
        run_tags["dagster/partition"] = partition_key
    if partition_range is not None:
        run_tags["dagster/asset_partition_range_start"], run_tags["dagster/asset_partition_range_end"] = partition_range
    result = execute_job(
        implicit_asset_job(),
        instance=instance,
        asset_selection=list(selection),
        tags=run_tags,
        run_config={
            "execution": {
                "config": {"in_process": {}} if in_process else {"multiprocess": {"max_concurrent": max_concurrent}}
            },
            "loggers": {"console": {"config": {"log_level": log_level}}},
        },
        raise_on_error=False,
    )
    return result
