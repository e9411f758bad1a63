"""Compute backends: where the gpu_jobs run. ``local`` runs them on this machine through Dagster Pipes;
``skypilot`` on cloud GPUs (``inoc.cloud`` holds its logic; SkyPilot itself is imported on first launch)."""

from inoc_assets.backends.local import GpuJobResult, LocalGpuJobs
from inoc_assets.backends.skypilot import SkyPilotGpuJobs

__all__ = ["GpuJobResult", "LocalGpuJobs", "SkyPilotGpuJobs"]
