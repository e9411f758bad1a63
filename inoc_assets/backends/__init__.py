"""Compute backends: where the gpu_jobs run. ``local`` runs them on this machine through Dagster Pipes."""

from inoc_assets.backends.local import GpuJobResult, LocalGpuJobs

__all__ = ["GpuJobResult", "LocalGpuJobs"]
