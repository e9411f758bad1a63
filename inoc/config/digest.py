"""What a materialization was computed from: digests of an experiment config, scoped to what each stage reads.

* ``config_digest`` — the whole resolved config. The aggregates (heuristics, suppression, geometry,
  figures) read every prompt and run, so any change makes them stale.
* ``stage_digest`` — the config without its prompt set (``prompts``, ``groups``, ``candidates``, the
  ``runs`` prompt selections, ``description``). The setup stages, the prompt stages and the runs are
  tagged with it, so adding, proposing or promoting a prompt leaves every finished partition fresh.
* ``prompt_identity`` — what one prompt's partitions depend on beyond the stage digest: its text, its
  group (name, role, family) and its pool settings. A prompt partition records it as metadata and a run
  as a tag, so editing one prompt's text makes exactly that prompt's partitions stale.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from inoc.config.schema import PREFIX_TYPE_SELECTIONS, ExperimentConfig

#: Fields of a config that name its prompt set rather than how each stage computes.
PROMPT_SET_FIELDS = ("prompts", "groups", "candidates", "description")


def _sha(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def config_digest(cfg: ExperimentConfig) -> str:
    """sha256 of the whole resolved config."""
    return _sha(cfg.model_dump(mode="json", by_alias=True))


def stage_digest(cfg: ExperimentConfig) -> str:
    """sha256 of the config without its prompt set (see the module docstring)."""
    data = cfg.model_dump(mode="json", by_alias=True)
    for field in PROMPT_SET_FIELDS:
        data.pop(field, None)
    runs = data.get("runs") or {}
    for field in ("prompts", *PREFIX_TYPE_SELECTIONS.values()):
        runs.pop(field, None)
    rephrasings = data.get("rephrasings") or {}
    rephrasings.pop("reference_files", None)  # per prompt: part of its identity
    return _sha(data)


def prompt_identity(cfg: ExperimentConfig, key: str) -> str:
    """16 hex characters identifying what prompt ``key``'s partitions are computed from (short enough for a run tag)."""
    group = cfg.group_of(key)
    g = cfg.groups[group]
    return _sha(
        {
            "text": cfg.prompts[key],
            "group": group,
            "role": g.role,
            "family": g.family,
            "reference_file": cfg.rephrasings.reference_files.get(key),
        }
    )[:16]
