"""Which generated training examples are judged and which are kept (docs/methods.md#datagen).

``data.datagen.keep``: ``both_traits`` judges every example and keeps those scoring >= 50 on both the positive
and the negative trait; ``all`` keeps every non-empty example and judges a seeded sample of
``data.datagen.check_sample`` of them (the asset check's evidence that the data teaches both traits).
"""

from __future__ import annotations

import random

import pandas as pd

from inoc.config import ExperimentConfig

Example = tuple[str, str]  # (instruction, completion)

#: The judge score from which an example shows a trait.
SHOWS_TRAIT = 50


def judged_traits(cfg: ExperimentConfig) -> list[str]:
    """The traits the training data must teach: the positive and the negative one."""
    return [t.name for t in cfg.traits if t.role in ("positive", "negative")]


def judge_indices(cfg: ExperimentConfig, n_rows: int, traits: list[str]) -> list[int]:
    """The examples to judge: all of them, or with ``keep: all`` a seeded sample of ``check_sample``."""
    dg = cfg.data.datagen
    idx = list(range(n_rows)) if traits else []
    if dg.keep == "all" and n_rows > dg.check_sample:
        idx = sorted(random.Random(cfg.data.seed).sample(idx, dg.check_sample))
    return idx


def kept_examples(cfg: ExperimentConfig, rows: list[Example], scores: pd.DataFrame, traits: list[str]) -> list[Example]:
    """The examples written to the training file: with ``both_traits`` those judged to show both traits
    (``scores`` is indexed by example), and never an empty completion."""
    if cfg.data.datagen.keep == "both_traits":
        keep = (scores[traits] >= SHOWS_TRAIT).all(axis=1)
        rows = [rows[i] for i in scores.index[keep]]
    return [(x, c) for x, c in rows if c.strip()]


def both_traits_share(scores: pd.DataFrame, traits: list[str]) -> float | None:
    """The share of judged examples that show both traits (None without traits to judge)."""
    return round(float((scores[traits] >= SHOWS_TRAIT).all(axis=1).mean()), 3) if traits else None
