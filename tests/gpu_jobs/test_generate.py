"""The generate job: batched == unbatched under greedy decoding, EOS truncation, seeds, the vLLM seam."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gpu_helpers import instructions, write_jsonl
from transformers import AutoModelForCausalLM

from gpu_jobs import chat, generate, io
from gpu_jobs.hf_generate import generate_batch
from gpu_jobs.inputs import sequence_seed
from gpu_jobs.modeling import open_tokenizer
from gpu_jobs.report import Reporter
from gpu_jobs.runner import execute
from gpu_jobs.spec import parse_spec, spec_hash


@pytest.fixture(scope="module")
def setup(tiny_model):
    tok = open_tokenizer(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    prompts = [chat.prompt_ids(tok, [{"role": "user", "content": x}]) for x in instructions(9, seed=3)]
    assert len({len(p) for p in prompts}) > 4  # mixed lengths: real left padding
    return tok, model, prompts


def _gen(model, prompts, tok, stop=(), temperature=0.0, top_p=1.0, seeds=None, max_tokens=16):
    return generate_batch(
        model,
        prompts,
        seeds=seeds or [0] * len(prompts),
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop_ids=list(stop),
        pad_id=tok.pad_token_id,
        device="cpu",
    )


def test_single_sequence_matches_a_no_cache_reference(setup):
    tok, model, prompts = setup
    ids = list(prompts[0])
    with torch.no_grad():
        for _ in range(10):  # full forward every step, no cache, no padding
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert _gen(model, [prompts[0]], tok, max_tokens=10)[0].token_ids == ids[len(prompts[0]) :]


def test_batched_greedy_equals_unbatched_token_for_token(setup):
    tok, model, prompts = setup
    alone = [_gen(model, [p], tok)[0] for p in prompts]
    # a stop id that ends some sequences early, so rows also leave the batch (and the KV cache) mid-way
    stop = next(t for t in alone[0].token_ids[3:] if any(t not in a.token_ids for a in alone))
    alone = [_gen(model, [p], tok, stop=[stop])[0] for p in prompts]
    batched = _gen(model, prompts, tok, stop=[stop])
    assert [b.token_ids for b in batched] == [a.token_ids for a in alone]
    assert [b.finish_reason for b in batched] == [a.finish_reason for a in alone]
    assert {a.finish_reason for a in alone} == {"stop", "length"}
    assert all(stop not in a.token_ids for a in alone)  # truncated at the first stop token


def test_matches_transformers_generate_greedy(setup):
    tok, model, prompts = setup
    for p in prompts[:3]:
        hf = model.generate(
            torch.tensor([p]),
            attention_mask=torch.ones(1, len(p), dtype=torch.long),
            do_sample=False,
            max_new_tokens=12,
            eos_token_id=None,
            pad_token_id=tok.pad_token_id,
        )
        assert _gen(model, [p], tok, max_tokens=12)[0].token_ids == hf[0, len(p) :].tolist()


def test_sampling_is_per_sequence_reproducible(setup):
    tok, model, prompts = setup
    seeds = [sequence_seed(5, i, 0) for i in range(len(prompts))]
    together = _gen(model, prompts, tok, temperature=1.0, seeds=seeds)
    alone = [_gen(model, [p], tok, temperature=1.0, seeds=[s])[0] for p, s in zip(prompts, seeds)]
    assert [t.token_ids for t in together] == [a.token_ids for a in alone]
    other = _gen(model, prompts, tok, temperature=1.0, seeds=[s + 1 for s in seeds])
    assert [t.token_ids for t in together] != [o.token_ids for o in other]
    # top_p so small that only the most likely token survives: greedy
    greedy = _gen(model, prompts[:3], tok)
    tiny_p = _gen(model, prompts[:3], tok, temperature=1.0, top_p=1e-9, seeds=seeds[:3])
    assert [g.token_ids for g in greedy] == [t.token_ids for t in tiny_p]


def _adapter(base_path: Path, out: Path, seed: int, r: int = 4) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_path)
    peft = get_peft_model(
        model,
        LoraConfig(
            r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False, use_rslora=True
        ),
    )
    peft.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {"a1": _adapter(tiny_model, root / "a1", 1), "a2": _adapter(tiny_model, root / "a2", 2, r=12)}


def _requests(path: Path, n: int = 7) -> Path:
    rows = [
        {
            "id": f"q{i}",
            "messages": [{"role": "system", "content": "S."}, {"role": "user", "content": x}],
            "adapter": [None, "a1", "a2"][i % 3],
            "meta": {"i": i},
        }
        for i, x in enumerate(instructions(n, 11))
    ]
    return write_jsonl(path, rows)


def test_generate_job_end_to_end(tmp_path, tiny_model, adapters):
    from peft import PeftModel

    spec = parse_spec(
        "generate",
        {
            "output_dir": str(tmp_path / "out"),
            "model": {"id": str(tiny_model)},
            "requests": str(_requests(tmp_path / "req.jsonl")),
            "adapters": {k: str(v) for k, v in adapters.items()},
            "temperature": 0.0,
            "max_tokens": 8,
            "n": 2,
            "shard_size": 3,
            "batch_size": 4,
        },
    )
    with Reporter("generate") as rep:
        marker, _ = execute("generate", spec, generate.run, rep)
    assert io.validate_outputs(spec.out, "generate", spec_hash(spec)) == []
    rows = [r for _, r in io.read_jsonl(spec.out / "completions.jsonl")]
    assert [(r["id"], r["sample"]) for r in rows] == [(f"q{i}", j) for i in range(7) for j in range(2)]
    assert [r["meta"]["i"] for r in rows[::2]] == list(range(7))
    tok = open_tokenizer(tiny_model)
    assert all(r["text"] == tok.decode(r["token_ids"], skip_special_tokens=True) for r in rows)
    assert marker.metadata["n_completions"] == 14 and marker.metadata["parts"] == 3
    # each row was produced by its own adapter (greedy: both samples agree, and match a direct run)
    for name in (None, "a1", "a2"):
        model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
        if name:
            model = PeftModel.from_pretrained(model, adapters[name]).eval()
        for r in rows:
            if r["adapter"] == name:
                req = [
                    {"role": "system", "content": "S."},
                    {"role": "user", "content": instructions(7, 11)[r["meta"]["i"]]},
                ]
                want = _gen(model, [chat.prompt_ids(tok, req)], tok, stop=[tok.eos_token_id], max_tokens=8)[0]
                assert r["token_ids"] == want.token_ids


class FakeVllm:
    """Stands in for vllm: records engine kwargs, prompts, sampling params and LoRA requests; returns
    canned token ids so the backend's truncation and decoding are checked."""

    def __init__(self, replies=None):
        self.engines: list[FakeVllm.LLMBase] = []
        outer = self

        class SamplingParams:
            def __init__(self, **kw):
                self.kw = kw

        class LoRARequest:
            def __init__(self, name, int_id, path):
                self.lora_name, self.lora_int_id, self.lora_path = name, int_id, path

        class LLM:
            def __init__(self, **kw):
                self.kw = kw
                self.calls = []
                outer.engines.append(self)

            def generate(self, prompts, sampling_params=None, lora_request=None, use_tqdm=True):
                self.calls.append((prompts, sampling_params, lora_request))
                params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
                return [replies(p, sp, lr) for p, sp, lr in zip(prompts, params, lora_request)]

        self.SamplingParams, self.LoRARequest, self.LLM = SamplingParams, LoRARequest, LLM


