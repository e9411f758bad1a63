"""The data stages of a computed experiment: base model, instructions, training data, control sets.

* ``base_model`` — for ``toy:<profile>`` builds the model organism (cached by a hash of its
  settings); for a hub model records what the GPU jobs will load.
* ``instructions`` / ``eval_instructions`` — disjoint train and held-out eval instructions (and the
  extra eval sets) from the configured source → ``data/*.jsonl``.
* ``training_data`` — datagen by the study model with the datagen prompt (on-policy), by another
  model (off-policy: the generate job, or an OpenAI-compatible API with ``datagen.backend: openai``),
  or read from a messages file; judged for both traits → ``data/train.jsonl``.
* ``control_completions`` — base-model completions of the eval instructions with no trait asked
  for, plus one set per single-trait prompt (drift measures and the trait-specific heuristics).
"""

import random
import time
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from inoc import settings
from inoc.config import ExperimentConfig, expand_path, load_experiment
from inoc.judges.transport import JudgeError
from inoc.pipeline.api_datagen import ApiDatagenSettings, DatagenError
from inoc.pipeline.api_datagen import generate as generate_via_api
from inoc.pipeline.instructions import (
    InstructionError,
    load_eval_set,
    read_conversations,
    split_instructions,
    training_split_as_is,
)
from inoc.pipeline.judging import judge_all
from inoc.pipeline.requests import datagen_requests, plain_requests
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.stages import SETUP, stage_tag
from inoc_assets.work import (
    completions,
    generation_backend,
    model_ref,
    read_jsonl,
    run_job,
    vllm_options,
    work_dir,
    write_jsonl,
)

TRAIN_FILE = "train.jsonl"


def key(experiment: str, name: str) -> AssetKey:
    return AssetKey([experiment, name])


def data_path(experiment: str, name: str) -> Path:
    return work_dir(experiment, "data", name)


def eval_sets(cfg: ExperimentConfig) -> dict[str, list[str]]:
    """Eval set name → instructions: the held-out eval instructions (none with data.split as_is), then the
    configured extra sets."""
    exp = cfg.name
    sets = {}
    if cfg.data.split == "shuffle":
        sets["eval"] = [
            r["instruction"]
            for r in read_jsonl(
                data_path(exp, "eval_instructions.jsonl"), needed_by=exp, produced_by=key(exp, "eval_instructions")
            )
        ]
    for s in cfg.data.eval_sets:
        sets[s.name] = [
            r["instruction"]
            for r in read_jsonl(
                data_path(exp, f"eval_set_{s.name}.jsonl"), needed_by=exp, produced_by=key(exp, "eval_instructions")
            )
        ]
    return sets


def held_out_instructions(cfg: ExperimentConfig) -> list[str]:
    """The instructions of elicitation and the control completions (``data.held_out_set``)."""
    return eval_sets(cfg)[cfg.data.held_out_set]


def base_model_asset(experiment: str, config_path: Path) -> AssetsDefinition:
    @asset(
        key=key(experiment, "base_model"),
        group_name=experiment,
        tags=stage_tag(SETUP),
        deps=[key(experiment, "experiment")],
        kinds={"pytorch"},
        description="The study model. For `toy:<profile>` this builds the model organism (corpus → BPE tokenizer "
        "→ tiny Qwen2 trained from random init, saved with save_pretrained), cached by a hash of its settings.",
    )
    def _asset(context: AssetExecutionContext) -> MaterializeResult:
        cfg = load_experiment(config_path)
        mid = cfg.model.id
        if not mid.startswith("toy:"):
            return MaterializeResult(
                metadata={
                    "model": mid,
                    "revision": cfg.model.revision or "main",
                    "note": "loaded by the GPU jobs from the hub",
                }
            )
        from inoc.organism.build import build_base_model

        last = [0.0]

        def progress(ev) -> None:
            if ev.stage != "train" or ev.done == ev.total or time.time() - last[0] > 10:
                last[0] = time.time()
                loss = f" loss {ev.loss:.3f}" if ev.loss is not None else ""
                context.log.info(f"organism build: {ev.stage} {ev.done}/{ev.total}{loss} ({ev.elapsed_s:.0f} s)")

        try:
            built = build_base_model(mid.split(":", 1)[1] or "default", progress=progress)
        except ValueError as exc:
            raise Failure(description=f"{config_path}: model.id {mid!r}: {exc}") from None
        m = built.manifest
        return MaterializeResult(
            metadata={
                "model": mid,
                "path": MetadataValue.path(str(built.path)),
                "settings_hash": built.settings_hash,
                "cached": built.cached,
                "n_parameters": m.get("model", {}).get("n_parameters"),
                "final_loss": m.get("train", {}).get("final_loss"),
                "build_wall_s": round(sum(m.get("timing", {}).values()), 1),
            }
        )

    return _asset


