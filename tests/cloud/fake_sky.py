"""A fake SkyPilot at the SDK boundary (``inoc.cloud.sky_sdk.SkySdk``): clusters, a job queue, log lines.

Each ``launch`` / ``exec`` / ``jobs_launch`` takes the next scenario from the script:

* ``succeed`` / ``fail`` / ``setup_fail`` — the job prints its lines, then ends SUCCEEDED / FAILED / FAILED_SETUP;
* ``no_capacity`` — the launch raises ``SkyError(retryable=True)``, as ``RealSky`` maps
  ``ResourcesUnavailableError``;
* ``preempt`` — the job prints a line, then its cluster disappears (job status unreadable);
* ``hang`` — the job prints a line and never ends (until cancelled);
* ``interrupt`` — the job runs until the orchestrator polls its status, which raises ``interrupt_with``
  (a UI termination arriving while the step waits);
* ``run`` — the job is the rendered task's real ``run`` script, executed locally with the task's envs,
  the bucket "mounted" at the artifact root and the secrets in its environment, as a cluster would.

Everything is recorded in ``calls``; ``gpus_left_without_autodown()`` is the invariant the tests assert.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from inoc.cloud.sky_sdk import MISSING, ClusterGone, Launched, SkyError
from inoc.cloud.task_render import RenderedTask

REPO = Path(__file__).resolve().parents[2]


def sky_installed() -> bool:
    """SkyPilot's package, not the checkout's sky/ folder (a namespace package without __init__.py)."""
    import importlib.util

    spec = importlib.util.find_spec("sky")
    return spec is not None and spec.origin is not None


#: Tests that use the real SkyPilot package (templates, catalog); the rest need only the fake.
needs_sky = pytest.mark.skipif(
    not sky_installed(),
    reason="the SkyPilot client is not installed: pip install "
    "--no-deps skypilot==0.14.1 && pip install -r sky/requirements-client.txt",
)


@dataclass
class _Job:
    scenario: str
    lines: list[str]
    status: str = "PENDING"
    done: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen | None = None
    out: list[str] = field(default_factory=list)
    polls: int = 0


class FakeSky:
    def __init__(
        self,
        script: list[str],
        *,
        lines: list[str] | None = None,
        clusters: dict[str, str] | None = None,
        interrupt_with: type[BaseException] = KeyboardInterrupt,
        run_env: dict[str, str] | None = None,
        hourly_usd: float = 1.39,
        accelerator: str = "A100-80GB",
    ):
        self.script = list(script)
        self.lines = (
            lines
            if lines is not None
            else [
                "(task, pid=4242) [gpu_jobs.train] INFO    step 1/2",
                "(task, pid=4242) [gpu_jobs.train] INFO    done",
            ]
        )
        self.state: dict[str, str] = dict(clusters or {})  # cluster → UP / INIT / STOPPED
        self.autodown: dict[str, tuple[int, bool]] = {}  # cluster → (idle minutes, down)
        self.queue: dict[str, list[int]] = {}  # cluster → job ids of other runs, active
        self.jobs: dict[tuple[str, int], _Job] = {}
        self.calls: list[tuple] = []
        self.tasks: list[RenderedTask] = []
        self.interrupt_with = interrupt_with
        self.run_env = run_env or {}
        self.hourly_usd, self.accelerator = hourly_usd, accelerator
        self._ids = 0

    # -- helpers
    def _next(self) -> str:
        if not self.script:
            raise AssertionError("the fake ran out of scenarios: more launches than the test expected")
        return self.script.pop(0)

    def _start(self, cluster: str, task: RenderedTask, scenario: str) -> Launched:
        self._ids += 1
        job = _Job(scenario, list(self.lines))
        self.jobs[(cluster, self._ids)] = job
        if scenario == "run":
            self._run_locally(job, task)
        return Launched(
            job_id=self._ids,
            cloud="RunPod",
            region="US",
            instance_type="1x_A100-80GB_SECURE",
            accelerator=self.accelerator,
            accelerator_count=1,
            use_spot=bool(task.config["resources"].get("use_spot")),
            hourly_usd=self.hourly_usd,
        )

    def _run_locally(self, job: _Job, task: RenderedTask) -> None:
        cfg = task.config
        env = {**os.environ, **{k: str(v) for k, v in cfg.get("envs", {}).items()}, **task.envs, **task.secrets}
        for dst, mount in (cfg.get("file_mounts") or {}).items():  # "mount" the bucket: point INOC_STORE at it
            src = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), mount["source"])  # noqa: B023
            env = {k: (src if v == dst else v) for k, v in env.items()}
        env.update(self.run_env)
        job.proc = subprocess.Popen(
            ["bash", "-c", cfg["run"]],
            cwd=cfg["workdir"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def pump() -> None:
            assert job.proc is not None and job.proc.stdout is not None
            for line in job.proc.stdout:
                job.out.append(f"(task, pid={job.proc.pid}) {line.rstrip()}")
            rc = job.proc.wait()
            job.status = "SUCCEEDED" if rc == 0 else "FAILED"
            job.done.set()

        job.status = "RUNNING"
        threading.Thread(target=pump, daemon=True).start()

    def gpus_left_without_autodown(self) -> list[str]:
        """Clusters still up whose autodown (idle stop *and* teardown) is not armed."""
        return [c for c, s in self.state.items() if s != "DOWN" and not (c in self.autodown and self.autodown[c][1])]

    def launched(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "launch"]

    def downed(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "down"]

    # -- SkySdk: clusters
    def launch(
        self, task: RenderedTask, cluster: str, *, idle_minutes: int, down: bool, log: Callable[[str], None]
    ) -> Launched:
        self.calls.append(("launch", cluster, idle_minutes, down))
        self.tasks.append(task)
        scenario = self._next()
        log(f"Launching {cluster} ...")
        if scenario == "no_capacity":
            raise SkyError("ResourcesUnavailableError: no L40S/A100 capacity in any region", retryable=True)
        self.state[cluster] = "UP"
        self.autodown[cluster] = (idle_minutes, down)
        return self._start(cluster, task, scenario)

    def exec(self, task: RenderedTask, cluster: str, *, log: Callable[[str], None]) -> Launched:
        self.calls.append(("exec", cluster))
        self.tasks.append(task)
        if self.state.get(cluster) != "UP":
            raise ClusterGone(f"ClusterNotUpError: {cluster}")
        return self._start(cluster, task, self._next())

    def tail_logs(self, cluster: str, job_id: int) -> Iterator[str]:
        job = self.jobs[(cluster, job_id)]
        if job.scenario == "run":
            i = 0
            while not (job.done.is_set() and i >= len(job.out)):
                if i < len(job.out):
                    yield job.out[i]
                    i += 1
                else:
                    time.sleep(0.01)
            return
        if job.scenario in ("preempt", "hang", "interrupt"):
            yield job.lines[0]
            job.done.wait(timeout=30)
            if self.state.get(cluster) != "UP":
                raise ClusterGone(f"ClusterNotUpError: {cluster}")
            return
        yield from job.lines

    def job_status(self, cluster: str, job_id: int) -> str:
        self.calls.append(("job_status", cluster, job_id))
        if self.state.get(cluster) != "UP":
            raise ClusterGone(f"ClusterNotUpError: {cluster} is not up")
        job = self.jobs.get((cluster, job_id))
        if job is None:
            return MISSING
        job.polls += 1
        if job.scenario == "run":
            return job.status
        if job.scenario == "succeed":
            job.status = "SUCCEEDED"
        elif job.scenario == "fail":
            job.status = "FAILED"
        elif job.scenario == "setup_fail":
            job.status = "FAILED_SETUP"
        elif job.scenario == "preempt":
            self.state[cluster] = "DOWN"  # the provider took the machine
            self.autodown.pop(cluster, None)
            job.done.set()
            raise ClusterGone(f"ClusterNotUpError: {cluster} was preempted")
        elif job.scenario == "interrupt" and job.polls >= 2:
            raise self.interrupt_with()
        else:
            job.status = "RUNNING"
        return job.status

    def cancel(self, cluster: str, job_id: int) -> None:
        self.calls.append(("cancel", cluster, job_id))
        job = self.jobs[(cluster, job_id)]
        job.status = "CANCELLED"
        if job.proc is not None and job.proc.poll() is None:
            job.proc.terminate()
        job.done.set()

    def down(self, cluster: str) -> None:
        self.calls.append(("down", cluster))
        if self.state.get(cluster) in (None, "DOWN"):
            raise ClusterGone(f"ClusterDoesNotExist: {cluster}")
        self.state[cluster] = "DOWN"
        for (c, _), job in self.jobs.items():
            if c == cluster:
                job.done.set()

    def autostop(self, cluster: str, idle_minutes: int, down: bool) -> None:
        self.calls.append(("autostop", cluster, idle_minutes, down))
        if self.state.get(cluster) in (None, "DOWN"):
            raise ClusterGone(f"ClusterDoesNotExist: {cluster}")
        self.autodown[cluster] = (idle_minutes, down)

    def clusters(self, names: list[str]) -> dict[str, str]:
        self.calls.append(("clusters", tuple(names)))
        return {n: s for n, s in self.state.items() if n in names and s != "DOWN"}

    def active_jobs(self, cluster: str) -> int:
        if self.state.get(cluster) in (None, "DOWN"):
            raise ClusterGone(f"ClusterDoesNotExist: {cluster}")
        ours = sum(1 for (c, _), j in self.jobs.items() if c == cluster and j.status in ("PENDING", "RUNNING"))
        return ours + len(self.queue.get(cluster, []))

    # -- SkySdk: managed jobs
    def jobs_launch(self, task: RenderedTask, name: str, *, log: Callable[[str], None]) -> int:
        self.calls.append(("jobs_launch", name))
        self.tasks.append(task)
        scenario = self._next()
        if scenario == "no_capacity":
            raise SkyError("ResourcesUnavailableError", retryable=True)
        self._ids += 1
        self.jobs[("managed", self._ids)] = _Job(scenario, list(self.lines))
        if scenario == "run":
            self._run_locally(self.jobs[("managed", self._ids)], task)
        return self._ids

    def jobs_tail_logs(self, job_id: int) -> Iterator[str]:
        self.state.setdefault("managed", "UP")
        return self.tail_logs("managed", job_id)

    def jobs_status(self, job_id: int) -> tuple[str, dict[str, Any]]:
        self.calls.append(("jobs_status", job_id))
        job = self.jobs[("managed", job_id)]
        job.polls += 1
        info = {"cloud": "AWS", "region": "us-west-2", "recovery_count": 0, "accelerators": {"L40S": 1}}
        if job.scenario == "preempt":  # the controller recovers it: RECOVERING once, then it succeeds
            info["recovery_count"] = 1
            if job.polls == 1:
                return "RECOVERING", info
            job.done.set()
            return "SUCCEEDED", info
        if job.scenario == "run":
            return job.status, info
        if job.scenario in ("hang",):
            return "RUNNING", info
        if job.scenario == "interrupt" and job.polls >= 2:
            raise self.interrupt_with()
        status = {"succeed": "SUCCEEDED", "fail": "FAILED", "setup_fail": "FAILED_SETUP"}.get(job.scenario, "RUNNING")
        return status, info

    def jobs_cancel(self, job_id: int) -> None:
        self.calls.append(("jobs_cancel", job_id))
        job = self.jobs[("managed", job_id)]
        job.status = "CANCELLED"
        if job.proc is not None and job.proc.poll() is None:
            job.proc.terminate()
        job.done.set()


def local_run_env(scratch: Path) -> dict[str, str]:
    """What a cluster's setup would provide: the interpreter with inoc installed, a scratch disk."""
    return {"INOC_PYTHON": sys.executable, "INOC_SCRATCH": str(scratch), "GPU_JOBS_THREADS": "1"}
