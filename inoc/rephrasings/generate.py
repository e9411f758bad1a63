"""Generating N unique rephrasings of a prompt with an OpenAI-compatible chat model (docs/methods.md#rephrasings).

Method: rounds of concurrent requests (at most ``max_in_flight`` in flight); each request asks for
``batch_size`` rephrasings as a JSON array (system prompt ``REPHRASE_SYSTEM_PROMPT`` or, with
``close=True``, ``CLOSE_REPHRASE_SYSTEM_PROMPT``; temperature 1.2 by default — the original EM close
pools used 0.7: pass it). A round sends enough requests to cover what is still missing plus 25 %.

Each reply must be a JSON array of strings (a ```json fence around it, or an object holding exactly
one array, is tolerated); a reply that is not is a malformed response, retried like an HTTP failure
(``inoc.judges.transport``); a batch whose retries run out is dropped and the next round makes up for
it. Candidates are stripped of surrounding whitespace and kept when they are non-empty strings, not a
duplicate (whitespace-collapsed, case-folded comparison) of an accepted one, and not the original
(same comparison) unless ``allow_original``. Batches are folded in request order, so the same replies
give the same pool whatever order they arrive in. The first N accepted are kept, then shuffled with
``Random(shuffle_seed)`` (the original's files are shuffled; None keeps generation order). Fewer than
N after ``max_rounds`` is an error, never a short pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from inoc.judges.interface import run_sync
from inoc.judges.pricing import estimate_cost
from inoc.judges.transport import (
    ApiClientSettings,
    ApiConnection,
    CallFailed,
    CallStats,
    JudgeConfigError,
    MalformedResponse,
    connect,
)
from inoc.rephrasings.pools import normalize
from inoc.rephrasings.prompts import system_prompt, user_message

log = logging.getLogger("inoc.rephrasings")

#: ``progress(accepted_so_far, n_wanted)``, called after each batch is folded in.
RephrasingProgress = Callable[[int, int], None]


class RephrasingError(RuntimeError):
    """Generation could not produce the requested number of unique rephrasings."""


@dataclass(frozen=True, kw_only=True)
class RephrasingSettings(ApiClientSettings):
    """Generator settings (names match the experiment YAML's ``rephrasings:`` where they overlap;
    ``from_config`` reads them from a ``RephrasingConfig``). The server and its bounds are ``ApiClientSettings``'."""

    model: str = "gpt-4.1"
    temperature: float = 1.2
    batch_size: int = 50
    max_tokens: int = 8192
    close: bool = False
    allow_original: bool = False
    max_in_flight: int = 10
    max_rounds: int = 10
    timeout_s: float = 180.0
    shuffle_seed: int | None = 42
    price_per_mtok: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_in_flight < 1 or self.max_rounds < 1:
            raise JudgeConfigError("batch_size, max_in_flight and max_rounds must be >= 1")
        super().__post_init__()


@dataclass
class RephrasingResult:
    """The pool and how it was obtained."""

    rephrasings: list[str]
    prompt: str
    model: str
    n_requests: int = 0
    n_batches_failed: int = 0
    n_candidates: int = 0
    rejected: Counter = field(default_factory=Counter)
    rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None
    wall_s: float = 0.0
    errors: Counter = field(default_factory=Counter)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "n_rephrasings": len(self.rephrasings),
            "model": self.model,
            "n_requests": self.n_requests,
            "n_batches_failed": self.n_batches_failed,
            "n_candidates": self.n_candidates,
            "rounds": self.rounds,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
        }
        if self.rejected:
            meta["rejected"] = dict(sorted(self.rejected.items()))
        if self.errors:
            meta["errors"] = dict(sorted(self.errors.items()))
        if self.estimated_cost_usd is not None:
            meta["estimated_cost_usd"] = round(self.estimated_cost_usd, 6)
        return meta


_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)


def parse_batch(text: str | None) -> list[Any]:
    """The JSON array in a model reply, or ``MalformedResponse``."""
    if text is None:
        raise MalformedResponse("reply has no message content")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedResponse(f"reply is not JSON ({exc.msg} at char {exc.pos})") from None
    if isinstance(value, dict):
        arrays = [v for v in value.values() if isinstance(v, list)]
        if len(arrays) == 1:
            value = arrays[0]
    if not isinstance(value, list):
        raise MalformedResponse(f"reply is JSON {type(value).__name__}, expected an array of strings")
    return value


class _Pool:
    """The rephrasings accepted so far, and the rules a candidate must pass (the module docstring);
    every candidate is counted in ``result`` (candidates, rejections by reason)."""

    def __init__(self, prompt: str, allow_original: bool, result: RephrasingResult) -> None:
        self.accepted: list[str] = []
        self._seen: set[str] = set()
        self._original = normalize(prompt)
        self._allow_original = allow_original
        self._result = result

    def __len__(self) -> int:
        return len(self.accepted)

    def fold(self, batch: list[Any]) -> None:
        result = self._result
        for candidate in batch:
            result.n_candidates += 1
            if not isinstance(candidate, str):
                result.rejected["not_a_string"] += 1
                continue
            text = candidate.strip()
            norm = normalize(text)
            if not text:
                result.rejected["empty"] += 1
            elif norm == self._original and not self._allow_original:
                result.rejected["original"] += 1
            elif norm in self._seen:
                result.rejected["duplicate"] += 1
            else:
                self._seen.add(norm)
                self.accepted.append(text)


