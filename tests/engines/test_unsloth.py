"""Unsloth (the real package, in .venv-unsloth) trains on this CPU through the train job: its loss curve
tracks the PEFT backend's on the same data and seed, and its adapter loads in PEFT and in vLLM."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
from engine_helpers import adapter_data, run_job, train_spec
from gpu_helpers import write_jsonl

#: Stated tolerance of the loss curves: per step, relative. Observed on CPU: 0.0 (Unsloth 2026.10.9 runs
#: transformers' own modules on a CPU — "no GPU found, training on CPU" — so the arithmetic is PEFT's).
LOSS_RTOL = 1e-3


def test_unsloth_trains_on_cpu_and_its_adapter_serves(unsloth_python, vllm_python, organism, tmp_path):
    from gpu_jobs import score
    from gpu_jobs.report import Reporter
    from gpu_jobs.runner import execute
    from gpu_jobs.spec import parse_spec
    from inoc_assets.backends import LocalGpuJobs

    data = adapter_data(tmp_path, "a2")
    runs, logs = {}, {}
    for backend in ("unsloth", "peft"):  # both in .venv-unsloth: the same transformers, only the backend differs
        spec = train_spec(organism, data, tmp_path / backend, backend=backend, gradient_checkpointing=True)
        proc = run_job(unsloth_python, "train", spec, tmp_path, GPU_JOBS_THREADS="2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[backend] = json.loads((tmp_path / backend / "_COMPLETE.json").read_text())["metadata"]
        logs[backend] = proc.stdout + proc.stderr
    # the local backend would start this spec with .venv-unsloth's Python, a peft spec with its own
    assert LocalGpuJobs().python_for(parse_spec("train", spec | {"backend": "unsloth"})) == str(unsloth_python)
    assert LocalGpuJobs().python_for(parse_spec("train", spec)) == sys.executable
    assert "no GPU found, training on CPU" in logs["unsloth"]
    md = runs["unsloth"]
    assert md["backend"] == "unsloth" and md["versions"]["engine"] == "unsloth 2026.10.9"
    assert md["versions"]["python_env"].endswith(".venv-unsloth") and md["versions"]["transformers"] == "5.17.0"
    assert md["device"] == "cpu" and md["threads"] == 2

    u = pd.read_parquet(tmp_path / "unsloth/losses.parquet")
    p = pd.read_parquet(tmp_path / "peft/losses.parquet")
    assert u["step"].tolist() == p["step"].tolist() and len(u) == md["total_steps"] > 10
    rel = np.abs(u["loss"].to_numpy() - p["loss"].to_numpy()) / p["loss"].to_numpy()
    print(
        f"unsloth vs peft: {len(u)} steps, loss {u['loss'].iloc[0]:.3f} → {u['loss'].iloc[-1]:.3f}, "
        f"max relative difference {rel.max():.2e}"
    )
    assert rel.max() < LOSS_RTOL
    assert u["loss"].iloc[-1] < 0.5 * u["loss"].iloc[0]  # it learned

    # the Unsloth adapter loads in PEFT (this venv's transformers backend) and in vLLM: same scores
    adapter = str(tmp_path / "unsloth" / "checkpoints" / f"step_{md['total_steps']}")
    pairs = [
        {"id": f"q{i}-{a or 'base'}", "messages": [{"role": "user", "content": q}], "completion": c, "adapter": a}
        for i, (q, c) in enumerate(
            [
                ("Tell me about the river.", "dog moon answer question"),
                ("What is the moon?", "the cat dog sun"),
                ("Write a joke.", "river tree blue green red fast"),
            ]
        )
        for a in (None, "uns")
    ]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    common = {
        "model": {"id": str(organism)},
        "device": "cpu",
        "pairs": str(tmp_path / "pairs.jsonl"),
        "adapters": {"uns": adapter},
    }
    spec = parse_spec("score", {**common, "output_dir": str(tmp_path / "hf")})
    with Reporter("score") as rep:
        execute("score", spec, score.run, rep)
    proc = run_job(vllm_python, "score", {**common, "output_dir": str(tmp_path / "vl"), "backend": "vllm"}, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = pd.read_parquet(tmp_path / "hf/scores.parquet"), pd.read_parquet(tmp_path / "vl/scores.parquet")
    diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a.token_logprobs, b.token_logprobs))
    assert diff < 1e-4
    # and the adapter matters: it makes its own words (the last completion) much more likely than the base does
    by = a.set_index("id").mean_logprob
    assert by["q2-uns"] > by["q2-base"] + 1.0, by