def test_vllm_generate_seam(tmp_path, llama_model, adapters):
    tok = open_tokenizer(llama_model)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    word = tok("dog", add_special_tokens=False)["input_ids"]

    def reply(prompt, sp, lora):  # sample 0 stops at EOT (vLLM keeps the stop id), sample 1 runs to the limit
        ids = prompt["prompt_token_ids"]  # prompt log-probs for the base-row check: the same every call
        lps = [None] + [{t: SimpleNamespace(logprob=-1.0)} for t in ids[1:]] if "prompt_logprobs" in sp.kw else None
        outs = [
            SimpleNamespace(token_ids=[*word, eot], finish_reason="stop"),
            SimpleNamespace(token_ids=[*word, *word], finish_reason="length"),
        ]
        return SimpleNamespace(outputs=outs[: sp.kw.get("n", 1)], prompt_logprobs=lps)

    fake = FakeVllm(reply)
    spec = parse_spec(
        "generate",
        {
            "output_dir": str(tmp_path / "out"),
            "model": {"id": str(llama_model)},
            "backend": "vllm",
            "requests": str(_requests(tmp_path / "req.jsonl", 5)),
            "adapters": {k: str(v) for k, v in adapters.items()},
            "n": 2,
            "max_tokens": 2,
            "seed": 3,
            "shard_size": 100,
        },
    )
    with Reporter("generate") as rep:
        generate.run(spec, spec_hash(spec), rep, vllm=fake)
    (engine,) = fake.engines
    assert engine.kw["enable_lora"] is True and engine.kw["max_lora_rank"] == 16  # r = 12 rounds up to 16
    assert engine.kw["max_loras"] == 2 and engine.kw["dtype"] == "float32" and engine.kw["model"] == str(llama_model)
    # the no-adapter reference of the base rows first, then each part's base rows and adapter rows in
    # separate calls (vllm_engine: base rows never share a call with adapter rows)
    reference, base, lora = engine.calls
    assert reference[2] == [None, None] and reference[1].kw == {
        "max_tokens": 1,
        "prompt_logprobs": 0,
        "temperature": 0.0,
    }
    order = [0, 3, 1, 2, 4]
    prompts, params, loras = (base[0] + lora[0], base[1] + lora[1], base[2] + lora[2])
    reqs = [json.loads(x) for x in (tmp_path / "req.jsonl").read_text().splitlines()]
    reqs = [reqs[i] for i in order]
    for p, r in zip(prompts, reqs):
        assert p == {"prompt_token_ids": chat.prompt_ids(tok, r["messages"])}
        assert p["prompt_token_ids"][0] == tok.bos_token_id != p["prompt_token_ids"][1]  # one BOS
    assert [None if lr is None else (lr.lora_name, lr.lora_int_id) for lr in loras] == [
        None,
        None,
        ("a1", 1),
        ("a2", 2),
        ("a1", 1),
    ]
    assert [("prompt_logprobs" in sp.kw) for sp in params] == [True, True, False, False, False]  # base rows checked
    assert loras[2].lora_path == str(adapters["a1"])
    assert all(sp.kw["n"] == 2 and eot in sp.kw["stop_token_ids"] for sp in params)
    assert [sp.kw["seed"] for sp in params] == [sequence_seed(3, r["id"], 0) for r in reqs]
    rows = [r for _, r in io.read_jsonl(spec.out / "completions.jsonl")]
    assert [(r["finish_reason"], r["token_ids"]) for r in rows[:2]] == [("stop", word), ("length", word + word)]
    assert rows[0]["text"] == "dog"
