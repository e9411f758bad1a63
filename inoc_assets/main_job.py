"""The main job: the embedded default, end to end, then the suppression table.

Until the model organism and its pipeline exist, the embedded default is the analysis of the
original study's published results (`reference_pf_qwen7b`, `reference_gf_llama8b`,
`reference_em_qwen32b`), read in place
from the reference folder. Runs go through the persistent instance, so they show in the UI.
"""

from __future__ import annotations

import time

from dagster import AssetKey, DagsterInstance
from tabulate import tabulate

from inoc import settings
from inoc.config import load_all
from inoc.importers.experiment import configured_kinds
from inoc.outcomes import format_suppression
from inoc_assets.assets.imported import imported_key
from inoc_assets.runner import run_assets
from inoc_assets.sync import apply_sync, plan_sync
from warehouse import Warehouse

MAIN_EXPERIMENTS = ("reference_pf_qwen7b", "reference_gf_llama8b", "reference_em_qwen32b")


class MainJobError(Exception):
    pass


def _step(msg: str) -> None:
    print(f"[inoc] {msg}", flush=True)


def run_main(experiments: tuple[str, ...] = MAIN_EXPERIMENTS, log_level: str = "WARNING") -> None:
    if settings.shared_dir() is None:
        raise MainJobError(
            "the main job analyses the original study's published results, read in place from "
            "../shared/reference beside this checkout; set INOC_SHARED_DIR to the folder that holds reference/"
        )
    home = settings.prepare_dagster_home()
    catalog = load_all(settings.experiments_dir())
    missing = [e for e in experiments if e not in catalog.configs]
    if missing:
        raise MainJobError(f"experiment config(s) {missing} not found in {settings.experiments_dir()}")
    started = time.time()
    with DagsterInstance.get() as instance:
        plan = plan_sync(instance, settings.experiments_dir())
        apply_sync(instance, plan)
        _step(f"registered {plan.n_added} new prompt partition(s)")
        selection = []
        for exp in experiments:
            cfg = catalog.configs[exp]
            kinds = configured_kinds(cfg)
            selection += [AssetKey([exp, "experiment"]), *[imported_key(exp, k) for k in kinds]]
            if "scores" in kinds:
                selection.append(AssetKey([exp, "suppression"]))
            if "logprobs" in kinds:
                selection.append(AssetKey([exp, "prompt_geometry"]))
            selection.append(AssetKey([exp, "figures"]))
        _step(f"importing and analysing {', '.join(experiments)} ({len(selection)} assets)")
        result = run_assets(instance, selection, log_level=log_level)
        if not result.success:
            raise MainJobError(f"run {result.run_id} failed; see `inoc ui` → Runs for the failing step and its logs")
        for exp in experiments:
            keys = catalog.configs[exp].prompt_keys
            _step(f"recording {len(keys)} prompts of {exp}")
            result = run_assets(instance, [AssetKey([exp, "prompt"])], partition_range=(keys[0], keys[-1]), log_level=log_level)
            if not result.success:
                raise MainJobError(f"run {result.run_id} failed; see `inoc ui` → Runs")
        _step("building the slides dataset, heuristic performance and section-1 figures")
        result = run_assets(instance, [AssetKey(["slides", "slides_dataset"]), AssetKey(["slides", "section1_figures"])], log_level=log_level)
        if not result.success:
            raise MainJobError(f"run {result.run_id} failed; see `inoc ui` → Runs")
    wh = Warehouse(settings.warehouse_path())
    for exp in experiments:
        em = wh.query(
            "SELECT split_part(run, '/', 2) AS run, eval_set, condition, n_pairs, round(100 * em_rate, 1) AS em_rate_pct, "
            "round(100 * em_rate_ci_lo, 1) AS ci_lo, round(100 * em_rate_ci_hi, 1) AS ci_hi FROM em_summary "
            "WHERE experiment = ? AND step = (SELECT max(step) FROM em_summary WHERE experiment = ?) "
            "AND condition = 'training' AND eval_set = 'em' ORDER BY run",
            [exp, exp],
        )
        if len(em):
            note = catalog.configs[exp].import_.note if catalog.configs[exp].import_ else ""
            print(f"\n== {exp}: EM rate on general questions, training condition, final step ({note}) ==")
            print(tabulate(em, headers="keys", tablefmt="github", showindex=False))
        table = wh.query("SELECT * FROM suppression WHERE experiment = ? ORDER BY rowid", [exp])
        if table.empty:
            continue
        control = table.control_run.iloc[0] if len(table) else "?"
        print(f"\n== {exp}: suppression (pp) of each prompt's targeted trait vs {control}; mean [95% CI] ==")
        print(tabulate(format_suppression(table), headers="keys", tablefmt="github", showindex=False))
    print(
        f"\nDone in {time.time() - started:.0f} s.\n"
        f"  warehouse : {settings.warehouse_path()}  (query with: inoc sql \"SELECT * FROM suppression LIMIT 5\")\n"
        f"  figures   : {settings.artifact_root()}/<experiment>/figures/ and {settings.artifact_root()}/slides/\n"
        f"  Dagster   : DAGSTER_HOME={home}  (open with: inoc ui)"
    )
