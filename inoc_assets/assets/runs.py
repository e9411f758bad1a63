"""Training runs, their eval completions and their trait scores (docs/methods.md#training, #evaluation).

Three stages, each in two flavours built by the same functions: the control (``control_run``,
``control_eval``, ``control_scores``; unpartitioned, every un-inoculated run) and the inoculated
runs (``runs``, ``run_eval``, ``run_scores``; one partition per planned run, ``<prompt>/<fixed|mix|close_mix>``).

* run — the train job: LoRA SFT on ``data/train.jsonl`` with the run's prefix plan (none, the
  fixed prompt, or a seeded rephrasing per example from the diverse or the close pool); adapters at the configured checkpoints;
  losses → ``training_losses``, the run → ``runs``.
* eval — the generate job, one engine for every checkpoint's adapter: completions of every eval
  set under the default condition (no prefix) and the training condition (the prompt; for mix a
  seeded rephrasing of the run's pool per instruction).
* scores — the judges → ``trait_scores`` (NaN kept; an asset check bounds the NaN share).
"""

from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from gpu_jobs import io as job_io
from gpu_jobs.spec import LoraTraining
from inoc import settings
from inoc.config import ExperimentConfig, expand_path, load_experiment
from inoc.pipeline.instructions import InstructionError, read_conversations
from inoc.pipeline.judging import judge_all
from inoc.pipeline.plans import RunPlan, control_plans, prefix_plan, prompt_plans
from inoc.pipeline.requests import eval_requests
from inoc_assets.assets.data import TRAIN_FILE, data_path, eval_sets, generate_spec, key, write_jsonl_path
from inoc_assets.assets.logprobs import read_pool_file, required_pool
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.partitions import parse_run_partition_key, run_partitions
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import RUN, SETUP, stage_tag
from inoc_assets.table_metadata import number
from inoc_assets.table_metadata import table as table_md
from inoc_assets.work import model_ref, run_job, work_dir, write_jsonl
from warehouse import replace_rows

#: The training settings a run's spec copies from the experiment config (its rate and schedule are set per run).
TRAINING_FIELDS = LoraTraining.run_plan_fields()


def run_dir(cfg: ExperimentConfig, plan: RunPlan) -> Path:
    return work_dir(cfg.name, "jobs", "runs", plan.slug)


def _partition(context: AssetExecutionContext) -> tuple[str, str]:
    try:
        return parse_run_partition_key(context.partition_key)
    except ValueError as exc:
        raise Failure(description=str(exc)) from None


def _plans(context: AssetExecutionContext, cfg: ExperimentConfig, control: bool) -> list[RunPlan]:
    if control:
        return control_plans(cfg)
    prompt, prefix_type = _partition(context)
    if prompt not in cfg.prompts:
        raise Failure(description=f"prompt {prompt!r} is no longer in the config; its existing data is kept")
    if (prompt, prefix_type) not in cfg.run_partition_keys():
        raise Failure(
            description=f"{cfg.name}: no {prefix_type} run is configured for {prompt!r} (see "
            "inoculation.prefix_types, runs.prompts and runs.<type>_prompts); nothing to train"
        )
    return prompt_plans(cfg, prompt, prefix_type)


def _pool(artifacts: ArtifactStoreResource, cfg: ExperimentConfig, plan: RunPlan) -> Path | None:
    if plan.pool is None:
        return None
    return required_pool(artifacts, cfg, plan.prompt_key, plan.pool)


def training_file(cfg: ExperimentConfig, plan: RunPlan) -> Path:
    """The run's training data: the study's, or an extra control's own messages file (EM's subtle data)."""
    name = plan.run.rsplit("/", 1)[-1]
    if plan.is_control and name in cfg.runs.extra_control_data:
        source = Path(expand_path(cfg.runs.extra_control_data[name]))
        try:
            rows = read_conversations(source)
        except InstructionError as exc:
            raise Failure(description=f"runs.extra_control_data.{name}: {exc}") from None
        path = data_path(cfg.name, f"train_{name}.jsonl")
        write_jsonl(path, ({"instruction": x, "completion": c} for x, c in rows))
        return path
    data = data_path(cfg.name, TRAIN_FILE)
    if not data.is_file():
        raise Failure(description=f"{data} does not exist; materialize {cfg.name}/training_data first")
    return data


