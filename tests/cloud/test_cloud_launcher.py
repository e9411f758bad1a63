"""The launch / follow / teardown state machine against a fake SkyPilot SDK (tests/cloud/fake_sky.py).

Every test ends by asserting the invariant the backend promises: no cluster is left up without its
autodown armed (``gpus_left_without_autodown() == []``).
"""

from __future__ import annotations

import os

import pytest
from fake_sky import FakeSky

from inoc.cloud.launcher import JobFailed, JobRequest, Launcher, LaunchPolicy, cluster_names, strip_sky_prefix
from inoc.cloud.ledger import ClusterLedger
from inoc.cloud.task_render import ComputeSettings, render_task

SECRET = "test-key-not-real-0042"
FAST = dict(poll_interval_s=0.01, retry_wait_s=0.0, job_timeout_s=10.0)


def _task(**kw):
    return render_task(
        "train",
        compute=ComputeSettings(idle_minutes_to_autostop=7, **kw),
        model_id="Qwen/Qwen2.5-7B-Instruct",
        artifact_root="s3://test-bucket/inoc",
        prefix="run1/toy__train",
        secrets_from={"HF_TOKEN": SECRET},
    )


class Harness:
    def __init__(self, tmp_path, fake: FakeSky, **policy):
        self.fake = fake
        self.messages: list[tuple[str, str]] = []
        self.ledger = ClusterLedger(tmp_path / "ledger")
        self.policy = LaunchPolicy(**{**FAST, "idle_minutes_to_autostop": 7, **policy})

    def run(self, owner: str = "run-a", experiment: str = "pf_qwen7b"):
        launcher = Launcher(
            self.fake, self.policy, lambda lvl, msg: self.messages.append((lvl, msg)), ledger=self.ledger
        )
        return launcher.run(JobRequest(task=_task(), experiment=experiment, owner=owner, name="train toy"))

    def text(self) -> str:
        return "\n".join(m for _, m in self.messages)


@pytest.fixture
def cluster0():
    return cluster_names("inoc", "pf_qwen7b", 1)[0]


def test_success_launches_with_autodown_streams_logs_and_keeps_the_cluster(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["succeed"]))
    out = h.run()
    assert out.status == "SUCCEEDED" and out.launched_cluster and out.cluster == cluster0 == "inoc-pf-qwen7b-0"
    assert h.fake.calls[1] == ("launch", cluster0, 7, True)  # autodown armed in the launch itself
    assert h.fake.downed() == [] and h.fake.gpus_left_without_autodown() == []
    # the job's lines arrive without SkyPilot's "(task, pid=N) " prefix
    assert ("info", "[gpu_jobs.train] INFO    step 1/2") in h.messages
    assert out.log_tail[-1] == "[gpu_jobs.train] INFO    done"
    assert out.where.hourly_usd == 1.39 and out.attempts == 1 and out.preemptions == 0
    assert h.ledger.all()[cluster0]["owner"] == "run-a"


@pytest.mark.parametrize(
    "scenario,kind,status", [("fail", "failed", "FAILED"), ("setup_fail", "setup_failed", "FAILED_SETUP")]
)
def test_a_failed_job_tears_down_the_cluster_it_launched(tmp_path, cluster0, scenario, kind, status):
    h = Harness(tmp_path, FakeSky([scenario]))
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == kind and exc.value.outcome.status == status
    assert h.fake.launched() == [cluster0]  # a job failure is not retried
    assert h.fake.downed() == [cluster0] and h.fake.gpus_left_without_autodown() == []
    assert cluster0 not in h.ledger.all()
    assert f"down {cluster0}" in exc.value.outcome.actions


def test_on_failure_autostop_leaves_the_cluster_to_its_autodown(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["fail"]), on_failure="autostop")
    with pytest.raises(JobFailed):
        h.run()
    assert h.fake.downed() == []
    assert h.fake.autodown[cluster0] == (7, True) and ("autostop", cluster0, 7, True) in h.fake.calls


def test_no_capacity_is_retried_then_succeeds(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["no_capacity", "succeed"]))
    out = h.run()
    assert out.status == "SUCCEEDED" and out.attempts == 2
    assert h.fake.launched() == [cluster0, cluster0]
    assert "retrying in 0s (attempt 2/3)" in h.text()


