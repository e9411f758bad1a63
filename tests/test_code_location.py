"""The Dagster code location: definitions, prompt partitions from the YAMLs, concurrent warehouse writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
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


def test_run_partitions_are_prompt_by_prefix_type(inoc_home, experiments_copy):
    from inoc_assets.partitions import run_partitions

    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        _tick(build_definitions(experiments_copy), instance)
        keys = run_partitions("toy").get_partition_keys(dynamic_partitions_store=instance)
    prompts = ["corrected_inoculation", "whimsical", "comedian_mindset", "clown_persona", "had_fun_today",
               "the_sky_is_blue", "corrected_inoculation_neg", "answer_french"]
    assert len(keys) == 8 * 3  # the key space is every prompt × every type; the config trains a subset
    assert {(k.keys_by_dimension["prompt"], k.keys_by_dimension["prefix_type"]) for k in keys} == {
        (p, t) for p in prompts for t in ("fixed", "mix", "close_mix")
    }  # fmt: skip


def test_dagster_cli_validates_the_code_location(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "inoc_assets.definitions"],
        capture_output=True, text=True, cwd=REPO,
        env={**__import__("os").environ, "DAGSTER_HOME": str(tmp_path)},
    )  # fmt: skip
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
        assert before == ["corrected_inoculation", "whimsical", "comedian_mindset", "clown_persona", "had_fun_today",
                          "the_sky_is_blue", "corrected_inoculation_neg", "answer_french"]  # fmt: skip
        # Compute two existing partitions.
        key = AssetKey(["toy", "prompt"])
        for part in ("whimsical", "had_fun_today"):
            assert run_assets(instance, [key], partition_key=part).success
        wh = Warehouse(inoc_home / "warehouse.duckdb")
        rows_before = wh.query("SELECT * FROM prompts ORDER BY prompt_key").to_dict("records")
        ids_before = {p: _latest_storage_id(instance, key, p) for p in ("whimsical", "had_fun_today")}

        # A researcher adds a prompt to the YAML; the sensor registers it without a restart.
        text = toy.read_text()
        text = text.replace('  answer_french: "Answer in French."',
                            '  answer_french: "Answer in French."\n  laughter_medicine: "Remember: laughter is the best medicine."')
        text = text.replace("    prompts: [had_fun_today]", "    prompts: [had_fun_today, laughter_medicine]")
        toy.write_text(text)
        data = _tick(defs, instance)
        assert [list(r.partition_keys) for r in data.dynamic_partitions_requests] == [["laughter_medicine"]]
        assert instance.get_dynamic_partitions(name) == before + ["laughter_medicine"]
        assert _tick(defs, instance).skip_message  # idempotent: nothing more to add

        # Only the new partition is computed; the old ones keep their data and materializations.
        assert run_assets(instance, [key], partition_key="laughter_medicine").success
        rows_after = wh.query("SELECT * FROM prompts ORDER BY prompt_key").to_dict("records")
        assert [r for r in rows_after if r["prompt_key"] != "laughter_medicine"] == rows_before
        assert {r["prompt_key"] for r in rows_after} == {"whimsical", "had_fun_today", "laughter_medicine"}
        assert {p: _latest_storage_id(instance, key, p) for p in ids_before} == ids_before

        # Removing a prompt from the YAML deletes neither its partition nor its data.
        toy.write_text(text.replace("    prompts: [had_fun_today, laughter_medicine]", "    prompts: [had_fun_today]")
                       .replace('\n  laughter_medicine: "Remember: laughter is the best medicine."', ""))
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
