"""Logs, progress and metadata: through dagster-pipes when Dagster launched the job, printed otherwise.

Only ``dagster-pipes`` (no Dagster) is imported, and only when the Pipes environment variables are
set. Errors are always printed to stderr as well, so whoever captures the process output (the local
backend keeps its last lines for the failure message) sees them even if the Pipes channel is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error", "critical")


def under_pipes() -> bool:
    from_env = os.environ.get("DAGSTER_PIPES_CONTEXT") and os.environ.get("DAGSTER_PIPES_MESSAGES")
    return bool(from_env)


class Reporter:
    """``with Reporter("score") as rep: rep.log(...); rep.progress(...); rep.metadata({...})``."""

    def __init__(self, job: str, *, progress_every_s: float = 5.0, stream=None):
        self.job = job
        self.progress_every_s = progress_every_s
        self._stream = stream
        self._pipes = None
        self._stack = contextlib.ExitStack()
        self._last_progress: dict[str, float] = {}
        self._t0 = time.monotonic()

    # -- lifecycle
    def __enter__(self) -> "Reporter":
        if under_pipes():
            from dagster_pipes import open_dagster_pipes

            self._pipes = self._stack.enter_context(open_dagster_pipes())
        return self

    def __exit__(self, *exc) -> bool:
        return bool(self._stack.__exit__(*exc))

    @property
    def pipes(self) -> bool:
        return self._pipes is not None

    # -- output
    def _print(self, line: str) -> None:
        stream = self._stream or sys.stderr
        print(line, file=stream, flush=True)

    def log(self, message: str, level: str = "info") -> None:
        level = level if level in LEVELS else "info"
        if self._pipes is not None:
            getattr(self._pipes.log, level)(message)
            if level in ("error", "critical"):
                self._print(f"[gpu_jobs.{self.job}] {level.upper()} {message}")
        else:
            self._print(f"[gpu_jobs.{self.job}] {level.upper():7s} {message}")

    def error(self, message: str) -> None:
        self.log(message, "error")

    def progress(self, what: str, done: int, total: int, *, unit: str = "", extra: str = "") -> None:
        """A throttled progress line: at most one per ``progress_every_s`` per ``what``, plus the last."""
        now = time.monotonic()
        last = self._last_progress.get(what)
        if done < total and last is not None and now - last < self.progress_every_s:
            return
        self._last_progress[what] = now
        elapsed = now - self._t0
        pct = 100.0 * done / total if total else 100.0
        msg = f"progress {what}: {done}/{total} {unit}({pct:.0f}%) {elapsed:.1f}s".replace("  ", " ")
        if extra:
            msg += f" {extra}"
        self.log(msg)

    def metadata(self, metadata: dict[str, Any], *, data_version: str | None = None) -> None:
        """Attach the job's figures to the materialization (or print them). Never raises: the
        outputs are complete by now, a reporting problem must not turn them into a failure."""
        clean = {k: _jsonable(v) for k, v in metadata.items()}
        if self._pipes is None:
            import json

            self._print(f"[gpu_jobs.{self.job}] METADATA {json.dumps(clean, sort_keys=True)}")
            return
        try:
            single_asset = self._pipes.is_asset_step and len(self._pipes.asset_keys or []) == 1
            if single_asset:
                self._pipes.report_asset_materialization(metadata=_pipes_metadata(clean), data_version=data_version)
            else:  # an op or a multi-asset: the launcher attaches them itself
                self._pipes.report_custom_message({"gpu_jobs_metadata": clean, "data_version": data_version})
        except Exception as err:  # noqa: BLE001
            self.log(f"could not report metadata through Pipes: {type(err).__name__}: {err}", "warning")


def _pipes_metadata(clean: dict[str, Any]) -> dict[str, Any]:
    """Pipes reads a dict value as ``{raw_value, type}``: containers go in as typed JSON."""
    return {k: {"raw_value": v, "type": "json"} if isinstance(v, (dict, list)) else v for k, v in clean.items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):  # numpy / torch scalars
        return v.item()
    return str(v)
