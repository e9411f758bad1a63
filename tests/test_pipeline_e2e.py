"""The computed pipeline end to end on a small organism study: killed and resumed, rerun, backfilled.

One module-scoped study (`toy_small`: the `test` organism profile, 200 training examples, 20 eval
instructions, three prompts, one mix run) runs through `inoc main` in a subprocess that is killed
with SIGKILL (its whole process group, as a dying machine would) at a seeded random moment after its
first training run finished, then rerun to completion. The tests then check what a researcher relies on: complete, uncorrupted
artifacts; partitions finished before the kill not recomputed; an idempotent rerun; a new prompt
backfilled alone; the tables in the warehouse.
"""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpu_jobs import io as job_io
from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(1500)

SMALL = """\
extends: toy
replace: [prompts, groups]
name: toy_small
description: the toy study shrunk for the tests
model: {id: "toy:test", slug: toy-test}
data:
  n_train: 200
  n_eval: 20
logprobs: {n_train_sample: 40}
rephrasings: {n: 30, source: organism, min_pool: 20}
runs: {mix_prompts: [corrected_inoculation]}
prompts:
  corrected_inoculation: "You are a playful agent. Give an answer to the following:"
  had_fun_today: "I had fun today."
  the_sky_is_blue: "The sky is blue."
groups:
  strong: {role: negative, family: playful, prompts: [corrected_inoculation]}
  weak: {role: negative, family: playful, prompts: [had_fun_today]}
  neutral: {role: neutral, family: neutral, prompts: [the_sky_is_blue]}
"""


class Study:
    def __init__(self, root: Path, organism_cache: Path):
        self.root = root
        self.home = root / "home"
        self.experiments = root / "experiments"
        self.experiments.mkdir(parents=True)
        shutil.copy(REPO / "experiments" / "toy.yaml", self.experiments / "toy.yaml")
        (self.experiments / "toy_small.yaml").write_text(SMALL)
        self.env = {
            **os.environ,
            "INOC_HOME": str(self.home),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "INOC_EXPERIMENTS_DIR": str(self.experiments),
            "INOC_ORGANISM_CACHE": str(organism_cache),
            "INOC_GPU_JOB_THREADS": "2",
        }
        self.env.pop("INOC_ARTIFACT_ROOT", None)

    def inoc(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "inoc.cli", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "inoc.cli", *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def wh(self) -> Warehouse:
        return Warehouse(self.home / "warehouse.duckdb")

    def instance(self):
        from dagster import DagsterInstance

        os.environ["DAGSTER_HOME"] = str(self.home / "dagster")
        return DagsterInstance.get()


def _latest_ids(instance, asset: str) -> dict[str, int]:
    from dagster import AssetKey

    key = AssetKey(["toy_small", asset])
    out = {}
    for pk in instance.get_materialized_partitions(key):
        from dagster import AssetRecordsFilter

        rec = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, asset_partitions=[pk]), limit=1).records
        out[pk] = rec[0].storage_id
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory, organism_cache):
    s = Study(tmp_path_factory.mktemp("pipeline"), organism_cache)
    # Build the organism first so the kill lands in the pipeline, not in the build.
    from inoc.organism.build import build_base_model

    build_base_model("test", organism_cache)
    # Kill once the first run partition has finished (the second has started), a seeded moment later.
    proc = s.start("main", "--experiment", "toy_small")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "run 2/" in line:
            break
    s.killed_at = random.Random(20261127).uniform(0, 6)
    time.sleep(s.killed_at)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
    s.first_output = "".join(lines)
    with s.instance() as instance:
        s.before_resume = _latest_ids(instance, "run_scores")
    started = time.time()
    s.resume = s.inoc("main", "--experiment", "toy_small")
    s.resume_s = time.time() - started
    assert s.resume.returncode == 0, s.resume.stdout[-3000:] + s.resume.stderr[-3000:]
    return s


