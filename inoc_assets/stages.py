"""Stages: every asset declares which stage of a study it belongs to, as the tag ``inoc/stage``.

The main job, ``inoc backfill`` and ``inoc rehearse`` select assets by stage from the graph itself,
so a new asset is run by them as soon as it carries a tag (a test fails for an asset without one):

* ``setup`` — experiment-level, unpartitioned inputs: the base model, instructions, training data,
  control sets and baselines, the control run (computed studies); the imported result files (imports);
* ``prompt`` — partitioned by prompt: the prompt, its rephrasings, elicitation and logprobs;
* ``run`` — partitioned by (prompt, prefix type): train → eval → judge of one run;
* ``aggregate`` — experiment-level analyses over all partitions: heuristics, suppression, geometry, figures;
* ``slides`` — the cross-experiment slides group.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import AssetKey, AssetSpec, Definitions

STAGE_TAG = "inoc/stage"
SETUP, PROMPT, RUN, AGGREGATE, SLIDES = "setup", "prompt", "run", "aggregate", "slides"
#: The stages of one experiment's group, in the order they run.
STAGES = (SETUP, PROMPT, RUN, AGGREGATE)


def stage_tag(stage: str) -> dict[str, str]:
    """The tags of an asset in ``stage`` (``@asset(tags=stage_tag(PROMPT))``)."""
    if stage not in (*STAGES, SLIDES):
        raise ValueError(f"unknown stage {stage!r}")
    return {STAGE_TAG: stage}


def group_specs(defs: Definitions, group: str) -> list[AssetSpec]:
    """The asset specs of one experiment's group, in definition order."""
    return [s for s in defs.resolve_all_asset_specs() if s.group_name == group]


def stage_of(spec: AssetSpec) -> str | None:
    return (spec.tags or {}).get(STAGE_TAG)


def stage_keys(specs: Iterable[AssetSpec], stage: str) -> list[AssetKey]:
    """The keys of the assets in ``stage``, in definition order."""
    return [s.key for s in specs if stage_of(s) == stage]


def untagged(defs: Definitions) -> list[AssetKey]:
    """Assets without a known stage (a test requires none)."""
    return [s.key for s in defs.resolve_all_asset_specs() if stage_of(s) not in (*STAGES, SLIDES)]
