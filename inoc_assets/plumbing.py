"""The shared plumbing of the asset modules: keys, working files, partition checks, pools, job specs.

Every asset module of `inoc_assets.assets` imports from here and never from another asset module.

A computed experiment keeps its working files under ``$INOC_WORK_DIR/<experiment>/`` (instruction
and data files, request files, and one folder per gpu_job: adapters, completions, scores). Files are
written atomically; gpu_jobs reuse finished outputs by spec hash, so a rerun of a finished stage
costs seconds and a killed stage resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    DynamicPartitionsDefinition,
    Failure,
    asset,
)

from gpu_jobs import io as job_io
from inoc import settings
from inoc.config import ExperimentConfig
from inoc.pipeline.plans import RunPlan, control_plans, prompt_plans
from inoc.rephrasings import PoolFormatError
from inoc.rephrasings.pools import parse_pool_jsonl
from inoc_assets.backends import GpuJobResult
from inoc_assets.partitions import parse_run_partition_key, run_partitions
from inoc_assets.resources import ArtifactStoreResource
from inoc_assets.stages import RUN, SETUP, stage_tag

# ------------------------------------------------------------------------------------------ keys
#: The training conversations of `<experiment>/training_data`, under the experiment's data folder.
TRAIN_FILE = "train.jsonl"
#: `<experiment>/text_heuristics`' rows in the artifact store, folded into `prompt_heuristics` by `prompt_geometry`.
TEXT_HEURISTICS_FILE = ("heuristics", "text_heuristics.parquet")
#: The slides' dataset asset (cross-experiment), read by the suppression predictor.
SLIDES_DATASET_KEY = AssetKey(["slides", "slides_dataset"])
#: Per-partition metadata of `<experiment>/prompt`: `inoc.config.digest.prompt_identity` when it was computed.
PROMPT_IDENTITY = "inoc/prompt_identity"


def key(experiment: str, name: str) -> AssetKey:
    """The key of an experiment's asset: ``<experiment>/<name>``."""
    return AssetKey([experiment, name])


# --------------------------------------------------------------------------------- working files
def work_dir(experiment: str, *parts: str) -> Path:
    return settings.work_dir().joinpath(experiment, *parts)


def data_path(experiment: str, name: str) -> Path:
    return work_dir(experiment, "data", name)


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return job_io.write_jsonl_atomic(path, rows)


def write_requests(experiment: str, name: str, rows: list[dict]) -> Path:
    """A gpu_job's request file, ``requests/<name>``, written atomically."""
    path = work_dir(experiment, "requests", name)
    write_jsonl(path, rows)
    return path


def read_jsonl(path: Path, *, needed_by: str, produced_by: AssetKey | str) -> list[dict]:
    if not path.is_file():
        producer = produced_by.to_user_string() if isinstance(produced_by, AssetKey) else produced_by
        raise Failure(description=f"{needed_by}: {path} does not exist; materialize {producer} first")
    return [row for _, row in job_io.read_jsonl(path)]


def eval_sets(cfg: ExperimentConfig) -> dict[str, list[str]]:
    """Eval set name → instructions: the held-out eval instructions (none with data.split as_is), then the
    configured extra sets."""
    exp = cfg.name
    files = {"eval": "eval_instructions.jsonl"} if cfg.data.split == "shuffle" else {}
    files |= {s.name: f"eval_set_{s.name}.jsonl" for s in cfg.data.eval_sets}
    return {
        name: [
            r["instruction"]
            for r in read_jsonl(data_path(exp, file), needed_by=exp, produced_by=key(exp, "eval_instructions"))
        ]
        for name, file in files.items()
    }


def held_out_instructions(cfg: ExperimentConfig) -> list[str]:
    """The instructions of elicitation and the control completions (``data.held_out_set``)."""
    return eval_sets(cfg)[cfg.data.held_out_set]


def control_sets(cfg: ExperimentConfig) -> dict[str, str | None]:
    """Completion set name → the prompt asking for a trait (None: the neutral control set)."""
    sets: dict[str, str | None] = {"ctrl": None}
    for trait, prompt in cfg.logprobs.single_trait_prompts.items():
        sets[trait.lower()] = prompt
    return sets


