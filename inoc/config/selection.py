"""Which experiments the code location loads: the `INOC_EXPERIMENTS` setting and `inoc ui --experiment`.

A selection is a comma-separated list of experiment names and two words:
``local`` (every experiment that runs on this machine: imports and studies with `compute.backend:
local`) and ``all``. No selection means every valid YAML, so runs and programmatic loads see every
study; `inoc ui` picks ``local`` when nothing is given, so a new user's catalog opens on the toy
studies and the imported results rather than on GPU studies that were never run here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from inoc.config.load import Catalog
from inoc.config.schema import ExperimentConfig

LOCAL, ALL = "local", "all"


class SelectionError(ValueError):
    """A selection names an experiment that has no valid YAML."""


def runs_locally(cfg: ExperimentConfig) -> bool:
    """Whether the study needs nothing but this machine (an import reads files; skypilot rents GPUs)."""
    return cfg.is_import or cfg.compute.backend == "local"


def parse_selection(text: str | None) -> list[str] | None:
    """The words of a selection (`"toy, local"` → `["toy", "local"]`); None or blank → None (everything)."""
    if text is None:
        return None
    words = [w.strip() for w in text.split(",") if w.strip()]
    return words or None


def select_experiments(catalog: Catalog, words: Iterable[str] | None, source: str = "INOC_EXPERIMENTS") -> list[str]:
    """Names of the catalog's experiments a selection picks, in the catalog's order.

    `source` names where the selection came from, for the error. A name that is an invalid YAML is
    dropped here (the loader already reports the file's problems); one with no file is an error.
    """
    if words is None:
        return list(catalog.configs)
    invalid = {Path(e.problems[0].file).stem for e in catalog.errors if e.problems}
    chosen: set[str] = set()
    for word in words:
        if word == ALL:
            chosen |= set(catalog.configs)
        elif word == LOCAL:
            chosen |= {n for n, cfg in catalog.configs.items() if runs_locally(cfg)}
        elif word in catalog.configs:
            chosen.add(word)
        elif word not in invalid:
            known = ", ".join([LOCAL, ALL, *catalog.configs])
            raise SelectionError(f"{source}: no experiment {word!r} (expected a comma-separated list of: {known})")
    return [n for n in catalog.configs if n in chosen]
