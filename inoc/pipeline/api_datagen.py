"""Off-policy training data from an OpenAI-compatible chat-completions API (``datagen.backend: openai``).

One request per datagen row (``inoc.pipeline.requests.datagen_requests``), with the datagen settings
(model, temperature, top_p, max_tokens), at most ``max_in_flight`` in flight. Transport, retries and
error classes are ``inoc.judges.transport``'s: 429/5xx/timeouts/malformed bodies are retried with
backoff, other 4xx fail that request, 401/403/404 stop everything with ``JudgeFatalError``.

Resumable: each finished completion is appended (and flushed) to ``<out>/partial.jsonl`` as it
arrives, tagged with a hash of what was asked (model, sampling settings, messages); a later call
reuses the lines whose id and hash still match and requests only the rest. The result, in request
order, is written atomically to ``<out>/completions.jsonl`` in the generate job's row format
(``id``, ``text``, ``n_tokens``, ``finish_reason``, ``meta``). The API key goes into no file and no
message (every server message passes through the transport's ``Redactor``).

Failure policy: a request whose retries run out is never given invented text. If at most
``max_failed_fraction`` of the requests failed, those examples are dropped (the result lists them in
``failed`` / ``n_failed``) and the rest is written; more than that raises ``DatagenError`` naming how
many failed and why, after the finished completions are safely in ``partial.jsonl``. Failed requests
are not recorded, so a rerun asks for them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_jobs.io import write_jsonl_atomic
from inoc.judges.interface import run_sync
from inoc.judges.pricing import estimate_cost
from inoc.judges.transport import (
    ApiClientSettings,
    CallFailed,
    CallStats,
    JudgeConfigError,
    MalformedResponse,
    connect,
)

log = logging.getLogger("inoc.datagen")

PARTIAL_FILE = "partial.jsonl"
RESULT_FILE = "completions.jsonl"

#: ``progress(done, total)``: requests finished (reused ones included), called about every 10 %.
DatagenProgress = Callable[[int, int], None]


class DatagenError(RuntimeError):
    """Too many datagen requests failed (the message says how many and why; never the key)."""


@dataclass(frozen=True, kw_only=True)
class ApiDatagenSettings(ApiClientSettings):
    """The datagen request settings; the server and its bounds are ``ApiClientSettings``'. ``from_config``
    reads them from an ``inoc.config`` ``DatagenConfig`` (``backend: openai``)."""

    model: str
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    max_failed_fraction: float = 0.01
    timeout_s: float = 180.0
    price_per_mtok: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise JudgeConfigError("max_failed_fraction must be in [0, 1]")

    def request_hash(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """What a completion depends on; a partial line with another hash is stale."""
        blob = json.dumps(
            [self.model, self.temperature, self.top_p, self.max_tokens, list(messages)],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class ApiDatagenResult:
    rows: list[dict]  # completions in request order, failed requests left out
    model: str
    n_requested: int
    n_reused: int = 0
    failed: list[Any] = field(default_factory=list)  # ids of the dropped requests
    failure_kinds: Counter = field(default_factory=Counter)
    n_calls: int = 0
    n_retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None
    wall_s: float = 0.0
    path: Path | None = None

    @property
    def n_failed(self) -> int:
        return len(self.failed)

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.rows]

    def metadata(self) -> dict[str, Any]:
        n = len(self.rows)
        meta: dict[str, Any] = {
            "datagen_model": self.model,
            "n_requested": self.n_requested,
            "n_failed": self.n_failed,
            "n_reused": self.n_reused,
            "n_api_calls": self.n_calls,
            "n_retries": self.n_retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "stopped_fraction": round(sum(r["finish_reason"] == "stop" for r in self.rows) / n, 4) if n else None,
            "wall_s": round(self.wall_s, 3),
        }
        if self.failure_kinds:
            meta["failures"] = dict(sorted(self.failure_kinds.items()))
        if self.estimated_cost_usd is not None:
            meta["estimated_cost_usd"] = round(self.estimated_cost_usd, 6)
        return meta


def _load_partial(path: Path, wanted: Mapping[str, str]) -> dict[str, dict]:
    """Lines of ``path`` whose id is wanted with the same hash (a torn last line is skipped)."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            continue
        i = json.dumps(row.get("id"))
        if i in wanted and row.get("hash") == wanted[i]:
            done[i] = row
    return done


