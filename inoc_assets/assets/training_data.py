"""`<experiment>/training_data`: the training conversations, generated in one of three modes, judged for both
traits, filtered → ``data/train.jsonl``.

Datagen modes (``data.datagen``): ``file`` reads a messages file; ``backend: openai`` calls an
OpenAI-compatible API (off-policy, resumable); otherwise the generate job runs the study model
(``on_policy``) or another model (off-policy). Which examples are judged and kept:
`inoc.pipeline.training_data`.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from inoc import settings
from inoc.config import ExperimentConfig, expand_path, load_experiment
from inoc.judges.transport import JudgeError
from inoc.pipeline.api_datagen import ApiDatagenSettings, DatagenError
from inoc.pipeline.api_datagen import generate as generate_via_api
from inoc.pipeline.instructions import InstructionError, read_conversations
from inoc.pipeline.judging import judge_all
from inoc.pipeline.requests import datagen_requests
from inoc.pipeline.training_data import Example, both_traits_share, judge_indices, judged_traits, kept_examples
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.plumbing import (
    TRAIN_FILE,
    completions,
    data_path,
    generate_spec,
    key,
    model_ref,
    read_jsonl,
    work_dir,
    write_jsonl,
    write_requests,
)
from inoc_assets.stages import SETUP, stage_tag


def from_file(cfg: ExperimentConfig, config_path: Path) -> tuple[list[Example], dict]:
    """``mode: file``: the conversations of a messages file."""
    path = Path(expand_path(cfg.data.datagen.path))
    try:
        rows = read_conversations(path, cfg.data.n_train)
    except InstructionError as exc:
        raise dg.Failure(description=f"{config_path}: data.datagen.path: {exc}") from None
    return rows, {"source": dg.MetadataValue.path(str(path))}


def from_api(context, cfg: ExperimentConfig, config_path: Path, instr: list[str]) -> tuple[list[Example], dict]:
    """``backend: openai``: off-policy completions from an OpenAI-compatible API (``data.datagen.base_url``)."""
    datagen = cfg.data.datagen

    def report(done: int, total: int) -> None:
        context.log.info(f"datagen ({datagen.model}): {done}/{total}")

    try:
        api = generate_via_api(
            datagen_requests(cfg, instr),
            ApiDatagenSettings.from_config(datagen),
            work_dir(cfg.name, "jobs", "datagen_api"),
            progress=report,
            seed=cfg.data.seed,
        )
    except (DatagenError, JudgeError) as exc:
        raise dg.Failure(description=f"{config_path}: data.datagen ({datagen.model} via the API): {exc}") from None
    rows = [(instr[c["meta"]["idx"]], c["text"]) for c in api.rows]
    return rows, {"backend": datagen.backend, **api.metadata()}


def from_generate_job(
    context, gpu_jobs: ComputeBackends, cfg: ExperimentConfig, instr: list[str]
) -> tuple[list[Example], dict]:
    """The generate job: the study model (``on_policy``) or another model from the hub (off-policy)."""
    datagen = cfg.data.datagen
    model = model_ref(cfg) if datagen.mode == "on_policy" else {"id": datagen.model}
    req = write_requests(cfg.name, "datagen_requests.jsonl", datagen_requests(cfg, instr))
    spec = generate_spec(
        cfg,
        req,
        model=model,
        temperature=datagen.temperature,
        top_p=datagen.top_p,
        max_tokens=datagen.max_tokens,
        seed=cfg.data.seed,
    )
    result = gpu_jobs.run_job(context, cfg, "generate", spec, work_dir(cfg.name, "jobs", "datagen"))
    rows = [(instr[c["meta"]["idx"]], c["text"]) for c in completions(result)]
    return rows, {"stopped_fraction": result.marker_metadata.get("stopped_fraction"), "datagen_model": model["id"]}


def training_data_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    k = key(experiment, "training_data")

    @dg.asset(
        key=k,
        group_name=experiment,
        tags=stage_tag(SETUP),
        deps=[key(experiment, "base_model"), key(experiment, "instructions")],
        kinds={"json"},
        pool="gpu",
        description="Training conversations: datagen (the datagen prompt elicits both traits; the stored example uses "
        "the neutral system prompt; off-policy models with datagen.backend=openai are called over an OpenAI-compatible "
        "API, resumably), judged for both traits; data.datagen.keep=both_traits keeps only examples "
        "with both → data/train.jsonl.",
        check_specs=[
            dg.AssetCheckSpec(
                "both_traits_present",
                asset=k,
                description="The judged training examples score >= 50 on "
                "average on the positive and on the negative trait (the data teaches both).",
            ),
            dg.AssetCheckSpec(
                "judge_nan_fraction",
                asset=k,
                description="The share of NaN judge scores on the training examples is at most judge.max_nan_fraction.",
            ),
        ],
    )
    def training_data(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends):
        cfg = load_experiment(config_path)
        datagen = cfg.data.datagen
        instr = [
            r["instruction"]
            for r in read_jsonl(
                data_path(experiment, "train_instructions.jsonl"),
                needed_by=k.to_user_string(),
                produced_by=key(experiment, "instructions"),
            )
        ]
        if datagen.mode == "file":
            rows, meta = from_file(cfg, config_path)
        elif datagen.backend == "openai":
            rows, meta = from_api(context, cfg, config_path, instr)
        else:
            rows, meta = from_generate_job(context, gpu_jobs, cfg, instr)
        traits = judged_traits(cfg)
        if datagen.keep == "both_traits" and len(traits) < 2:
            raise dg.Failure(
                description=f"{config_path}: data.datagen.keep both_traits needs a positive and a negative trait"
            )
        judge_idx = judge_indices(cfg, len(rows), traits)
        judged = judge_all(
            cfg,
            [rows[i][0] for i in judge_idx],
            [rows[i][1] for i in judge_idx],
            cache=settings.judge_cache_path(),
            log=context.log.info,
            traits=traits,
        )
        scores = pd.DataFrame({t: judged[t].scores for t in traits}, index=judge_idx)
        kept = kept_examples(cfg, rows, scores, traits)
        if not kept:
            raise dg.Failure(
                description=f"{experiment}: no training example left (generated {len(rows)}; keep={datagen.keep})"
            )
        write_jsonl(data_path(experiment, TRAIN_FILE), ({"instruction": x, "completion": c} for x, c in kept))
        means = {t: float(scores[t].mean()) for t in traits}
        context.log.info(f"training data: {len(kept)} of {len(rows)} examples kept; judged means {means}")
        yield dg.MaterializeResult(
            metadata={
                "mode": datagen.mode,
                **meta,
                "n_generated": len(rows),
                "n_kept": len(kept),
                "n_judged": len(judge_idx),
                **{f"mean_{t}": round(v, 2) for t, v in means.items()},
                "both_traits_share": both_traits_share(scores, traits),
                "example": dg.MetadataValue.md(f"**{kept[0][0]}**\n\n{kept[0][1]}"),
            }
        )
        yield dg.AssetCheckResult(
            check_name="both_traits_present",
            passed=all(v >= 50 for v in means.values()),
            metadata={f"mean_{t}": round(v, 2) for t, v in means.items()}
            if traits
            else {"note": "no positive/negative traits (metric judges only): not applicable"},
        )
        nan = float(scores.isna().to_numpy().mean()) if scores.size else 0.0
        yield dg.AssetCheckResult(
            check_name="judge_nan_fraction",
            passed=nan <= cfg.judge.max_nan_fraction,
            metadata={"nan_fraction": round(nan, 4), "bound": cfg.judge.max_nan_fraction},
        )

    return training_data
