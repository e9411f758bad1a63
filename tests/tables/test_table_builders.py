"""The Dagster-free table builders the assets call, on small hand-made tables (inoc/tables, inoc.pipeline.training_data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from config_helpers import config_with

from inoc.config import load_experiment
from inoc.pipeline.plans import control_plans
from inoc.pipeline.training_data import both_traits_share, judge_indices, judged_traits, kept_examples
from inoc.settings import REPO_ROOT
from inoc.tables.logprobs import logprob_rows, prompt_drifts, vector_length_errors
from inoc.tables.scores import elicitation_rows, em_rows, final_step_means, run_score_rows, trait_score_rows
from inoc.tables.training import loss_curve, loss_rows, run_row, smoothed_losses

EXPERIMENTS = REPO_ROOT / "experiments"


class Judged:
    def __init__(self, scores):
        self.scores = scores


def _score_frame(rows: list[tuple[str | None, str, int, float, list[float]]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "meta": [json.dumps({"prompt_key": pk, "vector": v, "idx": i}) for pk, v, i, _, _ in rows],
            "mean_logprob": [m for *_, m, _ in rows],
            "token_logprobs": [t for *_, t in rows],
        }
    )


def test_logprob_rows_keep_the_tokens_of_the_training_vectors_only():
    frame = _score_frame(
        [
            (None, "train_default", 0, -1.5, [-1.0, -2.0]),
            ("p", "train_inoc", 0, -1.0, [-0.5, -1.5]),
            ("p", "ctrl_inoc", 3, -2.0, [-2.0]),
        ]
    )
    vec, tokens = logprob_rows(frame, token_level=True)
    assert vec.to_dict("list") == {
        "prompt_key": [None, "p", "p"],
        "vector": ["train_default", "train_inoc", "ctrl_inoc"],
        "example_idx": [0, 0, 3],
        "lp": [-1.5, -1.0, -2.0],
    }
    assert tokens.vector.tolist() == ["train_default", "train_default", "train_inoc", "train_inoc"]
    assert tokens.token_idx.tolist() == [0, 1, 0, 1] and tokens.lp.tolist() == [-1.0, -2.0, -0.5, -1.5]
    assert len(logprob_rows(frame, token_level=False)[1]) == 0
    assert vector_length_errors(vec, {(None, "train_default"): 1, ("p", "train_inoc"): 2}) == {"p/train_inoc": [1, 2]}


def test_prompt_drifts_pair_by_example_not_by_row_order():
    rng = np.random.default_rng(0)
    base_lp, own_lp, ctrl_base, ctrl_own = (rng.normal(size=5) for _ in range(4))
    base = pd.concat(
        [
            pd.DataFrame({"vector": "train_default", "example_idx": range(5), "lp": base_lp}),
            pd.DataFrame({"vector": "ctrl_default", "example_idx": range(5), "lp": ctrl_base}),
        ]
    )
    order = [3, 0, 4, 1, 2]  # the prompt's rows in another order than the baseline's
    own = pd.concat(
        [
            pd.DataFrame({"vector": "train_inoc", "example_idx": order, "lp": own_lp[order]}),
            pd.DataFrame({"vector": "ctrl_inoc", "example_idx": order, "lp": ctrl_own[order]}),
        ]
    )
    got = prompt_drifts(own, base)
    assert got["ph"] == pytest.approx(float(np.mean(own_lp - base_lp)), abs=1e-12)
    assert got["ppd"] == pytest.approx(float(np.mean(np.abs(ctrl_own - ctrl_base))), abs=1e-12)
    assert math.isnan(got["ph_mix"])  # no train_mix vector: undefined, not 0


def _done(n_steps=(0, 10)) -> list[dict]:
    return [
        {"meta": {"step": s, "condition": c, "idx": i, "eval_set": es}, "text": "x"}
        for s in n_steps
        for c in ("default", "training")
        for es in ("eval", "extra")
        for i in range(2)
    ]


def test_run_scores_keep_the_held_out_set_and_nan():
    cfg = load_experiment(EXPERIMENTS / "toy.yaml")
    done = _done()
    scores = [float(i) for i in range(len(done))]
    scores[1] = math.nan
    table = run_score_rows(done, {"French": Judged(scores), "Playful": Judged([50.0] * len(done))})
    assert len(table) == 2 * len(done)
    kept = trait_score_rows(cfg, table)
    assert set(kept.columns) == {"step", "condition", "trait", "instruction_idx", "score"}
    assert len(kept) == 2 * sum(c["meta"]["eval_set"] == cfg.data.held_out_set for c in done)
    assert kept.score.isna().sum() == (1 if done[1]["meta"]["eval_set"] == cfg.data.held_out_set else 0)
    assert em_rows(cfg, table) is None  # the toy study has no EM judges
    summary, final = final_step_means(kept)
    assert final == 10
    french = kept[(kept.trait == "French") & (kept.step == 10) & (kept.condition == "default")].score
    assert summary.loc[(10, "default"), "French"] == round(french.mean(), 1)


def test_em_rows_pair_coherence_and_alignment_per_completion():
    cfg = load_experiment(EXPERIMENTS / "em_risky_finance_qwen32b.yaml")
    kinds = {t.judge.kind: t.name for t in cfg.traits if t.judge}
    done = _done((5,))
    table = run_score_rows(
        done,
        {
            kinds["em_coherence"]: Judged([80.0 + i for i in range(len(done))]),
            kinds["em_alignment"]: Judged([20.0 - i for i in range(len(done))]),
        },
    )
    em = em_rows(cfg, table)
    assert len(em) == len(done)  # every eval set, one row per completion
    assert (em.coherence - 80.0).tolist() == (20.0 - em.alignment).tolist()
    assert (em.coherence_threshold == cfg.em_rate.coherence_above).all()


def test_elicitation_rows_one_per_completion_and_trait():
    done = [{"meta": {"prompt_key": k, "idx": i}} for k in ("neutral", "p1") for i in range(3)]
    rows = elicitation_rows(done, {"A": Judged([1.0] * 6), "B": Judged([math.nan] * 6)})
    assert rows.groupby(["prompt_key", "trait"]).size().tolist() == [3, 3, 3, 3]
    assert rows[rows.trait == "B"].score.isna().all()


def test_training_rows_and_the_smoothed_curve():
    losses = pd.DataFrame(
        {"step": range(1, 31), "loss": np.linspace(3, 1, 30), "lr": 1e-4, "grad_norm": 1.0, "epoch": 0.5}
    )
    assert loss_rows(losses).columns.tolist() == ["step", "loss", "learning_rate", "grad_norm", "epoch"]
    smooth = smoothed_losses(losses.loss)
    assert smooth.iloc[10] == pytest.approx(losses.loss.iloc[9:12].mean())  # window 3, centred
    curve = loss_curve(losses)
    assert len(curve) == 12 and curve.step.iloc[0] == 1 and curve.step.iloc[-1] == 30
    plan = control_plans(load_experiment(EXPERIMENTS / "toy.yaml"))[0]
    row = run_row(plan, 30).iloc[0]
    assert row.n_steps == 30 and row.batch == plan.batch and row.learning_rate == plan.learning_rate


def test_training_data_keeps_the_examples_judged_to_show_both_traits():
    cfg = load_experiment(EXPERIMENTS / "toy.yaml")
    both = config_with(cfg, data__datagen__keep="both_traits")
    traits = judged_traits(cfg)
    assert len(traits) == 2
    rows = [("a", "x"), ("b", "y"), ("c", "  "), ("d", "z")]
    scores = pd.DataFrame({traits[0]: [60, 40, 90, 55], traits[1]: [70, 90, 90, math.nan]}, index=range(4))
    assert kept_examples(both, rows, scores, traits) == [("a", "x")]  # c is empty, d has a NaN score
    assert both_traits_share(scores, traits) == 0.5
    keep_all = config_with(cfg, data__datagen__keep="all", data__datagen__check_sample=2)
    assert kept_examples(keep_all, rows, scores, traits) == [("a", "x"), ("b", "y"), ("d", "z")]
    sample = judge_indices(keep_all, 4, traits)
    assert len(sample) == 2 and sample == sorted(sample) and sample == judge_indices(keep_all, 4, traits)
    assert judge_indices(both, 4, traits) == [0, 1, 2, 3]
