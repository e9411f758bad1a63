"""The artifact store: files under one root that may be a local folder or any fsspec URL.

Local writes are atomic (temp file in the same folder + os.replace), so a killed process leaves
either the previous file or the complete new one, never a half-written artifact. On object stores
(s3://, gs://) a single PUT is atomic by itself. GPU clusters and the orchestrator share the store
when its root is a bucket URL.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd


class ArtifactStore:
    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root)
        self.is_local = isinstance(self.fs, fsspec.implementations.local.LocalFileSystem)

    def url(self, *parts: str) -> str:
        """Full URL (or local path) of an artifact; parts are joined with '/'."""
        for p in parts:
            if not p or p.startswith("/") or ".." in p.split("/"):
                raise ValueError(f"artifact path part {p!r} must be a non-empty relative name")
        return "/".join([self.root, *parts])

    def local_path(self, *parts: str) -> Path:
        if not self.is_local:
            raise ValueError(f"artifact store {self.root!r} is not local")
        return Path(self.url(*parts))

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.url(*parts))

    def write_bytes(self, data: bytes, *parts: str) -> str:
        target = self.url(*parts)
        if self.is_local:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(target, data)
        return target

    def read_bytes(self, *parts: str) -> bytes:
        return self.fs.cat_file(self.url(*parts))

    def write_json(self, obj: Any, *parts: str) -> str:
        return self.write_bytes(json.dumps(obj, indent=2, sort_keys=True, allow_nan=True).encode(), *parts)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def write_parquet(self, frame: pd.DataFrame, *parts: str) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.write_bytes(buf.getvalue(), *parts)

    def read_parquet(self, *parts: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.read_bytes(*parts)))
