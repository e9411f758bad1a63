"""Suppression and per-prompt tables against independent computations on small synthetic data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from inoc.config import load_experiment
from inoc.tables.prompt_tables import (
    angle_tables,
    decomposition_tables,
    heuristics_table,
    point_matrices,
    token_matrices,
)
from inoc.tables.suppression import format_suppression, suppression_by_batch, suppression_table

REPO = Path(__file__).resolve().parent.parent
TOY = load_experiment(REPO / "experiments" / "toy.yaml")  # 6 prompts: negative, neutral, positive roles
TRAITS = ("French", "Playful")


def _scores_frame(rng, runs: list[str], n: int = 40) -> tuple[pd.DataFrame, dict]:
    truth, rows = {}, []
    for run in runs:
        for trait in TRAITS:
            for step in (0, 50):
                for cond in ("default", "training"):
                    v = rng.uniform(0, 100, n)
                    v[rng.random(n) < 0.05] = np.nan
                    truth[(run, step, cond, trait)] = v
                    rows.append(
                        pd.DataFrame(
                            {
                                "run": run,
                                "step": step,
                                "condition": cond,
                                "trait": trait,
                                "instruction_idx": np.arange(n),
                                "score": v,
                            }
                        )
                    )
    return pd.concat(rows, ignore_index=True), truth


def test_suppression_is_the_paired_t_interval_at_the_final_step():
    rng = np.random.default_rng(7)
    runs = pd.DataFrame(
        [
            {"batch": "main", "run": "no_inoculation", "prompt_key": None, "prefix_type": None},
            {"batch": "main", "run": "r_fixed", "prompt_key": "whimsical", "prefix_type": "fixed"},
            {"batch": "main", "run": "r_mix", "prompt_key": "whimsical", "prefix_type": "mix"},
            {"batch": "main", "run": "r_neutral", "prompt_key": "the_sky_is_blue", "prefix_type": "fixed"},
        ]
    )
    scores, truth = _scores_frame(rng, runs.run.tolist())
    table = suppression_table(TOY, runs, scores)
    assert len(table) == 3 * 2  # three prompt runs × two traits
    for r in table.itertuples():
        c, x = truth[("no_inoculation", 50, "default", r.trait)], truth[(r.run, 50, "default", r.trait)]
        ok = ~np.isnan(c) & ~np.isnan(x)
        d = c[ok] - x[ok]
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
        assert r.step == 50 and r.n == len(d)
        assert r.suppression == pytest.approx(d.mean(), abs=1e-9)
        assert (r.ci_lo, r.ci_hi) == pytest.approx((d.mean() - half, d.mean() + half), abs=1e-9)
        assert r.control_score == pytest.approx(np.nanmean(c), abs=1e-9)
    targets = table.set_index(["prompt_key", "prefix_type", "trait"]).sort_index().target
    assert (
        targets[("whimsical", "mix", "Playful")] == "trait"
        and targets[("whimsical", "fixed", "French")] == "cross_trait"
    )
    assert pd.isna(targets[("the_sky_is_blue", "fixed", "Playful")])
    wide = format_suppression(table)
    assert set(wide.columns) == {"prompt", "group", "trait", "fixed", "mix"}
    assert wide[wide.prompt == "whimsical"].mix.iloc[0] != "—"


def test_close_mix_runs_get_their_own_suppression_rows_and_column():
    rng = np.random.default_rng(3)
    runs = pd.DataFrame(
        [
            {"batch": "main", "run": "no_inoculation", "prompt_key": None, "prefix_type": None},
            {"batch": "main", "run": "whimsical/fixed", "prompt_key": "whimsical", "prefix_type": "fixed"},
            {"batch": "main", "run": "whimsical/close_mix", "prompt_key": "whimsical", "prefix_type": "close_mix"},
        ]
    )
    scores, truth = _scores_frame(rng, runs.run.tolist())
    table = suppression_table(TOY, runs, scores)
    close = table[(table.prefix_type == "close_mix") & (table.trait == "Playful")].iloc[0]
    c, x = truth[("no_inoculation", 50, "default", "Playful")], truth[("whimsical/close_mix", 50, "default", "Playful")]
    ok = ~np.isnan(c) & ~np.isnan(x)
    assert close.run == "whimsical/close_mix" and close.suppression == pytest.approx((c[ok] - x[ok]).mean(), abs=1e-9)
    wide = format_suppression(table)
    assert list(wide.columns) == ["prompt", "group", "trait", "fixed", "mix", "close_mix"]
    row = wide[wide.prompt == "whimsical"].iloc[0]
    assert row.mix == "—" and row.close_mix.startswith(f"{close.suppression:.1f} [")
    assert "close_mix" not in format_suppression(table[table.prefix_type != "close_mix"]).columns


def test_each_batch_is_measured_against_its_own_control():
    rng = np.random.default_rng(11)
    runs = pd.DataFrame(
        [
            {
                "batch": "lr0.001",
                "run": "lr0.001/no_inoculation",
                "prompt_key": None,
                "prefix_type": None,
                "learning_rate": 1e-3,
            },
            {
                "batch": "lr0.001",
                "run": "lr0.001/whimsical/fixed",
                "prompt_key": "whimsical",
                "prefix_type": "fixed",
                "learning_rate": 1e-3,
            },
            {
                "batch": "lr0.0001",
                "run": "lr0.0001/no_inoculation",
                "prompt_key": None,
                "prefix_type": None,
                "learning_rate": 1e-4,
            },
            {
                "batch": "lr0.0001",
                "run": "lr0.0001/whimsical/fixed",
                "prompt_key": "whimsical",
                "prefix_type": "fixed",
                "learning_rate": 1e-4,
            },
            {
                "batch": "orphan",
                "run": "orphan/whimsical/fixed",
                "prompt_key": "whimsical",
                "prefix_type": "fixed",
                "learning_rate": 1e-5,
            },
        ]
    )
    scores, truth = _scores_frame(rng, runs.run.tolist())
    table = suppression_by_batch(TOY, runs, scores)
    assert (
        set(table.batch) == {"lr0.001", "lr0.0001"} and len(table) == 2 * 2
    )  # the batch without a control is left out
    for r in table.itertuples():
        assert r.control_run == f"{r.batch}/no_inoculation" and r.run == f"{r.batch}/whimsical/fixed"
        c, x = truth[(r.control_run, 50, "default", r.trait)], truth[(r.run, 50, "default", r.trait)]
        ok = ~np.isnan(c) & ~np.isnan(x)
        assert r.suppression == pytest.approx((c[ok] - x[ok]).mean(), abs=1e-9)
        assert r.learning_rate == {"lr0.001": 1e-3, "lr0.0001": 1e-4}[r.batch]


def test_run_ids_map_to_their_prefix_type():
    from inoc.figures import prefix_type_of_run

    cases = {
        "whimsical/fixed": "fixed",
        "lr0.001/whimsical/mix": "mix",
        "p/close_mix": "close_mix",
        "em/harmful_advice_v1": "fixed",
        "em/harmful_advice_v1_mix": "mix",
        "em/harmful_advice_v1_close_mix": "close_mix",
        "em/harmful_advice_close_mix": "close_mix",
    }
    assert {r: prefix_type_of_run(r) for r in cases} == cases
    assert prefix_type_of_run("em/reckless_advice_v1_mix", {"reckless_advice_v1_mix": "close_mix"}) == "close_mix"
    from inoc.figures import run_label

    assert [run_label(r) for r in ("lr0.001/whimsical/mix", "em/harmful_advice_v1_mix", "no_inoculation")] == [
        "whimsical (mix)",
        "harmful_advice_v1_mix",
        "no_inoculation",
    ]
    assert run_label("p/close_mix", short=True) == "p"


def test_missing_control_is_a_clear_error():
    runs = pd.DataFrame([{"batch": "main", "run": "r", "prompt_key": "whimsical", "prefix_type": "fixed"}])
    scores, _ = _scores_frame(np.random.default_rng(0), ["r"])
    with pytest.raises(ValueError, match="designated control run 'no_inoculation'"):
        suppression_table(TOY, runs, scores)


def _vectors(rng, keys, k=30, n_ctrl=12):
    rows = [
        pd.DataFrame(
            {"prompt_key": None, "vector": "train_default", "example_idx": np.arange(k), "lp": rng.normal(-2, 0.3, k)}
        ),
        pd.DataFrame(
            {
                "prompt_key": None,
                "vector": "ctrl_default",
                "example_idx": np.arange(n_ctrl),
                "lp": rng.normal(-2, 0.3, n_ctrl),
            }
        ),
    ]
    for key in keys:
        for vec, size in (("train_inoc", k), ("train_mix", k), ("ctrl_inoc", n_ctrl)):
            rows.append(
                pd.DataFrame(
                    {"prompt_key": key, "vector": vec, "example_idx": np.arange(size), "lp": rng.normal(-2, 0.3, size)}
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_w_matrices_decompositions_and_angles_match_numpy():
    rng = np.random.default_rng(3)
    keys = list(reversed(TOY.prompt_keys))  # rows must come back in config order regardless
    vec = _vectors(rng, keys)
    mats = {m.name: m for m in point_matrices(TOY, vec)}
    assert set(mats) == {"fixed", "mix"} and mats["fixed"].keys == TOY.prompt_keys
    default = vec[vec.vector == "train_default"].sort_values("example_idx").lp.to_numpy()
    for i, key in enumerate(TOY.prompt_keys):
        inoc = vec[(vec.prompt_key == key) & (vec.vector == "train_inoc")].sort_values("example_idx").lp.to_numpy()
        np.testing.assert_allclose(mats["fixed"].W[i], inoc - default)
    var, coords = decomposition_tables("toy", list(mats.values()))
    W = mats["fixed"].W
    s = np.linalg.svd(W - W.mean(0), compute_uv=False)
    got = (
        var[(var.matrix == "fixed") & (var.method == "pca")]
        .sort_values("component")
        .explained_variance_ratio.to_numpy()
    )
    np.testing.assert_allclose(got, (s**2 / (s**2).sum())[: len(got)], rtol=1e-9)
    pairs, groups = angle_tables(TOY, list(mats.values()))
    raw = (
        pairs[(pairs.matrix == "fixed") & (pairs.representation == "raw")].set_index(["prompt_a", "prompt_b"]).angle_deg
    )
    a, b = W[0], W[3]
    expect = math.degrees(math.acos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert raw[(TOY.prompt_keys[0], TOY.prompt_keys[3])] == pytest.approx(expect, abs=1e-9)
    assert raw[(TOY.prompt_keys[3], TOY.prompt_keys[0])] == pytest.approx(expect, abs=1e-9)
    # pair counts from the roles in toy.yaml: n_neg·(n_neg−1)/2 within-negative, n_neg·n_pos cross-trait
    roles = [TOY.groups[TOY.group_of(k)].role for k in TOY.prompt_keys]
    n_neg, n_pos = roles.count("negative"), roles.count("positive")
    g = groups[(groups.matrix == "fixed") & (groups.representation == "raw")].set_index("pair_type")
    assert n_neg >= 3 and n_pos >= 1
    assert (
        g.loc["within_negative", "n_pairs"] == n_neg * (n_neg - 1) // 2
        and g.loc["cross_trait", "n_pairs"] == n_neg * n_pos
    )
    neg = [i for i, k in enumerate(TOY.prompt_keys) if TOY.groups[TOY.group_of(k)].role == "negative"]
    within = [raw[(TOY.prompt_keys[i], TOY.prompt_keys[j])] for i in neg for j in neg if i < j]
    assert g.loc["within_negative", "mean_deg"] == pytest.approx(np.mean(within), abs=1e-9)
    assert g.loc["within_negative", "std_deg"] == pytest.approx(np.std(within), abs=1e-9)


def test_heuristics_table_values():
    rng = np.random.default_rng(5)
    vec = _vectors(rng, TOY.prompt_keys)
    mats = point_matrices(TOY, vec)
    elicit = pd.DataFrame(
        {"prompt_key": ["neutral", "whimsical"], "trait": ["Playful", "Playful"], "relative_pp": [0.0, 42.5]}
    )
    h = heuristics_table(TOY, vec, mats, elicit).set_index(["prompt_key", "prefix_type", "heuristic"]).value
    W = next(m for m in mats if m.name == "mix")
    i = W.keys.index("whimsical")
    assert h[("whimsical", "mix", "ph")] == pytest.approx(W.W[i].mean(), abs=1e-12)
    assert h[("whimsical", "mix", "sigma")] == pytest.approx(W.W[i].std(ddof=1), abs=1e-12)
    assert h[("whimsical", "mix", "gamma")] == pytest.approx((W.W[i] > 0).mean(), abs=1e-12)
    ctrl_d = vec[vec.vector == "ctrl_default"].sort_values("example_idx").lp.to_numpy()
    ctrl_i = vec[(vec.vector == "ctrl_inoc") & (vec.prompt_key == "whimsical")].sort_values("example_idx").lp.to_numpy()
    assert h[("whimsical", "fixed", "ppd")] == pytest.approx(np.abs(ctrl_i - ctrl_d).mean(), abs=1e-12)
    elic = heuristics_table(TOY, vec, mats, elicit)
    assert elic[elic.heuristic == "elicitation_Playful"].value.tolist() == [42.5]


def test_token_matrix_concatenates_examples():
    rows = []
    lengths = [3, 5, 2]
    rng = np.random.default_rng(1)
    for key in (None, "whimsical", "had_fun_today"):
        vector = "train_default" if key is None else "train_inoc"
        for k, L in enumerate(lengths):
            rows.append(
                pd.DataFrame(
                    {
                        "prompt_key": key,
                        "vector": vector,
                        "example_idx": k,
                        "token_idx": np.arange(L),
                        "lp": rng.normal(size=L),
                    }
                )
            )
    tokens = pd.concat(rows, ignore_index=True)
    (m,) = token_matrices(TOY, tokens)
    assert m.name == "fixed_tokens" and m.W.shape == (2, sum(lengths))
    d = tokens[tokens.prompt_key.isna()].sort_values(["example_idx", "token_idx"]).lp.to_numpy()
    w = tokens[tokens.prompt_key == "whimsical"].sort_values(["example_idx", "token_idx"]).lp.to_numpy()
    np.testing.assert_allclose(m.W[m.keys.index("whimsical")], (w - d).astype(np.float32), rtol=1e-6)


def test_trait_ph_and_ppd_on_single_trait_sets():
    rng = np.random.default_rng(9)
    vec = _vectors(rng, TOY.prompt_keys)
    extra = [
        pd.DataFrame(
            {"prompt_key": None, "vector": "playful_default", "example_idx": np.arange(8), "lp": rng.normal(-2, 0.3, 8)}
        ),
        pd.DataFrame(
            {
                "prompt_key": "whimsical",
                "vector": "playful_inoc",
                "example_idx": np.arange(8),
                "lp": rng.normal(-1.5, 0.3, 8),
            }
        ),
    ]
    vec = pd.concat([vec, *extra], ignore_index=True)
    h = heuristics_table(
        TOY, vec, point_matrices(TOY, vec), pd.DataFrame(columns=["prompt_key", "trait", "relative_pp"])
    )
    h = h[h.prefix_type == "fixed"].set_index(["prompt_key", "heuristic"]).value
    d = extra[1].lp.to_numpy() - extra[0].lp.to_numpy()
    assert h[("whimsical", "ph_playful")] == pytest.approx(d.mean(), abs=1e-12)
    assert h[("whimsical", "ppd_playful")] == pytest.approx(np.abs(d).mean(), abs=1e-12)
    assert ("whimsical", "ph_french") not in h.index  # no French single-trait set was scored


def test_a_scatter_panel_whose_x_is_constant_is_drawn_without_a_fit(monkeypatch):
    """Found by the German/Flattering rehearsal: five prompts with one value of a heuristic crashed the
    figures asset (linear_fit refuses a constant x). The panel shows its points and says why no line."""
    import matplotlib.axes

    from inoc import figures

    titles = []
    monkeypatch.setattr(
        matplotlib.axes.Axes, "set_title", lambda self, label, *a, **k: titles.append(label), raising=True
    )
    frame = pd.DataFrame({"flat": [0.5] * 5, "varied": [1.0, 2.0, 3.0, 4.0, 6.0], "y": [10.0, 20.0, 25.0, 41.0, 60.0]})
    png = figures.render(figures.scatter_grid(frame, ["flat", "varied"], "y", "suppression (pp)", "t")).png
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no fit: flat is 0.5 for all n = 5" in titles
    assert any(t.startswith("r = +0.9") and t.endswith("n = 5") for t in titles)
