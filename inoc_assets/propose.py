"""`inoc propose`: candidates through the cheap stages, ranked by predicted suppression; promotion of the chosen.

Proposing writes the candidates into the experiment YAML (`candidates:`: no run is planned for them), registers
their prompt partitions, materializes only their prompt stages (rephrasings, elicitation, logprobs, text
heuristics), then the aggregates and the slides, whose `suppression_predictor` predicts every prompt's
suppression from its base-model heuristics (`inoc.prediction`). Selecting (`--select K`) picks K candidates by
a stated rule and promotes them (removes them from `candidates:`) after the user confirms the diff, or with
`--write`; `inoc backfill` then trains exactly those.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from tabulate import tabulate

from inoc import settings
from inoc.config import ExperimentConfig, load_all
from inoc.config.digest import config_digest, stage_digest
from inoc.propose import yaml_edit
from inoc.propose.acquisition import RULES, select
from inoc.propose.generate import ProposeError, next_round, propose, trait_group
from inoc_assets.main_job import _contiguous, require_setup, run_aggregates, run_slides, stage_selection
from inoc_assets.plumbing import PROMPT_IDENTITY
from inoc_assets.stage_runner import MainJobError, Runner
from inoc_assets.stages import PROMPT
from inoc_assets.sync import DIGEST_TAG, apply_sync, plan_sync
from warehouse import Warehouse


@dataclass
class Costs:
    """Measured wall seconds on this machine: the cheap stages per candidate and one training run (train, eval, judge)."""

    cheap_s: float | None
    run_s: float | None
    n_runs: int


def _experiment(name: str) -> tuple[ExperimentConfig, Path]:
    catalog = load_all(settings.experiments_dir())
    if name not in catalog.configs:
        bad = [e for e in catalog.errors if Path(e.problems[0].file).stem == name]
        raise MainJobError(
            f"experiment config {name!r} is invalid:\n{bad[0]}"
            if bad
            else f"experiment {name!r} not found in {settings.experiments_dir()}"
        )
    cfg = catalog.configs[name]
    if cfg.is_import:
        raise MainJobError(f"{name} imports its results: it has no base model to measure candidates with")
    return cfg, Path(catalog.paths[name])


def propose_candidates(experiment: str, trait: str, n: int, log_level: str = "warning") -> Runner:
    """Make ``n`` candidates for ``trait``, run their cheap stages and the predictor, print the ranking."""
    settings.prepare_dagster_home()
    cfg, path = _experiment(experiment)
    try:
        role, family, group = trait_group(cfg, trait)
        cands = propose(cfg, trait, n, next_round(cfg, family))
        new_text = yaml_edit.add_candidates(path, group, role, family, {c.key: c.text for c in cands})
    except ProposeError as exc:
        raise MainJobError(str(exc)) from None
    started = time.time()
    with DagsterInstance.get() as instance:
        require_setup(instance, experiment, "(the predictor learns from the study's trained prompts)")
        cfg = yaml_edit.write(path, new_text)
        run = Runner(instance, log_level)
        run.say(
            f"{experiment}: {len(cands)} {trait} candidate(s) added to {path} (group {group}; candidates get no run)"
        )
        apply_sync(instance, plan_sync(instance, settings.experiments_dir()))
        keys = [c.key for c in cands]
        tags = {DIGEST_TAG: stage_digest(cfg)}
        stages = stage_selection(experiment, PROMPT)
        t0 = time.time()
        run.say(f"{experiment}: rephrasings, elicitation and logprobs of {len(keys)} candidate(s)")
        if len(keys) > 1 and _contiguous(instance, experiment, keys):
            run(stages, "candidate prompt stages", partition_range=(keys[0], keys[-1]), tags=tags)
        else:
            for k in keys:
                run(stages, f"prompt stages of {k}", partition_key=k, tags=tags)
        cheap_s = (time.time() - t0) / len(keys)
        run_aggregates(instance, run, experiment, {DIGEST_TAG: config_digest(cfg)})
        run_slides(instance, run)
        costs = Costs(cheap_s, *_run_seconds(instance, experiment))
    run.wall_s = time.time() - started
    print_ranking(Warehouse(settings.warehouse_path()), cfg, trait, costs)
    run.say(
        f"propose done: {run.n_steps} steps in {run.n_runs} runs, {run.wall_s:.0f} s. Next: "
        f"`inoc propose {experiment} --trait {trait} --select K` to choose what to train"
    )
    return run


def show_ranking(experiment: str, trait: str, log_level: str = "warning") -> None:
    """Refit the predictor where its inputs changed (new runs: the loop, closed), then print the ranking of the
    remaining candidates and how the predictions of the prompts trained since held up."""
    settings.prepare_dagster_home()
    cfg, _ = _experiment(experiment)
    with DagsterInstance.get() as instance:
        run_slides(instance, Runner(instance, log_level))
        costs = Costs(None, *_run_seconds(instance, experiment))
    wh = Warehouse(settings.warehouse_path())
    print_ranking(wh, cfg, trait, costs)
    print_rounds(wh, cfg)


def print_rounds(wh: Warehouse, cfg: ExperimentConfig) -> None:
    """The prompts trained after they were predicted: prior prediction against observed, per round."""
    try:
        prior = wh.query(
            "SELECT * FROM prediction_rounds WHERE experiment = ? ORDER BY prefix_type, round, prediction DESC",
            [cfg.name],
        )
    except Exception:  # a warehouse from before the predictor: nothing to show
        return
    if prior.empty:
        return
    rows = [
        {
            "prefix": r.prefix_type,
            "round": r.round,
            "prompt_key": r.prompt_key,
            "predicted before training [90% int.]": f"{r.prediction:.1f} [{r.lo:.1f}, {r.hi:.1f}]",
            "observed": r.observed,
            "|error|": r.abs_error,
            "covered": "yes" if r.covered else "no",
        }
        for r in prior.itertuples()
    ]
    print(f"\n== {cfg.name}: prompts trained after a prediction (the prediction from before their run) ==")
    print(tabulate(pd.DataFrame(rows), headers="keys", tablefmt="github", showindex=False, floatfmt=".1f"))
    print(
        f"mean |error| {prior.abs_error.mean():.1f} pp; {int(prior.covered.sum())} of {len(prior)} observed values "
        "inside their interval; figure: artifacts/slides/prediction_rounds_<experiment>_<type>.png"
    )


def _run_seconds(instance: DagsterInstance, experiment: str) -> tuple[float | None, int]:
    """Mean wall seconds of this experiment's finished run-partition Dagster runs (train → eval → judge)."""
    records = instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]), limit=1000)
    spans = [
        r.end_time - r.start_time
        for r in records
        if r.dagster_run.tags.get(PROMPT_IDENTITY)
        and r.start_time
        and r.end_time
        and r.dagster_run.tags.get("dagster/partition", "").count("/") == 1
        and any(k.path[0] == experiment for k in (r.dagster_run.asset_selection or ()))
    ]
    return (sum(spans) / len(spans) if spans else None), len(spans)


