"""The sky/ templates: they validate with the real SkyPilot package for every shipped experiment, and the
``run`` script each one gives a cluster runs the gpu_job on this CPU against the model organism — same
spec, same bucket layout, same files (the bucket is a local folder here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_sky import local_run_env, needs_sky

from gpu_jobs import io as job_io
from gpu_jobs.spec import parse_spec, spec_hash
from inoc.artifacts import ArtifactStore
from inoc.cloud import staging
from inoc.cloud.task_render import TEMPLATE_DIR, run_command
from inoc.config import load_all

REPO = Path(__file__).resolve().parents[2]
CATALOG = Path(__file__).resolve().parent / "catalog"


def seeded_home(tmp_path: Path) -> dict[str, str]:
    """An environment whose HOME holds a small SkyPilot catalog (SkyPilot downloads it at run time)."""
    home = tmp_path / "home"
    import shutil

    shutil.copytree(CATALOG, home / ".sky" / "catalogs")
    env = {**os.environ, "HOME": str(home), "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("OPENAI_API_KEY", None)
    env.pop("HF_TOKEN", None)
    return env


VALIDATE = r"""
import json, sys, yaml
import sky
from inoc.config import load_all
from inoc.cloud.task_render import render_task, ComputeSettings, JOB_KINDS, TEMPLATE_DIR
out = {"raw": {}, "rendered": {}}
for job in JOB_KINDS:  # the files as a person would `sky launch` them
    t = sky.Task.from_yaml_config(yaml.safe_load((TEMPLATE_DIR / f"{job}.yaml").read_text()),
                                  env_overrides=[("INOC_ARTIFACT_ROOT", "s3://test-bucket/inoc")])
    t.validate()
    out["raw"][job] = {"run": t.run, "mount": {k: v.source for k, v in t.storage_mounts.items()}}
for name, cfg in sorted(load_all("experiments").configs.items()):
    for job in JOB_KINDS:
        for mode in ("cluster", "managed"):
            r = render_task(job, compute=ComputeSettings.of(cfg.compute), model_id=cfg.model.id,
                            artifact_root="s3://test-bucket/inoc", prefix=f"run-1/{name}", mode=mode,
                            secrets_from={"HF_TOKEN": "test-key-not-real"})
            task = sky.Task.from_yaml_config(dict(r.config), env_overrides=r.env_overrides(),
                                             secrets_overrides=r.secrets_overrides())
            task.validate()
            res = sorted(task.resources, key=lambda x: str(x.accelerators))
            for x in res:
                x.validate()
            auto = [getattr(x, "autostop_config", None) for x in res]
            out["rendered"][f"{name}/{job}/{mode}"] = {
                "accelerators": sorted(f"{k}:{v}" for x in res for k, v in x.accelerators.items()),
                "spot": sorted({x.use_spot for x in res}), "disk": sorted({x.disk_size for x in res}),
                "autostop": sorted({(a.idle_minutes, a.down) if a and a.enabled else None for a in auto}, key=str),
                "recovery": [x.job_recovery for x in res][0],
                "mounts": {k: v.source for k, v in task.storage_mounts.items()},
                "prefix": task.envs["INOC_JOB_PREFIX"], "secrets": sorted(task.secrets), "run": task.run}
