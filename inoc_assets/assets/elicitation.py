"""Elicitation (docs/methods.md#elicitation): base-model completions under each prompt as a prefix, judged for both traits.

``elicitation_baseline`` is the no-prefix row (stored as prompt ``neutral``); ``elicitation`` is
partitioned by prompt. A backfill of several prompts runs one generate job over all of them
(single-run backfill policy), so the model loads once.
"""

import hashlib
from pathlib import Path

import dagster as dg
import pandas as pd

from inoc import settings
from inoc.config import ExperimentConfig, load_experiment
from inoc.pipeline.judging import judge_all
from inoc.pipeline.requests import elicitation_judge_instructions, elicitation_requests
from inoc.tables.scores import elicitation_rows
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.partitions import prompt_partitions
from inoc_assets.plumbing import (
    base_model_sample_spec,
    completions,
    held_out_instructions,
    key,
    partition_prompts,
    work_dir,
    write_requests,
)
from inoc_assets.resources import WarehouseResource
from inoc_assets.stages import PROMPT, SETUP, stage_tag
from inoc_assets.table_metadata import number
from inoc_assets.table_metadata import table as table_md
from warehouse import replace_rows

BASELINE = "neutral"


def _elicit(
    context: dg.AssetExecutionContext,
    gpu_jobs: ComputeBackends,
    warehouse: WarehouseResource,
    cfg: ExperimentConfig,
    keys: list[str | None],
) -> tuple[pd.DataFrame, dict]:
    """Generate, judge and store the elicitation rows of ``keys`` (None = the baseline)."""
    exp = cfg.name
    evals = held_out_instructions(cfg)
    names = [k or BASELINE for k in keys]
    tag = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    req = write_requests(exp, f"elicitation_{tag}.jsonl", elicitation_requests(cfg, keys, evals))
    spec = base_model_sample_spec(cfg, req, max_tokens=cfg.elicitation.max_tokens, seed=cfg.eval.seed)
    result = gpu_jobs.run_job(context, cfg, "generate", spec, work_dir(exp, "jobs", "elicitation", tag))
    done = completions(result)
    # elicitation.judge_without_instruction: those prompts' completions are judged without their instruction
    shown = {k or BASELINE: cfg.elicitation_shows_instruction(k) for k in keys}
    judged = judge_all(
        cfg,
        elicitation_judge_instructions(cfg, done, evals, BASELINE),
        [c["text"] for c in done],
        cache=settings.judge_cache_path(),
        log=context.log.info,
    )
    table = elicitation_rows(done, judged)
    with warehouse.warehouse.writer() as conn:
        for name in names:
            replace_rows(
                conn,
                "elicitation_scores",
                table[table.prompt_key == name].drop(columns="prompt_key"),
                {"experiment": exp, "prompt_key": name},
            )
    summary = warehouse.warehouse.query(
        f"SELECT * FROM elicitation_summary WHERE experiment = ? AND prompt_key IN ({', '.join('?' * len(names))})",
        [exp, *names],
    )
    for partition, name in zip(keys, names):
        own = summary[summary.prompt_key == name]
        context.log.info(f"elicitation {name}: " + ", ".join(f"{r.trait} {r.mean:.1f}" for r in own.itertuples()))
        # Each partition's own numbers (a batch of prompts is one job, but every prompt has its own results).
        context.add_asset_metadata(
            prompt_metadata(own, judged_without_instruction=not shown[name]), partition_key=partition
        )
    for t, j in judged.items():  # batch-wide judge accounting: in the run's log, not on every partition
        context.log.info(f"judge {t} over the batch: {j.summary()}")
    meta = {
        "batch_prompts": len(names),  # the prompts this one generate job served
        "batch_stopped_fraction": result.marker_metadata.get("stopped_fraction"),
        "batch_completions": len(done),
    }
    return table, meta


