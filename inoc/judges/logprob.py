"""Expected-value scoring of a judge's first-token distribution (docs/methods.md#judge-score).

A pure function from the top-k alternatives of the first generated token to a score:

1. keep the alternatives whose text, stripped of whitespace, is an integer 0–100 written in ASCII
   digits only (``"50"``, ``" 50"``, ``"007"``); reject signs (``"+5"``), other digit scripts
   (``"٣"``, ``"３"``), decimals and anything else — unlike Python's ``int()``, which accepts them;
2. p(t) = exp(logprob); tokens naming the same integer add up (``"50"`` and ``" 50"``);
3. Z = Σ p over the valid tokens; no valid token → NaN (``no_valid_token``); Z below the minimum
   mass (default 0.80; exactly 0.80 is valid, with a 1e-12 tolerance for exp/log rounding) → NaN
   (``low_mass``);
4. score = Σ v·p(v) / Z, in [0, 100]. Never a sentinel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_MIN_VALID_MASS = 0.80
MASS_TOLERANCE = 1e-12

_ASCII_INT = re.compile(r"[0-9]{1,3}")

ScoreStatus = Literal["ok", "no_valid_token", "low_mass"]


@dataclass(frozen=True)
class ScoreOutcome:
    """The score (NaN unless ``status == "ok"``), the valid probability mass and why."""

    score: float
    valid_mass: float
    status: ScoreStatus

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_score_token(token: str) -> int | None:
    """The integer 0–100 a token names, or None (whitespace stripped; ASCII digits only)."""
    text = token.strip()
    if not _ASCII_INT.fullmatch(text):
        return None
    value = int(text)
    return value if 0 <= value <= 100 else None


def _token_and_logprob(entry: Any) -> tuple[str, float]:
    if isinstance(entry, Mapping):
        return entry["token"], entry["logprob"]
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return entry[0], entry[1]
    return entry.token, entry.logprob


def normalize_top_logprobs(top_logprobs: Iterable[Any]) -> list[tuple[str, float]]:
    """``[(token, logprob), …]`` from tuples, dicts or the openai client's ``TopLogprob`` objects.

    Raises ValueError when an entry has no string token or no real-number logprob (a malformed
    response, which the caller counts as a failed call).
    """
    out: list[tuple[str, float]] = []
    for entry in top_logprobs:
        try:
            token, logprob = _token_and_logprob(entry)
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"malformed top_logprobs entry {entry!r}") from exc
        if not isinstance(token, str):
            raise ValueError(f"top_logprobs token is not a string: {token!r}")
        if isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or math.isnan(logprob):
            raise ValueError(f"top_logprobs logprob is not a number: {logprob!r}")
        if logprob > 1e-6:
            raise ValueError(f"top_logprobs logprob {logprob!r} is positive (a probability above 1)")
        out.append((token, float(logprob)))
    return out


def expected_value(top_logprobs: Iterable[Any], min_valid_mass: float = DEFAULT_MIN_VALID_MASS) -> ScoreOutcome:
    """Expected value of the judge's first-token distribution over ASCII integers 0–100."""
    mass_by_value: dict[int, float] = {}
    for token, logprob in normalize_top_logprobs(top_logprobs):
        value = parse_score_token(token)
        if value is None:
            continue
        mass_by_value[value] = mass_by_value.get(value, 0.0) + math.exp(logprob)
    total = math.fsum(mass_by_value.values())
    if not mass_by_value or total <= 0.0:
        return ScoreOutcome(math.nan, total, "no_valid_token")
    if total < min_valid_mass - MASS_TOLERANCE:
        return ScoreOutcome(math.nan, total, "low_mass")
    score = math.fsum(v * p for v, p in mass_by_value.items()) / total
    return ScoreOutcome(min(100.0, max(0.0, score)), total, "ok")
