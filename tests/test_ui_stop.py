"""`inoc ui` stops with every process it started (issue 16, item 6).

The real thing first: `inoc ui` (dagster dev, webserver, daemon, code server) started as a shell's
background job would be — SIGINT ignored, a session of its own — is sent SIGTERM (or SIGINT) once it
serves, and it and every descendant seen while it ran must be gone within 10 s. Then the supervisor
alone (`inoc.process_tree`), on a stubborn tree: processes that ignore SIGINT and SIGTERM, one that
left the process group, a grandchild; and the command's death signal when the supervisor is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
STOP_BOUND_S = 10.0  # the acceptance bound


def _tree(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of `root` and every live descendant, read from /proc (independently of the code under test)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, queue = set(), [root]
    while queue:
        for proc in children.get(queue.pop(), []):
            if proc not in found:
                found.add(proc)
                queue.append(proc[0])
    return found


def _alive(proc: tuple[int, str]) -> bool:
    try:
        text = (Path("/proc") / str(proc[0]) / "stat").read_text()
    except OSError:
        return False
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0] != "Z" and fields[19] == proc[1]


def _wait_gone(procs: set[tuple[int, str]], server: subprocess.Popen, bound: float) -> tuple[float, set]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < bound:
        server.poll()
        left = {p for p in procs if _alive(p)}
        if not left and server.returncode is not None:
            return time.monotonic() - t0, set()
        time.sleep(0.1)
    return time.monotonic() - t0, {p for p in procs if _alive(p)}


def _kill_leftovers(procs: set[tuple[int, str]]) -> None:
    for pid, start in procs:
        if _alive((pid, start)):
            os.kill(pid, signal.SIGKILL)


def _background() -> None:
    """What a non-interactive shell does to `cmd &`: SIGINT (and SIGQUIT) ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["SIGTERM to the background job", "SIGINT to the background job"])
def test_inoc_ui_in_the_background_stops_with_all_its_children(tmp_path, how):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    shutil.copy(REPO / "experiments" / "toy.yaml", experiments / "toy.yaml")  # one light study: a quick code location
    home = tmp_path / "inoc_home"
    env = {k: v for k, v in os.environ.items() if k not in ("INOC_ARTIFACT_ROOT", "INOC_EXPERIMENTS")}
    env.update(
        INOC_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        INOC_EXPERIMENTS_DIR=str(experiments),
        PYTHONUNBUFFERED="1",
    )
    port, log = _free_port(), tmp_path / "ui.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "inoc.cli", "ui", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_background,
        )
    seen: set[tuple[int, str]] = set()
    try:
        deadline = time.monotonic() + 180
        while True:  # serving, with the code location loaded (so its code server is part of the tree)
            assert server.poll() is None, f"inoc ui exited with {server.returncode}:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"inoc ui did not serve within 180 s:\n{log.read_text()[-4000:]}"
            try:
                r = requests.post(
                    f"http://127.0.0.1:{port}/graphql",
                    timeout=5,
                    json={"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"},
                )
                entries = r.json()["data"]["workspaceOrError"]["locationEntries"] if r.ok else []
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    break
            except (requests.ConnectionError, requests.Timeout, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.5)
        time.sleep(2)  # let the daemon start its threads and sensors
        seen = _tree(server.pid) | {(server.pid, _tree_stat(server.pid))}
        commands = [
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            for pid, start in seen
            if _alive((pid, start))
        ]
        assert any("dagster_webserver" in c for c in commands) and any("dagster._daemon" in c for c in commands), (
            commands
        )
        assert len(seen) >= 4, commands  # inoc ui, dagster dev, webserver, daemon (and the code server)

        server.send_signal(signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT)
        took, left = _wait_gone(seen, server, STOP_BOUND_S)
        assert not left, (
            f"{len(left)} process(es) still alive {took:.1f} s after {how}: {left}\n{log.read_text()[-3000:]}"
        )
        assert server.returncode == 0, log.read_text()[-3000:]
        print(f"{how}: {len(seen)} processes gone in {took:.1f} s")
    finally:
        server.poll()
        _kill_leftovers(seen | _tree(server.pid))
        if server.returncode is None:
            server.kill()
            server.wait()


