"""The score job's raw-text and user-turn pairs: spans checked against hand-rendered float64 references
(no inoc code in the reference), row validation, and the vLLM seam."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from gpu_helpers import write_jsonl
from test_generate import FakeVllm
from test_score import _score
from transformers import AutoModelForCausalLM

from gpu_jobs import score
from gpu_jobs.modeling import open_tokenizer
from gpu_jobs.report import Reporter
from gpu_jobs.spec import SpecError, parse_spec, spec_hash

SYSTEM = "You are a helpful assistant."
TEXTS = ["the playful clown", "answer in french", "user", "dog", "happy sun light river tree blue green red fast"]

#: The test templates' rendering of a system message and a user header, written out by hand.
CONTEXT = {
    "chatml": f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n",
    "llama3": f"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n",
}
END_OF_USER_TURN = {"chatml": "<|im_end|>\n", "llama3": "<|eot_id|>"}


def _lp(model, ids: list[int], start: int, end: int) -> np.ndarray:
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)
    return np.array([float(logp[j - 1, ids[j]]) for j in range(start, end)])


def _pairs() -> list[dict]:
    rows = []
    for i, t in enumerate(TEXTS):
        rows.append({"id": f"raw{i}", "text": t})
        rows.append(
            {
                "id": f"ctx{i}",
                "messages": [{"role": "system", "content": SYSTEM}],
                "completion": t,
                "completion_role": "user",
            }
        )
    return rows


@pytest.mark.parametrize("flavour", ["chatml", "llama3"])
@pytest.mark.parametrize("end_of_turn", [False, True])
def test_raw_and_user_turn_spans_equal_hand_rendered_reference(tmp_path, tiny_model, llama_model, flavour, end_of_turn):
    model_dir = tiny_model if flavour == "chatml" else llama_model
    _, _, df = _score(
        tmp_path, model_dir, _pairs(), {}, score_end_of_turn=end_of_turn, max_batch_tokens=64, logit_chunk=5
    )
    tok = open_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    got = df.set_index("id")
    for i, t in enumerate(TEXTS):
        # raw: the text as the tokenizer encodes it by default, each token after the first scored
        ids = tok(t)["input_ids"]
        assert (ids[0] == tok.bos_token_id) == (flavour == "llama3")
        ref = _lp(model, ids, 1, len(ids))
        row = got.loc[f"raw{i}"]
        assert row.n_context == 1 and row.n_tokens == len(ids) - 1
        assert list(row.token_ids) == ids[1:]
        if len(ref):
            assert np.max(np.abs(np.asarray(row.token_logprobs, dtype=np.float64) - ref)) < 1e-4
            assert row.mean_logprob == pytest.approx(ref.mean(), abs=1e-4)
        else:  # a one-token text without a BOS scores nothing
            assert np.isnan(row.mean_logprob)
        # user turn: context = system message + user header, hand-rendered; span = the text's tokens
        ctx = tok(CONTEXT[flavour], add_special_tokens=False)["input_ids"]
        body = tok(CONTEXT[flavour] + t + (END_OF_USER_TURN[flavour] if end_of_turn else ""), add_special_tokens=False)[
            "input_ids"
        ]
        assert body[: len(ctx)] == ctx
        ref = _lp(model, body, len(ctx), len(body))
        row = got.loc[f"ctx{i}"]
        assert row.n_context == len(ctx) and row.n_tokens == len(body) - len(ctx) and row.boundary_exact
        assert tok.decode(list(row.token_ids)) == t + (END_OF_USER_TURN[flavour] if end_of_turn else "")
        assert np.max(np.abs(np.asarray(row.token_logprobs, dtype=np.float64) - ref)) < 1e-4
        assert row.mean_logprob == pytest.approx(ref.mean(), abs=1e-4)


def test_assistant_pairs_unchanged_beside_the_new_forms(tmp_path, tiny_model):
    """An assistant-turn pair scores the same alone and in a file that mixes all three forms."""
    assistant = {
        "id": "a",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "dog"}],
        "completion": "the playful clown",
    }
    _, _, alone = _score(tmp_path / "alone", tiny_model, [assistant], {})
    _, _, mixed = _score(tmp_path / "mixed", tiny_model, [*_pairs(), assistant], {})
    a, m = alone.iloc[0], mixed.set_index("id").loc["a"]
    assert (a.n_context, a.n_tokens) == (m.n_context, m.n_tokens)
    assert a.mean_logprob == pytest.approx(m.mean_logprob, abs=1e-5)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"id": 1, "text": "x", "messages": [{"role": "system", "content": "s"}]},
            "`text` (a raw-text row) cannot be combined with `messages`",
        ),
        ({"id": 1, "text": "x", "completion": "y"}, "cannot be combined with `completion`"),
        ({"id": 1, "text": ""}, "`text` must be a non-empty string"),
        ({"id": 1, "text": 3}, "`text` must be a non-empty string"),
        (
            {"id": 1, "messages": [{"role": "system", "content": "s"}], "completion": "y", "completion_role": "system"},
            "`completion_role` must be one of 'assistant', 'user', got 'system'",
        ),
        (
            {"id": 1, "messages": [{"role": "system", "content": "s"}], "completion_role": "user"},
            "`completion` must be a string",
        ),
        ({"id": 1, "text": "x", "adapter": "nope"}, "adapter 'nope' is not in the spec's adapters"),
        ({"id": 1, "text": "x", "meta": []}, "`meta` must be an object"),
        ({"id": 1, "txt": "x"}, "unknown field(s) ['txt']"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, tiny_model, row, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"id": 0, "text": "fine"}, row])
    spec = parse_spec(
        "score", {"output_dir": str(tmp_path / "out"), "model": {"id": str(tiny_model)}, "pairs": str(path)}
    )
    with pytest.raises(SpecError) as err, Reporter("score") as rep:
        score.run(spec, spec_hash(spec), rep)
    (problem,) = err.value.problems
    assert problem.startswith(f"pairs: {path} line 2: ") and message in problem


def test_generate_requests_refuse_text(tmp_path):
    from gpu_jobs.inputs import read_items

    path = write_jsonl(tmp_path / "req.jsonl", [{"id": 0, "text": "x"}])
    with pytest.raises(SpecError, match=r"line 1: unknown field\(s\) \['text'\]"):
        read_items(str(path), spec_field="requests", adapters={}, with_completion=False)


def test_vllm_seam_scores_the_same_spans(tmp_path, llama_model):
    """Fed a fake engine answering with the float64 reference, the vLLM backend reproduces the
    transformers backend on raw-text and user-turn pairs (token ids in, BOS not doubled)."""
    model = AutoModelForCausalLM.from_pretrained(llama_model, dtype=torch.float64).eval()
    tok = open_tokenizer(llama_model)
    seen = []

    def reply(prompt, sp, lora):
        ids = prompt["prompt_token_ids"]
        seen.append(ids)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
        entries = [None] + [{ids[j]: SimpleNamespace(logprob=float(logp[j - 1, ids[j]]))} for j in range(1, len(ids))]
        return SimpleNamespace(prompt_logprobs=entries, outputs=[])

    fake = FakeVllm(reply)
    _, _, hf = _score(tmp_path / "hf", llama_model, _pairs(), {}, score_end_of_turn=False)
    spec = parse_spec(
        "score",
        {
            "output_dir": str(tmp_path / "vllm"),
            "model": {"id": str(llama_model)},
            "pairs": str(tmp_path / "hf/pairs.jsonl"),
            "backend": "vllm",
            "score_end_of_turn": False,
        },
    )
    with Reporter("score") as rep:
        score.run(spec, spec_hash(spec), rep, vllm=fake)
    got = pd.read_parquet(spec.out / "scores.parquet")
    assert all(ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id for ids in seen)
    assert got["n_tokens"].tolist() == hf["n_tokens"].tolist()
    assert got["n_context"].tolist() == hf["n_context"].tolist()
    for a, b in zip(hf.itertuples(), got.itertuples()):
        assert np.max(np.abs(np.asarray(a.token_logprobs) - np.asarray(b.token_logprobs))) < 1e-4
