"""``RealSky``, the adapter onto SkyPilot 0.14's SDK: the real ``sky.Task`` is built from the rendered
config; the SDK's request functions (``sky.launch``, ``sky.get``, …) are replaced by recorders."""

import pytest
from fake_sky import needs_sky

from inoc.cloud.sky_sdk import MISSING, ClusterGone, RealSky, SkyError
from inoc.cloud.task_render import ComputeSettings, render_task

pytestmark = needs_sky
SECRET = "test-key-not-real-0099"


class _Res:  # the parts of sky.Resources a handle's launched_resources gives
    cloud, region, instance_type, accelerators, use_spot = "RunPod", "US", "1x_A100-80GB_SECURE", {"A100-80GB": 1}, True

    def get_cost(self, seconds):
        return 1.39 * seconds / 3600


class _Handle:
    launched_resources = _Res()


@pytest.fixture
def sdk(monkeypatch):
    import sky

    calls = []
    results = {}

    def request(name):
        def fn(*args, **kwargs):
            calls.append((name, args, kwargs))
            return f"req-{name}"

        return fn

    for name in ("launch", "exec", "job_status", "cancel", "down", "autostop", "status", "queue"):
        monkeypatch.setattr(sky, name, request(name))
    monkeypatch.setattr(sky.jobs, "launch", request("jobs.launch"))
    monkeypatch.setattr(sky.jobs, "queue_v2", request("jobs.queue_v2"))
    monkeypatch.setattr(sky.jobs, "cancel", request("jobs.cancel"))

    def get(req):
        calls.append(("get", req))
        value = results[req]
        if isinstance(value, BaseException):
            raise value
        return value

    def stream_and_get(req, output_stream=None, **kw):
        calls.append(("stream_and_get", req))
        output_stream.write("provisioning 1/2\nprovisioning 2/2\n")
        return get(req)

    monkeypatch.setattr(sky, "get", get)
    monkeypatch.setattr(sky, "stream_and_get", stream_and_get)
    monkeypatch.setattr(sky, "api_cancel", request("api_cancel"))
    return RealSky(), calls, results


def _task():
    return render_task(
        "score",
        compute=ComputeSettings(),
        model_id="Qwen/Qwen2.5-7B-Instruct",
        artifact_root="s3://test-bucket/inoc",
        prefix="r/a",
        secrets_from={"HF_TOKEN": SECRET},
    )


def test_launch_builds_the_task_with_secrets_and_arms_autodown(sdk):
    real, calls, results = sdk
    results["req-launch"] = (3, _Handle())
    lines = []
    where = real.launch(_task(), "inoc-x-0", idle_minutes=10, down=True, log=lines.append)
    name, args, kwargs = calls[0]
    task = args[0]
    assert name == "launch" and kwargs["cluster_name"] == "inoc-x-0"
    assert kwargs["idle_minutes_to_autostop"] == 10 and kwargs["down"] is True
    assert (
        task.envs["INOC_JOB_PREFIX"] == "r/a" and task.storage_mounts["/inoc-store"].source == "s3://test-bucket/inoc"
    )
    assert {k: v.get_secret_value() for k, v in task.secrets.items()} == {"HF_TOKEN": SECRET}
    assert lines == ["provisioning 1/2", "provisioning 2/2"]
    assert (where.job_id, where.accelerator, where.accelerator_count, where.use_spot) == (3, "A100-80GB", 1, True)
    assert where.hourly_usd == pytest.approx(1.39) and where.cloud == "RunPod"


def test_sdk_errors_map_to_the_launchers_and_interrupts_abort_only_launches(sdk):
    from sky import exceptions

    real, calls, results = sdk
    results["req-launch"] = exceptions.ResourcesUnavailableError("no A100-80GB anywhere")
    with pytest.raises(SkyError) as err:
        real.launch(_task(), "c", idle_minutes=5, down=True, log=print)
    assert err.value.retryable
    results["req-job_status"] = exceptions.ClusterNotUpError("c is STOPPED")
    with pytest.raises(ClusterGone):
        real.job_status("c", 1)
    results["req-launch"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        real.launch(_task(), "c", idle_minutes=5, down=True, log=print)
    assert calls[-1][0] == "api_cancel" and calls[-1][1] == ("req-launch",)  # the launch request is aborted
    results["req-down"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        real.down("c")
    assert calls[-1][0] == "get"  # a teardown request is left to finish


def test_status_queue_logs_and_managed_jobs(sdk, monkeypatch):
    from sky.skylet import job_lib

    import sky

    real, calls, results = sdk
    results["req-job_status"] = {7: job_lib.JobStatus.FAILED_SETUP}
    assert real.job_status("c", 7) == "FAILED_SETUP"
    results["req-job_status"] = {7: None}
    assert real.job_status("c", 7) == MISSING
    results["req-status"] = [{"name": "c", "status": sky.ClusterStatus.UP}]
    assert real.clusters(["c", "d"]) == {"c": "UP"}
    results["req-queue"] = [object(), object()]
    assert real.active_jobs("c") == 2 and calls[-2][2] == {"skip_finished": True}
    monkeypatch.setattr(sky, "tail_logs", lambda c, j, follow, preload_content: iter(["a\nb\n", "c\n", None, "x"]))
    assert list(real.tail_logs("c", 7)) == ["a", "b", "c"]
    results["req-jobs.launch"] = ([42], None)
    assert real.jobs_launch(_task(), "score r/a", log=print) == 42

    class _Rec:
        job_id, status, cloud, region, recovery_count, accelerators, failure_reason = (
            42,
            sky.ManagedJobStatus.RECOVERING,
            "AWS",
            "us-west-2",
            1,
            {"L40S": 1},
            None,
        )

    results["req-jobs.queue_v2"] = ([_Rec()], 1, {}, 1)
    state, info = real.jobs_status(42)
    assert state == "RECOVERING" and info["recovery_count"] == 1
    results["req-jobs.cancel"] = None
    real.jobs_cancel(42)
    assert calls[-2][0] == "jobs.cancel" and calls[-2][2] == {"job_ids": [42]}
