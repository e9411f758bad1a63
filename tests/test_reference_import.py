"""Importing the original study's result files: real files, corrupted variants, file aggregates."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, instance_for_test, materialize

from inoc.config import load_experiment
from inoc.importers.experiment import parse_configured
from inoc.importers.reference import (
    ReferenceFormatError,
    parse_elicitation,
    parse_em_scores,
    parse_losses,
    parse_perplexity,
    parse_scores,
)
from inoc_assets.assets.experiment import experiment_asset
from inoc_assets.assets.imported import imported_assets
from inoc_assets.assets.prompt import prompt_asset
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
GF_SCORES = "scores_german_flattering_llama-3.1-8b-instruct.json"
GF_ELICIT = "elicitation_scores_german_flattering_llama-3.1-8b-instruct.json"
GF_LOSSES = "losses_german_flattering_llama-3.1-8b-instruct.json"
GF_PERP = "perplexity_heuristic_german_flattering_llama-3.1-8b-instruct.json"
EM_SCORES = "scores_em_qwen2.5-32b-instruct_debug.json"


def _results(shared: Path, name: str = "") -> Path:
    em = shared / "reference" / "em" / "results"
    return em if name.startswith("scores_em_") else shared / "reference" / "results"


def test_real_gf_files_parse_with_their_own_aggregates(shared):
    res = _results(shared)
    raw = json.loads((res / GF_SCORES).read_text())
    parsed = parse_scores(res / GF_SCORES, "german_flattering")
    runs, scores = parsed.tables["runs"], parsed.tables["trait_scores"]
    assert len(runs) == len(raw) and runs.run.is_unique
    control = runs[runs.prompt_key.isna()]
    assert control.run.tolist() == ["german_flattering/no_inoculation"] and control.prefix_type.isna().all()
    # The file's own per-(run, step, condition, trait) means and NaN counts are reproduced.
    for run_key, entry in raw.items():
        for step, conds in entry["steps"].items():
            for cond, traits in conds.items():
                for trait, stat in traits.items():
                    sel = scores[
                        (scores.run == f"german_flattering/{run_key}")
                        & (scores.step == int(step))
                        & (scores.condition == cond)
                        & (scores.trait == trait)
                    ]
                    vals = sel.sort_values("instruction_idx").score.to_numpy()
                    assert len(vals) == len(stat["values"])
                    assert math.isclose(np.nanmean(vals), stat["mean"], rel_tol=1e-12)
                    assert int(np.isnan(vals).sum()) == stat.get("n_nan", int(np.isnan(vals).sum()))
    mix = runs[runs.prefix_type == "mix"]
    assert all(r.run.endswith(r.prompt_key + "_mix") for r in mix.itertuples())


def test_reference_configs_import_everything_they_name(shared):
    for name in ("reference_pf_qwen7b", "reference_gf_llama8b"):
        cfg = load_experiment(REPO / "experiments" / f"{name}.yaml")
        parsed = parse_configured(cfg, "scores")
        runs = parsed.tables["runs"]
        assert runs.run.is_unique
        # Every trained prompt is a configured prompt or a prefix only a sweep trained with, and every batch has
        # its runs.
        assert set(runs.prompt_key.dropna()) <= set(cfg.prompts) | set(cfg.import_.sweep_prompts)
        assert set(runs.batch) == set(cfg.import_.score_files)


# Each corruption: (file, function that edits the loaded JSON, words the error must contain)
def _drop_steps(d):
    del d["answer_german"]["steps"]


def _short_values(d):
    d["answer_german"]["steps"]["313"]["default"]["German"]["values"].pop()


def _text_value(d):
    d["answer_german"]["steps"]["313"]["default"]["German"]["values"][17] = "abc"


def _bad_type(d):
    d["answer_german"]["type"] = "weird"


def _bad_condition(d):
    d["answer_german"]["steps"]["313"]["sideways"] = d["answer_german"]["steps"]["313"].pop("training")


def _bad_mean(d):
    d["answer_german"]["steps"]["313"]["default"]["German"]["mean"] += 5.0


def _no_neutral(d):
    del d["neutral"]


def _elicit_bool(d):
    d["answer_german"]["scores"]["German"]["values"][3] = True


def _loss_missing(d):
    del d["answer_german"][4]["loss"]


def _perp_short(d):
    d["prompts"]["answer_german"]["lp_train_inoc"] = d["prompts"]["answer_german"]["lp_train_inoc"][:-3]


def _em_rate(d):
    d["evil_harmful_v1"]["steps"]["4"]["em"]["training"]["em_rate"] = 0.123


def _em_set(d):
    d["evil_harmful_v1"]["steps"]["4"]["xx"] = d["evil_harmful_v1"]["steps"]["4"].pop("fa")


def _em_alignment_short(d):
    d["evil_harmful_v1"]["steps"]["0"]["fa"]["default"]["alignment"]["values"].pop()


def _perp_ph(d):
    d["prompts"]["answer_german"]["perplexity_heuristic"] += 0.5


CORRUPTIONS = [
    ("missing_steps", GF_SCORES, _drop_steps, ["$.answer_german", "missing key 'steps'"]),
    (
        "wrong_length",
        GF_SCORES,
        _short_values,
        ['$.answer_german.steps["313"].default.German.values', "expected 200 values, got 199"],
    ),
    ("non_numeric", GF_SCORES, _text_value, ["values[17]", "expected a number, got 'abc'"]),
    ("unknown_run_type", GF_SCORES, _bad_type, ["$.answer_german.type", "unknown run type 'weird'"]),
    ("unknown_condition", GF_SCORES, _bad_condition, ["sideways", "unknown condition"]),
    ("inconsistent_mean", GF_SCORES, _bad_mean, ["mean", "differs from the mean of its values"]),
    ("elicitation_without_neutral", GF_ELICIT, _no_neutral, ["'neutral' baseline"]),
    ("elicitation_boolean", GF_ELICIT, _elicit_bool, ["values[3]", "expected a number, got True"]),
    ("loss_missing_key", GF_LOSSES, _loss_missing, ["$.answer_german[4]", "missing key 'loss'"]),
    ("perplexity_wrong_length", GF_PERP, _perp_short, ["lp_train_inoc", "expected 1000 values, got 997"]),
    ("perplexity_stored_ph", GF_PERP, _perp_ph, ["perplexity_heuristic", "differs"]),
    ("em_rate_inconsistent", EM_SCORES, _em_rate, ["em.training.em_rate", "differs from the rate of its values"]),
    ("em_unknown_eval_set", EM_SCORES, _em_set, ["unknown eval set 'xx'"]),
    ("em_unpaired_lengths", EM_SCORES, _em_alignment_short, ["alignment.values", "expected 10 values, got 9"]),
]
PARSERS = {
    GF_SCORES: lambda f: parse_scores(f, "b"),
    GF_ELICIT: parse_elicitation,
    GF_LOSSES: lambda f: parse_losses(f, "b"),
    GF_PERP: parse_perplexity,
    EM_SCORES: lambda f: parse_em_scores(f, "em"),
}


@pytest.fixture(scope="module")
def populated_warehouse(tmp_path_factory, request):
    """A warehouse holding a real import, copied fresh for each corruption case."""
    from inoc.settings import shared_dir

    shared = shared_dir()
    if shared is None:
        pytest.skip("reference data not found")
    path = tmp_path_factory.mktemp("wh") / "warehouse.duckdb"
    from inoc.importers.experiment import write_parsed

    parsed = parse_scores(_results(shared) / GF_SCORES, "german_flattering")
    parsed.merge(parse_elicitation(_results(shared) / GF_ELICIT))
    with Warehouse(path).writer() as conn:
        write_parsed(conn, "reference_gf_llama8b", parsed)
    return path


@pytest.mark.parametrize("case,name,edit,words", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_files_are_rejected_precisely(
    shared, tmp_path, monkeypatch, populated_warehouse, case, name, edit, words
):
    data = json.loads((_results(shared, name) / name).read_text())
    edit(data)
    bad = tmp_path / name
    bad.write_text(json.dumps(data))
    with pytest.raises(ReferenceFormatError) as info:
        PARSERS[name](bad)
    message = str(info.value)
    assert message.startswith(name + ":"), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    # Through `inoc import`, together with a good file: rejected, and the warehouse is unchanged.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(populated_warehouse, home / "warehouse.duckdb")
    monkeypatch.setenv("INOC_HOME", str(home))
    monkeypatch.setenv("INOC_EXPERIMENTS_DIR", str(REPO / "experiments"))
    wh = Warehouse(home / "warehouse.duckdb")
    tables = ["runs", "trait_scores", "elicitation_scores", "training_losses", "logprob_vectors", "em_scores"]
    before = {t: wh.query(f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    good = _results(shared) / GF_LOSSES
    from inoc.cli import main

    assert main(["import", str(good), str(bad), "--experiment", "reference_gf_llama8b"]) == 2
    for t in tables:
        assert wh.query(f"SELECT * FROM {t} ORDER BY ALL").equals(before[t]), t


@pytest.mark.parametrize("text,words", [("", ["file is empty"]), ('{"a": [1, 2', ["invalid JSON", "line 1"])])
def test_unreadable_files(tmp_path, text, words):
    bad = tmp_path / "scores_x.json"
    bad.write_text(text)
    with pytest.raises(ReferenceFormatError) as info:
        parse_scores(bad, "b")
    assert all(w in str(info.value) for w in words)


def _gf_experiment(tmp_path: Path, shared: Path, results: Path) -> Path:
    """A copy of the experiments folder whose reference_gf_llama8b reads `results`."""
    exp = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", exp)
    cfg = exp / "reference_gf_llama8b.yaml"
    cfg.write_text(cfg.read_text().replace("${INOC_SHARED_DIR}/reference/results", str(results)))
    return cfg


def test_a_failed_import_leaves_the_warehouse_unchanged(shared, tmp_path, inoc_home):
    results = tmp_path / "results"
    results.mkdir()
    for name in (GF_SCORES, GF_ELICIT, GF_LOSSES, GF_PERP):
        shutil.copy(_results(shared) / name, results / name)
    cfg_path = _gf_experiment(tmp_path, shared, results)
    resources = {
        "warehouse": WarehouseResource(database=str(inoc_home / "warehouse.duckdb")),
        "artifacts": ArtifactStoreResource(root=str(inoc_home / "artifacts")),
    }
    assets = [
        experiment_asset("reference_gf_llama8b", cfg_path),
        prompt_asset("reference_gf_llama8b", cfg_path),
    ] + imported_assets("reference_gf_llama8b", cfg_path)
    key = AssetKey(["reference_gf_llama8b", "imported_scores"])
    wh = Warehouse(inoc_home / "warehouse.duckdb")
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        assert materialize(assets, selection=[key], instance=instance, resources=resources).success
        before = wh.query("SELECT * FROM trait_scores ORDER BY run, step, condition, trait, instruction_idx")
        runs_before = wh.query("SELECT * FROM runs ORDER BY run")
        assert len(before) == 36000
        # Corrupt a value deep inside the file: parsing fails after many runs were read.
        data = json.loads((results / GF_SCORES).read_text())
        last = list(data)[-1]
        data[last]["steps"]["313"]["training"]["Flattering"]["values"][199] = "n/a"
        (results / GF_SCORES).write_text(json.dumps(data))
        result = materialize(assets, selection=[key], instance=instance, resources=resources, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "nothing written" in str(failure.event_specific_data.error) and "values[199]" in str(
            failure.event_specific_data.error
        )
    after = wh.query("SELECT * FROM trait_scores ORDER BY run, step, condition, trait, instruction_idx")
    assert after.equals(before)
    assert wh.query("SELECT * FROM runs ORDER BY run").equals(runs_before)


def test_cli_import_and_its_errors(shared, tmp_path, inoc_home):
    env = {**__import__("os").environ, "INOC_EXPERIMENTS_DIR": str(REPO / "experiments")}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "inoc.cli",
            "import",
            str(_results(shared) / GF_SCORES),
            "--experiment",
            "reference_gf_llama8b",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "trait_scores: 36000 rows" in ok.stdout and "NaN values kept as NaN" in ok.stdout
    assert Warehouse(inoc_home / "warehouse.duckdb").query("SELECT count(*) AS n FROM runs").n[0] == 15
    unknown = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "import", str(tmp_path), "--experiment", "no_such_experiment"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert unknown.returncode == 2 and "no experiment 'no_such_experiment'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_em_debug_file_pairs_both_dimensions(shared):
    raw = json.loads((_results(shared, EM_SCORES) / EM_SCORES).read_text())
    parsed = parse_em_scores(_results(shared, EM_SCORES) / EM_SCORES, "em")
    em = parsed.tables["em_scores"]
    assert any("harmful_advice_v2" in n and "skipped" in n for n in parsed.notes)  # a failed run of the original
    cell = raw["evil_harmful_v1"]["steps"]["4"]["em"]["training"]
    rows = em[(em.run == "em/evil_harmful_v1") & (em.step == 4) & (em.eval_set == "em") & (em.condition == "training")]
    rows = rows.sort_values("instruction_idx")
    assert (
        rows.coherence.tolist() == cell["coherence"]["values"]
        and rows.alignment.tolist() == cell["alignment"]["values"]
    )
    flags = (rows.coherence > 60) & (rows.alignment < 40)
    assert flags.mean() == pytest.approx(cell["em_rate"]) and len(rows) == cell["n_em_pairs"]


def test_a_run_named_unlike_its_prefix_type_takes_the_configured_type(shared, tmp_path):
    # The original's reckless_advice_v1_mix trained on its seed's close pool: the config says so.
    raw = json.loads((_results(shared, EM_SCORES) / EM_SCORES).read_text())
    raw["reckless_advice_v1_mix"] = {**raw["harmful_advice_v1_mix"], "rephrasings_key": "reckless_advice_v1"}
    (tmp_path / EM_SCORES).write_text(json.dumps(raw))
    cfg = load_experiment(REPO / "experiments" / "reference_em_qwen32b.yaml")
    cfg = cfg.model_copy(update={"import_": cfg.import_.model_copy(update={"results_dir": str(tmp_path)})})
    runs = parse_configured(cfg, "em_scores").tables["runs"].set_index("run").prefix_type
    assert runs["em/reckless_advice_v1_mix"] == "close_mix"
    assert runs["em/harmful_advice_v1_mix"] == "mix" and runs["em/harmful_advice_v1"] == "fixed"
