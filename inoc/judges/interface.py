"""The one judge interface every scoring asset uses.

A judge scores many ``JudgeItem(trait, instruction, completion)`` and returns a ``JudgeResult``: one
score per item (0–100, or NaN when it could not score — never a sentinel) plus the counts the Dagster
layer attaches as metadata (NaN, cache hits, API calls, tokens, estimated cost).

Implementations: ``OpenAILogprobJudge`` (trait and EM judges over any OpenAI-compatible server) and
``FunctionJudge`` (a function per completion: ``LanguageJudge`` with pycld2, the organism's
``OrganismJudge``). ``inoc.judges.factory`` builds them by kind.
"""

from __future__ import annotations

import abc
import asyncio
import math
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``progress(done, total)``: called as items finish (cache hits count as done at once).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class JudgeItem:
    """One thing to score: the trait, the user instruction (None: not shown to the judge), the answer.

    For the EM judges ``instruction`` is the question and ``trait`` is informational.
    """

    trait: str
    instruction: str | None
    completion: str


@dataclass
class JudgeResult:
    """Scores aligned with the items, plus run statistics.

    ``n_api_calls`` counts HTTP requests (every attempt, retries included); ``n_retries`` the attempts
    after a first one; ``n_failed`` items that are NaN because every attempt failed; ``n_invalid``
    items that are NaN because the judge's answer had no valid score token or too little valid mass;
    ``n_deduplicated`` items that shared an identical request within the batch. ``estimated_cost_usd``
    is None when the model has no known price.
    """

    scores: list[float]
    judge: str = ""
    model: str | None = None
    n_cache_hits: int = 0
    n_api_calls: int = 0
    n_retries: int = 0
    n_failed: int = 0
    n_invalid: int = 0
    n_deduplicated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None
    wall_s: float = 0.0
    errors: Counter = field(default_factory=Counter)

    @property
    def n_items(self) -> int:
        return len(self.scores)

    @property
    def n_nan(self) -> int:
        return sum(1 for s in self.scores if math.isnan(s))

    @property
    def nan_fraction(self) -> float:
        return self.n_nan / self.n_items if self.scores else 0.0

    @property
    def mean(self) -> float:
        """Mean of the non-NaN scores (NaN when there is none)."""
        valid = [s for s in self.scores if not math.isnan(s)]
        return math.fsum(valid) / len(valid) if valid else math.nan

    def metadata(self) -> dict[str, Any]:
        """Flat JSON-safe statistics for Dagster materialization metadata (never holds a secret)."""
        meta: dict[str, Any] = {
            "judge": self.judge,
            "n_items": self.n_items,
            "n_nan": self.n_nan,
            "nan_fraction": round(self.nan_fraction, 6),
            "n_cache_hits": self.n_cache_hits,
            "n_api_calls": self.n_api_calls,
            "n_retries": self.n_retries,
            "n_failed": self.n_failed,
            "n_invalid": self.n_invalid,
            "n_deduplicated": self.n_deduplicated,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
        }
        if self.model is not None:
            meta["model"] = self.model
        if self.estimated_cost_usd is not None:
            meta["estimated_cost_usd"] = round(self.estimated_cost_usd, 6)
        if self.errors:
            meta["errors"] = dict(sorted(self.errors.items()))
        return meta


class Judge(abc.ABC):
    """Scores (trait, instruction, completion) items. Subclasses implement ``ascore``."""

    #: A short label for logs and metadata, e.g. ``llm:gpt-4.1-mini`` or ``language:fr``.
    name: str = "judge"

    @abc.abstractmethod
    async def ascore(self, items: Sequence[JudgeItem], progress: ProgressCallback | None = None) -> JudgeResult:
        """Score the items (async); the result's scores are in item order."""

    def score(self, items: Sequence[JudgeItem], progress: ProgressCallback | None = None) -> JudgeResult:
        """Score the items from synchronous code (a Dagster asset): runs ``ascore`` to completion."""
        return run_sync(self.ascore(list(items), progress))


def run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code, also when the caller's thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="inoc-judge", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
