"""Warnings about valid configs that would not measure what they claim; `inoc validate` and `inoc plan`
print them (they never fail a command: the study may be a deliberate rehearsal or a preview).

* **A small control**: an extra control (``runs.extra_control_data``) whose training file holds fewer
  rows than ``CONTROL_DATA_MIN_FRACTION`` of the study's training examples (``data.n_train``). It trains
  for that much fewer optimizer steps, so its scores are not a like-for-like control — the EM study's
  20-row preview of the subtle data trains for 1 step against 182.
* **A missing control file**: the control cannot train at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu_jobs.train import plan_steps
from inoc.config.load import Problem, expand_path, locate
from inoc.config.schema import ExperimentConfig

#: Below this share of the study's training examples a control's data is flagged.
CONTROL_DATA_MIN_FRACTION = 0.5


@dataclass(frozen=True)
class ConfigWarning(Problem):
    """A problem that does not stop a command: printed as ``file:line: warning: field: message``."""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: warning: {self.field}: {self.message}"


def _rows(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def config_warnings(cfg: ExperimentConfig, config_path: str | Path) -> list[ConfigWarning]:
    """What a researcher should fix before paying for this study, with the file and line of each field."""
    out: list[ConfigWarning] = []
    if cfg.data is None or cfg.is_import:  # an imported study trains nothing
        return out
    t, n_study = cfg.training, cfg.data.n_train

    def steps(n: int) -> int:
        return plan_steps(n, t.per_device_batch_size, t.gradient_accumulation_steps, t.epochs).total_steps

    for name, configured in cfg.runs.extra_control_data.items():
        field = f"runs.extra_control_data.{name}"
        file, line = locate(Path(config_path), ("runs", "extra_control_data", name))
        path = Path(expand_path(configured))
        if not path.is_file():
            out.append(ConfigWarning(file, line, field, f"{path}: no such file; the control {name!r} cannot train"))
            continue
        n = _rows(path)
        if n < CONTROL_DATA_MIN_FRACTION * n_study:
            out.append(
                ConfigWarning(
                    file,
                    line,
                    field,
                    (
                        f"{n} training rows in {path.name}, {n / n_study:.1%} of the study's {n_study} (data.n_train): "
                        f"{steps(n)} optimizer step(s) against {steps(n_study)}, so {name!r} is no like-for-like control "
                        f"(warned below {CONTROL_DATA_MIN_FRACTION:.0%}). Supply its full training file, or remove it from "
                        "runs.extra_controls"
                    ),
                )
            )
    return out
