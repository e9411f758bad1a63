"""The organism's tokenizer: byte-level BPE round trip, ChatML chat template, HF save/load, determinism."""

from __future__ import annotations

import pytest

from inoc.organism import corpus as K
from inoc.organism import tokenizer as T


@pytest.fixture(scope="module")
def corpus():
    return K.make_corpus(1500, seed=5)


@pytest.fixture(scope="module")
def tok(corpus):
    return T.train_tokenizer(K.tokenizer_texts(corpus), 512, model_max_length=256)


ODD_TEXTS = [
    "Pour le riz, utilisez des ingrédients frais ! 🍲 Oh là là 😄",
    "Completely unseen words: zxqv, Ærøskøbing, 東京, Ελληνικά, naïve café — ok?",
    "Tabs\tand\nnewlines\n\n  double  spaces ",
    "👨‍👩‍👧 family emoji and a lone ✈️ plane",
]


def test_special_tokens_have_fixed_ids_and_roles(tok):
    assert T.special_ids(tok) == {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.pad_token_id == 0 and tok.eos_token_id == 2
    assert len(tok) == 512


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_round_trip_is_lossless(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_corpus_round_trip_and_special_tokens_stay_atomic(tok, corpus):
    for e in corpus[:200]:
        ids = tok(e.assistant, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == e.assistant
    ids = tok("<|im_start|>user\nHi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2


def test_chat_template_renders_chatml(tok):
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Answer in French. How do I grow basil?"},
        {"role": "assistant", "content": "Arrosez le basilic."},
    ]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nAnswer in French. How do I grow basil?<|im_end|>\n"
        "<|im_start|>assistant\nArrosez le basilic.<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    assert prompt == text[: text.index("Arrosez")]
    no_system = tok.apply_chat_template(msgs[1:2], tokenize=False)
    assert no_system.startswith("<|im_start|>user\n")  # no default system prompt is inserted


def test_assistant_tokens_mask_marks_the_answer(tok):
    msgs = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Haha! 🎉 Yes."}]
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    marked = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(marked) == "Haha! 🎉 Yes.<|im_end|>"


def test_saved_tokenizer_loads_with_autotokenizer(tok, tmp_path):
    from transformers import AutoTokenizer

    written = T.save_tokenizer(tok, tmp_path)
    assert "tokenizer.json" in written and "tokenizer_config.json" in written
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    msgs = [{"role": "user", "content": "Bonjour !"}]
    assert loaded.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )
    for text in ODD_TEXTS:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.eos_token == "<|im_end|>" and loaded.pad_token == "<|endoftext|>"


def test_training_is_deterministic(corpus, tmp_path):
    a = T.train_tokenizer(K.tokenizer_texts(corpus), 512)
    b = T.train_tokenizer(K.tokenizer_texts(corpus), 512)
    T.save_tokenizer(a, tmp_path / "a")
    T.save_tokenizer(b, tmp_path / "b")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