def ranking(wh: Warehouse, cfg: ExperimentConfig, trait: str) -> tuple[pd.DataFrame, str]:
    """The candidates of ``trait`` with predicted fixed/mix suppression and their heuristics, best first,
    and the scope of the model that predicted them ('experiment', or 'pooled' where the study's own could not fit)."""
    role, family, _ = trait_group(cfg, trait)
    keys = [k for k in cfg.candidates if cfg.groups[cfg.group_of(k)].family == family]
    if not keys:
        return pd.DataFrame(), ""
    try:
        preds = wh.query("SELECT * FROM suppression_predictions WHERE experiment = ?", [cfg.name])
    except Exception as exc:  # the table is the predictor's: absent until the slides ran once
        raise MainJobError(
            f"no predictions in the warehouse ({exc}); run `inoc main --experiment {cfg.name}`"
        ) from None
    scope = (
        "experiment"
        if (preds.scope == "experiment").any() and preds[preds.scope == "experiment"].prompt_key.isin(keys).any()
        else "pooled"
    )
    p = preds[(preds.scope == scope) & preds.prompt_key.isin(keys)]
    wide = p.pivot_table(
        index="prompt_key", columns="prefix_type", values=["prediction", "lo", "hi", "extrapolated"], aggfunc="first"
    )
    wide.columns = [f"{v}_{t}" for v, t in wide.columns]
    h = wh.query(
        "SELECT prompt_key, prompt_text, elicitation, ph_prefix AS ph FROM slides_dataset WHERE experiment = ? "
        "AND trait_role = ? AND prefix_type = 'fixed'",
        [cfg.name, role],
    ).set_index("prompt_key")
    out = h.reindex(keys).join(wide)
    by = (
        "prediction_fixed" if "prediction_fixed" in out else next((c for c in out if c.startswith("prediction_")), None)
    )
    if by is not None:
        out = out.sort_values(by, ascending=False, na_position="last")
    return out.reset_index(names="prompt_key"), scope


