"""Prompt-text heuristics (docs/methods.md#self-perplexity, #embeddings): self-perplexity of each prompt through the score job, and the
embedding statistics of its rephrasing pool and of the prompt groups.

Written to ``<experiment>/heuristics/text_heuristics.parquet``; ``prompt_geometry`` folds the rows
into ``prompt_heuristics`` (prefix_type NULL) with the W-based ones, so one asset owns that table's
rows of the experiment. Centroids span every prompt, so this asset is experiment-level: a new
prompt recomputes it (cheap: one embedding call per text, one scoring pass over the prompts).
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from inoc.config import load_experiment
from inoc.heuristics.embeddings import embedding_heuristics, make_embedder
from inoc.heuristics.self_perplexity import SCORE_FIELDS, self_perplexity_pairs, self_perplexity_rows
from inoc_assets.backends.compute import ComputeBackends
from inoc_assets.plumbing import (
    TEXT_HEURISTICS_FILE,
    key,
    local_pool,
    read_local_pool,
    score_spec,
    work_dir,
    write_requests,
)
from inoc_assets.resources import ArtifactStoreResource
from inoc_assets.stages import AGGREGATE, stage_tag


def text_heuristics_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(experiment, "text_heuristics"),
        group_name=experiment,
        kinds={"pytorch"},
        pool="gpu",
        tags=stage_tag(AGGREGATE),
        deps=[key(experiment, "base_model"), key(experiment, "rephrasings")],
        description="Self-perplexity of each prompt (NLL/token, raw and after the system turn; score job on the "
        "base model) and embedding heuristics (rephrasing cosines, effective rank, distances to the group "
        "centroids) → heuristics/text_heuristics.parquet, folded into `prompt_heuristics` by prompt_geometry.",
    )
    def text_heuristics(context: dg.AssetExecutionContext, gpu_jobs: ComputeBackends, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        th = cfg.text_heuristics
        frames, meta = [], {}
        if th.self_perplexity:
            req = write_requests(experiment, "self_perplexity_pairs.jsonl", self_perplexity_pairs(cfg))
            spec = score_spec(cfg, req, **SCORE_FIELDS)
            result = gpu_jobs.run_job(context, cfg, "score", spec, work_dir(experiment, "jobs", "self_perplexity"))
            frames.append(self_perplexity_rows(experiment, result.path("scores.parquet")))
        if th.embeddings != "none":
            pools = {}
            for k in cfg.prompt_keys:
                path = local_pool(artifacts, cfg, k)
                if path is not None:
                    pools[k] = read_local_pool(path)
            options = (
                {} if th.embeddings == "minilm" else {"model": th.embedding_model, "base_url": th.embedding_base_url}
            )
            embedder = make_embedder(th.embeddings, **options)
            context.log.info(
                f"embedding {len(cfg.prompt_keys)} prompts and {sum(map(len, pools.values()))} rephrasings"
            )
            frames.append(embedding_heuristics(cfg, pools, embedder, max_rephrasings=th.max_rephrasings))
            meta["embedder"] = dg.MetadataValue.json(embedder.metadata())
            missing = [k for k in cfg.prompt_keys if k not in pools]
            if missing:
                context.log.warning(f"no rephrasing pool yet for {missing}: their pool statistics are missing")
        table = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["experiment", "prompt_key", "prefix_type", "heuristic", "value"])
        )
        url = artifacts.store.write_parquet(table, experiment, *TEXT_HEURISTICS_FILE)
        wide = table.pivot_table(index="prompt_key", columns="heuristic", values="value") if len(table) else table
        return dg.MaterializeResult(
            metadata={
                **meta,
                "n_rows": len(table),
                "path": dg.MetadataValue.path(url),
                "table": dg.MetadataValue.md(wide.round(3).reset_index().to_markdown(index=False)),
            }
        )

    return text_heuristics
