"""The SkyPilot boundary: the few SDK calls the launcher makes, as a Protocol, and the real client.

Everything SkyPilot-specific — request ids, ``sky.get`` / ``sky.stream_and_get``, enums, exception
classes, resource handles — stays in ``RealSky``; the launcher sees strings, ints and the exceptions
below. Tests replace ``RealSky`` with a fake of the same shape (and nothing else).

SkyPilot 0.14: every SDK call sends a request to an API server and returns a request id; the first
call without ``SKYPILOT_API_SERVER_ENDPOINT`` starts a local server (~15 s).
``SKYPILOT_DISABLE_LOCAL_API_SERVER=1`` makes an unconfigured call fail at once instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from inoc.cloud.task_render import RenderedTask

#: Cluster job states (``sky.skylet.job_lib.JobStatus`` values) and the managed-job states that end.
TERMINAL = frozenset(
    {
        "SUCCEEDED",
        "FAILED",
        "FAILED_SETUP",
        "FAILED_DRIVER",
        "CANCELLED",
        "FAILED_PRECHECKS",
        "FAILED_NO_RESOURCE",
        "FAILED_CONTROLLER",
        "MISSING",
    }
)
#: A job whose status cannot be read any more (the cluster went away: preempted, or torn down).
MISSING = "MISSING"


class SkyError(RuntimeError):
    """A SkyPilot call failed. ``retryable``: provisioning ran out of capacity / quota, worth another try."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ClusterGone(SkyError):
    """The cluster does not exist or is not UP (preempted, stopped, torn down)."""


@dataclass(frozen=True)
class Launched:
    """Where a job landed: the cluster's job id and what SkyPilot provisioned."""

    job_id: int
    cloud: str | None = None
    region: str | None = None
    instance_type: str | None = None
    accelerator: str | None = None
    accelerator_count: float | None = None
    use_spot: bool | None = None
    hourly_usd: float | None = None


class SkySdk(Protocol):
    def launch(
        self, task: RenderedTask, cluster: str, *, idle_minutes: int, down: bool, log: Callable[[str], None]
    ) -> Launched: ...
    def exec(self, task: RenderedTask, cluster: str, *, log: Callable[[str], None]) -> Launched: ...
    def tail_logs(self, cluster: str, job_id: int) -> Iterator[str]: ...
    def job_status(self, cluster: str, job_id: int) -> str: ...
    def cancel(self, cluster: str, job_id: int) -> None: ...
    def down(self, cluster: str) -> None: ...
    def autostop(self, cluster: str, idle_minutes: int, down: bool) -> None: ...
    def clusters(self, names: list[str]) -> dict[str, str]: ...
    def active_jobs(self, cluster: str) -> int: ...
    def jobs_launch(self, task: RenderedTask, name: str, *, log: Callable[[str], None]) -> int: ...
    def jobs_tail_logs(self, job_id: int) -> Iterator[str]: ...
    def jobs_status(self, job_id: int) -> tuple[str, dict[str, Any]]: ...
    def jobs_cancel(self, job_id: int) -> None: ...


class _LineWriter(io.TextIOBase):
    """A text stream that hands complete lines to a callback (for ``sky.stream_and_get``)."""

    def __init__(self, emit: Callable[[str], None]):
        self._emit, self._buf = emit, ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                self._emit(line)
        return len(s)

    def flush(self) -> None:
        if self._buf.strip():
            self._emit(self._buf)
        self._buf = ""