# ------------------------------------------------------------------------------------ partitions
def partition_prompts(context: AssetExecutionContext, cfg: ExperimentConfig, config_path: Path) -> list[str]:
    """The run's prompt partitions, all still in the config; a removed prompt keeps its partition and data."""
    keys = list(context.partition_keys)
    gone = [x for x in keys if x not in cfg.prompts]
    if gone:
        raise Failure(
            description=f"prompt(s) {gone} are no longer in {config_path}; their existing data is kept. "
            "Add them back to recompute them."
        )
    return keys


def run_plans(context: AssetExecutionContext, cfg: ExperimentConfig, config_path: Path, control: bool) -> list[RunPlan]:
    """The runs of this materialization: every control run, or the run partition's ``<prompt>/<type>`` runs."""
    if control:
        return control_plans(cfg)
    try:
        prompt, prefix_type = parse_run_partition_key(context.partition_key)
    except ValueError as exc:
        raise Failure(description=str(exc)) from None
    if prompt not in cfg.prompts:
        raise Failure(
            description=f"prompt {prompt!r} is no longer in {config_path}; its existing data is kept. "
            "Add it back to recompute it."
        )
    if (prompt, prefix_type) not in cfg.run_partition_keys():
        raise Failure(
            description=f"{cfg.name}: no {prefix_type} run is configured for {prompt!r} (see "
            "inoculation.prefix_types, runs.prompts and runs.<type>_prompts); nothing to train"
        )
    return prompt_plans(cfg, prompt, prefix_type)


@dataclass(frozen=True)
class RunStage:
    """What the control flavour of a run stage (control_run, control_eval, control_scores; unpartitioned) and
    the prompt flavour (runs, run_eval, run_scores; one partition per planned run) differ in."""

    experiment: str
    partitions_def: DynamicPartitionsDefinition | None
    prompt_deps: list[AssetDep]  # the prompt flavour's edges to `prompt` and `rephrasings`
    tags: dict[str, str]
    what: str  # how descriptions name the runs

    def asset(self, name: str, **spec: Any) -> Any:
        """``@asset`` for ``<experiment>/<name>`` in this flavour: key, group, partitions and stage tag set here."""
        return asset(
            key=key(self.experiment, name),
            group_name=self.experiment,
            partitions_def=self.partitions_def,
            tags=self.tags,
            **spec,
        )


def run_stage(experiment: str, control: bool) -> RunStage:
    # A run partition `<prompt>/<type>` reads its own prompt's text and pools. Dagster's built-in partition mappings
    # cannot say "the prompt before the slash" (custom mappings are deprecated), so the edge maps to every prompt.
    prompt_deps = [
        AssetDep(key(experiment, n), partition_mapping=AllPartitionMapping()) for n in ("prompt", "rephrasings")
    ]
    return RunStage(
        experiment=experiment,
        partitions_def=None if control else run_partitions(experiment),
        prompt_deps=[] if control else prompt_deps,
        tags=stage_tag(SETUP if control else RUN),
        what="the un-inoculated control run(s)" if control else "the prompt's fixed, mix or close_mix run",
    )


def run_dir(cfg: ExperimentConfig, plan: RunPlan) -> Path:
    return work_dir(cfg.name, "jobs", "runs", plan.slug)


def eval_dir(cfg: ExperimentConfig, plan: RunPlan) -> Path:
    return work_dir(cfg.name, "jobs", "eval", plan.slug)


def per_run(meta: dict[str, dict]) -> dict:
    """Metadata of a partition's runs: flat keys for its one run, `<run> · key` when it holds several (a sweep)."""
    if len(meta) == 1:
        return {"run": next(iter(meta)), **next(iter(meta.values()))}
    return {f"{run} · {k}": v for run, values in meta.items() for k, v in values.items()}


