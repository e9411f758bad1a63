"""The Dagster-free side of `inoc propose`: candidate generation, YAML edits, acquisition rules, scoped digests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from inoc.config import ConfigError, load_experiment, parse_experiment
from inoc.config.digest import config_digest, prompt_identity, stage_digest
from inoc.propose import yaml_edit
from inoc.propose.acquisition import RULES, select
from inoc.propose.generate import ProposeError, next_round, propose, seeds, trait_group

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy_yaml(tmp_path) -> Path:
    for name in ("toy.yaml", "toy_propose.yaml"):
        (tmp_path / name).write_text((REPO / "experiments" / name).read_text())
    return tmp_path / "toy_propose.yaml"


def test_candidates_are_new_distinct_paraphrases_spread_over_the_seeds(toy_yaml):
    cfg = load_experiment(toy_yaml)
    cands = propose(cfg, "Playful", 30, 1)
    assert len(cands) == 30 and len({c.text for c in cands}) == 30 and len({c.key for c in cands}) == 30
    existing = {t.lower() for t in cfg.prompts.values()}
    assert not any(c.text.lower() in existing for c in cands)
    # round-robin: the 15 seeds of the organism's Playful vocabulary (strong to weak) each give two
    assert len({c.seed for c in cands}) == len(seeds(cfg, "Playful")) == 15
    assert not any("not" in s.split() for s in seeds(cfg, "Playful"))  # negations elicit the opposite
    assert [c.text for c in propose(cfg, "Playful", 30, 1)] == [c.text for c in cands]  # deterministic
    assert cands[0].key == "playful_cand1_01"


def test_unknown_trait_and_bad_counts_are_refused(toy_yaml):
    cfg = load_experiment(toy_yaml)
    with pytest.raises(ProposeError, match="no trait 'Sarcastic'.*French, Playful"):
        trait_group(cfg, "Sarcastic")
    with pytest.raises(ProposeError, match="at least 1"):
        propose(cfg, "Playful", 0, 1)
    with pytest.raises(ProposeError, match="only .* distinct new candidates"):
        propose(cfg, "Playful", 10, 1, paraphrase=lambda text, n: [text])  # a source that only echoes


def test_adding_candidates_keeps_comments_plans_no_run_and_keeps_stage_digests(toy_yaml):
    before = load_experiment(toy_yaml)
    cands = propose(before, "Playful", 4, next_round(before, "playful"))
    role, family, group = trait_group(before, "Playful")
    text = yaml_edit.add_candidates(toy_yaml, group, role, family, {c.key: c.text for c in cands})
    assert "# Predict before training, in miniature" in text  # the file's own comments survive
    after = yaml_edit.write(toy_yaml, text)
    assert after.candidates == [c.key for c in cands]
    assert set(after.prompt_keys) >= set(after.candidates)
    assert not [p for p, _ in after.run_partition_keys() if p in after.candidates]
    assert stage_digest(after) == stage_digest(before)  # finished partitions stay fresh
    assert config_digest(after) != config_digest(before)  # the aggregates (which read every prompt) do not
    assert all(prompt_identity(after, k) == prompt_identity(before, k) for k in before.prompts)
    assert next_round(after, "playful") == 2

    # promote two: they leave `candidates:` and get their runs; the diff shows just that
    chosen = after.candidates[:2]
    new = yaml_edit.promote(toy_yaml, chosen)
    d = yaml_edit.diff(toy_yaml, new)
    assert [ln for ln in d.splitlines() if ln.startswith("-") and not ln.startswith("---")] == [
        f"-  - {k}" for k in chosen
    ]
    promoted = yaml_edit.write(toy_yaml, new)
    assert {p for p, _ in promoted.run_partition_keys()} >= set(chosen)
    assert promoted.candidates == after.candidates[2:]
    assert stage_digest(promoted) == stage_digest(before)
    with pytest.raises(ProposeError, match="are not candidates"):
        yaml_edit.promote(toy_yaml, chosen)


def test_editing_one_prompt_changes_only_its_identity(toy_yaml):
    cfg = load_experiment(toy_yaml)
    text = toy_yaml.read_text().replace('"You are a clown."', '"You are a circus clown."')
    edited = parse_experiment(text, str(toy_yaml))
    changed = [k for k in cfg.prompts if prompt_identity(cfg, k) != prompt_identity(edited, k)]
    assert changed == ["clown_persona"] and stage_digest(edited) == stage_digest(cfg)
    text = toy_yaml.read_text().replace("n_train: 600", "n_train: 500")
    assert stage_digest(parse_experiment(text, str(toy_yaml))) != stage_digest(cfg)


def test_a_candidate_cannot_be_planned_for_a_run(toy_yaml):
    text = toy_yaml.read_text() + "candidates: [clown_persona]\n"
    assert "clown_persona" not in [p for p, _ in parse_experiment(text, str(toy_yaml)).run_partition_keys()]
    bad = text.replace("runs: {mix_prompts: all}", "runs: {mix_prompts: all, prompts: [clown_persona, had_fun_today]}")
    with pytest.raises(ConfigError, match=r"runs.prompts: \['clown_persona'\] are candidates"):
        parse_experiment(bad, str(toy_yaml))
    with pytest.raises(ConfigError, match=r"candidates\[0\]: 'nope' is not a key of `prompts`"):
        parse_experiment(toy_yaml.read_text() + "candidates: [nope]\n", str(toy_yaml))


def test_an_invalid_edit_never_reaches_the_file(toy_yaml):
    original = toy_yaml.read_text()
    with pytest.raises(ConfigError):
        yaml_edit.write(toy_yaml, original + "candidates: [nope]\n")
    assert toy_yaml.read_text() == original
    assert not list(toy_yaml.parent.glob(".*.tmp"))


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt_key": list("abcdef"),
            "prediction_fixed": [50.0, 40.0, 30.0, 20.0, 10.0, float("nan")],
            "lo_fixed": [45.0, 10.0, 25.0, 0.0, 5.0, float("nan")],
            "hi_fixed": [55.0, 70.0, 35.0, 60.0, 15.0, float("nan")],
        }
    )


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("greedy", ["a", "b"]),
        ("ucb", ["b", "d"]),
        ("explore", ["b", "d"]),
        ("extremes", ["a", "e"]),
        ("mixed", ["a", "b"]),
    ],
)
def test_acquisition_rules_pick_what_they_say(rule, expected):
    assert select(_table(), 2, rule) == expected
    assert rule in RULES


def test_acquisition_refuses_impossible_requests():
    with pytest.raises(ProposeError, match="expected 1 to 5"):
        select(_table(), 6, "greedy")  # f has no prediction: never picked
    with pytest.raises(ProposeError, match="no mix predictions"):
        select(_table(), 1, "greedy", "mix")
    with pytest.raises(ProposeError, match="--rule 'best'"):
        select(_table(), 1, "best")
