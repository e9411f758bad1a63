"""inoc_assets.freshness: an aggregate is fresh while every parent's latest materialization is the one it
consumed (read from the provenance Dagster records on each materialization)."""

from __future__ import annotations

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, Definitions, asset, materialize

from inoc_assets.freshness import consumed_storage_ids, inputs_unchanged, stale_assets


@asset(key=AssetKey(["exp", "parent"]))
def parent() -> None:
    return None


@asset(key=AssetKey(["exp", "child"]), deps=[parent])
def child() -> None:
    return None


PARENT, CHILD = parent.key, child.key


def _latest(instance: DagsterInstance, key: AssetKey):
    return instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records[0]


def test_a_child_is_fresh_until_its_parent_is_rematerialized():
    with DagsterInstance.ephemeral() as instance:
        assert not inputs_unchanged(instance, CHILD, [PARENT])  # never materialized
        assert materialize([parent, child], instance=instance).success
        consumed = consumed_storage_ids(_latest(instance, CHILD).asset_materialization.tags or {})
        assert consumed == {PARENT: _latest(instance, PARENT).storage_id}
        assert inputs_unchanged(instance, CHILD, [PARENT])
        assert materialize([parent], instance=instance).success  # a new parent materialization
        assert not inputs_unchanged(instance, CHILD, [PARENT])
        graph = Definitions(assets=[parent, child]).resolve_asset_graph()
        assert stale_assets(instance, [PARENT, CHILD], graph=graph) == [CHILD]
        assert materialize([parent, child], instance=instance).success
        assert stale_assets(instance, [PARENT, CHILD], graph=graph) == []


def test_a_parent_the_child_never_consumed_makes_it_stale():
    with DagsterInstance.ephemeral() as instance:
        assert materialize([parent, child], instance=instance).success
        other = AssetKey(["exp", "other"])  # a dependency added after the child was materialized
        assert not inputs_unchanged(instance, CHILD, [PARENT, other])
        assert consumed_storage_ids({}) == {}  # no provenance tags at all
