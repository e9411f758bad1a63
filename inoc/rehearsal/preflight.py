"""Checks a study's config against the files it names before anything runs: every data file, pool
folder and pool a run will read must exist. Each problem names the config file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inoc.config import expand_path
from inoc.config.load import Problem, locate
from inoc.config.schema import POOL_OF_PREFIX_TYPE, ExperimentConfig


def _file(path: str) -> Path:
    return Path(expand_path(path))


def preflight(cfg: ExperimentConfig, config_path: Path, prompts: list[str] | None = None) -> list[Problem]:
    """Problems with the files the config names (empty when all exist); ``prompts`` limits the pool checks."""
    problems: list[Problem] = []

    def problem(loc: tuple[Any, ...], message: str) -> None:
        file, line = locate(config_path, loc)
        field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
        problems.append(Problem(file, line, field, message))

    def need_file(loc: tuple[Any, ...], value: str | None) -> None:
        if value and not _file(value).is_file():
            problem(loc, f"no such file: {_file(value)} (configured as {value!r})")

    d = cfg.data
    if d is not None:
        if d.instructions.source in ("jsonl", "messages_jsonl"):
            need_file(("data", "instructions", "path"), d.instructions.path)
        if d.datagen.mode == "file":
            need_file(("data", "datagen", "path"), d.datagen.path)
        for i, s in enumerate(d.eval_sets):
            if s.instructions.source in ("jsonl", "messages_jsonl"):
                need_file(("data", "eval_sets", i, "instructions", "path"), s.instructions.path)
    for name, path in cfg.runs.extra_control_data.items():
        need_file(("runs", "extra_control_data", name), path)
    r = cfg.rephrasings
    if r.source == "reference":
        folder = _file(r.reference_dir) if r.reference_dir else None
        if folder is None or not folder.is_dir():
            problem(
                ("rephrasings", "reference_dir"),
                f"no such folder: {folder} (source 'reference' reads <key>.jsonl or <key>.json pools from it)"
                if folder
                else "source 'reference' needs reference_dir",
            )
        else:
            from inoc.rephrasings import PoolFormatError, find_pool_file

            wanted = set(prompts if prompts is not None else cfg.prompt_keys)
            for key, ptype in cfg.run_partition_keys():
                pool = POOL_OF_PREFIX_TYPE.get(ptype)
                if key not in wanted or pool is None:
                    continue
                named = r.reference_files.get(key) if pool == "diverse" else None
                try:  # the lookup the rephrasings asset uses
                    find_pool_file(folder, key, close=pool == "close", named=expand_path(named) if named else None)
                except (FileNotFoundError, PoolFormatError) as exc:
                    field = ("rephrasings", "reference_files", key) if named else ("rephrasings", "reference_dir")
                    problem(field, f"prompt {key!r} has a {ptype} run but its {pool} pool is missing: {exc}")
    return problems
