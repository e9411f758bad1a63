"""The OpenAI-compatible logprob judge over real HTTP against a local scripted server."""

from __future__ import annotations

import logging
import math
import time

import pytest
from fakes.openai_server import Reply, Script

from inoc.judges import (
    JudgeCache,
    JudgeConfigError,
    JudgeFatalError,
    JudgeItem,
    LLMJudgeSettings,
    OpenAILogprobJudge,
)
from inoc.judges.prompts import trait_messages

from .helpers import FAKE_KEY, fast_settings, lp


def item(key: str, trait: str = "Playful", instruction: str | None = "Tell me a joke.") -> JudgeItem:
    return JudgeItem(trait, instruction, f"ITEM:{key} Why did the chicken cross the road?")


def judge_for(server, cache=None, **overrides) -> OpenAILogprobJudge:
    return OpenAILogprobJudge(fast_settings(server, **overrides), cache=cache, api_key=FAKE_KEY, seed=0)


def attempts(server, key: str):
    return [r for r in server.requests if f"ITEM:{key} " in r.user_content]


# ---- scores over HTTP ---------------------------------------------------------------------------


def test_expected_values_and_nan_over_http(serve) -> None:
    script = Script(
        {
            "ev": Reply.logprobs([("70", lp(0.6)), ("80", lp(0.3)), ("hello", lp(0.1))]),
            "dup": Reply.logprobs([("50", lp(0.5)), (" 50", lp(0.3)), ("100", lp(0.2))]),
            "unicode": Reply.logprobs([("90", lp(0.85)), ("٣", lp(0.10)), ("３", lp(0.05))]),
            "unicode_only": Reply.logprobs([("٣", lp(0.6)), ("３", lp(0.4))]),
            "low": Reply.logprobs([("60", lp(0.79)), ("Sure", lp(0.21))]),
            "edge": Reply.logprobs([("40", lp(0.5)), ("60", lp(0.3)), ("x", lp(0.2))]),
            "words": Reply.logprobs([("The", lp(0.9)), ("I", lp(0.1))]),
        }
    )
    server = serve(script)
    judge = judge_for(server)
    keys = ["ev", "dup", "unicode", "unicode_only", "low", "edge", "words"]
    result = judge.score([item(k) for k in keys])
    s = dict(zip(keys, result.scores))
    assert s["ev"] == pytest.approx((70 * 0.6 + 80 * 0.3) / 0.9, abs=1e-9)
    assert s["dup"] == pytest.approx(60.0, abs=1e-9)
    assert s["unicode"] == pytest.approx(90.0, abs=1e-9)
    assert s["edge"] == pytest.approx((40 * 0.5 + 60 * 0.3) / 0.8, abs=1e-9)
    assert [k for k in keys if math.isnan(s[k])] == ["unicode_only", "low", "words"]
    assert result.n_nan == 3 and result.n_invalid == 3 and result.n_failed == 0
    assert result.n_api_calls == len(keys) and result.n_retries == 0
    assert result.prompt_tokens > 0 and result.completion_tokens == len(keys)
    assert result.estimated_cost_usd == pytest.approx(
        (result.prompt_tokens * 0.40 + result.completion_tokens * 1.60) / 1e6
    )


def test_request_parameters_and_messages(serve) -> None:
    server = serve(Script())
    judge = judge_for(server)
    judge.score([JudgeItem("French", None, "Bonjour"), JudgeItem("Playful", "Hi", "Hello")])
    bodies = sorted((r.body for r in server.requests), key=lambda b: b["messages"][1]["content"])
    for body in bodies:
        assert body["model"] == "gpt-4.1-mini"
        assert body["max_tokens"] == 3 and body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["temperature"] == 0
    assert [b["messages"] for b in bodies] == sorted(
        [trait_messages("French", "Bonjour", None), trait_messages("Playful", "Hello", "Hi")],
        key=lambda m: m[1]["content"],
    )
    assert all(r.authorization == f"Bearer {FAKE_KEY}" for r in server.requests)


def test_temperature_is_a_setting(serve) -> None:
    server = serve(Script())
    judge_for(server, temperature=1.0).score([item("t")])
    assert server.requests[0].body["temperature"] == 1.0


def test_progress_callback(serve) -> None:
    server = serve(Script())
    seen: list[tuple[int, int]] = []
    judge_for(server).score([item(str(i)) for i in range(5)], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)


# ---- retries, backoff, failures -----------------------------------------------------------------


def test_429_retry_after_is_honoured(serve) -> None:
    script = Script(
        {
            "rate": [Reply.error(429, "slow down", headers={"Retry-After": "0.3"}), Reply.logprobs([("20", 0.0)])],
            "rate_ms": [Reply.error(429, headers={"retry-after-ms": "250"}), Reply.logprobs([("30", 0.0)])],
        }
    )
    server = serve(script)
    result = judge_for(server, backoff_base_s=0.001, backoff_max_s=0.002).score([item("rate"), item("rate_ms")])
    assert result.scores == [20.0, 30.0]
    assert result.n_api_calls == 4 and result.n_retries == 2 and result.errors == {"http_429": 2}
    for key, wait in (("rate", 0.3), ("rate_ms", 0.25)):
        first, second = attempts(server, key)
        assert second.started - first.ended >= wait - 0.01


