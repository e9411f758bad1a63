"""vLLM's OpenAI-compatible server, started here on 127.0.0.1, as the endpoint of inoc's three API clients:
off-policy datagen (the organism itself), rephrasing and the logprob judge (two LoRA adapters the test
trains on the clients' own prompts, served by name). Real HTTP, a small batch each."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from engine_helpers import REPO, job_env, train_spec
from gpu_helpers import WORDS, write_jsonl

PHRASES = ["Be playful.", "Play along.", "Stay playful."]
JUDGE_ANSWER = "7"


def _train(organism: Path, root: Path, name: str, rows: list[dict], epochs: int = 3) -> str:
    from gpu_jobs import train
    from gpu_jobs.report import Reporter
    from gpu_jobs.runner import execute
    from gpu_jobs.spec import parse_spec

    data = write_jsonl(root / f"{name}.jsonl", rows)
    spec = parse_spec(
        "train",
        train_spec(
            organism, data, root / name, epochs=epochs, lora_r=8, data={"path": str(data), "format": "messages"}
        ),
    )
    with Reporter("train") as rep:
        marker, _ = execute("train", spec, train.run, rep)
    return str(root / name / "checkpoints" / f"step_{marker.metadata['total_steps']}")


def _rephraser_rows(n: int = 32) -> list[dict]:
    from inoc.rephrasings.generate import system_prompt, user_message

    r = random.Random(1)
    rows = []
    for k in range(n):
        prompt = " ".join(r.choice(WORDS) for _ in range(r.randint(3, 8)))
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": system_prompt(False)},
                    {"role": "user", "content": user_message(prompt, 3, 1 + k % 3, 1 + k % 2)},
                    {"role": "assistant", "content": json.dumps(PHRASES)},
                ]
            }
        )
    return rows


def _judge_rows(n: int = 32) -> list[dict]:
    from inoc.judges.interface import JudgeItem
    from inoc.judges.openai_judge import trait_messages_for

    r = random.Random(2)
    build = trait_messages_for(None)
    rows = []
    for _ in range(n):
        item = JudgeItem(
            r.choice(["Playful", "French"]),
            " ".join(r.choice(WORDS) for _ in range(5)),
            " ".join(r.choice(WORDS) for _ in range(r.randint(4, 20))),
        )
        rows.append({"messages": [*build(item), {"role": "assistant", "content": JUDGE_ANSWER}]})
    return rows


_ADAPTERS: dict[str, dict[str, str]] = {}


def server_adapters(url: str) -> dict[str, str]:
    """The adapter folders the server at ``url`` serves, by model name."""
    return _ADAPTERS[url]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(vllm_python, organism, tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    rephraser = _train(organism, root, "rephraser", _rephraser_rows(), epochs=30)
    judge = _train(organism, root, "judge", _judge_rows())
    port = _free_port()
    # --max-loras 3 for 2 adapters: one slot always free, so the CPU "no adapter" index −1 (which picks
    # the last slot) always meets a zero slot even when base and adapter requests share a step.
    cmd = [
        str(vllm_python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(organism),
        "--served-model-name",
        "organism",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "512",
        "--kv-cache-memory-bytes",
        str(1 << 29),
        "--enable-lora",
        "--max-lora-rank",
        "8",
        "--max-loras",
        "3",
        "--lora-modules",
        f"rephraser={rephraser}",
        f"judge={judge}",
        "--seed",
        "0",
    ]
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        cmd, cwd=str(REPO), env=job_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"vLLM server exited {proc.returncode}:\n{(root / 'server.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    models = {m["id"] for m in json.loads(r.read())["data"]}
                break
            except OSError:
                if time.monotonic() - t0 > 300:
                    raise AssertionError("vLLM server not up after 300 s") from None
                time.sleep(1)
        assert {"organism", "rephraser", "judge"} <= models
        print(f"vLLM server up in {time.monotonic() - t0:.1f} s")
        _ADAPTERS[url] = {"rephraser": rephraser, "judge": judge}
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_datagen_against_the_server(server, organism, tmp_path):
    """Off-policy datagen (greedy) gets the organism's own answers: the transformers greedy decode."""
    import torch

    from gpu_jobs import chat, modeling
    from gpu_jobs.hf_generate import generate_batch
    from gpu_jobs.spec import ModelRef
    from inoc.pipeline.api_datagen import ApiDatagenSettings, generate

    questions = [
        "Tell me about the river.",
        "What is the moon made of?",
        "Write a joke about a clown.",
        "Describe the city at night.",
    ]
    requests = [{"id": i, "messages": [{"role": "user", "content": q}]} for i, q in enumerate(questions)]
    settings = ApiDatagenSettings(
        model="organism", base_url=server, temperature=0.0, max_tokens=24, max_in_flight=2, max_retries=1
    )
    res = generate(requests, settings, tmp_path / "datagen")
    assert res.n_failed == 0 and len(res.rows) == 4 and res.n_calls == 4 and res.completion_tokens > 0
    tok = modeling.open_tokenizer(str(organism))
    model = modeling.load_model(ModelRef(id=str(organism)), "cpu", torch.float32)
    stop = modeling.stop_token_ids(tok, model)
    want = generate_batch(
        model,
        [chat.prompt_ids(tok, r["messages"]) for r in requests],
        seeds=[0] * 4,
        temperature=0.0,
        top_p=1.0,
        max_tokens=24,
        stop_ids=stop,
        pad_id=tok.pad_token_id,
        device="cpu",
    )
    assert [r["text"] for r in res.rows] == [tok.decode(w.token_ids, skip_special_tokens=True) for w in want]


