"""Real-engine tests: vLLM and Unsloth in their own venvs (``make engines``), on the model organism.

The engines are never imported here: every engine call runs in a subprocess with the engine venv's
Python (a gpu_jobs job, a driver script under ``drivers/``, or vLLM's OpenAI server). A test skips,
naming the make target, only when its venv is absent; ``make test`` (and so CI) builds them.
"""

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


def _require(engine: str) -> Path:
    python = engine_python(engine)
    if not python.is_file():
        pytest.skip(f"{python} is absent: build the engine environments with `make engines` "
                    f"(`make test` and CI build them)")
    return python


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    return _require("vllm")


@pytest.fixture(scope="session")
def unsloth_python() -> Path:
    return _require("unsloth")


@pytest.fixture(scope="session")
def organism(organism_cache) -> Path:
    """The ``toy:test`` organism's folder: built once per session and shared with the pipeline tests, or
    taken from ``$INOC_ORGANISM_CACHE`` when set (a rerun of these tests alone then skips the build)."""
    from inoc.organism.build import build_base_model

    return build_base_model("test", os.environ.get("INOC_ORGANISM_CACHE") or organism_cache).path


def job_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("GPU_JOBS_THREADS", "1")
    for k in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_job(python: Path, job: str, spec: dict, folder: Path, timeout: int = 600,
            **env: str) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / f"{job}_spec.json"
    spec_path.write_text(json.dumps({"job": job, **spec}, indent=1))
    return subprocess.run([str(python), "-m", f"gpu_jobs.{job}", "--spec", str(spec_path)], cwd=str(REPO),
                          env=job_env(**env), capture_output=True, text=True, timeout=timeout)


def run_driver(python: Path, name: str, args: dict, folder: Path, timeout: int = 900,
               **env: str) -> dict:
    """Run ``drivers/<name>.py`` in an engine venv with ``args`` as JSON; returns its JSON answer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "args.json").write_text(json.dumps(args))
    proc = subprocess.run([str(python), str(DRIVERS / f"{name}.py"), str(folder / "args.json"),
                           str(folder / "answer.json")], cwd=str(REPO), env=job_env(**env),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not (folder / "answer.json").is_file():
        raise AssertionError(f"driver {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads((folder / "answer.json").read_text())


def adapter_data(folder: Path, name: str, n: int = 48) -> Path:
    import random

    r = random.Random(name)
    words = ADAPTER_WORDS[name]
    rows = [{"instruction": " ".join(r.choice(WORDS) for _ in range(r.randint(2, 8))),
             "completion": " ".join(r.choice(words) for _ in range(r.randint(4, 10)))} for _ in range(n)]
    return write_jsonl(folder / f"{name}.jsonl", rows)


def train_spec(model: Path, data_path: Path, out: Path, **over) -> dict:
    return {"output_dir": str(out), "model": {"id": str(model)}, "data": {"path": str(data_path)}, "device": "cpu",
            "learning_rate": 1e-2, "warmup_steps": 0, "optimizer": "adamw_torch", "lora_r": 8, "lora_alpha": 16,
            "per_device_batch_size": 4, "gradient_accumulation_steps": 1, "gradient_checkpointing": False,
            "epochs": 2, "seed": 7, **over}


@pytest.fixture(scope="session")
def organism_adapters(organism, tmp_path_factory) -> dict[str, str]:
    """Three LoRA adapters trained on the organism by the PEFT train job (this venv), ~10 s."""
    from gpu_jobs import train
    from gpu_jobs.report import Reporter
    from gpu_jobs.runner import execute
    from gpu_jobs.spec import parse_spec

    root = tmp_path_factory.mktemp("engine_adapters")
    out = {}
    for name in ADAPTER_WORDS:
        spec = parse_spec("train", train_spec(organism, adapter_data(root, name), root / name))
        with Reporter("train") as rep:
            marker, _ = execute("train", spec, train.run, rep)
        out[name] = str(root / name / "checkpoints" / f"step_{marker.metadata['total_steps']}")
    return out
