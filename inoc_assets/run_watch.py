"""Follow a Dagster run through its event log while it executes, and feed the console.

``execute_job`` blocks and its step processes write their events to the instance's event log, so a
thread polls that log: step starts and ends, the progress the work logs (see ``inoc.console``), and
any event at or above the chosen log level. It finds its run by a tag the launcher sets
(:data:`WATCH_TAG`); execute_job picks the run id itself.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from inoc.console import Console, parse_progress

WATCH_TAG = "inoc/watch"
_STEP_END = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.STEP_UP_FOR_RETRY,
}
_NOT_STARTED = {DagsterRunStatus.NOT_STARTED, DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING}
#: Summarised by the launcher when the run fails: printing them as they come would say it twice.
_SUMMARISED = {DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}


def step_asset(step_key: str | None) -> str:
    """``toy__run_scores`` → ``run_scores``: an asset step's op is its key's parts joined by ``__``."""
    return (step_key or "").split("__")[-1]


@dataclass
class Failure:
    step_key: str
    error: object  # SerializableErrorInfo


class RunWatcher:
    """``with RunWatcher(instance, console, level) as w: execute_job(..., tags={WATCH_TAG: w.token})``."""

    def __init__(self, instance: DagsterInstance, console: Console, level: int = logging.WARNING, poll_s: float = 0.5):
        self.instance, self.console, self.level, self.poll_s = instance, console, level, poll_s
        self.token = uuid.uuid4().hex[:16]
        self.run_id: str | None = None
        self.failures: list[Failure] = []
        self._cursor: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="inoc-run-watch", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> "RunWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.poll()  # the events written after the last poll
        except Exception as exc:  # noqa: BLE001 — as in the loop: the run's own result decides
            self.error = exc
        finally:
            self.console.clear()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.poll_s):
                self.poll()
                self.console.tick()
        except Exception as exc:  # noqa: BLE001 — a display problem must not fail the run it watches
            self.error = exc

    def poll(self) -> None:
        if self.run_id is None:
            records = self.instance.get_run_records(RunsFilter(tags={WATCH_TAG: self.token}), limit=1)
            # Not before the run has started: SQLite keeps a run's events in a file of its own that its
            # first write creates, and a read racing that creation leaves it without tables.
            if not records or records[0].dagster_run.status in _NOT_STARTED:
                return
            self.run_id = records[0].dagster_run.run_id
        while True:
            conn = self.instance.get_records_for_run(self.run_id, cursor=self._cursor, limit=500)
            for record in conn.records:
                self._handle(record.event_log_entry)
            self._cursor = conn.cursor
            if not conn.has_more:
                return

    def _handle(self, entry) -> None:
        event = entry.dagster_event
        who = step_asset(entry.step_key)
        if event is None:  # a log message of the work: progress, or shown by its level
            p = parse_progress(entry.user_message) if entry.step_key else None
            if p is not None:
                self.console.progress(who, p)
                return
            if entry.level >= self.level:
                self._show(entry, who, entry.user_message)
            return
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.console.step_started(who)
        elif kind in _STEP_END:
            self.console.step_finished(who)
            if kind == DagsterEventType.STEP_FAILURE:
                data = event.step_failure_data
                self.failures.append(Failure(entry.step_key, data.error if data else None))
        if entry.level >= self.level and kind not in _SUMMARISED:
            self._show(entry, who, f"{kind.value}: {event.message or entry.user_message}")

    def _show(self, entry, who: str, message: str) -> None:
        level = logging.getLevelName(entry.level).lower()
        first = message.strip().splitlines()[0] if message.strip() else ""
        self.console.line(f"    {level}: {who + ': ' if who else ''}{first}")
