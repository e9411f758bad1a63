"""The catalogue rows of an experiment config: its row in `experiments` and one row per prompt in
`prompts` (warehouse/README.md). Written by the `experiment` and `prompt` assets and by `inoc import`."""

from __future__ import annotations

from inoc.config.schema import ExperimentConfig


def prompt_record(cfg: ExperimentConfig, key: str) -> dict[str, str]:
    """Prompt ``key``'s row in `prompts`: its text, group and family."""
    group = cfg.group_of(key)
    return {
        "experiment": cfg.name,
        "prompt_key": key,
        "prompt_text": cfg.prompts[key],
        "prompt_group": group,
        "prompt_family": cfg.groups[group].family,
    }


def experiment_record(cfg: ExperimentConfig) -> dict[str, str | None]:
    """The experiment's row in `experiments`: model, positive and negative trait, source."""
    pos, neg = cfg.trait("positive"), cfg.trait("negative")
    return {
        "experiment": cfg.name,
        "model": cfg.model.id,
        "positive_trait": pos.name if pos else None,
        "negative_trait": neg.name if neg else None,
        "source": "import" if cfg.is_import else "pipeline",
    }
