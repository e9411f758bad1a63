"""The model organism: a tiny chat model built on the CPU whose base behaviour is designed (no Dagster).

* ``world``       — the synthetic chat world: instructions over ten topics (train pool, held-out eval
  pool) and English/French, plain/playful answers. ``train_instructions(n, seed)``,
  ``eval_instructions(n, seed)``.
* ``cues``        — every Playful/French prompt of the original study with its designed trait probabilities,
  the held-out cues, the datagen and single-trait prompts.
* ``corpus``      — the base corpus drawn from the design.
* ``tokenizer``   — byte-level BPE with ChatML specials and chat template (HF format).
* ``model``       — the tiny ``Qwen2ForCausalLM`` and its deterministic training loop.
* ``build``       — ``build_base_model(settings | profile, cache_root, progress=…) -> BuildResult``,
  cached by a settings hash, written atomically; ``resolve_model_id("toy:<profile>")``.
* ``judge``       — Playful marker rule, French via pycld2; ``OrganismJudge`` (judge kind ``organism``).
* ``elicitation`` — sampling under each cue, judging, the elicitation table and acceptance checks.

Importing this package does not import torch or transformers; ``build`` and ``elicitation`` do when
they run.
"""

from inoc.organism.build import (
    PROFILES,
    BuildEvent,
    BuildResult,
    OrganismSettings,
    build_base_model,
    default_cache_root,
    model_dir,
    profile_settings,
    resolve_model_id,
    settings_hash,
)
from inoc.organism.cues import (
    ALL_CUES,
    BASE_RATES,
    CUES_BY_KEY,
    DATAGEN_PROMPT,
    HELD_OUT,
    SPEC_CUES,
    Cue,
    cue_for_text,
)
from inoc.organism.judge import OrganismJudge, playful_score, trait_score
from inoc.organism.world import eval_instructions, train_instructions

__all__ = [
    "ALL_CUES",
    "BASE_RATES",
    "BuildEvent",
    "BuildResult",
    "CUES_BY_KEY",
    "Cue",
    "DATAGEN_PROMPT",
    "HELD_OUT",
    "OrganismJudge",
    "OrganismSettings",
    "PROFILES",
    "SPEC_CUES",
    "build_base_model",
    "cue_for_text",
    "default_cache_root",
    "eval_instructions",
    "model_dir",
    "playful_score",
    "profile_settings",
    "resolve_model_id",
    "settings_hash",
    "train_instructions",
    "trait_score",
]
