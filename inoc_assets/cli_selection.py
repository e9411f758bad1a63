"""What `inoc materialize` names, resolved into a selection Dagster can run — or one line saying why not.

Everything Dagster would otherwise reject with a long traceback at job-build or run time (an asset
outside the loaded experiments, one output of a multi-asset without the others, assets on different
partitions, a partition key that is not registered) is checked here first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance, Definitions, PartitionsDefinition


class SelectionProblem(Exception):
    """A selection that cannot run, as one line the user can act on."""


@dataclass
class Selection:
    keys: list[AssetKey]
    partitions_def: PartitionsDefinition | None = None
    partitioned: list[AssetKey] = field(default_factory=list)


def _name(key: AssetKey) -> str:
    return key.to_user_string()


def _partitions_name(pdef: PartitionsDefinition) -> str:
    return getattr(pdef, "name", None) or type(pdef).__name__


def resolve(defs: Definitions, names: Sequence[str], experiments: Sequence[str], loaded: str | None) -> Selection:
    """The asset keys `names` (`experiment/asset`) denote, checked to be runnable in one run.

    `experiments` are the experiments with a valid YAML and `loaded` the `INOC_EXPERIMENTS` selection
    in effect (None: all), so an experiment left out of the code location is told apart from a typo.
    """
    graph = defs.resolve_asset_graph()
    known = {_name(k): k for k in graph.get_all_asset_keys()}
    keys: list[AssetKey] = []
    for name in names:
        if name not in known:
            experiment = name.split("/")[0]
            if (
                loaded is not None
                and experiment in experiments
                and not any(k.startswith(experiment + "/") for k in known)
            ):
                raise SelectionProblem(
                    f"experiment {experiment!r} is not loaded: INOC_EXPERIMENTS={loaded} leaves it out "
                    f"(add it, or unset INOC_EXPERIMENTS)"
                )
            close = sorted(k for k in known if k.startswith(experiment + "/"))
            raise SelectionProblem(f"unknown asset {name!r}; assets of that experiment: {', '.join(close) or 'none'}")
        if known[name] not in keys:
            keys.append(known[name])

    # A multi-asset that cannot be subset runs all its outputs in one step: refuse half of it rather
    # than materialize more than was named, and give the command that names them all.
    for key in keys:
        missing = sorted((k for k in graph.get(key).execution_set_asset_keys if k not in keys), key=_name)
        if missing:
            whole = [_name(k) for k in keys] + [_name(k) for k in missing]
            raise SelectionProblem(
                f"{_name(key)} is computed in one step with {', '.join(map(_name, missing))}; "
                f"select them together: inoc materialize {' '.join(whole)}"
            )
    selection = Selection(keys=keys)
    partitioned = {k: graph.get(k).partitions_def for k in selection.keys if graph.get(k).partitions_def is not None}
    by_name = {_partitions_name(p): (k, p) for k, p in partitioned.items()}
    if len(by_name) > 1:
        (k1, p1), (k2, p2) = list(by_name.values())[:2]
        raise SelectionProblem(
            f"{_name(k1)} ({_partitions_name(p1)}) and {_name(k2)} ({_partitions_name(p2)}) are partitioned "
            "differently; materialize them in separate commands"
        )
    if by_name:
        selection.partitions_def = next(iter(by_name.values()))[1]
        selection.partitioned = list(partitioned)
    return selection


def partition_keys(selection: Selection, store: DagsterInstance) -> list[str]:
    assert selection.partitions_def is not None
    return list(selection.partitions_def.get_partition_keys(dynamic_partitions_store=store))


def check_partition_args(
    selection: Selection, store: DagsterInstance, partition: str | None, all_partitions: bool
) -> None:
    """One line when --partition/--all-partitions do not fit the selection's partitions."""
    pdef = selection.partitions_def
    if pdef is None:
        if partition:
            raise SelectionProblem(f"--partition {partition}: none of the selected assets is partitioned")
        return
    first = _name(selection.partitioned[0])
    keys = partition_keys(selection, store)
    if not keys:
        raise SelectionProblem(
            f"{_partitions_name(pdef)} has no partitions yet: run `inoc sync` after adding prompts to the YAML"
        )
    shown = ", ".join(keys[:6]) + (f", … ({len(keys)} in all)" if len(keys) > 6 else "")
    if not partition and not all_partitions:
        raise SelectionProblem(
            f"{first} is partitioned ({_partitions_name(pdef)}: {shown}): pass --partition KEY or --all-partitions"
        )
    if partition and partition not in keys:
        raise SelectionProblem(
            f"--partition {partition}: no such partition of {_partitions_name(pdef)} (have: {shown})"
        )
