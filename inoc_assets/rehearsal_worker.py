"""The rehearsal's pipeline process: ``python -m inoc_assets.rehearsal_worker EXPERIMENT REPORT_JSON``.

Started by ``inoc.rehearsal.run`` (``inoc rehearse``) with INOC_HOME, DAGSTER_HOME and
INOC_EXPERIMENTS_DIR pointing into the rehearsal's own home, so the study's asset graph runs on the
rehearsal config and nothing reaches the real home. It runs the main job's stages (``run_pipeline``),
records each stage's wall time and the warehouse rows it wrote, then which assets were materialized,
and writes the report as JSON (also when a stage fails: the failure is in the report). It lives here,
not in ``inoc.rehearsal``, because it drives Dagster; the rehearsal starts it as a process.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from dagster import AssetRecordsFilter, DagsterInstance

from inoc import settings
from inoc.config import load_all
from inoc_assets.definitions import defs  # built from the environment the rehearsal started this process with
from inoc_assets.main_job import MainJobError, Runner, run_pipeline
from inoc_assets.partitions import run_partition_key
from inoc_assets.stages import PROMPT, RUN, group_specs, stage_of
from inoc_assets.sync import apply_sync, plan_sync
from warehouse import Warehouse


def _table_counts(warehouse: Any, experiment: str) -> dict[str, int]:
    """Rows of this experiment in every warehouse table (and view) that has an ``experiment`` column."""
    tables = warehouse.query(
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE column_name = 'experiment'"
    )
    out = {}
    for name in sorted(tables.table_name):
        n = warehouse.query(f'SELECT count(*) AS n FROM "{name}" WHERE experiment = ?', [experiment]).n.iloc[0]
        out[name] = int(n)
    return out


def _expected_partitions(cfg: Any, stage: str) -> list[str | None]:
    if stage == PROMPT:
        return list(cfg.prompt_keys)
    if stage == RUN:
        return [run_partition_key(p, t) for p, t in cfg.run_partition_keys()]
    return [None]


def coverage(instance: DagsterInstance, cfg: Any) -> list[dict[str, Any]]:
    """Each asset of the study's group: its stage and how many of its partitions were materialized."""
    rows = []
    for spec in sorted(group_specs(defs, cfg.name), key=lambda s: s.key.to_user_string()):
        stage = stage_of(spec)
        wanted = _expected_partitions(cfg, stage)
        done = 0
        for part in wanted:
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=spec.key, asset_partitions=[part] if part else None), limit=1
            ).records
            done += bool(records)
        rows.append({"asset": spec.key.to_user_string(), "stage": stage, "expected": len(wanted), "materialized": done})
    return rows


def main(argv: list[str]) -> int:
    experiment, report_path = argv[0], Path(argv[1])
    settings.prepare_dagster_home()
    cfg = load_all(settings.experiments_dir()).configs[experiment]
    report: dict[str, Any] = {"experiment": experiment, "stages": [], "error": None}
    started = time.time()
    with DagsterInstance.get() as instance:
        apply_sync(instance, plan_sync(instance, settings.experiments_dir()))
        before = {}

        def on_stage(stage: str, wall_s: float) -> None:
            nonlocal before
            counts = _table_counts(Warehouse(settings.warehouse_path()), experiment)
            added = {t: n - before.get(t, 0) for t, n in counts.items() if n != before.get(t, 0)}
            report["stages"].append({"stage": stage, "wall_s": round(wall_s, 1), "rows": added})
            before = counts

        try:
            run_pipeline(instance, cfg, Runner(instance, "WARNING", in_process=True), on_stage=on_stage)
        except MainJobError as exc:
            report["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 — reported, with its traceback, in the rehearsal report
            report["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        report["assets"] = coverage(instance, cfg)
    report["wall_s"] = round(time.time() - started, 1)
    report_path.write_text(json.dumps(report, indent=1))
    return 0 if report["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