def instructions_asset(experiment: str, config_path: Path) -> AssetsDefinition:
    train_key, eval_key = key(experiment, "instructions"), key(experiment, "eval_instructions")

    @multi_asset(
        name=f"{experiment}__instructions",
        specs=[
            AssetSpec(
                train_key,
                group_name=experiment,
                deps=[key(experiment, "experiment")],
                kinds={"json"},
                tags=stage_tag(SETUP),
                description="Training instructions (data.n_train) from the configured source → data/train_instructions.jsonl.",
            ),
            AssetSpec(
                eval_key,
                group_name=experiment,
                deps=[key(experiment, "experiment")],
                kinds={"json"},
                tags=stage_tag(SETUP),
                description="Held-out eval instructions (data.n_eval, disjoint from training; none with "
                "data.split as_is) and the extra eval sets → data/eval_instructions.jsonl, "
                "data/eval_set_<name>.jsonl.",
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                "disjoint_and_complete",
                asset=eval_key,
                description="n_train training instructions (distinct with split shuffle; rows "
                "as they are with split as_is), n_eval distinct held-out ones (none with as_is), "
                "and no instruction of any eval set appears in the training instructions.",
            )
        ],
    )
    def _asset(context: AssetExecutionContext):
        cfg = load_experiment(config_path)
        d = cfg.data
        try:
            if d.split == "as_is":  # the file is the training split: every row as it is, nothing held out
                train, evals = training_split_as_is(d.instructions, d.n_train), []
            else:
                train, evals = split_instructions(d.instructions, d.n_train, d.n_eval, d.seed, log=context.log.info)
        except InstructionError as exc:
            raise Failure(description=f"{config_path}: data.instructions: {exc}") from None
        try:
            extra = {s.name: load_eval_set(s.instructions, s.n) for s in d.eval_sets}
        except InstructionError as exc:
            raise Failure(description=f"{config_path}: data.eval_sets: {exc}") from None
        write_jsonl(data_path(experiment, "train_instructions.jsonl"), ({"instruction": x} for x in train))
        if d.split == "shuffle":
            write_jsonl(data_path(experiment, "eval_instructions.jsonl"), ({"instruction": x} for x in evals))
        for name, rows in extra.items():
            write_jsonl(data_path(experiment, f"eval_set_{name}.jsonl"), ({"instruction": x} for x in rows))
        context.log.info(
            f"{len(train)} train and {len(evals)} eval instructions from {d.instructions.source} "
            f"(split {d.split}); eval sets {', '.join(f'{k} {len(v)}' for k, v in extra.items()) or 'none'}"
        )
        yield MaterializeResult(
            asset_key=train_key,
            metadata={
                "n": len(train),
                "n_distinct": len(set(train)),
                "split": d.split,
                "source": d.instructions.source,
                "example": train[0],
            },
        )
        yield MaterializeResult(
            asset_key=eval_key,
            metadata={
                "n": len(evals),
                **{f"n_{k}": len(v) for k, v in extra.items()},
                "held_out_set": d.held_out_set,
                "example": (evals or [*extra.values()][0])[0],
            },
        )
        # Complete: shuffle takes n_train and n_eval distinct instructions; as_is n_train rows, duplicates kept.
        # InstructionWild samples the original's list as it is, so its duplicate rows may both be drawn.
        distinct = d.split == "shuffle" and d.instructions.source != "instructionwild"
        n_train_ok = len(set(train)) == d.n_train if distinct else len(train) == d.n_train
        overlap = {"eval": len(set(train) & set(evals)), **{k: len(set(train) & set(v)) for k, v in extra.items()}}
        n_eval = len(set(evals)) if distinct else len(evals)
        ok = n_train_ok and n_eval == (d.n_eval if d.split == "shuffle" else 0) and not any(overlap.values())
        yield AssetCheckResult(
            check_name="disjoint_and_complete",
            asset_key=eval_key,
            passed=ok,
            metadata={
                "n_train": len(train),
                "n_train_distinct": len(set(train)),
                "n_eval": len(set(evals)),
                **{f"overlap_{k}": v for k, v in overlap.items()},
            },
        )

    return _asset


def _trait_names(cfg: ExperimentConfig) -> list[str]:
    return [t.name for t in cfg.traits if t.role in ("positive", "negative")]


