"""Fixtures for the judge and rephrasing tests: a local OpenAI-protocol server and fast settings.

No test reaches the internet: every client points at 127.0.0.1, and OPENAI_BASE_URL is set to a
closed local port so that a judge built without ``base_url`` by mistake fails at once instead of
calling api.openai.com. OPENAI_API_KEY is removed so no real key can leak into a test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fakes.openai_server import FakeOpenAIServer


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """``serve(responder, latency_s=0)`` starts a FakeOpenAIServer that is stopped after the test."""
    servers: list[FakeOpenAIServer] = []

    def start(responder=None, *, latency_s: float = 0.0) -> FakeOpenAIServer:
        server = FakeOpenAIServer(responder, latency_s=latency_s).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
