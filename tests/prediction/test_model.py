"""The suppression predictor on synthetic rows whose truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inoc.prediction.model import MIN_TRAIN, fit
from inoc.prediction.validation import beats_baseline, leave_one_prompt_out, leave_one_study_out, metrics


def synthetic(
    n: int, seed: int, slope: float = 10.0, noise: float = 2.0, experiment: str = "e", groups: int = 3
) -> pd.DataFrame:
    """Rows of one experiment: x1 carries the signal, x2 is noise; groups share no level (the baseline's best case is the mean)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame(
        {
            "experiment": experiment,
            "prompt_key": [f"{experiment}_p{i}" for i in range(n)],
            "prompt_group": [f"g{i % groups}" for i in range(n)],
            "prompt_family": "fam",
            "prefix_type": "fixed",
            "x1": x1,
            "x2": x2,
            "suppression": 40 + slope * x1 + rng.normal(scale=noise, size=n),
        }
    )


def test_linear_signal_beats_the_group_mean_out_of_sample():
    summary, held = leave_one_prompt_out(synthetic(30, 1), ["x1", "x2"])
    by = summary.set_index("model")
    assert by.loc["predictor", "n"] == by.loc["group_mean", "n"] == 30
    assert by.loc["predictor", "r2"] > 0.8 and by.loc["predictor", "spearman"] > 0.85
    assert by.loc["group_mean", "r2"] < 0.2
    assert beats_baseline(summary).beats_baseline.item()
    # The held-out rows are the training rows, each predicted once per model.
    assert sorted(held[held.model == "predictor"].prompt_key) == sorted(synthetic(30, 1).prompt_key)


def test_pure_noise_does_not_claim_to_beat_the_baseline():
    for seed in range(8):
        rows = synthetic(30, 100 + seed, slope=0.0)
        summary, _ = leave_one_prompt_out(rows, ["x1", "x2"])
        ridge = summary.set_index("model").loc["predictor"]
        assert ridge.r2 < 0.05, (seed, ridge.r2)
        assert not beats_baseline(summary).beats_baseline.item(), seed


def test_interval_coverage_is_near_nominal_over_many_draws():
    covered, total = 0, 0
    for seed in range(40):
        train = synthetic(25, seed)
        test = synthetic(40, 1000 + seed)
        p = fit(train, ["x1", "x2"], coverage=0.8)
        pred = p.predict(test)
        covered += int(((test.suppression >= pred.lo) & (test.suppression <= pred.hi)).sum())
        total += len(test)
    rate = covered / total
    # jackknife+ guarantees ≥ 1 − 2α; in practice it sits near 1 − α.
    assert 0.74 <= rate <= 0.9, rate


def test_intervals_contain_the_prediction_and_widen_with_noise():
    quiet = fit(synthetic(20, 3, noise=1.0), ["x1"]).predict(synthetic(10, 4))
    loud = fit(synthetic(20, 3, noise=8.0), ["x1"]).predict(synthetic(10, 4))
    assert ((quiet.lo <= quiet.prediction) & (quiet.prediction <= quiet.hi)).all()
    assert (loud.hi - loud.lo).mean() > 3 * (quiet.hi - quiet.lo).mean()


def test_too_few_rows_is_a_clear_error():
    rows = synthetic(MIN_TRAIN + 2, 5)
    rows.loc[rows.index[:3], "suppression"] = np.nan  # candidates without a run
    with pytest.raises(
        ValueError, match=rf"too few training rows: {MIN_TRAIN - 1} of {MIN_TRAIN + 2}.*need at least {MIN_TRAIN}"
    ):
        fit(rows, ["x1"])


def test_missing_feature_column_is_named():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ph_prefix'\]"):
        fit(synthetic(10, 6), ["x1", "ph_prefix"])
    p = fit(synthetic(10, 6), ["x1", "x2"])
    with pytest.raises(ValueError, match=r"rows to predict: missing column\(s\) \['x2'\]"):
        p.predict(synthetic(3, 7).drop(columns="x2"))


def test_rows_without_a_run_are_ignored_in_the_fit_and_predicted():
    rows = synthetic(12, 8)
    rows.loc[rows.index[-2:], "suppression"] = np.nan
    p = fit(rows, ["x1"])
    assert p.n_train == 10 and ("e", "e_p11") not in p.trained_on
    pred = p.predict(rows)
    assert pred.index.equals(rows.index) and pred.prediction.notna().all()
    rows.loc[rows.index[0], "x1"] = np.nan
    assert p.predict(rows).iloc[0][["prediction", "lo", "hi"]].isna().all()  # a NaN input predicts nothing, never 0