class RealSky:
    """``SkySdk`` on the installed ``skypilot`` 0.14 client (imported on first use)."""

    def __init__(self) -> None:
        import sky  # noqa: F401 — fail here, with the install hint, rather than mid-launch

        self._sky = sky

    # -- helpers
    def _task(self, task: RenderedTask) -> Any:
        # values of secrets travel only here, in memory, to the API server
        return self._sky.Task.from_yaml_config(
            dict(task.config), env_overrides=task.env_overrides(), secrets_overrides=task.secrets_overrides()
        )

    def _call(
        self, request_id: Any, log: Callable[[str], None] | None = None, *, abort_on_interrupt: bool = False
    ) -> Any:
        """The request's result. ``abort_on_interrupt``: an interrupted wait aborts the request on the server
        (a launch must not go on provisioning for nobody; a teardown must go on)."""
        from sky import exceptions

        try:
            if log is None:
                return self._sky.get(request_id)
            return self._sky.stream_and_get(request_id, output_stream=_LineWriter(log))
        except exceptions.ResourcesUnavailableError as err:  # no capacity in any candidate region: later, maybe
            raise SkyError(f"{type(err).__name__}: {err}", retryable=True) from None
        except exceptions.ProvisionPrechecksError as err:  # credentials / quota: retrying cannot help
            raise SkyError(f"{type(err).__name__}: {err}") from None
        except (exceptions.ClusterDoesNotExist, exceptions.ClusterNotUpError) as err:
            raise ClusterGone(f"{type(err).__name__}: {err}") from None
        except BaseException:
            if abort_on_interrupt:
                try:
                    self._sky.api_cancel(request_id, silent=True)
                except Exception:  # noqa: BLE001 — best effort; the caller tears down what it launched
                    pass
            raise

    @staticmethod
    def _launched(job_id: int | None, handle: Any) -> Launched:
        res = getattr(handle, "launched_resources", None)
        if res is None:
            return Launched(job_id=int(job_id if job_id is not None else -1))
        acc = dict(res.accelerators or {})
        name, count = next(iter(acc.items()), (None, None))
        try:
            hourly = float(res.get_cost(3600))
        except Exception:  # noqa: BLE001 — a price missing from the catalog is not a launch failure
            hourly = None
        return Launched(
            job_id=int(job_id if job_id is not None else -1),
            cloud=str(res.cloud),
            region=res.region,
            instance_type=res.instance_type,
            accelerator=name,
            accelerator_count=count,
            use_spot=bool(res.use_spot),
            hourly_usd=hourly,
        )

    # -- clusters
    def launch(
        self, task: RenderedTask, cluster: str, *, idle_minutes: int, down: bool, log: Callable[[str], None]
    ) -> Launched:
        req = self._sky.launch(
            self._task(task),
            cluster_name=cluster,
            idle_minutes_to_autostop=idle_minutes,
            down=down,
            retry_until_up=False,
        )
        job_id, handle = self._call(req, log, abort_on_interrupt=True)
        return self._launched(job_id, handle)

    def exec(self, task: RenderedTask, cluster: str, *, log: Callable[[str], None]) -> Launched:
        job_id, handle = self._call(
            self._sky.exec(self._task(task), cluster_name=cluster), log, abort_on_interrupt=True
        )
        return self._launched(job_id, handle)

    def tail_logs(self, cluster: str, job_id: int) -> Iterator[str]:
        for chunk in self._sky.tail_logs(cluster, job_id, follow=True, preload_content=False):
            if chunk is None:
                return
            yield from chunk.splitlines()

    def job_status(self, cluster: str, job_id: int) -> str:
        statuses = self._call(self._sky.job_status(cluster, [job_id]))
        status = statuses.get(job_id)
        return MISSING if status is None else str(getattr(status, "value", status))

    def cancel(self, cluster: str, job_id: int) -> None:
        self._call(self._sky.cancel(cluster, job_ids=[job_id]))

    def down(self, cluster: str) -> None:
        self._call(self._sky.down(cluster))

    def autostop(self, cluster: str, idle_minutes: int, down: bool) -> None:
        self._call(self._sky.autostop(cluster, idle_minutes=idle_minutes, down=down))

    def clusters(self, names: list[str]) -> dict[str, str]:
        records = self._call(self._sky.status(cluster_names=names))
        return {r["name"]: str(getattr(r["status"], "value", r["status"])) for r in records}

    def active_jobs(self, cluster: str) -> int:
        return len(self._call(self._sky.queue(cluster, skip_finished=True)))

    # -- managed jobs
    def jobs_launch(self, task: RenderedTask, name: str, *, log: Callable[[str], None]) -> int:
        job_ids, _ = self._call(self._sky.jobs.launch(self._task(task), name=name), log, abort_on_interrupt=True)
        return int(job_ids[0])

    def jobs_tail_logs(self, job_id: int) -> Iterator[str]:
        for chunk in self._sky.jobs.tail_logs(job_id=job_id, follow=True, preload_content=False):
            if chunk is None:
                return
            yield from chunk.splitlines()

    def jobs_status(self, job_id: int) -> tuple[str, dict[str, Any]]:
        records, *_ = self._call(self._sky.jobs.queue_v2(refresh=False, job_ids=[job_id]))
        for r in records:
            if r.job_id == job_id:
                info = {
                    "cloud": r.cloud,
                    "region": r.region,
                    "recovery_count": r.recovery_count,
                    "accelerators": r.accelerators,
                    "failure_reason": r.failure_reason,
                }
                return str(getattr(r.status, "value", r.status)), info
        return MISSING, {}

    def jobs_cancel(self, job_id: int) -> None:
        self._call(self._sky.jobs.cancel(job_ids=[job_id]))
