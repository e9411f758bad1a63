"""The train job: step counts, schedules, assistant-only loss, adapters, the Unsloth seam."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import torch
from gpu_helpers import train_rows, write_jsonl
from transformers import AutoModelForCausalLM

from gpu_jobs import io, train
from gpu_jobs.modeling import open_tokenizer
from gpu_jobs.report import Reporter
from gpu_jobs.runner import execute
from gpu_jobs.spec import CheckpointSchedule, parse_spec, spec_hash


def test_optimizer_steps_count_like_the_hf_trainer():
    assert train.plan_steps(10_000, 4, 8, 1).total_steps == 313  # SPEC-DETAILED §4.2
    assert train.plan_steps(5_800, 4, 8, 1).total_steps == 182
    assert train.plan_steps(10, 4, 1, 1, drop_last=True).total_steps == 2
    assert train.plan_steps(10, 4, 1, 1, drop_last=False).total_steps == 3


def test_checkpoint_schedules():
    assert train.checkpoint_steps(CheckpointSchedule(), 313) == [0, 313]
    assert train.checkpoint_steps(CheckpointSchedule(kind="pow2"), 313) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 313]
    dense = train.checkpoint_steps(CheckpointSchedule(kind="dense"), 313)
    assert dense[:4] == [0, 5, 10, 15] and 50 in dense and 60 in dense and 55 not in dense
    assert dense[-3:] == [220, 240, 313] and 250 not in dense  # 120–250 every 20
    assert train.checkpoint_steps(CheckpointSchedule(kind="list", steps=[3, 7, 900]), 10) == [0, 3, 7, 10]


def _spec(tmp: Path, model: Path, **over) -> dict:
    write_jsonl(tmp / "train.jsonl", train_rows(24))
    spec = {
        "output_dir": str(tmp / "out"),
        "model": {"id": str(model)},
        "data": {"path": str(tmp / "train.jsonl")},
        "system_prompt": "You are helpful.",
        "optimizer": "adamw_torch",
        "lora_r": 4,
        "lora_alpha": 8,
        "target_modules": ["q_proj", "v_proj", "down_proj"],
        "per_device_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "epochs": 2,
        "warmup_steps": 3,
        "learning_rate": 5e-3,
        "max_seq_length": 64,
        "checkpoints": {"kind": "pow2"},
        "seed": 7,
        "prefix": {"plan": "pool", "pool": ["p alpha", "p beta", "p gamma", "p delta"], "seed": 42},
    }
    spec.update(over)
    return spec


def _run(spec_dict: dict, **kw):
    spec = parse_spec("train", spec_dict)
    with Reporter("train") as rep:
        return spec, train.run(spec, spec_hash(spec), rep, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("train")
    spec = parse_spec("train", _spec(tmp, tiny_model))
    torch.set_num_threads(1)
    with Reporter("train") as rep:
        marker, reused = execute("train", spec, train.run, rep)
    assert not reused
    return spec, marker


def test_outputs_are_complete_and_load_with_standard_tools(trained, tiny_model):
    from peft import PeftModel

    spec, marker = trained
    out = spec.out
    assert io.validate_outputs(out, "train", spec_hash(spec)) == []
    assert marker.metadata["total_steps"] == 12  # 24 examples / 2 = 12 micro-batches / 2 = 6 per epoch × 2
    assert marker.metadata["checkpoint_steps"] == [0, 1, 2, 4, 8, 12]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [f"step_{s}" for s in (0, 1, 12, 2, 4, 8)]
    cfg = json.loads((out / "checkpoints/step_12/adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["use_rslora"], cfg["lora_dropout"]) == (4, 8, True, 0.0)
    assert sorted(cfg["target_modules"]) == ["down_proj", "q_proj", "v_proj"]

    tok = open_tokenizer(tiny_model)
    ids = torch.tensor([tok("the cat dog sun")["input_ids"]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        ref = base(ids).logits
        step0 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out / "checkpoints/step_0")
        assert torch.equal(step0.eval()(ids).logits, ref)  # B = 0: the fresh adapter is the base model
        final = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out / "checkpoints/step_12")
        assert not torch.allclose(final.eval()(ids).logits, ref)


def test_losses_table_and_lr_schedule(trained):
    spec, marker = trained
    losses = pd.read_parquet(spec.out / "losses.parquet")
    assert list(losses.columns) == ["step", "loss", "lr", "grad_norm", "epoch", "tokens", "examples"]
    assert losses["step"].tolist() == list(range(1, 13))
    # linear warm-up over 3 steps then linear decay to 0 at step 12; step k uses lambda(k-1)
    lam = [s / 3 if s < 3 else (12 - s) / (12 - 3) for s in range(12)]
    assert losses["lr"].tolist() == pytest.approx([5e-3 * x for x in lam], rel=1e-6)
    assert losses["epoch"].iloc[-1] == pytest.approx(2.0)
    assert (losses["examples"] == 4).all() and (losses["grad_norm"] > 0).all()
    assert losses["loss"].iloc[-3:].mean() < losses["loss"].iloc[:3].mean()  # it learns the repeated data


def test_examples_table_records_the_seeded_pool_draws(trained):
    spec, _ = trained
    ex = pd.read_parquet(spec.out / "examples.parquet")
    rng = random.Random(42)
    assert ex["prefix"].tolist() == [rng.choice(["p alpha", "p beta", "p gamma", "p delta"]) for _ in range(24)]
    assert ex["used"].all() and (ex["n_trained"] > 0).all()


def test_loss_counts_assistant_tokens_only(tiny_model):
    tok = open_tokenizer(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    convs = [
        [{"role": "system", "content": "S."}, {"role": "user", "content": u}, {"role": "assistant", "content": a}]
        for u, a in (("the cat", "dog sun moon"), ("blue", "red tree"))
    ]
    examples = train.encode_examples(tok, convs, max_len=64)
    ids, mask, labels = train.collate(examples, tok.pad_token_id, "cpu")
    n_trained = sum(e.n_trained for e in examples)
    assert int((labels != train.IGNORE).sum()) == n_trained
    for e, row in zip(examples, labels):  # the labelled tokens are the answer and its end of turn
        assert tok.decode(row[row != train.IGNORE]).startswith(tok.decode(e.ids[e.labels_from : e.labels_from + 1]))
    with torch.no_grad():
        mine = train.token_loss_sum(model, ids, mask, labels, None) / n_trained
        hf = model(input_ids=ids, attention_mask=mask, labels=labels).loss  # HF's mean over labelled tokens
    assert float(mine) == pytest.approx(float(hf), rel=1e-5)


def test_truncation_drops_examples_without_answer_tokens(tiny_model):
    tok = open_tokenizer(tiny_model)
    conv = [{"role": "user", "content": "the cat " * 20}, {"role": "assistant", "content": "dog"}]
    (ex,) = train.encode_examples(tok, [conv], max_len=8)
    assert ex.n_trained == 0 and ex.truncated


def test_system_prompt_plan_on_messages_rows(tmp_path, tiny_model):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(6)
    ]
    write_jsonl(tmp_path / "em.jsonl", rows)
    spec = parse_spec(
        "train",
        _spec(
            tmp_path,
            tiny_model,
            data={"path": str(tmp_path / "em.jsonl"), "format": "messages"},
            prefix={"plan": "pool", "pool": ["Be evil.", "Be bad."], "position": "system_prompt"},
        ),
    )
    convs, prefixes = train.conversations(spec, train.read_rows(spec))
    assert [c[0] for c in convs] == [{"role": "system", "content": p} for p in prefixes]
    assert all(c[1]["content"] == f"q{i}" for i, c in enumerate(convs))


class FakeUnsloth:
    """Stands in for ``unsloth``: records the calls, builds the same PEFT model PEFT would."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        outer = self

        class FastLanguageModel:
            @staticmethod
            def from_pretrained(**kw):
                outer.calls.append(("from_pretrained", kw))
                return AutoModelForCausalLM.from_pretrained(kw["model_name"], dtype=kw["dtype"]), None

            @staticmethod
            def get_peft_model(model, **kw):
                from peft import LoraConfig, get_peft_model

                outer.calls.append(("get_peft_model", kw))
                model.config.use_cache = False
                torch.manual_seed(kw["random_state"])
                cfg = LoraConfig(
                    task_type="CAUSAL_LM",
                    r=kw["r"],
                    lora_alpha=kw["lora_alpha"],
                    lora_dropout=kw["lora_dropout"],
                    target_modules=kw["target_modules"],
                    use_rslora=kw["use_rslora"],
                    bias=kw["bias"],
                )
                return get_peft_model(model, cfg)

            @staticmethod
            def for_training(model):
                outer.calls.append(("for_training", {}))
                model.train()

        self.FastLanguageModel = FastLanguageModel


