"""Instruction sources: the model organism's world, a local JSONL file, a messages JSONL file, a
Hugging Face dataset (a hub id, or a local folder / data file that `datasets.load_dataset` reads), or
InstructionWild data_v2 fetched from its public URLs (``inoc.pipeline.instructionwild``).

``split_instructions(source, n_train, n_eval, seed)`` returns disjoint train and eval lists. The
organism has its own held-out eval pool; InstructionWild is filtered and sampled as the original did
(docs/methods.md#instructions); any other source is de-duplicated, shuffled with the seed and cut: the first
``n_train`` for training, the next ``n_eval`` for evaluation.
``training_split_as_is(source, n_train)`` (``data.split: as_is``) takes a file that already is the
training split as it is: file order, duplicates kept, nothing held out. ``load_eval_set`` reads an
extra eval set (EM: the in-distribution and general questions) in file order.

Errors name the file and line (or the dataset and row) and what was expected.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from inoc.config import expand_path
from inoc.config.schema import InstructionSource


class InstructionError(ValueError):
    """An instruction source is missing, malformed or too small."""


def jsonl_rows(path: Path):
    if not path.is_file():
        raise InstructionError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InstructionError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None


def _from_row(row: object, field: str, where: str) -> str:
    if not isinstance(row, dict):
        raise InstructionError(f"{where}: expected a JSON object with field {field!r}")
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InstructionError(f"{where}: field {field!r} must be a non-empty string, got {type(value).__name__}")
    return value.strip()


def first_user_turn(row: object, field: str, where: str) -> str:
    """The first user turn of a ``{"messages": [...]}`` row (the EM data sets' format)."""
    msgs = row.get(field if field != "instruction" else "messages") if isinstance(row, dict) else None
    if not isinstance(msgs, list):
        raise InstructionError(f"{where}: expected a `messages` list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise InstructionError(f"{where}: messages[{i}] must be {{role, content: <string>}}")
        if m.get("role") == "user":
            if not m["content"].strip():
                raise InstructionError(f"{where}: messages[{i}] (the user turn) is empty")
            return m["content"].strip()
    raise InstructionError(f"{where}: no user message")


def last_assistant_turn(row: object, where: str) -> str:
    """The last assistant turn of a ``{"messages": [...]}`` row (a training conversation)."""
    msgs = row.get("messages") if isinstance(row, dict) else None
    turns = [m for m in msgs or [] if isinstance(m, dict) and m.get("role") == "assistant"]
    if not turns or not isinstance(turns[-1].get("content"), str) or not turns[-1]["content"].strip():
        raise InstructionError(f"{where}: no assistant turn with text content")
    return turns[-1]["content"]


def read_conversations(path: str | Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(first user turn, last assistant turn) of each ``{"messages": [...]}`` row of a training file."""
    path = Path(path)
    rows = [
        (first_user_turn(r, "messages", f"{path}:{n}"), last_assistant_turn(r, f"{path}:{n}"))
        for n, r in jsonl_rows(path)
    ]
    if not rows:
        raise InstructionError(f"{path}: no conversations (the file is empty)")
    return rows[:limit] if limit else rows


def read_source(source: InstructionSource) -> list[str]:
    """Every instruction of a file or dataset source, in source order."""
    if source.source in ("jsonl", "messages_jsonl"):
        path = Path(expand_path(source.path or ""))
        pick = _from_row if source.source == "jsonl" else first_user_turn
        return [pick(row, source.field, f"{path}:{lineno}") for lineno, row in jsonl_rows(path)]
    if source.source == "hf":
        return _read_hf(source)
    if source.source == "instructionwild":
        from inoc.pipeline import instructionwild

        return instructionwild.load(source).instructions
    raise InstructionError(f"source {source.source!r} is not a file or dataset source")


def _read_hf(source: InstructionSource) -> list[str]:
    import datasets  # heavy; only for this source

    hf_id = expand_path(source.hf_id or "")
    local = Path(hf_id)
    try:
        if local.is_file():  # a data file: let datasets infer the builder from the extension
            kind = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}.get(local.suffix.lstrip("."))
            if kind is None:
                raise InstructionError(f"{local}: unsupported data file type (jsonl, json, csv, parquet)")
            ds = datasets.load_dataset(kind, data_files=str(local), split=source.hf_split)
        else:  # a hub id or a local dataset folder
            ds = datasets.load_dataset(hf_id, split=source.hf_split)
    except InstructionError:
        raise
    except Exception as exc:  # datasets raises many types; keep the message, name the source
        raise InstructionError(f"dataset {hf_id!r} (split {source.hf_split!r}) could not be loaded: {exc}") from None
    if source.field not in ds.column_names:
        raise InstructionError(f"dataset {hf_id!r}: no column {source.field!r} (columns: {', '.join(ds.column_names)})")
    return [_from_row({source.field: v}, source.field, f"{hf_id}[{i}]") for i, v in enumerate(ds[source.field])]


def split_instructions(
    source: InstructionSource, n_train: int, n_eval: int, seed: int, log: Callable[[str], None] | None = None
) -> tuple[list[str], list[str]]:
    """Disjoint (train, eval) instruction lists of the requested sizes; ``log`` gets what a source reports
    (InstructionWild: each file's origin, verification and filter counts, and any file that is missing)."""
    if source.source == "organism":
        from inoc.organism import world

        try:
            return world.train_instructions(n_train, seed), world.eval_instructions(n_eval, seed)
        except ValueError as exc:
            raise InstructionError(str(exc)) from None
    if source.source == "instructionwild":
        from inoc.pipeline import instructionwild

        return instructionwild.split(source, n_train, n_eval, seed, log=log)
    unique = list(dict.fromkeys(read_source(source)))
    where = source.path or source.hf_id
    if len(unique) < n_train + n_eval:
        raise InstructionError(
            f"{where}: {len(unique)} distinct instructions, fewer than data.n_train + data.n_eval = {n_train + n_eval}"
        )
    random.Random(seed).shuffle(unique)
    return unique[:n_train], unique[n_train : n_train + n_eval]


def training_split_as_is(source: InstructionSource, n_train: int) -> list[str]:
    """``data.split: as_is``: the source already is the training split (the EM study's 5,800-row file).

    Its first ``n_train`` instructions in file order, duplicates kept — the training conversations are the
    file's rows one for one, so no row may be dropped or reordered here. Fewer rows than ``n_train`` is an
    error; more are cut (a rehearsal trains on a prefix of the real file).
    """
    if source.source == "organism":
        raise InstructionError("split as_is needs a file or dataset source; the organism has its own split")
    rows = read_source(source)
    if len(rows) < n_train:
        raise InstructionError(
            f"{source.path or source.hf_id}: {len(rows)} rows, fewer than data.n_train = {n_train} "
            "(split as_is trains on the file's rows as they are)"
        )
    return rows[:n_train]


def load_eval_set(source: InstructionSource, n: int) -> list[str]:
    """An extra eval set: its first ``n`` instructions in source order (all of them if fewer)."""
    if source.source == "organism":
        from inoc.organism import world

        return world.eval_instructions(n, 0)
    rows = read_source(source)
    if not rows:
        raise InstructionError(f"{source.path or source.hf_id}: no instructions")
    return rows[:n]