def test_no_capacity_every_time_fails_after_the_configured_attempts(tmp_path):
    h = Harness(tmp_path, FakeSky(["no_capacity"] * 3), launch_attempts=3)
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == "launch_failed" and exc.value.outcome.attempts == 3
    assert len(h.fake.launched()) == 3 and h.fake.gpus_left_without_autodown() == []
    assert "no capacity for train toy after 3 attempt(s)" in str(exc.value)


def test_spot_preemption_relaunches_and_counts_it(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["preempt", "succeed"]))
    out = h.run()
    assert out.status == "SUCCEEDED" and out.preemptions == 1 and out.attempts == 2
    assert h.fake.launched() == [cluster0, cluster0]
    assert "preempted; relaunching" in h.text()
    assert h.fake.gpus_left_without_autodown() == []


def test_preempted_on_every_attempt_fails_as_preempted(tmp_path):
    h = Harness(tmp_path, FakeSky(["preempt", "preempt"]), launch_attempts=2)
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == "preempted" and exc.value.outcome.preemptions == 2
    assert h.fake.gpus_left_without_autodown() == []


def test_a_hang_past_the_deadline_is_cancelled_and_torn_down(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["hang"]), job_timeout_s=0.3)
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == "timeout" and exc.value.outcome.status == "TIMEOUT"
    calls = [c[0] for c in h.fake.calls]
    assert calls.index("cancel") < calls.index("down")  # the job first, then the machine
    assert h.fake.downed() == [cluster0] and h.fake.gpus_left_without_autodown() == []


def test_cancellation_while_waiting_cancels_the_job_and_tears_down(tmp_path, cluster0):
    h = Harness(tmp_path, FakeSky(["interrupt"]))
    with pytest.raises(KeyboardInterrupt):
        h.run()
    assert ("cancel", cluster0, 1) in h.fake.calls and h.fake.downed() == [cluster0]
    assert h.fake.gpus_left_without_autodown() == []


ASYNC_INTERRUPT = """
import os, signal, sys, threading
sys.path[:0] = [{here!r}]
from test_cloud_launcher import FakeSky, Harness
from pathlib import Path
# A process started in the background by a non-interactive shell inherits SIGINT ignored, and
# Python then keeps it ignored: restore the handler a foreground `inoc` (Ctrl-C) has.
signal.signal(signal.SIGINT, signal.default_int_handler)
h = Harness(Path({tmp!r}), FakeSky(["hang"]))
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    h.run()
except KeyboardInterrupt:
    cancelled = any(c[0] == "cancel" for c in h.fake.calls)
    print("INTERRUPTED", cancelled, h.fake.downed(), h.fake.gpus_left_without_autodown())
"""


def test_an_interrupt_arriving_from_outside_mid_wait_is_handled_the_same(tmp_path, cluster0):
    """A real asynchronous SIGINT (as Ctrl-C / a terminated Dagster step delivers it), in a fresh
    interpreter, so the test session's own SIGINT disposition (ignored when the suite itself runs
    as a background job) cannot decide the outcome."""
    import subprocess
    import sys
    from pathlib import Path

    code = ASYNC_INTERRUPT.format(here=str(Path(__file__).parent), tmp=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1"},
    )
    assert f"INTERRUPTED True ['{cluster0}'] []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_jobs_share_a_cluster_up_to_max_clusters(tmp_path):
    names = cluster_names("inoc", "pf_qwen7b", 2)
    fake = FakeSky(["succeed"] * 4)
    h = Harness(tmp_path, fake, max_clusters=2)
    h.run(owner="run-a")  # nothing up: launch cluster 0
    h.run(owner="run-b")  # cluster 0 is up and idle: queue on it
    assert [c[0] for c in fake.calls if c[0] in ("launch", "exec")] == ["launch", "exec"]
    assert ("autostop", names[0], 7, True) in fake.calls  # autodown re-armed by the job that joined
    fake.queue[names[0]] = [99]  # another run's job is running on cluster 0
    h.run(owner="run-c")  # busy: a second cluster, up to max_clusters
    assert fake.launched() == names
    fake.queue[names[1]] = [98, 97]
    out = h.run(owner="run-d")  # both busy, none free: the least busy one
    assert out.cluster == names[0] and not out.launched_cluster
    assert fake.gpus_left_without_autodown() == []