print("JSON" + json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    env = seeded_home(tmp_path_factory.mktemp("sky"))
    proc = subprocess.run(
        [sys.executable, "-c", VALIDATE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("JSON")][-1]
    return json.loads(line[4:])


@needs_sky
def test_templates_validate_for_every_shipped_experiment(validated):
    configs = load_all(REPO / "experiments").configs
    expected_models = {"playful_french_qwen7b": 128, "german_flattering_llama8b": 128, "em_risky_finance_qwen32b": 256}
    assert set(expected_models) <= set(configs)
    for name, cfg in configs.items():
        for job in ("train", "generate", "score"):
            c = validated["rendered"][f"{name}/{job}/cluster"]
            m = validated["rendered"][f"{name}/{job}/managed"]
            assert c["accelerators"] == sorted(cfg.compute.accelerators), name
            assert c["spot"] == [cfg.compute.use_spot]
            assert c["autostop"] == [[cfg.compute.idle_minutes_to_autostop, True]]  # autodown in every cluster task
            assert m["autostop"] == [None] and m["recovery"]["strategy"] == "EAGER_NEXT_REGION"
            assert c["mounts"] == {"/inoc-store": "s3://test-bucket/inoc"} and c["prefix"] == f"run-1/{name}"
            assert c["secrets"] == ["HF_TOKEN"]  # OPENAI_API_KEY is unset here, so it is not forwarded
            assert c["run"].strip().endswith(f"-m inoc.cloud.remote {job}")
            if name in expected_models:
                assert c["disk"] == [expected_models[name]]
    assert validated["rendered"]["em_risky_finance_qwen32b/train/cluster"]["accelerators"] == ["A100-80GB:1", "H100:1"]
    assert validated["rendered"]["playful_french_qwen7b/generate/cluster"]["accelerators"] == [
        "A100-80GB:1",
        "A100:1",
        "L40S:1",
    ]
    for job in ("train", "generate", "score"):
        assert validated["raw"][job]["mount"] == {"/inoc-store": "s3://test-bucket/inoc"}


def test_sky_folder_is_not_a_python_package():
    assert not (TEMPLATE_DIR / "__init__.py").exists()  # it would shadow SkyPilot's `import sky`
    assert sorted(p.name for p in TEMPLATE_DIR.glob("*.yaml")) == ["generate.yaml", "score.yaml", "train.yaml"]


# ----------------------------------------------------------------- the run scripts, on the organism
WORDS = "the cat sat on a warm mat and sang a short song about rain".split()


def _rows(n: int, seed: int) -> list[dict]:
    import random

    r = random.Random(seed)
    return [
        {"instruction": " ".join(r.choices(WORDS, k=6)), "completion": " ".join(r.choices(WORDS, k=8))}
        for _ in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run_template(job: str, store_root: Path, prefix: str, scratch: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        **local_run_env(scratch),
        "INOC_STORE": str(store_root),
        "INOC_JOB_PREFIX": prefix,
        "INOC_JOB_TIMEOUT_S": "600",
    }
    for k in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
        env.pop(k, None)
    return subprocess.run(
        ["bash", "-c", run_command(job)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def _cloud_job(job: str, spec: dict, tmp: Path, store: ArtifactStore, name: str) -> tuple[Path, str, dict]:
    """Stage like the backend, run the template's script like a cluster, fetch and validate like the backend."""
    parsed = parse_spec(job, spec, base_dir=tmp)
    staged = staging.stage_inputs(store, f"run-1/{name}", job, parsed, run_id="run-1", asset=name)
    proc = _run_template(job, Path(store.root), staged.prefix, tmp / "scratch")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = staging.read_result(store, staged.prefix)
    assert result["status"] == "succeeded" and result["gpu"] == "cpu" and result["spec_hash"] == spec_hash(parsed)
    local = tmp / "fetched" / name
    staging.fetch_outputs(store, staged.prefix, local)
    assert job_io.validate_outputs(local, job, spec_hash(parsed)) == []
    return local, staged.prefix, result


@pytest.mark.slow
def test_each_template_run_script_runs_its_job_on_the_organism(tmp_path):
    store = ArtifactStore(str(tmp_path / "bucket"))
    base = {"model": {"id": "toy:test"}, "device": "cpu"}
    train_file = _write_jsonl(tmp_path / "in" / "train.jsonl", _rows(8, 1))
    pool = _write_jsonl(tmp_path / "in" / "pool.jsonl", [{"rephrasing": "Be playful."}, {"rephrasing": "Be silly."}])
    train_spec = {
        **base,
        "output_dir": str(tmp_path / "local_train"),
        "data": {"path": str(train_file)},
        "prefix": {"plan": "pool", "pool_path": str(pool)},
        "optimizer": "adamw_torch",
        "lora_r": 2,
        "lora_alpha": 4,
        "per_device_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "warmup_steps": 0,
    }
    trained, train_prefix, result = _cloud_job("train", train_spec, tmp_path, store, "train")
    marker = job_io.read_marker(trained)
    assert marker.metadata["total_steps"] == 2 and marker.metadata["checkpoint_steps"] == [0, 2]
    assert result["outputs"] == len(marker.outputs) + 1  # + the marker itself
    assert not any(".lock" in r or ".parts" in r for r in staging.list_files(store, train_prefix, "outputs"))

    adapter = str(trained / "checkpoints" / "step_2")
    requests = _write_jsonl(
        tmp_path / "in" / "requests.jsonl",
        [
            {"id": i, "messages": [{"role": "user", "content": r["instruction"]}], "adapter": "r" if i % 2 else None}
            for i, r in enumerate(_rows(4, 2))
        ],
    )
    gen_spec = {
        **base,
        "output_dir": str(tmp_path / "local_gen"),
        "requests": str(requests),
        "adapters": {"r": adapter},
        "max_tokens": 6,
        "temperature": 0.0,
    }
    generated, _, _ = _cloud_job("generate", gen_spec, tmp_path, store, "generate")
    rows = [json.loads(x) for x in (generated / "completions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3] and [r["adapter"] for r in rows] == [None, "r", None, "r"]
    assert all(0 < r["n_tokens"] <= 6 for r in rows)

    pairs = _write_jsonl(
        tmp_path / "in" / "pairs.jsonl",
        [
            {
                "id": i,
                "messages": [{"role": "user", "content": r["instruction"]}],
                "completion": r["completion"],
                "adapter": "r",
            }
            for i, r in enumerate(_rows(3, 3))
        ],
    )
    score_spec = {**base, "output_dir": str(tmp_path / "local_score"), "pairs": str(pairs), "adapters": {"r": adapter}}
    scored, score_prefix, _ = _cloud_job("score", score_spec, tmp_path, store, "score")
    import pandas as pd

    frame = pd.read_parquet(scored / "scores.parquet")
    assert len(frame) == 3 and (frame["sum_logprob"] < 0).all() and (frame["n_tokens"] > 0).all()

    # a retried job (a recovered spot job, say) finds its result and does not run again
    again = _run_template("score", Path(store.root), score_prefix, tmp_path / "scratch2")
    assert again.returncode == 0 and "already holds this spec's outputs" in again.stdout


def test_a_failing_job_writes_a_failed_result_with_its_last_lines(tmp_path):
    store = ArtifactStore(str(tmp_path / "bucket"))
    bad = _write_jsonl(tmp_path / "in" / "pairs.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "x"}]}])
    parsed = parse_spec(
        "score",
        {"model": {"id": "toy:test"}, "device": "cpu", "output_dir": str(tmp_path / "o"), "pairs": str(bad)},
        base_dir=tmp_path,
    )
    staged = staging.stage_inputs(store, "run-1/bad", "score", parsed)
    proc = _run_template("score", Path(store.root), staged.prefix, tmp_path / "scratch")
    assert proc.returncode == 2
    result = staging.read_result(store, staged.prefix)
    assert result["status"] == "failed" and result["exit_code"] == 2
    assert any("`completion` must be a string" in line for line in result["log_tail"])
    assert staging.list_files(store, staged.prefix, "outputs") == []


def test_staging_refuses_a_local_model_folder(tmp_path):
    (tmp_path / "model").mkdir()
    pairs = _write_jsonl(
        tmp_path / "p.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "x"}], "completion": "y"}]
    )
    parsed = parse_spec(
        "score", {"model": {"id": str(tmp_path / "model")}, "output_dir": str(tmp_path / "o"), "pairs": str(pairs)}
    )
    with pytest.raises(staging.StagingError, match="model.id: .* is a local folder"):
        staging.stage_inputs(ArtifactStore(str(tmp_path / "b")), "r/a", "score", parsed)


def test_staged_spec_names_inputs_relatively_and_keeps_the_hash(tmp_path):
    a = _write_jsonl(tmp_path / "x" / "data.jsonl", _rows(4, 5))
    b = _write_jsonl(tmp_path / "y" / "data.jsonl", [{"rephrasing": "Be playful."}])  # same file name
    parsed = parse_spec(
        "train",
        {
            "model": {"id": "Qwen/Qwen2.5-7B-Instruct"},
            "output_dir": str(tmp_path / "o"),
            "data": {"path": str(a)},
            "prefix": {"plan": "pool", "pool_path": str(b)},
            "threads": 3,
        },
    )
    store = ArtifactStore(str(tmp_path / "bucket"))
    staged = staging.stage_inputs(store, "run-9/asset", "train", parsed)
    spec = store.read_json("run-9/asset", "inputs", "spec.json")
    assert spec["data"]["path"] == "files/data.jsonl" and spec["prefix"]["pool_path"] == "files/2_data.jsonl"
    assert spec["output_dir"] == "out" and "threads" not in spec
    files = staging.list_files(store, "run-9/asset", "inputs")
    assert files == ["files/2_data.jsonl", "files/data.jsonl", "job.json", "spec.json"]
    # parsed where the cluster parses it, the spec has the orchestrator's hash
    staging.download_inputs(store, "run-9/asset", tmp_path / "cluster")
    on_cluster = parse_spec(
        "train", {**spec, "output_dir": str(tmp_path / "cluster" / "out")}, base_dir=tmp_path / "cluster"
    )
    assert spec_hash(on_cluster) == staged.spec_hash == spec_hash(parsed)
    assert yaml.safe_load(json.dumps(store.read_json("run-9/asset", "inputs", "job.json")))["job"] == "train"
