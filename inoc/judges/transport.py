"""Talking to an OpenAI-compatible server: client settings, API key, client, retry policy, error classes,
redaction.

Shared by the logprob judges, the rephrasing generator, the API datagen and the embedder (their settings
derive from ``ApiClientSettings``). The openai client's own retries are off
(``max_retries=0``): every retry decision is made here, by ``call_with_retries``:

* retried: HTTP 429 (``Retry-After`` / ``retry-after-ms`` honoured: the wait is at least what the
  server asked, capped at ``max_retry_after_s``), 408, 409, 5xx, timeouts, connection errors and
  malformed responses (bad JSON, a truncated body, a body without the expected fields);
* not retried, the item fails: other 4xx (a request the server will never accept, e.g. too long);
* fatal, the whole batch stops with ``JudgeFatalError``: 401/403 (credentials) and 404 (unknown model
  or wrong base URL) — every item would fail the same way;
* anything else (a programming error) propagates unchanged.

Backoff before retry ``a`` (0-based): ``min(backoff_max_s, backoff_base_s·2^a)·(1 − jitter·U)``,
U uniform in [0, 1), then raised to the server's Retry-After when that is longer.

The API key is never logged, stored or put in an exception: every message taken from an exception or
a response body goes through a ``Redactor`` that replaces the key, and exceptions are re-raised
``from None`` so a traceback does not show the original (unredacted) exception.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar

import openai

log = logging.getLogger("inoc.judges")

T = TypeVar("T")
R = TypeVar("R")


class JudgeError(RuntimeError):
    """Base class of the judge package's errors (messages never contain the API key)."""


class JudgeConfigError(JudgeError):
    """The judge cannot run as configured (no API key, bad settings)."""


class ApiSettingsError(JudgeConfigError, ValueError):
    """Client settings out of range (a ``ValueError`` too, as the embedder's checks always were)."""


class JudgeFatalError(JudgeError):
    """The server refuses every request (bad credentials, unknown model, wrong URL): the batch stops."""


class MalformedResponse(ValueError):
    """A 200 response without the fields the caller needs; counted as a failed (retried) call."""


