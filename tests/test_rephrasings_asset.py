"""The per-prompt rephrasings asset: offline pools, reuse on rerun, generation over HTTP, no key leaks."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from dagster import AssetKey, DagsterInstance, instance_for_test, materialize

from inoc.judges.fake_openai_server import FakeOpenAIServer, Reply, RequestInfo
from inoc_assets.assets.catalog import catalog_assets
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
    assets = catalog_assets(experiment, cfg) + [rephrasings_asset(experiment, cfg)]
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    return materialize(assets, selection=[AssetKey([experiment, "rephrasings"])], instance=instance,
                       resources=_resources(home), tags=tags)  # fmt: skip


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
    rows = Warehouse(inoc_home / "warehouse.duckdb").query("SELECT * FROM rephrasings WHERE prompt_key = 'whimsical' ORDER BY idx")
    pool = [json.loads(line)["rephrasing"] for line in first.decode().splitlines()]
    assert rows.rephrasing.tolist() == pool and len(pool) == 200 and len(set(pool)) == 200
    assert "You have a whimsical personality." not in pool


def test_generated_pools_over_http_leak_no_key(inoc_home, experiments_copy, monkeypatch):
    counter = itertools.count()

    def responder(info: RequestInfo) -> Reply:  # distinct rephrasings, a JSON array per request
        return Reply.message(json.dumps([f"Variant {next(counter)} of the cue." for _ in range(60)]))

    with FakeOpenAIServer(responder) as server:
        cfg = experiments_copy / "toy.yaml"
        text = cfg.read_text().replace(
            "rephrasings:\n  n: 200\n  source: organism\n  min_pool: 20",
            f"rephrasings:\n  n: 100\n  source: generate\n  base_url: {server.base_url}\n  batch_size: 50\n  min_pool: 20",
        )
        assert "source: generate" in text
        cfg.write_text(text)
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
    assert len(rows) == 100 and rows.rephrasing.is_unique
    # The key is nowhere: not in the warehouse file, the artifacts, or the run's event log.
    for path in [inoc_home / "warehouse.duckdb", *(inoc_home / "artifacts").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in str(e) for e in events)
