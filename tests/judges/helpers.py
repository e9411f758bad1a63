"""Shared constants and helpers of the judge tests."""

from __future__ import annotations

import math

from fakes.openai_server import FakeOpenAIServer

from inoc.judges import LLMJudgeSettings

#: The fake API key every test uses; no log, exception, metadata or file may contain it.
FAKE_KEY = "fake-test-key.SECRET.9f3c2a7e41b8d605"


def fast_settings(server: FakeOpenAIServer, **overrides) -> LLMJudgeSettings:
    """Judge settings against the local server with small timeouts and backoff."""
    values = dict(
        base_url=server.base_url,
        max_retries=2,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5.0,
        max_in_flight=8,
    )
    values.update(overrides)
    return LLMJudgeSettings(**values)


def lp(p: float) -> float:
    """log(p), for writing distributions as probabilities."""
    return math.log(p)
