"""``SkyPilotGpuJobs`` inside Dagster: a test asset materialized with ``dagster.materialize``, SkyPilot
replaced by the fake SDK (``inoc_assets.backends.skypilot.sdk_factory``) and nothing else."""

import json
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterEventType, DagsterInstance, MaterializeResult, asset, materialize
from dagster._core.errors import DagsterExecutionInterruptedError
from fake_sky import FakeSky, local_run_env, needs_sky

from gpu_jobs import io as job_io
from inoc.cloud.launcher import cluster_names
from inoc.config.schema import ComputeConfig
from inoc_assets.backends import SkyPilotGpuJobs
from inoc_assets.backends import skypilot as backend

SECRET = "test-key-not-real-hf-0007"
COMPUTE = ComputeConfig(backend="skypilot", accelerators=["A100-80GB:1"], idle_minutes_to_autostop=5, max_clusters=1)
FAST = dict(poll_interval_s=0.02, retry_wait_s=0.0, require_bucket=False, enforce_budget=False)


def _pairs(path: Path, n: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(
            json.dumps({"id": i, "messages": [{"role": "user", "content": f"say {w}"}], "completion": f"{w} {w}"})
            + "\n"
            for i, w in enumerate(["cat", "sun", "rain"][:n])
        )
    )
    return path


def _asset(spec: dict, experiment: str = ""):
    @asset
    def scores(context: AssetExecutionContext, gpu_jobs: SkyPilotGpuJobs) -> MaterializeResult:
        result = gpu_jobs.run(context, "score", spec, compute=COMPUTE, experiment=experiment)
        return result.materialize_result()

    return scores


def _materialize(spec, resource, experiment="", tags=None):
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [_asset(spec, experiment)], resources={"gpu_jobs": resource}, instance=instance, raise_on_error=False, tags=tags
    )
    return instance, result


def _failure(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    data = event.step_failure_data
    return "\n".join(
        [
            data.error.message if data.error else "",
            (data.user_failure_data.description or "") if data.user_failure_data else "",
        ]
    )


@pytest.fixture
def fake(monkeypatch, tmp_path, inoc_home):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    holder: dict[str, FakeSky] = {}

    def use(script: list[str], **kw) -> FakeSky:
        holder["sky"] = FakeSky(script, run_env=local_run_env(tmp_path / "scratch"), **kw)
        monkeypatch.setattr(backend, "sdk_factory", lambda: holder["sky"])
        return holder["sky"]

    return use


@pytest.mark.slow
def test_a_cloud_job_materializes_with_its_gpu_wall_time_and_cost(tmp_path, fake):
    sky = fake(["run"])
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": "toy:test"},
        "device": "cpu",
        "pairs": str(_pairs(tmp_path / "pairs.jsonl")),
    }
    resource = SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **FAST)
    instance, result = _materialize(spec, resource)
    assert result.success, _failure(result)
    (mat,) = result.asset_materializations_for_node("scores")
    md = {k: v.value for k, v in mat.metadata.items()}
    # the job's own metadata, as the local backend reports it …
    assert md["gpu_job"] == "score" and md["n_pairs"] == 3 and md["reused"] is False and len(md["spec_hash"]) == 64
    assert job_io.validate_outputs(tmp_path / "out", "score", md["spec_hash"]) == []
    # … and where it ran, for how long, at what price
    assert md["cloud_cluster"] == cluster_names("inoc", "default", 1)[0] and md["cloud_launched_cluster"] is True
    assert md["cloud_accelerator"] == "A100-80GB:1" and md["cloud_gpu"] == "cpu" and md["cloud_usd_per_hour"] == 1.39
    assert md["cloud_est_cost_usd"] == pytest.approx(1.39 * md["cloud_wall_s"] / 3600, abs=1e-3)
    assert md["cloud_prefix"].startswith(str(tmp_path / "bucket" / result.run_id))
    assert sky.calls[1][0] == "launch" and sky.calls[1][2:] == (5, True)  # autodown from compute.idle_minutes
    assert sky.downed() == [] and sky.gpus_left_without_autodown() == []
    # the job's lines reached the run's log, without SkyPilot's prefix; the secret reached nothing
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("[gpu_jobs.score]") for m in logs)
    assert sky.tasks[0].secrets == {"HF_TOKEN": SECRET}
    written = "".join(
        p.read_text(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".json", ".jsonl", ".txt")
    )
    assert "HF_TOKEN" in (tmp_path / "out" / "sky_task.yaml").read_text()
    for text in (written, "\n".join(logs), json.dumps({k: str(v) for k, v in md.items()})):
        assert SECRET not in text
    # materialized again: the outputs are here, nothing is launched (the fake has no scenario left)
    _, again = _materialize(spec, resource)
    (mat2,) = again.asset_materializations_for_node("scores")
    assert again.success and mat2.metadata["reused"].value is True and mat2.metadata["cloud_launch"].value is False


