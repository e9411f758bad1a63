"""The organism's acceptance checks, computed from warehouse rows the test writes (real Warehouse)."""

import numpy as np
import pandas as pd
import pytest

from inoc.config import load_experiment
from inoc.organism.study import study_checks
from inoc.settings import REPO_ROOT
from warehouse import Warehouse, replace_rows

TOY = load_experiment(REPO_ROOT / "experiments" / "toy.yaml")
N = 20


def _scores(run: str, step: int, condition: str, french: float, playful: float) -> pd.DataFrame:
    rows = []
    for trait, mean in (("French", french), ("Playful", playful)):
        rows.append(
            pd.DataFrame(
                {
                    "run": run,
                    "step": step,
                    "condition": condition,
                    "trait": trait,
                    "instruction_idx": np.arange(N),
                    "score": np.full(N, mean),
                }
            )
        )
    return pd.concat(rows)


def _study(tmp_path, playful_default: dict[str, float], mix_default: float, ph: dict[str, float]) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    scores = [_scores("no_inoculation", 0, "default", 2, 5), _scores("no_inoculation", 50, "default", 95, 96)]
    runs = [{"run": "no_inoculation", "batch": "main", "prompt_key": None, "prefix_type": None}]
    supp = []
    for key in TOY.prompt_keys:
        scores.append(_scores(f"{key}/fixed", 50, "default", 50, playful_default[key]))
        scores.append(_scores(f"{key}/fixed", 50, "training", 90, 97))
        runs.append({"run": f"{key}/fixed", "batch": "main", "prompt_key": key, "prefix_type": "fixed"})
    scores.append(_scores("whimsical/mix", 50, "default", 50, mix_default))
    runs.append({"run": "whimsical/mix", "batch": "main", "prompt_key": "whimsical", "prefix_type": "mix"})
    from inoc.tables.suppression import suppression_table

    all_scores = pd.concat(scores, ignore_index=True)
    supp = suppression_table(TOY, pd.DataFrame(runs), all_scores)
    elic = pd.DataFrame(
        {
            "prompt_key": "neutral",
            "trait": ["French"] * N + ["Playful"] * N,
            "instruction_idx": list(range(N)) * 2,
            "score": [2.0] * N + [5.0] * N,
        }
    )
    heur = pd.DataFrame({"prompt_key": list(ph), "prefix_type": "fixed", "heuristic": "ph", "value": list(ph.values())})
    with wh.writer() as conn:
        replace_rows(conn, "trait_scores", all_scores, {"experiment": "toy"})
        replace_rows(conn, "runs", pd.DataFrame(runs).assign(learning_rate=1e-3, n_steps=50), {"experiment": "toy"})
        replace_rows(conn, "suppression", supp.drop(columns="experiment"), {"experiment": "toy"})
        replace_rows(conn, "elicitation_scores", elic, {"experiment": "toy"})
        replace_rows(conn, "prompt_heuristics", heur, {"experiment": "toy"})
    return wh


def test_checks_pass_on_a_study_with_the_designed_outcome(tmp_path):
    playful = dict(zip(TOY.prompt_keys, [8, 5, 12, 30, 60, 70, 80, 20]))  # strong ... negated, French
    ph = dict(zip(TOY.prompt_keys, [0.05, 0.06, 0.04, 0.03, 0.02, 0.0, -0.03, 0.05]))
    checks = study_checks(TOY, _study(tmp_path, playful, mix_default=50, ph=ph))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    names = [c.name for c in checks]
    assert any(n.startswith("PH orders") for n in names) and any("mix suppresses" in n for n in names)


def test_checks_fail_when_the_outcome_is_not_there(tmp_path):
    playful = dict.fromkeys(TOY.prompt_keys, 90.0)  # nothing suppresses
    ph = dict(zip(TOY.prompt_keys, np.linspace(0.1, -0.1, len(TOY.prompt_keys))))
    checks = study_checks(TOY, _study(tmp_path, playful, mix_default=10, ph=ph))
    failed = {c.name for c in checks if c.passed is False}
    assert any(n.startswith("corrected_inoculation fixed cuts") for n in failed)
    assert any(n.startswith("whimsical: mix suppresses") for n in failed)
    ph_check = next(c for c in checks if c.name.startswith("PH orders"))
    assert ph_check.passed in (False, None) and "over 8 prompts" in ph_check.detail
    assert next(c for c in checks if c.name.startswith("control leaks")).passed is True


@pytest.mark.parametrize("n_prompts", [3])
def test_ph_check_is_not_applicable_below_six_prompts(tmp_path, n_prompts):
    import shutil

    shutil.copy(REPO_ROOT / "experiments" / "toy.yaml", tmp_path / "toy.yaml")
    (tmp_path / "small.yaml").write_text(
        "extends: toy\nreplace: [prompts, groups]\nruns: {mix_prompts: all}\n"
        'prompts: {a: "I had fun today.", b: "You are a clown.", c: "The sky is blue."}\n'
        "groups: {g: {role: negative, family: playful, prompts: [a, b]}, n: {role: neutral, family: neutral, prompts: [c]}}\n"
    )
    cfg = load_experiment(tmp_path / "small.yaml")
    wh = Warehouse(tmp_path / "wh.duckdb")
    heur = pd.DataFrame(
        {"prompt_key": ["a", "b", "c"], "prefix_type": "fixed", "heuristic": "ph", "value": [0.1, 0.2, 0.0]}
    )
    supp = pd.DataFrame(
        {
            "prompt_key": ["a", "b", "c"],
            "prompt_group": ["g", "g", "n"],
            "prefix_type": "fixed",
            "trait": "Playful",
            "trait_role": "negative",
            "target": ["trait", "trait", None],
            "control_run": "no_inoculation",
            "run": ["a/fixed", "b/fixed", "c/fixed"],
            "step": 50,
            "n": N,
            "control_score": 90.0,
            "run_score": [50.0, 30.0, 80.0],
            "suppression": [40.0, 60.0, 10.0],
            "ci_lo": 0.0,
            "ci_hi": 1.0,
        }
    )
    with wh.writer() as conn:
        replace_rows(conn, "prompt_heuristics", heur, {"experiment": "small"})
        replace_rows(conn, "suppression", supp, {"experiment": "small"})
    ph_check = next(c for c in study_checks(cfg, wh) if c.name.startswith("PH orders"))
    assert ph_check.passed is None and "over 3 prompts" in ph_check.detail
