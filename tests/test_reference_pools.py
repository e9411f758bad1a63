"""Reference rephrasing pools as JSON arrays: the lookup (<key>.json, rephrasings.reference_files),
`$[i]` errors, and the rephrasings asset reading the original Exp 4 pools in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, instance_for_test, materialize

from inoc.config import load_experiment
from inoc.rephrasings import PoolFormatError, find_pool_file, read_pool, read_pools
from inoc_assets.assets.experiment import experiment_asset
from inoc_assets.assets.prompt import prompt_asset
from inoc_assets.assets.rephrasings import rephrasings_asset
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from warehouse import Warehouse


@pytest.mark.parametrize(
    ("content", "where", "message"),
    [
        ('[\n  "a",\n  "b",\n  4\n]\n', "4: $[2]", "rephrasing is int, expected a string"),
        ('[\n  "a",\n  null\n]\n', "3: $[1]", "rephrasing is NoneType, expected a string"),
        ('[\n  "a",\n  "  "\n]\n', "3: $[1]", "empty rephrasing"),
        ('[\n  "a",\n  "b",\n  "a"\n]\n', "4: $[2]", "duplicate rephrasing 'a' (first at"),
        ('[\n  "a",\n  "b"\n  "c"\n]\n', "4: $[1]", "expected ',' or ']' after the element"),
        ('[\n  "a",\n  "Be playful."\n]\n', "3: $[1]", "equals the original prompt"),
        ('{"pool": ["a"]}', "1: $", "expected a JSON array of strings"),
        ("[]", "1: $", "empty pool"),
    ],
)
def test_malformed_json_array_names_the_element(tmp_path, content, where, message):
    path = tmp_path / "pool.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PoolFormatError) as info:
        read_pool(path, original="be playful.")
    assert str(info.value).startswith(f"{path}:{where}: "), str(info.value)
    assert message in str(info.value)


def test_the_lookup_takes_jsonl_or_a_json_array_and_refuses_both(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"rephrasing": "one"}\n')
    (tmp_path / "b.json").write_text('["two", "three"]')
    assert find_pool_file(tmp_path, "a") == tmp_path / "a.jsonl"
    assert find_pool_file(tmp_path, "b") == tmp_path / "b.json"
    assert read_pools(tmp_path) == {"a": ["one"], "b": ["two", "three"]}
    assert read_pools(tmp_path, ["b"]) == {"b": ["two", "three"]}
    with pytest.raises(FileNotFoundError, match=r"no diverse pool file c\.jsonl or c\.json"):
        find_pool_file(tmp_path, "c")
    (tmp_path / "b_close.json").write_text('["x"]')
    assert find_pool_file(tmp_path, "b", close=True) == tmp_path / "b_close.json"
    (tmp_path / "a.json").write_text('["other"]')
    with pytest.raises(PoolFormatError, match="both a.jsonl and a.json exist"):
        find_pool_file(tmp_path, "a")
    assert find_pool_file(tmp_path, "a", named="b.json") == tmp_path / "b.json"
    with pytest.raises(PoolFormatError, match="unknown pool format"):
        find_pool_file(tmp_path, "a", named="pool.txt")


def _reference_toy(experiments: Path, pools: Path, files: dict[str, str]) -> Path:
    cfg = experiments / "toy.yaml"
    block = "\n".join(f"    {k}: {v}" for k, v in files.items())
    text = cfg.read_text().replace(
        "rephrasings:\n  n: 200\n  source: organism\n",
        f"rephrasings:\n  n: 200\n  source: reference\n  reference_dir: {pools}\n  reference_files:\n{block}\n",
    )
    cfg.write_text(text)
    return cfg


def _materialize(home: Path, cfg: Path, keys: list[str]):
    resources = {
        "warehouse": WarehouseResource(database=str(home / "warehouse.duckdb")),
        "artifacts": ArtifactStoreResource(root=str(home / "artifacts")),
    }
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        instance.add_dynamic_partitions("toy__prompts", keys)
        tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        assets = [experiment_asset("toy", cfg), prompt_asset("toy", cfg), rephrasings_asset("toy", cfg)]
        return materialize(
            assets,
            selection=[AssetKey(["toy", "rephrasings"])],
            instance=instance,
            resources=resources,
            tags=tags,
            raise_on_error=False,
        )


def test_the_exp4_pools_serve_as_reference_pools(shared, inoc_home, experiments_copy, tmp_path):
    """corrected_inoculation draws from the original strong pool (a JSON array named in
    reference_files), whimsical from `<key>.json` in reference_dir."""
    pools = tmp_path / "pools"
    pools.mkdir()
    whimsical = [f"Whimsy, variant {i}." for i in range(250)]
    (pools / "whimsical.json").write_text(json.dumps(whimsical, indent=2))
    strong = shared / "reference" / "strong_inoc_rephrasings.json"
    cfg = _reference_toy(
        experiments_copy, pools, {"corrected_inoculation": "${INOC_SHARED_DIR}/reference/strong_inoc_rephrasings.json"}
    )
    assert load_experiment(cfg).rephrasings.reference_files == {
        "corrected_inoculation": "${INOC_SHARED_DIR}/reference/strong_inoc_rephrasings.json"
    }
    result = _materialize(inoc_home, cfg, ["corrected_inoculation", "whimsical"])
    assert result.success
    wh = Warehouse(inoc_home / "warehouse.duckdb")
    rows = wh.query("SELECT prompt_key, idx, rephrasing, source FROM rephrasings ORDER BY prompt_key, idx")
    got = rows[rows.prompt_key == "corrected_inoculation"].rephrasing.tolist()
    assert got == json.loads(strong.read_text())[:200]  # the file's order, cut at rephrasings.n
    assert rows[rows.prompt_key == "whimsical"].rephrasing.tolist() == whimsical[:200]
    assert set(rows.source) == {"reference"}
    meta = result.asset_materializations_for_node("toy__rephrasings")[0].metadata["pools"].value
    assert Path(meta["corrected_inoculation"]["file"]).resolve() == strong.resolve()  # ../shared may be a link


def test_a_bad_json_pool_fails_with_the_element_and_writes_nothing(shared, inoc_home, experiments_copy, tmp_path):
    pools = tmp_path / "pools"
    pools.mkdir()
    bad = [f"Whimsy, variant {i}." for i in range(250)]
    bad[117] = 5
    (pools / "whimsical.json").write_text(json.dumps(bad, indent=2))
    cfg = _reference_toy(
        experiments_copy, pools, {"corrected_inoculation": "${INOC_SHARED_DIR}/reference/strong_inoc_rephrasings.json"}
    )
    result = _materialize(inoc_home, cfg, ["corrected_inoculation", "whimsical"])
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert f"{pools / 'whimsical.json'}:119: $[117]: rephrasing is int, expected a string" in message
    wh = Warehouse(inoc_home / "warehouse.duckdb")
    assert wh.query("SELECT count(*) AS n FROM rephrasings").n.item() == 0
    assert not (inoc_home / "artifacts" / "toy" / "rephrasings" / "whimsical.jsonl").exists()


def test_reference_files_must_name_prompts(experiments_copy, tmp_path):
    from inoc.config import ConfigError

    cfg = _reference_toy(experiments_copy, tmp_path, {"no_such_prompt": "x.json"})
    with pytest.raises(ConfigError, match=r"rephrasings.reference_files: unknown prompt keys \['no_such_prompt'\]"):
        load_experiment(cfg)


def test_preflight_uses_the_same_lookup(experiments_copy, tmp_path):
    from inoc.rehearsal.preflight import preflight

    pools = tmp_path / "pools"
    pools.mkdir()
    (pools / "whimsical.json").write_text(json.dumps([f"Whimsy {i}." for i in range(250)]))
    cfg_path = _reference_toy(experiments_copy, pools, {"corrected_inoculation": str(tmp_path / "missing.json")})
    problems = preflight(load_experiment(cfg_path), cfg_path)
    assert [p.field for p in problems] == ["rephrasings.reference_files.corrected_inoculation"]
    assert "missing.json" in problems[0].message
    (tmp_path / "missing.json").write_text('["a", "b"]')
    assert preflight(load_experiment(cfg_path), cfg_path) == []
