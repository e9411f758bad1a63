"""Experiment configuration: the schema and its loader."""

from inoc.config.load import (
    Catalog,
    ConfigError,
    Problem,
    expand_path,
    experiment_files,
    load_all,
    load_experiment,
    parse_experiment,
)
from inoc.config.schema import ExperimentConfig

__all__ = [
    "Catalog",
    "ConfigError",
    "ExperimentConfig",
    "Problem",
    "expand_path",
    "experiment_files",
    "load_all",
    "load_experiment",
    "parse_experiment",
]
