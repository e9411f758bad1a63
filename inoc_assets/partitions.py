"""Partitions: per-experiment dynamic prompt partitions and dynamic run partitions.

One DynamicPartitionsDefinition per experiment (`<experiment>__prompts`) keeps every partition
shown in the UI valid for its group (a cross product experiments × prompts would show invalid
combinations). Run assets get their own dynamic dimension (`<experiment>__runs`) whose keys are
exactly the runs the config plans, `<prompt>/<prefix_type>` (`cfg.run_partition_keys()`): a finished
study shows every run partition materialized. (A prompt × prefix-type grid would show the combinations a
config never trains as forever missing.) The prefix type stays filterable: it is the key's suffix.
"""

from __future__ import annotations

from dagster import DynamicPartitionsDefinition

#: Run partitions before they had their own dimension were `MultiPartitionKey`s, printed `<prefix_type>|<prompt>`.
LEGACY_SEPARATOR = "|"


def prompt_partitions_name(experiment: str) -> str:
    return f"{experiment}__prompts"


def run_partitions_name(experiment: str) -> str:
    return f"{experiment}__runs"


def prompt_partitions(experiment: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=prompt_partitions_name(experiment))


def run_partitions(experiment: str) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=run_partitions_name(experiment))


def run_partition_key(prompt: str, prefix_type: str) -> str:
    return f"{prompt}/{prefix_type}"


def parse_run_partition_key(key: str) -> tuple[str, str]:
    """(prompt, prefix type) of a run partition key; the legacy `<prefix_type>|<prompt>` form is read too."""
    if LEGACY_SEPARATOR in key:
        prefix_type, prompt = key.split(LEGACY_SEPARATOR, 1)
        return prompt, prefix_type
    prompt, sep, prefix_type = key.rpartition("/")
    if not sep or not prompt or not prefix_type:
        raise ValueError(f"run partition key {key!r} is not <prompt>/<prefix_type>")
    return prompt, prefix_type


def legacy_run_partition_key(prompt: str, prefix_type: str) -> str:
    return f"{prefix_type}{LEGACY_SEPARATOR}{prompt}"