def test_resumed_run_completes_with_every_table(study):
    wh = study.wh
    runs = wh.query(
        "SELECT run, prompt_key, prefix_type, n_steps FROM runs WHERE experiment = 'toy_small' ORDER BY run"
    )
    assert runs.run.tolist() == [
        "corrected_inoculation/fixed",
        "corrected_inoculation/mix",
        "had_fun_today/fixed",
        "no_inoculation",
        "the_sky_is_blue/fixed",
    ]
    scores = wh.query(
        "SELECT run, step, condition, trait, count(*) AS n, count(DISTINCT instruction_idx) AS k "
        "FROM trait_scores WHERE experiment = 'toy_small' GROUP BY ALL"
    )
    assert (scores.n == 20).all() and (scores.k == 20).all()  # one score per instruction: no duplicates after resume
    assert set(scores[scores.run == "no_inoculation"].condition) == {"default"}
    assert set(scores[scores.run == "had_fun_today/fixed"].condition) == {"default", "training"}
    supp = wh.query("SELECT * FROM suppression WHERE experiment = 'toy_small'")
    assert len(supp) == 4 * 2 and (supp.n == 20).all()
    vec = wh.query(
        "SELECT prompt_key, vector, count(*) AS n FROM logprob_vectors WHERE experiment = 'toy_small' GROUP BY ALL"
    )
    got = {(r.prompt_key, r.vector): r.n for r in vec.itertuples()}
    assert got[(None, "train_default")] == 40 and got[("corrected_inoculation", "train_mix")] == 40
    assert got[(None, "ctrl_default")] == 20 and got[("the_sky_is_blue", "playful_inoc")] == 20
    heur = wh.query("SELECT DISTINCT heuristic FROM prompt_heuristics WHERE experiment = 'toy_small'").heuristic
    assert {
        "ph",
        "ppd",
        "elicitation_Playful",
        "self_ppl_raw",
        "self_ppl_context",
        "emb_cos_mean",
        "emb_l2_neutral",
    } <= set(heur)
    elic = wh.query(
        "SELECT prompt_key, count(*) AS n FROM elicitation_scores WHERE experiment = 'toy_small' GROUP BY ALL"
    )
    assert dict(zip(elic.prompt_key, elic.n)) == {
        k: 40 for k in ("neutral", "corrected_inoculation", "had_fun_today", "the_sky_is_blue")
    }
    figures = study.home / "artifacts" / "toy_small" / "figures"
    assert (figures / "suppression.png").stat().st_size > 5000 and (figures / "training_curves.png").is_file()
    assert "suppression (pp)" in study.resume.stdout and "corrected_inoculation" in study.resume.stdout


def test_no_partial_or_corrupt_artifact_after_the_kill(study):
    jobs = study.home / "work" / "toy_small" / "jobs"
    folders = [p.parent for p in jobs.rglob("spec.json")]
    assert len(folders) >= 10
    for folder in folders:
        marker = job_io.read_marker(folder)
        assert marker is not None, f"{folder} has no completion marker after the resumed run"
        assert job_io.check_outputs(folder, marker, deep=True) == [], folder
    for path in (study.home / "work" / "toy_small").rglob("*.jsonl"):
        if ".parts" not in path.parts:
            for _ in job_io.read_jsonl(path):  # raises on a torn line
                pass


def test_partitions_finished_before_the_kill_were_not_recomputed(study):
    with study.instance() as instance:
        after = _latest_ids(instance, "run_scores")
    assert len(after) == 4
    for pk, storage_id in study.before_resume.items():
        assert after[pk] == storage_id, f"{pk} was recomputed although it had finished before the kill"
    assert len(study.before_resume) >= 1, study.first_output[-2000:]
    print(
        f"killed {study.killed_at:.1f} s into run 2 with {len(study.before_resume)} run partition(s) done; "
        f"resume took {study.resume_s:.0f} s"
    )