def test_version_is_stable_and_follows_the_data():
    a = fit(synthetic(15, 9), ["x1", "x2"])
    b = fit(synthetic(15, 9).sample(frac=1, random_state=0), ["x1", "x2"])  # same rows, other order
    assert a.version == b.version and len(a.version) == 16
    changed = synthetic(15, 9)
    changed.loc[3, "suppression"] += 1e-9
    assert fit(changed, ["x1", "x2"]).version != a.version
    assert fit(synthetic(15, 9), ["x1"]).version != a.version
    assert fit(synthetic(15, 9), ["x1", "x2"], coverage=0.8).version != a.version
    assert fit(synthetic(15, 9), ["x1", "x2"], kind="group_mean").version != a.version


def test_group_mean_baseline_uses_the_group_then_the_family_then_all():
    rows = pd.DataFrame(
        {
            "experiment": "e",
            "prompt_key": list("abcdef"),
            "prompt_group": ["g1", "g1", "g2", "g2", "g3", "g3"],
            "prompt_family": ["f1", "f1", "f1", "f1", "f2", "f2"],
            "suppression": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        }
    )
    p = fit(rows, [], kind="group_mean")
    new = pd.DataFrame(
        {"experiment": ["e", "e", "other"], "prompt_group": ["g2", "new", "g1"], "prompt_family": ["f1", "f1", "zz"]}
    )
    assert p.predict(new).prediction.tolist() == [35.0, 25.0, 35.0]  # group g2; family f1; another experiment's: all


def test_small_training_sets_clamp_the_jackknife_ranks():
    p = fit(synthetic(MIN_TRAIN, 10), ["x1"], coverage=0.9)
    assert p.rank_clamped  # ⌈0.9 (n + 1)⌉ > n: the interval spans all leave-one-out intervals
    pred = p.predict(synthetic(5, 11))
    assert np.isfinite(pred[["prediction", "lo", "hi"]].to_numpy(float)).all()
    assert not fit(synthetic(30, 10), ["x1"], coverage=0.9).rank_clamped


def test_leave_one_study_out_runs_both_directions():
    rows = pd.concat([synthetic(20, 12, experiment="a"), synthetic(8, 13, experiment="b")], ignore_index=True)
    summary, held = leave_one_study_out(rows, ["x1"])
    pairs = set(zip(summary.train_scope, summary.test_scope))
    assert pairs == {("a", "b"), ("b", "a")}
    assert summary.set_index(["train_scope", "model"]).loc[("a", "predictor"), "n"] == 8
    ab = summary[(summary.train_scope == "a") & (summary.model == "predictor")].iloc[0]
    assert ab.r2 > 0.7  # same slope in both studies: it transfers
    assert summary[summary.model == "group_mean"].spearman.isna().all()  # one constant per study: cannot rank


def test_metrics():
    m = metrics(
        np.array([1.0, 2.0, 3.0, np.nan]),
        np.array([1.0, 2.0, 4.0, 5.0]),
        np.array([0, 0, 0, 0.0]),
        np.array([2, 2, 2, 9.0]),
    )
    assert m["n"] == 3 and m["r2"] == pytest.approx(0.5) and m["spearman"] == pytest.approx(1.0)
    assert m["coverage"] == pytest.approx(2 / 3) and m["mean_width"] == pytest.approx(2.0)


def test_few_prompts_choose_the_feature_that_predicts():
    """Six training prompts on which a useless x2 tracks x1 (noisily): the nested choice by leave-one-out error
    keeps x1, alone in most draws, and never x2 alone."""
    chosen = []
    for seed in range(40):
        train = synthetic(6, seed, noise=1.0)
        train["x2"] = train.x1 + np.random.default_rng(seed + 100).normal(scale=1.0, size=6)
        p = fit(train, ["x1", "x2"])
        assert p.hyper_parameters["chosen_features"] == p.used_features == list(p.coefficients())
        chosen.append(tuple(p.used_features))
    assert ("x2",) not in chosen and chosen.count(("x1",)) >= 24
    assert fit(synthetic(40, 1), ["x1", "x2"]).used_features == ["x1", "x2"]  # enough prompts: no selection


def test_predictions_outside_the_training_range_are_flagged():
    train = synthetic(8, 3)
    p = fit(train, ["x1"])
    cand = synthetic(3, 5).assign(suppression=np.nan, x1=[train.x1.median(), train.x1.max() + 1, train.x1.min() - 1])
    assert list(p.predict(cand).extrapolated) == [False, True, True]


def test_predictions_neither_extend_the_trend_nor_leave_the_range_a_suppression_can_take():
    train = synthetic(12, 6, slope=60.0)  # a steep trend: 40 ± 60 per SD of x1
    p = fit(train, ["x1"])
    far = synthetic(2, 7).assign(x1=[-50.0, 50.0])
    edge = synthetic(2, 7).assign(x1=[train.x1.min(), train.x1.max()])
    pred, at_edge = p.predict(far), p.predict(edge)
    assert pred.extrapolated.all() and not at_edge.extrapolated.any()
    assert list(pred.prediction) == list(at_edge.prediction)  # clamped to the training range, not extended
    assert (pred[["prediction", "lo", "hi"]].abs() <= 100).all().all()
    assert at_edge.prediction.max() == 100.0  # the raw fit at the edge exceeds 100 pp: clipped
