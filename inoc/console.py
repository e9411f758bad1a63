"""What `inoc main` and `inoc backfill` print: one line per stage, live progress bars, sparse lines in logs.

Dagster-free. The progress comes from the messages the work already logs (``progress train: 30/120
steps …`` from gpu_jobs, ``organism build: train 400/2000 …``, ``judging Playful: 200/800``),
parsed by :func:`parse_progress`. On a terminal one status line redraws in place below the
printed lines; in a log (not a TTY: CI, ``make main | tee``) a bar prints a line only now and then
(:data:`SPARSE_EVERY_S`, and only in a new tenth), so logs stay short.

:func:`captured_output` sends the process's own stdout/stderr (file descriptors 1 and 2, inherited
by Dagster's step processes and the gpu_jobs) to a log file while the console keeps the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: In a log, a bar prints a line once this many seconds have passed since its last one (or its
#: start) and it has reached a new tenth: a stage shorter than this prints none, a long one at most 9.
SPARSE_EVERY_S = 30.0
BAR_WIDTH = 20

# "<label>: <done>/<total><rest>" — the first " N/M" after a label; a path ("a/b") has no space before its digits.
_PROGRESS = re.compile(r"^(?:progress )?(?P<label>\S.*?):? (?P<done>\d+)/(?P<total>\d+)(?=\s|$)(?P<rest>.*)$")
_UNIT = re.compile(r"^\s+(?P<unit>[a-z]+)\b")
_LOSS = re.compile(r"\bloss[ =](?P<loss>-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Progress:
    label: str
    done: int
    total: int
    unit: str = ""
    loss: float | None = None


def parse_progress(message: str) -> Progress | None:
    """The progress a log message reports, or None when it reports none."""
    m = _PROGRESS.match(message.strip())
    if m is None:
        return None
    done, total = int(m["done"]), int(m["total"])
    if total <= 0 or done > total:
        return None
    unit = _UNIT.match(m["rest"])
    if unit and unit["unit"] == "loss":
        unit = None
    loss = _LOSS.search(m["rest"])
    return Progress(
        m["label"].strip(), done, total, unit["unit"] if unit else "", float(loss["loss"]) if loss else None
    )


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class Bar:
    who: str  # the step it belongs to (an asset name)
    label: str
    total: int
    started: float
    done: int = 0
    unit: str = ""
    loss: float | None = None
    first: tuple[float, int] | None = None  # (time, done) of the first report: the rate is measured from there
    updated: float = 0.0
    last_line: float = 0.0
    last_tenth: int = 0

    def eta_s(self, now: float) -> float | None:
        if self.first is None or self.done <= self.first[1] or now <= self.first[0]:
            return None
        rate = (self.done - self.first[1]) / (now - self.first[0])
        return (self.total - self.done) / rate

    def render(self, now: float, graphic: bool) -> str:
        frac = self.done / self.total
        unit = f" {self.unit}" if self.unit else ""
        head = f"{self.who} · {self.label}" if self.who else self.label
        if graphic:
            filled = int(frac * BAR_WIDTH)
            text = f"{head} [{'█' * filled}{'░' * (BAR_WIDTH - filled)}] {self.done}/{self.total}{unit} {frac:4.0%}"
        else:
            text = f"{head}: {self.done}/{self.total}{unit} ({frac:.0%})"
        if self.loss is not None:
            text += f" loss {self.loss:.3f}"
        text += f" · {duration(now - self.started)}"
        eta = self.eta_s(now)
        return text + (f" · ETA {duration(eta)}" if eta is not None else "")


@dataclass
class Console:
    """Lines and progress bars on one stream; thread-safe (a run watcher feeds the bars).

    ``tty``: redraw a status line in place (default: whether ``stream`` is a terminal)."""

    stream: IO[str] = field(default_factory=lambda: sys.stdout)
    tty: bool | None = None
    prefix: str = "[inoc] "
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.tty is None:
            isatty = getattr(self.stream, "isatty", None)
            self.tty = bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"
        self._bars: dict[tuple[str, str], Bar] = {}
        self._running: dict[str, float] = {}  # steps started, for the status line before any progress
        self._status = ""  # what the status line shows now (TTY)
        self._lock = threading.RLock()

    # -- lines
    def line(self, text: str) -> None:
        with self._lock:
            self._erase()
            self.stream.write(f"{self.prefix}{text}\n")
            self._draw()
            self.stream.flush()

    # -- steps and bars
    def step_started(self, who: str) -> None:
        with self._lock:
            self._running[who] = self.clock()
            self._redraw()

    def step_finished(self, who: str) -> None:
        with self._lock:
            self._running.pop(who, None)
            for k in [k for k in self._bars if k[0] == who]:
                del self._bars[k]
            self._redraw()

    def progress(self, who: str, p: Progress) -> None:
        with self._lock:
            now = self.clock()
            bar = self._bars.get((who, p.label))
            if bar is None or p.done < bar.done or p.total != bar.total:  # a new pass restarts the bar
                bar = self._bars[(who, p.label)] = Bar(
                    who, p.label, p.total, started=self._running.get(who, now), last_line=now
                )
            if bar.first is None or p.done < bar.first[1]:
                bar.first = (now, p.done)
            bar.done, bar.unit, bar.loss, bar.updated = p.done, p.unit, p.loss, now
            if self.tty:
                self._redraw()
            elif p.done < p.total:
                tenth = 10 * p.done // p.total
                if now - bar.last_line >= SPARSE_EVERY_S and tenth > bar.last_tenth:
                    bar.last_line, bar.last_tenth = now, tenth
                    self.stream.write(f"{self.prefix}    {bar.render(now, graphic=False)}\n")
                    self.stream.flush()

    def clear(self) -> None:
        """Forget every bar and step and erase the status line (a run ended)."""
        with self._lock:
            self._bars.clear()
            self._running.clear()
            self._redraw()

    # -- the status line (TTY only)
    def _status_text(self) -> str:
        now = self.clock()
        if self._bars:
            bar = max(self._bars.values(), key=lambda b: b.updated)
            others = len({b.who for b in self._bars.values()} | set(self._running)) - 1
            text = bar.render(now, graphic=True) + (f" (+{others} running)" if others > 0 else "")
        elif self._running:
            text = "running " + ", ".join(self._running) + f" · {duration(now - min(self._running.values()))}"
        else:
            return ""
        width = shutil.get_terminal_size((100, 24)).columns - 1
        text = f"{self.prefix}  {text}"
        return text if len(text) <= width else text[: width - 1] + "…"

    def _erase(self) -> None:
        if self.tty and self._status:
            self.stream.write("\r\x1b[2K")
            self._status = ""

    def _draw(self) -> None:
        if self.tty:
            self._status = self._status_text()
            if self._status:
                self.stream.write(self._status)

    def _redraw(self) -> None:
        if not self.tty:
            return
        text = self._status_text()
        if text != self._status:
            self.stream.write("\r\x1b[2K" + text)
            self._status = text
            self.stream.flush()

    def tick(self) -> None:
        """Refresh the elapsed time and ETA of the status line (called by the watcher between events)."""
        with self._lock:
            self._redraw()


def terminal_stream() -> IO[str]:
    """A stream on this process's stdout as it is now: it keeps writing there while
    :func:`captured_output` points file descriptor 1 at a log."""
    sys.stdout.flush()
    return os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")


@contextlib.contextmanager
def captured_output(log_path: Path) -> Iterator[None]:
    """Send file descriptors 1 and 2 (this process's output and that of the step processes and jobs it
    starts, which inherit them) to ``log_path``, appended; restored on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # Python-level writers too, for when sys.stdout/sys.stderr are not on fds 1 and 2 (pytest, IDEs):
    # the loggers Dagster creates for an in-process run pick sys.stderr up as it is then.
    log = os.fdopen(os.dup(log_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout = sys.stderr = log
        yield
    finally:
        sys.stdout, sys.stderr = saved_streams
        log.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)