def generate_spec(
    cfg: ExperimentConfig,
    requests: Path,
    *,
    model: dict,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int,
    adapters: dict | None = None,
) -> dict:
    spec = {
        "model": model,
        "requests": str(requests),
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "backend": generation_backend(cfg),
        "batch_size": 64,
        "vllm": vllm_options(cfg),
    }
    if adapters:
        spec["adapters"] = adapters
    return spec


def training_data_asset(experiment: str, config_path: Path) -> AssetsDefinition:
    k = key(experiment, "training_data")

    @asset(
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
            AssetCheckSpec(
                "both_traits_present",
                asset=k,
                description="The judged training examples score >= 50 on "
                "average on the positive and on the negative trait (the data teaches both).",
            ),
            AssetCheckSpec(
                "judge_nan_fraction",
                asset=k,
                description="The share of NaN judge scores on the training examples is at most judge.max_nan_fraction.",
            ),
        ],
    )
    def _asset(context: AssetExecutionContext, gpu_jobs: ComputeBackends):
        cfg = load_experiment(config_path)
        dg = cfg.data.datagen
        instr = [
            r["instruction"]
            for r in read_jsonl(
                data_path(experiment, "train_instructions.jsonl"),
                needed_by=k.to_user_string(),
                produced_by=key(experiment, "instructions"),
            )
        ]
        meta: dict = {"mode": dg.mode}
        if dg.mode == "file":
            path = Path(expand_path(dg.path))
            try:
                rows = read_conversations(path, cfg.data.n_train)
            except InstructionError as exc:
                raise Failure(description=f"{config_path}: data.datagen.path: {exc}") from None
            meta["source"] = MetadataValue.path(str(path))
        elif dg.backend == "openai":  # off-policy from an OpenAI-compatible API (data.datagen.base_url)

            def report(done: int, total: int) -> None:
                context.log.info(f"datagen ({dg.model}): {done}/{total}")

            try:
                api = generate_via_api(
                    datagen_requests(cfg, instr),
                    ApiDatagenSettings.from_config(dg),
                    work_dir(experiment, "jobs", "datagen_api"),
                    progress=report,
                    seed=cfg.data.seed,
                )
            except (DatagenError, JudgeError) as exc:
                raise Failure(description=f"{config_path}: data.datagen ({dg.model} via the API): {exc}") from None
            rows = [(instr[c["meta"]["idx"]], c["text"]) for c in api.rows]
            meta.update(backend=dg.backend, **api.metadata())
        else:
            model = model_ref(cfg) if dg.mode == "on_policy" else {"id": dg.model}
            req = write_jsonl_path(experiment, "datagen_requests.jsonl", datagen_requests(cfg, instr))
            spec = generate_spec(
                cfg,
                req,
                model=model,
                temperature=dg.temperature,
                top_p=dg.top_p,
                max_tokens=dg.max_tokens,
                seed=cfg.data.seed,
            )
            result = run_job(context, gpu_jobs, cfg, "generate", spec, work_dir(experiment, "jobs", "datagen"))
            done = completions(result)
            rows = [(instr[c["meta"]["idx"]], c["text"]) for c in done]
            meta["stopped_fraction"] = result.marker_metadata.get("stopped_fraction")
            meta["datagen_model"] = model["id"]
        traits = _trait_names(cfg)
        if dg.keep == "both_traits" and len(traits) < 2:
            raise Failure(
                description=f"{config_path}: data.datagen.keep both_traits needs a positive and a negative trait"
            )
        judge_idx = list(range(len(rows))) if traits else []
        if dg.keep == "all" and len(rows) > dg.check_sample:
            judge_idx = sorted(random.Random(cfg.data.seed).sample(judge_idx, dg.check_sample))
        judged = judge_all(
            cfg,
            [rows[i][0] for i in judge_idx],
            [rows[i][1] for i in judge_idx],
            cache=settings.judge_cache_path(),
            log=context.log.info,
            traits=traits,
        )
        scores = pd.DataFrame({t: judged[t].scores for t in traits}, index=judge_idx)
        if dg.keep == "both_traits":
            keep = (scores[traits] >= 50).all(axis=1)
            kept = [rows[i] for i in scores.index[keep]]
        else:
            kept = rows
        kept = [(x, c) for x, c in kept if c.strip()]
        if not kept:
            raise Failure(description=f"{experiment}: no training example left (generated {len(rows)}; keep={dg.keep})")
        write_jsonl(data_path(experiment, TRAIN_FILE), ({"instruction": x, "completion": c} for x, c in kept))
        means = {t: float(scores[t].mean()) for t in traits}
        context.log.info(f"training data: {len(kept)} of {len(rows)} examples kept; judged means {means}")
        yield MaterializeResult(
            metadata={
                **meta,
                "n_generated": len(rows),
                "n_kept": len(kept),
                "n_judged": len(judge_idx),
                **{f"mean_{t}": round(v, 2) for t, v in means.items()},
                "both_traits_share": round(float((scores[traits] >= 50).all(axis=1).mean()), 3) if traits else None,
                "example": MetadataValue.md(f"**{kept[0][0]}**\n\n{kept[0][1]}"),
            }
        )
        yield AssetCheckResult(
            check_name="both_traits_present",
            passed=all(v >= 50 for v in means.values()),
            metadata={f"mean_{t}": round(v, 2) for t, v in means.items()}
            if traits
            else {"note": "no positive/negative traits (metric judges only): not applicable"},
        )
        nan = float(scores.isna().to_numpy().mean()) if scores.size else 0.0
        yield AssetCheckResult(
            check_name="judge_nan_fraction",
            passed=nan <= cfg.judge.max_nan_fraction,
            metadata={"nan_fraction": round(nan, 4), "bound": cfg.judge.max_nan_fraction},
        )

    return _asset


