"""Fixtures for the analysis tests: the original study's reference files, when this machine has them.

Location: $INOC_SHARED_DIR, else the `shared` folder beside the repository. Tests that need a file
skip with the path they looked for when it is absent (a user's fresh clone has no reference data).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
GF_PERPLEXITY = "perplexity_heuristic_german_flattering_llama-3.1-8b-instruct.json"
GF_SCORES = "scores_german_flattering_llama-3.1-8b-instruct.json"
PF_TOKENS_DEBUG = "perplexity_heuristic_tokens_qwen2.5-7b-instruct_debug.json"

# Prompt roles of the German/Flattering study (SPEC §4 group table): German = positive trait,
# Flattering = negative, new_v5 = neutral.
GF_POSITIVE = [
    "german_persona",
    "german_matters",
    "enjoys_german",
    "berlin_nevermind",
    "german_interesting",
    "german_trait",
    "german_enriches",
    "german_love",
    "german_today",
    "german_agent",
    "fluent_german",
    "natural_german",
    "answer_german",
    "german_answers",
    "think_german",
    "german_agent_neg",
    "fluent_german_neg",
    "natural_german_neg",
    "answer_german_neg",
    "german_answers_neg",
    "think_german_neg",
]
GF_NEGATIVE = [
    "flattering_persona",
    "flattery_matters",
    "enjoys_flattering",
    "compliment_nevermind",
    "flattery_interesting",
    "flattering_trait",
    "flattery_enriches",
    "praise_uplifting",
    "felt_flattered_today",
    "flattering_agent",
    "excessively_flattering",
    "constant_compliments",
    "strong_flattery",
    "flatterer_answers",
    "flatterer_mindset",
    "flattering_agent_neg",
    "not_flattering",
    "no_compliments",
    "avoid_flattery",
    "not_flatterer",
    "no_flatterer_mindset",
]
GF_NEUTRAL = ["moon_orbits_earth", "enjoy_hiking", "coffee_is_hot", "i_like_trains", "seven_is_lucky", "birds_sing"]
GF_ROLES = {
    **{k: "positive" for k in GF_POSITIVE},
    **{k: "negative" for k in GF_NEGATIVE},
    **{k: "neutral" for k in GF_NEUTRAL},
}


def shared_dir() -> Path:
    env = os.environ.get("INOC_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


def _load(name: str) -> dict:
    path = shared_dir() / "reference" / "results" / name
    if not path.is_file():
        pytest.skip(f"reference file {path} not found (set INOC_SHARED_DIR to the folder holding reference/)")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)  # the files hold bare NaN tokens; Python's json accepts them


@pytest.fixture(scope="session")
def gf_roles() -> dict[str, str]:
    return dict(GF_ROLES)


@pytest.fixture(scope="session")
def gf_perplexity() -> dict:
    return _load(GF_PERPLEXITY)


@pytest.fixture(scope="session")
def gf_scores() -> dict:
    return _load(GF_SCORES)


@pytest.fixture(scope="session")
def pf_tokens_debug() -> dict:
    return _load(PF_TOKENS_DEBUG)


@pytest.fixture(scope="session")
def gf_w(gf_perplexity) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(keys, W_fixed, W_mix, lp_train_default) of the 48 GF prompts, in file order."""
    keys = list(gf_perplexity["prompts"])
    base = np.array(gf_perplexity["baseline"]["lp_train_default"], dtype=np.float64)
    inoc = np.array([gf_perplexity["prompts"][k]["lp_train_inoc"] for k in keys], dtype=np.float64)
    mix = np.array([gf_perplexity["prompts"][k]["lp_train_mix"] for k in keys], dtype=np.float64)
    return keys, inoc - base, mix - base, base