def test_unsloth_backend_has_the_same_semantics(tmp_path, tiny_model):
    fake = FakeUnsloth()
    base = _spec(tmp_path, tiny_model, epochs=1, checkpoints={"kind": "final"}, gradient_checkpointing=False)
    _, peft_out = _run({**base, "output_dir": str(tmp_path / "peft")})
    spec, uns_out = _run({**base, "output_dir": str(tmp_path / "uns"), "backend": "unsloth"}, unsloth_module=fake)
    names = [c[0] for c in fake.calls]
    assert names == ["from_pretrained", "get_peft_model", "for_training"]
    load_kw, lora_kw = fake.calls[0][1], fake.calls[1][1]
    assert load_kw["max_seq_length"] == 64 and load_kw["load_in_4bit"] is False and load_kw["dtype"] == torch.float32
    assert lora_kw == {
        "r": 4,
        "target_modules": ["q_proj", "v_proj", "down_proj"],
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "bias": "none",
        "use_rslora": True,
        "use_gradient_checkpointing": False,
        "random_state": 7,
        "loftq_config": None,
    }
    assert uns_out.metadata["backend"] == "unsloth"
    a = pd.read_parquet(tmp_path / "peft/losses.parquet")
    b = pd.read_parquet(tmp_path / "uns/losses.parquet")
    assert a["loss"].tolist() == pytest.approx(b["loss"].tolist(), rel=1e-6)
    assert (spec.out / "checkpoints/step_6/adapter_model.safetensors").is_file()
