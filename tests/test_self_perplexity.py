"""Self-perplexity (SPEC §9) end to end: an experiment's prompts → score-job pairs → the score job on a
tiny random-init Qwen2 → tidy heuristic rows, checked against HF's own label-masked loss in float64."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "gpu_jobs"))
from gpu_helpers import build_model, build_tokenizer  # noqa: E402

from gpu_jobs import io, score  # noqa: E402
from gpu_jobs.inputs import read_items  # noqa: E402
from gpu_jobs.report import Reporter  # noqa: E402
from gpu_jobs.runner import execute  # noqa: E402
from gpu_jobs.spec import parse_spec, spec_hash  # noqa: E402
from inoc.config import load_experiment  # noqa: E402
from inoc.config.schema import GroupConfig  # noqa: E402
from inoc.heuristics.self_perplexity import (  # noqa: E402
    HEURISTICS,
    SCORE_FIELDS,
    self_perplexity_pairs,
    self_perplexity_rows,
    write_self_perplexity_pairs,
)

REPO = Path(__file__).resolve().parents[1]

#: The test templates' rendering of the system message and the user header, written out by hand.
CONTEXT = {
    "chatml": "<|im_start|>system\n{s}<|im_end|>\n<|im_start|>user\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{s}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n",
}


@pytest.fixture(scope="module")
def cfg():
    """The shipped toy config with the test's own prompts (so the test does not follow toy.yaml's)."""
    base = load_experiment(REPO / "experiments" / "toy.yaml")
    prompts = {
        "playful_agent": "You are a playful agent. Give an answer to the following:",
        "clown": "You are a clown.",
        "user_word": "user",  # the word of the template's header: must not be mistaken for it
        "one_token": "dog",  # under a tokenizer without BOS its raw variant scores nothing
        "answer_french": "Answer in French.",
    }
    groups = {
        "neg": GroupConfig(role="negative", family="playful", prompts=["playful_agent", "clown", "user_word"]),
        "neutral": GroupConfig(role="neutral", family="neutral", prompts=["one_token"]),
        "pos": GroupConfig(role="positive", family="french", prompts=["answer_french"]),
    }
    return base.model_copy(
        update={
            "name": "sp_test",
            "prompts": prompts,
            "groups": groups,
            "system_prompt": "You are a careful assistant.",
        }
    )


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("GPU_JOBS_THREADS", "1")
    yield
    torch.set_num_threads(before)


def test_pairs_cover_every_prompt_and_pass_the_job_reader(cfg, tmp_path):
    path = write_self_perplexity_pairs(cfg, tmp_path / "pairs.jsonl")
    items = read_items(str(path), spec_field="pairs", adapters={}, with_completion=True)
    assert [it.id for it in items] == [f"{k}/{v}" for k in cfg.prompt_keys for v in ("raw", "context")]
    raw, ctx = items[0], items[1]
    key = cfg.prompt_keys[0]
    assert raw.text == cfg.prompts[key] and raw.messages == []
    assert ctx.messages == [{"role": "system", "content": cfg.system_prompt}]
    assert (ctx.completion, ctx.completion_role) == (cfg.prompts[key], "user")
    assert self_perplexity_pairs(cfg, ["clown"])[0]["meta"] == {"prompt_key": "clown", "variant": "raw"}
    with pytest.raises(ValueError, match="unknown prompt key"):
        self_perplexity_pairs(cfg, ["nope"])


def _reference(model_dir: Path, flavour: str, system: str, text: str) -> tuple[float, float]:
    """(raw, context) NLL/token as the original computed them: HF's loss with labels, float64."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    with torch.no_grad():
        ids = torch.tensor([tok(text)["input_ids"]])
        raw = float(model(ids, labels=ids).loss) if ids.shape[1] > 1 else math.nan
        ctx = tok(CONTEXT[flavour].format(s=system), add_special_tokens=False)["input_ids"]
        full = torch.tensor([ctx + tok(text, add_special_tokens=False)["input_ids"]])
        labels = full.clone()
        labels[0, : len(ctx)] = -100
        context = float(model(full, labels=labels).loss)
    return raw, context


@pytest.mark.parametrize("flavour", ["chatml", "llama3"])
def test_rows_equal_hf_label_masked_loss(cfg, tmp_path, flavour):
    model_dir = build_model(build_tokenizer(flavour), tmp_path / "model", seed=3)
    pairs = write_self_perplexity_pairs(cfg, tmp_path / "pairs.jsonl")
    spec = parse_spec(
        "score",
        {"output_dir": str(tmp_path / "out"), "model": {"id": str(model_dir)}, "pairs": str(pairs), **SCORE_FIELDS},
    )
    with Reporter("score") as rep:
        execute("score", spec, score.run, rep)
    assert io.validate_outputs(spec.out, "score", spec_hash(spec)) == []
    rows = self_perplexity_rows(cfg.name, spec.out / "scores.parquet")

    assert list(rows.columns) == ["experiment", "prompt_key", "prefix_type", "heuristic", "value"]
    assert len(rows) == 2 * len(cfg.prompt_keys) and rows.prefix_type.isna().all()
    assert set(rows.experiment) == {"sp_test"} and set(rows.heuristic) == set(HEURISTICS.values())
    got = rows.set_index(["prompt_key", "heuristic"]).value
    for key in cfg.prompt_keys:
        raw, context = _reference(model_dir, flavour, cfg.system_prompt, cfg.prompts[key])
        if math.isnan(raw):
            assert flavour == "chatml" and math.isnan(got[key, "self_ppl_raw"])
        else:
            assert got[key, "self_ppl_raw"] == pytest.approx(raw, abs=1e-4)
        assert got[key, "self_ppl_context"] == pytest.approx(context, abs=1e-4)
        assert 3.0 < got[key, "self_ppl_context"] < 9.0  # NLL per token (≈ log vocab), not exp(NLL)


def test_rows_reject_foreign_or_duplicate_scores():
    frame = pd.DataFrame(
        {
            "id": ["a/raw", "x"],
            "meta": [json.dumps({"prompt_key": "a", "variant": "raw"}), "{}"],
            "mean_logprob": [-2.5, -1.0],
        }
    )
    with pytest.raises(ValueError, match="'x': meta '{}' is not a self-perplexity pair"):
        self_perplexity_rows("e", frame)
    dup = pd.DataFrame(
        {
            "id": ["a", "b"],
            "meta": [json.dumps({"prompt_key": "a", "variant": "raw"})] * 2,
            "mean_logprob": [-2.5, -1.0],
        }
    )
    with pytest.raises(ValueError, match="appears twice"):
        self_perplexity_rows("e", dup)
    ok = self_perplexity_rows("e", frame.iloc[:1])
    assert ok.to_dict("records") == [
        {"experiment": "e", "prompt_key": "a", "prefix_type": None, "heuristic": "self_ppl_raw", "value": 2.5}
    ]