class CallFailed(Exception):
    """A call failed after its last permitted attempt; ``kind`` says how (http_429, timeout, …)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


# ---------------------------------------------------------------------------------------------
# Secrets


class Redactor:
    """Replaces secret strings in text (exception messages, response bodies) with ``[REDACTED]``."""

    def __init__(self, *secrets: str | None) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: Any) -> str:
        out = str(text)
        for secret in self._secrets:
            out = out.replace(secret, "[REDACTED]")
        return out

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"


def _secret_value(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):  # pydantic SecretStr, dagster resources holding one
        value = value.get_secret_value()
    if not isinstance(value, str):
        raise JudgeConfigError(f"api_key must be a string, got {type(value).__name__}")
    return value.strip() or None


def resolve_api_key(api_key: Any = None, base_url: str | None = None) -> str:
    """The key to send: the explicit one, else ``OPENAI_API_KEY``; a self-hosted server needs none.

    With a ``base_url`` (a vLLM server, say) and no key, the placeholder ``"EMPTY"`` is sent, as vLLM's
    docs do. With neither, a ``JudgeConfigError`` says what to set.
    """
    key = _secret_value(api_key) or _secret_value(os.environ.get("OPENAI_API_KEY"))
    if key:
        return key
    if base_url:
        return "EMPTY"
    raise JudgeConfigError(
        "no API key for the OpenAI API: set the OPENAI_API_KEY environment variable, pass api_key "
        "(e.g. from a Dagster secret resource), or set base_url to a server that needs no key"
    )


def make_async_client(api_key: str, base_url: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    """An ``openai.AsyncOpenAI`` with its own retries disabled (this module retries)."""
    return openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)


# ---------------------------------------------------------------------------------------------
# Retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry a failed call and how long to wait in between."""

    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    jitter: float = 0.5
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise JudgeConfigError("max_retries must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise JudgeConfigError("backoff times must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise JudgeConfigError("jitter must be in [0, 1]")

    def backoff_bounds(self, attempt: int) -> tuple[float, float]:
        """(shortest, longest) backoff before retry number ``attempt`` (0-based), Retry-After aside."""
        cap = min(self.backoff_max_s, self.backoff_base_s * (2.0**attempt))
        return cap * (1.0 - self.jitter), cap

    def delay_s(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        low, high = self.backoff_bounds(attempt)
        delay = high - (high - low) * rng.random()
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


# ---------------------------------------------------------------------------------------------
# Client settings


S = TypeVar("S", bound="ApiClientSettings")


@dataclass(frozen=True, kw_only=True)
class ApiClientSettings(RetryPolicy):
    """How to reach an OpenAI-compatible server: shared by the judge, rephrasing, datagen and embedding settings.

    The retry fields (``max_retries``, backoff, jitter, the Retry-After cap) are ``RetryPolicy``'s; this
    adds the server, the in-flight bound and the timeout. Each subclass adds what its requests ask for
    and may give ``max_in_flight`` / ``timeout_s`` its own default (a judge request is tiny, a
    rephrasing batch is long). The API key is not a setting: it is passed to the client (``connect``)
    and never stored with the settings.
    """

    base_url: str | None = None
    max_in_flight: int = 16
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ApiSettingsError("max_in_flight must be >= 1")
        if self.timeout_s <= 0:
            raise ApiSettingsError("timeout_s must be > 0")
        super().__post_init__()  # the retry policy's checks

    def retry_policy(self) -> RetryPolicy:
        """The retry policy alone (what ``call_with_retries`` takes)."""
        return RetryPolicy(**{f.name: getattr(self, f.name) for f in fields(RetryPolicy)})

    @classmethod
    def from_config(cls: type[S], config: Any = None, **overrides: Any) -> S:
        """Settings from an object or mapping with the same field names (the experiment YAML's section).

        Fields the source lacks keep their defaults; fields this class does not know (an asset-check
        bound, the datagen mode, …) are ignored; ``overrides`` win.
        """
        names = {f.name for f in fields(cls) if f.init}
        source: Mapping[str, Any]
        if config is None:
            source = {}
        elif hasattr(config, "model_dump"):  # pydantic (inoc.config.schema)
            source = config.model_dump()
        elif isinstance(config, Mapping):
            source = config
        elif is_dataclass(config):
            source = {f.name: getattr(config, f.name) for f in fields(config)}
        else:
            raise TypeError(f"cannot read {cls.__name__} from a {type(config).__name__}")
        values = {k: v for k, v in source.items() if k in names}
        values.update(overrides)
        if isinstance(values.get("price_per_mtok"), list):
            values["price_per_mtok"] = tuple(values["price_per_mtok"])
        return cls(**values)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, or ``retry-after`` (seconds or HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class Failure:
    kind: str
    message: str
    retryable: bool
    fatal: bool = False
    retry_after_s: float | None = None


def classify(exc: BaseException, redact: Redactor) -> Failure:
    """Map an exception from one attempt to a ``Failure`` (kind, retryable, fatal, Retry-After)."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = redact(exc.message)
        retry_after = parse_retry_after(getattr(exc.response, "headers", None))
        if status == 429:
            return Failure("http_429", message, True, retry_after_s=retry_after)
        if status in (408, 409) or status >= 500:
            return Failure(f"http_{status}", message, True, retry_after_s=retry_after)
        if status in (401, 403):
            return Failure(f"http_{status}", f"the server refused the credentials ({message})", False, fatal=True)
        if status == 404:
            return Failure("http_404", f"not found: check the model name and base_url ({message})", False, fatal=True)
        return Failure(f"http_{status}", message, False)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", "request timed out", True)
    if isinstance(exc, openai.APIResponseValidationError):
        return Failure("malformed", redact(exc.message), True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__})" if cause is not None else ""
        return Failure("connection", f"connection error{detail}", True)
    if isinstance(exc, (MalformedResponse, json.JSONDecodeError, UnicodeDecodeError)):
        return Failure("malformed", redact(exc), True)
    if isinstance(exc, asyncio.TimeoutError):
        return Failure("timeout", "request timed out", True)
    # httpx transport errors that escape the client (e.g. a body cut short while being read)
    if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11", "h2"):
        return Failure("connection", f"transport error ({type(exc).__name__})", True)
    raise exc


@dataclass
class CallStats:
    """Counters shared by the calls of one batch."""

    calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    sleeps: list[float] = field(default_factory=list)

    def add_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)


async def call_with_retries(
    make_call: Callable[[], Awaitable[T]],
    accept: Callable[[T], R],
    *,
    policy: RetryPolicy,
    semaphore: asyncio.Semaphore,
    stats: CallStats,
    redact: Redactor,
    rng: random.Random,
    label: str = "request",
) -> R:
    """Run ``make_call`` until ``accept`` returns (it raises ``MalformedResponse`` to reject a body).

    The semaphore bounds requests in flight; it is released while waiting between attempts. Raises
    ``CallFailed`` after the last attempt, ``JudgeFatalError`` at once on a fatal status.
    """
    for attempt in range(policy.max_retries + 1):
        async with semaphore:
            stats.calls += 1
            try:
                response = await make_call()
                return accept(response)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified below; unknown kinds re-raise
                failure = classify(exc, redact)
        stats.errors[failure.kind] += 1
        if failure.fatal:
            raise JudgeFatalError(f"{label}: {failure.message}") from None
        if not failure.retryable or attempt == policy.max_retries:
            log.debug("%s failed for good after %d attempt(s): %s", label, attempt + 1, failure.kind)
            raise CallFailed(failure.kind, failure.message) from None
        delay = policy.delay_s(attempt, failure.retry_after_s, rng)
        stats.retries += 1
        stats.sleeps.append(delay)
        log.debug("%s attempt %d failed (%s); retrying in %.3f s", label, attempt + 1, failure.kind, delay)
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# One connection: what every caller of an OpenAI-compatible API sets up the same way


@dataclass
class ApiConnection:
    """A client (its own retries off) with the retry policy, the in-flight bound and the key's redactor."""

    client: openai.AsyncOpenAI
    policy: RetryPolicy
    semaphore: asyncio.Semaphore
    redact: Redactor

    async def call(
        self,
        make_call: Callable[[], Awaitable[T]],
        accept: Callable[[T], R],
        *,
        stats: CallStats,
        rng: random.Random,
        label: str = "request",
    ) -> R:
        """``call_with_retries`` with this connection's policy, semaphore and redactor."""
        return await call_with_retries(
            make_call,
            accept,
            policy=self.policy,
            semaphore=self.semaphore,
            stats=stats,
            redact=self.redact,
            rng=rng,
            label=label,
        )

    async def close(self) -> None:
        await self.client.close()


def connect(settings: ApiClientSettings, api_key: Any = None) -> ApiConnection:
    """A connection from client settings (the rephrasing, datagen and embedding settings); the key as
    ``resolve_api_key``."""
    key = resolve_api_key(api_key, settings.base_url)
    return ApiConnection(
        make_async_client(key, settings.base_url, settings.timeout_s),
        settings.retry_policy(),
        asyncio.Semaphore(settings.max_in_flight),
        Redactor(key),
    )
