"""The local compute backend: run a gpu_job on this machine in a subprocess, through Dagster Pipes.

Usage inside an asset (the asset must return the result: Pipes requires a typed event stream)::

    @asset
    def scores(context: AssetExecutionContext, gpu_jobs: LocalGpuJobs) -> MaterializeResult:
        result = gpu_jobs.run(context, "score", {"output_dir": ..., "model": {"id": ...}, "pairs": ...})
        return result.materialize_result()  # value=... hands a value to the IO manager as well

What it does:

* validates the spec in-process first (``gpu_jobs.spec.parse_spec``; a bad spec fails the step at
  once, naming the field), makes its paths absolute and writes it to ``<output_dir>/spec.json`` —
  data travels in files, never through a shell string;
* launches ``python -m gpu_jobs.<job> --spec <file>`` with the Pipes bootstrap variables — with the
  Python of the engine environment the spec asks for (``backend: vllm`` → ``.venv-vllm``, ``backend:
  unsloth`` → ``.venv-unsloth``, built by ``make engines`` from ``envs/``), else with ``python`` (this
  process's by default), so no engine is ever imported into the Dagster process or its venv; the job's
  log and progress messages arrive as Dagster log events while it runs; its raw output is echoed to
  the step's compute log and its last lines are kept;
* turns a non-zero exit into a failed step whose message carries those last lines, and checks the
  outputs (marker, spec hash, sizes, sha256, tables readable with the recorded row counts): a job
  that exits 0 with missing or malformed outputs fails the step too;
* returns a ``GpuJobResult`` whose ``materialize_result()`` carries the metadata the job reported
  (row counts, throughput, losses …) plus the output folder and spec hash (the data version).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    DagsterExecutionInterruptedError,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    PipesTempFileContextInjector,
    PipesTempFileMessageReader,
    PreviewWarning,
    open_pipes_session,
)
from pydantic import BaseModel, Field

from gpu_jobs import JOBS
from gpu_jobs import io as job_io
from gpu_jobs.spec import JobSpec, SpecError, parse_spec, spec_hash
from inoc.process_tree import echo_output, start_job

# Dagster's own Pipes session uses a preview API internally; the warning is noise for every job.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*expected_writer_count")

#: The folder holding the gpu_jobs package, put on the job's PYTHONPATH.
REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = "spec.json"
#: Spec backends that run in their own engine environment (``<engine_envs>/.venv-<engine>``).
ENGINE_BACKENDS = {"vllm": "vllm", "unsloth": "unsloth"}
_NO_VALUE = object()


@dataclass
class GpuJobResult:
    job: str
    output_dir: Path
    spec_hash: str
    reused: bool
    #: ``{relative path: {bytes, sha256}}`` of every output file.
    outputs: dict[str, dict[str, Any]]
    #: The job's own metadata, as written in its completion marker.
    marker_metadata: dict[str, Any]
    #: Metadata the job reported through Pipes (already Dagster metadata values).
    reported_metadata: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)

    def path(self, relpath: str) -> Path:
        return self.output_dir / relpath

    def metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = dict(self.reported_metadata)
        md.update(
            {
                "gpu_job": self.job,
                "output_dir": MetadataValue.path(str(self.output_dir)),
                "spec_hash": self.spec_hash,
                "reused": self.reused,
            }
        )
        return md

    def materialize_result(
        self, *, value: Any = _NO_VALUE, metadata: Mapping[str, Any] | None = None, asset_key: Any = None
    ) -> MaterializeResult:
        kwargs: dict[str, Any] = {}
        if value is not _NO_VALUE:
            kwargs["value"] = value
        return MaterializeResult(
            asset_key=asset_key,
            metadata={**self.metadata(), **(metadata or {})},
            data_version=DataVersion(self.spec_hash[:16]),
            **kwargs,
        )


class LocalGpuJobs(ConfigurableResource):
    """Runs gpu_jobs (train / generate / score) as local subprocesses through Dagster Pipes."""

    python: str = Field("", description="interpreter that runs transformers/PEFT jobs; empty: this process's")
    engine_envs: str = Field(
        "",
        description="folder holding the engine venvs .venv-vllm and .venv-unsloth; "
        "empty: $INOC_ENGINE_ENVS, else the checkout",
    )
    threads: int = Field(0, ge=0, description="GPU_JOBS_THREADS for the job (torch CPU threads); 0: unset")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the job")
    tail_lines: int = Field(40, gt=0, description="last output lines kept for a failure message")

    def run(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        job: str,
        spec: Mapping[str, Any] | BaseModel,
        *,
        base_dir: str | Path | None = None,
    ) -> GpuJobResult:
        """Run ``job`` with ``spec`` (a dict or a ``gpu_jobs.spec`` model). Relative paths in the spec
        resolve against ``base_dir`` (default: the current directory)."""
        if job not in JOBS:
            raise Failure(f"unknown gpu job {job!r}; known: {', '.join(JOBS)}")
        parsed = self._parse(job, spec, base_dir)
        out = parsed.out
        out.mkdir(parents=True, exist_ok=True)
        spec_path = out / SPEC_FILE
        job_io.write_json_atomic(spec_path, {"job": job, **parsed.model_dump(mode="json", exclude={"job"})})
        expected_hash = spec_hash(parsed)

        started = time.time()
        cmd = [self.python_for(parsed), "-m", f"gpu_jobs.{job}", "--spec", str(spec_path)]
        tail: deque[str] = deque(maxlen=self.tail_lines)
        with open_pipes_session(
            context=context,
            context_injector=PipesTempFileContextInjector(),
            message_reader=PipesTempFileMessageReader(),
            extras={"gpu_job": job, "spec_path": str(spec_path)},
        ) as session:
            env = {**os.environ, **self.env, **session.get_bootstrap_env_vars()}
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
            if self.threads:
                env["GPU_JOBS_THREADS"] = str(self.threads)
            context.log.info(f"[gpu_jobs] {' '.join(cmd)}")
            rc = self._run_process(context, cmd, env, tail)
        reported = [r for r in session.get_results() if isinstance(r, MaterializeResult)]
        custom = [m for m in session.get_custom_messages() if isinstance(m, dict) and "gpu_jobs_metadata" in m]
        tail_text = "\n".join(tail)
        if rc != 0:
            raise Failure(
                description=f"gpu_jobs.{job} failed with exit code {rc}. Last output lines:\n{tail_text}",
                metadata={
                    "exit_code": rc,
                    "log_tail": MetadataValue.md(f"```\n{tail_text}\n```"),
                    "spec": MetadataValue.path(str(spec_path)),
                },
            )
        problems = job_io.validate_outputs(out, job, expected_hash)
        if problems:
            raise Failure(
                description=(
                    f"gpu_jobs.{job} exited 0 but its outputs in {out} are missing or malformed:\n  "
                    + "\n  ".join(problems[:20])
                    + f"\nLast output lines:\n{tail_text}"
                ),
                metadata={"problems": MetadataValue.json(problems), "spec": MetadataValue.path(str(spec_path))},
            )
        marker = job_io.read_marker(out)
        assert marker is not None  # validate_outputs checked it
        reported_md: dict[str, Any] = {}
        for r in reported:
            reported_md.update(r.metadata or {})
        for m in custom:
            reported_md.update(m["gpu_jobs_metadata"])
        reused = marker.finished_at < started  # the marker predates this launch: the job reused it
        return GpuJobResult(
            job=job,
            output_dir=out,
            spec_hash=marker.spec_hash,
            reused=reused,
            outputs=marker.outputs,
            marker_metadata=marker.metadata,
            reported_metadata=reported_md,
            log_tail=list(tail),
        )

    def python_for(self, spec: JobSpec) -> str:
        """The interpreter for ``spec``: its engine's venv when the backend is an engine, else ``python``."""
        engine = ENGINE_BACKENDS.get(getattr(spec, "backend", None) or "")
        if engine is None:
            return self.python or sys.executable
        root = Path(self.engine_envs or os.environ.get("INOC_ENGINE_ENVS") or REPO_ROOT)
        python = root / f".venv-{engine}" / "bin" / "python"
        if not python.is_file():
            raise Failure(
                description=(
                    f"backend: {spec.backend!r} runs in the {engine} environment, but {python} does not exist. "
                    f"Build it with `make engines` (or `envs/build.sh {engine} {python.parent.parent}`), "
                    f"or choose backend: {'transformers' if engine == 'vllm' else 'peft'}."
                )
            )
        return str(python)

    # -- helpers
    @staticmethod
    def _parse(job: str, spec: Mapping[str, Any] | BaseModel, base_dir: str | Path | None) -> JobSpec:
        data = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)
        try:
            return parse_spec(job, data, base_dir=Path(base_dir or os.getcwd()).resolve())
        except SpecError as err:
            raise Failure(
                description=f"gpu_jobs.{job}: {err}", metadata={"problems": MetadataValue.json(err.problems)}
            ) from None

    @staticmethod
    def _run_process(context: Any, cmd: list[str], env: dict[str, str], tail: deque[str]) -> int:
        proc = start_job(cmd, env, cwd=REPO_ROOT)
        try:
            echo_output(proc, sys.stderr, tail)  # into the step's compute log
            return proc.wait()
        except (DagsterExecutionInterruptedError, KeyboardInterrupt):
            context.log.warning("[gpu_jobs] interrupted: sending SIGINT to the job")
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
