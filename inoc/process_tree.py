"""Run a command with all its descendants as one unit that stops on SIGINT, SIGTERM or SIGHUP.

`inoc ui` needs this because `dagster dev` alone does not stop reliably: started as a shell's
background job it inherits SIGINT *ignored* and maps SIGTERM onto that same disposition, so it ignores
both; and when it does shut down it waits up to 60 s for each of its services. So the command runs
in a session of its own with SIGINT restored; a signal to us becomes one SIGINT to its process group
(what Ctrl-C in a terminal does), and whatever is still alive after a grace period — the group, and
every descendant found through /proc, including ones that left the group — is SIGKILLed. On Linux we
are also a child subreaper (orphans of the tree stay ours, so they stay findable and get reaped), and
the command gets SIGTERM should we die without a chance to clean up.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

#: Seconds between the polite SIGINT and SIGKILL. `dagster dev` with its webserver, daemon and code
#: server normally exits in 2–4 s; the issue's acceptance bound for the whole stop is 10 s.
GRACE_S = 6.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_PROC = Path("/proc")

Proc = tuple[int, str]  # pid and its start time (field 22 of /proc/<pid>/stat): a pid is reused, the pair is not


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # best effort: the process group and the /proc walk still apply


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, or None (gone, a zombie, or no /proc)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces and parens
    if fields[0] == "Z":
        return None
    return int(fields[1]), fields[19]


def descendants(root: int) -> set[Proc]:
    """Every live process below `root` (children, their children, ...), read from /proc."""
    children: dict[int, list[Proc]] = {}
    for entry in _PROC.glob("[0-9]*") if _PROC.is_dir() else ():
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: set[Proc] = set()
    queue = [root]
    while queue:
        for proc in children.get(queue.pop(), []):
            if proc not in found:
                found.add(proc)
                queue.append(proc[0])
    return found


def _alive(proc: Proc) -> bool:
    stat = _stat(proc[0])
    return stat is not None and stat[1] == proc[1]


def _child_setup() -> None:
    # A background job's ignored SIGINT would be inherited (and Python would then leave it ignored).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Tree:
    """A running command in its own session, and the processes it started."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None):
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        self.others = descendants(os.getpid())  # processes of ours that are not this tree's
        self.proc = subprocess.Popen(list(cmd), env=env, start_new_session=True, preexec_fn=_child_setup)
        self.seen: set[Proc] = set()

    def members(self) -> set[Proc]:
        """Live processes of the tree: the command's descendants, and ours (orphans reparented to us)."""
        self.seen |= descendants(self.proc.pid) | (descendants(os.getpid()) - self.others)
        self.seen = {p for p in self.seen if _alive(p)}
        return self.seen

    def _reap(self) -> None:
        # As subreaper we inherit orphans; wait for them by pid (never -1, which could steal the Popen's status).
        for pid, _ in descendants(os.getpid()) - self.others:
            if pid != self.proc.pid:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # start_new_session: its pid is the group's id
        except (ProcessLookupError, PermissionError):
            pass

    def stopped(self) -> bool:
        self._reap()
        return self.proc.poll() is not None and not self.members()

    def kill(self) -> int:
        """SIGKILL everything left; the number of processes that were still alive."""
        left = self.members()
        if self.proc.poll() is None and all(pid != self.proc.pid for pid, _ in left):
            left.add((self.proc.pid, ""))
        self._signal_group(signal.SIGKILL)
        for pid, start in left:
            if not start or _alive((pid, start)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        return len(left)


def run_until_signal(cmd: Sequence[str], env: dict[str, str] | None = None, grace: float = GRACE_S) -> int:
    """Run `cmd` until it exits or we get a stop signal; then stop its whole tree within `grace` + ~1 s.

    Returns the command's exit status, or 0 when it was stopped on request. A second signal during
    the grace period kills at once (an impatient second Ctrl-C).
    """
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in STOP_SIGNALS}
    try:
        tree = Tree(cmd, env)
        while tree.proc.poll() is None and not received:
            tree.members()  # keep track of the tree while it runs: a service may outlive its parent
            time.sleep(0.5)
        if not received:
            status = tree.proc.returncode
            if not tree.stopped():  # it exited but left processes behind
                tree.kill()
            return status
        tree.members()
        tree._signal_group(signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and len(received) < 2 and not tree.stopped():
            time.sleep(0.1)
        if not tree.stopped():
            n = tree.kill()
            print(
                f"inoc: killed {n} process(es) still running {grace:.0f} s after the stop signal",
                file=sys.stderr,
                flush=True,
            )
            end = time.monotonic() + 3
            while time.monotonic() < end and not tree.stopped():
                time.sleep(0.05)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_job(
    cmd: Sequence[str], env: dict[str, str], *, cwd: str | Path, new_session: bool = False
) -> subprocess.Popen[str]:
    """A gpu_job process whose stdout and stderr arrive as one text stream, a line at a time."""
    return subprocess.Popen(
        list(cmd),
        env=env,
        cwd=str(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=new_session,
    )


def echo_output(proc: subprocess.Popen[str], out: TextIO, tail: deque[str]) -> None:
    """Copy the job's output to ``out`` as it comes, keeping its last lines in ``tail`` for an error message."""
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line)
        out.flush()
        tail.append(line.rstrip("\n"))
