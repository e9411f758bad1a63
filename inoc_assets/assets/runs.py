"""`<experiment>/control_run` and `<experiment>/runs`: LoRA training (docs/methods.md#training).

``control_run`` (unpartitioned) trains every un-inoculated run; ``runs`` one partition per planned
run, ``<prompt>/<fixed|mix|close_mix>``. The train job does LoRA SFT on ``data/train.jsonl`` with the
run's prefix plan (none, the fixed prompt, or a seeded rephrasing per example from the diverse or the
close pool), saving adapters at the configured checkpoints; losses → ``training_losses``, the run → ``runs``.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from gpu_jobs import io as job_io
from gpu_jobs.spec import LoraTraining
from inoc.config import ExperimentConfig, expand_path, load_experiment
from inoc.pipeline.instructions import InstructionError, read_conversations
from inoc.pipeline.plans import RunPlan, prefix_plan
from inoc.tables.training import loss_curve, loss_rows, run_row
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.plumbing import (
    TRAIN_FILE,
    data_path,
    key,
    model_ref,
    per_run,
    run_dir,
    run_plans,
    run_pool,
    run_stage,
    write_jsonl,
)
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.table_metadata import number
from inoc_assets.table_metadata import table as table_md
from warehouse import replace_rows

#: The training settings a run's spec copies from the experiment config (its rate and schedule are set per run).
TRAINING_FIELDS = LoraTraining.run_plan_fields()


def training_file(cfg: ExperimentConfig, plan: RunPlan) -> Path:
    """The run's training data: the study's, or an extra control's own messages file (EM's subtle data)."""
    name = plan.run.rsplit("/", 1)[-1]
    if plan.is_control and name in cfg.runs.extra_control_data:
        source = Path(expand_path(cfg.runs.extra_control_data[name]))
        try:
            rows = read_conversations(source)
        except InstructionError as exc:
            raise dg.Failure(description=f"runs.extra_control_data.{name}: {exc}") from None
        path = data_path(cfg.name, f"train_{name}.jsonl")
        write_jsonl(path, ({"instruction": x, "completion": c} for x, c in rows))
        return path
    data = data_path(cfg.name, TRAIN_FILE)
    if not data.is_file():
        raise dg.Failure(description=f"{data} does not exist; materialize {cfg.name}/training_data first")
    return data


def train(context, gpu_jobs, warehouse, artifacts, cfg: ExperimentConfig, plans: list[RunPlan]) -> dict:
    meta: dict = {}
    for plan in plans:
        data = training_file(cfg, plan)
        spec = {
            "model": {**model_ref(cfg, train=True)},
            "data": {"path": str(data)},
            "system_prompt": cfg.system_prompt,
            "prefix": prefix_plan(cfg, plan, run_pool(artifacts, cfg, plan)),
            "learning_rate": plan.learning_rate,
            "checkpoints": cfg.training.checkpoints.model_dump(),
            "load_in_4bit": cfg.model.load_in_4bit,
            **{f: getattr(cfg.training, f) for f in TRAINING_FIELDS},
        }
        result = gpu_jobs.run_job(context, cfg, "train", spec, run_dir(cfg, plan))
        m = result.marker_metadata
        losses = pd.read_parquet(result.path("losses.parquet"))
        with warehouse.warehouse.writer() as conn:
            where = {"experiment": cfg.name, "run": plan.run}
            replace_rows(conn, "runs", run_row(plan, m["total_steps"]), where)
            replace_rows(conn, "training_losses", loss_rows(losses), where)
        context.log.info(
            f"{plan.run}: {m['total_steps']} steps, loss {m['first_loss']:.3f} → {m['final_loss']:.3f}"
            f"{' (reused)' if result.reused else ''}"
        )
        shown = loss_curve(losses)
        meta[plan.run] = {
            "steps": m["total_steps"],
            "checkpoints": dg.MetadataValue.json(m["checkpoint_steps"]),
            "first_loss": number(m["first_loss"]),
            "final_loss": number(m["final_loss"]),
            "final_loss_smoothed": number(shown.smoothed.iloc[-1]) if len(shown) else None,
            "loss_curve": table_md(shown),
            "reused": result.reused,
        }
    return meta


def _loss_check(cfg: ExperimentConfig, plans: list[RunPlan]) -> dg.AssetCheckResult:
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
    return dg.AssetCheckResult(
        check_name="losses_and_adapters", passed=not problems, metadata={"problems": dg.MetadataValue.json(problems)}
    )


def run_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    """``control_run`` and ``runs``: one body, two flavours."""

    def decorator(name: str, control: bool):
        f = run_stage(experiment, control)
        k = key(experiment, name)
        return f.asset(
            name,
            deps=[key(experiment, "training_data"), *f.prompt_deps],
            pool="gpu",
            kinds={"pytorch"},
            description=f"LoRA SFT of {f.what} (train job): adapters at the configured checkpoints, losses → "
            "`training_losses`, the run → `runs`.",
            check_specs=[
                dg.AssetCheckSpec(
                    "losses_and_adapters",
                    asset=k,
                    description="One finite loss per optimizer step and an adapter for every checkpoint step.",
                )
            ],
        )

    def body(context, gpu_jobs, warehouse, artifacts, control: bool):
        cfg = load_experiment(config_path)
        plans = run_plans(context, cfg, config_path, control)
        meta = train(context, gpu_jobs, warehouse, artifacts, cfg, plans)
        yield dg.MaterializeResult(metadata=per_run(meta))
        yield _loss_check(cfg, plans)

    @decorator("control_run", control=True)
    def control_run(
        context: dg.AssetExecutionContext,
        gpu_jobs: ComputeBackends,
        warehouse: WarehouseResource,
        artifacts: ArtifactStoreResource,
    ):
        yield from body(context, gpu_jobs, warehouse, artifacts, control=True)

    @decorator("runs", control=False)
    def runs(
        context: dg.AssetExecutionContext,
        gpu_jobs: ComputeBackends,
        warehouse: WarehouseResource,
        artifacts: ArtifactStoreResource,
    ):
        yield from body(context, gpu_jobs, warehouse, artifacts, control=False)

    return [control_run, runs]
