"""The README's main job, run as a user runs it, and its results checked against the files' own aggregates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    from conftest import shared_dir

    shared = shared_dir()
    if shared is None:
        pytest.skip("reference data not found: the main job reads it until the model organism exists")
    home = tmp_path_factory.mktemp("main") / ".inoc"
    env = {**os.environ, "INOC_HOME": str(home), "INOC_SHARED_DIR": str(shared), "DAGSTER_HOME": str(home / "dagster")}
    env.pop("INOC_EXPERIMENTS_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "inoc.cli", "main"], capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    return proc, home, shared


def test_main_job_prints_the_suppression_table(main_run):
    proc, home, _ = main_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "reference_gf_llama8b: suppression" in out and "reference_pf_qwen7b: suppression" in out
    assert "| answer_german" in out and "| clown_persona" in out
    assert str(home / "warehouse.duckdb") in out
    for exp, figs in (("reference_gf_llama8b", ["suppression", "pca_fixed", "pca_mix", "angles_fixed"]),
                      ("reference_pf_qwen7b", ["suppression", "pca_fixed_tokens"])):  # fmt: skip
        for fig in figs:
            png = home / "artifacts" / exp / "figures" / f"{fig}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


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
        assert r.control_score == pytest.approx(scores["no_inoculation"]["steps"][final]["default"][r.trait]["mean"], abs=1e-9)
        assert r.run_score == pytest.approx(scores[run_key]["steps"][final]["default"][r.trait]["mean"], abs=1e-9)
    perp = json.loads((res / "perplexity_heuristic_german_flattering_llama-3.1-8b-instruct.json").read_text())["prompts"]
    h = wh.query("SELECT prompt_key, heuristic, value FROM prompt_heuristics WHERE experiment = 'reference_gf_llama8b' AND prefix_type = 'fixed'")
    h = h.set_index(["prompt_key", "heuristic"]).value
    for key, entry in perp.items():
        assert h[(key, "ph")] == pytest.approx(entry["perplexity_heuristic"], abs=1e-12)
        assert h[(key, "ppd")] == pytest.approx(entry["pointwise_perplexity_drift"], abs=1e-12)
    elic = json.loads((res / "elicitation_scores_german_flattering_llama-3.1-8b-instruct.json").read_text())
    e = wh.query("SELECT prompt_key, trait, relative_pp FROM elicitation_summary WHERE experiment = 'reference_gf_llama8b'")
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
    proc = subprocess.run([sys.executable, "-m", "inoc.cli", "main"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    assert "INOC_SHARED_DIR" in proc.stderr and "Traceback" not in proc.stderr
