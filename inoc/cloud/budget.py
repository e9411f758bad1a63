"""The budget guard: no GPU launch when an experiment's estimate exceeds ``compute.max_budget_usd``,
unless someone confirmed that estimate.

A confirmation is either ``inoc plan EXPERIMENT --confirm`` — recorded in
``$INOC_HOME/cloud/budget_confirmations.json`` against a fingerprint of the experiment's config and the
confirmed amount, so editing the config or a higher estimate needs a new confirmation — or the Dagster
run tag ``inoc/confirm_budget=<experiment>`` (or ``=all``) on a run launched from the UI.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from inoc.cloud.ledger import cloud_dir, locked, read_json, write_json
from inoc.config import ExperimentConfig

RUN_TAG = "inoc/confirm_budget"
#: Catalog prices move a little between the plan and the launch: a confirmed estimate covers this much more.
TOLERANCE = 1.05


class BudgetExceeded(RuntimeError):
    """The estimate is above ``compute.max_budget_usd`` and nobody confirmed it."""


def fingerprint(cfg: ExperimentConfig) -> str:
    return hashlib.sha256(cfg.model_dump_json(by_alias=True).encode()).hexdigest()[:16]


def _path(directory: Path | None) -> Path:
    return (directory or cloud_dir()) / "budget_confirmations.json"


def confirm(cfg: ExperimentConfig, estimate_usd: float, directory: Path | None = None) -> None:
    path = _path(directory)
    with locked(path.parent):
        data = read_json(path)
        data[cfg.name] = {
            "fingerprint": fingerprint(cfg),
            "estimate_usd": round(float(estimate_usd), 2),
            "max_budget_usd": cfg.compute.max_budget_usd,
            "confirmed_at": time.time(),
        }
        write_json(path, data)


def is_confirmed(cfg: ExperimentConfig, estimate_usd: float, directory: Path | None = None) -> bool:
    rec = read_json(_path(directory)).get(cfg.name)
    return (
        isinstance(rec, dict)
        and rec.get("fingerprint") == fingerprint(cfg)
        and estimate_usd <= float(rec.get("estimate_usd", -1)) * TOLERANCE
    )


def tag_confirms(tags: dict[str, str] | None, experiment: str) -> bool:
    value = (tags or {}).get(RUN_TAG, "")
    return value.strip() in (experiment, "all", "true")


def check_budget(
    cfg: ExperimentConfig,
    estimate_usd: float,
    *,
    confirmed: bool = False,
    source: str = "",
    directory: Path | None = None,
) -> None:
    """Raise ``BudgetExceeded`` when ``estimate_usd`` exceeds the budget and is not confirmed."""
    limit = cfg.compute.max_budget_usd
    if estimate_usd <= limit or confirmed or is_confirmed(cfg, estimate_usd, directory):
        return
    where = f" ({source})" if source else ""
    raise BudgetExceeded(
        f"{cfg.name}: the estimated cost ${estimate_usd:,.2f} exceeds compute.max_budget_usd = ${limit:,.2f}{where}. "
        f"Review `inoc plan {cfg.name}`, then confirm it with `inoc plan {cfg.name} --confirm` (or the run tag "
        f"{RUN_TAG}={cfg.name}), or raise compute.max_budget_usd."
    )


def describe_confirmations(directory: Path | None = None) -> str:
    return json.dumps(read_json(_path(directory)), indent=1, sort_keys=True)