def train(context, gpu_jobs, warehouse, artifacts, cfg: ExperimentConfig, plans: list[RunPlan]) -> dict:
    meta: dict = {}
    for plan in plans:
        data = training_file(cfg, plan)
        spec = {
            "model": {**model_ref(cfg, train=True)},
            "data": {"path": str(data)},
            "system_prompt": cfg.system_prompt,
            "prefix": prefix_plan(cfg, plan, _pool(artifacts, cfg, plan)),
            "learning_rate": plan.learning_rate,
            "checkpoints": cfg.training.checkpoints.model_dump(),
            "load_in_4bit": cfg.model.load_in_4bit,
            **{f: getattr(cfg.training, f) for f in TRAINING_FIELDS},
        }
        result = run_job(context, gpu_jobs, cfg, "train", spec, run_dir(cfg, plan))
        m = result.marker_metadata
        losses = pd.read_parquet(result.path("losses.parquet"))
        with warehouse.warehouse.writer() as conn:
            replace_rows(
                conn,
                "runs",
                pd.DataFrame(
                    [
                        {
                            "batch": plan.batch,
                            "prompt_key": plan.prompt_key,
                            "prefix_type": plan.prefix_type,
                            "learning_rate": plan.learning_rate,
                            "n_steps": m["total_steps"],
                        }
                    ]
                ),
                {"experiment": cfg.name, "run": plan.run},
            )
            replace_rows(
                conn,
                "training_losses",
                pd.DataFrame(
                    {
                        "step": losses.step,
                        "loss": losses.loss,
                        "learning_rate": losses.lr,
                        "grad_norm": losses.grad_norm,
                        "epoch": losses.epoch,
                    }
                ),
                {"experiment": cfg.name, "run": plan.run},
            )
        context.log.info(
            f"{plan.run}: {m['total_steps']} steps, loss {m['first_loss']:.3f} → {m['final_loss']:.3f}"
            f"{' (reused)' if result.reused else ''}"
        )
        smooth = smoothed_losses(losses.loss)
        curve = pd.DataFrame({"step": losses.step, "loss": losses.loss, "smoothed": smooth})
        shown = curve.iloc[np.unique(np.linspace(0, len(curve) - 1, min(len(curve), 12)).round().astype(int))]
        meta[plan.run] = {
            "steps": m["total_steps"],
            "checkpoints": MetadataValue.json(m["checkpoint_steps"]),
            "first_loss": number(m["first_loss"]),
            "final_loss": number(m["final_loss"]),
            "final_loss_smoothed": number(smooth.iloc[-1]) if len(smooth) else None,
            "loss_curve": table_md(shown),
            "reused": result.reused,
        }
    return meta