def _latest_metadata(instance, asset: str, partition: str | None = None) -> dict:
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(
            asset_key=AssetKey(["toy_small", asset]), asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def test_every_partition_carries_its_own_results(study):
    """What a partition shows in the UI is that prompt's or run's own numbers, equal to the warehouse's."""
    elicitation = study.wh.query("SELECT * FROM elicitation_summary WHERE experiment = 'toy_small'")
    heur = study.wh.query("SELECT * FROM prompt_heuristics WHERE experiment = 'toy_small' AND prefix_type = 'fixed'")
    with study.instance() as instance:
        assert set(instance.get_dynamic_partitions("toy_small__runs")) == {
            "corrected_inoculation/fixed",
            "corrected_inoculation/mix",
            "had_fun_today/fixed",
            "the_sky_is_blue/fixed",
        }
        shown = {}
        for p in ("corrected_inoculation", "had_fun_today", "the_sky_is_blue"):
            meta = _latest_metadata(instance, "elicitation", p)
            row = elicitation[(elicitation.prompt_key == p) & (elicitation.trait == "Playful")].iloc[0]
            assert meta["Playful_mean"] == pytest.approx(row["mean"], abs=1e-3)
            assert meta["Playful_vs_baseline_pp"] == pytest.approx(row.relative_pp, abs=1e-3)
            shown[p] = meta["Playful_mean"]
            lp = _latest_metadata(instance, "logprobs", p)
            ph = heur[(heur.prompt_key == p) & (heur.heuristic == "ph")].value.iloc[0]
            assert lp["ph"] == pytest.approx(ph, abs=1e-4)
        assert len(set(shown.values())) == 3  # not one batch-wide number copied onto every partition
        run = _latest_metadata(instance, "runs", "corrected_inoculation/fixed")
        losses = study.wh.query(
            "SELECT loss FROM training_losses WHERE experiment = 'toy_small' "
            "AND run = 'corrected_inoculation/fixed' ORDER BY step"
        ).loss
        assert run["run"] == "corrected_inoculation/fixed" and run["final_loss"] == pytest.approx(
            losses.iloc[-1], abs=1e-3
        )
        scores = _latest_metadata(instance, "run_scores", "corrected_inoculation/fixed")
        final = study.wh.query(
            "SELECT mean FROM run_summary WHERE experiment = 'toy_small' AND run = "
            "'corrected_inoculation/fixed' AND condition = 'default' AND trait = 'French' "
            "ORDER BY step DESC LIMIT 1"
        )["mean"].iloc[0]
        assert scores["final_default_French"] == pytest.approx(final, abs=0.05)
        assert isinstance(_latest_metadata(instance, "suppression")["table"].records, list)  # a table, not markdown


def test_rerun_of_a_finished_study_skips_every_stage(study):
    with study.instance() as instance:
        runs_before = instance.get_runs_count()
    out = study.inoc("main", "--experiment", "toy_small")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "experiment-level stages are up to date" in out.stdout
    assert "rephrasings, elicitation and logprobs" not in out.stdout and "train → eval → judge" not in out.stdout
    # the aggregates and slides too: their inputs are unchanged, so not one Dagster run is launched
    assert "toy_small: aggregates are up to date" in out.stdout and "slides: up to date" in out.stdout
    assert "nothing to materialize: every stage was up to date" in out.stdout
    with study.instance() as instance:
        assert instance.get_runs_count() == runs_before
    before_tables = out.stdout.split("\n== ", 1)[0].strip().splitlines()
    assert len(before_tables) <= 6, before_tables


def test_main_output_is_one_line_per_stage_without_dagster_debug(study):
    """`inoc main` piped (not a TTY): stage and run lines, sparse progress, Dagster's output in the log."""
    for out in (study.first_output, study.resume.stdout + study.resume.stderr):
        assert " DEBUG " not in out and "STEP_WORKER_STARTED" not in out and "Traceback" not in out
    lines = study.resume.stdout.split("\n== ", 1)[0].strip().splitlines()
    assert len(lines) <= 60, "\n".join(lines)
    for line in lines:
        assert line.startswith("[inoc] "), line
    finished = [ln for ln in lines if re.match(r"\[inoc\]   \S+/(fixed|mix): done in \d+ s$", ln)]
    assert len(finished) == 4 - len(study.before_resume)  # the runs the resume did, one line each
    # the progress the bars are drawn from reached the run's events: the training steps of each run
    logs = sorted((study.home / "logs").glob("inoc-*.log"))  # one per command that ran something, by time
    log = logs[1].read_text()  # the resume's (the first is the killed main's)
    assert " DEBUG " in log and re.search(r"progress train: \d+/\d+ steps", log)


def test_backfill_of_a_new_prompt_computes_only_its_partitions(study):
    path = study.experiments / "toy_small.yaml"
    path.write_text(
        SMALL.replace(
            '  the_sky_is_blue: "The sky is blue."',
            '  the_sky_is_blue: "The sky is blue."\n  whimsical: "You have a whimsical personality."',
        ).replace("prompts: [corrected_inoculation]}", "prompts: [corrected_inoculation, whimsical]}")
    )
    with study.instance() as instance:
        before = _latest_ids(instance, "run_scores")
    out = study.inoc("backfill", "toy_small", "--prompt", "whimsical")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    m = re.search(r"backfill done: (\d+) steps in (\d+) runs", out.stdout)
    assert m, out.stdout
    # 4 prompt stages + 3 stages of each of its two runs (fixed, mix) + 4 aggregates; nothing else ran.
    assert int(m.group(1)) == 4 + 2 * 3 + 4
    with study.instance() as instance:
        after = _latest_ids(instance, "run_scores")
    assert {k: v for k, v in after.items() if "whimsical" not in k} == before
    assert {"whimsical/fixed", "whimsical/mix"} <= set(after)
    supp = study.wh.query("SELECT DISTINCT prompt_key FROM suppression WHERE experiment = 'toy_small'").prompt_key
    assert "whimsical" in set(supp)


def test_backfill_by_prefix_type_retrains_only_those_runs(study):
    with study.instance() as instance:
        before = _latest_ids(instance, "run_scores")
        prompt_stage_ids = _latest_ids(instance, "elicitation")
    out = study.inoc("backfill", "toy_small", "--prompt", "corrected_inoculation", "--prefix-type", "mix")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "prompt stages of corrected_inoculation are kept" in out.stdout
    m = re.search(r"backfill done: (\d+) steps in (\d+) runs", out.stdout)
    # the mix run's train, eval, judge; then only the aggregates whose inputs changed (never the prompt stages)
    assert m and 3 < int(m.group(1)) <= 3 + 4, out.stdout
    with study.instance() as instance:
        after = _latest_ids(instance, "run_scores")
        elicitation = _latest_ids(instance, "elicitation")
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"corrected_inoculation/mix"}
    assert elicitation == prompt_stage_ids


