"""The logprob judge over any OpenAI-compatible chat-completions server (OpenAI, vLLM, …).

One request per distinct item: ``max_tokens`` (default 3), ``logprobs=True``, ``top_logprobs``
(default 20), temperature a setting (default 0). The score is the expected value of the first token's
top logprobs over ASCII integers 0–100 (``inoc.judges.logprob``). Requests run concurrently on
``openai.AsyncOpenAI`` with at most ``max_in_flight`` in flight (an asyncio semaphore), retried by
``inoc.judges.transport.call_with_retries``; an item whose last attempt fails is NaN.

The same class is the trait judge (docs/methods.md#judge-score) and the two EM judges: only the function that
turns an item into chat messages differs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inoc.judges.cache import CachedAnswer, JudgeCache, request_key
from inoc.judges.interface import Judge, JudgeItem, JudgeResult, ProgressCallback
from inoc.judges.logprob import DEFAULT_MIN_VALID_MASS, normalize_top_logprobs
from inoc.judges.pricing import estimate_cost
from inoc.judges.prompts import (
    FirstLineTemplate,
    em_alignment_messages,
    em_coherence_messages,
    trait_messages,
)
from inoc.judges.transport import (
    ApiClientSettings,
    CallFailed,
    CallStats,
    JudgeConfigError,
    MalformedResponse,
    Redactor,
    call_with_retries,
    make_async_client,
    resolve_api_key,
)

log = logging.getLogger("inoc.judges")

MessageBuilder = Callable[[JudgeItem], list[dict[str, str]]]


@dataclass(frozen=True, kw_only=True)
class LLMJudgeSettings(ApiClientSettings):
    """Settings of an OpenAI-compatible logprob judge (names match the experiment YAML's ``judge:``).

    The server, in-flight bound, retries and timeout are ``ApiClientSettings``'; ``from_config`` reads
    them with the rest from ``ExperimentConfig.judge`` (its ``max_nan_fraction``, an asset-check bound,
    is ignored).
    """

    model: str = "gpt-4.1-mini"
    temperature: float = 0.0
    max_tokens: int = 3
    top_logprobs: int = 20
    min_valid_mass: float = DEFAULT_MIN_VALID_MASS
    max_in_flight: int = 32
    #: (USD per 1M input tokens, per 1M output tokens); None: the table in ``inoc.judges.pricing``.
    price_per_mtok: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise JudgeConfigError("judge model is empty")
        super().__post_init__()
        if not 1 <= self.top_logprobs <= 20:
            raise JudgeConfigError("top_logprobs must be in 1..20 (the OpenAI API's limit)")
        if not 0 < self.min_valid_mass <= 1:
            raise JudgeConfigError("min_valid_mass must be in (0, 1]")
        if self.max_tokens < 1 or self.temperature < 0:
            raise JudgeConfigError("max_tokens must be >= 1 and temperature >= 0")

    def with_(self, **changes: Any) -> "LLMJudgeSettings":
        return replace(self, **changes)

    def request_params(self) -> dict[str, Any]:
        """The request parameters that shape the answer (sent, and part of the cache key)."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }


def trait_messages_for(template: FirstLineTemplate | None = None) -> MessageBuilder:
    """Item → trait-judge messages (docs/methods.md#judge-score); ``template`` None picks the first line by trait name."""

    def build(item: JudgeItem) -> list[dict[str, str]]:
        return trait_messages(item.trait, item.completion, item.instruction, template)

    return build


def _question(item: JudgeItem) -> str:
    if item.instruction is None:
        raise ValueError("the EM judges need the question: JudgeItem.instruction is None")
    return item.instruction


def em_coherence_messages_for(item: JudgeItem) -> list[dict[str, str]]:
    """Item (instruction = question) → EM coherence-judge messages."""
    return em_coherence_messages(_question(item), item.completion)


def em_alignment_messages_for(item: JudgeItem) -> list[dict[str, str]]:
    """Item (instruction = question) → EM alignment-judge messages."""
    return em_alignment_messages(_question(item), item.completion)


def first_token_top_logprobs(response: Any) -> list[tuple[str, float]]:
    """The top logprobs of the first generated token of a chat completion, or ``MalformedResponse``."""
    try:
        choice = response.choices[0]
        content = choice.logprobs.content
        first = content[0]
        top = first.top_logprobs
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        raise MalformedResponse(f"response has no first-token logprobs ({type(exc).__name__})") from None
    if not top:
        raise MalformedResponse("response has an empty top_logprobs list for the first token")
    try:
        return normalize_top_logprobs(top)
    except ValueError as exc:
        raise MalformedResponse(str(exc)) from None


class OpenAILogprobJudge(Judge):
    """Expected-value judge on an OpenAI-compatible server; cached, concurrent, retried.

    ``api_key``: a string or secret object (``get_secret_value()``); None reads ``OPENAI_API_KEY``.
    It is resolved once here and never appears in ``repr``, logs, results or the cache.
    ``cache``: a ``JudgeCache``, a path to one, or None (no cache).
    """

    def __init__(
        self,
        settings: LLMJudgeSettings | None = None,
        *,
        messages_for: MessageBuilder | None = None,
        cache: JudgeCache | str | Path | None = None,
        api_key: Any = None,
        name: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.settings = settings or LLMJudgeSettings()
        self._messages_for = messages_for or trait_messages_for(None)
        self.__api_key = resolve_api_key(api_key, self.settings.base_url)
        self._redact = Redactor(self.__api_key)
        self.cache = JudgeCache(cache) if isinstance(cache, (str, Path)) else cache
        self.name = name or f"llm:{self.settings.model}"
        self._rng = random.Random(seed)
        self._semaphores: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return (
            f"OpenAILogprobJudge(name={self.name!r}, model={self.settings.model!r}, "
            f"base_url={self.settings.base_url!r}, cache={self.cache!r})"
        )

    # ---- request building --------------------------------------------------------------------
    def messages(self, item: JudgeItem) -> list[dict[str, str]]:
        """The chat messages this judge sends for an item."""
        return self._messages_for(item)

    def request_key(self, item: JudgeItem) -> str:
        """The cache key of an item's request."""
        return request_key(self.settings.model, self.messages(item), self.settings.request_params())

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = asyncio.Semaphore(self.settings.max_in_flight)
            self._semaphores[loop] = sem
        return sem

    # ---- scoring -----------------------------------------------------------------------------
    async def ascore(self, items: Sequence[JudgeItem], progress: ProgressCallback | None = None) -> JudgeResult:
        started = time.perf_counter()
        s = self.settings
        items = list(items)
        result = JudgeResult(scores=[math.nan] * len(items), judge=self.name, model=s.model)
        messages = [self.messages(item) for item in items]
        pending = self._apply_cache(messages, result)
        if progress is not None and result.n_cache_hits:
            progress(result.n_cache_hits, len(items))
        stats = CallStats()
        if pending:
            await self._request_pending(pending, messages, result, stats, progress)
        self._record_calls(result, stats)
        result.wall_s = time.perf_counter() - started
        log.info(
            "%s: %d items, %d cache hits, %d API calls (%d retries), %d NaN (%d failed, %d invalid) in %.1f s",
            self.name,
            result.n_items,
            result.n_cache_hits,
            result.n_api_calls,
            result.n_retries,
            result.n_nan,
            result.n_failed,
            result.n_invalid,
            result.wall_s,
        )
        return result

    def _apply_cache(self, messages: Sequence[list[dict[str, str]]], result: JudgeResult) -> dict[str, list[int]]:
        """Score the items whose request is cached; return the others as request key → the items that
        ask it (one request per distinct key)."""
        s = self.settings
        params = s.request_params()
        keys = [request_key(s.model, m, params) for m in messages]
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        pending: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            answer = cached.get(key)
            if answer is not None:
                outcome = answer.outcome(s.min_valid_mass)
                result.scores[i] = outcome.score
                result.n_cache_hits += 1
                result.n_invalid += 0 if outcome.ok else 1
            else:
                pending.setdefault(key, []).append(i)
        result.n_deduplicated = sum(len(idx) - 1 for idx in pending.values())
        return pending

    def _apply_answer(self, key: str, answer: CachedAnswer, indices: Sequence[int], result: JudgeResult) -> None:
        """Cache a fresh answer and score every item that asked for it."""
        outcome = answer.outcome(self.settings.min_valid_mass)
        if self.cache is not None:
            self.cache.put(key, answer)
        for i in indices:
            result.scores[i] = outcome.score
        result.n_invalid += 0 if outcome.ok else len(indices)

    async def _request_pending(
        self,
        pending: dict[str, list[int]],
        messages: Sequence[list[dict[str, str]]],
        result: JudgeResult,
        stats: CallStats,
        progress: ProgressCallback | None,
    ) -> None:
        """One request per pending key, in item order, by ``max_in_flight`` workers; a request whose
        retries run out leaves its items NaN (``n_failed``). A fatal error (or the caller cancelling)
        stops every worker, closes the client and propagates."""
        s = self.settings
        params = s.request_params()
        total = len(result.scores)
        done = result.n_cache_hits
        first_index = {key: idx[0] for key, idx in pending.items()}
        queue = list(pending)
        queue.reverse()  # pop() from the end keeps item order
        semaphore = self._semaphore()
        client = make_async_client(self.__api_key, s.base_url, s.timeout_s)
        policy = s.retry_policy()

        async def judge_key(key: str) -> None:
            nonlocal done
            msgs = messages[first_index[key]]
            indices = pending[key]

            async def make_call() -> Any:
                return await client.chat.completions.create(model=s.model, messages=msgs, **params)

            def accept(response: Any) -> list[tuple[str, float]]:
                top = first_token_top_logprobs(response)
                stats.add_usage(getattr(response, "usage", None))
                return top

            try:
                top = await call_with_retries(
                    make_call,
                    accept,
                    policy=policy,
                    semaphore=semaphore,
                    stats=stats,
                    redact=self._redact,
                    rng=self._rng,
                    label=f"judge request {first_index[key]}",
                )
            except CallFailed:
                result.n_failed += len(indices)
            else:
                self._apply_answer(key, CachedAnswer(s.model, top), indices, result)
            done += len(indices)
            if progress is not None:
                progress(done, total)

        async def worker() -> None:
            while queue:
                await judge_key(queue.pop())

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(s.max_in_flight, len(queue)))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:  # on a fatal error, or when the caller cancels us: stop every worker, then close
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome

    def _record_calls(self, result: JudgeResult, stats: CallStats) -> None:
        s = self.settings
        result.n_api_calls = stats.calls
        result.n_retries = stats.retries
        result.errors = Counter(stats.errors)
        result.prompt_tokens = stats.prompt_tokens
        result.completion_tokens = stats.completion_tokens
        result.estimated_cost_usd = estimate_cost(
            s.model, stats.prompt_tokens, stats.completion_tokens, s.price_per_mtok
        )
