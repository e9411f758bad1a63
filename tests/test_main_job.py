"""`inoc main` on the original study's published results (the import experiments), run as a user runs
it, and its results checked against the files' own aggregates. The default main job (the `toy`
study on the model organism) is exercised on a smaller profile by test_pipeline_e2e.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
IMPORTS = ("reference_pf_qwen7b", "reference_gf_llama8b", "reference_em_qwen32b")


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    from inoc.settings import shared_dir

    shared = shared_dir()
    if shared is None:
        pytest.skip("reference data not found: the import experiments read it")
    home = tmp_path_factory.mktemp("main") / ".inoc"
    env = {**os.environ, "INOC_HOME": str(home), "INOC_SHARED_DIR": str(shared), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("INOC_EXPERIMENTS_DIR", None)
    args = [a for e in IMPORTS for a in ("--experiment", e)]
    proc = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    return proc, home, shared


def test_main_job_prints_the_suppression_table(main_run):
    proc, home, _ = main_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "reference_gf_llama8b: suppression" in out and "reference_pf_qwen7b: suppression" in out
    assert "| answer_german" in out and "| clown_persona" in out
    assert str(home / "warehouse.duckdb") in out
    common = ["suppression", "training_curves", "loss_curves", "angle_bars"]
    # reference_pf_qwen7b has no prompt with both an LLS metric/fixed-vs-mix heuristic and a suppression: those grids are not drawn.
    for exp, figs in (
        ("reference_gf_llama8b", common + ["lls_grid", "fixed_vs_mix_grid", "pca_fixed", "pca_mix", "angles_fixed"]),
        ("reference_pf_qwen7b", common + ["pca_fixed_tokens", "sigmoid_elicitation_mix"]),
    ):
        for fig in figs:
            png = home / "artifacts" / exp / "figures" / f"{fig}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    for slide in (
        "elicitation",
        "ph",
        "pca",
        "svd",
        "pca_embedding_2d",
        "pca_embedding_3d",
        "svd_embedding_2d",
        "svd_embedding_3d",
        "slide1_elicitation",
        "slide1_elicitation_filtered",
        "pca_grid_filtered",
        "pca_scatter",
        "pca_scatter_filtered",
        "h_table",
    ):
        assert (home / "artifacts" / "slides" / f"section1_{slide}.png").read_bytes()[:4] == b"\x89PNG"


def test_main_job_numbers_equal_the_files_own_aggregates(main_run):
    proc, home, shared = main_run
    assert proc.returncode == 0
    wh = Warehouse(home / "warehouse.duckdb")
    res = shared / "reference" / "results"
    scores = json.loads((res / "scores_german_flattering_llama-3.1-8b-instruct.json").read_text())
    final = max(scores["no_inoculation"]["steps"], key=int)
    supp = wh.query("SELECT * FROM suppression WHERE experiment = 'reference_gf_llama8b'")
    for r in supp.itertuples():
        run_key = r.run.split("/", 1)[1]
        assert r.control_score == pytest.approx(
            scores["no_inoculation"]["steps"][final]["default"][r.trait]["mean"], abs=1e-9
        )
        assert r.run_score == pytest.approx(scores[run_key]["steps"][final]["default"][r.trait]["mean"], abs=1e-9)
    perp = json.loads((res / "perplexity_heuristic_german_flattering_llama-3.1-8b-instruct.json").read_text())[
        "prompts"
    ]
    h = wh.query(
        "SELECT prompt_key, heuristic, value FROM prompt_heuristics WHERE experiment = 'reference_gf_llama8b' AND prefix_type = 'fixed'"
    )
    h = h.set_index(["prompt_key", "heuristic"]).value
    for key, entry in perp.items():
        assert h[(key, "ph")] == pytest.approx(entry["perplexity_heuristic"], abs=1e-12)
        assert h[(key, "ppd")] == pytest.approx(entry["pointwise_perplexity_drift"], abs=1e-12)
    elic = json.loads((res / "elicitation_scores_german_flattering_llama-3.1-8b-instruct.json").read_text())
    e = wh.query(
        "SELECT prompt_key, trait, relative_pp FROM elicitation_summary WHERE experiment = 'reference_gf_llama8b'"
    )
    e = e.set_index(["prompt_key", "trait"]).relative_pp
    for key in ("answer_german", "flatterer_mindset"):
        for trait in ("German", "Flattering"):
            expect = elic[key]["scores"][trait]["mean"] - elic["neutral"]["scores"][trait]["mean"]
            assert e[(key, trait)] == pytest.approx(expect, abs=1e-9)
    # Every prompt of both experiments is registered, with its text and group.
    prompts = wh.query("SELECT experiment, count(*) AS n FROM prompts GROUP BY 1").set_index("experiment").n
    assert prompts["reference_pf_qwen7b"] == 48 and prompts["reference_gf_llama8b"] == 49


def test_main_job_without_reference_data_says_what_to_do(tmp_path):
    env = {**os.environ, "INOC_HOME": str(tmp_path / ".inoc"), "INOC_SHARED_DIR": str(tmp_path / "nowhere")}
    env["DAGSTER_HOME"] = str(tmp_path / ".inoc" / "dagster")
    proc = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "main", "--experiment", "reference_gf_llama8b"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "INOC_SHARED_DIR" in proc.stderr and "Traceback" not in proc.stderr


def test_slides_dataset_and_heuristic_performance(main_run):
    proc, home, _ = main_run
    assert proc.returncode == 0
    wh = Warehouse(home / "warehouse.duckdb")
    sd = wh.query("SELECT * FROM slides_dataset")
    # One row per (prompt, trait role, prefix type) of every registered prompt.
    assert sd.groupby("experiment").size().to_dict() == {"reference_gf_llama8b": 49 * 4, "reference_pf_qwen7b": 48 * 4}
    assert not sd.duplicated(["experiment", "prompt_key", "trait_role", "prefix_type"]).any()
    # Rows agree with the tables they come from.
    supp = wh.query("SELECT * FROM suppression").set_index(["experiment", "prompt_key", "prefix_type", "trait"])
    for r in sd[sd.suppression.notna()].itertuples():
        s = supp.loc[(r.experiment, r.prompt_key, r.prefix_type, r.trait_name)]
        assert (r.suppression, r.suppression_ci_lo, r.no_inoc_score) == (s.suppression, s.ci_lo, s.control_score)
    gap = sd[(sd.prefix_type == "mix") & sd.gap.notna()].iloc[0]
    fixed = supp.loc[(gap.experiment, gap.prompt_key, "fixed", gap.trait_name)].suppression
    assert gap.gap == pytest.approx(fixed - gap.suppression)
    # Heuristic performance equals an independent Pearson r on the same rows.
    from scipy import stats

    own = sd[(sd.target == "trait") & (sd.experiment == "reference_gf_llama8b")].dropna(
        subset=["ph_combined", "suppression"]
    )
    expect = stats.pearsonr(own.ph_combined, own.suppression)[0]
    perf = wh.query(
        "SELECT r, n FROM heuristic_performance WHERE scope = 'reference_gf_llama8b' AND heuristic = 'ph_combined' "
        "AND outcome = 'trait_suppression_all'"
    )
    assert perf.r[0] == pytest.approx(expect, abs=1e-12) and perf.n[0] == len(own)


def test_em_reference_rates_equal_the_file(main_run):
    proc, home, shared = main_run
    assert proc.returncode == 0
    assert "DEBUG run of the original" in proc.stdout
    raw = json.loads(
        (shared / "reference" / "em" / "results" / "scores_em_qwen2.5-32b-instruct_debug.json").read_text()
    )
    em = Warehouse(home / "warehouse.duckdb").query(
        "SELECT * FROM em_summary WHERE experiment = 'reference_em_qwen32b'"
    )
    em = em.set_index(["run", "step", "eval_set", "condition"])
    checked = 0
    for run, entry in raw.items():
        if "error" in entry:
            continue
        for step, sets in entry["steps"].items():
            for eval_set, conds in sets.items():
                for cond, cell in conds.items():
                    row = em.loc[(f"em/{run}", int(step), eval_set, cond)]
                    assert (
                        row.em_rate == pytest.approx(cell["em_rate"], abs=1e-12) and row.n_pairs == cell["n_em_pairs"]
                    )
                    checked += 1
    assert checked == len(em) > 0
    assert (home / "artifacts" / "reference_em_qwen32b" / "figures" / "em_rates.png").read_bytes()[:4] == b"\x89PNG"
