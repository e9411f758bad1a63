"""Local records of the cloud backend, under ``$INOC_HOME/cloud/``:

* ``clusters.json`` — every cluster this machine launched, and which run launched it. Cluster names
  come from here (``inoc-<experiment>-<n>``, at most ``compute.max_clusters`` per experiment), and a
  failing or cancelled run tears down only the clusters *it* launched — never another run's.
* ``throughput.jsonl`` — measured throughput of finished cloud jobs (job, GPU, model size, tokens/s),
  which ``inoc plan`` prefers to its configured assumptions.

Writers hold an flock on ``.lock``; the files are small JSON, rewritten atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inoc import settings


def cloud_dir() -> Path:
    return settings.inoc_home() / "cloud"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


class ClusterLedger:
    """Which clusters exist by our hand and who launched them."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or cloud_dir()
        self.path = self.directory / "clusters.json"

    def all(self) -> dict[str, dict[str, Any]]:
        return read_json(self.path)

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read-modify-write under the lock (hold it only for decisions, never for a launch)."""
        with locked(self.directory):
            data = read_json(self.path)
            yield data
            write_json(self.path, data)

    def record(self, cluster: str, **fields: Any) -> None:
        with self.edit() as data:
            data.setdefault(cluster, {}).update(fields, updated_at=time.time())

    def forget(self, cluster: str) -> None:
        with self.edit() as data:
            data.pop(cluster, None)


def record_throughput(row: dict[str, Any], directory: Path | None = None) -> None:
    directory = directory or cloud_dir()
    with locked(directory):
        with open(directory / "throughput.jsonl", "a") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")


def measured_throughputs(directory: Path | None = None) -> list[dict[str, Any]]:
    path = (directory or cloud_dir()) / "throughput.jsonl"
    rows = []
    try:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    except OSError:
        pass
    return rows
