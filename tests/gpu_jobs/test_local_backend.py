"""The local backend: a test asset runs a gpu_job through Dagster Pipes with ``dagster.materialize``."""

import json
import stat
import sys
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, DagsterEventType, DagsterInstance, MaterializeResult, asset, materialize
from gpu_helpers import train_rows, write_jsonl
from test_score import random_pairs

from gpu_jobs import io
from inoc_assets.backends import LocalGpuJobs


def _asset(job: str, spec: dict):
    @asset
    def gpu_asset(context: AssetExecutionContext, gpu_jobs: LocalGpuJobs) -> MaterializeResult:
        result = gpu_jobs.run(context, job, spec)
        assert result.path("scores.parquet").is_file() or job != "score"
        return result.materialize_result(metadata={"asset_side": 1})

    return gpu_asset


def _materialize(assets, resource: LocalGpuJobs):
    instance = DagsterInstance.ephemeral()
    result = materialize(assets, resources={"gpu_jobs": resource}, instance=instance, raise_on_error=False)
    return instance, result


def _failure_message(result) -> str:
    (event,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    data = event.step_failure_data
    parts = [data.error.message if data.error else ""]
    if data.user_failure_data is not None:
        parts.append(data.user_failure_data.description or "")
    return "\n".join(parts)


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pairs.jsonl", random_pairs(6, seed=11))


def test_score_job_through_pipes(tmp_path, tiny_model, pairs_file):
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": str(tiny_model)},
        "pairs": str(pairs_file),
        "shard_size": 3,
    }
    instance, result = _materialize([_asset("score", spec)], LocalGpuJobs(threads=1))
    assert result.success
    (mat,) = result.asset_materializations_for_node("gpu_asset")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["n_pairs"] == 6 and md["n_scored"] == 6 and md["parts"] == 2 and md["reused"] is False
    assert md["tokens_per_s"] > 0 and md["asset_side"] == 1 and md["gpu_job"] == "score"
    assert md["output_dir"] == str(tmp_path / "out") and len(md["spec_hash"]) == 64
    assert io.validate_outputs(tmp_path / "out", "score", md["spec_hash"]) == []
    assert json.loads((tmp_path / "out/spec.json").read_text())["job"] == "score"
    # the job's log and progress lines arrived as Dagster log events of the run
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("progress score: 2/2 parts" in m for m in messages)
    assert any("pairs on transformers" in m for m in messages)

    # same spec again: the job reuses its outputs, the materialization says so
    _, again = _materialize([_asset("score", spec)], LocalGpuJobs(threads=1))
    (mat2,) = again.asset_materializations_for_node("gpu_asset")
    assert again.success and mat2.metadata["reused"].value is True
    assert mat2.metadata["spec_hash"].value == md["spec_hash"]


def test_train_job_through_pipes(tmp_path, tiny_model):
    write_jsonl(tmp_path / "train.jsonl", train_rows(8))
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": str(tiny_model)},
        "data": {"path": str(tmp_path / "train.jsonl")},
        "optimizer": "adamw_torch",
        "lora_r": 2,
        "lora_alpha": 4,
        "per_device_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "warmup_steps": 0,
    }
    _, result = _materialize([_asset("train", spec)], LocalGpuJobs(threads=1))
    assert result.success, _failure_message(result)
    (mat,) = result.asset_materializations_for_node("gpu_asset")
    assert mat.metadata["total_steps"].value == 2 and mat.metadata["checkpoint_steps"].value == [0, 2]
    assert (tmp_path / "out/checkpoints/step_2/adapter_model.safetensors").is_file()


def test_failed_job_fails_the_step_with_its_last_lines(tmp_path, tiny_model):
    bad = write_jsonl(tmp_path / "pairs.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "x"}]}])
    spec = {"output_dir": str(tmp_path / "out"), "model": {"id": str(tiny_model)}, "pairs": str(bad)}
    _, result = _materialize([_asset("score", spec)], LocalGpuJobs(threads=1))
    assert not result.success
    msg = _failure_message(result)
    assert "gpu_jobs.score failed with exit code 2" in msg
    assert "line 1: `completion` must be a string" in msg
    assert io.read_complete(tmp_path / "out") is None


def test_bad_spec_fails_the_step_naming_the_field(tmp_path, tiny_model):
    write_jsonl(tmp_path / "train.jsonl", train_rows(4))
    spec = {
        "output_dir": str(tmp_path / "out"),
        "model": {"id": str(tiny_model)},
        "data": {"path": str(tmp_path / "train.jsonl")},
        "prefix": {"plan": "pool"},
    }
    _, result = _materialize([_asset("train", spec)], LocalGpuJobs())
    assert not result.success
    assert "prefix.pool: prefix plan 'pool' needs" in _failure_message(result)


def test_malformed_output_fails_the_step(tmp_path, tiny_model, pairs_file):
    """A job that exits 0 but leaves a marker whose files are missing must not pass as done."""
    fake = tmp_path / "fake_python"
    fake.write_text(f"""#!{sys.executable}
import json, sys
spec = json.load(open(sys.argv[sys.argv.index("--spec") + 1]))
out = spec["output_dir"]
from gpu_jobs import io
from gpu_jobs.spec import load_spec, spec_hash
h = spec_hash(load_spec("score", sys.argv[sys.argv.index("--spec") + 1]))
io.write_marker(__import__("pathlib").Path(out), io.Marker(job="score", spec_hash=h,
                outputs={{"scores.parquet": {{"bytes": 10, "sha256": "0" * 64}}}}))
print("pretending all went well")
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    spec = {"output_dir": str(tmp_path / "out"), "model": {"id": str(tiny_model)}, "pairs": str(pairs_file)}
    _, result = _materialize([_asset("score", spec)], LocalGpuJobs(python=str(fake)))
    assert not result.success
    msg = _failure_message(result)
    assert "exited 0 but its outputs" in msg and "scores.parquet: missing" in msg
    assert "pretending all went well" in msg