async def agenerate(
    requests: Sequence[Mapping[str, Any]],
    settings: ApiDatagenSettings,
    out_dir: str | Path,
    *,
    api_key: Any = None,
    progress: DatagenProgress | None = None,
    seed: int | None = None,
) -> ApiDatagenResult:
    """Completions of every request (see the module docstring); ``out_dir`` holds the partial and result."""
    s = settings
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = [json.dumps(r["id"]) for r in requests]  # JSON text: ids may be ints or strings
    if len(set(ids)) != len(ids):
        raise ValueError("datagen request ids must be unique")
    api = connect(s, api_key)  # before any work: a missing key fails at once
    hashes = {i: s.request_hash(r["messages"]) for i, r in zip(ids, requests)}
    partial = out / PARTIAL_FILE
    done = _load_partial(partial, hashes)
    # Rewrite the partial with only the reusable lines: drops stale ones and a torn last line.
    write_jsonl_atomic(partial, done.values())
    result = ApiDatagenResult(
        rows=[], model=s.model, n_requested=len(requests), n_reused=len(done), path=out / RESULT_FILE
    )
    todo = [(i, r) for i, r in zip(ids, requests) if i not in done]
    total, finished = len(requests), len(done)
    step = max(1, total // 10)
    if progress is not None and finished:
        progress(finished, total)

    stats = CallStats()
    rng = random.Random(seed)

    async def request(i: str, row: Mapping[str, Any]) -> tuple[str, dict | CallFailed]:
        async def make_call() -> Any:
            return await api.client.chat.completions.create(
                model=s.model,
                messages=list(row["messages"]),
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_tokens,
            )

        def accept(response: Any) -> dict:
            try:
                choice = response.choices[0]
                text = choice.message.content
            except (AttributeError, IndexError, TypeError):
                raise MalformedResponse("response has no message") from None
            if text is None:  # a refusal or a filtered reply: retried, never stored as ""
                raise MalformedResponse("reply has no message content")
            usage = getattr(response, "usage", None)
            stats.add_usage(usage)
            return {
                "id": row["id"],
                "hash": hashes[i],
                "text": text,
                "n_tokens": int(getattr(usage, "completion_tokens", 0) or 0),
                "finish_reason": str(choice.finish_reason or ""),
            }  # stop, length or content_filter

        try:
            return i, await api.call(make_call, accept, stats=stats, rng=rng, label=f"datagen request {row['id']}")
        except CallFailed as failure:
            return i, failure

    tasks = [asyncio.ensure_future(request(i, r)) for i, r in todo]
    try:
        with open(partial, "a", encoding="utf-8") as f:
            for next_done in asyncio.as_completed(tasks):
                i, got = await next_done  # a fatal error propagates from here
                if isinstance(got, CallFailed):
                    result.failed.append(json.loads(i))
                    result.failure_kinds[got.kind] += 1
                    log.warning("datagen request %s failed for good: %s", i, got.kind)
                else:
                    done[i] = got
                    f.write(json.dumps(got, ensure_ascii=False) + "\n")
                    f.flush()
                finished += 1
                if progress is not None and (finished == total or finished % step == 0):
                    progress(finished, total)
    finally:  # a fatal error or a cancellation stops the requests still in flight
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()

    result.n_calls, result.n_retries = stats.calls, stats.retries
    result.prompt_tokens, result.completion_tokens = stats.prompt_tokens, stats.completion_tokens
    result.estimated_cost_usd = estimate_cost(s.model, stats.prompt_tokens, stats.completion_tokens, s.price_per_mtok)
    result.wall_s = time.perf_counter() - started
    if result.n_failed > s.max_failed_fraction * total:
        why = ", ".join(f"{k} × {v}" for k, v in sorted(result.failure_kinds.items()))
        raise DatagenError(
            f"{result.n_failed} of {total} datagen requests to {s.model} failed after retries ({why}); at most "
            f"{s.max_failed_fraction:.1%} may be dropped. The {len(done)} finished completions are kept in {partial}: "
            "a rerun requests only the missing ones"
        )
    by_id = {i: r for i, r in zip(ids, requests)}
    result.rows = [
        {
            "id": by_id[i]["id"],
            "text": done[i]["text"],
            "n_tokens": done[i]["n_tokens"],
            "finish_reason": done[i]["finish_reason"],
            "meta": dict(by_id[i].get("meta") or {}),
        }
        for i in ids
        if i in done
    ]
    write_jsonl_atomic(out / RESULT_FILE, result.rows)
    log.info(
        "datagen: %d completions from %s (%d reused, %d failed, %d calls) in %.1f s",
        len(result.rows),
        s.model,
        result.n_reused,
        result.n_failed,
        result.n_calls,
        result.wall_s,
    )
    return result


def generate(
    requests: Sequence[Mapping[str, Any]],
    settings: ApiDatagenSettings,
    out_dir: str | Path,
    *,
    api_key: Any = None,
    progress: DatagenProgress | None = None,
    seed: int | None = None,
) -> ApiDatagenResult:
    """Sync wrapper of ``agenerate`` (for Dagster assets)."""
    return run_sync(agenerate(requests, settings, out_dir, api_key=api_key, progress=progress, seed=seed))
