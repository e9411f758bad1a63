"""Launch a gpu_job on SkyPilot, follow it, and leave no GPU running without an autostop.

``Launcher.run(request)`` is a small state machine over the ``SkySdk`` boundary:

    claim a cluster ──► launch (new, autodown armed) | exec (queue on a running one, re-arm autodown)
         ▲                │ no capacity: wait, retry (``launch_attempts``)
         │                ▼
         │   follow: logs streamed line by line, status polled, a deadline
         │                │
         └─ preempted ◄───┤ (the cluster went away under the job: relaunch, up to ``launch_attempts``)
                          ├─► SUCCEEDED ─► keep the cluster for the next job (autodown armed)
                          └─► failed / setup failed / timed out / interrupted ─► cancel our job,
                                 tear down the clusters THIS run launched (``on_failure: down``, and only
                                 when no other run's job is queued there) or leave their autodown set

Guarantees, each tested against a fake SDK: every ``launch`` passes ``idle_minutes_to_autostop`` with
``down=True`` (so a crash of this process leaves at most ``idle`` minutes of idle GPU; the cluster's
jobs end by ``INOC_JOB_TIMEOUT_S`` on the cluster, so "idle" always comes); every ``exec`` re-arms
autodown; on failure, cancellation or timeout our job is cancelled and our clusters are torn down (or
their autodown re-armed) before the exception propagates. Clusters are named
``<prefix>-<experiment>-<n>`` with ``n < max_clusters``: jobs of one experiment share them through
SkyPilot's job queue. In ``managed`` mode SkyPilot's jobs controller owns the cluster: it recovers spot
preemptions (``job_recovery``) and tears the cluster down when the job ends; we cancel on failure.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from inoc.cloud.ledger import ClusterLedger
from inoc.cloud.sky_sdk import MISSING, TERMINAL, ClusterGone, Launched, SkyError, SkySdk
from inoc.cloud.task_render import RenderedTask, redact

Log = Callable[[str, str], None]  # (level, message)
#: SkyPilot prefixes each line a job prints: ``(task, pid=123) `` or ``(head, rank=0, pid=123) ``.
_SKY_PREFIX = re.compile(r"^\((?:task|head|worker\d*)(?:, rank=\d+)?, pid=\d+\) ")
#: A claimed-but-not-yet-UP cluster older than this is presumed abandoned (its launcher crashed).
STALE_LAUNCH_S = 3600.0


def strip_sky_prefix(line: str) -> str:
    return _SKY_PREFIX.sub("", line, count=1)


@dataclass(frozen=True)
class LaunchPolicy:
    mode: Literal["cluster", "managed"] = "cluster"
    idle_minutes_to_autostop: int = 10
    max_clusters: int = 1
    #: What happens to a cluster this run launched when its job fails, is cancelled or times out.
    on_failure: Literal["down", "autostop"] = "down"
    #: Tear down a cluster this run launched after success (False: keep it, autodown armed, for the next job).
    down_on_success: bool = False
    launch_attempts: int = 3
    retry_wait_s: float = 60.0
    #: Orchestrator-side deadline from submission (setup included); the cluster enforces its own too.
    job_timeout_s: float = 13 * 3600.0
    poll_interval_s: float = 15.0
    cluster_prefix: str = "inoc"


@dataclass
class JobRequest:
    task: RenderedTask
    #: Clusters are shared by the jobs of one experiment.
    experiment: str
    #: Who launches: the Dagster run id (a cluster is torn down only by the run that launched it).
    owner: str
    #: A readable job name (managed jobs, log lines).
    name: str


@dataclass
class JobOutcome:
    status: str
    mode: str
    cluster: str | None = None
    job_id: int | None = None
    #: This run provisioned the cluster the job finished on.
    launched_cluster: bool = False
    where: Launched | None = None
    wall_s: float = 0.0
    attempts: int = 0
    preemptions: int = 0
    actions: list[str] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


class JobFailed(RuntimeError):
    """The job did not succeed. ``kind``: failed | setup_failed | timeout | launch_failed | preempted."""

    def __init__(self, kind: str, message: str, outcome: JobOutcome):
        super().__init__(message)
        self.kind = kind
        self.outcome = outcome


class _Timeout(Exception):
    pass


def cluster_names(prefix: str, experiment: str, max_clusters: int) -> list[str]:
    exp = re.sub(r"[^a-z0-9]+", "-", experiment.lower()).strip("-")[:24].strip("-") or "exp"
    return [f"{prefix}-{exp}-{i}" for i in range(max_clusters)]


class Launcher:
    def __init__(
        self, sdk: SkySdk, policy: LaunchPolicy, log: Log, *, ledger: ClusterLedger | None = None, tail_lines: int = 60
    ):
        self.sdk, self.policy, self._log = sdk, policy, log
        self.ledger = ledger or ClusterLedger()
        self.tail_lines = tail_lines
        self._secrets: dict[str, str] = {}

    # ------------------------------------------------------------------------------- logging
    def log(self, message: str, level: str = "info") -> None:
        self._log(level, redact(message, self._secrets))

    # ----------------------------------------------------------------------------------- run
    def run(self, req: JobRequest) -> JobOutcome:
        self._secrets = dict(req.task.secrets)
        if self.policy.mode == "managed":
            return self._run_managed(req)
        return self._run_cluster(req)

    # ---------------------------------------------------------------------- cluster mode
    def _run_cluster(self, req: JobRequest) -> JobOutcome:
        p = self.policy
        out = JobOutcome(status="PENDING", mode="cluster")
        tail: deque[str] = deque(maxlen=self.tail_lines)
        mine: set[str] = set()  # clusters this run launched
        submitted: tuple[str, int] | None = None
        started = time.monotonic()
        try:
            while True:
                out.attempts += 1
                cluster, action = self._claim(req)
                new = action == "launch"
                out.cluster = cluster
                try:
                    if action in ("launch", "join"):
                        if new:
                            mine.add(cluster)
                        self.log(
                            f"[sky] {'launching' if new else 'starting / joining'} cluster {cluster} for "
                            f"{req.name} (candidates {', '.join(map(str, req.task.candidates))}; "
                            f"autodown after {p.idle_minutes_to_autostop} idle min)"
                        )
                        where = self.sdk.launch(
                            req.task,
                            cluster,
                            idle_minutes=p.idle_minutes_to_autostop,
                            down=True,
                            log=lambda s: self.log(f"[sky] {s}"),
                        )
                        if new:
                            self.ledger.record(cluster, owner=req.owner, experiment=req.experiment, status="UP")
                        out.actions.append(f"launched {cluster}" if new else f"joined {cluster} (launch)")
                    else:
                        self.log(f"[sky] queueing {req.name} on cluster {cluster}")
                        where = self.sdk.exec(req.task, cluster, log=lambda s: self.log(f"[sky] {s}"))
                        self.sdk.autostop(cluster, p.idle_minutes_to_autostop, True)
                        out.actions.append(f"exec on {cluster}; autodown re-armed")
                except ClusterGone as err:  # went away between the claim and the exec: claim again
                    self.log(f"[sky] {cluster} is gone ({err}); choosing again", "warning")
                    self.ledger.forget(cluster)
                    self._retry_or_fail(out, "launch_failed", f"cluster {cluster} vanished before the job started")
                    continue
                except SkyError as err:
                    self.log(f"[sky] launching on {cluster} failed: {err}", "warning")
                    if new:
                        self._teardown(cluster, req, failed=True, out=out)
                        mine.discard(cluster)
                    if not err.retryable:
                        raise JobFailed("launch_failed", f"SkyPilot could not start {req.name}: {err}", out) from None
                    self._retry_or_fail(
                        out, "launch_failed", f"no capacity for {req.name} after {out.attempts} attempt(s): {err}"
                    )
                    continue
                out.where, out.job_id = where, where.job_id
                out.launched_cluster = cluster in mine
                submitted = (cluster, where.job_id)
                self.log(f"[sky] {req.name}: job {where.job_id} on {cluster} ({_describe(where)})")
                status = self._follow(  # the callbacks run inside this iteration: its cluster and job
                    lambda: self.sdk.tail_logs(cluster, where.job_id),  # noqa: B023
                    lambda: self.sdk.job_status(cluster, where.job_id),  # noqa: B023
                    tail,
                    started,
                )
                out.status = status
                if status == "SUCCEEDED":
                    submitted = None
                    out.wall_s = time.monotonic() - started
                    out.log_tail = list(tail)
                    if p.down_on_success and cluster in mine:
                        self._teardown(cluster, req, failed=False, out=out)
                    return out
                if self._preempted(cluster, status):
                    submitted = None
                    out.preemptions += 1
                    self.log(
                        f"[sky] {cluster} went away under job {where.job_id} (status {status}): preempted; relaunching",
                        "warning",
                    )
                    self.ledger.forget(cluster)
                    mine.discard(cluster)
                    self._retry_or_fail(out, "preempted", f"{req.name} was preempted {out.preemptions} time(s)")
                    continue
                submitted = None
                kind = "setup_failed" if status == "FAILED_SETUP" else "failed"
                out.log_tail = list(tail)
                for c in list(mine):
                    self._teardown(c, req, failed=True, out=out)
                raise JobFailed(kind, f"{req.name}: job {where.job_id} on {cluster} ended {status}", out)
        except _Timeout:
            out.status, out.log_tail = "TIMEOUT", list(tail)
            self._abandon(submitted, mine, req, out, "timed out")
            raise JobFailed(
                "timeout", f"{req.name} ran past the {p.job_timeout_s:g}s deadline; cancelled", out
            ) from None
        except JobFailed as err:
            if err.kind in ("launch_failed", "preempted"):
                for c in list(mine):
                    self._teardown(c, req, failed=True, out=out)
            raise
        except BaseException:  # cancelled from the UI (DagsterExecutionInterruptedError), Ctrl-C, a bug
            out.status, out.log_tail = "CANCELLED", list(tail)
            self._abandon(submitted, mine, req, out, "interrupted")
            raise
        finally:
            out.wall_s = out.wall_s or time.monotonic() - started

    def _retry_or_fail(self, out: JobOutcome, kind: str, message: str) -> None:
        if out.attempts >= self.policy.launch_attempts:
            raise JobFailed(kind, message, out)
        wait = self.policy.retry_wait_s * out.attempts
        self.log(f"[sky] retrying in {wait:g}s (attempt {out.attempts + 1}/{self.policy.launch_attempts})", "warning")
        time.sleep(wait)

    def _abandon(
        self, submitted: tuple[str, int] | None, mine: set[str], req: JobRequest, out: JobOutcome, why: str
    ) -> None:
        """Cancel our job and release our clusters; never raises (the original exception must win)."""
        if submitted is not None:
            cluster, job_id = submitted
            try:
                self.sdk.cancel(cluster, job_id)
                out.actions.append(f"cancelled job {job_id} on {cluster}")
                self.log(f"[sky] {why}: cancelled job {job_id} on {cluster}", "warning")
            except Exception as err:  # noqa: BLE001
                self.log(f"[sky] could not cancel job {job_id} on {cluster}: {err}", "error")
            if cluster not in mine:
                self._ensure_autostop(cluster, out)
        for cluster in list(mine):
            self._teardown(cluster, req, failed=True, out=out)

    def _teardown(self, cluster: str, req: JobRequest, *, failed: bool, out: JobOutcome) -> None:
        """Release a cluster this run launched: down it (policy permitting, and only when no other job is
        queued there), else leave its autodown armed. Never raises."""
        p = self.policy
        want_down = (failed and p.on_failure == "down") or (not failed and p.down_on_success)
        if want_down:
            try:
                others = self.sdk.active_jobs(cluster)
            except ClusterGone:
                self.ledger.forget(cluster)
                out.actions.append(f"{cluster} already gone")
                return
            except Exception as err:  # noqa: BLE001 — unknown load: down anyway only if nothing else can be lost
                self.log(f"[sky] could not read the job queue of {cluster}: {err}", "warning")
                others = 0
            if others == 0:
                try:
                    self.sdk.down(cluster)
                    self.ledger.forget(cluster)
                    out.actions.append(f"down {cluster}")
                    self.log(f"[sky] tore down {cluster}")
                    return
                except ClusterGone:
                    self.ledger.forget(cluster)
                    out.actions.append(f"{cluster} already gone")
                    return
                except Exception as err:  # noqa: BLE001
                    self.log(f"[sky] could not tear down {cluster}: {err}; leaving its autodown armed", "error")
            else:
                self.log(f"[sky] {cluster} still has {others} other job(s) queued: leaving it to its autodown")
        self._ensure_autostop(cluster, out)

    def _ensure_autostop(self, cluster: str, out: JobOutcome) -> None:
        try:
            self.sdk.autostop(cluster, self.policy.idle_minutes_to_autostop, True)
            out.actions.append(f"autodown {cluster} after {self.policy.idle_minutes_to_autostop} idle min")
        except ClusterGone:
            self.ledger.forget(cluster)
        except Exception as err:  # noqa: BLE001
            self.log(f"[sky] could not set autostop on {cluster}: {err} — check `sky status`", "error")

    def _preempted(self, cluster: str, status: str) -> bool:
        if status not in (MISSING, "FAILED_DRIVER"):
            return False
        try:
            return self.sdk.clusters([cluster]).get(cluster) != "UP"
        except Exception:  # noqa: BLE001 — cannot even ask: the cluster is as good as gone
            return True

    def _claim(self, req: JobRequest) -> tuple[str, str]:
        """Pick the cluster for this job and how to get onto it: ``exec`` on an idle UP one, else ``launch`` a
        free name (this run owns it), else ``exec`` on the least busy UP one, else ``join`` (a ``launch`` that
        waits for / restarts a cluster another run is launching or that was stopped)."""
        names = cluster_names(self.policy.cluster_prefix, req.experiment, self.policy.max_clusters)
        with self.ledger.edit() as ledger:
            live = self.sdk.clusters(names)
            up = [n for n in names if live.get(n) == "UP"]
            load = {}
            for n in up:
                try:
                    load[n] = self.sdk.active_jobs(n)
                except ClusterGone:
                    live.pop(n, None)
            up = [n for n in up if n in load]
            idle = [n for n in up if load[n] == 0]
            if idle:
                return idle[0], "exec"
            now = time.time()
            for n in names:
                claimed = ledger.get(n, {})
                launching = claimed.get("status") == "LAUNCHING" and now - claimed.get("updated_at", 0) < STALE_LAUNCH_S
                if n not in live and not launching:
                    ledger[n] = {
                        "owner": req.owner,
                        "experiment": req.experiment,
                        "status": "LAUNCHING",
                        "updated_at": now,
                    }
                    return n, "launch"
            if up:
                return min(up, key=lambda n: load[n]), "exec"
            # every name is being launched or is stopped: join the first (launch waits for it or restarts it)
            pending = [n for n in names if n in live] or names
            return pending[0], "join"

    # ---------------------------------------------------------------------- following a job
    def _follow(self, logs: Callable[[], object], status: Callable[[], str], tail: deque[str], started: float) -> str:
        """Stream logs (in a thread) and poll the status until it is terminal or the deadline passes."""
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            try:
                for line in logs():  # type: ignore[attr-defined]
                    lines.put(line)
            except Exception as err:  # noqa: BLE001 — a broken log stream must not end the wait
                lines.put(f"[sky] log stream ended: {type(err).__name__}: {err}")
            lines.put(None)

        threading.Thread(target=pump, daemon=True, name="sky-logs").start()
        deadline = started + self.policy.job_timeout_s
        next_poll = time.monotonic()
        logs_done = False
        while True:
            now = time.monotonic()
            if now >= next_poll:
                try:
                    state = status()
                except ClusterGone:
                    state = MISSING
                next_poll = now + self.policy.poll_interval_s
                if state in TERMINAL:
                    end = time.monotonic() + min(5.0, self.policy.poll_interval_s * 5)
                    while not logs_done and time.monotonic() < end:  # the last lines, briefly
                        logs_done = self._drain(lines, tail, 0.05) or logs_done
                    return state
            if now >= deadline:
                raise _Timeout()
            wait = max(0.0, min(next_poll, deadline) - time.monotonic())
            if logs_done:
                time.sleep(min(wait, 1.0))
            else:
                logs_done = self._drain(lines, tail, min(wait, 1.0))

    def _drain(self, lines: queue.Queue, tail: deque[str], timeout: float) -> bool:
        """Emit queued lines; True when the stream has ended."""
        try:
            item = lines.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return False
        while True:
            if item is None:
                return True
            text = redact(strip_sky_prefix(item.rstrip("\n")), self._secrets)
            tail.append(text)
            self._log("info", text)
            try:
                item = lines.get_nowait()
            except queue.Empty:
                return False

    # ---------------------------------------------------------------------- managed jobs
    def _run_managed(self, req: JobRequest) -> JobOutcome:
        out = JobOutcome(status="PENDING", mode="managed")
        tail: deque[str] = deque(maxlen=self.tail_lines)
        started = time.monotonic()
        job_id: int | None = None
        try:
            while job_id is None:
                out.attempts += 1
                try:
                    self.log(
                        f"[sky] submitting managed job {req.name} (spot recovery: "
                        f"{req.task.config['resources'].get('job_recovery', {}).get('strategy', 'default')})"
                    )
                    job_id = self.sdk.jobs_launch(req.task, req.name, log=lambda s: self.log(f"[sky] {s}"))
                except SkyError as err:
                    if not err.retryable:
                        raise JobFailed("launch_failed", f"SkyPilot could not submit {req.name}: {err}", out) from None
                    self._retry_or_fail(out, "launch_failed", f"could not submit {req.name}: {err}")
            out.job_id = job_id
            out.actions.append(f"managed job {job_id}")
            info: dict = {}

            def status() -> str:
                state, more = self.sdk.jobs_status(job_id)
                info.update(more)
                return state

            state = self._follow(lambda: self.sdk.jobs_tail_logs(job_id), status, tail, started)
            out.status, out.info, out.log_tail = state, info, list(tail)
            out.preemptions = int(info.get("recovery_count") or 0)
            out.where = Launched(
                job_id=job_id,
                cloud=info.get("cloud"),
                region=info.get("region"),
                accelerator=next(iter(info.get("accelerators") or {}), None),
            )
            if state != "SUCCEEDED":
                kind = "setup_failed" if state == "FAILED_SETUP" else "failed"
                raise JobFailed(
                    kind,
                    f"{req.name}: managed job {job_id} ended {state}"
                    + (f" ({info['failure_reason']})" if info.get("failure_reason") else ""),
                    out,
                )
            return out
        except _Timeout:
            out.status, out.log_tail = "TIMEOUT", list(tail)
            self._cancel_managed(job_id, out, "timed out")
            raise JobFailed(
                "timeout", f"{req.name} ran past the {self.policy.job_timeout_s:g}s deadline; cancelled", out
            ) from None
        except JobFailed:
            raise
        except BaseException:
            out.status, out.log_tail = "CANCELLED", list(tail)
            self._cancel_managed(job_id, out, "interrupted")
            raise
        finally:
            out.wall_s = time.monotonic() - started

    def _cancel_managed(self, job_id: int | None, out: JobOutcome, why: str) -> None:
        if job_id is None:
            return
        try:
            self.sdk.jobs_cancel(job_id)
            out.actions.append(f"cancelled managed job {job_id}")
            self.log(f"[sky] {why}: cancelled managed job {job_id} (its controller tears its cluster down)", "warning")
        except Exception as err:  # noqa: BLE001
            self.log(f"[sky] could not cancel managed job {job_id}: {err} — check `sky jobs queue`", "error")


def _describe(where: Launched) -> str:
    parts = [
        f"{where.accelerator}:{where.accelerator_count:g}"
        if where.accelerator and where.accelerator_count
        else where.accelerator or "?"
    ]
    if where.cloud:
        parts.append(f"{where.cloud}/{where.region or '?'}")
    if where.instance_type:
        parts.append(where.instance_type)
    if where.use_spot:
        parts.append("spot")
    if where.hourly_usd is not None:
        parts.append(f"${where.hourly_usd:.2f}/h")
    return ", ".join(parts)