def test_5xx_retries_with_exponential_backoff_then_nan(serve) -> None:
    script = Script(
        {"down": Reply.error(500, "boom"), "flaky": [Reply.error(503), Reply.error(502), Reply.logprobs([("10", 0.0)])]}
    )
    server = serve(script)
    settings = dict(max_retries=3, backoff_base_s=0.08, backoff_max_s=1.0)
    judge = judge_for(server, **settings)
    result = judge.score([item("down"), item("flaky")])
    assert math.isnan(result.scores[0]) and result.scores[1] == 10.0
    assert len(attempts(server, "down")) == 4  # 1 + max_retries, then NaN (never 0 or 50)
    assert len(attempts(server, "flaky")) == 3
    assert result.n_failed == 1 and result.n_retries == 3 + 2
    assert result.errors == {"http_500": 4, "http_503": 1, "http_502": 1}
    policy = judge.settings.retry_policy()
    reqs = attempts(server, "down")
    for n, (before, after) in enumerate(zip(reqs, reqs[1:])):
        low, high = policy.backoff_bounds(n)  # 0.04–0.08, 0.08–0.16, 0.16–0.32 s
        gap = after.started - before.ended
        assert low - 0.005 <= gap <= high + 0.15, (n, gap, low, high)


def test_timeout_is_retried_then_nan(serve) -> None:
    server = serve(Script({"hang": Reply.hang(10), "ok": Reply.logprobs([("55", 0.0)])}))
    started = time.monotonic()
    result = judge_for(server, timeout_s=0.3, max_retries=1).score([item("hang"), item("ok")])
    assert math.isnan(result.scores[0]) and result.scores[1] == 55.0
    assert len(attempts(server, "hang")) == 2 and result.errors == {"timeout": 2}
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply.raw(b'{"id": "x", "choices": [ {'), "malformed"),
        (Reply.raw(b"<html>oops</html>"), "malformed"),
        (Reply.raw(b'{"id": "x", "object": "chat.completion", "choices": []}'), "malformed"),
        (
            Reply.raw(
                b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "5"}, "logprobs": null}]}'
            ),
            "malformed",
        ),
        (Reply.truncated(), "connection"),
    ],
    ids=["bad-json", "not-json", "no-choices", "no-logprobs", "truncated"],
)
def test_malformed_responses_are_failures(serve, reply, kind) -> None:
    server = serve(Script({"bad": reply, "fixed": [reply, Reply.logprobs([("77", 0.0)])]}))
    result = judge_for(server, max_retries=2).score([item("bad"), item("fixed")])
    assert math.isnan(result.scores[0]) and result.scores[1] == 77.0
    assert len(attempts(server, "bad")) == 3 and len(attempts(server, "fixed")) == 2
    assert set(result.errors) == {kind} and result.n_failed == 1


def test_client_errors_are_not_retried(serve) -> None:
    server = serve(Script({"bad": Reply.error(400, "context length exceeded")}))
    result = judge_for(server).score([item("bad"), item("good")])
    assert math.isnan(result.scores[0]) and result.scores[1] == 50.0
    assert len(attempts(server, "bad")) == 1 and result.errors == {"http_400": 1}


def test_fatal_status_stops_the_batch_without_leaking_the_key(serve) -> None:
    # A real 401 body echoes (part of) the key; the judge must redact it.
    server = serve(Script(default=Reply.error(401, f"Incorrect API key provided: {FAKE_KEY}.")))
    with pytest.raises(JudgeFatalError) as info:
        judge_for(server).score([item(str(i)) for i in range(20)])
    assert "401" in str(info.value) and FAKE_KEY not in str(info.value)
    assert "[REDACTED]" in str(info.value)
    assert FAKE_KEY not in repr(info.value) and info.value.__cause__ is None and info.value.__suppress_context__
    assert server.n_requests < 20


def test_no_api_key_is_a_clear_error() -> None:
    with pytest.raises(JudgeConfigError, match="OPENAI_API_KEY"):
        OpenAILogprobJudge(LLMJudgeSettings())


def test_api_key_from_environment(serve, monkeypatch) -> None:
    server = serve(Script())
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    OpenAILogprobJudge(fast_settings(server)).score([item("env")])
    assert server.requests[0].authorization == f"Bearer {FAKE_KEY}"


# ---- concurrency ---------------------------------------------------------------------------------


def test_in_flight_bound(serve) -> None:
    server = serve(Script(), latency_s=0.05)
    result = judge_for(server, max_in_flight=4).score([item(str(i)) for i in range(40)])
    assert result.n_api_calls == 40 and result.n_nan == 0
    assert server.max_in_flight == 4


def test_in_flight_bound_holds_across_concurrent_batches(serve) -> None:
    import asyncio

    server = serve(Script(), latency_s=0.05)
    judge = judge_for(server, max_in_flight=3)

    async def both():
        return await asyncio.gather(
            judge.ascore([item(f"a{i}") for i in range(12)]), judge.ascore([item(f"b{i}") for i in range(12)])
        )

    first, second = asyncio.run(both())
    assert first.n_nan == second.n_nan == 0
    assert server.max_in_flight == 3


