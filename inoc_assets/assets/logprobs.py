"""Base-model log-probabilities (docs/methods.md#lp) through the score job: the raw material of W and the heuristics.

``logprob_baseline`` scores, with no prefix, a seeded sample of the training examples
(``train_default``), the control completions (``ctrl_default``) and each single-trait set
(``<trait>_default``). ``logprobs`` (partitioned by prompt) scores the same texts with the prompt
as prefix: ``train_inoc``, ``train_mix`` (an index-matched rephrasing per example), ``ctrl_inoc``,
``<trait>_inoc``. Means per completion land in ``logprob_vectors``; per-token values of the training
vectors in ``logprob_tokens`` (``logprobs.token_level``).
"""

import hashlib
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from inoc.config import ExperimentConfig, load_experiment
from inoc.pipeline.requests import index_matched_prefixes, logprob_pairs, logprob_sample_indices
from inoc.tables.logprobs import logprob_rows, prompt_drifts, vector_length_errors
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.partitions import prompt_partitions
from inoc_assets.plumbing import (
    TRAIN_FILE,
    control_sets,
    data_path,
    key,
    partition_prompts,
    read_jsonl,
    read_local_pool,
    required_pool,
    score_spec,
    scores,
    work_dir,
    write_requests,
)
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import PROMPT, SETUP, stage_tag
from inoc_assets.table_metadata import number
from warehouse import replace_rows


