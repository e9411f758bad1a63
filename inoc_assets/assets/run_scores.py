"""`<experiment>/control_scores` and `<experiment>/run_scores`: judge scores of the eval completions
→ ``trait_scores`` (NaN kept; an asset check bounds the NaN share), and for the EM study ``em_scores``."""

from pathlib import Path

import dagster as dg
import pandas as pd

from gpu_jobs import io as job_io
from inoc import settings
from inoc.config import ExperimentConfig, load_experiment
from inoc.pipeline.judging import judge_all
from inoc.pipeline.plans import RunPlan
from inoc.tables.scores import em_rows, final_step_means, run_score_rows, trait_score_rows
from inoc_assets.plumbing import eval_dir, eval_sets, key, per_run, run_plans, run_stage
from inoc_assets.resources import WarehouseResource
from inoc_assets.table_metadata import number
from inoc_assets.table_metadata import table as table_md
from warehouse import replace_rows


def judge(context, warehouse, cfg: ExperimentConfig, plans: list[RunPlan]) -> tuple[dict, pd.DataFrame]:
    sets = eval_sets(cfg)
    meta, frames = {}, []
    for plan in plans:
        out = eval_dir(cfg, plan)
        if job_io.read_marker(out) is None:
            raise dg.Failure(description=f"run {plan.run} has no eval completions in {out}; materialize its eval first")
        done = [row for _, row in job_io.read_jsonl(out / "completions.jsonl")]
        instr = [sets[c["meta"]["eval_set"]][c["meta"]["idx"]] for c in done]
        judged = judge_all(
            cfg, instr, [c["text"] for c in done], cache=settings.judge_cache_path(), log=context.log.info
        )
        table = run_score_rows(done, judged)
        main = trait_score_rows(cfg, table)
        em = em_rows(cfg, table)
        with warehouse.warehouse.writer() as conn:
            replace_rows(conn, "trait_scores", main, {"experiment": cfg.name, "run": plan.run})
            if em is not None:  # the EM study: both judges per completion, every eval set
                replace_rows(conn, "em_scores", em, {"experiment": cfg.name, "run": plan.run})
        summary, final_step = final_step_means(main if len(main) else table.drop(columns="eval_set"))
        final = summary.loc[final_step]
        context.log.info(
            f"{plan.run} final step: "
            + "; ".join(
                f"{cond}: " + ", ".join(f"{t} {v:.1f}" for t, v in row.items()) for cond, row in final.iterrows()
            )
        )
        meta[plan.run] = {f"final_{cond}_{t}": number(v) for cond, row in final.iterrows() for t, v in row.items()}
        meta[plan.run]["final_step"] = final_step
        meta[plan.run]["by_step"] = table_md(summary.reset_index())
        frames.append(table.assign(run=plan.run))
    return meta, pd.concat(frames, ignore_index=True)


def _nan_check(cfg: ExperimentConfig, table: pd.DataFrame) -> dg.AssetCheckResult:
    nan = float(table.score.isna().mean()) if len(table) else 1.0
    failed = int(table.score.isna().sum())
    return dg.AssetCheckResult(
        check_name="judge_nan_fraction",
        passed=bool(len(table)) and nan <= cfg.judge.max_nan_fraction,
        metadata={
            "nan_fraction": round(nan, 4),
            "n_nan": failed,
            "n_scores": len(table),
            "bound": cfg.judge.max_nan_fraction,
        },
    )


def run_scores_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    """``control_scores`` and ``run_scores``: one body, two flavours."""

    def decorator(name: str, control: bool):
        f = run_stage(experiment, control)
        k = key(experiment, name)
        return f.asset(
            name,
            deps=[key(experiment, "control_eval" if control else "run_eval")],
            kinds={"duckdb"},
            description=f"Judge scores of {f.what}'s eval completions for every trait → `trait_scores` (NaN when a "
            "judge could not score; never 0).",
            check_specs=[
                dg.AssetCheckSpec(
                    "judge_nan_fraction",
                    asset=k,
                    description="At most judge.max_nan_fraction "
                    "of the scores are NaN (failed or undecidable judgements are kept as NaN).",
                )
            ],
        )

    def body(context, warehouse, control: bool):
        cfg = load_experiment(config_path)
        plans = run_plans(context, cfg, config_path, control)
        meta, table = judge(context, warehouse, cfg, plans)
        yield dg.MaterializeResult(
            metadata={**per_run(meta), "n_scores": len(table), "n_nan": int(table.score.isna().sum())}
        )
        yield _nan_check(cfg, table)

    @decorator("control_scores", control=True)
    def control_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from body(context, warehouse, control=True)

    @decorator("run_scores", control=False)
    def run_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        yield from body(context, warehouse, control=False)

    return [control_scores, run_scores]
