"""The per-prompt rephrasings asset: offline pools, reuse on rerun, generation over HTTP, no key leaks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from dagster import AssetKey, DagsterInstance, instance_for_test, materialize
from fakes.openai_server import FakeOpenAIServer, Reply, RequestInfo

from inoc_assets.assets.experiment import experiment_asset
from inoc_assets.assets.prompt import prompt_asset
from inoc_assets.assets.rephrasings import rephrasings_asset
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from warehouse import Warehouse

SECRET = "fake-test-key.DO-NOT-LEAK.0123456789abcdefghij"


def _resources(home: Path) -> dict:
    return {
        "warehouse": WarehouseResource(database=str(home / "warehouse.duckdb")),
        "artifacts": ArtifactStoreResource(root=str(home / "artifacts")),
    }


def _run(instance: DagsterInstance, experiment: str, cfg: Path, home: Path, keys: list[str]):
    instance.add_dynamic_partitions(f"{experiment}__prompts", keys)
    assets = [experiment_asset(experiment, cfg), prompt_asset(experiment, cfg), rephrasings_asset(experiment, cfg)]
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    return materialize(
        assets,
        selection=[AssetKey([experiment, "rephrasings"])],
        instance=instance,
        resources=_resources(home),
        tags=tags,
    )


def test_offline_pools_are_built_once_and_reused(inoc_home, experiments_copy):
    cfg = experiments_copy / "toy.yaml"
    keys = ["corrected_inoculation", "whimsical"]
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        assert _run(instance, "toy", cfg, inoc_home, keys).success
        pool_file = inoc_home / "artifacts" / "toy" / "rephrasings" / "whimsical.jsonl"
        first = pool_file.read_bytes()
        mtime = pool_file.stat().st_mtime_ns
        result = _run(instance, "toy", cfg, inoc_home, keys)
        assert result.success
        meta = result.asset_materializations_for_node("toy__rephrasings")[0].metadata["pools"].value
        assert meta["whimsical"]["reused"] is True
        assert pool_file.stat().st_mtime_ns == mtime and pool_file.read_bytes() == first
    rows = Warehouse(inoc_home / "warehouse.duckdb").query(
        "SELECT * FROM rephrasings WHERE prompt_key = 'whimsical' ORDER BY idx"
    )
    pool = [json.loads(line)["rephrasing"] for line in first.decode().splitlines()]
    assert rows.rephrasing.tolist() == pool and len(pool) == 200 and len(set(pool)) == 200
    assert "You have a whimsical personality." not in pool


def test_a_close_mix_run_gets_a_close_pool_beside_the_diverse_one(inoc_home, experiments_copy):
    cfg = experiments_copy / "toy.yaml"
    text = cfg.read_text().replace(
        "  mix_prompts: [corrected_inoculation, whimsical]",
        "  mix_prompts: [corrected_inoculation, whimsical]\n  close_mix_prompts: [whimsical]",
    )
    cfg.write_text(text.replace("prefix_types: [fixed, mix]", "prefix_types: [fixed, mix, close_mix]", 1))
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        result = _run(instance, "toy", cfg, inoc_home, ["corrected_inoculation", "whimsical"])
        assert result.success
        meta = result.asset_materializations_for_node("toy__rephrasings")[0].metadata
    assert meta["n_pools"].value == 3 and "whimsical (close)" in meta["pools"].value
    folder = inoc_home / "artifacts" / "toy" / "rephrasings"
    assert (folder / "close" / "whimsical.jsonl").is_file() and not (
        folder / "close" / "corrected_inoculation.jsonl"
    ).exists()
    rows = Warehouse(inoc_home / "warehouse.duckdb").query("SELECT * FROM rephrasings WHERE prompt_key = 'whimsical'")
    close, diverse = rows[rows.pool == "close"], rows[rows.pool == "diverse"]
    assert len(diverse) == 200 and 0 < len(close) <= 200 and close.rephrasing.is_unique
    # Close: the phrase's own words or their synonyms, no lead-in frame or added closing sentence.
    words = lambda t: len(t.rstrip(".!").split())  # noqa: E731
    original = words("You have a whimsical personality.")
    assert all(abs(words(t) - original) <= 1 for t in close.rephrasing)
    assert any(abs(words(t) - original) > 1 for t in diverse.rephrasing)
    assert not set(close.rephrasing) & {"You have a whimsical personality."}


def test_generated_pools_over_http_leak_no_key(inoc_home, experiments_copy, monkeypatch):
    counter = itertools.count()

    seen: list[tuple[str, float]] = []

    def responder(info: RequestInfo) -> Reply:  # distinct rephrasings, a JSON array per request
        seen.append((info.body["messages"][0]["content"], info.body["temperature"]))
        return Reply.message(json.dumps([f"Variant {next(counter)} of the cue." for _ in range(60)]))

    with FakeOpenAIServer(responder) as server:
        cfg = experiments_copy / "toy.yaml"
        text = cfg.read_text().replace(
            "rephrasings:\n  n: 200\n  source: organism\n  min_pool: 20",
            f"rephrasings:\n  n: 100\n  source: generate\n  base_url: {server.base_url}\n  batch_size: 50\n  min_pool: 20",
        )
        assert "source: generate" in text
        # whimsical also gets a close_mix run, hence a close pool (close prompt, close temperature)
        text = text.replace("prefix_types: [fixed, mix]", "prefix_types: [fixed, mix, close_mix]", 1)
        cfg.write_text(
            text.replace(
                "  mix_prompts: [corrected_inoculation, whimsical]",
                "  mix_prompts: [corrected_inoculation, whimsical]\n  close_mix_prompts: [whimsical]",
            )
        )
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
            result = _run(instance, "toy", cfg, inoc_home, ["whimsical"])
            assert result.success
            n_requests = server.n_requests
            assert n_requests >= 2
            # A rerun makes zero API calls.
            assert _run(instance, "toy", cfg, inoc_home, ["whimsical"]).success
            assert server.n_requests == n_requests
            events = instance.all_logs(result.run_id)
    rows = Warehouse(inoc_home / "warehouse.duckdb").query("SELECT * FROM rephrasings")
    assert len(rows) == 200 and (rows.groupby("pool").size() == 100).all() and set(rows.pool) == {"diverse", "close"}
    from inoc.rephrasings.prompts import CLOSE_REPHRASE_SYSTEM_PROMPT, REPHRASE_SYSTEM_PROMPT

    assert {(system, temp) for system, temp in seen} == {
        (REPHRASE_SYSTEM_PROMPT, 1.2),
        (CLOSE_REPHRASE_SYSTEM_PROMPT, 0.7),
    }
    # The key is nowhere: not in the warehouse file, the artifacts, or the run's event log.
    for path in [inoc_home / "warehouse.duckdb", *(inoc_home / "artifacts").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in str(e) for e in events)
