"""inoc's Dagster code location: assets, partitions, resources, sensors and checks per experiment."""

import warnings

from dagster import BetaWarning

# Single-run backfills (BackfillPolicy) are marked beta; the warning would repeat in every step process.
warnings.filterwarnings("ignore", category=BetaWarning)

from inoc_assets.definitions import build_definitions, defs  # noqa: E402 (after the warning filter)

__all__ = ["build_definitions", "defs"]
