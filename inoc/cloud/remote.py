"""What a cluster runs: ``python -m inoc.cloud.remote <train|generate|score>`` (the ``run`` of sky/*.yaml).

1. reads ``$INOC_STORE/$INOC_JOB_PREFIX/inputs/`` (the bucket, mounted by SkyPilot; any fsspec URL or
   local folder works, which is how the tests run this very command on a CPU);
2. if ``result.json`` already says this spec succeeded (a retried or recovered job), exits 0;
3. runs ``python -m gpu_jobs.<job> --spec spec.json`` in a local scratch folder — the jobs' atomic
   renames and flock need a real filesystem, not a bucket mount — killing it past
   ``$INOC_JOB_TIMEOUT_S`` so a hung job cannot keep a GPU (and its autostop timer) busy;
4. uploads the output folder to ``outputs/`` (marker last) and then ``result.json``, and exits with the
   job's exit code, so SkyPilot's job status is the job's.

Environment: INOC_STORE, INOC_JOB_PREFIX (required); INOC_JOB_TIMEOUT_S (0: none); INOC_SCRATCH
(default ``~/inoc-scratch``); INOC_JOB_PYTHON (default this interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from gpu_jobs import JOBS
from gpu_jobs.io import read_marker
from inoc.artifacts import ArtifactStore
from inoc.cloud import staging
from inoc.process_tree import echo_output, start_job

REPO_ROOT = Path(__file__).resolve().parents[2]
EXIT_TIMEOUT = 124


def _say(msg: str) -> None:
    print(f"[inoc.cloud.remote] {msg}", flush=True)


def gpu_name() -> str:
    """The first GPU's name from nvidia-smi, or 'cpu'."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            )
            names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
            if out.returncode == 0 and names:
                return names[0] if len(names) == 1 else f"{names[0]} x{len(names)}"
        except (OSError, subprocess.SubprocessError):
            pass
    return "cpu"


def run_job(cmd: list[str], env: dict[str, str], timeout_s: float, tail: deque[str]) -> int:
    """Run the job in its own process group, echoing its output; kill the group past ``timeout_s``."""
    proc = start_job(cmd, env, cwd=REPO_ROOT, new_session=True)

    def stop(signum: int, _frame: Any) -> None:  # SkyPilot cancels a job with SIGTERM: pass it on
        _say(f"signal {signum}: stopping the job")
        os.killpg(proc.pid, signal.SIGTERM)

    old = signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
    timed_out = False

    def watchdog() -> None:
        nonlocal timed_out
        while proc.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                _say(f"the job ran past INOC_JOB_TIMEOUT_S={timeout_s:g}s: killing it")
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.5)

    import threading

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        echo_output(proc, sys.stdout, tail)
        rc = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, old)
    return EXIT_TIMEOUT if timed_out else rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inoc.cloud.remote", description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=JOBS)
    parser.add_argument("--store", default=os.environ.get("INOC_STORE", ""))
    parser.add_argument("--prefix", default=os.environ.get("INOC_JOB_PREFIX", ""))
    parser.add_argument("--timeout-s", type=float, default=float(os.environ.get("INOC_JOB_TIMEOUT_S") or 0))
    parser.add_argument("--scratch", default=os.environ.get("INOC_SCRATCH") or str(Path.home() / "inoc-scratch"))
    parser.add_argument("--python", default=os.environ.get("INOC_JOB_PYTHON") or sys.executable)
    args = parser.parse_args(argv)
    if not args.store or not args.prefix:
        _say("INOC_STORE and INOC_JOB_PREFIX must be set (the bucket mount and <run id>/<asset>)")
        return 2
    store = ArtifactStore(args.store)
    started = time.time()
    gpu = gpu_name()
    work = Path(args.scratch) / args.prefix.replace("/", "__")
    try:
        job_info = staging.download_inputs(store, args.prefix, work / "inputs")
    except staging.StagingError as err:
        _say(str(err))
        return 2
    if job_info.get("job") != args.job:
        _say(f"{store.url(args.prefix)} holds a {job_info.get('job')!r} job, not {args.job!r}")
        return 2
    done = staging.read_result(store, args.prefix)
    if done and done.get("status") == "succeeded" and done.get("spec_hash") == job_info["spec_hash"]:
        _say(f"{store.url(args.prefix)} already holds this spec's outputs: nothing to do")
        return 0

    spec_path = work / "inputs" / staging.SPEC_FILE
    spec = json.loads(spec_path.read_text())
    spec["output_dir"] = str(work / "out")
    spec_path.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [args.python, "-m", f"gpu_jobs.{args.job}", "--spec", str(spec_path)]
    _say(f"{args.job} on {gpu} ({socket.gethostname()}): {' '.join(cmd)}")
    tail: deque[str] = deque(maxlen=40)
    rc = run_job(cmd, env, args.timeout_s, tail)

    result: dict[str, Any] = {
        "job": args.job,
        "exit_code": rc,
        "gpu": gpu,
        "host": socket.gethostname(),
        "started_at": started,
        "spec_hash": job_info["spec_hash"],
    }
    marker = read_marker(work / "out") if rc == 0 else None
    if rc == 0 and marker is not None and marker.spec_hash == job_info["spec_hash"]:
        files = staging.upload_outputs(store, args.prefix, work / "out")
        result.update(status="succeeded", outputs=len(files), job_wall_s=marker.metadata.get("wall_s"))
    else:
        if rc == 0:  # exit 0 without this spec's marker: not done, whatever the job said
            rc = 1
            tail.append(
                f"gpu_jobs.{args.job} exited 0 without a completion marker for spec {job_info['spec_hash'][:12]}"
            )
        result.update(status="timeout" if rc == EXIT_TIMEOUT else "failed", exit_code=rc, log_tail=list(tail))
    result["finished_at"] = time.time()
    result["wall_s"] = round(result["finished_at"] - started, 3)
    store.write_json(result, args.prefix, staging.RESULT)
    _say(f"{result['status']} (exit {rc}) in {result['wall_s']:.1f}s; result.json written")
    return rc


if __name__ == "__main__":
    sys.exit(main())
