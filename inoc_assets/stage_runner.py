"""The launcher of the main job's stages: one Dagster run per call, shown on the console as it goes.

While a run executes, the output of Dagster and of the work (its console logger, step processes,
gpu_jobs, progress bars of libraries) goes to one log file per command (``$INOC_HOME/logs/``); the
console shows the stage lines, live progress bars and the Dagster events at or above the chosen
``--log-level`` (default: warnings). A failed run raises :class:`MainJobError` naming the failing
asset, its partition, the error's first meaningful line, and where the full log is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from dagster import AssetKey, DagsterInstance

from inoc import settings
from inoc.console import Console, captured_output, terminal_stream
from inoc_assets.run_watch import WATCH_TAG, RunWatcher, step_asset
from inoc_assets.runner import run_assets

PID_TAG = "inoc/pid"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class MainJobError(Exception):
    pass


def parse_log_level(name: str) -> int:
    """``--log-level`` as a logging level; a clear error for anything else."""
    if name.lower() not in LOG_LEVELS:
        raise MainJobError(f"--log-level {name!r}: expected one of {', '.join(LOG_LEVELS)}")
    return logging.getLevelName(name.upper())


def first_error_line(error) -> str:
    """The first meaningful line of a step's error: its innermost cause, without Dagster's wrapper
    or a ``Failure``'s module path (a Failure names the file or field to fix itself)."""
    while error.cause is not None:
        error = error.cause
    lines = [ln.strip() for ln in error.message.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Traceback (most recent call last)", "The above exception"))]
    if not lines:
        return error.cls_name or "unknown error"
    first = lines[0]
    m = re.match(r"^(?:[\w]+\.)+(\w+): (.*)$", first)  # dagster._core.definitions.events.Failure: …
    if m:
        first = m[2] if m[1] == "Failure" else f"{m[1]}: {m[2]}"
    return first


def recover_dead_runs(instance: DagsterInstance) -> list[str]:
    """Fail the runs a killed `inoc main`/`inoc backfill` left behind, freeing their pool slots.

    A run whose process died (SIGKILL, a crash, a machine reboot) stays STARTED forever and keeps its
    concurrency slots (pool `gpu`), so every later GPU step would wait for them. Runs this CLI
    launches carry the launching process id; when that process is gone the run is dead. Runs launched
    from the UI are the daemon's to monitor.
    """
    from dagster import DagsterRunStatus, RunsFilter

    dead = []
    active = [DagsterRunStatus.STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.CANCELING]
    for run in instance.get_runs(RunsFilter(statuses=active)):
        pid = run.tags.get(PID_TAG)
        if pid is None or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process that ran it (pid {pid}) is gone; marked failed by inoc")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        dead.append(run.run_id)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_log_path() -> Path:
    return settings.inoc_home() / "logs" / f"inoc-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


class Runner:
    def __init__(
        self,
        instance: DagsterInstance,
        log_level: str = "warning",
        in_process: bool = False,
        console: Console | None = None,
        log_path: Path | None = None,
        capture: bool = True,
    ):
        """``in_process``: every run in this process (no interpreter per step): a small study's stages
        are then bound by their work, not by start-up (the rehearsal). ``capture``: send the runs' raw
        output to ``log_path`` (default ``$INOC_HOME/logs/inoc-<time>-<pid>.log``), not the terminal."""
        self.instance, self.in_process, self.capture = instance, in_process, capture
        self.level = parse_log_level(log_level)
        self.console = console or Console(terminal_stream())
        self.log_path = log_path or default_log_path()
        self.n_runs = 0
        self.n_steps = 0
        dead = recover_dead_runs(instance)
        if dead:
            self.say(f"marked {len(dead)} run(s) of a killed earlier job as failed and freed their GPU slots")

    def say(self, text: str) -> None:
        self.console.line(text)

    def __call__(self, selection: Sequence[AssetKey], what: str, **kwargs) -> None:
        started = time.time()
        if self.in_process:
            kwargs["in_process"] = True
        watcher = RunWatcher(self.instance, self.console, self.level, poll_s=0.5 if self.console.tty else 1.0)
        kwargs["tags"] = {**kwargs.get("tags", {}), PID_TAG: str(os.getpid()), WATCH_TAG: watcher.token}
        # the whole log keeps every event; a terminal without capture shows the chosen level
        raw_level = "DEBUG" if self.capture else logging.getLevelName(self.level)
        capture = captured_output(self.log_path) if self.capture else contextlib.nullcontext()
        with watcher, capture:
            result = run_assets(self.instance, list(selection), log_level=raw_level, **kwargs)
        self.n_runs += 1
        self.n_steps += sum(1 for e in result.all_events if e.is_step_success)
        if not result.success:
            raise MainJobError(self._failure(result, what, kwargs))
        self.say(f"  {what}: done in {time.time() - started:.0f} s")

    def _failure(self, result, what: str, kwargs: dict) -> str:
        failures = [e for e in result.all_events if e.is_step_failure]
        first = next((e for e in failures if e.step_failure_data and e.step_failure_data.error), None)
        if kwargs.get("partition_key"):
            part = f" [partition {kwargs['partition_key']}]"
        elif kwargs.get("partition_range"):
            part = f" [partitions {kwargs['partition_range'][0]} … {kwargs['partition_range'][1]}]"
        else:
            part = ""
        if first is not None:
            asset = first.step_key.replace("__", "/")  # an asset's op is named by its key's parts joined by __
            why = first_error_line(first.step_failure_data.error)
            why = why[len(asset) :].lstrip(" :") if why.startswith(asset) else why  # a Failure that names it
            head = f"{what} failed: {asset}{part}: {why}"
            others = sorted({step_asset(e.step_key) for e in failures} - {step_asset(first.step_key)})
            if others:
                head += f" (also failed: {', '.join(others)})"
        else:
            head = f"{what} failed{part} before any step ran"
        full_log = f"less +G {self.log_path}" if self.capture else "the output above"
        return f"{head}\n  full log: {full_log}\n  Dagster run {result.run_id}: `inoc ui` → Runs → {result.run_id[:8]}"
