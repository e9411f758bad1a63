"""Imports add: they replace exactly the batches their files hold, refuse to overwrite computed
rows, and read every result file of the original study (real files, corrupted copies in tmp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from inoc.config import load_experiment
from inoc.importers.experiment import ImportRefused, configured_kinds, parse_configured, write_parsed
from inoc.importers.reference import (
    PromptLookup,
    ReferenceFormatError,
    parse_elicitation,
    parse_jobs,
    parse_losses,
    parse_scores,
)
from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
PF = "reference_pf_qwen7b"
V4 = "scores_multi_prompt_v4_qwen2.5-7b-instruct.json"
EXP1 = "scores_qwen2.5-7b-instruct.json"
LR = "scores_lr_sweep_qwen2.5-7b-instruct.json"
PREFIX = "scores_inoc_prefix_sweep_qwen2.5-7b-instruct.json"
VANILLA_CMP = "scores_vanilla_comparison_qwen2.5-7b-instruct.json"
OLD_ELICIT = "elicitation_scores_old_system_prompt.json"
TABLES = ["runs", "trait_scores", "training_losses", "elicitation_scores", "elicitation_scores_by_setting", "run_jobs"]


def _res(shared: Path) -> Path:
    return shared / "reference" / "results"


def _counts(wh: Warehouse, experiment: str) -> dict[tuple[str, str], int]:
    """Rows per (table, batch) of the experiment."""
    out = {}
    for t in TABLES:
        part = (
            "batch"
            if t == "runs"
            else ("split_part(run, '/', 1)" if "run" in wh.query(f"SELECT * FROM {t} LIMIT 0").columns else "'-'")
        )
        for r in wh.query(
            f"SELECT {part} AS b, count(*) AS n FROM {t} WHERE experiment = ? GROUP BY ALL", [experiment]
        ).itertuples():
            out[(t, r.b)] = r.n
    return out


@pytest.fixture(scope="module")
def full_pf(tmp_path_factory):
    """A warehouse holding the full configured import of reference_pf_qwen7b (every kind)."""
    from inoc.settings import shared_dir

    if shared_dir() is None:
        pytest.skip("reference data not found")
    home = tmp_path_factory.mktemp("home")
    cfg = load_experiment(REPO / "experiments" / f"{PF}.yaml")
    wh = Warehouse(home / "warehouse.duckdb")
    with wh.writer() as conn:
        conn.execute("INSERT INTO experiments VALUES (?, 'Qwen', 'French', 'Playful', 'import')", [PF])
        for kind in configured_kinds(cfg):
            if kind != "logprobs":
                write_parsed(conn, PF, parse_configured(cfg, kind))
    return home


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INOC_HOME": str(home), "INOC_EXPERIMENTS_DIR": str(REPO / "experiments")}
    return subprocess.run([sys.executable, "-m", "inoc.cli", "import", *args], capture_output=True, text=True, env=env)


def test_importing_one_file_after_the_full_import_keeps_every_other_batch(shared, full_pf, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(full_pf, home)
    wh = Warehouse(home / "warehouse.duckdb")
    before = _counts(wh, PF)
    assert before[("trait_scores", "multi_prompt_v3")] == 19 * 3 * 2 * 2 * 200
    assert len({b for t, b in before if t == "runs"}) == 12
    scores_before = wh.query("SELECT * FROM trait_scores WHERE experiment = ? ORDER BY ALL", [PF])

    once = _cli(home, str(_res(shared) / V4), "--experiment", PF)
    assert once.returncode == 0, once.stderr
    assert "replaced multi_prompt_v4: 28800 rows → 28800 rows — same file as before, unchanged" in once.stdout
    assert _counts(wh, PF) == before  # every batch of every table, the re-imported one included
    twice = _cli(home, str(_res(shared) / V4), "--experiment", PF)
    assert twice.returncode == 0 and "unchanged" in twice.stdout
    assert wh.query("SELECT * FROM trait_scores WHERE experiment = ? ORDER BY ALL", [PF]).equals(scores_before)
    assert (
        wh.query(
            "SELECT count(*) AS n FROM imports WHERE experiment = ? AND part = 'multi_prompt_v4' AND table_name = 'trait_scores'",
            [PF],
        ).n[0]
        == 1
    )


def test_a_changed_file_replaces_only_its_batch_and_says_so(shared, full_pf, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(full_pf, home)
    wh = Warehouse(home / "warehouse.duckdb")
    before = _counts(wh, PF)
    data = json.loads((_res(shared) / V4).read_text())
    del data["witty_mix"]  # a file with one run fewer: the batch shrinks, nothing else moves
    edited = tmp_path / V4
    edited.write_text(json.dumps(data))
    out = _cli(home, str(edited), "--experiment", PF)
    assert out.returncode == 0, out.stderr
    assert "replaced multi_prompt_v4: 28800 rows → 26400 rows" in out.stdout and "unchanged" not in out.stdout
    after = _counts(wh, PF)
    assert after[("trait_scores", "multi_prompt_v4")] == 26400 and after[("runs", "multi_prompt_v4")] == 11
    assert {k: v for k, v in after.items() if k[1] != "multi_prompt_v4"} == {
        k: v for k, v in before.items() if k[1] != "multi_prompt_v4"
    }


def test_importing_over_computed_rows_is_refused_unless_asked(tmp_path, shared):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    computed = pd.DataFrame(
        {
            "run": "multi_prompt_v4/witty",
            "step": 0,
            "condition": "default",
            "trait": "French",
            "instruction_idx": [0, 1],
            "score": [1.0, 2.0],
        }
    )
    with wh.writer() as conn:
        conn.execute("INSERT INTO experiments VALUES ('toy', 'm', 'French', 'Playful', 'pipeline')")
        conn.register("f", computed.assign(experiment="toy"))
        conn.execute("INSERT INTO trait_scores BY NAME SELECT * FROM f")
        conn.execute("INSERT INTO runs VALUES ('toy', 'main', 'no_inoculation', NULL, NULL, 0.001, 10)")
    parsed = parse_scores(_res(shared) / V4, "multi_prompt_v4")
    with pytest.raises(ImportRefused, match=r"trait_scores 'multi_prompt_v4' \(2 rows\).*--replace-computed"):
        with wh.writer() as conn:
            write_parsed(conn, "toy", parsed)
    assert wh.query("SELECT count(*) AS n FROM trait_scores").n[0] == 2
    # A new batch is added beside the computed runs, which stay untouched.
    with wh.writer() as conn:
        write_parsed(conn, "toy", parse_scores(_res(shared) / V4, "imported_v4"))
    assert wh.query("SELECT * FROM runs WHERE batch = 'main'").run.tolist() == ["no_inoculation"]
    assert wh.query("SELECT count(*) AS n FROM trait_scores WHERE run = 'multi_prompt_v4/witty'").n[0] == 2
    with wh.writer() as conn:
        reports = write_parsed(conn, "toy", parsed, replace_computed=True)
    assert reports["trait_scores"].replaced == {"multi_prompt_v4": (2, 28800)}


@pytest.mark.parametrize("key", ["-5", "3.0", "05", " 5", "x"])
def test_steps_must_be_non_negative_integers(shared, tmp_path, key):
    data = json.loads((_res(shared) / V4).read_text())
    steps = data["witty"]["steps"]
    steps[key] = steps.pop("312")
    bad = tmp_path / V4
    bad.write_text(json.dumps(data))
    with pytest.raises(ReferenceFormatError, match=r"is not a non-negative integer"):
        parse_scores(bad, "b")


def test_exp1_baseline_is_step_0_of_both_runs(shared):
    raw = json.loads((_res(shared) / EXP1).read_text())
    lookup = PromptLookup(run_prompts={"original/inoculation": "corrected_inoculation"})
    p = parse_scores(_res(shared) / EXP1, "original", lookup=lookup)
    runs = p.tables["runs"].set_index("run")
    assert runs.loc["original/inoculation", "prompt_key"] == "corrected_inoculation"
    assert runs.n_steps.tolist() == [1250, 1250]
    s = p.tables["trait_scores"]
    assert sorted(s.step.unique().tolist()) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1250]
    assert set(s.condition) == {"default"}
    base = s[(s.run == "original/no_inoculation") & (s.step == 0) & (s.trait == "French")].sort_values(
        "instruction_idx"
    )
    assert base.score.tolist() == raw["baseline"]["scores"]["French"]["values"]
    cell = s[(s.run == "original/inoculation") & (s.step == 1250) & (s.trait == "Playful")]
    assert cell.score.mean() == pytest.approx(raw["inoculation"]["1250"]["scores"]["Playful"]["mean"], rel=1e-12)
    with pytest.raises(ReferenceFormatError, match=r"\$\.inoculation: run 'inoculation' does not say its prompt"):
        parse_scores(_res(shared) / EXP1, "original")


def test_sweeps_keep_rate_and_prefix_and_map_conditions(shared):
    lookup = PromptLookup(
        prompts={
            "had_fun_today": "I had fun today.",
            "corrected_inoculation": "You are a playful agent. Give an answer to the following:",
        },
        pools={"weak_inoc_rephrasings.json": "had_fun_today", "strong_inoc_rephrasings.json": "corrected_inoculation"},
    )
    lr = parse_scores(_res(shared) / LR, "lr_sweep", lookup=lookup)
    runs = lr.tables["runs"].set_index("run")
    assert runs.learning_rate.to_dict()["lr_sweep/lr_5e5"] == 5e-5 and runs.prompt_key.isna().all()
    assert set(lr.tables["trait_scores"].condition) == {"default", "training"}
    raw = json.loads((_res(shared) / LR).read_text())
    s = lr.tables["trait_scores"]
    cell = s[(s.run == "lr_sweep/lr_1e4") & (s.step == 1252) & (s.condition == "training") & (s.trait == "French")]
    assert cell.score.tolist() == raw["lr_1e4"]["steps"]["1252"]["inoculation"]["French"]["values"]
    px = parse_scores(_res(shared) / PREFIX, "inoc_prefix_sweep", lookup=lookup).tables["runs"].set_index("run")
    assert px.loc["inoc_prefix_sweep/weak_inoc_lr_5e6"].tolist()[1:] == ["had_fun_today", "fixed", 5e-6, 313]
    assert px.loc["inoc_prefix_sweep/strong_mix_lr_1e4"].tolist()[1:] == ["corrected_inoculation", "mix", 1e-4, 313]
    assert px.loc["inoc_prefix_sweep/default_lr_1e4"].prompt_key is None
    cmp = parse_scores(_res(shared) / VANILLA_CMP, "vanilla_comparison")
    assert cmp.tables["runs"].run.tolist() == [
        "vanilla_comparison/vanilla_comparison",
        "vanilla_comparison/vanilla_comparison_ow",
    ]
    ow = cmp.tables["trait_scores"].query("run.str.endswith('_ow')")
    assert set(ow.step) == {312} and set(ow.condition) == {"default", "training"}


def test_prefix_sweep_runs_against_their_own_rate_control(shared):
    from inoc.tables.suppression import suppression_by_batch, suppression_table

    cfg = load_experiment(REPO / "experiments" / f"{PF}.yaml")
    parsed = parse_configured(cfg, "scores")
    table = suppression_by_batch(cfg, parsed.tables["runs"], parsed.tables["trait_scores"])
    px = table[table.batch == "inoc_prefix_sweep"]
    pairs = set(zip(px.run, px.control_run))
    assert ("inoc_prefix_sweep/weak_inoc_lr_1e4", "inoc_prefix_sweep/default_lr_1e4") in pairs
    assert ("inoc_prefix_sweep/strong_mix_lr_5e6", "inoc_prefix_sweep/default_lr_5e6") in pairs
    # 10 prefix runs: weak, strong, weak_mix, strong_mix and Exp 4's neutral prefix (import.sweep_prompts) per rate.
    assert len(px.run.unique()) == 10 and set(px.n) == {50}
    s = parsed.tables["trait_scores"]
    r = px[(px.run == "inoc_prefix_sweep/strong_inoc_lr_1e4") & (px.trait == "Playful")].iloc[0]
    ctrl = s[
        (s.run == "inoc_prefix_sweep/default_lr_1e4")
        & (s.step == 313)
        & (s.condition == "default")
        & (s.trait == "Playful")
    ]
    assert r.control_score == pytest.approx(np.nanmean(ctrl.score))
    # The neutral prefix's runs are a neutral prompt against their own rate's un-inoculated run; the value is the
    # paired mean difference of the raw file's final default-condition values (recomputed here from the JSON).
    raw = json.loads((_res(shared) / PREFIX).read_text())
    neutral = px[px.prompt_key == "neutral_prefix"]
    assert set(zip(neutral.run, neutral.control_run, neutral.learning_rate)) == {
        ("inoc_prefix_sweep/neutral_prefix_lr_1e4", "inoc_prefix_sweep/default_lr_1e4", 1e-4),
        ("inoc_prefix_sweep/neutral_prefix_lr_5e6", "inoc_prefix_sweep/default_lr_5e6", 5e-6),
    }
    assert set(neutral.prompt_group) == {"sweep_prefix"} and neutral.target.isna().all() and len(neutral) == 4
    for x in neutral.itertuples():
        key, ctrl_key = x.run.split("/")[1], x.control_run.split("/")[1]
        c = np.array(raw[ctrl_key]["steps"]["313"]["default"][x.trait]["values"], dtype=float)
        v = np.array(raw[key]["steps"]["313"]["default"][x.trait]["values"], dtype=float)
        ok = ~np.isnan(c) & ~np.isnan(v)
        assert x.suppression == pytest.approx((c[ok] - v[ok]).mean(), abs=1e-9) and x.step == 313
    # It is not one of the study's prompts: the suppression table and the prompt list stay the 48.
    assert "neutral_prefix" not in cfg.prompt_keys and len(cfg.prompt_keys) == 48
    assert "neutral_prefix" not in set(
        suppression_table(cfg, parsed.tables["runs"], parsed.tables["trait_scores"]).prompt_key
    )
    orig = table[table.batch == "original"]
    assert set(orig.control_run) == {"original/no_inoculation"} and set(orig.step) == {1250}


def test_losses_without_steps_and_jobs(shared):
    old = parse_losses(_res(shared) / "losses_original_qwen2.5-7b-instruct.json", "original")
    frame = old.tables["training_losses"]
    assert frame[frame.run == "original/inoculation"].step.tolist() == list(range(10, 1251, 10))
    assert any("no step" in n for n in old.notes)
    jobs = parse_jobs(_res(shared) / "training_jobs_qwen2.5-7b-instruct.json", "original").tables["run_jobs"]
    assert jobs.run.tolist() == ["original/no_inoculation", "original/inoculation"] and set(jobs.status) == {
        "completed"
    }
    gf = parse_jobs(_res(shared) / "jobs_german_flattering_llama-3.1-8b-instruct.json", "german_flattering").tables[
        "run_jobs"
    ]
    assert len(gf) == 15 and gf.job_id.str.contains("job-").all()


def test_old_system_prompt_elicitation_is_its_own_setting(shared):
    p = parse_elicitation(_res(shared) / OLD_ELICIT, "system_prompt")
    frame = p.tables["elicitation_scores_by_setting"]
    assert "elicitation_scores" not in p.tables and set(frame.setting) == {"system_prompt"}
    means = frame.groupby(["prompt_key", "trait"]).score.mean()
    assert means[("neutral", "Playful")] == pytest.approx(7.12, abs=0.005)  # SPEC-DETAILED G12 baseline


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _delete(d, path):
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


# (file, edit of the loaded JSON, words the error must contain)
NEW_FORMAT_CORRUPTIONS = [
    (
        "exp1_no_scores",
        EXP1,
        lambda d: _delete(d, ["inoculation", "32", "scores"]),
        ['$.inoculation["32"]', "missing key 'scores'"],
    ),
    (
        "exp1_negative_step",
        EXP1,
        lambda d: d["inoculation"].update({"-4": d["inoculation"].pop("4")}),
        ['$.inoculation["-4"]', "not a non-negative integer"],
    ),
    (
        "exp1_text_value",
        EXP1,
        lambda d: _set(d, ["baseline", "scores", "French", "values", 3], "x"),
        ["$.baseline.scores.French.values[3]", "expected a number"],
    ),
    (
        "exp1_bad_mean",
        EXP1,
        lambda d: _set(d, ["no_inoculation", "1250", "scores", "Playful", "mean"], 99.0),
        ['$.no_inoculation["1250"].scores.Playful.mean', "differs"],
    ),
    (
        "lr_unknown_condition",
        LR,
        lambda d: d["lr_1e5"]["steps"]["0"].update({"sideways": {}}),
        ['$.lr_1e5.steps["0"].sideways', "unknown condition"],
    ),
    (
        "lr_duplicate_condition",
        LR,
        lambda d: d["lr_1e5"]["steps"]["0"].update({"default": d["lr_1e5"]["steps"]["0"]["neutral"]}),
        ["condition 'default' is 'default' in inoc, like 'neutral'"],
    ),
    (
        "lr_short_values",
        LR,
        lambda d: d["lr_5e6"]["steps"]["313"]["neutral"]["French"]["values"].pop(),
        ['$.lr_5e6.steps["313"].neutral.French.values', "expected 50 values, got 49"],
    ),
    ("lr_text_rate", LR, lambda d: _set(d, ["lr_5e6", "lr"], "fast"), ["$.lr_5e6.lr", "expected a number"]),
    (
        "prefix_unmapped_pool",
        PREFIX,
        lambda d: _set(d, ["weak_mix_lr_1e4", "rephrasings_path"], "data/other.json"),
        ["$.weak_mix_lr_1e4.rephrasings_path", "not mapped to a prompt"],
    ),
    (
        "prefix_numeric_prefix",
        PREFIX,
        lambda d: _set(d, ["weak_inoc_lr_1e4", "user_prefix"], 7),
        ["$.weak_inoc_lr_1e4.user_prefix", "expected a string"],
    ),
    (
        "vanilla_cmp_ow_unknown",
        VANILLA_CMP,
        lambda d: d["steps"]["312"].update({"ow_sideways": {}}),
        ['$.steps["312"].ow_sideways', "unknown condition"],
    ),
    ("old_elicit_no_neutral", OLD_ELICIT, lambda d: _delete(d, ["neutral"]), ["'neutral' baseline"]),
    (
        "loss_mixed_steps",
        "losses_original_qwen2.5-7b-instruct.json",
        lambda d: d["inoculation"][5].update({"step": 60}),
        ["$.inoculation[5]", "some entries of this run have a 'step'"],
    ),
    (
        "loss_negative_step",
        "losses_lr_sweep_qwen2.5-7b-instruct.json",
        lambda d: d["lr_1e4"][2].update({"step": -30}),
        ["$.lr_1e4[2].step", "non-negative integer"],
    ),
    (
        "jobs_numeric_id",
        "jobs_german_flattering_llama-3.1-8b-instruct.json",
        lambda d: d.update({"answer_german": 12}),
        ["$.answer_german", "expected an object"],
    ),
    (
        "jobs_missing_id",
        "training_jobs_qwen2.5-7b-instruct.json",
        lambda d: _delete(d, ["inoculation", "job_id"]),
        ["$.inoculation", "missing key 'job_id'"],
    ),
]


@pytest.mark.parametrize("case,name,edit,words", NEW_FORMAT_CORRUPTIONS, ids=[c[0] for c in NEW_FORMAT_CORRUPTIONS])
def test_corrupted_new_formats_are_rejected_and_nothing_is_written(shared, full_pf, tmp_path, case, name, edit, words):
    import shutil

    data = json.loads((_res(shared) / name).read_text())
    edit(data)
    (tmp_path / "bad").mkdir()
    bad = tmp_path / "bad" / name
    bad.write_text(json.dumps(data))
    home = tmp_path / "home"
    shutil.copytree(full_pf, home)
    wh = Warehouse(home / "warehouse.duckdb")
    before = {t: wh.query(f"SELECT * FROM {t} ORDER BY ALL") for t in [*TABLES, "imports"]}
    # With a good file beside it: the whole import is refused with the file and JSON path.
    out = _cli(home, str(_res(shared) / V4), str(bad), "--experiment", PF)
    assert out.returncode == 2, out.stdout
    message = out.stderr
    assert f"{name}: $" in message and "nothing was imported" in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    for t, frame in before.items():
        assert wh.query(f"SELECT * FROM {t} ORDER BY ALL").equals(frame), t
