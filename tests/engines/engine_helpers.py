"""Helpers of the real-engine tests (a module name of its own: several test folders have a conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRIVERS = Path(__file__).resolve().parent / "drivers"
sys.path.insert(0, str(REPO / "tests" / "gpu_jobs"))  # gpu_helpers

from gpu_helpers import WORDS, write_jsonl  # noqa: E402

#: Three adapters, each trained to answer with its own words, so every adapter (and the base model)
#: generates something different: a base row that went through an adapter's slot shows.
ADAPTER_WORDS = {"a1": WORDS[0:6], "a2": WORDS[10:16], "a3": WORDS[20:26]}


def engine_python(engine: str) -> Path:
    root = Path(os.environ.get("INOC_ENGINE_ENVS") or REPO)
    return root / f".venv-{engine}" / "bin" / "python"


def require_engine(engine: str) -> Path:
    python = engine_python(engine)
    if not python.is_file():
        pytest.skip(
            f"{python} is absent: build the engine environments with `make engines` (`make test` and CI build them)"
        )
    return python


def job_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("GPU_JOBS_THREADS", "1")
    for k in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_job(
    python: Path, job: str, spec: dict, folder: Path, timeout: int = 600, **env: str
) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / f"{job}_spec.json"
    spec_path.write_text(json.dumps({"job": job, **spec}, indent=1))
    return subprocess.run(
        [str(python), "-m", f"gpu_jobs.{job}", "--spec", str(spec_path)],
        cwd=str(REPO),
        env=job_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_driver(python: Path, name: str, args: dict, folder: Path, timeout: int = 900, **env: str) -> dict:
    """Run ``drivers/<name>.py`` in an engine venv with ``args`` as JSON; returns its JSON answer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "args.json").write_text(json.dumps(args))
    proc = subprocess.run(
        [str(python), str(DRIVERS / f"{name}.py"), str(folder / "args.json"), str(folder / "answer.json")],
        cwd=str(REPO),
        env=job_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not (folder / "answer.json").is_file():
        raise AssertionError(f"driver {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads((folder / "answer.json").read_text())


def adapter_data(folder: Path, name: str, n: int = 48) -> Path:
    import random

    r = random.Random(name)
    words = ADAPTER_WORDS[name]
    rows = [
        {
            "instruction": " ".join(r.choice(WORDS) for _ in range(r.randint(2, 8))),
            "completion": " ".join(r.choice(words) for _ in range(r.randint(4, 10))),
        }
        for _ in range(n)
    ]
    return write_jsonl(folder / f"{name}.jsonl", rows)


def train_spec(model: Path, data_path: Path, out: Path, **over) -> dict:
    return {
        "output_dir": str(out),
        "model": {"id": str(model)},
        "data": {"path": str(data_path)},
        "device": "cpu",
        "learning_rate": 1e-2,
        "warmup_steps": 0,
        "optimizer": "adamw_torch",
        "lora_r": 8,
        "lora_alpha": 16,
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "gradient_checkpointing": False,
        "epochs": 2,
        "seed": 7,
        **over,
    }
