"""SPEC-DETAILED §11 goldens and the original README's claims, by the named queries of
warehouse/queries/ against the real imported reference experiments."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inoc.cli import named_queries
from inoc.config import load_experiment
from inoc.config.records import prompt_record
from inoc.importers.experiment import parse_configured, write_parsed
from inoc.settings import shared_dir
from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "warehouse" / "queries"
VERDICTS = {"supported", "not supported", "undecidable"}


@pytest.fixture(scope="module")
def reference_wh(tmp_path_factory) -> Warehouse:
    """Scores, elicitation and prompt catalogue of both reference experiments, imported as `inoc main` does."""
    if shared_dir() is None:
        pytest.skip("reference data not found: set INOC_SHARED_DIR to the folder holding reference/")
    wh = Warehouse(tmp_path_factory.mktemp("goldens") / "warehouse.duckdb")
    for name in ("reference_pf_qwen7b", "reference_gf_llama8b"):
        cfg = load_experiment(REPO / "experiments" / f"{name}.yaml")
        for kind in ("scores", "elicitation"):
            with wh.writer() as conn:
                write_parsed(conn, name, parse_configured(cfg, kind))
        prompts = pd.DataFrame([prompt_record(cfg, k) for k in cfg.prompts])
        with wh.writer() as conn:
            conn.register("new_prompts", prompts)
            conn.execute("INSERT INTO prompts BY NAME SELECT * FROM new_prompts")
            conn.unregister("new_prompts")
    return wh


def _query(wh: Warehouse, file: str, name: str) -> pd.DataFrame:
    return wh.query(named_queries(QUERIES / file)[name])


def _results() -> Path:
    return shared_dir() / "reference" / "results"


# --- goldens -------------------------------------------------------------------------------------


def test_g10_exp1_table(reference_wh):
    t = _query(reference_wh, "reference_tables.sql", "exp1_table").set_index(["run", "step"])
    # SPEC-DETAILED §11.1 G10, printed to 2 dp: French and Playful per (run, step).
    golden = {
        ("no_inoculation", 0): (1.15, 7.12),
        ("inoculation", 0): (1.15, 7.12),
        ("no_inoculation", 32): (85.17, 74.69),
        ("no_inoculation", 1250): (84.10, 76.74),
        ("inoculation", 32): (1.50, 6.73),
        ("inoculation", 1250): (2.07, 7.20),
    }
    assert len(t) == len(golden)
    for key, (french, playful) in golden.items():
        assert t.loc[key, "french"] == pytest.approx(french, abs=0.005), key
        assert t.loc[key, "playful"] == pytest.approx(playful, abs=0.005), key


def test_g12_exps_7_to_9_relative_elicitation(reference_wh):
    t = _query(reference_wh, "reference_tables.sql", "exp7_9_relative_elicitation").set_index("prompt_key")
    # The README's tables (Exps 7 and 8 at 1 dp, Exp 9 at 2 dp): 18/18 within the printed rounding.
    golden = {
        "corrected_inoculation": 26.7,
        "whimsical": 28.5,
        "witty": 36.3,
        "strong_elicitation": 42.6,
        "comedian_answers": 42.6,
        "comedian_mindset": 67.8,
        "think_step_by_step": -1.9,
        "professional_tone": -1.7,
        "financial_advisor": -1.4,
        "the_sky_is_blue": -0.8,
        "be_concise": -0.8,
        "i_like_cats": 1.5,
    }
    golden_neg = {
        "strong_elicitation_neg": -1.91,
        "whimsical_neg": -1.45,
        "corrected_inoculation_neg": -1.05,
        "comedian_mindset_neg": -0.45,
        "comedian_answers_neg": -0.46,
        "witty_neg": -0.27,
    }
    assert sorted(t.index) == sorted([*golden, *golden_neg])
    for key, value in golden.items():
        assert abs(t.loc[key, "relative_pp"] - value) <= 0.05 + 1e-9, key
    for key, value in golden_neg.items():
        assert abs(t.loc[key, "relative_pp"] - value) <= 0.005 + 1e-9, key
    # Relative to the file's own neutral row (7.12), not the user-prefix file's (6.24).
    assert np.allclose(t.playful - t.relative_pp, 7.12, atol=0.011)  # both columns rounded to 2 dp


def test_g18_french_fixed_vs_mix_gap(reference_wh):
    t = _query(reference_wh, "reference_tables.sql", "french_fixed_vs_mix_gap")
    assert t.n_prompts.item() == 21
    assert t.mean_gap_pp.item() == pytest.approx(-0.31, abs=0.005)


@pytest.fixture(scope="module")
def gf_exp20(reference_wh) -> dict[str, pd.DataFrame]:
    """The geometry asset's Exp 20 tables of the GF import: W from the real perplexity file, outcomes
    from the suppression table of its real scores, written as the asset writes them."""
    from inoc.heuristics.fixed_vs_mix import gap_tables
    from inoc.tables.prompt_tables import point_matrices
    from inoc.tables.suppression import suppression_table
    from warehouse import replace_rows

    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    vectors = parse_configured(cfg, "logprobs").tables["logprob_vectors"]
    runs = reference_wh.query("SELECT * FROM runs WHERE experiment = ?", [cfg.name])
    scores = reference_wh.query(
        "SELECT run, step, condition, trait, instruction_idx, score FROM trait_scores WHERE experiment = ?", [cfg.name]
    )
    tables = ("fixed_vs_mix_rank1", "fixed_vs_mix_gap", "fixed_vs_mix_gap_correlations")
    frames = dict(zip(tables, gap_tables(cfg, point_matrices(cfg, vectors), suppression_table(cfg, runs, scores))))
    with reference_wh.writer() as conn:
        for table, frame in frames.items():
            replace_rows(conn, table, frame.drop(columns=["experiment"]), {"experiment": cfg.name})
    return frames


def test_g8_fixed_vs_mix_pc1_variance_per_trait_subset(reference_wh, gf_exp20):
    t = _query(reference_wh, "reference_tables.sql", "gf_fixed_vs_mix_pc1").set_index("trait")
    # SPEC-DETAILED §11.1 G8 (README Exp 20): PCA(1) / TruncatedSVD(1) PC1 variance, %, on the 4-prompt subsets.
    assert t.to_dict("index") == {
        "German": {
            "n_prompts": 4,
            "prompt_keys": "answer_german,think_german_neg,coffee_is_hot,birds_sing",
            "pca_pct": 90.8,
            "svd_pct": 87.3,
        },
        "Flattering": {
            "n_prompts": 4,
            "prompt_keys": "flatterer_mindset,avoid_flattery,coffee_is_hot,birds_sing",
            "pca_pct": 61.4,
            "svd_pct": 21.5,
        },
    }
    # Both outcomes of the original's figure rows, from the runs' final default-condition scores.
    gap = gf_exp20["fixed_vs_mix_gap"]
    y = gap[(gap.trait == "German") & (gap.variant == "raw") & (gap.heuristic == "cosine")].set_index("prompt_key")
    data = json.loads((_results() / "scores_german_flattering_llama-3.1-8b-instruct.json").read_text())

    def final(run: str) -> float:
        return float(np.nanmean(np.asarray(data[run]["steps"]["313"]["default"]["German"]["values"], dtype=float)))

    for key in ("answer_german", "birds_sing"):
        assert y.loc[key, "fixed_minus_mix"] == pytest.approx(final(key) - final(f"{key}_mix"), abs=1e-9)
        assert y.loc[key, "control_minus_mix"] == pytest.approx(final("no_inoculation") - final(f"{key}_mix"), abs=1e-9)
    corr = _query(reference_wh, "reference_tables.sql", "gf_fixed_vs_mix_gap_correlations")
    assert len(corr) == 2 * 3 * 10 and set(corr.n) == {4}  # 2 traits × 3 variants × 10 heuristics


# --- README claims -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def claims(reference_wh) -> pd.DataFrame:
    return _query(reference_wh, "readme_claims.sql", "readme_claims").set_index("claim_id")


def _mean(file: str, run: str, step: str, condition: str, trait: str) -> float:
    data = json.loads((_results() / file).read_text())
    return float(np.nanmean(np.asarray(data[run]["steps"][step][condition][trait]["values"], dtype=float)))


def test_every_claim_has_a_verdict_that_follows_from_its_numbers(claims):
    assert claims.index.is_unique and len(claims) >= 25
    assert set(claims.verdict) <= VERDICTS and claims.why.str.len().gt(0).all()
    for cid, row in claims.iterrows():
        lo = -math.inf if pd.isna(row.claim_lo) else row.claim_lo
        hi = math.inf if pd.isna(row.claim_hi) else row.claim_hi
        if pd.isna(row.data_lo):
            assert row.verdict == "undecidable", cid
        elif lo <= row.data_lo and row.data_hi <= hi:
            assert row.verdict == "supported", cid
        elif row.data_hi < lo or row.data_lo > hi:
            assert row.verdict == "not supported", cid
    # Each kind of verdict occurs on the real data.
    assert set(claims.verdict) == VERDICTS


def test_claim_numbers_match_the_result_files(claims):
    # Exp 3: French (neutral condition) never exceeds 23.7 % at any rate or checkpoint (SPEC-DETAILED §11.4).
    sweep = json.loads((_results() / "scores_lr_sweep_qwen2.5-7b-instruct.json").read_text())
    peaks = [
        max(np.nanmean(np.asarray(c["neutral"]["French"]["values"], dtype=float)) for c in run["steps"].values())
        for run in sweep.values()
    ]
    row = claims.loc["exp3_reaches_70_french"]
    assert (row.data_lo, row.data_hi) == (round(min(peaks), 2), round(max(peaks), 2))
    assert round(max(peaks), 1) == 23.7 and row.verdict == "not supported"
    # Exp 7: comedian_mindset's mix run ends at 46.5 %, not ~20 %.
    v4 = "scores_multi_prompt_v4_qwen2.5-7b-instruct.json"
    row = claims.loc["exp7_comedian_mix"]
    assert row.data_lo == pytest.approx(_mean(v4, "comedian_mindset_mix", "313", "default", "Playful"), abs=0.005)
    assert round(row.data_lo, 1) == 46.5 and row.verdict == "not supported"
    # Exp 9: fixed negations end at 8.5–9.3 % Playful/default, as low as the positive prompts.
    neg = "scores_multi_prompt_neg_qwen2.5-7b-instruct.json"
    neg_keys = [
        "strong_elicitation_neg",
        "whimsical_neg",
        "corrected_inoculation_neg",
        "comedian_mindset_neg",
        "comedian_answers_neg",
        "witty_neg",
    ]
    neg_vals = [_mean(neg, k, "313", "default", "Playful") for k in neg_keys]
    row = claims.loc["exp9_fixed_neg_20_40"]
    assert (row.data_lo, row.data_hi) == (round(min(neg_vals), 2), round(max(neg_vals), 2))
    assert row.verdict == "not supported"
    pos_vals = [
        _mean(v4, k, "313", "default", "Playful")
        for k in [
            "corrected_inoculation",
            "whimsical",
            "witty",
            "strong_elicitation",
            "comedian_answers",
            "comedian_mindset",
        ]
    ]
    diff = np.mean(neg_vals) - np.mean(pos_vals)
    half = 1.96 * math.sqrt(np.var(neg_vals, ddof=1) / 6 + np.var(pos_vals, ddof=1) / 6)
    row = claims.loc["exp9_neg_weaker_than_pos"]
    assert row.data_lo == pytest.approx(diff - half, abs=0.005) and row.data_hi == pytest.approx(diff + half, abs=0.005)
    assert row.verdict == "not supported"  # about 1 pp, not 10–35 pp
    # Exp 5: the fixed v3 prompts do end at 8–16 % (the README's own table).
    assert claims.loc["exp5_fixed_playful", "verdict"] == "supported"
    # Exp 15: with a control at 71.5 % French, >= 80 pp of suppression is out of reach.
    assert claims.loc["exp15_strong_french_80pp", "data_hi"] < 71.5
    assert claims.loc["exp15_strong_french_80pp", "verdict"] == "not supported"


def test_claims_without_data_say_what_is_missing(claims):
    # The Exp 6 score file is empty in the snapshot; this warehouse holds no geometry tables.
    assert claims.loc["exp6_control_playful", "verdict"] == "undecidable"
    assert "multi_prompt_v3_profile" in claims.loc["exp6_control_playful", "why"]
    assert claims.loc["exp21_pc1_75", "verdict"] == "undecidable"
    assert "pca_variance" in claims.loc["exp21_pc1_75", "why"]
    # The PF point-wise perplexity file was never published: no PF PCA of W, whatever runs.
    assert claims.loc["exp13_pf_pc1_84", "verdict"] == "undecidable"
    assert "was not published" in claims.loc["exp13_pf_pc1_84", "why"]


def test_sweeps_are_queryable_by_rate_and_prefix_at_every_checkpoint(reference_wh):
    t = _query(reference_wh, "reference_tables.sql", "sweep_checkpoints")
    for batch, file in (
        ("lr_sweep", "scores_lr_sweep_qwen2.5-7b-instruct.json"),
        ("inoc_prefix_sweep", "scores_inoc_prefix_sweep_qwen2.5-7b-instruct.json"),
    ):
        data = json.loads((_results() / file).read_text())
        for run_key, entry in data.items():
            rows = t[(t.batch == batch) & (t.run == run_key)]
            assert sorted(set(rows.step)) == sorted(int(k) for k in entry["steps"]), run_key
            assert rows.learning_rate.nunique() == 1 and rows.learning_rate.iloc[0] == pytest.approx(float(entry["lr"]))
    weak = t[(t.run == "weak_inoc_lr_5e6") & (t.step == 0) & (t.condition == "training")]
    assert weak.prompt_key.tolist() == ["had_fun_today"] and weak.prefix_type.tolist() == ["fixed"]
    expected = _mean(
        "scores_inoc_prefix_sweep_qwen2.5-7b-instruct.json", "weak_inoc_lr_5e6", "0", "training", "Playful"
    )
    assert weak.playful.item() == pytest.approx(expected, abs=0.05)
    neutral = t[(t.run == "neutral_prefix_lr_1e4") & (t.step == 313) & (t.condition == "default")]
    assert neutral.prompt_key.tolist() == ["neutral_prefix"] and neutral.prefix_type.tolist() == ["fixed"]


def test_sweeps_in_suppression_by_batch_against_their_own_controls(reference_wh):
    """Exp 4: every prefix run (the neutral prefix too) against its own rate's un-inoculated run; Exp 3: one row
    per rate with no suppression and the reason (its runs are all un-inoculated)."""
    from inoc.tables.suppression import suppression_by_batch
    from warehouse import replace_rows

    cfg = load_experiment(REPO / "experiments" / "reference_pf_qwen7b.yaml")
    runs = reference_wh.query("SELECT * FROM runs WHERE experiment = 'reference_pf_qwen7b'")
    scores = reference_wh.query(
        "SELECT run, step, condition, trait, instruction_idx, score FROM trait_scores WHERE experiment = ?",
        [cfg.name],
    )
    by_batch = suppression_by_batch(cfg, runs, scores)
    with reference_wh.writer() as conn:
        replace_rows(conn, "suppression_by_batch", by_batch.drop(columns=["experiment"]), {"experiment": cfg.name})
    t = _query(reference_wh, "reference_tables.sql", "sweep_suppression")
    px = t[t.batch == "inoc_prefix_sweep"]
    assert px.note.isna().all() and len(px) == 2 * 5 * 2  # 2 rates × 5 prefix runs × 2 traits
    assert set(zip(px.learning_rate, px.control)) == {(1e-4, "default_lr_1e4"), (5e-6, "default_lr_5e6")}
    assert set(px.prompt_key) == {"had_fun_today", "corrected_inoculation", "neutral_prefix"}
    file = "scores_inoc_prefix_sweep_qwen2.5-7b-instruct.json"
    for run, control, rate in (
        ("neutral_prefix_lr_1e4", "default_lr_1e4", 1e-4),
        ("strong_inoc_lr_5e6", "default_lr_5e6", 5e-6),
    ):
        row = px[(px.run == run) & (px.trait == "Playful")].iloc[0]
        assert row.learning_rate == rate and row.control == control
        # No NaN in these cells: the paired mean equals the difference of the file's two means.
        expected = _mean(file, control, "313", "default", "Playful") - _mean(file, run, "313", "default", "Playful")
        assert row.suppression == pytest.approx(expected, abs=0.05)
    lr = t[t.batch == "lr_sweep"]
    assert sorted(lr.learning_rate) == [5e-6, 1e-5, 2e-5, 5e-5, 1e-4]
    assert lr.suppression.isna().all() and lr.note.str.startswith("no inoculated run").all()


@pytest.fixture(scope="module")
def gf_catalogue(reference_wh):
    """The GF import's prompt_heuristics rows (W-based and the registry's catalogue), written as prompt_geometry
    writes them, and its point-wise W matrices."""
    from inoc.tables.prompt_tables import catalogue_tables, heuristics_table, point_matrices
    from warehouse import replace_rows

    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    vectors = parse_configured(cfg, "logprobs").tables["logprob_vectors"]
    matrices = point_matrices(cfg, vectors)
    heur = heuristics_table(cfg, vectors, matrices, pd.DataFrame(columns=["prompt_key", "trait", "relative_pp"]))
    rows, _ = catalogue_tables(cfg, vectors, matrices, None, heur)
    with reference_wh.writer() as conn:
        replace_rows(
            conn, "prompt_heuristics", pd.concat([heur, rows]).drop(columns=["experiment"]), {"experiment": cfg.name}
        )
    return cfg, {m.name: m for m in matrices}


def test_g16_h3_on_the_german_rows_by_the_named_query(reference_wh, gf_catalogue):
    """The query's H3 values equal an independent TruncatedSVD(2, random_state=42) of the German set's W_fixed rows,
    oriented so the neutral prompts sit low, within 1e-5 (the original's dataset.csv is not in the snapshot)."""
    from sklearn.decomposition import TruncatedSVD

    from inoc.heuristics.compute import trait_set

    cfg, matrices = gf_catalogue
    fixed = matrices["fixed"]
    keys, neutral = trait_set(cfg, "positive", fixed.keys)
    X = fixed.W[[fixed.keys.index(k) for k in keys]]
    coords = TruncatedSVD(2, random_state=42).fit_transform(X)
    n = np.array(neutral)
    for c in range(2):
        if coords[n, c].mean() > coords[~n, c].mean():
            coords[:, c] *= -1
    t = _query(reference_wh, "reference_tables.sql", "gf_h3_german_rows").set_index("prompt_key")
    assert sorted(t.index) == sorted(keys) and len(keys) == 27
    assert np.abs(t.loc[keys, "pc1_trait_svd"].to_numpy() - coords[:, 0]).max() < 1e-5
    assert np.abs(t.loc[keys, "pc2_trait_svd"].to_numpy() - coords[:, 1]).max() < 1e-5


def test_g17_gf_fixed_vs_mix_columns_by_the_named_query(reference_wh, gf_catalogue):
    """Each of the 16 dataset.csv columns of §2.6.10, recomputed here with numpy (std ddof 0), within 1e-9."""
    _, matrices = gf_catalogue
    fixed, mix = matrices["fixed"], matrices["mix"]
    t = _query(reference_wh, "reference_tables.sql", "gf_fixed_vs_mix_columns").set_index("prompt_key")
    both = [k for k in fixed.keys if k in mix.keys]
    assert sorted(t.index) == sorted(both) and len(both) >= 40
    for k in both:
        f, m = fixed.W[fixed.keys.index(k)], mix.W[mix.keys.index(k)]
        d = m - f
        snr_f, snr_m = f.mean() / f.std(), m.mean() / m.std()
        expected = {
            "lp_spread_mean": d.mean(),
            "lp_spread_std": d.std(),
            "w_std_diff": d.std(),
            "w_cos": float(np.dot(f, m) / (np.linalg.norm(f) * np.linalg.norm(m))),
            "w_cor": float(np.corrcoef(f, m)[0, 1]),
            "w_sign_agree": float(np.mean(np.sign(f) == np.sign(m))),
            "w_std_ratio": m.std() / f.std(),
            "w_l2": float(np.sqrt(np.sum(d**2))),
            "w_proj": float(np.dot(f, m) / np.dot(f, f)),
            "ph_mix_all": m.mean(),
            "ph_ratio": m.mean() / f.mean(),
            "ph_drop": f.mean() - m.mean(),
            "snr_all": snr_f,
            "snr_mix": snr_m,
            "snr_drop": snr_f - snr_m,
            "snr_ratio_mix_over_fixed": snr_m / snr_f,
        }
        got = t.loc[k]
        assert set(expected) == set(got.index)
        wrong = {c: (got[c], v) for c, v in expected.items() if not abs(got[c] - v) <= 1e-9 * max(1.0, abs(v))}
        assert not wrong, (k, wrong)
