"""Partitions: per-experiment dynamic prompt partitions and the 2-D run partitions.

One DynamicPartitionsDefinition per experiment (`<experiment>__prompts`) keeps every partition
shown in the UI valid for its group (a cross product experiments × prompts would show invalid
combinations). Run assets are partitioned by prompt × prefix type (fixed, mix, close_mix; Dagster allows two
dimensions); a config selects which of those combinations it trains (`cfg.run_partition_keys()`).
"""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition, MultiPartitionsDefinition, StaticPartitionsDefinition

from inoc.config.schema import PREFIX_TYPES



def prompt_partitions_name(experiment: str) -> str:
    return f"{experiment}__prompts"


def prompt_partitions(experiment: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=prompt_partitions_name(experiment))


def run_partitions(experiment: str) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {"prompt": prompt_partitions(experiment), "prefix_type": StaticPartitionsDefinition(list(PREFIX_TYPES))}
    )
