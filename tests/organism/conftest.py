"""A session-wide build of the organism's ``test`` profile (≈1 minute on a 2-core CPU)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def organism_root(tmp_path_factory):
    """A cache root of their own: these tests check a build from scratch, which the session cache may
    already hold (the engine tests build the same profile first)."""
    return tmp_path_factory.mktemp("organism-build")


@pytest.fixture(scope="session")
def built(organism_root):
    """The ``test`` profile built from scratch into a fresh cache root (shared by the session)."""
    from inoc.organism.build import build_base_model

    events = []
    result = build_base_model("test", organism_root, progress=events.append)
    result.events = events
    return result