def test_a_failed_cloud_job_fails_the_step_and_tears_down(tmp_path, fake):
    sky = fake(["fail"])
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": "toy:test"},
        "pairs": str(_pairs(tmp_path / "p.jsonl")),
    }
    _, result = _materialize(spec, SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **FAST))
    assert not result.success
    msg = _failure(result)
    cluster = cluster_names("inoc", "default", 1)[0]
    assert "ended FAILED [failed]" in msg and f"down {cluster}" in msg
    assert sky.downed() == [cluster] and sky.gpus_left_without_autodown() == []


def test_terminating_the_run_cancels_the_job_and_tears_down(tmp_path, fake):
    sky = fake(["interrupt"], interrupt_with=DagsterExecutionInterruptedError)
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": "toy:test"},
        "pairs": str(_pairs(tmp_path / "p.jsonl")),
    }
    _, result = _materialize(spec, SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **FAST))
    assert not result.success
    cluster = cluster_names("inoc", "default", 1)[0]
    assert ("cancel", cluster, 1) in sky.calls and sky.downed() == [cluster]
    assert sky.gpus_left_without_autodown() == []


def test_bad_spec_and_local_store_fail_before_any_launch(tmp_path, fake):
    sky = fake([])
    spec = {"output_dir": str(tmp_path / "out"), "model": {"id": "toy:test"}, "pairs": str(tmp_path / "missing.jsonl")}
    _, result = _materialize(spec, SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **FAST))
    assert not result.success and "pairs: no such file" in _failure(result)
    spec["pairs"] = str(_pairs(tmp_path / "p.jsonl"))
    _, result = _materialize(
        spec, SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **{**FAST, "require_bucket": True})
    )
    assert (
        not result.success and "INOC_ARTIFACT_ROOT=" in _failure(result) and "is not a bucket URL" in _failure(result)
    )
    assert sky.calls == []


class _Info:  # the shape of sky.catalog.common.InstanceTypeInfo
    def __init__(self, cloud, instance_type, name, price, spot):
        self.cloud, self.instance_type, self.accelerator_name, self.accelerator_count = cloud, instance_type, name, 1.0
        self.price, self.spot_price, self.region = price, spot, "us-east-1"


@needs_sky
def test_the_budget_guard_stops_a_launch_unless_the_run_confirms_it(tmp_path, fake, monkeypatch):
    """The catalog is SkyPilot's too: ``sky.catalog.list_accelerators`` answers from a small table."""
    import sky.catalog

    monkeypatch.setattr(
        sky.catalog,
        "list_accelerators",
        lambda **kw: (
            {"A100-80GB": [_Info("RunPod", "1x_A100-80GB", "A100-80GB", 1.39, 1.39)]}
            if kw["clouds"] == "runpod"
            else {}
        ),
    )
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir()
    src = Path(__file__).resolve().parents[2] / "experiments" / "playful_french_qwen7b.yaml"
    (exp_dir / "playful_french_qwen7b.yaml").write_text(
        src.read_text().replace("max_budget_usd: 400", "max_budget_usd: 10")
    )
    monkeypatch.setenv("INOC_EXPERIMENTS_DIR", str(exp_dir))
    sky = fake(["succeed"])
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": "toy:test"},
        "pairs": str(_pairs(tmp_path / "p.jsonl")),
    }
    resource = SkyPilotGpuJobs(artifact_root=str(tmp_path / "bucket"), **{**FAST, "enforce_budget": True})
    _, result = _materialize(spec, resource, experiment="playful_french_qwen7b")
    assert not result.success
    assert "playful_french_qwen7b: the estimated cost $" in _failure(result)
    assert "exceeds compute.max_budget_usd = $10.00" in _failure(result) and sky.calls == []
    # confirmed by a run tag: it launches (and this scripted job leaves nothing in the bucket, which fails)
    _, result = _materialize(
        spec, resource, experiment="playful_french_qwen7b", tags={"inoc/confirm_budget": "playful_french_qwen7b"}
    )
    assert sky.launched() == [cluster_names("inoc", "playful_french_qwen7b", 1)[0]]
    assert (
        not result.success
        and "ended SUCCEEDED but" in _failure(result)
        and "no outputs in the bucket" in _failure(result)
    )