def training_sample(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """The seeded sample of training examples every logprob vector is computed on, in the sample's draw
    order (the original's; its mix prefixes pair with the examples in that order)."""
    rows = read_jsonl(
        data_path(cfg.name, TRAIN_FILE), needed_by=f"{cfg.name}/logprobs", produced_by=key(cfg.name, "training_data")
    )
    return [(rows[i]["instruction"], rows[i]["completion"]) for i in logprob_sample_indices(cfg, len(rows))]


def completion_sets(cfg: ExperimentConfig) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for name in control_sets(cfg):
        rows = read_jsonl(
            data_path(cfg.name, f"control_{name}.jsonl"),
            needed_by=f"{cfg.name}/logprobs",
            produced_by=key(cfg.name, "control_completions"),
        )
        out[name] = [(r["instruction"], r["completion"]) for r in rows]
    return out


def _score(context, gpu_jobs, cfg: ExperimentConfig, pairs: list[dict], tag: str):
    req = write_requests(cfg.name, f"logprob_pairs_{tag}.jsonl", pairs)
    spec = score_spec(cfg, req, token_level=cfg.logprobs.token_level)
    return gpu_jobs.run_job(context, cfg, "score", spec, work_dir(cfg.name, "jobs", "logprobs", tag))


def _write(warehouse: WarehouseResource, exp: str, vec: pd.DataFrame, tokens: pd.DataFrame, key_value) -> None:
    where = {"experiment": exp, "prompt_key": key_value}
    with warehouse.warehouse.writer() as conn:
        v = vec[vec.prompt_key.isna()] if key_value is None else vec[vec.prompt_key == key_value]
        t = tokens[tokens.prompt_key.isna()] if key_value is None else tokens[tokens.prompt_key == key_value]
        replace_rows(conn, "logprob_vectors", v.drop(columns="prompt_key"), where)
        replace_rows(conn, "logprob_tokens", t.drop(columns="prompt_key"), where)


def _check(vec: pd.DataFrame, expected: dict[tuple, int]) -> dg.AssetCheckResult:
    wrong = vector_length_errors(vec, expected)
    finite = bool(np.isfinite(vec.lp).all())
    return dg.AssetCheckResult(
        check_name="vector_shapes",
        passed=not wrong and finite,
        metadata={"vectors": len(expected), "wrong_lengths": wrong, "all_finite": finite},
    )


CHECK_DESC = (
    "Every logprob vector has one finite value per example of its set (the training sample, the control "
    "and single-trait sets), so the W matrices are complete."
)


def prompt_logprob_metadata(own: pd.DataFrame, base: pd.DataFrame) -> dict:
    """One prompt's PH, mix PH and PPD (None where undefined) and its vector counts."""
    meta: dict = {k: number(v) for k, v in prompt_drifts(own, base).items()}
    meta["n_vectors"] = int(own.vector.nunique())
    meta["n_examples"] = len(own)
    return meta


def logprob_assets(experiment: str, config_path: Path) -> list[dg.AssetsDefinition]:
    base_key, k = key(experiment, "logprob_baseline"), key(experiment, "logprobs")

    @dg.asset(
        key=base_key,
        group_name=experiment,
        kinds={"duckdb"},
        pool="gpu",
        tags=stage_tag(SETUP),
        deps=[key(experiment, "training_data"), key(experiment, "control_completions")],
        description="No-prefix base-model log-probs of the training sample, the control completions and the "
        "single-trait sets → `logprob_vectors`/`logprob_tokens` rows with prompt_key NULL.",
        check_specs=[dg.AssetCheckSpec("vector_shapes", asset=base_key, description=CHECK_DESC)],
    )
    def logprob_baseline(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, warehouse: WarehouseResource):
        cfg = load_experiment(config_path)
        sample, sets = training_sample(cfg), completion_sets(cfg)
        pairs = logprob_pairs(cfg, "train_default", sample, [None] * len(sample), None)
        expected = {(None, "train_default"): len(sample)}
        for name, rows in sets.items():
            pairs += logprob_pairs(cfg, f"{name}_default", rows, [None] * len(rows), None)
            expected[(None, f"{name}_default")] = len(rows)
        result = _score(context, gpu_jobs, cfg, pairs, "baseline")
        vec, tokens = logprob_rows(scores(result), cfg.logprobs.token_level)
        _write(warehouse, experiment, vec, tokens, None)
        yield result.materialize_result(
            metadata={
                "n_pairs": len(pairs),
                "n_token_rows": len(tokens),
                "mean_lp_train_default": float(vec[vec.vector == "train_default"].lp.mean()),
            }
        )
        yield _check(vec, expected)

    @dg.asset(
        key=k,
        group_name=experiment,
        kinds={"duckdb"},
        pool="gpu",
        tags=stage_tag(PROMPT),
        partitions_def=prompt_partitions(experiment),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[key(experiment, "prompt"), key(experiment, "rephrasings"), key(experiment, "logprob_baseline")],
        description="Base-model log-probs with the prompt as prefix: train_inoc (fixed), train_mix (index-matched "
        "rephrasings), ctrl_inoc and <trait>_inoc → `logprob_vectors`/`logprob_tokens`; W = these − the baseline.",
        check_specs=[dg.AssetCheckSpec("vector_shapes", asset=k, description=CHECK_DESC)],
    )
    def logprobs(
        context: dg.AssetExecutionContext,
        gpu_jobs: ComputeBackends,
        warehouse: WarehouseResource,
        artifacts: ArtifactStoreResource,
    ):
        cfg = load_experiment(config_path)
        keys = partition_prompts(context, cfg, config_path)
        sample, sets = training_sample(cfg), completion_sets(cfg)
        pairs, expected = [], {}
        for pk in keys:
            text = cfg.prompts[pk]
            pairs += logprob_pairs(cfg, "train_inoc", sample, [text] * len(sample), pk)
            expected[(pk, "train_inoc")] = len(sample)
            if "mix" in cfg.inoculation.prefix_types:
                pool = required_pool(artifacts, cfg, pk)
                mix = index_matched_prefixes(cfg, read_local_pool(pool), len(sample))
                pairs += logprob_pairs(cfg, "train_mix", sample, mix, pk)
                expected[(pk, "train_mix")] = len(sample)
            for name, rows in sets.items():
                pairs += logprob_pairs(cfg, f"{name}_inoc", rows, [text] * len(rows), pk)
                expected[(pk, f"{name}_inoc")] = len(rows)
        tag = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
        result = _score(context, gpu_jobs, cfg, pairs, f"prompts_{tag}")
        vec, tokens = logprob_rows(scores(result), cfg.logprobs.token_level)
        for pk in keys:
            _write(warehouse, experiment, vec, tokens, pk)
        base = warehouse.warehouse.query(
            "SELECT vector, example_idx, lp FROM logprob_vectors WHERE experiment = ? AND prompt_key IS NULL",
            [experiment],
        )
        for pk in keys:  # each partition gets its own prompt's PH and PPD, not the batch's
            meta = prompt_logprob_metadata(vec[vec.prompt_key == pk], base)
            context.log.info(f"{pk}: PH {meta['ph']}, PPD {meta['ppd']}")
            context.add_asset_metadata(meta, partition_key=pk)
        yield result.materialize_result(
            metadata={"batch_prompts": len(keys), "batch_pairs": len(pairs), "batch_token_rows": len(tokens)}
        )
        yield _check(vec, expected)

    return [logprob_baseline, logprobs]
