"""Edits of an experiment YAML that keep its comments and layout (ruamel.yaml round-trip), shown as a diff.

`add_candidates` puts new prompts under `prompts:`, in their family's candidate group and in `candidates:`
(no run is planned for a candidate). `promote` removes keys from `candidates:`: they become ordinary
prompts, so `runs` plans their runs and `inoc backfill` trains them. Every edit is validated by loading the
result as an experiment before it is written (atomically), so a bad edit never reaches the file.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from inoc.config import ExperimentConfig, parse_experiment
from inoc.propose.generate import ProposeError


def _yaml() -> YAML:
    y = YAML()  # round-trip: comments, key order and quoting survive
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _load(path: Path) -> CommentedMap:
    data = _yaml().load(path.read_text(encoding="utf-8"))
    if not isinstance(data, CommentedMap):
        raise ProposeError(f"{path}: expected a mapping of fields at the top")
    return data


def _dump(data: CommentedMap) -> str:
    buf = io.StringIO()
    _yaml().dump(data, buf)
    return buf.getvalue()


def _own(data: CommentedMap, field: str, path: Path) -> None:
    """Refuse to edit a field the file inherits (`extends:`) instead of defining: the edit would drop the parent's."""
    if "extends" in data and field not in data:
        raise ProposeError(
            f"{path}: `{field}` is inherited through `extends: {data['extends']}`; define it in this "
            "file (or propose in the parent experiment)"
        )


def add_candidates(path: Path, group: str, role: str, family: str, texts: Mapping[str, str]) -> str:
    """The YAML text with ``texts`` (key → text) added as candidates in ``group`` (created if absent)."""
    data = _load(path)
    for field in ("prompts", "groups"):
        _own(data, field, path)
    prompts, groups = data["prompts"], data["groups"]
    clash = [k for k in texts if k in prompts]
    if clash:
        raise ProposeError(f"{path}: prompt key(s) {clash} already exist")
    for key, text in texts.items():
        prompts[key] = text
    if group not in groups:
        g = CommentedMap(role=role, family=family)
        g["description"] = "proposed by `inoc propose`"
        g["prompts"] = CommentedSeq()
        groups[group] = g
    elif groups[group].get("role") != role or groups[group].get("family") != family:
        raise ProposeError(
            f"{path}: group {group!r} exists with role/family {groups[group].get('role')}/"
            f"{groups[group].get('family')}, not {role}/{family}"
        )
    groups[group]["prompts"].extend(texts)
    if "candidates" not in data:
        data["candidates"] = CommentedSeq()
        data.yaml_set_comment_before_after_key(
            "candidates",
            before="\nProposed by `inoc propose`: per-prompt stages only, no run until promoted "
            "(`inoc propose --select`).",
        )
    data["candidates"].extend(texts)
    return _dump(data)


def promote(path: Path, keys: Sequence[str]) -> str:
    """The YAML text with ``keys`` removed from `candidates:` (ordinary prompts from then on)."""
    data = _load(path)
    listed = list(data.get("candidates") or [])
    missing = [k for k in keys if k not in listed]
    if missing:
        raise ProposeError(f"{path}: {missing} are not candidates (candidates: {len(listed)})")
    seq = data["candidates"]
    for key in keys:
        seq.remove(key)
    if not seq:
        del data["candidates"]
    return _dump(data)


def diff(path: Path, new_text: str) -> str:
    old = path.read_text(encoding="utf-8")
    return "".join(
        difflib.unified_diff(old.splitlines(True), new_text.splitlines(True), str(path), str(path) + " (new)")
    )


def check(path: Path, new_text: str) -> ExperimentConfig:
    """The edited text as an experiment (ConfigError with file:line when the edit made it invalid)."""
    return parse_experiment(new_text, str(path))


def write(path: Path, new_text: str) -> ExperimentConfig:
    """Validate, then replace the file atomically; returns the new config."""
    cfg = check(path, new_text)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return cfg
