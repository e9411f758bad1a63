"""Persistent judge cache: one SQLite file shared safely by concurrent processes.

* Key: sha256 of the JSON (sorted keys, ASCII) of ``{"model", "messages", "params"}``, where params
  are the request parameters that shape the answer (temperature, max_tokens, logprobs, top_logprobs).
  The API key and the base URL are not part of it.
* Value: the judge model's answer — the first token's top logprobs as JSON — with the score and the
  valid mass derived from it (``score`` is NULL when no token was a valid score), for SQL inspection.
  Readers recompute the score from the stored logprobs with the current rule and threshold, so a
  changed ``min_valid_mass`` needs no new calls and never reads a stale score.
* What is cached: every *answer* — an HTTP 200 whose body had a well-formed first-token distribution.
  That includes answers that score NaN because no valid token appeared or the valid mass was under
  the threshold: the top logprobs are the model's distribution, not a sample, so asking again
  returns the same answer (exactly at temperature 0; temperature is in the key anyway). Failures
  (HTTP errors, timeouts, malformed bodies, exhausted retries) are never cached.
* Crash safety: WAL journal, ``synchronous=NORMAL`` (a committed transaction survives the death of
  the process at any instant; only an OS crash or power loss can drop the last commits, never
  corrupt the file), one short ``BEGIN IMMEDIATE`` transaction per write, ``INSERT OR IGNORE`` on the
  primary key (two processes that judge the same item concurrently leave one row), and a busy
  timeout so writers queue instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inoc.judges.logprob import DEFAULT_MIN_VALID_MASS, ScoreOutcome, expected_value

SCHEMA_VERSION = 1

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS judge_answers (
    key          TEXT PRIMARY KEY,   -- sha256 of the request (model, messages, params)
    model        TEXT NOT NULL,
    top_logprobs TEXT NOT NULL,      -- JSON [[token, logprob], ...] of the first generated token
    score        REAL,               -- expected value over valid tokens (NULL: none valid)
    valid_mass   REAL NOT NULL,      -- total probability of the valid score tokens
    created_at   REAL NOT NULL       -- unix time of the insert
) WITHOUT ROWID
""",
    "CREATE TABLE IF NOT EXISTS cache_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def request_key(model: str, messages: Sequence[dict[str, Any]], params: dict[str, Any]) -> str:
    """sha256 hex of the JSON of (model, messages, scoring parameters)."""
    payload = json.dumps(
        {"model": model, "messages": list(messages), "params": params},
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A judge model's stored answer: the first token's top logprobs."""

    model: str
    top_logprobs: list[tuple[str, float]]

    def outcome(self, min_valid_mass: float = DEFAULT_MIN_VALID_MASS) -> ScoreOutcome:
        return expected_value(self.top_logprobs, min_valid_mass)


class CacheError(RuntimeError):
    """The cache file cannot be used (not an inoc judge cache, or a newer schema)."""


class JudgeCache:
    """A SQLite-backed map from request key to the judge model's answer. Thread-safe; multi-process safe."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._open()
        self._setup(busy_timeout_s)

    def _open(self) -> None:
        self._pid = os.getpid()
        self._raw_conn = sqlite3.connect(
            str(self.path), timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._raw_conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")

    @property
    def _conn(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child process opens its own.
        if self._pid != os.getpid():
            self._open()
        return self._raw_conn

    def _setup(self, busy_timeout_s: float) -> None:
        deadline = time.monotonic() + busy_timeout_s
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:  # another process is switching the mode right now
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise CacheError(f"{self.path}: could not switch the judge cache to WAL mode (got {mode!r})")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            for statement in _SCHEMA:
                self._conn.execute(statement)
            row = self._conn.execute("SELECT value FROM cache_meta WHERE name = 'schema_version'").fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT INTO cache_meta (name, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                raise CacheError(f"{self.path}: judge cache schema {row[0]} is newer than this code's {SCHEMA_VERSION}")

    class _Tx:
        def __init__(self, cache: "JudgeCache") -> None:
            self.cache = cache

        def __enter__(self) -> None:
            self.cache._lock.acquire()
            try:
                self.cache._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.cache._lock.release()
                raise

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                self.cache._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.cache._lock.release()

    def _transaction(self) -> "JudgeCache._Tx":
        return JudgeCache._Tx(self)

    # ---- reads -------------------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, CachedAnswer]:
        """The stored answers for those keys that have one."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, CachedAnswer] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, model, top_logprobs FROM judge_answers WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, model, top in rows:
                    found[key] = CachedAnswer(model, [(t, float(lp)) for t, lp in json.loads(top)])
        return found

    def get(self, key: str) -> CachedAnswer | None:
        return self.get_many([key]).get(key)

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judge_answers").fetchone()[0])

    # ---- writes ------------------------------------------------------------------------------
    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store one answer in its own committed transaction (first writer wins)."""
        self.put_many([(key, answer)])

    def put_many(self, entries: Iterable[tuple[str, CachedAnswer]]) -> None:
        rows = []
        now = time.time()
        for key, answer in entries:
            outcome = expected_value(answer.top_logprobs, 0.0)
            score = None if math.isnan(outcome.score) else outcome.score
            top = json.dumps([[t, lp] for t, lp in answer.top_logprobs], ensure_ascii=True)
            rows.append((key, answer.model, top, score, outcome.valid_mass, now))
        if not rows:
            return
        with self._transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO judge_answers (key, model, top_logprobs, score, valid_mass, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    # ---- maintenance -------------------------------------------------------------------------
    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` verdict ('ok' when the file is sound)."""
        with self._lock:
            return "; ".join(r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall())

    def close(self) -> None:
        with self._lock:
            self._raw_conn.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JudgeCache({str(self.path)!r})"
