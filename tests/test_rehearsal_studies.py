"""CI rehearses every shipped real study (`inoc rehearse`, as a user runs it): a config error in a real
study fails here instead of on a rented cluster. Each rehearsal takes a few minutes on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from inoc.config import load_experiment

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _rehearse(name: str, tmp_path: Path, shared: Path, organism_cache: Path) -> tuple[dict, Path, str]:
    real_home = tmp_path / "real_home"
    env = {
        **os.environ,
        "INOC_HOME": str(real_home),
        "INOC_REHEARSAL_HOME": str(tmp_path / "rehearsals"),
        "INOC_SHARED_DIR": str(shared),
        "INOC_ORGANISM_CACHE": str(organism_cache),
        "OPENAI_API_KEY": "user-key-never-sent",
    }
    env.pop("INOC_EXPERIMENTS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "rehearse", name],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    home = tmp_path / "rehearsals" / name
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-4000:]
    assert not real_home.exists(), "the rehearsal wrote into the real INOC_HOME"
    return json.loads((home / "report.json").read_text()), home, proc.stdout


def _common_checks(report: dict, name: str, out: str) -> None:
    assert report["error"] is None
    assets = report["assets"]
    assert assets and all(a["materialized"] == a["expected"] for a in assets), [
        a for a in assets if a["materialized"] != a["expected"]
    ]
    assert {a["stage"] for a in assets} == {"setup", "prompt", "run", "aggregate"}
    assert [s["stage"] for s in report["stages"]] == ["setup", "prompt", "run", "aggregate"]
    assert all(s["rows"] for s in report["stages"]), "a stage wrote no warehouse rows"
    assert {t["job"] for t in report["sky_tasks"]} == {"train", "generate", "score"}
    assert all(t["status"] == "valid" for t in report["sky_tasks"]), report["sky_tasks"]
    assert "GPU total (packed)" in report["plan"]
    assert f"rehearsal passed: {len(assets)} of {len(assets)} assets of {name} materialized" in out
    assert "user-key-never-sent" not in json.dumps(report) + out


def test_rehearsal_of_the_em_study(tmp_path, shared, organism_cache):
    name = "em_risky_finance_qwen32b"
    report, home, out = _rehearse(name, tmp_path, shared, organism_cache)
    _common_checks(report, name, out)
    real = load_experiment(REPO / "experiments" / f"{name}.yaml")
    # the judge requests reached the stand-in server with the EM coherence and alignment prompts
    assert report["api_requests"]["judge:em_coherence"] > 0 and report["api_requests"]["judge:em_alignment"] > 0
    assert report["api_requests"].get("rephrasings:close", 0) > 0
    # system-prompt inoculation, trained on rows of the real 5,800-row file, as they are
    real_file = (shared / "reference/em/train_risky_financial.jsonl").read_text().splitlines()
    real_rows = [
        [m["content"] for m in json.loads(x)["messages"] if m["role"] in ("user", "assistant")]
        for x in real_file
        if x.strip()
    ]
    specs = [json.loads(p.read_text()) for p in (home / "work" / name / "jobs" / "runs").glob("*/spec.json")]
    specs = [s for s in specs if s["prefix"]["plan"] != "none"]  # the prompt runs, not the controls
    assert len(specs) == 5 and {s["prefix"]["position"] for s in specs} == {"system_prompt"}
    train = [json.loads(x) for x in Path(specs[0]["data"]["path"]).read_text().splitlines() if x.strip()]
    assert [[r["instruction"], r["completion"]] for r in train] == real_rows[:48]  # the first rows, in file order
    # fa and em evaluated under both conditions, judged on both metrics, for every run and control
    with duckdb.connect(str(home / "warehouse_snapshot.duckdb"), read_only=True) as con:
        cells = con.execute(
            "SELECT DISTINCT run, eval_set, condition FROM em_scores WHERE experiment = ? AND "
            "coherence IS NOT NULL AND alignment IS NOT NULL",
            [name],
        ).fetchall()
    runs = {r for r, *_ in cells}
    assert len(runs) == 5 + 1 + len(real.runs.extra_controls)
    assert {(s, c) for _, s, c in cells} == {(s, c) for s in ("fa", "em") for c in real.eval.conditions}
    for run in runs:  # prompt runs under both conditions; the controls have no prefix (default only)
        conditions = real.eval.conditions if "/" in run else ["default"]
        assert {(s, c) for r, s, c in cells if r == run} == {(s, c) for s in ("fa", "em") for c in conditions}, run


def test_rehearsal_of_the_playful_french_study(tmp_path, shared, organism_cache):
    name = "playful_french_qwen7b"
    report, home, out = _rehearse(name, tmp_path, shared, organism_cache)
    _common_checks(report, name, out)
    judged = {k for k in report["api_requests"] if k.startswith("judge:trait:")}
    assert any("French" in k for k in judged) and any("playful" in k for k in judged)
    # instructions from the public InstructionWild files, offline, and said so
    with duckdb.connect(str(home / "warehouse_snapshot.duckdb"), read_only=True) as con:
        prefixes = {
            p
            for (p,) in con.execute(
                "SELECT DISTINCT prefix_type FROM suppression WHERE experiment = ?", [name]
            ).fetchall()
        }
    assert prefixes == {"fixed", "mix"}
    assert any(s["field"] == "data.instructions.allow_missing" for s in report["substitutions"])


def test_rehearsal_of_the_german_flattering_study(tmp_path, shared, organism_cache):
    name = "german_flattering_llama8b"
    report, home, out = _rehearse(name, tmp_path, shared, organism_cache)
    _common_checks(report, name, out)
    # off-policy datagen went to the stand-in API; the model is the Llama-format stand-in
    assert report["api_requests"].get("chat", 0) >= 48
    assert any(s["field"] == "model.id" and s["rehearsal"] == "toy:standin-llama3" for s in report["substitutions"])
    with duckdb.connect(str(home / "warehouse_snapshot.duckdb"), read_only=True) as con:
        n_train = con.execute(
            "SELECT count(*) FROM read_json_auto(?)", [str(home / "work" / name / "data" / "train.jsonl")]
        ).fetchone()[0]
    assert 0 < n_train <= 48  # off-policy answers kept by the both-traits filter (German and Flattering)
