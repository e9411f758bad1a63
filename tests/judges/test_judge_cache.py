"""The SQLite judge cache: keys, storage, concurrent processes, and kill -9 in the middle of a batch."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from fakes.openai_server import Reply, Script

from inoc.judges import JudgeCache, JudgeItem, LLMJudgeSettings, OpenAILogprobJudge, request_key
from inoc.judges.cache import CachedAnswer, CacheError

from .helpers import FAKE_KEY, lp

REPO = Path(__file__).resolve().parents[2]


def test_request_key_recipe() -> None:
    messages = [{"role": "user", "content": "héllo"}]
    params = {"temperature": 0.0, "max_tokens": 3, "logprobs": True, "top_logprobs": 20}
    payload = json.dumps({"model": "m", "messages": messages, "params": params}, sort_keys=True, separators=(",", ":"))
    assert request_key("m", messages, params) == hashlib.sha256(payload.encode()).hexdigest()
    assert request_key("m", messages, {**params, "temperature": 1.0}) != request_key("m", messages, params)
    assert request_key("m2", messages, params) != request_key("m", messages, params)


def test_store_and_read(tmp_path) -> None:
    with JudgeCache(tmp_path / "c.sqlite") as cache:
        answer = CachedAnswer("m", [("70", lp(0.75)), ("x", lp(0.25))])
        cache.put("k1", answer)
        cache.put("k1", CachedAnswer("m", [("1", 0.0)]))  # first writer wins
        got = cache.get("k1")
        assert got is not None and got.top_logprobs == answer.top_logprobs
        assert math.isnan(got.outcome().score) and got.outcome(0.7).score == pytest.approx(70.0, abs=1e-9)
        assert cache.get("nope") is None and len(cache) == 1
        cache.put_many((f"key{i}", CachedAnswer("m", [(str(i % 101), 0.0)])) for i in range(1200))
        found = cache.get_many([f"key{i}" for i in range(1200)] + ["missing"])
        assert len(found) == 1200 and found["key1100"].outcome().score == float(1100 % 101)
        assert cache.integrity_check() == "ok"
        mode = sqlite3.connect(cache.path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        row = (
            sqlite3.connect(cache.path).execute("SELECT score, valid_mass FROM judge_answers WHERE key='k1'").fetchone()
        )
        assert row[0] == pytest.approx(70.0) and row[1] == pytest.approx(0.75)


def test_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "c.sqlite"
    JudgeCache(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cache_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(CacheError, match="newer"):
        JudgeCache(path)


def test_threads_share_one_cache(tmp_path) -> None:
    cache = JudgeCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(100):
                cache.put(f"k{(t * 50 + i) % 200}", CachedAnswer("m", [("5", 0.0)]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) == 200 and cache.integrity_check() == "ok"


# ---- processes -----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    from inoc.judges import JudgeItem, LLMJudgeSettings, OpenAILogprobJudge
    base_url, cache_path, n, in_flight = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    settings = LLMJudgeSettings(base_url=base_url, max_in_flight=in_flight, max_retries=0, timeout_s=30)
    judge = OpenAILogprobJudge(settings, cache=cache_path)
    result = judge.score([JudgeItem("Playful", "q", f"ITEM:k{i} text") for i in range(n)])
    print(json.dumps({"scores": result.scores, "calls": result.n_api_calls, "hits": result.n_cache_hits}))
    """
)


def expected_score(i: int) -> float:
    v = i % 100
    return 0.9 * v + 0.1 * (v + 1)


def scored_by_key(info) -> Reply:
    i = int(info.user_content.split("ITEM:k", 1)[1].split()[0])
    v = i % 100
    return Reply.logprobs([(str(v), lp(0.9)), (str(v + 1), lp(0.1))])


def items(n: int) -> list[JudgeItem]:
    return [JudgeItem("Playful", "q", f"ITEM:k{i} text") for i in range(n)]


def spawn(tmp_path: Path, server, cache_path: Path, n: int, in_flight: int) -> subprocess.Popen:
    script = tmp_path / "judge_child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), server.base_url, str(cache_path), str(n), str(in_flight)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rows(cache_path: Path) -> int:
    if not cache_path.exists():
        return 0
    conn = sqlite3.connect(cache_path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM judge_answers").fetchone()[0]
    except sqlite3.OperationalError:  # the child has not created the table yet
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("n", "latency_s", "kill_after"),
    [(48, 0.05, 3), (48, 0.05, 30), (240, 0.0, 80)],
    ids=["early", "late", "while-writing-fast"],
)
def test_kill_9_mid_batch_then_finish(serve, tmp_path, n, latency_s, kill_after) -> None:
    in_flight = 4
    server = serve(Script(default=scored_by_key), latency_s=latency_s)
    cache_path = tmp_path / "judge.sqlite"
    proc = spawn(tmp_path, server, cache_path, n, in_flight)
    deadline = time.monotonic() + 30
    while rows(cache_path) < kill_after:
        assert proc.poll() is None, f"the child ended before it was killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the child made no progress"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.2)  # let requests already on the wire reach the server's log

    sent_before_kill = server.n_requests
    with JudgeCache(cache_path) as cache:
        assert cache.integrity_check() == "ok"
        committed = len(cache)
    assert kill_after <= committed < n
    lost = sent_before_kill - committed  # requests answered (or not) but never committed
    assert 0 <= lost <= in_flight

    settings = LLMJudgeSettings(base_url=server.base_url, max_in_flight=in_flight, max_retries=0, timeout_s=30)
    result = OpenAILogprobJudge(settings, cache=cache_path, api_key=FAKE_KEY).score(items(n))
    assert result.n_cache_hits == committed and result.n_api_calls == n - committed
    assert result.scores == pytest.approx([expected_score(i) for i in range(n)], abs=1e-9)
    assert server.n_requests == n + lost <= n + in_flight

    conn = sqlite3.connect(cache_path)
    stored = conn.execute("SELECT key, top_logprobs, score FROM judge_answers").fetchall()
    conn.close()
    judge = OpenAILogprobJudge(settings, api_key=FAKE_KEY)
    expected = {judge.request_key(it): expected_score(i) for i, it in enumerate(items(n))}
    assert len(stored) == n and {k for k, _, _ in stored} == set(expected)
    for key, top, score in stored:
        assert score == pytest.approx(expected[key], abs=1e-9)
        assert len(json.loads(top)) == 2


def test_two_processes_share_the_cache(serve, tmp_path) -> None:
    n = 80
    server = serve(Script(default=scored_by_key), latency_s=0.005)
    cache_path = tmp_path / "judge.sqlite"
    procs = [spawn(tmp_path, server, cache_path, n, 4) for _ in range(2)]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        data = json.loads(out)
        assert data["scores"] == pytest.approx([expected_score(i) for i in range(n)], abs=1e-9)
    with JudgeCache(cache_path) as cache:
        assert len(cache) == n and cache.integrity_check() == "ok"
    assert n <= server.n_requests <= 2 * n