def _tree_stat(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()[19]


# A command that will not stop by itself: it and a child ignore SIGINT and SIGTERM, a grandchild
# sleeps, and one child moved to a session of its own (out of reach of the group signal).
STUBBORN = textwrap.dedent(
    r"""
    import json, os, signal, subprocess, sys, time
    out = sys.argv[1]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    ignore = "import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]; "
    child = subprocess.Popen([sys.executable, "-c", ignore + "import subprocess, sys; subprocess.Popen(['sleep', '300']); time.sleep(300)"])
    escaped = subprocess.Popen([sys.executable, "-c", ignore + "time.sleep(300)"], start_new_session=True)
    time.sleep(1.0)  # the grandchild is started
    with open(out + ".tmp", "w") as f:
        json.dump([os.getpid(), child.pid, escaped.pid], f)
    os.rename(out + ".tmp", out)
    time.sleep(300)
    """
)

SUPERVISE = "import sys; from inoc.process_tree import run_until_signal; sys.exit(run_until_signal(sys.argv[2:], grace=float(sys.argv[1])))"


def _wait_file(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_stubborn_tree_is_killed_after_the_grace_period(tmp_path):
    ready, grace = tmp_path / "pids.json", 1.0
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, str(grace), sys.executable, "-c", STUBBORN, str(ready)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_background,
    )
    seen: set[tuple[int, str]] = set()
    try:
        _wait_file(ready, supervisor)
        seen = _tree(supervisor.pid)
        command, child, escaped = json.loads(ready.read_text())
        pids = {pid for pid, _ in seen}
        assert {command, child, escaped} <= pids and len(seen) == 4, seen  # + the grandchild `sleep`
        supervisor.send_signal(signal.SIGTERM)
        took, left = _wait_gone(seen, supervisor, grace + 3)
        assert not left, f"still alive after {took:.1f} s: {left}"
        assert took >= grace - 0.2, f"killed before the grace period ended ({took:.2f} s)"
        assert supervisor.returncode == 0
        assert "killed 4 process(es) still running 1 s after the stop signal" in supervisor.stderr.read()
    finally:
        _kill_leftovers(seen)
        if supervisor.poll() is None:
            supervisor.kill()


def test_a_command_that_stops_on_sigint_is_not_killed(tmp_path):
    ready = tmp_path / "ready"
    polite = (
        "import pathlib, sys, time\npathlib.Path(sys.argv[1]).write_text('up')\n"
        "try:\n    time.sleep(300)\nexcept KeyboardInterrupt:\n    pathlib.Path(sys.argv[1] + '.stopped').write_text('clean')\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, "20", sys.executable, "-c", polite, str(ready)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_background,
    )
    try:
        _wait_file(ready, supervisor)
        supervisor.send_signal(
            signal.SIGINT
        )  # ignored SIGINT inherited, yet honoured, and the command's SIGINT restored
        assert supervisor.wait(timeout=10) == 0
        assert Path(f"{ready}.stopped").read_text() == "clean"  # it got KeyboardInterrupt, not SIGKILL
        assert "killed" not in supervisor.stderr.read()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


def test_the_command_gets_sigterm_when_the_supervisor_is_killed(tmp_path):
    ready = tmp_path / "ready"
    watcher = (
        "import pathlib, signal, sys, time\nout = pathlib.Path(sys.argv[1])\n"
        "signal.signal(signal.SIGTERM, lambda *a: (out.with_suffix('.term').write_text('SIGTERM'), sys.exit(0)))\n"
        "out.write_text('up')\ntime.sleep(300)\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, "5", sys.executable, "-c", watcher, str(ready)], start_new_session=True
    )
    try:
        _wait_file(ready, supervisor)
        seen = _tree(supervisor.pid)
        supervisor.kill()  # no chance to clean up
        supervisor.wait()
        took, left = _wait_gone(seen, supervisor, 5)
        assert not left, left
        assert ready.with_suffix(".term").read_text() == "SIGTERM"
    finally:
        _kill_leftovers(_tree(supervisor.pid))
