"""Rephrasing pools on disk: read (with file:line errors), validate, write atomically.

Formats (docs/methods.md#rephrasings):

* ``<key>.jsonl`` — one JSON object per line, ``{"rephrasing": "<text>"}``; the file order is the pool
  order (the index samplers use). A final newline is optional; any other empty line is an error.
* ``*.json`` — a JSON array of strings (``weak_inoc_rephrasings.json``, ``strong_inoc_rephrasings.json``).

A pool is valid when every entry is a non-empty string (not only whitespace), no entry repeats another
exactly, and — when the original prompt is given and not allowed — no entry equals it (compared after
collapsing whitespace and case-folding). Errors name the file and the line: ``path:12: …``; in a JSON
array also the element, ``path:12: $[10]: rephrasing is int, expected a string``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path


class PoolFormatError(ValueError):
    """A pool file or list that breaks the format; the message starts with ``file:line:``."""


def normalize(text: str) -> str:
    """Comparison form of a rephrasing: whitespace collapsed, case-folded."""
    return " ".join(text.split()).casefold()


def _check_entry(
    text: object, where: str, seen: dict[str, str], original_norm: str | None, allow_duplicates: bool
) -> str:
    if not isinstance(text, str):
        raise PoolFormatError(f"{where}: rephrasing is {type(text).__name__}, expected a string")
    if not text.strip():
        raise PoolFormatError(f"{where}: empty rephrasing")
    if original_norm is not None and normalize(text) == original_norm:
        raise PoolFormatError(f"{where}: rephrasing equals the original prompt {text!r}")
    if not allow_duplicates:
        if text in seen:
            raise PoolFormatError(f"{where}: duplicate rephrasing {text!r} (first at {seen[text]})")
        seen[text] = where
    return text


def _read_jsonl(path: Path, original_norm: str | None, allow_duplicates: bool) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PoolFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_pool_jsonl(raw, str(path), original_norm=original_norm, allow_duplicates=allow_duplicates)


def parse_pool_jsonl(
    raw: bytes, source: str, *, original_norm: str | None = None, allow_duplicates: bool = False
) -> list[str]:
    """A JSONL pool from its bytes (a file's, or an artifact store's); errors start with ``source:line:``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PoolFormatError(f"{source}:{line}: not valid UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    pool: list[str] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        where = f"{source}:{number}"
        line = line.rstrip("\r")
        if not line.strip():
            raise PoolFormatError(f'{where}: empty line (expected {{"rephrasing": "..."}})')
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PoolFormatError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict) or "rephrasing" not in obj:
            got = type(obj).__name__ if not isinstance(obj, dict) else f"keys {sorted(obj)}"
            raise PoolFormatError(f'{where}: expected an object {{"rephrasing": "..."}}, got {got}')
        pool.append(_check_entry(obj["rephrasing"], where, seen, original_norm, allow_duplicates))
    if not pool:
        raise PoolFormatError(f"{source}: empty pool (no lines)")
    return pool


def pool_jsonl(pool: Sequence[str], *, ensure_ascii: bool = False) -> bytes:
    """The JSONL bytes of a pool, one ``{"rephrasing": …}`` per line."""
    return "".join(json.dumps({"rephrasing": t}, ensure_ascii=ensure_ascii) + "\n" for t in pool).encode()


