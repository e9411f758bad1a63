"""Exp 19's Q1/Q2 (inoc.analysis.angle_questions) against independent numpy/sklearn/scipy computations,
and against golden G6 on the real German/Flattering perplexity file."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.decomposition import PCA, TruncatedSVD

from inoc.analysis.angle_questions import angle_predictors, angle_question_rows, angle_question_tables

REPO = Path(__file__).resolve().parents[2]


def _deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))))))


@pytest.fixture
def synthetic():
    rng = np.random.default_rng(3)
    keys = [f"n{i}" for i in range(4)] + [f"p{i}" for i in range(4)] + ["z0", "z1"]
    roles = {k: {"n": "negative", "p": "positive", "z": "neutral"}[k[0]] for k in keys}
    base = {
        "negative": np.r_[1.0, 0.2, 0.0, 0.0],
        "positive": np.r_[0.1, 1.0, 0.3, 0.0],
        "neutral": np.r_[0.0, 0.0, 0.0, 0.5],
    }
    W = np.stack([base[roles[k]] + rng.normal(0, 0.15, 4) for k in keys])
    W = np.hstack([W, rng.normal(0, 0.05, (len(keys), 30))])
    return W, keys, roles


def test_predictors_match_an_independent_computation(synthetic):
    W, keys, roles = synthetic
    got = angle_predictors(W, keys, roles).pivot(index="prompt_key", columns="predictor", values="value")
    P = PCA(2, random_state=42).fit_transform(W)
    S = TruncatedSVD(2, algorithm="arpack", random_state=42).fit_transform(W)
    np.testing.assert_allclose(np.abs(got.loc[keys, "pca_dim1"]), np.abs(P[:, 0]), atol=1e-9)
    np.testing.assert_allclose(np.abs(got.loc[keys, "svd_dim2"]), np.abs(S[:, 1]), atol=1e-9)
    np.testing.assert_allclose(
        got.loc[keys, "angle_from_pca_axis"], np.degrees(np.arctan2(np.abs(P[:, 1]), np.abs(P[:, 0]))), atol=1e-7
    )
    neg = [i for i, k in enumerate(keys) if roles[k] == "negative"]
    pos = [i for i, k in enumerate(keys) if roles[k] == "positive"]
    # A negative prompt's angle to the positive prompts' centroid, in raw W and in PCA-2D.
    assert got.loc["n1", "angle_to_centroid_raw"] == pytest.approx(_deg(W[1], W[pos].mean(axis=0)), abs=1e-9)
    assert got.loc["p2", "angle_to_centroid_pca2"] == pytest.approx(_deg(P[6], P[neg].mean(axis=0)), abs=1e-7)
    assert math.isnan(got.loc["z0", "angle_to_centroid_raw"])  # neutral prompts have no "other trait"
    # Mean angle to a role, itself excluded.
    expected = np.mean([_deg(W[0], W[j]) for j in neg if j != 0])
    assert got.loc["n0", "mean_angle_to_negative_raw"] == pytest.approx(expected, abs=1e-9)
    assert got.loc["z1", "mean_angle_to_positive_raw"] == pytest.approx(
        np.mean([_deg(W[9], W[j]) for j in pos]), abs=1e-9
    )


def test_question_correlations_are_pearson_over_the_right_prompts(synthetic):
    W, keys, roles = synthetic
    pred = angle_predictors(W, keys, roles)
    rng = np.random.default_rng(5)
    supp = pd.DataFrame(
        [(k, tr, float(rng.normal(40, 15))) for k in keys for tr in ("negative", "positive")],
        columns=["prompt_key", "trait_role", "suppression"],
    )
    supp = supp[~((supp.prompt_key == "n3") & (supp.trait_role == "positive"))]  # one prompt lacks a run's score
    q = angle_question_rows(pred, supp).set_index(["question", "predictor", "outcome"])
    wide = pred.pivot(index="prompt_key", columns="predictor", values="value")
    s = supp.pivot(index="prompt_key", columns="trait_role", values="suppression")
    r1 = q.loc[("q1", "svd_dim1", "negative_trait_suppression")]
    assert r1.n == 10 and r1.r == pytest.approx(
        stats.pearsonr(wide.loc[keys, "svd_dim1"], s.loc[keys, "negative"])[0], abs=1e-12
    )
    # Q2: negative prompts → positive-trait suppression, positive prompts → negative-trait suppression.
    cross = {
        k: s.loc[k, "positive" if roles[k] == "negative" else "negative"]
        for k in keys
        if roles[k] != "neutral" and k != "n3"
    }
    r2 = q.loc[("q2", "angle_to_centroid_raw", "cross_trait_suppression")]
    ks = list(cross)
    assert r2.n == 7 and r2.r == pytest.approx(
        stats.pearsonr(wide.loc[ks, "angle_to_centroid_raw"], [cross[k] for k in ks])[0], abs=1e-12
    )
    assert set(q.reset_index().question) == {"q1", "q2"} and len(q) == 4 * 2 + 5


def test_tables_use_each_matrix_prefix_types_runs(synthetic):
    W, keys, roles = synthetic
    mats = [SimpleNamespace(name="fixed", keys=keys, W=W), SimpleNamespace(name="mix_tokens", keys=keys, W=W * 0.5)]
    supp = pd.DataFrame(
        [
            (k, pt, tr, float(i + (3 * i % 7) * (pt == "mix")))
            for i, k in enumerate(keys)
            for pt in ("fixed", "mix")
            for tr in ("negative", "positive")
        ],
        columns=["prompt_key", "prefix_type", "trait_role", "suppression"],
    )
    pred, q = angle_question_tables("e", roles, mats, supp)
    assert set(pred.matrix) == {"fixed", "mix_tokens"} and set(q.experiment) == {"e"}
    f = q[(q.matrix == "fixed") & (q.predictor == "pca_dim1") & (q.outcome == "negative_trait_suppression")].r.item()
    m = q[
        (q.matrix == "mix_tokens") & (q.predictor == "pca_dim1") & (q.outcome == "negative_trait_suppression")
    ].r.item()
    assert f != pytest.approx(m)  # mix rows read the mix runs
    dims = pred[(pred.matrix == "fixed") & (pred.predictor == "pca_dim1")].value.to_numpy()
    assert m == pytest.approx(stats.pearsonr(dims * 0.5, [i + (3 * i % 7) for i in range(len(keys))])[0], abs=1e-12)
    with pytest.raises(ValueError, match="2 prompts"):
        angle_predictors(W[:1], keys[:1], roles)


def test_mean_angles_per_role_average_to_golden_g6_on_the_gf_reference():
    """Every negative prompt has 20 negative partners, so the mean of its per-prompt means is the
    within-negative mean of G6 (63.3°); likewise within-positive 48.1°, cross 82.9°."""
    from inoc.config import load_experiment
    from inoc.importers.experiment import parse_configured
    from inoc.settings import shared_dir
    from inoc.tables.prompt_tables import point_matrices, prompt_roles

    if shared_dir() is None:
        pytest.skip("reference data not found: set INOC_SHARED_DIR to the folder holding reference/")
    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    fixed = next(
        m for m in point_matrices(cfg, parse_configured(cfg, "logprobs").tables["logprob_vectors"]) if m.name == "fixed"
    )
    roles = prompt_roles(cfg)
    pred, _ = angle_question_tables(cfg.name, roles, [fixed], pd.DataFrame())
    wide = pred.pivot(index="prompt_key", columns="predictor", values="value")
    role = pd.Series(roles).loc[wide.index]
    assert wide[role == "negative"].mean_angle_to_negative_raw.mean() == pytest.approx(63.3, abs=0.05)
    assert wide[role == "positive"].mean_angle_to_positive_raw.mean() == pytest.approx(48.1, abs=0.05)
    assert wide[role == "negative"].mean_angle_to_positive_raw.mean() == pytest.approx(82.9, abs=0.05)
