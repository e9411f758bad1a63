"""The tables of `<experiment>/prompt_geometry`, from the experiment's logprob vectors and tokens, elicitation,
text heuristics and suppression (docs/methods.md#w-matrices onwards)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from inoc.analysis.angle_questions import angle_question_tables
from inoc.config import ExperimentConfig
from inoc.heuristics.fixed_vs_mix import gap_tables
from inoc.tables.prompt_tables import (
    TokenSource,
    WMatrix,
    angle_tables,
    catalogue_tables,
    correlation_rows,
    decomposition_tables,
    fixed_vs_mix_rows,
    heuristics_table,
    point_matrices,
    prompt_roles,
    token_matrices,
)

#: The warehouse tables prompt_geometry owns (its experiment's rows), in the order they are built.
TABLES = (
    "prompt_heuristics",
    "pca_variance",
    "prompt_coords",
    "prompt_angles",
    "angle_groups",
    "fixed_vs_mix_heuristics",
    "pca_correlations",
    "heuristic_availability",
    "fixed_vs_mix_rank1",
    "fixed_vs_mix_gap",
    "fixed_vs_mix_gap_correlations",
    "prompt_angle_predictors",
    "angle_questions",
)


@dataclass
class Geometry:
    matrices: list[WMatrix]
    tables: dict[str, pd.DataFrame]  # TABLES → the experiment's rows (with an `experiment` column)


def prompt_geometry_tables(
    cfg: ExperimentConfig,
    vectors: pd.DataFrame,
    tokens: pd.DataFrame | TokenSource,
    elicitation: pd.DataFrame,
    text_heuristics: pd.DataFrame | None,
    suppression: pd.DataFrame,
) -> Geometry:
    """Every W matrix (point-wise and token level), its decompositions and angles, the prompt heuristics
    (W-based, text ones folded in, the registry's catalogue) with the reason for each one a prompt lacks,
    the fixed-vs-mix tables (Exp 20) and the angle questions (Exp 19)."""
    experiment = cfg.name
    matrices = point_matrices(cfg, vectors) + token_matrices(cfg, tokens)
    pca_variance, prompt_coords = decomposition_tables(experiment, matrices)
    pairs, groups = angle_tables(cfg, matrices)
    heur = heuristics_table(cfg, vectors, matrices, elicitation)
    if text_heuristics is not None:  # self-perplexity and embeddings (computed experiments)
        text = text_heuristics[text_heuristics.prompt_key.isin(cfg.prompt_keys)]
        heur = pd.concat([heur, text[heur.columns]], ignore_index=True)
    catalogue, availability = catalogue_tables(cfg, vectors, matrices, tokens, heur)  # H3, H4, H11–HB6, …
    heur = pd.concat([heur, catalogue], ignore_index=True)
    rank1, gap, gap_corr = gap_tables(cfg, matrices, suppression)
    angle_pred, angle_q = angle_question_tables(experiment, prompt_roles(cfg), matrices, suppression)
    built = (
        heur,
        pca_variance,
        prompt_coords,
        pairs,
        groups,
        fixed_vs_mix_rows(experiment, matrices),
        correlation_rows(experiment, prompt_coords, heur),
        availability,
        rank1,
        gap,
        gap_corr,
        angle_pred,
        angle_q,
    )
    return Geometry(matrices, dict(zip(TABLES, built, strict=True)))
