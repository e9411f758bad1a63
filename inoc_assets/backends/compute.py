"""The `gpu_jobs` resource: runs a gpu_job on the backend an experiment's `compute.backend` names."""

from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, ConfigurableResource

from inoc.config import ExperimentConfig
from inoc_assets.backends.local import GpuJobResult, LocalGpuJobs
from inoc_assets.backends.skypilot import SkyPilotGpuJobs


class ComputeBackends(ConfigurableResource):
    """`local` (this machine, Dagster Pipes) and `skypilot` (cloud GPUs); each experiment picks one."""

    local: LocalGpuJobs
    skypilot: SkyPilotGpuJobs

    def run_job(
        self, context: AssetExecutionContext, cfg: ExperimentConfig, job: str, spec: dict[str, Any], out: Path
    ) -> GpuJobResult:
        """Run ``job`` with ``spec``; its outputs land in ``out`` (a local folder either way)."""
        full = {**spec, "output_dir": str(out), "device": "auto"}
        if cfg.compute.backend == "skypilot":
            return self.skypilot.run(context, job, full, base_dir=out.parent, compute=cfg.compute, experiment=cfg.name)
        out.mkdir(parents=True, exist_ok=True)
        return self.local.run(context, job, full, base_dir=out.parent)
