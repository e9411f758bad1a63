"""Spec validation: every bad spec fails before anything loads, with the field named."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from gpu_helpers import PY, REPO, job_env, train_rows, write_jsonl, write_spec

from gpu_jobs import spec as S


@pytest.fixture
def files(tmp_path: Path, tiny_model: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", train_rows(8))
    write_jsonl(tmp_path / "req.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "hi"}]}])
    write_jsonl(
        tmp_path / "pairs.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "hi"}], "completion": "x"}]
    )
    return tmp_path


def train_spec(model: Path, **over) -> dict:
    spec = {
        "output_dir": "out",
        "model": {"id": str(model)},
        "data": {"path": "train.jsonl"},
        "optimizer": "adamw_torch",
    }
    spec.update(over)
    return spec


def problems(job: str, data: dict, base: Path) -> list[str]:
    with pytest.raises(S.SpecError) as info:
        S.parse_spec(job, data, base_dir=base)
    return info.value.problems


def test_valid_train_spec_defaults_follow_spec_md(files, tiny_model):
    spec = S.parse_spec("train", train_spec(tiny_model), base_dir=files)
    assert (spec.lora_r, spec.lora_alpha, spec.lora_dropout, spec.use_rslora) == (32, 16, 0.0, True)
    assert (spec.per_device_batch_size, spec.gradient_accumulation_steps, spec.epochs) == (4, 8, 1)
    assert (spec.learning_rate, spec.warmup_steps, spec.weight_decay, spec.max_seq_length) == (1e-4, 30, 0.01, 2048)
    assert spec.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert S.TrainSpec.model_fields["optimizer"].default == "adamw_8bit"
    assert spec.data.path == str(files / "train.jsonl")  # resolved against the spec's folder
    assert spec.output_dir == str(files / "out")


def test_missing_field_is_named(files, tiny_model):
    data = train_spec(tiny_model)
    del data["data"]["path"]
    assert problems("train", data, files) == ["data.path: required field is missing"]
    data = train_spec(tiny_model)
    del data["model"]
    assert problems("train", data, files) == ["model: required field is missing"]


def test_wrong_type_is_named(files, tiny_model):
    got = problems("train", train_spec(tiny_model, lora_r="32"), files)
    assert len(got) == 1 and got[0].startswith("lora_r: ") and "'32'" in got[0]
    got = problems(
        "generate",
        {"output_dir": "o", "model": {"id": str(tiny_model)}, "requests": "req.jsonl", "temperature": "hot"},
        files,
    )
    assert got[0].startswith("temperature: ")


def test_nonexistent_input_file_is_named(files, tiny_model):
    got = problems("train", train_spec(tiny_model, data={"path": "nope.jsonl"}), files)
    assert len(got) == 1 and got[0].startswith("data.path: no such file") and "nope.jsonl" in got[0]
    got = problems("score", {"output_dir": "o", "model": {"id": str(tiny_model)}, "pairs": "missing.jsonl"}, files)
    assert got[0].startswith("pairs: no such file")
    got = problems("generate", {"output_dir": "o", "model": {"id": "./no_model_here"}, "requests": "req.jsonl"}, files)
    assert got[0].startswith("model.id: no such model folder")
    got = problems(
        "generate",
        {"output_dir": "o", "model": {"id": str(tiny_model)}, "requests": "req.jsonl", "adapters": {"a": str(files)}},
        files,
    )
    assert got[0].startswith("adapters: adapter 'a': no adapter_config.json")


def test_pool_plan_without_pool_is_named(files, tiny_model):
    got = problems("train", train_spec(tiny_model, prefix={"plan": "pool"}), files)
    assert len(got) == 1 and got[0].startswith("prefix.pool: prefix plan 'pool' needs")
    got = problems("train", train_spec(tiny_model, prefix={"plan": "fixed"}), files)
    assert got[0].startswith("prefix.text: ")
    got = problems("train", train_spec(tiny_model, prefix={"plan": "pool", "pool": ["a"], "min_pool_size": 5}), files)
    assert got[0].startswith("prefix.pool: the pool has 1 phrases")


def test_unknown_field_and_wrong_job(files, tiny_model):
    got = problems("train", train_spec(tiny_model, lora_rank=8), files)
    assert got == ["lora_rank: unknown field (check the spelling)"]
    with pytest.raises(S.SpecError, match="job: the spec is for 'score'"):
        S.parse_spec("train", train_spec(tiny_model, job="score"), base_dir=files)


def test_environment_checks_name_the_field(files, tiny_model):
    spec = S.parse_spec("train", train_spec(tiny_model, optimizer="adamw_8bit"), base_dir=files)
    with pytest.raises(S.SpecError, match="optimizer: 'adamw_8bit' needs the bitsandbytes"):
        S.check_environment(spec)
    spec = S.parse_spec(
        "score",
        {"output_dir": "o", "model": {"id": str(tiny_model)}, "pairs": "pairs.jsonl", "backend": "vllm"},
        base_dir=files,
    )
    with pytest.raises(S.SpecError, match="backend: 'vllm' but the vllm package"):
        S.check_environment(spec)


def test_spec_hash_covers_inputs_not_placement(files, tiny_model):
    a = S.parse_spec("train", train_spec(tiny_model), base_dir=files)
    b = S.parse_spec("train", train_spec(tiny_model, output_dir="elsewhere", threads=3), base_dir=files)
    c = S.parse_spec("train", train_spec(tiny_model, learning_rate=2e-4), base_dir=files)
    assert S.spec_hash(a) == S.spec_hash(b) != S.spec_hash(c)
    before = S.spec_hash(a)
    write_jsonl(files / "train.jsonl", train_rows(9))  # same path, new content
    assert S.spec_hash(a) != before


def test_cli_bad_spec_exits_2_before_importing_torch(files, tiny_model):
    spec = write_spec(files / "bad.json", train_spec(tiny_model, prefix={"plan": "pool"}))
    # -X importtime lists every module imported; torch must not be among them
    t0 = time.perf_counter()
    proc = subprocess.run(
        [PY, "-X", "importtime", "-m", "gpu_jobs.train", "--spec", str(spec)],
        cwd=REPO,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "prefix.pool: prefix plan 'pool' needs" in proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" not in imported and "transformers" not in imported
    assert time.perf_counter() - t0 < 30
    assert not (files / "out").exists()


def test_cli_bad_input_row_exits_2_naming_the_line(files, tiny_model):
    (files / "train.jsonl").write_text(json.dumps({"instruction": "a"}) + "\n")
    spec = write_spec(files / "s.json", train_spec(tiny_model))
    proc = subprocess.run(
        [PY, "-m", "gpu_jobs.train", "--spec", str(spec)],
        cwd=REPO,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "data.path:" in proc.stderr and "line 1: field 'completion' missing or blank" in proc.stderr
