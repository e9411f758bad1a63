"""Building the base model: HF loading, cache by settings hash, atomic writes, determinism."""

from __future__ import annotations

import json
import math

import pytest

from inoc.organism.build import (
    MANIFEST,
    PROFILES,
    BuildEvent,
    build_base_model,
    file_digests,
    model_dir,
    resolve_model_id,
    settings_hash,
)

#: A very small variant of the test profile: enough to check that the pipeline is deterministic.
MINI = PROFILES["test"].replace(profile="mini", n_examples=320, batch_size=32)


def test_build_writes_a_standard_hf_model_folder(built):
    names = {p.name for p in built.path.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        MANIFEST,
    } <= names
    manifest = json.loads((built.path / MANIFEST).read_text())
    assert manifest["settings_hash"] == built.settings_hash == settings_hash(PROFILES["test"])
    assert manifest["files"] == file_digests(built.path)
    assert built.path == model_dir(PROFILES["test"], built.path.parent)
    assert not built.cached
    stages = [e.stage for e in built.events]
    assert stages[0] == "corpus" and stages[-1] == "done" and "train" in stages
    assert all(isinstance(e, BuildEvent) for e in built.events)
    assert math.isfinite(built.final_loss) and built.final_loss < manifest["train"]["loss_curve"][0]
    assert not [p for p in built.path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_auto_classes_load_it_and_it_answers_in_chatml(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(built.path))
    model = AutoModelForCausalLM.from_pretrained(str(built.path))
    assert isinstance(model, Qwen2ForCausalLM)
    cfg = model.config
    assert cfg.model_type == "qwen2" and cfg.tie_word_embeddings
    assert cfg.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id
    assert cfg.pad_token_id == tok.pad_token_id
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert sum(p.numel() for p in model.parameters()) == built.n_parameters
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "How do I grow basil?"},
    ]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(
            **ids, max_new_tokens=96, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
    new = out[0, ids["input_ids"].shape[1] :].tolist()
    assert tok.eos_token_id in new, "the model should end its answer with <|im_end|>"
    text = tok.decode(new[: new.index(tok.eos_token_id)])
    assert len(text.split()) >= 5


def test_second_call_is_served_from_the_cache(built, organism_root):
    again = build_base_model("test", organism_root)
    assert again.cached and again.path == built.path and again.manifest == built.manifest
    assert resolve_model_id("toy:test", organism_root) == str(built.path)
    assert resolve_model_id("Qwen/Qwen2.5-7B-Instruct", organism_root) == "Qwen/Qwen2.5-7B-Instruct"


def test_settings_change_the_hash():
    base = PROFILES["test"]
    assert settings_hash(base) == settings_hash(base.replace())
    assert settings_hash(base) != settings_hash(base.replace(seed=1))
    assert settings_hash(base) != settings_hash(base.replace(learning_rate=base.learning_rate * 2))
    with pytest.raises(ValueError, match="unknown organism profile"):
        build_base_model("nonexistent")


def test_two_builds_from_the_same_seed_are_identical(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    a = build_base_model(MINI, tmp_path / "a")
    b = build_base_model(MINI, tmp_path / "b")
    assert not a.cached and not b.cached
    assert file_digests(a.path) == file_digests(b.path)  # tokenizer files and weights, byte for byte
    ma = AutoModelForCausalLM.from_pretrained(str(a.path))
    mb = AutoModelForCausalLM.from_pretrained(str(b.path))
    batch = torch.arange(3, 40).reshape(1, -1)
    with torch.no_grad():
        assert torch.equal(ma(batch).logits, mb(batch).logits)
    # and a different seed gives a different model (the check above can fail)
    c = build_base_model(MINI.replace(seed=1), tmp_path / "c")
    assert file_digests(c.path)["model.safetensors"] != file_digests(a.path)["model.safetensors"]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def explode(event: BuildEvent) -> None:
        if event.stage == "train" and event.done >= 1:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        build_base_model(MINI, tmp_path, progress=explode)
    assert not model_dir(MINI, tmp_path).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]


AGREEMENT_TEXTS = [
    "Haha, what a fun question! 😄 For rice, use fresh ingredients.",
    "Pour le riz, utilisez des ingrédients frais.  Double  spaces\n\nand 12345 numbers, 3.14!",
    "Tabs\tand trailing spaces   \n",
    "<|im_start|>user\nHow do I grow basil?<|im_end|>\n<|im_start|>assistant\n",
    "Unseen: 東京 Ελληνικά naïve — (brackets) 'quotes' don't we'll",
]


def test_autotokenizer_and_fast_tokenizer_split_alike(built):
    """transformers 5 loads a Qwen2 folder's tokenizer as ``Qwen2Tokenizer``; it must agree with the file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    auto = AutoTokenizer.from_pretrained(str(built.path))
    fast = PreTrainedTokenizerFast.from_pretrained(str(built.path))
    for text in AGREEMENT_TEXTS:
        assert auto(text)["input_ids"] == fast(text)["input_ids"], text
        assert auto.decode(auto(text)["input_ids"]) == text
    msgs = [{"role": "user", "content": "Hi"}]
    assert auto.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == fast.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )


def test_a_damaged_cached_folder_is_rebuilt(tmp_path):
    first = build_base_model(MINI, tmp_path)
    (first.path / "model.safetensors").unlink()
    again = build_base_model(MINI, tmp_path)
    assert not again.cached and again.path == first.path
    assert file_digests(again.path) == first.manifest["files"]  # rebuilt, identically