def _read_json_array(path: Path, original_norm: str | None, allow_duplicates: bool) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PoolFormatError(f"{path}: not valid UTF-8") from None
    except OSError as exc:
        raise PoolFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    decoder = json.JSONDecoder()

    def line_of(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    pos = skip_ws(0)
    if pos >= len(text) or text[pos] != "[":
        raise PoolFormatError(f"{path}:{line_of(pos)}: $: expected a JSON array of strings")
    pos = skip_ws(pos + 1)
    pool: list[str] = []
    seen: dict[str, str] = {}
    if pos < len(text) and text[pos] == "]":
        raise PoolFormatError(f"{path}:{line_of(pos)}: $: empty pool (an empty array)")
    while True:
        element = f"$[{len(pool)}]"
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise PoolFormatError(
                f"{path}:{exc.lineno}: {element}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        pool.append(_check_entry(value, f"{path}:{line_of(pos)}: {element}", seen, original_norm, allow_duplicates))
        pos = skip_ws(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip_ws(pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            break
        raise PoolFormatError(f"{path}:{line_of(pos)}: {element}: expected ',' or ']' after the element")
    if skip_ws(pos + 1) != len(text):
        raise PoolFormatError(f"{path}:{line_of(skip_ws(pos + 1))}: unexpected text after the array")
    return pool


def read_pool(
    path: str | Path,
    *,
    original: str | None = None,
    allow_original: bool = False,
    allow_duplicates: bool = False,
) -> list[str]:
    """A pool from a ``.jsonl`` or ``.json`` file, in file order; ``PoolFormatError`` names file:line."""
    path = Path(path)
    original_norm = normalize(original) if original is not None and not allow_original else None
    if path.suffix == ".jsonl":
        return _read_jsonl(path, original_norm, allow_duplicates)
    if path.suffix == ".json":
        return _read_json_array(path, original_norm, allow_duplicates)
    raise PoolFormatError(f"{path}: unknown pool format (expected .jsonl or .json)")


def read_pools(directory: str | Path, keys: Iterable[str] | None = None) -> dict[str, list[str]]:
    """``{key: pool}`` from a folder of ``<key>.jsonl`` / ``<key>.json`` files (all of them, or the keys named)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"rephrasing pool folder {directory} does not exist")
    if keys is None:
        keys = sorted({p.stem for suffix in POOL_SUFFIXES for p in directory.glob(f"*{suffix}")})
    paths: dict[str, Path] = {}
    missing: list[str] = []
    for key in keys:
        try:
            paths[key] = find_pool_file(directory, key)
        except FileNotFoundError:
            missing.append(key)
    if missing:
        raise FileNotFoundError(f"{directory}: no pool file for {', '.join(missing)}")
    return {key: read_pool(path) for key, path in paths.items()}


POOL_SUFFIXES = (".jsonl", ".json")


def find_pool_file(folder: str | Path, key: str, *, close: bool = False, named: str | Path | None = None) -> Path:
    """The pool file of prompt ``key`` in ``folder``: ``named`` (relative to the folder unless absolute)
    when given, else ``<key>.jsonl`` or ``<key>.json`` (a JSON array), ``<key>_close.*`` for a close pool.

    Raises FileNotFoundError naming what was looked for, or PoolFormatError when both forms exist (which
    one is the pool would be a guess).
    """
    folder = Path(folder)
    if named is not None:
        path = folder / named
        if path.suffix not in POOL_SUFFIXES:
            raise PoolFormatError(f"{path}: unknown pool format (expected .jsonl or .json)")
        if not path.is_file():
            raise FileNotFoundError(f"no pool file {path} for prompt {key!r}")
        return path
    stem = f"{key}_close" if close else key
    found = [folder / f"{stem}{suffix}" for suffix in POOL_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise PoolFormatError(f"{folder}: both {found[0].name} and {found[1].name} exist for prompt {key!r}; keep one")
    if not found:
        raise FileNotFoundError(
            f"no {'close' if close else 'diverse'} pool file {stem}.jsonl or {stem}.json in {folder} for prompt {key!r}"
        )
    return found[0]


def reference_pool_dir() -> Path | None:
    """The original study's pools (``$INOC_SHARED_DIR/reference/rephrasings``), or None when absent."""
    from inoc.settings import shared_dir

    shared = shared_dir()
    if shared is None:
        return None
    folder = shared / "reference" / "rephrasings"
    return folder if folder.is_dir() else None


def validate_pool(
    pool: Sequence[str], *, original: str | None = None, allow_original: bool = False, name: str = "pool"
) -> list[str]:
    """Check a pool held in memory (entries numbered from 1 in errors); returns it as a list."""
    original_norm = normalize(original) if original is not None and not allow_original else None
    seen: dict[str, str] = {}
    return [_check_entry(text, f"{name}:{i}", seen, original_norm, False) for i, text in enumerate(pool, 1)]


def write_pool(
    path: str | Path, pool: Sequence[str], *, original: str | None = None, allow_original: bool = False
) -> Path:
    """Write a pool as JSONL atomically: a temp file in the same folder, fsync, ``os.replace``.

    A reader sees the old file or the complete new one, never a partial one, even if the writer dies.
    """
    path = Path(path)
    entries = validate_pool(pool, original=original, allow_original=allow_original, name=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(pool_jsonl(entries, ensure_ascii=True).decode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path
