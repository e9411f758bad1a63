"""`<experiment>/control_eval` and `<experiment>/run_eval`: eval completions of the trained runs
(docs/methods.md#evaluation).

The generate job, one engine for every checkpoint's adapter: completions of every eval set under the
default condition (no prefix) and the training condition (the prompt; for mix a seeded rephrasing of
the run's pool per instruction). ``control_eval`` serves the control runs; ``run_eval`` one run partition.
"""

from pathlib import Path

import dagster as dg

from gpu_jobs import io as job_io
from inoc.config import ExperimentConfig, load_experiment
from inoc.pipeline.plans import RunPlan
from inoc.pipeline.requests import eval_requests
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.plumbing import (
    eval_dir,
    eval_sets,
    generate_spec,
    key,
    model_ref,
    per_run,
    read_local_pool,
    run_dir,
    run_plans,
    run_pool,
    run_stage,
    write_requests,
)
from inoc_assets.resources import ArtifactStoreResource
from inoc_assets.table_metadata import number


def _trained(cfg: ExperimentConfig, plan: RunPlan) -> job_io.Marker:
    marker = job_io.read_marker(run_dir(cfg, plan))
    if marker is None or job_io.check_outputs(run_dir(cfg, plan), marker):
        raise dg.Failure(
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
        pool = read_local_pool(run_pool(artifacts, cfg, plan)) if plan.pool else None
        text = cfg.prompts[plan.prompt_key] if plan.prefix_type == "fixed" else None
        rows = eval_requests(cfg, plan.run, steps, sets, text, pool)
        req = write_requests(cfg.name, f"eval_{plan.slug}.jsonl", rows)
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
        result = gpu_jobs.run_job(context, cfg, "generate", spec, eval_dir(cfg, plan))
        meta[plan.run] = {
            "n_completions": result.marker_metadata.get("n_completions"),
            "checkpoints": dg.MetadataValue.json(steps),
            "n_requests": len(rows),
            "stopped_fraction": number(result.marker_metadata.get("stopped_fraction")),
            "reused": result.reused,
        }
    return meta


def run_eval_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    """``control_eval`` and ``run_eval``: one body, two flavours."""

    def decorator(name: str, control: bool):
        f = run_stage(experiment, control)
        upstream = key(experiment, "control_run" if control else "runs")
        return f.asset(
            name,
            pool="gpu",
            kinds={"json"},
            deps=[upstream, key(experiment, "eval_instructions"), *f.prompt_deps[1:]],
            description=f"Eval completions of {f.what} at every checkpoint, default and training condition "
            "(generate job, one engine serving every checkpoint's adapter).",
        )

    def body(context, gpu_jobs, artifacts, control: bool) -> dg.MaterializeResult:
        cfg = load_experiment(config_path)
        meta = evaluate(context, gpu_jobs, artifacts, cfg, run_plans(context, cfg, config_path, control))
        return dg.MaterializeResult(metadata=per_run(meta))

    @decorator("control_eval", control=True)
    def control_eval(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, artifacts: ArtifactStoreResource):
        return body(context, gpu_jobs, artifacts, control=True)

    @decorator("run_eval", control=False)
    def run_eval(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, artifacts: ArtifactStoreResource):
        return body(context, gpu_jobs, artifacts, control=False)

    return [control_eval, run_eval]