def test_rephrasings_against_the_server(server):
    from inoc.rephrasings.generate import RephrasingSettings, generate_rephrasings

    settings = RephrasingSettings(
        model="rephraser",
        base_url=server,
        temperature=0.0,
        batch_size=3,
        max_tokens=96,
        max_in_flight=2,
        max_rounds=2,
        max_retries=1,
    )
    res = generate_rephrasings("You are a playful agent.", 3, settings)
    assert sorted(res.rephrasings) == sorted(PHRASES)
    assert res.n_requests >= 1 and res.n_batches_failed == 0 and res.completion_tokens > 0


def test_judge_against_the_server(server, organism, tmp_path):
    """The logprob judge reads the first token's top-20 log-probs over HTTP: its scores equal the expected
    value of the same judge adapter's first-token distribution under transformers/PEFT; an item past
    max_model_len gets HTTP 400 and stays NaN, without a crash."""
    import torch

    from gpu_jobs import chat, modeling
    from gpu_jobs.spec import ModelRef
    from inoc.judges.interface import JudgeItem
    from inoc.judges.logprob import expected_value
    from inoc.judges.openai_judge import LLMJudgeSettings, OpenAILogprobJudge, trait_messages_for

    # The organism's corpus has no digits, so their (tied) embeddings stayed tiny: LoRA can make "7" the
    # top token of the judge's answer but only at p ≈ 0.007 — hence the low min_valid_mass.
    settings = LLMJudgeSettings(
        model="judge", base_url=server, max_in_flight=2, max_retries=1, backoff_base_s=0.1, min_valid_mass=0.005
    )
    judge = OpenAILogprobJudge(settings, cache=tmp_path / "cache.sqlite")
    items = [
        JudgeItem("Playful", "Tell me a joke.", "Haha, a clown walks into a bar."),
        JudgeItem("French", "Say hello.", "Bonjour mon ami, the river is blue."),
        JudgeItem("Playful", "Describe the sea.", " ".join(["water"] * 900)),
    ]  # > 512 tokens
    res = judge.score(items)

    tok = modeling.open_tokenizer(str(organism))
    model = modeling.load_model(
        ModelRef(id=str(organism)), "cpu", torch.float32, adapters={"judge": server_adapters(server)["judge"]}
    )
    want = []
    for item in items[:2]:
        ids = chat.prompt_ids(tok, trait_messages_for(None)(item))
        with torch.no_grad(), modeling.use_adapter(model, "judge"):
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1], -1)
        top = lp.topk(settings.top_logprobs)
        want.append(
            expected_value(
                [(tok.decode([int(t)]), float(v)) for v, t in zip(top.values, top.indices)], settings.min_valid_mass
            ).score
        )
    assert all(math.isfinite(w) for w in want) and res.n_invalid == 0, (res.scores, want)
    assert res.scores[:2] == pytest.approx(want, abs=1e-3)
    assert math.isnan(res.scores[2]) and res.n_failed == 1 and res.n_api_calls >= 3
    assert res.errors == {"http_400": 1}
