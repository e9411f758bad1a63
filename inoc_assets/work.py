"""Shared plumbing of the pipeline assets: working folders, JSONL files, launching gpu_jobs.

A computed experiment keeps its working files under ``$INOC_WORK_DIR/<experiment>/`` (instruction
and data files, and one folder per gpu_job: adapters, completions, scores). Files are written
atomically; gpu_jobs reuse finished outputs by spec hash, so a rerun of a finished stage costs
seconds and a killed stage resumes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import AssetExecutionContext, AssetKey, Failure

from gpu_jobs import io as job_io
from inoc import settings
from inoc.config import ExperimentConfig
from inoc_assets.backends import GpuJobResult
from inoc_assets.backends.compute import ComputeBackends


def work_dir(experiment: str, *parts: str) -> Path:
    return settings.work_dir().joinpath(experiment, *parts)


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return job_io.write_jsonl_atomic(path, rows)


def read_jsonl(path: Path, *, needed_by: str, produced_by: AssetKey | str) -> list[dict]:
    if not path.is_file():
        producer = produced_by.to_user_string() if isinstance(produced_by, AssetKey) else produced_by
        raise Failure(description=f"{needed_by}: {path} does not exist; materialize {producer} first")
    return [row for _, row in job_io.read_jsonl(path)]


def completions(result: GpuJobResult) -> list[dict]:
    return [row for _, row in job_io.read_jsonl(result.path("completions.jsonl"))]


def scores(result: GpuJobResult) -> pd.DataFrame:
    return pd.read_parquet(result.path("scores.parquet"))


def model_ref(cfg: ExperimentConfig, *, train: bool = False) -> dict:
    m = cfg.model
    ref: dict[str, Any] = {"id": (m.train_id or m.id) if train else m.id}
    if m.revision:
        ref["revision"] = m.revision
    ref["dtype"] = "auto" if m.dtype == "auto" else m.dtype
    return ref


def generation_backend(cfg: ExperimentConfig) -> str:
    choice = cfg.compute.generation_backend
    if choice == "auto":
        return "vllm" if cfg.compute.backend == "skypilot" else "transformers"
    return choice


def vllm_options(cfg: ExperimentConfig) -> dict:
    m = cfg.model
    return {
        "max_model_len": m.max_model_len,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "enforce_eager": m.enforce_eager,
    }


def run_job(
    context: AssetExecutionContext, gpu_jobs: ComputeBackends, cfg: ExperimentConfig, job: str, spec: dict, out: Path
) -> GpuJobResult:
    """Run a gpu_job for this experiment on its configured backend; outputs land in ``out``."""
    return gpu_jobs.run_job(context, cfg, job, spec, out)


def write_rows_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    job_io.write_json_atomic(path, obj)


def read_json(path: Path, *, needed_by: str, produced_by: AssetKey) -> Any:
    if not path.is_file():
        raise Failure(
            description=f"{needed_by}: {path} does not exist; materialize {produced_by.to_user_string()} first"
        )
    return json.loads(path.read_text())
