"""Own-trait rows from a slides_dataset frame, and predict_all on a small two-study frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from inoc.prediction import FEATURES, predict_all, prediction_inputs
from inoc.prediction.features import own_trait_rows, usable_features


def slides_frame(seed: int = 0, n_per_family: int = 8, with_run: int = 6) -> pd.DataFrame:
    """Two experiments × (two trait families + a neutral group) × both traits × fixed/mix, as slides_dataset holds them."""
    rng = np.random.default_rng(seed)
    rows = []
    for exp, traits, scale in (("s1", ("French", "Playful"), 1.0), ("s2", ("German", "Flattering"), 3.0)):
        fams = [
            (traits[0].lower(), f"{traits[0].lower()}_v", "positive"),
            (traits[1].lower(), f"{traits[1].lower()}_v", "negative"),
            ("neutral", "neutral_v", None),
        ]
        for fam, group, role in fams:
            for i in range(n_per_family):
                key = f"{fam}_{i}"
                el = rng.normal(30, 20)
                ph = rng.normal(0.1, 0.05) * scale
                for t_role, trait in zip(("positive", "negative"), traits):
                    own = t_role == role
                    for prefix in ("fixed", "mix"):
                        sup = 20 + 0.8 * el + rng.normal(0, 3) if own else rng.normal(5, 2)
                        rows.append(
                            {
                                "experiment": exp,
                                "prompt_key": key,
                                "prompt_group": group,
                                "prompt_family": fam,
                                "trait_role": t_role,
                                "trait_name": trait,
                                "prefix_type": prefix,
                                "elicitation": el * scale if own else 0.0,
                                "ph_prefix": ph,
                                "suppression": sup if i < with_run else np.nan,
                                "suppression_ci_lo": sup - 2 if i < with_run else np.nan,
                                "suppression_ci_hi": sup + 2 if i < with_run else np.nan,
                            }
                        )
    return pd.DataFrame(rows)


def test_own_trait_rows_keep_each_prompts_own_trait_and_drop_neutral():
    rows = own_trait_rows(slides_frame(), "fixed")
    assert len(rows) == 2 * 2 * 8 and not rows.prompt_family.eq("neutral").any()
    assert (rows.prompt_family == rows.trait_name.str.lower()).all()
    assert rows.duplicated(["experiment", "prompt_key"]).sum() == 0
    # z-scored within experiment over every registered own-trait prompt, the raw value kept beside it
    for _, g in rows.groupby("experiment"):
        assert g.elicitation.mean() == pytest.approx(0, abs=1e-12) and g.elicitation.std() == pytest.approx(1)
    assert rows.raw_elicitation.notna().all() and rows.suppression.isna().sum() == 2 * 2 * 2


def test_configured_roles_decide_over_the_family_name():
    slides = slides_frame()
    roles = {("s1", "french_v"): "negative"}  # as if French prompts elicited the negative trait
    rows = own_trait_rows(slides, "mix", roles=roles)
    french = rows[(rows.experiment == "s1") & (rows.prompt_group == "french_v")]
    assert set(french.trait_name) == {"Playful"}
    assert set(rows[rows.experiment == "s2"].trait_name) == {"German", "Flattering"}  # unknown groups: by family


def test_missing_slides_column_is_named():
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['ph_prefix'\]"):
        own_trait_rows(slides_frame().drop(columns="ph_prefix"), "fixed")
    with pytest.raises(ValueError, match="prefix_type 'close'"):
        own_trait_rows(slides_frame(), "close")


def test_usable_features_drop_a_feature_missing_in_one_frame():
    a = own_trait_rows(slides_frame(), "fixed")
    b = a.assign(ph_prefix=np.nan)
    assert usable_features([a], FEATURES) == list(FEATURES)
    assert usable_features([a, b], FEATURES) == ["elicitation"]


def test_predict_all_predicts_every_own_trait_row_and_validates():
    slides = slides_frame()
    slides.loc[slides.experiment == "s2", "ph_prefix"] = np.nan  # like PF: no point-wise PH
    predictions, validation, models = predict_all(slides)
    own = {pt: own_trait_rows(slides, pt) for pt in ("fixed", "mix")}
    for pt, rows in own.items():
        for scope in ("experiment", "pooled"):
            p = predictions[(predictions.prefix_type == pt) & (predictions.scope == scope)]
            assert len(p) == len(rows) and p.prediction.notna().all()
            assert (p.lo <= p.prediction).all() and (p.prediction <= p.hi).all()
            assert p.trained.sum() == rows.suppression.notna().sum()
            assert p.loc[~p.trained, "observed"].isna().all()
    m = models.set_index(["scope", "experiment", "prefix_type"], drop=False)
    assert json.loads(m.loc[("experiment", "s1", "fixed")].features) == ["elicitation", "ph_prefix"]
    assert json.loads(m.loc[("experiment", "s2", "fixed")].features) == ["elicitation"]
    pooled = models[models.scope == "pooled"]
    assert pooled.experiment.isna().all() and (pooled.n_train == 24).all()
    assert set(json.loads(pooled.trained_on.iloc[0])[0]) <= {"s1", "s2"} | set(own["fixed"].prompt_key)
    # every prediction's version names a model row, and its inputs are traceable
    assert set(predictions.model_version) == set(models.model_version)
    inputs = prediction_inputs(predictions)
    assert len(inputs) == int(
        sum(
            len(json.loads(h)["chosen_features"]) * n  # the features each model chose (nested selection)
            for h, n in zip(
                models.hyper_parameters, predictions.groupby("model_version").size().reindex(models.model_version)
            )
        )
    )
    # validation: LOPO per experiment and pooled, LOSO both ways, predictor and baseline, fixed and mix
    loso = validation[validation.scheme == "leave_one_study_out"]
    assert set(zip(loso.train_scope, loso.test_scope, loso.prefix_type, loso.model)) == {
        (a, b, pt, m)
        for a, b in (("s1", "s2"), ("s2", "s1"))
        for pt in ("fixed", "mix")
        for m in ("predictor", "group_mean")
    }
    lopo = validation[(validation.scheme == "leave_one_prompt_out") & (validation.model == "predictor")]
    assert (
        set(lopo.train_scope) == {"s1", "s2", "pooled"} and (lopo.r2 > 0.5).all()
    )  # the signal is linear in elicitation
    result = predict_all(slides)
    assert len(result.held_out) > 0 and set(result.predictors) == {
        (r.scope, r.experiment if r.scope == "experiment" else None, r.prefix_type) for r in models.itertuples()
    }
    assert pd.concat([validation, validation]).shape[0] == 2 * len(validation)  # plain frames: they concatenate


def test_a_study_with_too_few_runs_gets_no_model_of_its_own_but_pooled_predictions():
    slides = slides_frame()
    few = (slides.experiment == "s2") & slides.prompt_key.str.endswith(("_2", "_3", "_4", "_5"))
    slides.loc[few, ["suppression", "suppression_ci_lo", "suppression_ci_hi"]] = np.nan  # s2: 2 runs per family → 4 own
    slides.loc[
        (slides.experiment == "s2")
        & slides.prompt_key.str.startswith("flattering")
        & slides.prompt_key.str.endswith("_1"),
        "suppression",
    ] = np.nan  # 3 own-trait runs left in s2
    result = predict_all(slides)
    predictions, validation, models = result
    assert not ((models.scope == "experiment") & (models.experiment == "s2")).any()
    assert any(s.startswith("s2 fixed: too few training rows: 3 of 16") for s in result.skipped), result.skipped
    s2 = predictions[predictions.experiment == "s2"]
    assert set(s2.scope) == {"pooled"} and s2.prediction.notna().all()
    loso = validation[validation.scheme == "leave_one_study_out"]
    assert set(zip(loso.train_scope, loso.test_scope)) == {("s1", "s2")}  # s2 cannot train a model


def test_the_figure_passes_the_figure_checks():
    from inoc.figure_checks import figure_problems
    from inoc.prediction.figure import predicted_vs_observed

    result = predict_all(slides_frame())
    fig = predicted_vs_observed(result.held_out, result[1], "synthetic")
    validation = result[1]
    assert figure_problems(fig) == []
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 * (3 + 2)  # fixed, mix × (LOPO s1, s2, pooled; LOSO both ways)
    assert any(t.startswith("LOSO s1 → s2 · fixed, n=12\nR² ") for t in titles), titles
    assert predicted_vs_observed(pd.DataFrame(), validation, "none") is None