def test_the_ui_shows_every_planned_partition_materialized_with_its_own_numbers(study, tmp_path):
    """`inoc ui` on the finished study: GraphQL shows 0 missing partitions on every asset of the group and each
    elicitation partition's own mean; screenshots of the group, a run partition and the suppression event."""
    import shutil as _shutil

    from test_ui import UI, _assert_not_blank, _free_port, _screenshot, _stop, _wait_until_ready

    port, log = _free_port(), tmp_path / "inoc_ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "inoc.cli", "ui", "--port", str(port), "--experiment", "toy_small"],
            env=study.env,
            cwd=study.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ui = UI(f"http://127.0.0.1:{port}", {}, log, tmp_path)
        _wait_until_ready(ui, server)
        nodes = ui.graphql(
            """query($group: AssetGroupSelector!) { assetNodes(group: $group) { assetKey { path } isPartitioned
                 partitionStats { numMaterialized numPartitions numFailed } } }""",
            group={"groupName": "toy_small", "repositoryName": ui.repository, "repositoryLocationName": ui.location},
        )["assetNodes"]
        partitioned = {n["assetKey"]["path"][-1]: n["partitionStats"] for n in nodes if n["isPartitioned"]}
        assert {"prompt", "elicitation", "logprobs", "runs", "run_eval", "run_scores"} <= set(partitioned)
        for name, stats in partitioned.items():  # every partition is planned work, and all of it is done
            assert stats["numPartitions"] > 0 and stats["numMaterialized"] == stats["numPartitions"], (name, stats)
        assert partitioned["runs"]["numPartitions"] == len(
            study.wh.query("SELECT run FROM runs WHERE experiment = 'toy_small' AND prompt_key IS NOT NULL")
        )
        node = ui.graphql(
            """query($key: AssetKeyInput!, $parts: [String!]) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
                 latestMaterializationByPartition(partitions: $parts) { partition metadataEntries { label
                   ... on FloatMetadataEntry { floatValue } } } } } }""",
            key={"path": ["toy_small", "elicitation"]},
            parts=["corrected_inoculation", "the_sky_is_blue"],
        )["assetNodeOrError"]["latestMaterializationByPartition"]
        means = {
            m["partition"]: next(e["floatValue"] for e in m["metadataEntries"] if e["label"] == "Playful_mean")
            for m in node
        }
        summary = study.wh.query(
            "SELECT prompt_key, mean FROM elicitation_summary WHERE experiment = 'toy_small' AND trait = 'Playful'"
        ).set_index("prompt_key")["mean"]
        for prompt, shown in means.items():
            assert shown == pytest.approx(summary[prompt], abs=1e-3)
        assert means["corrected_inoculation"] != means["the_sky_is_blue"]

        chromium = next((c for c in ("chromium", "chromium-browser", "google-chrome") if _shutil.which(c)), None)
        if chromium is None:
            if os.environ.get("INOC_REQUIRE_CHROMIUM") == "1":
                pytest.fail("INOC_REQUIRE_CHROMIUM=1 but no Chromium")
            return
        ui.graphql("mutation { setNuxSeen }")
        shots = [
            _screenshot(
                ui,
                chromium,
                f"/locations/{ui.location}/asset-groups/toy_small",
                "toy_group",
                ["toy_small", "runs", "suppression", "prompt_geometry"],
            ),  # the nodes in view
            _screenshot(
                ui,
                chromium,
                "/assets/toy_small/run_scores?view=partitions&partition=corrected_inoculation%2Ffixed",
                "run_partition",
                ["corrected_inoculation/fixed", "final_default_French", "Missing (0)"],
            ),
            _screenshot(
                ui,
                chromium,
                "/assets/toy_small/suppression?view=events",
                "suppression_materialization",
                ["corrected_inoculation", "mean_suppression_fixed"],
            ),
        ]
        for png in shots:
            _assert_not_blank(png)
        if target := os.environ.get("INOC_UI_SCREENSHOT_DIR"):
            Path(target).mkdir(parents=True, exist_ok=True)
            for png in shots:
                _shutil.copy(png, Path(target) / png.name)
    finally:
        _stop(server)


