"""Real-engine tests: vLLM and Unsloth in their own venvs (``make engines``), on the model organism.

The engines are never imported here: every engine call runs in a subprocess with the engine venv's
Python (a gpu_jobs job, a driver script under ``drivers/``, or vLLM's OpenAI server). A test skips,
naming the make target, only when its venv is absent; ``make test`` (and so CI) builds them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_helpers import ADAPTER_WORDS, adapter_data, require_engine, train_spec  # noqa: E402


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    return require_engine("vllm")


@pytest.fixture(scope="session")
def unsloth_python() -> Path:
    return require_engine("unsloth")


@pytest.fixture(scope="session")
def organism(organism_cache) -> Path:
    """The ``toy:test`` organism's folder: built once per session and shared with the pipeline tests, or
    taken from ``$INOC_ORGANISM_CACHE`` when set (a rerun of these tests alone then skips the build)."""
    from inoc.organism.build import build_base_model

    return build_base_model("test", os.environ.get("INOC_ORGANISM_CACHE") or organism_cache).path


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