# ----------------------------------------------------------------------------------------- pools
def pool_parts(experiment: str, prompt_key: str, pool: str = "diverse") -> tuple[str, ...]:
    """Artifact-store path of a prompt's pool: ``rephrasings/<key>.jsonl`` (diverse) or
    ``rephrasings/close/<key>.jsonl`` (a folder, so no prompt key can collide with a close pool)."""
    if pool == "diverse":
        return (experiment, "rephrasings", f"{prompt_key}.jsonl")
    return (experiment, "rephrasings", pool, f"{prompt_key}.jsonl")


def local_pool(
    artifacts: ArtifactStoreResource, cfg: ExperimentConfig, prompt_key: str, pool: str = "diverse"
) -> Path | None:
    """The prompt's rephrasing pool (diverse or close) as a local file (copied from the artifact store), or None."""
    store = artifacts.store
    parts = pool_parts(cfg.name, prompt_key, pool)
    if not store.exists(*parts):
        return None
    data = store.read_bytes(*parts)
    path = work_dir(cfg.name, "pools", *parts[2:])
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        job_io.write_bytes_atomic(path, data)
    return path


def required_pool(
    artifacts: ArtifactStoreResource, cfg: ExperimentConfig, prompt_key: str, pool: str = "diverse"
) -> Path:
    """The prompt's pool as a local file; a clear failure when its rephrasings were never materialized."""
    path = local_pool(artifacts, cfg, prompt_key, pool)
    if path is None:
        raise Failure(
            description=f"{cfg.name}/{prompt_key}: no {pool} rephrasing pool; materialize "
            f"{cfg.name}/rephrasings for this prompt first"
        )
    return path


def run_pool(artifacts: ArtifactStoreResource, cfg: ExperimentConfig, plan: RunPlan) -> Path | None:
    """The local pool a run draws its prefixes from (None for a fixed or un-inoculated run)."""
    if plan.pool is None:
        return None
    return required_pool(artifacts, cfg, plan.prompt_key, plan.pool)


def read_local_pool(path: Path) -> list[str]:
    """A materialized pool's rephrasings in pool order (the index samplers use it)."""
    try:
        return parse_pool_jsonl(path.read_bytes(), str(path), allow_duplicates=True)
    except PoolFormatError as exc:
        raise Failure(description=f"unreadable rephrasing pool (rematerialize its rephrasings): {exc}") from None


# ------------------------------------------------------------------------------------- job specs
def model_ref(cfg: ExperimentConfig, *, train: bool = False) -> dict:
    m = cfg.model
    ref: dict[str, Any] = {"id": (m.train_id or m.id) if train else m.id}
    if m.revision:
        ref["revision"] = m.revision
    ref["dtype"] = "auto" if m.dtype == "auto" else m.dtype
    return ref


def generation_backend(cfg: ExperimentConfig) -> str:
    choice = cfg.compute.generation_backend
    if choice == "auto":
        return "vllm" if cfg.compute.backend == "skypilot" else "transformers"
    return choice


def vllm_options(cfg: ExperimentConfig) -> dict:
    m = cfg.model
    return {
        "max_model_len": m.max_model_len,
        "gpu_memory_utilization": m.gpu_memory_utilization,
        "enforce_eager": m.enforce_eager,
    }


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
    """The generate job's spec on this experiment's engine (gpu_jobs/README.md)."""
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


def base_model_sample_spec(cfg: ExperimentConfig, requests: Path, *, max_tokens: int, seed: int) -> dict:
    """The generate job sampling the base model at temperature 1 (elicitation and the control completions)."""
    return generate_spec(
        cfg, requests, model=model_ref(cfg), temperature=1.0, top_p=1.0, max_tokens=max_tokens, seed=seed
    )


def score_spec(cfg: ExperimentConfig, pairs: Path, **fields: Any) -> dict:
    """The score job's spec on this experiment's engine, with the job's own ``fields``."""
    return {
        "model": model_ref(cfg),
        "pairs": str(pairs),
        "backend": generation_backend(cfg),
        "vllm": vllm_options(cfg),
        **fields,
    }


def completions(result: GpuJobResult) -> list[dict]:
    return [row for _, row in job_io.read_jsonl(result.path("completions.jsonl"))]


def scores(result: GpuJobResult) -> pd.DataFrame:
    return pd.read_parquet(result.path("scores.parquet"))