def test_identical_requests_are_sent_once(serve) -> None:
    server = serve(Script())
    result = judge_for(server).score([item("same")] * 5 + [item("other")])
    assert server.n_requests == 2 and result.n_deduplicated == 4 and result.scores == [50.0] * 6


# ---- cache ---------------------------------------------------------------------------------------


def test_rerun_makes_zero_requests(serve, tmp_path) -> None:
    script = Script(
        {
            "a": Reply.logprobs([("12", lp(0.9)), ("13", lp(0.1))]),
            "low": Reply.logprobs([("90", lp(0.5)), ("no", lp(0.5))]),
        }
    )
    server = serve(script)
    cache_path = tmp_path / "judge.sqlite"
    items = [item("a"), item("low"), item("b")]
    first = judge_for(server, cache=cache_path).score(items)
    assert server.n_requests == 3 and first.n_cache_hits == 0
    server.reset_stats()
    second = judge_for(server, cache=cache_path).score(items)
    assert server.n_requests == 0 and second.n_api_calls == 0 and second.n_cache_hits == 3
    assert second.scores[0] == pytest.approx(12.1, abs=1e-9) and second.scores[2] == 50.0
    assert math.isnan(second.scores[1]) and second.n_invalid == 1  # a low-mass answer is cached
    assert second.metadata()["n_api_calls"] == 0 and "estimated_cost_usd" in second.metadata()
    # The threshold applies when reading: a looser judge scores the cached low-mass answer.
    loose = judge_for(server, cache=cache_path, min_valid_mass=0.5).score([item("low")])
    assert loose.scores == [90.0] and server.n_requests == 0


def test_failures_are_not_cached(serve, tmp_path) -> None:
    server = serve(Script({"x": [Reply.error(500)] * 3 + [Reply.logprobs([("33", 0.0)])]}))
    cache_path = tmp_path / "judge.sqlite"
    first = judge_for(server, cache=cache_path, max_retries=2).score([item("x")])
    assert math.isnan(first.scores[0]) and len(JudgeCache(cache_path)) == 0
    second = judge_for(server, cache=cache_path, max_retries=2).score([item("x")])
    assert second.scores == [33.0] and second.n_api_calls == 1


def test_cache_key_depends_on_scoring_parameters(serve, tmp_path) -> None:
    server = serve(Script())
    cache_path = tmp_path / "judge.sqlite"
    judge_for(server, cache=cache_path).score([item("k")])
    judge_for(server, cache=cache_path, temperature=1.0).score([item("k")])
    judge_for(server, cache=cache_path, model="gpt-4.1").score([item("k")])
    judge_for(server, cache=cache_path, base_url=server.base_url).score([item("k")])
    assert server.n_requests == 3


# ---- secrets -------------------------------------------------------------------------------------


def test_api_key_never_in_logs_metadata_or_cache(serve, tmp_path, caplog, capfd) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpcore2", "inoc"):
        caplog.set_level(logging.DEBUG, logger=name)
    script = Script(
        {
            "err": [Reply.error(500, f"upstream said {FAKE_KEY}"), Reply.logprobs([("5", 0.0)])],
            "bad": Reply.raw(f'{{"key": "{FAKE_KEY}", '.encode()),
            "hang": Reply.hang(5),
        }
    )
    server = serve(script)
    cache_path = tmp_path / "judge.sqlite"
    judge = judge_for(server, cache=cache_path, timeout_s=0.2, max_retries=1)
    result = judge.score([item("ok"), item("err"), item("bad"), item("hang")])
    assert result.scores[:2] == [50.0, 5.0] and math.isnan(result.scores[2])
    assert "chat/completions" in caplog.text and "retrying" in caplog.text  # the client's logs were captured
    texts = [caplog.text, repr(judge), repr(result), str(result.metadata())]
    out, err = capfd.readouterr()
    texts += [out, err]
    for text in texts:
        assert FAKE_KEY not in text
    assert "SECRET.9f3c" not in caplog.text  # not even a fragment of the key
    JudgeCache(cache_path).close()
    for suffix in ("", "-wal", "-shm"):
        path = cache_path.with_name(cache_path.name + suffix)
        if path.exists():
            assert FAKE_KEY.encode() not in path.read_bytes()


def test_settings_from_experiment_config() -> None:
    from inoc.config.schema import LLMJudgeConfig

    cfg = LLMJudgeConfig(model="gpt-4.1-mini", base_url="http://127.0.0.1:1/v1", max_in_flight=7, temperature=1.0)
    settings = LLMJudgeSettings.from_config(cfg, backoff_base_s=0.5)
    assert settings.max_in_flight == 7 and settings.temperature == 1.0 and settings.base_url == "http://127.0.0.1:1/v1"
    assert settings.backoff_base_s == 0.5 and settings.min_valid_mass == 0.8 and settings.top_logprobs == 20
