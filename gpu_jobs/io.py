"""Files: atomic writes, the completion marker, resumable parts, and the checks that read them.

Rules that make a killed job harmless:

* Every output file is written to a temporary name in the same folder, fsynced, then renamed
  (``os.replace`` is atomic on one filesystem): a file under its final name is always whole.
* A job is finished only when ``_COMPLETE.json`` exists, names the spec hash, and lists every output
  with its size and sha256. The marker is written last and removed first when a job starts over, so
  outputs without a matching marker are never read as complete (``read_complete``).
* Long generate/score jobs write resumable parts (``.parts/<hash>/part-NNNNN.*``), each atomically;
  a rerun with the same spec skips the parts that exist, then assembles the final file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "_COMPLETE.json"
PARTS_DIR = ".parts"
MARKER_FORMAT = 1


# ------------------------------------------------------------------------------ atomic writes
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class atomic_path:
    """``with atomic_path(final) as tmp:`` write ``tmp``; on success it is renamed to ``final``."""

    def __init__(self, final: str | Path):
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".tmp-{self.final.name}-", dir=self.final.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_jsonl_atomic(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_parquet_atomic(path: str | Path, table: Any) -> int:
    """Write a ``pyarrow.Table`` (or a pandas DataFrame) atomically; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


class atomic_dir:
    """``with atomic_dir(final) as tmp:`` fill folder ``tmp``; on success it replaces ``final``."""

    def __init__(self, final: str | Path):
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.final.name}-", dir=self.final.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for p in self.tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if self.final.exists():  # a folder cannot be renamed onto a non-empty one: move the old one aside
            trash = self.final.parent / f".old-{self.final.name}-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(self.final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)


# ------------------------------------------------------------------------------------- reading
def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line_number, value)`` for each non-blank line; raises ValueError naming the bad line."""
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {i}: not valid JSON ({err.msg})") from None


# ------------------------------------------------------------------------------------- marker
def sha256_file(path: str | Path) -> str:
    from gpu_jobs.spec import file_sha256

    return file_sha256(path)


def describe_outputs(out_dir: Path, relpaths: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{relpath: {bytes, sha256}}`` for the files (folders are expanded to their files)."""
    files: dict[str, dict[str, Any]] = {}
    for rel in relpaths:
        p = out_dir / rel
        targets = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in targets:
            files[str(q.relative_to(out_dir))] = {"bytes": q.stat().st_size, "sha256": sha256_file(q)}
    return files


@dataclass
class Marker:
    job: str
    spec_hash: str
    outputs: dict[str, dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    finished_at: float = 0.0
    format: int = MARKER_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "spec_hash": self.spec_hash,
            "outputs": self.outputs,
            "metadata": self.metadata,
            "spec": self.spec,
            "finished_at": self.finished_at,
            "format": self.format,
        }


def write_marker(out_dir: Path, marker: Marker) -> None:
    marker.finished_at = marker.finished_at or time.time()
    write_json_atomic(out_dir / MARKER, marker.to_json())


def remove_marker(out_dir: Path) -> None:
    (out_dir / MARKER).unlink(missing_ok=True)
    _fsync_dir(out_dir)


def read_marker(out_dir: str | Path) -> Marker | None:
    try:
        d = json.loads((Path(out_dir) / MARKER).read_text())
        return Marker(
            job=d["job"],
            spec_hash=d["spec_hash"],
            outputs=d["outputs"],
            metadata=d.get("metadata", {}),
            spec=d.get("spec", {}),
            finished_at=d.get("finished_at", 0.0),
            format=d.get("format", 0),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_outputs(out_dir: str | Path, marker: Marker, *, deep: bool = False) -> list[str]:
    """Problems with the files a marker lists (missing, size differs, sha256 differs when ``deep``)."""
    out_dir = Path(out_dir)
    problems = []
    if marker.format != MARKER_FORMAT:
        problems.append(f"{MARKER}: format {marker.format}, expected {MARKER_FORMAT}")
    for rel, info in marker.outputs.items():
        p = out_dir / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif p.stat().st_size != info["bytes"]:
            problems.append(f"{rel}: {p.stat().st_size} bytes, the marker says {info['bytes']}")
        elif deep and sha256_file(p) != info["sha256"]:
            problems.append(f"{rel}: sha256 differs from the marker's")
    return problems


def read_complete(out_dir: str | Path, spec_hash: str | None = None, *, deep: bool = False) -> Marker | None:
    """The marker if the folder holds finished outputs (of ``spec_hash`` when given), else None."""
    marker = read_marker(out_dir)
    if marker is None or (spec_hash is not None and marker.spec_hash != spec_hash):
        return None
    return None if check_outputs(out_dir, marker, deep=deep) else marker


def validate_outputs(out_dir: str | Path, job: str | None = None, spec_hash: str | None = None) -> list[str]:
    """Everything wrong with a finished job's folder: marker, files (deep), and that each table reads
    back with the row count the marker recorded. An empty list means the outputs are usable."""
    out_dir = Path(out_dir)
    marker = read_marker(out_dir)
    if marker is None:
        return [f"{MARKER}: missing or unreadable in {out_dir} (the job did not finish)"]
    problems = []
    if job is not None and marker.job != job:
        problems.append(f"{MARKER}: written by job {marker.job!r}, expected {job!r}")
    if spec_hash is not None and marker.spec_hash != spec_hash:
        problems.append(f"{MARKER}: spec hash {marker.spec_hash[:12]}… is not this spec's {spec_hash[:12]}…")
    problems += check_outputs(out_dir, marker, deep=True)
    if problems:
        return problems
    rows = marker.metadata.get("rows", {})
    for rel in marker.outputs:
        p = out_dir / rel
        try:
            if rel.endswith(".parquet"):
                import pyarrow.parquet as pq

                n = pq.read_metadata(p).num_rows
            elif rel.endswith(".jsonl"):
                n = sum(1 for _ in read_jsonl(p))
            else:
                continue
        except Exception as err:  # any reader error means a malformed file
            problems.append(f"{rel}: unreadable ({type(err).__name__}: {err})")
            continue
        if rel in rows and rows[rel] != n:
            problems.append(f"{rel}: {n} rows, the marker says {rows[rel]}")
    for rel in marker.metadata.get("adapters", []):
        if not (out_dir / rel / "adapter_config.json").is_file():
            problems.append(f"{rel}: no adapter_config.json")
    return problems


# ---------------------------------------------------------------------------------------- lock
LOCK = ".lock"


class OutputBusy(RuntimeError):
    pass


class exclusive:
    """Hold ``<out>/.lock`` (flock) while a job writes there: two jobs never share an output folder.
    The lock dies with its process, so a killed job never leaves the folder locked."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK

    def __enter__(self) -> "exclusive":
        import fcntl

        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise OutputBusy(f"another job is writing to {self.path.parent}") from None
        return self

    def __exit__(self, *exc) -> None:
        import fcntl

        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


# -------------------------------------------------------------------------------------- parts
class Parts:
    """Resumable parts of one spec's output: ``.parts/<hash16>/part-NNNNN<suffix>``."""

    def __init__(self, out_dir: Path, spec_hash: str, suffix: str):
        self.root = out_dir / PARTS_DIR
        self.dir = self.root / spec_hash[:16]
        self.suffix = suffix

    def prepare(self) -> None:
        """Create this spec's parts folder; remove other specs' leftovers."""
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p != self.dir:
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, i: int) -> Path:
        return self.dir / f"part-{i:05d}{self.suffix}"

    def done(self, i: int) -> bool:
        return self.path(i).is_file()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