def _interval(r, t: str) -> str:
    v, lo, hi = (r.get(f"{x}_{t}", math.nan) for x in ("prediction", "lo", "hi"))
    outside = bool(r.get(f"extrapolated_{t}", False) == True)  # noqa: E712 (NaN where the prompt had no prediction)
    return "n/a" if not math.isfinite(v) else f"{v:.1f} [{lo:.1f}, {hi:.1f}]" + (" †" if outside else "")


def print_ranking(wh: Warehouse, cfg: ExperimentConfig, trait: str, costs: Costs | None = None) -> pd.DataFrame:
    table, scope = ranking(wh, cfg, trait)
    if table.empty:
        print(f"{cfg.name}: no {trait} candidates (propose some with `inoc propose {cfg.name} --trait {trait} --n N`)")
        return table
    types = [t for t in ("fixed", "mix") if f"prediction_{t}" in table]
    if not types:
        print(f"{cfg.name}: no suppression prediction for the {trait} candidates yet: {_why_no_model(wh, cfg, trait)}")
    rows = [
        {
            "rank": i,
            "prompt_key": r.prompt_key,
            "text": _short(r.prompt_text),
            **{f"pred. {t} sup. (pp) [90% int.]": _interval(r._asdict(), t) for t in types},
            "elicitation (pp)": r.elicitation,
            "PH": r.ph,
        }
        for i, r in enumerate(table.itertuples(), 1)
    ]
    print(
        f"\n== {cfg.name}: {len(rows)} {trait} candidates ranked by predicted suppression of {trait} "
        f"(model: {scope}; elicitation: the base model's, pp above the no-prefix baseline; PH: mean log-prob gain of the training answers under the prompt, fixed) =="
    )
    print(tabulate(pd.DataFrame(rows), headers="keys", tablefmt="github", showindex=False, floatfmt=".3g"))
    if any("†" in str(v) for row in rows for v in row.values()):
        print("† extrapolated: a heuristic the model uses lies outside the range of the study's trained prompts")
    if costs is not None:
        cheap = f"{costs.cheap_s:.1f} s per candidate" if costs.cheap_s is not None else "measured when proposing"
        train = (
            f"{costs.run_s:.0f} s per run (mean of {costs.n_runs} finished runs)"
            if costs.run_s is not None
            else "no finished run to measure"
        )
        print(f"cost on this machine: cheap stages {cheap}; training, eval and judging {train}")
    return table


def _why_no_model(wh: Warehouse, cfg: ExperimentConfig, trait: str) -> str:
    from inoc.prediction.model import MIN_TRAIN

    role, _, _ = trait_group(cfg, trait)
    n = wh.query(
        "SELECT count(DISTINCT prompt_key) AS n FROM slides_dataset WHERE experiment = ? AND trait_role = ? "
        "AND prefix_type = 'fixed' AND suppression IS NOT NULL AND prompt_family <> 'neutral'",
        [cfg.name, role],
    ).n.item()
    return (
        f"{n} prompt(s) of the study have a {trait} run, a model of its own needs {MIN_TRAIN}, and a pooled model "
        "needs runs in a second experiment; train more prompts first (remove some keys from `candidates:` and backfill them)"
    )


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def select_and_promote(
    experiment: str, trait: str, k: int, rule: str, write: bool, prefix_type: str = "fixed", confirm=None
) -> list[str]:
    """Pick ``k`` candidates by ``rule`` and promote them (after confirmation or with ``write``); returns their keys."""
    cfg, path = _experiment(experiment)
    table, scope = ranking(Warehouse(settings.warehouse_path()), cfg, trait)
    if table.empty:
        raise MainJobError(
            f"{experiment}: no {trait} candidates with predictions; run `inoc propose {experiment} "
            f"--trait {trait} --n N` first"
        )
    try:
        chosen = select(table, k, rule, prefix_type)
        new_text = yaml_edit.promote(path, chosen)
    except ProposeError as exc:
        raise MainJobError(str(exc)) from None
    print(
        f"{experiment}: rule {rule!r} ({RULES[rule]}) on predicted {prefix_type} suppression ({scope} model) picks: "
        + ", ".join(chosen)
    )
    print(yaml_edit.diff(path, new_text))
    if not write:
        answer = (
            confirm() if confirm else (input("promote them (write the YAML)? [y/N] ") if sys.stdin.isatty() else "")
        )
        if answer.strip().lower() not in ("y", "yes"):
            print("not written (re-run with --write, or answer y)")
            return []
    yaml_edit.write(path, new_text)
    flags = " ".join(f"--prompt {key}" for key in chosen)
    print(
        f"promoted {len(chosen)} candidate(s) in {path}. Train them with:\n  inoc backfill {experiment} {flags} "
        f"--prefix-type {prefix_type}"
    )
    return chosen
