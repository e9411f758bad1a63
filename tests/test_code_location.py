"""The Dagster code location: definitions, prompt partitions from the YAMLs, concurrent warehouse writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DagsterInstance, build_sensor_context, instance_for_test

from inoc_assets.definitions import build_definitions
from inoc_assets.partitions import prompt_partitions_name
from inoc_assets.runner import run_assets
from warehouse import Warehouse

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ["playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b", "toy"]


def test_definitions_load_with_every_experiment():
    defs = build_definitions(REPO / "experiments")
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for exp in SHIPPED:
        assert f"{exp}/experiment" in keys and f"{exp}/prompt" in keys
        node = graph.get(AssetKey([exp, "prompt"]))
        assert node.group_name == exp
        assert node.partitions_def.name == prompt_partitions_name(exp)
    assert defs.resolve_sensor_def("prompt_partitions_sensor") is not None


def test_run_partitions_are_exactly_the_planned_runs(inoc_home, experiments_copy):
    from inoc.config import load_experiment
    from inoc_assets.partitions import run_partitions

    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        _tick(build_definitions(experiments_copy), instance)
        keys = run_partitions("toy").get_partition_keys(dynamic_partitions_store=instance)
    cfg = load_experiment(experiments_copy / "toy.yaml")
    planned = {f"{p}/{t}" for p, t in cfg.run_partition_keys()}
    assert set(keys) == planned and len(keys) == len(planned)
    # toy trains every prompt fixed and only some mix: the grid prompt × type would have had never-filled cells
    types = [k.rsplit("/", 1)[1] for k in keys]
    assert "close_mix" not in types and 0 < types.count("mix") < types.count("fixed") == len(cfg.prompt_keys)


def test_legacy_run_partitions_migrate_in_place_and_stay_fresh(inoc_home, experiments_copy):
    """An instance from the prompt × prefix-type grid keeps its runs: each planned run's latest legacy
    materialization is re-recorded under `<prompt>/<type>` with its metadata and config digest; rerunning is a no-op."""
    from dagster import AssetMaterialization, DagsterRun

    from inoc.config import load_experiment
    from inoc_assets.main_job import _fresh
    from inoc_assets.sync import DIGEST_TAG, MIGRATED_FROM, apply_sync, plan_sync

    cfg = load_experiment(experiments_copy / "toy.yaml")
    prompt, prefix_type = cfg.run_partition_keys()[0]
    other = next(p for p, _ in cfg.run_partition_keys() if p != prompt)
    key = AssetKey(["toy", "run_scores"])
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        # What the grid stored: a run tagged with the config digest materialized the partition `fixed|<prompt>`.
        run = instance.add_run(
            DagsterRun(job_name="__ASSET_JOB", run_id="a" * 36, tags={DIGEST_TAG: "d" * 64})
        )  # a real digest is 64 hex characters
        instance.report_runless_asset_event(
            AssetMaterialization(key, partition=f"{prefix_type}|{prompt}", metadata={"n_scores": 123})
        )
        # report_runless_asset_event has no run: re-attribute it as the legacy run did (same storage format)
        records = instance.fetch_materializations(key, limit=1).records
        assert records[0].asset_materialization.partition == f"{prefix_type}|{prompt}"
        legacy_run = run.run_id
        from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
        from dagster._core.events.log import EventLogEntry

        instance.store_event(
            EventLogEntry(
                error_info=None,
                level=20,
                user_message="",
                run_id=legacy_run,
                timestamp=1.0,
                dagster_event=DagsterEvent(
                    DagsterEventType.ASSET_MATERIALIZATION.value,
                    "__ASSET_JOB",
                    event_specific_data=StepMaterializationData(
                        AssetMaterialization(key, partition=f"{prefix_type}|{prompt}", metadata={"n_scores": 456})
                    ),
                ),
            )
        )
        plan = plan_sync(instance, experiments_copy)
        assert apply_sync(instance, plan) == 1
        new = f"{prompt}/{prefix_type}"
        assert new in instance.get_materialized_partitions(key)
        assert f"{other}/fixed" not in instance.get_materialized_partitions(key)  # only what existed moves
        rec = instance.fetch_materializations(
            __import__("dagster").AssetRecordsFilter(asset_key=key, asset_partitions=[new]), limit=1
        ).records[0]
        assert rec.asset_materialization.metadata["n_scores"].value == 456  # the latest legacy event's own metadata
        assert rec.asset_materialization.metadata[MIGRATED_FROM].value == f"{prefix_type}|{prompt}"
        assert _fresh(instance, key, new, "d" * 64) and not _fresh(instance, key, new, "e" * 64)
        assert apply_sync(instance, plan_sync(instance, experiments_copy)) == 0  # idempotent


def test_dagster_cli_validates_the_code_location(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "inoc_assets.definitions"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_invalid_yaml_is_skipped_not_fatal(experiments_copy):
    (experiments_copy / "broken.yaml").write_text("name: broken\nmodel: [\n")
    defs = build_definitions(experiments_copy)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "toy/experiment" in keys and not any(k.startswith("broken/") for k in keys)


def _tick(defs, instance: DagsterInstance):
    """Evaluate the sensor once and apply its partition requests as the daemon does."""
    sensor = defs.resolve_sensor_def("prompt_partitions_sensor")
    data = sensor.evaluate_tick(build_sensor_context(instance=instance))
    for req in data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return data


def _latest_storage_id(instance: DagsterInstance, key: AssetKey, partition: str) -> int:
    records = instance.fetch_materializations(
        __import__("dagster").AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    return records[0].storage_id


def test_new_prompt_becomes_a_partition_and_old_ones_are_untouched(inoc_home, experiments_copy):
    toy = experiments_copy / "toy.yaml"
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        defs = build_definitions(experiments_copy)
        _tick(defs, instance)
        name = prompt_partitions_name("toy")
        before = instance.get_dynamic_partitions(name)
        assert before == [
            "corrected_inoculation",
            "whimsical",
            "comedian_mindset",
            "clown_persona",
            "had_fun_today",
            "the_sky_is_blue",
            "corrected_inoculation_neg",
            "answer_french",
        ]
        # Compute two existing partitions.
        key = AssetKey(["toy", "prompt"])
        for part in ("whimsical", "had_fun_today"):
            assert run_assets(instance, [key], partition_key=part).success
        wh = Warehouse(inoc_home / "warehouse.duckdb")
        rows_before = wh.query("SELECT * FROM prompts ORDER BY prompt_key").to_dict("records")
        ids_before = {p: _latest_storage_id(instance, key, p) for p in ("whimsical", "had_fun_today")}

        # A researcher adds a prompt to the YAML; the sensor registers it without a restart.
        text = toy.read_text()
        text = text.replace(
            '  answer_french: "Answer in French."',
            '  answer_french: "Answer in French."\n  laughter_medicine: "Remember: laughter is the best medicine."',
        )
        text = text.replace("    prompts: [had_fun_today]", "    prompts: [had_fun_today, laughter_medicine]")
        toy.write_text(text)
        data = _tick(defs, instance)
        assert {r.partitions_def_name: list(r.partition_keys) for r in data.dynamic_partitions_requests} == {
            name: ["laughter_medicine"],
            "toy__runs": ["laughter_medicine/fixed"],
        }  # its planned run, nothing else
        assert instance.get_dynamic_partitions(name) == before + ["laughter_medicine"]
        assert _tick(defs, instance).skip_message  # idempotent: nothing more to add

        # Only the new partition is computed; the old ones keep their data and materializations.
        assert run_assets(instance, [key], partition_key="laughter_medicine").success
        rows_after = wh.query("SELECT * FROM prompts ORDER BY prompt_key").to_dict("records")
        assert [r for r in rows_after if r["prompt_key"] != "laughter_medicine"] == rows_before
        assert {r["prompt_key"] for r in rows_after} == {"whimsical", "had_fun_today", "laughter_medicine"}
        assert {p: _latest_storage_id(instance, key, p) for p in ids_before} == ids_before

        # Removing a prompt from the YAML deletes neither its partition nor its data.
        toy.write_text(
            text.replace("    prompts: [had_fun_today, laughter_medicine]", "    prompts: [had_fun_today]").replace(
                '\n  laughter_medicine: "Remember: laughter is the best medicine."', ""
            )
        )
        _tick(defs, instance)
        assert "laughter_medicine" in instance.get_dynamic_partitions(name)
        assert "laughter_medicine" in wh.query("SELECT prompt_key FROM prompts").prompt_key.tolist()


def test_four_concurrent_warehouse_writes_with_the_multiprocess_executor(inoc_home, experiments_copy):
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        keys = [AssetKey([e, "experiment"]) for e in SHIPPED]
        result = run_assets(instance, keys, max_concurrent=4)
        assert result.success
        # The steps really ran in parallel processes.
        pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(pids) == 4
        checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert len(checks) == 4 and all(c.event_specific_data.passed for c in checks)
    got = Warehouse(inoc_home / "warehouse.duckdb").query("SELECT experiment, source FROM experiments ORDER BY 1")
    assert got.experiment.tolist() == sorted(SHIPPED)
