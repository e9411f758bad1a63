"""Dagster resources: the DuckDB warehouse (through dagster-duckdb) and the artifact store."""

import os

from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource

from inoc import settings
from inoc.artifacts import ArtifactStore
from inoc_assets.backends import LocalGpuJobs, SkyPilotGpuJobs
from inoc_assets.backends.compute import ComputeBackends
from warehouse import Warehouse


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, used through `warehouse.Warehouse`: writers are serialized by a
    file lock and publish a read-only snapshot, so parallel steps and a user's SQL session coexist."""

    @property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.database, connect=self.get_connection)


class ArtifactStoreResource(ConfigurableResource):
    """Root of the artifact store: a local folder or an fsspec URL (s3://bucket/prefix)."""

    root: str

    @property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.root)


def default_resources() -> dict[str, object]:
    threads = int(os.environ.get("INOC_GPU_JOB_THREADS", "0") or 0)
    return {
        "gpu_jobs": ComputeBackends(local=LocalGpuJobs(threads=threads), skypilot=SkyPilotGpuJobs()),
        "warehouse": WarehouseResource(database=str(settings.warehouse_path())),
        "artifacts": ArtifactStoreResource(root=settings.artifact_root()),
    }