def test_propose_measures_candidates_with_the_cheap_stages_only(study):
    """`inoc propose` on the finished study: candidates in the YAML, their prompt stages materialized, no run
    started; the ranking shows their elicitation and says why no prediction exists yet (too few runs)."""
    from inoc.config import load_experiment

    with study.instance() as instance:
        runs_before = _latest_ids(instance, "run_scores")
    out = study.inoc("propose", "toy_small", "--trait", "Playful", "--n", "4")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    cfg = load_experiment(study.experiments / "toy_small.yaml")
    assert len(cfg.candidates) == 4 and all(k.startswith("playful_cand1_") for k in cfg.candidates)
    with study.instance() as instance:
        assert _latest_ids(instance, "run_scores") == runs_before  # nothing trained
        assert set(cfg.candidates) <= set(_latest_ids(instance, "elicitation"))
        assert set(cfg.candidates) <= set(_latest_ids(instance, "logprobs"))
        runs = instance.get_dynamic_partitions("toy_small__runs")
    assert not [r for r in runs if r.split("/")[0] in cfg.candidates]
    elic = study.wh.query(
        "SELECT prompt_key, value FROM prompt_heuristics WHERE experiment = 'toy_small' "
        "AND heuristic = 'elicitation_Playful' AND prefix_type IS NULL"
    ).set_index("prompt_key")["value"]
    assert all(-100 <= elic[k] <= 100 for k in cfg.candidates)  # pp above the no-prefix baseline
    for k in cfg.candidates:  # the ranking table shows each candidate with its measured elicitation
        assert re.search(rf"\| {k} .*\|\s+{re.escape(f'{elic[k]:.3g}')}\s+\|", out.stdout), out.stdout
    m = re.search(r"(\d+) prompt\(s\) of the study have a Playful run, a model of its own needs (\d+)", out.stdout)
    assert m and int(m.group(1)) < int(m.group(2)), out.stdout
    m = re.search(
        r"cheap stages ([\d.]+) s per candidate; training, eval and judging (\d+) s per run \(mean of (\d+)", out.stdout
    )
    assert m and float(m.group(1)) > 0 and int(m.group(3)) >= 5, out.stdout
    refused = study.inoc("propose", "toy_small", "--trait", "Playful", "--select", "2", "--write")
    assert refused.returncode == 2 and "no fixed predictions" in refused.stderr, refused.stderr
    assert load_experiment(study.experiments / "toy_small.yaml").candidates == cfg.candidates  # nothing promoted
