"""Fixtures of the gpu_jobs tests: tiny random-init Qwen2 models with their tokenizers (see gpu_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpu_helpers import build_model, build_tokenizer


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A ChatML tiny Qwen2 folder (tokenizer included)."""
    return build_model(build_tokenizer("chatml"), tmp_path_factory.mktemp("tiny") / "chatml")


@pytest.fixture(scope="session")
def llama_model(tmp_path_factory) -> Path:
    """A tiny Qwen2 body with a Llama-3-style tokenizer/template (BOS in the template)."""
    return build_model(build_tokenizer("llama3"), tmp_path_factory.mktemp("tiny") / "llama3", seed=1)


@pytest.fixture(autouse=True)
def _threads(monkeypatch):
    """One torch thread here and in the jobs: the CI machine has two cores, shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("GPU_JOBS_THREADS", "1")
    yield
    torch.set_num_threads(before)
