"""inoc's Dagster code location: assets, partitions, resources, sensors and checks per experiment."""

from inoc_assets.definitions import build_definitions, defs

__all__ = ["build_definitions", "defs"]
