"""Register each experiment's prompts as dynamic partitions (used by the sensor and `inoc sync`).

Only additions: a prompt removed from a YAML keeps its partition and all its data, so removing a
line from a config can never delete results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance

from inoc.config import ConfigError, load_all
from inoc_assets.partitions import prompt_partitions_name


@dataclass
class SyncPlan:
    to_add: dict[str, list[str]] = field(default_factory=dict)  # partitions-def name → new keys
    orphaned: dict[str, list[str]] = field(default_factory=dict)  # registered but no longer in the YAML
    errors: list[ConfigError] = field(default_factory=list)

    @property
    def n_added(self) -> int:
        return sum(len(v) for v in self.to_add.values())


def plan_sync(instance: DagsterInstance, experiments_dir: str | Path) -> SyncPlan:
    catalog = load_all(experiments_dir)
    plan = SyncPlan(errors=catalog.errors)
    for name, cfg in catalog.configs.items():
        defn = prompt_partitions_name(name)
        registered = set(instance.get_dynamic_partitions(defn))
        new = [k for k in cfg.prompt_keys if k not in registered]
        gone = sorted(registered - set(cfg.prompt_keys))
        if new:
            plan.to_add[defn] = new
        if gone:
            plan.orphaned[defn] = gone
    return plan


def apply_sync(instance: DagsterInstance, plan: SyncPlan) -> None:
    for defn, keys in plan.to_add.items():
        instance.add_dynamic_partitions(defn, keys)
