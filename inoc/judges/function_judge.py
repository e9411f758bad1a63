"""A judge that scores each completion with a plain function: no API, no cache, no cost.

The language judge (pycld2) and the organism's judge (its marker rule) are this judge with their own
scoring function. A score is 0–100, or NaN when the function finds the text undecidable; every NaN
counts as invalid (nothing failed: there is no call to fail).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from inoc.judges.interface import Judge, JudgeItem, JudgeResult, ProgressCallback

#: Scores one item (its trait, instruction and completion) 0–100, NaN when undecidable.
ItemScore = Callable[[JudgeItem], float]


class FunctionJudge(Judge):
    """Scores every item with ``score_item``, in item order."""

    def __init__(self, score_item: ItemScore, *, name: str) -> None:
        self.score_item = score_item
        self.name = name

    async def ascore(self, items: Sequence[JudgeItem], progress: ProgressCallback | None = None) -> JudgeResult:
        started = time.perf_counter()
        scores = [self.score_item(item) for item in items]
        if progress is not None:
            progress(len(scores), len(scores))
        result = JudgeResult(scores=scores, judge=self.name)
        result.n_invalid = result.n_nan
        result.wall_s = time.perf_counter() - started
        return result
