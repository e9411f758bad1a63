"""Judging completions for every trait of an experiment with the judges its config names.

A failed or undecidable judgement is NaN (never 0) and stays in the tables; callers count NaNs and
an asset check bounds their share (``judge.max_nan_fraction``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inoc.config import ExperimentConfig
from inoc.judges import JudgeItem
from inoc.judges.factory import judge_for_trait


@dataclass
class TraitJudgement:
    trait: str
    judge: str
    scores: list[float]
    n_nan: int
    n_failed: int
    n_api_calls: int
    n_cache_hits: int
    estimated_cost_usd: float | None

    def summary(self) -> dict:
        ok = [s for s in self.scores if not math.isnan(s)]
        return {
            "judge": self.judge,
            "n": len(self.scores),
            "mean": round(sum(ok) / len(ok), 2) if ok else None,
            "n_nan": self.n_nan,
            "n_failed": self.n_failed,
            "n_api_calls": self.n_api_calls,
            "n_cache_hits": self.n_cache_hits,
            "estimated_cost_usd": self.estimated_cost_usd,
        }


def judged_traits(cfg: ExperimentConfig):
    return [t for t in cfg.traits if t.judge is not None]


def judge_all(
    cfg: ExperimentConfig,
    instructions: Sequence[str | None],
    completions: Sequence[str],
    *,
    cache: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    traits: Sequence[str] | None = None,
) -> dict[str, TraitJudgement]:
    """Scores of every completion for every judged trait (or the named ``traits``), in order."""
    if len(instructions) != len(completions):
        raise ValueError(f"{len(instructions)} instructions for {len(completions)} completions")
    out = {}
    for trait in judged_traits(cfg):
        if traits is not None and trait.name not in traits:
            continue
        judge = judge_for_trait(trait, cfg.judge, cache=cache)
        items = [JudgeItem(trait.name, x, c) for x, c in zip(instructions, completions)]
        step = max(1, len(items) // 4)

        def progress(done: int, total: int, _t=trait.name, _step=step) -> None:
            if log and (done == total or done % _step == 0):
                log(f"judging {_t}: {done}/{total}")

        result = judge.score(items, progress=progress)
        scores = [float("nan") if s is None else float(s) for s in result.scores]
        out[trait.name] = TraitJudgement(
            trait.name,
            judge.name,
            scores,
            sum(math.isnan(s) for s in scores),
            result.n_failed,
            result.n_api_calls,
            result.n_cache_hits,
            result.estimated_cost_usd,
        )
    return out
