"""Shared fixtures: isolated INOC_HOME / DAGSTER_HOME per test, and the reference-data location."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    env = os.environ.get("INOC_SHARED_DIR")
    path = Path(env) if env else REPO.parent / "shared"
    return path if (path / "reference").is_dir() else None


@pytest.fixture(scope="session")
def organism_cache(tmp_path_factory) -> Path:
    """One model-organism cache for the whole session: each profile is built at most once."""
    return tmp_path_factory.mktemp("organism-cache")


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if path is None:
        pytest.skip("reference data not found: set INOC_SHARED_DIR to the folder holding reference/ and docs/")
    return path


@pytest.fixture
def inoc_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "inoc_home"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("INOC_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("INOC_ARTIFACT_ROOT", raising=False)
    return home


@pytest.fixture
def experiments_copy(tmp_path, monkeypatch) -> Path:
    """A writable copy of the shipped experiments folder, used as INOC_EXPERIMENTS_DIR."""
    target = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", target)
    monkeypatch.setenv("INOC_EXPERIMENTS_DIR", str(target))
    return target