def prompt_metadata(summary: pd.DataFrame, judged_without_instruction: bool) -> dict:
    """One prompt's elicitation per trait: mean, 95% CI, n and the difference from the no-prefix baseline (pp)."""
    meta: dict = {"judged_without_instruction": judged_without_instruction}
    for r in summary.itertuples():
        meta[f"{r.trait}_mean"] = number(r.mean)
        meta[f"{r.trait}_vs_baseline_pp"] = number(r.relative_pp)
        meta[f"{r.trait}_ci95"] = f"[{r.ci_lo:.1f}, {r.ci_hi:.1f}]" if pd.notna(r.ci_lo) else "n/a"
        meta[f"{r.trait}_n"] = int(r.n)
    shown = summary[["trait", "n", "n_nan", "mean", "ci_lo", "ci_hi", "relative_pp"]].rename(
        columns={"relative_pp": "vs_baseline_pp"}
    )
    meta["elicitation"] = table_md(shown)
    return meta


def _sanity(cfg: ExperimentConfig, table: pd.DataFrame, n_eval: int, names: list[str]) -> dg.AssetCheckResult:
    counts = table.groupby(["prompt_key", "trait"]).size()
    complete = all(counts.get((n, t), 0) == n_eval for n in names for t in table.trait.unique())
    nan = float(table.score.isna().mean()) if len(table) else 1.0
    in_range = bool(table.score.dropna().between(0, 100).all())
    return dg.AssetCheckResult(
        check_name="elicitation_sanity",
        passed=complete and in_range and nan <= cfg.judge.max_nan_fraction,
        metadata={
            "complete": complete,
            "scores_in_0_100": in_range,
            "nan_fraction": round(nan, 4),
            "bound": cfg.judge.max_nan_fraction,
        },
    )


CHECK = (
    "elicitation_sanity",
    "One judged completion per eval instruction and trait for every prompt, scores in "
    "[0, 100], and at most judge.max_nan_fraction NaN scores.",
)


def elicitation_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    base_key, k = key(experiment, "elicitation_baseline"), key(experiment, "elicitation")

    @dg.asset(
        key=base_key,
        group_name=experiment,
        kinds={"duckdb"},
        pool="gpu",
        tags=stage_tag(SETUP),
        deps=[key(experiment, "base_model"), key(experiment, "eval_instructions")],
        description="The base model's trait scores with no prefix (the `neutral` row of `elicitation_scores`): "
        "the baseline of elicitation strength.",
        check_specs=[dg.AssetCheckSpec(CHECK[0], asset=base_key, description=CHECK[1])],
    )
    def elicitation_baseline(
        context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, warehouse: WarehouseResource
    ):
        cfg = load_experiment(config_path)
        table, meta = _elicit(context, gpu_jobs, warehouse, cfg, [None])
        yield dg.MaterializeResult(metadata=meta)
        yield _sanity(cfg, table, len(held_out_instructions(cfg)), [BASELINE])

    @dg.asset(
        key=k,
        group_name=experiment,
        kinds={"duckdb"},
        pool="gpu",
        tags=stage_tag(PROMPT),
        partitions_def=prompt_partitions(experiment),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[key(experiment, "prompt"), key(experiment, "base_model"), key(experiment, "eval_instructions")],
        description="Completions of the eval instructions with the prompt as prefix (docs/methods.md#elicitation), judged for both "
        "traits → `elicitation_scores`; elicitation strength = mean − the baseline (view elicitation_summary).",
        check_specs=[dg.AssetCheckSpec(CHECK[0], asset=k, description=CHECK[1])],
    )
    def elicitation(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, warehouse: WarehouseResource):
        cfg = load_experiment(config_path)
        keys = partition_prompts(context, cfg, config_path)
        table, meta = _elicit(context, gpu_jobs, warehouse, cfg, keys)
        yield dg.MaterializeResult(metadata=meta)
        yield _sanity(cfg, table, len(held_out_instructions(cfg)), keys)

    return [elicitation_baseline, elicitation]


__all__ = ["elicitation_assets", "BASELINE"]
