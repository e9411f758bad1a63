"""Experiment configuration: the schema and its loader."""

from inoc.config.load import ConfigError, Problem, experiment_files, expand_path, load_all, load_experiment, parse_experiment
from inoc.config.schema import ExperimentConfig

__all__ = [
    "ConfigError",
    "ExperimentConfig",
    "Problem",
    "expand_path",
    "experiment_files",
    "load_all",
    "load_experiment",
    "parse_experiment",
]
