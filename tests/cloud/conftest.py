"""The cloud tests reach no cloud: an SDK call that slipped past the fake fails at once instead of
starting a local SkyPilot API server."""

import pytest


@pytest.fixture(autouse=True)
def _no_skypilot_server(monkeypatch):
    monkeypatch.setenv("SKYPILOT_DISABLE_LOCAL_API_SERVER", "1")
