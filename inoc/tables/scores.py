"""Judge-score tables: `trait_scores` and `em_scores` rows of a run, `elicitation_scores` rows of a batch of prompts
(docs/methods.md#run-score, #em-rate, #elicitation).

``done`` is a generate job's completions (each with its request's ``meta``); ``judged`` maps a trait to an
object whose ``scores`` are one per completion, NaN where the judge could not score (never 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import pandas as pd

from inoc.config import ExperimentConfig


class Scored(Protocol):
    scores: Sequence[float]


def run_score_rows(done: list[dict], judged: Mapping[str, Scored]) -> pd.DataFrame:
    """One row per (completion, trait): step, condition, trait, instruction_idx, score, eval_set."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "step": [c["meta"]["step"] for c in done],
                    "condition": [c["meta"]["condition"] for c in done],
                    "trait": trait,
                    "instruction_idx": [c["meta"]["idx"] for c in done],
                    "score": j.scores,
                    "eval_set": [c["meta"]["eval_set"] for c in done],
                }
            )
            for trait, j in judged.items()
        ],
        ignore_index=True,
    )


def em_traits(cfg: ExperimentConfig) -> dict[str, str]:
    """EM judge kind (em_coherence, em_alignment) → the trait it scores."""
    return {t.judge.kind: t.name for t in cfg.traits if t.judge and t.judge.kind.startswith("em_")}


def trait_score_rows(cfg: ExperimentConfig, table: pd.DataFrame) -> pd.DataFrame:
    """The `trait_scores` rows: the held-out set (the one suppression compares), the EM metrics left out."""
    held_out = table.eval_set == cfg.data.held_out_set
    return table[held_out & ~table.trait.isin(em_traits(cfg).values())].drop(columns="eval_set")


def em_rows(cfg: ExperimentConfig, table: pd.DataFrame) -> pd.DataFrame | None:
    """Coherence and alignment side by side per completion of every eval set → `em_scores`; None unless the
    study judges both (the EM study)."""
    traits = em_traits(cfg)
    if not {"em_coherence", "em_alignment"} <= set(traits):
        return None
    keys = ["step", "eval_set", "condition", "instruction_idx"]
    coh = table[table.trait == traits["em_coherence"]].set_index(keys).score.rename("coherence")
    ali = table[table.trait == traits["em_alignment"]].set_index(keys).score.rename("alignment")
    rows = pd.concat([coh, ali], axis=1).reset_index()
    return rows.assign(coherence_threshold=cfg.em_rate.coherence_above, alignment_threshold=cfg.em_rate.alignment_below)


def final_step_means(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Mean score by (step, condition) × trait, rounded to 0.1, and the final step."""
    summary = table.groupby(["step", "condition", "trait"]).score.mean().round(1).unstack("trait")
    return summary, int(summary.index.get_level_values("step").max())


def elicitation_rows(done: list[dict], judged: Mapping[str, Scored]) -> pd.DataFrame:
    """One row per (completion, trait): prompt_key, trait, instruction_idx, score."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "prompt_key": [c["meta"]["prompt_key"] for c in done],
                    "trait": trait,
                    "instruction_idx": [c["meta"]["idx"] for c in done],
                    "score": j.scores,
                }
            )
            for trait, j in judged.items()
        ],
        ignore_index=True,
    )
