"""Killed jobs, reruns and reuse: no partial output is ever read as complete."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from gpu_helpers import PY, REPO, job_env, train_rows, write_jsonl, write_spec
from test_score import random_pairs

from gpu_jobs import io, modeling, score
from gpu_jobs.report import Reporter
from gpu_jobs.runner import execute
from gpu_jobs.spec import load_spec, spec_hash


def _start(job: str, spec: Path, pause: float = 0.0) -> subprocess.Popen:
    env = job_env()
    if pause:
        env["GPU_JOBS_PAUSE_AFTER_PART_S"] = str(pause)
    return subprocess.Popen(
        [PY, "-m", f"gpu_jobs.{job}", "--spec", str(spec)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"job ended (rc {proc.returncode}) before the kill:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the job to make progress")
        time.sleep(0.05)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_killed_score_job_resumes_and_is_never_read_as_complete(tmp_path, tiny_model):
    pairs = random_pairs(30, seed=7)
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    spec_path = write_spec(
        tmp_path / "spec.json",
        {"output_dir": "out", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl", "shard_size": 8},
    )
    out = tmp_path / "out"
    proc = _start("score", spec_path, pause=60)
    _wait_for(lambda: list(out.glob(".parts/*/part-00000.parquet")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # what a reader sees: a part, no marker, no final table
    assert io.read_complete(out) is None
    assert io.validate_outputs(out, "score")[0].startswith("_COMPLETE.json: missing")
    assert not (out / "scores.parquet").exists()
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]

    log = _finish(_start("score", spec_path))
    assert "resuming: 1 of 4 parts already done" in log
    spec = load_spec("score", spec_path)
    assert io.validate_outputs(out, "score", spec_hash(spec)) == []
    assert not (out / ".parts").exists()
    resumed = pd.read_parquet(out / "scores.parquet")

    # identical to an uninterrupted run
    fresh_spec = load_spec(
        "score",
        write_spec(
            tmp_path / "fresh.json",
            {"output_dir": "fresh", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl", "shard_size": 8},
        ),
    )
    with Reporter("score") as rep:
        execute("score", fresh_spec, score.run, rep)
    fresh = pd.read_parquet(tmp_path / "fresh/scores.parquet")
    pd.testing.assert_frame_equal(resumed, fresh)

    # a rerun with the same spec reuses the outputs: no torch import at all
    t0 = time.perf_counter()
    proc = subprocess.run(
        [PY, "-X", "importtime", "-m", "gpu_jobs.score", "--spec", str(spec_path)],
        cwd=REPO,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "reusing finished outputs" in proc.stderr
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "torch" not in imported
    assert time.perf_counter() - t0 < 20


def test_killed_train_job_reruns_to_complete_valid_outputs(tmp_path, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    write_jsonl(tmp_path / "train.jsonl", train_rows(16))
    spec_path = write_spec(
        tmp_path / "spec.json",
        {
            "output_dir": "out",
            "model": {"id": str(tiny_model)},
            "data": {"path": "train.jsonl"},
            "optimizer": "adamw_torch",
            "lora_r": 4,
            "lora_alpha": 8,
            "per_device_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "warmup_steps": 1,
            "checkpoints": {"kind": "pow2"},
        },
    )
    out = tmp_path / "out"
    proc = _start("train", spec_path, pause=60)
    _wait_for(lambda: (out / "checkpoints/step_1/adapter_model.safetensors").exists(), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert io.read_complete(out) is None and not (out / "losses.parquet").exists()
    # every adapter under its final name is whole (written to a temporary folder, then renamed)
    for ckpt in (out / "checkpoints").iterdir():
        if not ckpt.name.startswith("."):
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), ckpt)

    _finish(_start("train", spec_path))
    spec = load_spec("train", spec_path)
    assert io.validate_outputs(out, "train", spec_hash(spec)) == []
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0", "step_1", "step_2", "step_4", "step_8"]
    assert pd.read_parquet(out / "losses.parquet")["step"].tolist() == list(range(1, 9))


def test_rerun_with_the_same_spec_loads_no_model(tmp_path, tiny_model, monkeypatch):
    write_jsonl(tmp_path / "pairs.jsonl", random_pairs(4, seed=8))
    spec_path = write_spec(
        tmp_path / "spec.json", {"output_dir": "out", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl"}
    )
    spec = load_spec("score", spec_path)
    with Reporter("score") as rep:
        first, reused = execute("score", spec, score.run, rep)
    assert not reused

    def boom(*a, **k):
        raise AssertionError("a model was loaded on the reuse path")

    monkeypatch.setattr(modeling, "load_model", boom)
    monkeypatch.setattr(modeling, "load_tokenizer", boom)
    with Reporter("score") as rep:
        again, reused = execute("score", spec, score.run, rep)
    assert reused and again.spec_hash == first.spec_hash and again.finished_at == first.finished_at

    # a different spec into the same folder starts over (and would need the model)
    changed = load_spec(
        "score",
        write_spec(
            tmp_path / "spec.json",
            {"output_dir": "out", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl", "score_end_of_turn": False},
        ),
    )
    with Reporter("score") as rep, pytest.raises(AssertionError, match="a model was loaded"):
        execute("score", changed, score.run, rep)
    assert io.read_marker(tmp_path / "out") is None  # the old marker went first


def test_damaged_outputs_are_not_complete(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", random_pairs(3, seed=9))
    spec = load_spec(
        "score",
        write_spec(
            tmp_path / "spec.json", {"output_dir": "out", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl"}
        ),
    )
    with Reporter("score") as rep:
        execute("score", spec, score.run, rep)
    out = tmp_path / "out"
    table = out / "scores.parquet"
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    table.write_bytes(bytes(data))
    assert io.read_complete(out, spec_hash(spec)) is not None  # the cheap check (sizes) passes …
    assert any("sha256 differs" in p for p in io.validate_outputs(out, "score"))  # … the full one does not
    table.write_bytes(bytes(data[:100]))  # truncated
    assert io.read_complete(out, spec_hash(spec)) is None


def test_atomic_writes_leave_no_partial_file(tmp_path):
    target = tmp_path / "t.jsonl"

    def rows():
        yield {"a": 1}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        io.write_jsonl_atomic(target, rows())
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(RuntimeError), io.atomic_dir(tmp_path / "ckpt") as d:
        (d / "adapter_config.json").write_text("{}")
        raise RuntimeError("killed mid-save")
    assert not (tmp_path / "ckpt").exists() and not list(tmp_path.iterdir())
    assert os.listdir(tmp_path) == []


def test_two_jobs_never_share_an_output_folder(tmp_path, tiny_model):
    write_jsonl(tmp_path / "pairs.jsonl", random_pairs(2, seed=10))
    spec = load_spec(
        "score",
        write_spec(
            tmp_path / "spec.json", {"output_dir": "out", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl"}
        ),
    )
    (tmp_path / "out").mkdir()
    with io.exclusive(tmp_path / "out"), Reporter("score") as rep, pytest.raises(io.OutputBusy, match="another job"):
        execute("score", spec, score.run, rep)
    with Reporter("score") as rep:  # the lock went with its holder
        assert execute("score", spec, score.run, rep)[1] is False