def test_a_stopped_cluster_is_restarted_by_launch_but_not_owned(tmp_path, cluster0):
    fake = FakeSky(["fail"], clusters={cluster0: "STOPPED"})
    h = Harness(tmp_path, fake)
    with pytest.raises(JobFailed) as exc:
        h.run(owner="run-b")
    assert fake.launched() == [cluster0] and fake.calls[1] == ("launch", cluster0, 7, True)  # autodown armed
    assert not exc.value.outcome.launched_cluster and fake.downed() == []  # someone else's: left to its autodown
    assert fake.gpus_left_without_autodown() == []


def test_a_failure_never_tears_down_a_cluster_this_run_did_not_launch(tmp_path, cluster0):
    fake = FakeSky(["fail"], clusters={cluster0: "UP"})
    fake.autodown[cluster0] = (7, True)
    h = Harness(tmp_path, fake)
    with pytest.raises(JobFailed):
        h.run(owner="run-b")
    assert fake.calls[1][0] == "exec" and fake.downed() == []
    assert fake.state[cluster0] == "UP" and fake.gpus_left_without_autodown() == []


def test_our_cluster_with_another_runs_job_queued_is_left_to_its_autodown(tmp_path, cluster0):
    fake = FakeSky(["fail"])
    h = Harness(tmp_path, fake)
    orig = fake.job_status

    def status(cluster, job_id):  # another run queues a job on our new cluster while ours runs
        fake.queue[cluster] = [77]
        return orig(cluster, job_id)

    fake.job_status = status
    with pytest.raises(JobFailed):
        h.run()
    assert fake.downed() == [] and fake.autodown[cluster0] == (7, True)
    assert "still has 1 other job(s) queued" in h.text()


def test_secrets_never_reach_logs_or_the_written_task(tmp_path):
    fake = FakeSky(["succeed"], lines=[f"(task, pid=1) token is {SECRET}", "(task, pid=1) key sk-" + "a" * 30])
    h = Harness(tmp_path, fake)
    out = h.run()
    task = fake.tasks[0]
    assert task.secrets == {"HF_TOKEN": SECRET}  # handed to SkyPilot in memory …
    assert task.config["secrets"] == {"HF_TOKEN": None}  # … the config holds the name only
    assert SECRET not in task.to_yaml() and SECRET not in repr(task)
    assert SECRET not in h.text() and SECRET not in "\n".join(out.log_tail)
    assert "token is <HF_TOKEN>" in h.text() and "key <redacted>" in h.text()


# ---------------------------------------------------------------------------- managed jobs
def test_managed_job_success_and_recovered_preemption(tmp_path):
    h = Harness(tmp_path, FakeSky(["succeed", "preempt"]), mode="managed")
    assert h.run().status == "SUCCEEDED"
    out = h.run()
    assert out.status == "SUCCEEDED" and out.preemptions == 1  # the jobs controller recovered it
    assert h.fake.launched() == [] and [c[0] for c in h.fake.calls].count("jobs_launch") == 2


def test_managed_job_timeout_and_interrupt_cancel_it(tmp_path):
    h = Harness(tmp_path, FakeSky(["hang"]), mode="managed", job_timeout_s=0.3)
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == "timeout" and ("jobs_cancel", 1) in h.fake.calls
    h2 = Harness(tmp_path, FakeSky(["interrupt"]), mode="managed")
    with pytest.raises(KeyboardInterrupt):
        h2.run()
    assert ("jobs_cancel", 1) in h2.fake.calls


def test_managed_job_failure_names_the_status(tmp_path):
    h = Harness(tmp_path, FakeSky(["setup_fail"]), mode="managed")
    with pytest.raises(JobFailed) as exc:
        h.run()
    assert exc.value.kind == "setup_failed" and "ended FAILED_SETUP" in str(exc.value)


def test_prefix_stripping_and_cluster_names():
    assert strip_sky_prefix("(task, pid=123) hello (task, pid=1)") == "hello (task, pid=1)"
    assert strip_sky_prefix("(head, rank=0, pid=9) x") == "x"
    assert strip_sky_prefix("plain") == "plain"
    assert cluster_names("inoc", "Em_Risky_Finance_Qwen32B", 2) == [
        "inoc-em-risky-finance-qwen32b-0",
        "inoc-em-risky-finance-qwen32b-1",
    ]