async def _request_batch(
    api: ApiConnection,
    s: RephrasingSettings,
    prompt: str,
    stats: CallStats,
    rng: random.Random,
    round_index: int,
    request_index: int,
) -> list[Any] | None:
    """One request for ``batch_size`` rephrasings: the parsed array, or None when its retries ran out."""
    messages = [
        {"role": "system", "content": system_prompt(s.close)},
        {"role": "user", "content": user_message(prompt, s.batch_size, round_index, request_index)},
    ]

    async def make_call() -> Any:
        return await api.client.chat.completions.create(
            model=s.model, messages=messages, temperature=s.temperature, max_tokens=s.max_tokens
        )

    def accept(response: Any) -> list[Any]:
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise MalformedResponse("response has no message") from None
        batch = parse_batch(content)
        stats.add_usage(getattr(response, "usage", None))
        return batch

    try:
        return await api.call(
            make_call, accept, stats=stats, rng=rng, label=f"rephrasing batch {round_index}.{request_index}"
        )
    except CallFailed as failure:
        log.warning("rephrasing batch %d.%d dropped: %s", round_index, request_index, failure.kind)
        return None


async def _run_round(
    requests: list[Awaitable[list[Any] | None]],
    pool: _Pool,
    n: int,
    result: RephrasingResult,
    progress: RephrasingProgress | None,
) -> None:
    """Send a round's requests at once and fold the replies into the pool in request order (so the
    same replies give the same pool whatever order they arrive in), until it holds ``n``; then the
    rest of the round is cancelled. A fatal error propagates after every request is stopped."""
    tasks = [asyncio.ensure_future(r) for r in requests]
    index_of = {task: i for i, task in enumerate(tasks)}
    waiting = set(tasks)
    replies: dict[int, list[Any] | None] = {}
    next_to_fold = 0
    try:
        while waiting and len(pool) < n:
            finished, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                replies[index_of[task]] = task.result()  # a fatal error propagates from here
            while next_to_fold in replies and len(pool) < n:  # fold in request order
                folded = replies.pop(next_to_fold)
                next_to_fold += 1
                if folded is None:
                    result.n_batches_failed += 1
                else:
                    pool.fold(folded)
                if progress is not None:
                    progress(min(len(pool), n), n)
    finally:  # the rest of the round is not needed, or a fatal error stops everything
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _record_calls(result: RephrasingResult, stats: CallStats, s: RephrasingSettings) -> None:
    result.n_requests = stats.calls
    result.errors = Counter(stats.errors)
    result.prompt_tokens = stats.prompt_tokens
    result.completion_tokens = stats.completion_tokens
    result.estimated_cost_usd = estimate_cost(s.model, stats.prompt_tokens, stats.completion_tokens, s.price_per_mtok)


async def agenerate_rephrasings(
    prompt: str,
    n: int = 1000,
    settings: RephrasingSettings | None = None,
    *,
    api_key: Any = None,
    progress: RephrasingProgress | None = None,
    seed: int | None = None,
) -> RephrasingResult:
    """N unique rephrasings of ``prompt`` from a chat model (see the module docstring)."""
    s = settings or RephrasingSettings()
    if not prompt.strip():
        raise ValueError("cannot rephrase an empty prompt")
    if n < 1:
        raise ValueError("n must be >= 1")
    started = time.perf_counter()
    api = connect(s, api_key)
    rng = random.Random(seed)
    stats = CallStats()
    result = RephrasingResult(rephrasings=[], prompt=prompt, model=s.model)
    pool = _Pool(prompt, s.allow_original, result)
    try:
        for round_index in range(1, s.max_rounds + 1):
            missing = n - len(pool)
            if missing <= 0:
                break
            result.rounds = round_index
            n_requests = max(1, math.ceil(missing * 1.25 / s.batch_size))
            requests = [_request_batch(api, s, prompt, stats, rng, round_index, i) for i in range(1, n_requests + 1)]
            await _run_round(requests, pool, n, result, progress)
    finally:
        await api.close()

    _record_calls(result, stats, s)
    result.wall_s = time.perf_counter() - started
    if len(pool) < n:
        raise RephrasingError(
            f"got {len(pool)} unique rephrasings of {prompt!r}, {n} wanted, after {result.rounds} round(s) "
            f"({result.n_requests} requests, {result.n_batches_failed} failed batches, "
            f"rejected {dict(result.rejected)}); raise max_rounds or check the model"
        )
    rephrasings = pool.accepted[:n]
    if s.shuffle_seed is not None:
        random.Random(s.shuffle_seed).shuffle(rephrasings)
    result.rephrasings = rephrasings
    log.info(
        "%d rephrasings of %r in %d round(s), %d requests, %.1f s",
        n,
        prompt,
        result.rounds,
        result.n_requests,
        result.wall_s,
    )
    return result


def generate_rephrasings(
    prompt: str,
    n: int = 1000,
    settings: RephrasingSettings | None = None,
    *,
    api_key: Any = None,
    progress: RephrasingProgress | None = None,
    seed: int | None = None,
) -> RephrasingResult:
    """Sync wrapper of ``agenerate_rephrasings`` (for Dagster assets)."""
    return run_sync(agenerate_rephrasings(prompt, n, settings, api_key=api_key, progress=progress, seed=seed))
