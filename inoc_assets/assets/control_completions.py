"""`<experiment>/control_completions`: base-model completions of the held-out instructions with no trait asked
for, plus one set per single-trait prompt (drift measures and the trait-specific heuristics)."""

from pathlib import Path

import dagster as dg

from inoc.config import load_experiment
from inoc.pipeline.requests import plain_requests
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.plumbing import (
    base_model_sample_spec,
    completions,
    control_sets,
    data_path,
    held_out_instructions,
    key,
    work_dir,
    write_jsonl,
    write_requests,
)
from inoc_assets.stages import SETUP, stage_tag


def control_completions_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    k = key(experiment, "control_completions")

    @dg.asset(
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
            dg.AssetCheckSpec(
                "complete_sets", asset=k, description="Every set has one non-empty completion per eval instruction."
            )
        ],
    )
    def control_completions(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends):
        cfg = load_experiment(config_path)
        evals = held_out_instructions(cfg)
        sets = control_sets(cfg)
        unknown = [t for t in cfg.logprobs.single_trait_prompts if t not in {x.name for x in cfg.traits}]
        if unknown:
            raise dg.Failure(description=f"{config_path}: logprobs.single_trait_prompts: unknown trait(s) {unknown}")
        requests = [r for name, prompt in sets.items() for r in plain_requests(cfg, evals, name, prompt)]
        req = write_requests(experiment, "control_requests.jsonl", requests)
        spec = base_model_sample_spec(cfg, req, max_tokens=cfg.data.control_max_tokens, seed=cfg.data.seed + 1)
        result = gpu_jobs.run_job(context, cfg, "generate", spec, work_dir(experiment, "jobs", "control_completions"))
        by_set: dict[str, list[dict]] = {name: [] for name in sets}
        for c in completions(result):
            by_set[c["meta"]["set"]].append({"instruction": evals[c["meta"]["idx"]], "completion": c["text"]})
        for name, rows in by_set.items():
            write_jsonl(data_path(experiment, f"control_{name}.jsonl"), rows)
        yield result.materialize_result(metadata={f"n_{n}": len(r) for n, r in by_set.items()})
        empty = {n: sum(not r["completion"].strip() for r in rows) for n, rows in by_set.items()}
        ok = all(len(rows) == len(evals) for rows in by_set.values()) and not any(empty.values())
        yield dg.AssetCheckResult(
            check_name="complete_sets",
            passed=ok,
            metadata={"n_eval": len(evals), **{f"empty_{n}": v for n, v in empty.items()}},
        )

    return control_completions
