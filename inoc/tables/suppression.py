"""Outcome tables from the warehouse's tidy rows: suppression per prompt, fixed and mix (docs/methods.md#suppression).

Works the same on imported and computed experiments: both land as `runs` + `trait_scores`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from inoc.analysis.stats import suppression
from inoc.config import ExperimentConfig
from inoc.config.schema import PREFIX_TYPES, SWEEP_GROUP

SUPPRESSION_COLUMNS = [
    "experiment",
    "prompt_key",
    "prompt_group",
    "prefix_type",
    "trait",
    "trait_role",
    "target",
    "control_run",
    "run",
    "step",
    "n",
    "control_score",
    "run_score",
    "suppression",
    "ci_lo",
    "ci_hi",
]


def control_run_id(cfg: ExperimentConfig, runs: pd.DataFrame) -> str:
    """The experiment's designated control run (the original designated one per experiment)."""
    if cfg.import_ is not None:
        batch = cfg.import_.control_batch or next(iter(cfg.import_.score_files), None)
        if batch is None and cfg.import_.em_scores_file:
            from inoc.importers.experiment import EM_BATCH

            batch = EM_BATCH
        run = f"{batch}/{cfg.import_.control_run_key}"
    else:
        from inoc.pipeline.plans import designated_control

        run = designated_control(cfg)  # `no_inoculation`, or the first learning rate's in a sweep
    if run not in set(runs.run):
        raise ValueError(f"{cfg.name}: designated control run {run!r} is not among the experiment's runs")
    return run


def final_default_scores(scores: pd.DataFrame) -> dict[tuple[str, str], tuple[int, np.ndarray]]:
    """(run, trait) → (final step, per-instruction default-condition scores at that step)."""
    d = scores[scores.condition == "default"]
    final = d.groupby(["run", "trait"]).step.transform("max")
    d = d[d.step == final].sort_values(["run", "trait", "instruction_idx"])
    return {
        (run, trait): (int(g.step.iloc[0]), g.score.to_numpy(dtype=float))
        for (run, trait), g in d.groupby(["run", "trait"], sort=False)
    }


def _sweep_prompts(cfg: ExperimentConfig) -> dict[str, str]:
    return dict(cfg.import_.sweep_prompts) if cfg.import_ is not None else {}


def _group_and_role(cfg: ExperimentConfig, key: str) -> tuple[str, str]:
    """(group, role) of a prompt; an import's sweep prompt (Exp 4's neutral prefix) is a neutral prompt of
    group SWEEP_GROUP."""
    if key in _sweep_prompts(cfg):
        return SWEEP_GROUP, "neutral"
    group = cfg.group_of(key)
    return group, cfg.groups[group].role


def _target(role: str, trait_role: str) -> str | None:
    if role not in ("positive", "negative"):
        return None
    return "trait" if role == trait_role else "cross_trait"


def _suppression_rows(
    cfg: ExperimentConfig, finals: dict, control: str, run: str, key: str, prefix_type: str
) -> list[dict]:
    """One row per positive/negative trait: the run's final default-condition scores against the control's."""
    group, role = _group_and_role(cfg, key)
    missing = (-1, np.array([]))
    rows = []
    for trait in (t for t in cfg.traits if t.role in ("positive", "negative")):
        _, ctrl = finals.get((control, trait.name), missing)
        step, vals = finals.get((run, trait.name), missing)
        if len(ctrl) != len(vals) or len(vals) == 0:
            raise ValueError(
                f"{cfg.name}: run {run!r} has {len(vals)} final {trait.name} scores but the control "
                f"{control!r} has {len(ctrl)}"
            )
        s = suppression(ctrl, vals)
        rows.append(
            {
                "experiment": cfg.name,
                "prompt_key": key,
                "prompt_group": group,
                "prefix_type": prefix_type,
                "trait": trait.name,
                "trait_role": trait.role,
                "target": _target(role, trait.role),
                "control_run": control,
                "run": run,
                "step": step,
                "n": s.n,
                "control_score": s.mean_a,
                "run_score": s.mean_b,
                "suppression": s.mean,
                "ci_lo": s.ci_lo,
                "ci_hi": s.ci_hi,
            }
        )
    return rows


