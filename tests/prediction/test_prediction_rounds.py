"""The loop, closed: prior predictions (made while a prompt was untrained) against what training showed, by round."""

from __future__ import annotations

import numpy as np
import pandas as pd

from inoc.figure_checks import figure_problems
from inoc.prediction.rounds import model_rounds, new_history_rows, prior_predictions, round_summary, rounds_figure


def _preds(
    version: str, rows: list[tuple[str, float, float, float, float, bool]], scope: str = "experiment"
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "experiment": "e",
                "prompt_key": k,
                "prefix_type": "fixed",
                "trait": "Playful",
                "scope": scope,
                "model_version": version,
                "prediction": p,
                "lo": lo,
                "hi": hi,
                "coverage": 0.9,
                "observed": obs,
                "trained": t,
            }
            for k, p, lo, hi, obs, t in rows
        ]
    )


NAN = float("nan")
# round 1: seeds s1, s2 trained; candidates a, b, c untrained. Then a and b are trained; round 2 refits on them.
R1 = _preds(
    "v1",
    [
        ("s1", 30, 20, 40, 31, True),
        ("s2", 10, 0, 20, 9, True),
        ("a", 50, 30, 70, NAN, False),
        ("b", 5, -15, 25, NAN, False),
        ("c", 20, 0, 40, NAN, False),
    ],
)
R2 = _preds(
    "v2",
    [
        ("s1", 31, 25, 37, 31, True),
        ("s2", 9, 3, 15, 9, True),
        ("a", 45, 39, 51, 44, True),
        ("b", 6, 0, 12, 30, True),
        ("c", 22, 16, 28, NAN, False),
    ],
)


def _history() -> pd.DataFrame:
    h = new_history_rows(pd.DataFrame(), R1, pd.Timestamp("2026-12-01 10:00"))
    h = pd.concat([h, new_history_rows(h, R1, pd.Timestamp("2026-12-01 10:05"))])  # same model again: nothing new
    assert len(h) == len(R1)
    return pd.concat([h, new_history_rows(h, R2, pd.Timestamp("2026-12-01 11:00"))], ignore_index=True)


def test_each_trained_prompt_is_judged_by_its_prediction_before_training():
    history = _history()
    assert model_rounds(history).set_index("model_version")["round"].to_dict() == {"v1": 1, "v2": 2}
    prior = prior_predictions(history, R2).set_index("prompt_key")
    assert sorted(prior.index) == ["a", "b"]  # seeds were never predicted untrained; c is not trained yet
    assert prior.loc["a", "prediction"] == 50 and prior.loc["a", "round"] == 1  # v1's, not v2's in-sample 45
    assert prior.loc["a", "abs_error"] == 6 and prior.loc["a", "covered"]
    assert prior.loc["b", "abs_error"] == 25 and not prior.loc["b", "covered"]  # 30 is outside [-15, 25]

    summary = round_summary(history, prior_predictions(history, R2)).set_index("round")
    assert summary.loc[1, "mean_width"] == np.mean([40, 40, 40]) and summary.loc[2, "mean_width"] == 12
    assert summary.loc[1, "mean_abs_error"] == 15.5 and summary.loc[1, "coverage"] == 0.5
    assert np.isnan(summary.loc[2, "mean_abs_error"])  # round 2's predictions are not tested by a run yet


def test_the_study_model_is_preferred_to_the_pooled_one():
    pooled = _preds("p1", [("a", 10, 0, 20, NAN, False)], scope="pooled")
    h = new_history_rows(pd.DataFrame(), pd.concat([R1, pooled]), pd.Timestamp("2026-12-01 10:00"))
    prior = prior_predictions(h, R2).set_index("prompt_key")
    assert prior.loc["a", "scope"] == "experiment" and prior.loc["a", "prediction"] == 50


def test_the_rounds_figure_passes_the_figure_checks():
    history = _history()
    prior = prior_predictions(history, R2)
    fig = rounds_figure(prior, round_summary(history, prior), "e", "fixed")
    assert fig is not None and figure_problems(fig) == []
    assert rounds_figure(prior, round_summary(history, prior), "e", "mix") is None