def smoothed_losses(loss: pd.Series) -> pd.Series:
    """A centred rolling mean over about a tenth of the run (at least 1 step): the trend under per-batch noise."""
    window = max(1, len(loss) // 10)
    return loss.rolling(window, min_periods=1, center=True).mean()


def per_run(meta: dict[str, dict]) -> dict:
    """Metadata of a partition's runs: flat keys for its one run, `<run> · key` when it holds several (a sweep)."""
    if len(meta) == 1:
        return {"run": next(iter(meta)), **next(iter(meta.values()))}
    return {f"{run} · {k}": v for run, values in meta.items() for k, v in values.items()}


def _trained(cfg: ExperimentConfig, plan: RunPlan) -> job_io.Marker:
    marker = job_io.read_marker(run_dir(cfg, plan))
    if marker is None or job_io.check_outputs(run_dir(cfg, plan), marker):
        raise Failure(
            description=f"run {plan.run} has no finished training in {run_dir(cfg, plan)}; materialize its run first"
        )
    return marker


def evaluate(context, gpu_jobs, artifacts, cfg: ExperimentConfig, plans: list[RunPlan]) -> dict:
    sets = eval_sets(cfg)
    meta = {}
    for plan in plans:
        marker = _trained(cfg, plan)
        steps = marker.metadata["checkpoint_steps"]
        adapters = {f"step_{s}": str(run_dir(cfg, plan) / "checkpoints" / f"step_{s}") for s in steps}
        pool = read_pool_file(_pool(artifacts, cfg, plan)) if plan.pool else None
        text = cfg.prompts[plan.prompt_key] if plan.prefix_type == "fixed" else None
        rows = eval_requests(cfg, plan.run, steps, sets, text, pool)
        req = write_jsonl_path(cfg.name, f"eval_{plan.slug}.jsonl", rows)
        spec = generate_spec(
            cfg,
            req,
            model=model_ref(cfg),
            temperature=cfg.eval.temperature,
            top_p=cfg.eval.top_p,
            max_tokens=cfg.eval.max_tokens,
            seed=cfg.eval.seed,
            adapters=adapters,
        )
        result = run_job(context, gpu_jobs, cfg, "generate", spec, work_dir(cfg.name, "jobs", "eval", plan.slug))
        meta[plan.run] = {
            "n_completions": result.marker_metadata.get("n_completions"),
            "checkpoints": MetadataValue.json(steps),
            "n_requests": len(rows),
            "stopped_fraction": number(result.marker_metadata.get("stopped_fraction")),
            "reused": result.reused,
        }
    return meta


def judge(context, warehouse, cfg: ExperimentConfig, plans: list[RunPlan]) -> tuple[dict, pd.DataFrame]:
    sets = eval_sets(cfg)
    meta, frames = {}, []
    for plan in plans:
        out = work_dir(cfg.name, "jobs", "eval", plan.slug)
        if job_io.read_marker(out) is None:
            raise Failure(description=f"run {plan.run} has no eval completions in {out}; materialize its eval first")
        done = [row for _, row in job_io.read_jsonl(out / "completions.jsonl")]
        instr = [sets[c["meta"]["eval_set"]][c["meta"]["idx"]] for c in done]
        judged = judge_all(
            cfg, instr, [c["text"] for c in done], cache=settings.judge_cache_path(), log=context.log.info
        )
        table = pd.concat(
            [
                pd.DataFrame(
                    {
                        "step": [c["meta"]["step"] for c in done],
                        "condition": [c["meta"]["condition"] for c in done],
                        "trait": trait,
                        "instruction_idx": [c["meta"]["idx"] for c in done],
                        "score": j.scores,
                        "eval_set": [c["meta"]["eval_set"] for c in done],
                    }
                )
                for trait, j in judged.items()
            ],
            ignore_index=True,
        )
        em_traits = {t.judge.kind: t.name for t in cfg.traits if t.judge and t.judge.kind.startswith("em_")}
        # trait_scores holds the held-out set (the one suppression compares); every set goes to em_scores
        held_out = table.eval_set == cfg.data.held_out_set
        main = table[held_out & ~table.trait.isin(em_traits.values())].drop(columns="eval_set")
        with warehouse.warehouse.writer() as conn:
            replace_rows(conn, "trait_scores", main, {"experiment": cfg.name, "run": plan.run})
            if {"em_coherence", "em_alignment"} <= set(em_traits):  # the EM study: both judges per completion
                replace_rows(
                    conn, "em_scores", em_rows(cfg, table, em_traits), {"experiment": cfg.name, "run": plan.run}
                )
        shown = main if len(main) else table.drop(columns="eval_set")
        summary = shown.groupby(["step", "condition", "trait"]).score.mean().round(1).unstack("trait")
        final = summary.loc[summary.index.get_level_values("step").max()]
        context.log.info(
            f"{plan.run} final step: "
            + "; ".join(
                f"{cond}: " + ", ".join(f"{t} {v:.1f}" for t, v in row.items()) for cond, row in final.iterrows()
            )
        )
        meta[plan.run] = {f"final_{cond}_{t}": number(v) for cond, row in final.iterrows() for t, v in row.items()}
        meta[plan.run]["final_step"] = int(summary.index.get_level_values("step").max())
        meta[plan.run]["by_step"] = table_md(summary.reset_index())
        frames.append(table.assign(run=plan.run))
    return meta, pd.concat(frames, ignore_index=True)


def em_rows(cfg: ExperimentConfig, table: pd.DataFrame, em_traits: dict[str, str]) -> pd.DataFrame:
    """Coherence and alignment side by side per completion → `em_scores` (docs/methods.md#em-rate)."""
    keys = ["step", "eval_set", "condition", "instruction_idx"]
    coh = table[table.trait == em_traits["em_coherence"]].set_index(keys).score.rename("coherence")
    ali = table[table.trait == em_traits["em_alignment"]].set_index(keys).score.rename("alignment")
    rows = pd.concat([coh, ali], axis=1).reset_index()
    return rows.assign(coherence_threshold=cfg.em_rate.coherence_above, alignment_threshold=cfg.em_rate.alignment_below)


def _nan_check(cfg: ExperimentConfig, table: pd.DataFrame) -> AssetCheckResult:
    nan = float(table.score.isna().mean()) if len(table) else 1.0
    failed = int(table.score.isna().sum())
    return AssetCheckResult(
        check_name="judge_nan_fraction",
        passed=bool(len(table)) and nan <= cfg.judge.max_nan_fraction,
        metadata={
            "nan_fraction": round(nan, 4),
            "n_nan": failed,
            "n_scores": len(table),
            "bound": cfg.judge.max_nan_fraction,
        },
    )


def _loss_check(cfg: ExperimentConfig, plans: list[RunPlan]) -> AssetCheckResult:
    problems = []
    for plan in plans:
        marker = job_io.read_marker(run_dir(cfg, plan))
        if marker is None:
            problems.append(f"{plan.run}: no marker")
            continue
        losses = pd.read_parquet(run_dir(cfg, plan) / "losses.parquet")
        if len(losses) != marker.metadata["total_steps"] or not np.isfinite(losses.loss).all():
            problems.append(
                f"{plan.run}: {len(losses)} loss rows for {marker.metadata['total_steps']} steps or non-finite"
            )
        missing = [
            s
            for s in marker.metadata["checkpoint_steps"]
            if not (run_dir(cfg, plan) / "checkpoints" / f"step_{s}" / "adapter_config.json").is_file()
        ]
        if missing:
            problems.append(f"{plan.run}: adapters missing for steps {missing}")
    return AssetCheckResult(
        check_name="losses_and_adapters", passed=not problems, metadata={"problems": MetadataValue.json(problems)}
    )


def _stage_assets(experiment: str, config_path: Path, control: bool) -> list[AssetsDefinition]:
    names = ("control_run", "control_eval", "control_scores") if control else ("runs", "run_eval", "run_scores")
    run_k, eval_k, score_k = (key(experiment, n) for n in names)
    partitions = None if control else run_partitions(experiment)
    # A run partition `<prompt>/<type>` reads its own prompt's text and pools. Dagster's built-in partition mappings
    # cannot say "the prompt before the slash" (custom mappings are deprecated), so the edge maps to every prompt.
    prompt_deps = [
        AssetDep(key(experiment, n), partition_mapping=AllPartitionMapping()) for n in ("prompt", "rephrasings")
    ]
    upstream = [key(experiment, "training_data")] + ([] if control else prompt_deps)
    what = "the un-inoculated control run(s)" if control else "the prompt's fixed, mix or close_mix run"

    stage = stage_tag(SETUP if control else RUN)

    @asset(
        key=run_k,
        group_name=experiment,
        partitions_def=partitions,
        deps=upstream,
        pool="gpu",
        kinds={"pytorch"},
        tags=stage,
        description=f"LoRA SFT of {what} (train job): adapters at the configured checkpoints, losses → "
        "`training_losses`, the run → `runs`.",
        check_specs=[
            AssetCheckSpec(
                "losses_and_adapters",
                asset=run_k,
                description="One finite loss per optimizer step and an adapter for every checkpoint step.",
            )
        ],
    )
    def run_asset(
        context: AssetExecutionContext,
        gpu_jobs: ComputeBackends,
        warehouse: WarehouseResource,
        artifacts: ArtifactStoreResource,
    ):
        cfg = load_experiment(config_path)
        plans = _plans(context, cfg, control)
        meta = train(context, gpu_jobs, warehouse, artifacts, cfg, plans)
        yield MaterializeResult(metadata=per_run(meta))
        yield _loss_check(cfg, plans)

    @asset(
        key=eval_k,
        group_name=experiment,
        partitions_def=partitions,
        pool="gpu",
        kinds={"json"},
        tags=stage,
        deps=[run_k, key(experiment, "eval_instructions")] + ([] if control else prompt_deps[1:]),
        description=f"Eval completions of {what} at every checkpoint, default and training condition "
        "(generate job, one engine serving every checkpoint's adapter).",
    )
    def eval_asset(context: AssetExecutionContext, gpu_jobs: ComputeBackends, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        meta = evaluate(context, gpu_jobs, artifacts, cfg, _plans(context, cfg, control))
        return MaterializeResult(metadata=per_run(meta))

    @asset(
        key=score_k,
        group_name=experiment,
        partitions_def=partitions,
        deps=[eval_k],
        kinds={"duckdb"},
        tags=stage,
        description=f"Judge scores of {what}'s eval completions for every trait → `trait_scores` (NaN when a judge "
        "could not score; never 0).",
        check_specs=[
            AssetCheckSpec(
                "judge_nan_fraction",
                asset=score_k,
                description="At most judge.max_nan_fraction "
                "of the scores are NaN (failed or undecidable judgements are kept as NaN).",
            )
        ],
    )
    def score_asset(context: AssetExecutionContext, warehouse: WarehouseResource):
        cfg = load_experiment(config_path)
        plans = _plans(context, cfg, control)
        meta, table = judge(context, warehouse, cfg, plans)
        yield MaterializeResult(
            metadata={**per_run(meta), "n_scores": len(table), "n_nan": int(table.score.isna().sum())}
        )
        yield _nan_check(cfg, table)

    return [run_asset, eval_asset, score_asset]


def training_assets(experiment: str, config_path: Path) -> list[AssetsDefinition]:
    return _stage_assets(experiment, config_path, control=True) + _stage_assets(experiment, config_path, control=False)