def write_jsonl_path(experiment: str, name: str, rows: list[dict]) -> Path:
    path = work_dir(experiment, "requests", name)
    write_jsonl(path, rows)
    return path


def control_sets(cfg: ExperimentConfig) -> dict[str, str | None]:
    """Completion set name → the prompt asking for a trait (None: the neutral control set)."""
    sets: dict[str, str | None] = {"ctrl": None}
    for trait, prompt in cfg.logprobs.single_trait_prompts.items():
        sets[trait.lower()] = prompt
    return sets


def control_completions_asset(experiment: str, config_path: Path) -> AssetsDefinition:
    k = key(experiment, "control_completions")

    @asset(
        key=k,
        group_name=experiment,
        tags=stage_tag(SETUP),
        deps=[key(experiment, "base_model"), key(experiment, "eval_instructions")],
        kinds={"json"},
        pool="gpu",
        description="Base-model completions of the eval instructions under the neutral system prompt (the control "
        "set of the drift heuristics, data.control_max_tokens) and one set per logprobs.single_trait_prompts entry "
        "→ data/control_<set>.jsonl.",
        check_specs=[
            AssetCheckSpec(
                "complete_sets", asset=k, description="Every set has one non-empty completion per eval instruction."
            )
        ],
    )
    def _asset(context: AssetExecutionContext, gpu_jobs: ComputeBackends):
        cfg = load_experiment(config_path)
        evals = held_out_instructions(cfg)
        sets = control_sets(cfg)
        unknown = [t for t in cfg.logprobs.single_trait_prompts if t not in {x.name for x in cfg.traits}]
        if unknown:
            raise Failure(description=f"{config_path}: logprobs.single_trait_prompts: unknown trait(s) {unknown}")
        requests = [r for name, prompt in sets.items() for r in plain_requests(cfg, evals, name, prompt)]
        req = write_jsonl_path(experiment, "control_requests.jsonl", requests)
        spec = generate_spec(
            cfg,
            req,
            model=model_ref(cfg),
            temperature=1.0,
            top_p=1.0,
            max_tokens=cfg.data.control_max_tokens,
            seed=cfg.data.seed + 1,
        )
        result = run_job(context, gpu_jobs, cfg, "generate", spec, work_dir(experiment, "jobs", "control_completions"))
        by_set: dict[str, list[dict]] = {name: [] for name in sets}
        for c in completions(result):
            by_set[c["meta"]["set"]].append({"instruction": evals[c["meta"]["idx"]], "completion": c["text"]})
        for name, rows in by_set.items():
            write_jsonl(data_path(experiment, f"control_{name}.jsonl"), rows)
        yield result.materialize_result(metadata={f"n_{n}": len(r) for n, r in by_set.items()})
        empty = {n: sum(not r["completion"].strip() for r in rows) for n, rows in by_set.items()}
        ok = all(len(rows) == len(evals) for rows in by_set.values()) and not any(empty.values())
        yield AssetCheckResult(
            check_name="complete_sets",
            passed=ok,
            metadata={"n_eval": len(evals), **{f"empty_{n}": v for n, v in empty.items()}},
        )

    return _asset


def data_assets(experiment: str, config_path: Path) -> list[AssetsDefinition]:
    return [
        base_model_asset(experiment, config_path),
        instructions_asset(experiment, config_path),
        training_data_asset(experiment, config_path),
        control_completions_asset(experiment, config_path),
    ]
