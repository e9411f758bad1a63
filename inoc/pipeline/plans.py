"""Training runs of an experiment: which runs exist, their ids, and the prefix each one trains with.

Run ids are stable warehouse keys: ``no_inoculation`` (the designated control), ``<prompt>/fixed``,
``<prompt>/mix`` (the diverse pool) and ``<prompt>/close_mix`` (the close pool); ``runs.extra_controls`` add more un-inoculated runs. With a learning-rate
sweep (``training.learning_rates``) every run exists once per rate, prefixed by its batch
``lr<rate>/`` — each batch has its own control, and the first rate's control is the designated one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from inoc.config import ExperimentConfig
from inoc.config.schema import POOL_OF_PREFIX_TYPE

CONTROL_RUN = "no_inoculation"


def lr_batch(lr: float) -> str:
    return f"lr{lr:g}"


@dataclass(frozen=True)
class RunPlan:
    run: str
    batch: str
    learning_rate: float
    prompt_key: str | None = None
    prefix_type: str | None = None  # fixed | mix | close_mix; None for a control

    @property
    def is_control(self) -> bool:
        return self.prompt_key is None

    @property
    def pool(self) -> str | None:
        """The rephrasing pool the run draws its prefixes from (diverse, close), or None."""
        return POOL_OF_PREFIX_TYPE.get(self.prefix_type or "")

    @property
    def slug(self) -> str:
        """A folder name for the run's artifacts."""
        return self.run.replace("/", "__")


def learning_rates(cfg: ExperimentConfig) -> list[float]:
    return list(cfg.training.learning_rates) or [cfg.training.learning_rate]


def _runs(cfg: ExperimentConfig, make) -> list[RunPlan]:
    sweep = bool(cfg.training.learning_rates)
    out = []
    for lr in learning_rates(cfg):
        batch = lr_batch(lr) if sweep else "main"
        prefix = f"{batch}/" if sweep else ""
        out += make(lr, batch, prefix)
    return out


def control_plans(cfg: ExperimentConfig) -> list[RunPlan]:
    """The un-inoculated runs (the control first, then ``runs.extra_controls``)."""
    names = ([CONTROL_RUN] if cfg.runs.control else []) + [n for n in cfg.runs.extra_controls if n != CONTROL_RUN]
    return _runs(cfg, lambda lr, batch, p: [RunPlan(f"{p}{n}", batch, lr) for n in names])


def prompt_plans(cfg: ExperimentConfig, prompt_key: str, prefix_type: str) -> list[RunPlan]:
    """The runs of one (prompt, prefix type) partition: one per learning rate."""
    return _runs(
        cfg, lambda lr, batch, p: [RunPlan(f"{p}{prompt_key}/{prefix_type}", batch, lr, prompt_key, prefix_type)]
    )


def designated_control(cfg: ExperimentConfig) -> str:
    plans = control_plans(cfg)
    if not plans:
        raise ValueError(f"{cfg.name}: no control run (runs.control is false and runs.extra_controls is empty)")
    return plans[0].run


def prefix_plan(cfg: ExperimentConfig, plan: RunPlan, pool_path: str | Path | None = None) -> dict:
    """The train job's ``prefix`` field for a run (see gpu_jobs.spec.PrefixPlan)."""
    if plan.is_control:
        return {"plan": "none"}
    inoc = cfg.inoculation
    common = {"position": inoc.position, "separator": inoc.separator}
    if plan.prefix_type == "fixed":
        return {"plan": "fixed", "text": cfg.prompts[plan.prompt_key], **common}
    if pool_path is None:
        raise ValueError(f"run {plan.run}: a {plan.prefix_type} run needs the prompt's {plan.pool} rephrasing pool")
    return {
        "plan": "pool",
        "pool_path": str(pool_path),
        "sampling": "seeded",
        "seed": inoc.mix_seed,
        "min_pool_size": cfg.rephrasings.min_pool,
        **common,
    }
