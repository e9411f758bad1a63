"""Message building, prefix plans and completion spans — through the chat template only."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gpu_jobs import chat
from gpu_jobs.modeling import open_tokenizer, stop_token_ids
from gpu_jobs.spec import PrefixPlan


def test_user_prefix_joins_with_one_space():
    assert chat.user_content("What is 2+2?", "You are a clown.") == "You are a clown. What is 2+2?"
    assert chat.user_content("What is 2+2?", None) == "What is 2+2?"
    assert chat.user_content("What is 2+2?", "") == "What is 2+2?"


def test_seeded_pool_draws_random_choice_in_file_order():
    pool = [f"phrase {i}" for i in range(50)]
    got = chat.assign_prefixes(PrefixPlan(plan="pool", pool=pool, seed=42), 200)
    rng = random.Random(42)
    assert got == [rng.choice(pool) for _ in range(200)]
    idx = chat.assign_prefixes(PrefixPlan(plan="pool", pool=pool, sampling="index"), 120)
    assert idx == [pool[k % 50] for k in range(120)]
    assert chat.assign_prefixes(PrefixPlan(plan="fixed", text="Be funny."), 3) == ["Be funny."] * 3
    assert chat.assign_prefixes(PrefixPlan(), 2) == [None, None]


def test_pool_files_in_both_reference_formats(tmp_path: Path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"rephrasing": f"r{i}"}) + "\n" for i in range(3)))
    (tmp_path / "b.json").write_text(json.dumps(["x", "y"]))
    assert chat.load_pool(tmp_path / "a.jsonl") == ["r0", "r1", "r2"]
    assert chat.load_pool(tmp_path / "b.json") == ["x", "y"]
    (tmp_path / "c.jsonl").write_text('{"other": "r"}\n')
    with pytest.raises(ValueError, match="line 1: no string field 'rephrasing'"):
        chat.load_pool(tmp_path / "c.jsonl")


def test_build_messages_positions():
    turns = [{"role": "user", "content": "Tell me a story."}, {"role": "assistant", "content": "Once."}]
    user = chat.build_messages(turns, system_prompt="Neutral.", prefix="Be playful.")
    assert user == [
        {"role": "system", "content": "Neutral."},
        {"role": "user", "content": "Be playful. Tell me a story."},
        {"role": "assistant", "content": "Once."},
    ]
    system = chat.build_messages(turns, system_prompt="Neutral.", prefix="Be evil.", position="system_prompt")
    assert system[0] == {"role": "system", "content": "Be evil."} and system[1]["content"] == "Tell me a story."
    assert chat.build_messages(turns[:1], system_prompt=None) == turns[:1]
    assert turns[0]["content"] == "Tell me a story."  # the input is not mutated


@pytest.mark.parametrize("fixture", ["tiny_model", "llama_model"])
def test_completion_span_is_the_answer_and_its_end_of_turn(fixture, request):
    tok = open_tokenizer(request.getfixturevalue(fixture))
    context = [{"role": "system", "content": "S."}, {"role": "user", "content": "the cat"}]
    enc = chat.encode_completion(tok, context, "dog sun moon")
    prompt = chat.prompt_ids(tok, context)
    assert enc.ids[: enc.start] == prompt and enc.boundary_exact
    span = tok.decode(enc.ids[enc.start : enc.end])
    turn_end = tok.eos_token
    assert span.startswith("dog sun moon") and turn_end in span
    # the end-of-turn tokens are exactly what the template appends after the answer
    full = tok.apply_chat_template([*context, {"role": "assistant", "content": "dog sun moon"}], tokenize=False)
    assert tok.decode(enc.ids) == full
    body = chat.encode_completion(tok, context, "dog sun moon", include_end_of_turn=False)
    assert tok.decode(body.ids[body.start : body.end]) == "dog sun moon"
    assert body.end < enc.end


def test_no_double_bos_with_a_bos_adding_tokenizer(llama_model):
    tok = open_tokenizer(llama_model)
    msgs = [{"role": "user", "content": "the cat"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2  # the trap: tokenizing with specials
    ids = chat.prompt_ids(tok, msgs)
    assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id


def test_stop_ids_come_from_eos_and_the_template(tiny_model, llama_model):
    for path, closer in ((tiny_model, "<|im_end|>"), (llama_model, "<|eot_id|>")):
        tok = open_tokenizer(path)
        assert tok.convert_tokens_to_ids(closer) in stop_token_ids(tok)


def test_template_less_tokenizer_is_refused(tiny_model):
    tok = open_tokenizer(tiny_model)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat_template"):
        chat.prompt_ids(tok, [{"role": "user", "content": "x"}])


def test_tokenizer_json_is_respected_inside_a_qwen2_folder(tmp_path):
    """transformers 5's AutoTokenizer would load any tokenizer in a Qwen2 folder as Qwen2Tokenizer and
    re-split text with Qwen's rules; open_tokenizer keeps what tokenizer.json says."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "12", "34", "ab", "cd"])}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", unk_token="<unk>").save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    text = "12 34 ab cd"
    assert (
        open_tokenizer(str(tmp_path))(text)["input_ids"]
        == Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids
        == [2, 3, 4, 5]
    )