def batch_control(
    cfg: ExperimentConfig, runs: pd.DataFrame, batch: str, learning_rate: float | None = None
) -> str | None:
    """The control run of one batch (its un-inoculated designated-control run), or None. A sweep
    file with one un-inoculated run per learning rate (the original's prefix sweep: default_lr_1e4,
    default_lr_5e6) gives each rate's runs the control of their rate."""
    name = cfg.import_.control_run_key if cfg.import_ is not None else "no_inoculation"
    mine = runs[(runs.batch == batch) & runs.prompt_key.isna() & runs.prefix_type.isna()]
    match = [r for r in mine.run if r.rsplit("/", 1)[-1] == name]
    if match:
        return match[0]
    if learning_rate is not None and not math.isnan(learning_rate):
        same = mine[np.isclose(mine.learning_rate.astype(float), learning_rate)]
        if len(same) == 1:
            return same.run.iloc[0]
    return None


def suppression_by_batch(cfg: ExperimentConfig, runs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Every prompt run of every batch against its own batch's control (a learning-rate sweep: one
    row per rate; an import: one per original experiment file), the study's prompts and an import's
    sweep prompts (`import.sweep_prompts`). Batches without a control, and batches with no prompt run
    (Exp 3: every run un-inoculated), have no rows: `suppression_batches` (warehouse/views.sql) says which and why."""
    finals = final_default_scores(scores)
    keys = [*cfg.prompt_keys, *_sweep_prompts(cfg)]
    rows = []
    for (batch, rate), in_batch in runs.groupby(["batch", runs.learning_rate.fillna(-1.0)], sort=False):
        lr = None if rate == -1.0 else float(rate)
        control = batch_control(cfg, runs, batch, lr)
        if control is None:
            continue
        for r in in_batch[in_batch.prompt_key.isin(keys)].itertuples():
            if not any((r.run, t.name) in finals for t in cfg.traits):
                continue  # a run without scores (an import's failed run)
            rows += [
                {**row, "batch": batch, "learning_rate": np.nan if lr is None else lr}
                for row in _suppression_rows(cfg, finals, control, r.run, r.prompt_key, r.prefix_type)
            ]
    return pd.DataFrame(rows, columns=[*SUPPRESSION_COLUMNS, "batch", "learning_rate"])


def suppression_table(cfg: ExperimentConfig, runs: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (prompt, prefix type, trait) that has a run: paired suppression vs the control."""
    control = control_run_id(cfg, runs)
    finals = final_default_scores(scores)
    # When several batches trained the same prompt, the first batch in config order wins (as the
    # original); in a learning-rate sweep, the control's batch (the first rate).
    if cfg.import_:
        batch_order = list(cfg.import_.score_files)
    else:
        from inoc.pipeline.plans import lr_batch

        batch_order = [lr_batch(lr) for lr in cfg.training.learning_rates]
    runs = runs.assign(_order=runs.batch.map(lambda b: batch_order.index(b) if b in batch_order else len(batch_order)))
    rows = []
    for key in cfg.prompt_keys:
        for prefix_type in PREFIX_TYPES:
            match = runs[(runs.prompt_key == key) & (runs.prefix_type == prefix_type)].sort_values("_order")
            if not match.empty:
                rows += _suppression_rows(cfg, finals, control, match.run.iloc[0], key, prefix_type)
    return pd.DataFrame(rows, columns=SUPPRESSION_COLUMNS)


def format_suppression(table: pd.DataFrame) -> pd.DataFrame:
    """Wide, printable view: per prompt, the targeted trait's suppression for fixed and mix (and
    close_mix when the study has such runs) with CIs."""

    def cell(r: pd.Series) -> str:
        if math.isnan(r.suppression):
            return "n/a"
        ci = "" if math.isnan(r.ci_lo) else f" [{r.ci_lo:.1f}, {r.ci_hi:.1f}]"
        return f"{r.suppression:.1f}{ci}"

    types = ["fixed", "mix"] + (["close_mix"] if (table.prefix_type == "close_mix").any() else [])
    if table.empty:
        return pd.DataFrame(columns=["prompt", "group", "trait", *types])
    # Neutral prompts target no trait: show both traits for them.
    shown = table[(table.target == "trait") | table.target.isna()]
    out = (
        shown.assign(cell=shown.apply(cell, axis=1))
        .pivot_table(
            index=["prompt_key", "prompt_group", "trait"],
            columns="prefix_type",
            values="cell",
            aggfunc="first",
            sort=False,
        )
        .reset_index()
        .rename(columns={"prompt_key": "prompt", "prompt_group": "group"})
    )
    for col in types:
        if col not in out:
            out[col] = "—"
    out = out.fillna("—")
    return out[["prompt", "group", "trait", *types]]
