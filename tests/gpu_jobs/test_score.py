"""The score job: equal to a one-at-a-time float64 reference, memory bounded, the vLLM seam."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from gpu_helpers import WORDS, write_jsonl
from test_generate import FakeVllm, _adapter
from transformers import AutoModelForCausalLM

from gpu_jobs import chat, io, score
from gpu_jobs.hf_score import length_batches
from gpu_jobs.modeling import open_tokenizer
from gpu_jobs.report import Reporter
from gpu_jobs.runner import execute
from gpu_jobs.spec import parse_spec, spec_hash


def random_pairs(n: int, seed: int, adapters=(None,)) -> list[dict]:
    r = random.Random(seed)

    def text(lo, hi):
        return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))

    return [
        {
            "id": i,
            "messages": [{"role": "system", "content": text(1, 6)}, {"role": "user", "content": text(1, 40)}],
            "completion": text(1, 60),
            "adapter": adapters[i % len(adapters)],
            "meta": {"k": i},
        }
        for i in range(n)
    ]


def reference(model_dir: Path, pairs: list[dict], adapters: dict, *, include_end_of_turn=True) -> list[np.ndarray]:
    """One example at a time, float64, full logits and a full log-softmax: the plain definition."""
    from peft import PeftModel

    tok = open_tokenizer(model_dir)
    models = {None: AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()}
    for name, path in adapters.items():
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
        models[name] = PeftModel.from_pretrained(base, path).eval().double()
    out = []
    with torch.no_grad():
        for p in pairs:
            enc = chat.encode_completion(tok, p["messages"], p["completion"], include_end_of_turn=include_end_of_turn)
            logp = torch.log_softmax(models[p.get("adapter")](torch.tensor([enc.ids])).logits[0], dim=-1)
            out.append(np.array([float(logp[j - 1, enc.ids[j]]) for j in range(enc.start, enc.end)]))
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("score_adapters")
    return {"a1": str(_adapter(tiny_model, root / "a1", 3))}


def _score(tmp: Path, model: Path, pairs: list[dict], adapters: dict, **over):
    write_jsonl(tmp / "pairs.jsonl", pairs)
    spec = parse_spec(
        "score",
        {
            "output_dir": str(tmp / "out"),
            "model": {"id": str(model)},
            "pairs": str(tmp / "pairs.jsonl"),
            "adapters": adapters,
            **over,
        },
    )
    with Reporter("score") as rep:
        marker, _ = execute("score", spec, score.run, rep)
    assert io.validate_outputs(spec.out, "score", spec_hash(spec)) == []
    return spec, marker, pd.read_parquet(spec.out / "scores.parquet")


def test_equals_float64_reference_on_random_mixed_lengths(tmp_path, tiny_model, adapters):
    pairs = random_pairs(23, seed=1, adapters=(None, "a1"))
    # a small token budget, a tiny log-softmax chunk and small parts exercise every batching path
    spec, marker, df = _score(
        tmp_path, tiny_model, pairs, adapters, max_batch_tokens=300, max_batch_size=5, logit_chunk=7, shard_size=10
    )
    ref = reference(tiny_model, pairs, adapters)
    assert df["id"].tolist() == [str(p["id"]) for p in pairs]
    lengths = [len(r) for r in ref]
    assert len(set(lengths)) > 10  # mixed lengths
    assert df["n_tokens"].tolist() == lengths
    for row, r in zip(df.itertuples(), ref):
        assert np.max(np.abs(np.asarray(row.token_logprobs, dtype=np.float64) - r)) < 1e-4
        assert row.sum_logprob == pytest.approx(r.sum(), abs=1e-4)
        assert row.mean_logprob == pytest.approx(r.mean(), abs=1e-4)
    assert marker.metadata["parts"] == 3 and marker.metadata["n_nan"] == 0
    assert df["meta"].map(lambda m: int(m.split(": ")[1].rstrip("}"))).tolist() == list(range(23))


def test_only_completion_tokens_count(tmp_path, tiny_model):
    pairs = random_pairs(6, seed=2)
    pairs[0]["completion"] = ""
    _, _, df = _score(tmp_path, tiny_model, pairs, {}, score_end_of_turn=False)
    ref = reference(tiny_model, pairs, {}, include_end_of_turn=False)
    assert df["n_tokens"].tolist() == [len(r) for r in ref] and df["n_tokens"].iloc[0] == 0
    assert math.isnan(df["mean_logprob"].iloc[0]) and math.isnan(df["sum_logprob"].iloc[0])
    tok = open_tokenizer(tiny_model)
    for row, p in zip(df.itertuples(), pairs):
        assert tok.decode(list(row.token_ids)) == p["completion"]
        if row.n_tokens:
            assert row.mean_logprob == pytest.approx(ref[row.Index].mean(), abs=1e-4)


def test_log_softmax_never_sees_more_than_a_chunk(tmp_path, tiny_model, monkeypatch):
    """The LM head (and so the log-softmax) runs on at most ``logit_chunk`` completion positions at a time."""
    seen = []
    real = torch.nn.Linear.forward
    vocab = len(open_tokenizer(tiny_model))

    def spy(self, x):
        out = real(self, x)
        if out.shape[-1] == vocab:  # the LM head
            seen.append(tuple(x.shape))
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    _score(tmp_path, tiny_model, random_pairs(12, seed=4), {}, logit_chunk=16, max_batch_tokens=4096)
    assert seen and all(len(s) == 2 and s[0] <= 16 for s in seen)


def test_length_buckets_respect_the_budget():
    r = random.Random(0)
    lengths = [r.randint(5, 300) for _ in range(200)]
    batches = length_batches(lengths, max_batch_tokens=1000, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert len(b) <= 8 and (len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 1000)
    tight = length_batches(lengths, max_batch_tokens=100_000, max_batch_size=64, max_padding_fraction=0.1)
    assert sorted(i for b in tight for i in b) == list(range(200))
    for b in tight:  # nobody padded by more than 10% of the batch width
        width = max(lengths[i] for i in b)
        assert all(lengths[i] >= 0.9 * width for i in b)


def test_vllm_prompt_logprobs_seam(tmp_path, tiny_model, adapters):
    """The vLLM backend reads ``prompt_logprobs`` at the right positions and tokens: fed a fake engine
    that answers with the float64 reference, it reproduces the transformers backend."""
    models = {None: AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64).eval()}
    from peft import PeftModel

    models["a1"] = (
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64), adapters["a1"])
        .eval()
        .double()
    )

    def reply(prompt, sp, lora):
        assert sp.kw == {"max_tokens": 1, "prompt_logprobs": 0, "temperature": 0.0}
        ids = prompt["prompt_token_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(models[lora.lora_name if lora else None](torch.tensor([ids])).logits[0], -1)
        entries = [None]
        for j in range(1, len(ids)):  # the prompt token plus the top-1 token, as vLLM reports them
            top = int(logp[j - 1].argmax())
            entries.append(
                {
                    top: SimpleNamespace(logprob=float(logp[j - 1, top])),
                    ids[j]: SimpleNamespace(logprob=float(logp[j - 1, ids[j]])),
                }
            )
        return SimpleNamespace(prompt_logprobs=entries, outputs=[])

    fake = FakeVllm(reply)
    pairs = random_pairs(9, seed=5, adapters=(None, "a1"))
    _, _, hf = _score(tmp_path / "hf", tiny_model, pairs, adapters)
    spec = parse_spec(
        "score",
        {
            "output_dir": str(tmp_path / "vllm"),
            "model": {"id": str(tiny_model)},
            "pairs": str(tmp_path / "hf/pairs.jsonl"),
            "adapters": adapters,
            "backend": "vllm",
            "vllm": {"max_prompt_logprob_tokens": 150},
        },
    )
    with Reporter("score") as rep:
        score.run(spec, spec_hash(spec), rep, vllm=fake)
    got = pd.read_parquet(spec.out / "scores.parquet")
    (engine,) = fake.engines
    assert engine.kw["dtype"] == "float32" and engine.kw["enable_lora"] and engine.kw["max_lora_rank"] == 8
    assert len(engine.calls) > 1  # cut into calls of at most 150 prompt tokens
    for prompts, _, _ in engine.calls:
        assert sum(len(p["prompt_token_ids"]) for p in prompts) <= 150 or len(prompts) == 1
    assert got["n_tokens"].tolist() == hf["n_tokens"].tolist()
    for a, b in zip(hf.itertuples(), got.itertuples()):
        assert np.max(np.abs(np.asarray(a.token_logprobs) - np.asarray(b.token_logprobs))) < 1e-4
        assert a.sum_logprob == pytest.approx(b.sum_logprob, abs=1e-4)
