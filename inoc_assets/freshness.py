"""Whether an unpartitioned asset (an aggregate, a slide) is up to date with its inputs.

Dagster records on each materialization the storage id of the latest materialization of every
parent asset it saw (tag ``dagster/input_event_pointer/<parent>``; for a partitioned parent the latest
of any partition). The asset is up to date when every parent's latest materialization is still the one
it consumed: a rerun that skipped everything upstream re-runs nothing, and a new or recomputed
partition upstream (a backfill) makes it stale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DataProvenance


def _latest_storage_ids(instance: DagsterInstance, keys: Sequence[AssetKey]) -> dict[AssetKey, int | None]:
    """The storage id of each key's latest materialization (None: never materialized), as Dagster's
    provenance reads it."""
    out: dict[AssetKey, int | None] = {k: None for k in keys}
    for record in instance.get_asset_records(list(keys)):
        latest = record.asset_entry.last_materialization_record
        out[record.asset_entry.asset_key] = latest.storage_id if latest else None
    return out


def consumed_storage_ids(tags: Mapping[str, str]) -> Mapping[AssetKey, int | None]:
    """The storage id of each parent's materialization that a materialization with these tags consumed
    (None: the parent had none), read from Dagster's provenance tags.

    Dagster's documented reader of provenance, ``get_asset_provenance``, exists only on the context of a
    running asset; outside a run there is no documented one. ``DataProvenance`` is public API and its
    ``from_tags`` is the parser Dagster itself applies to stored materializations, so this reads the
    tags through it rather than through the private tag names (``dagster._core…data_version``).
    """
    provenance = DataProvenance.from_tags(tags)
    return provenance.input_storage_ids if provenance is not None else {}


def inputs_unchanged(instance: DagsterInstance, key: AssetKey, parents: Sequence[AssetKey]) -> bool:
    """Whether ``key``'s latest materialization consumed the current latest materialization of each parent."""
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=key), limit=1).records
    if not records:
        return False
    consumed = consumed_storage_ids(records[0].asset_materialization.tags or {})
    for parent, current in _latest_storage_ids(instance, parents).items():
        if parent not in consumed:  # materialized before this dependency existed
            return False
        if consumed[parent] != current:
            return False
    return True


def stale_assets(
    instance: DagsterInstance,
    keys: Sequence[AssetKey],
    is_fresh: Callable[[AssetKey], bool] = lambda key: True,
    graph=None,
) -> list[AssetKey]:
    """The assets of ``keys`` (one stage, in order) to rematerialize: those never materialized, not
    ``is_fresh`` (another condition, e.g. the config digest) or with a changed input, and everything
    downstream of them within ``keys``. ``graph``: the asset graph (default: the code location's)."""
    if graph is None:
        from inoc_assets.definitions import defs

        graph = defs.resolve_asset_graph()
    stale = {k for k in keys if not (is_fresh(k) and inputs_unchanged(instance, k, list(graph.get(k).parent_keys)))}
    frontier = list(stale)
    while frontier:
        for child in graph.get(frontier.pop()).child_keys:
            if child in keys and child not in stale:
                stale.add(child)
                frontier.append(child)
    return [k for k in keys if k in stale]
