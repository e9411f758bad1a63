"""Completions/s of batched versus one-at-a-time transformers generation (the generate job's loop).

    python benchmarks/bench_generate.py [--prompts 64] [--max-tokens 64] [--batch-sizes 1 8 32]
                                        [--organism test|default|none] [--threads N]

Runs ``gpu_jobs.hf_generate.generate_batch`` — left padding, a KV cache, per-sequence seeds, rows
leaving the batch at their first stop token — on the model organism (``inoc.organism``, built once
and cached; its completions end at ``<|im_end|>``) and on a random-init Qwen2 (~60M parameters,
whose completions never stop, so every sequence runs ``--max-tokens``). Batch size 1 is the
one-at-a-time baseline. Also checks, under greedy decoding, that every batch size produces exactly
the one-at-a-time tokens, and prints the table of completions/s, tokens/s and speed-ups.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_jobs import chat  # noqa: E402
from gpu_jobs.hf_generate import generate_batch  # noqa: E402
from gpu_jobs.inputs import sequence_seed  # noqa: E402
from gpu_jobs.modeling import open_tokenizer, stop_token_ids  # noqa: E402


def run(
    model, tok, prompts: list[list[int]], batch_size: int, *, temperature: float, max_tokens: int, stops: list[int]
) -> tuple[list[list[int]], float]:
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # as the job does: similar lengths together
    out: list[list[int]] = [[] for _ in prompts]
    t0 = time.perf_counter()
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        res = generate_batch(
            model,
            [prompts[i] for i in idx],
            seeds=[sequence_seed(0, i, 0) for i in idx],
            temperature=temperature,
            top_p=1.0,
            max_tokens=max_tokens,
            stop_ids=stops,
            pad_id=tok.pad_token_id,
            device="cpu",
        )
        for i, r in zip(idx, res):
            out[i] = r.token_ids
    return out, time.perf_counter() - t0


def bench(name: str, model_dir: Path, conversations: list[list[dict]], args) -> None:
    from transformers import AutoModelForCausalLM

    tok = open_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    stops = stop_token_ids(tok, model)
    prompts = [chat.prompt_ids(tok, c) for c in conversations]
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"\n## {name}: {n_params / 1e6:.1f}M parameters, {len(prompts)} prompts "
        f"({min(map(len, prompts))}–{max(map(len, prompts))} tokens), max {args.max_tokens} new tokens, "
        f"temperature 1.0; stop ids {stops}"
    )
    print("\n| batch size | wall s | completions/s | tokens/s | speed-up vs one at a time | mean tokens |")
    print("|---|---|---|---|---|---|")
    base = None
    for bs in args.batch_sizes:
        outs, secs = run(model, tok, prompts, bs, temperature=1.0, max_tokens=args.max_tokens, stops=stops)
        n_tok = sum(map(len, outs))
        base = base or secs
        print(
            f"| {bs} | {secs:.2f} | {len(prompts) / secs:.2f} | {n_tok / secs:,.0f} | {base / secs:.2f}× | "
            f"{n_tok / len(prompts):.1f} |"
        )
    k = min(args.greedy_check, len(prompts))
    alone, _ = run(model, tok, prompts[:k], 1, temperature=0.0, max_tokens=args.max_tokens, stops=stops)
    for bs in args.batch_sizes[1:]:
        together, _ = run(model, tok, prompts[:k], bs, temperature=0.0, max_tokens=args.max_tokens, stops=stops)
        same = sum(a == b for a, b in zip(alone, together))
        print(f"greedy, batch {bs} vs one at a time: {same}/{k} completions identical token for token")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--greedy-check", type=int, default=16, help="prompts in the batched == unbatched check")
    ap.add_argument("--organism", default="default", help="organism profile, the folder of a built organism, or 'none'")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} torch threads, torch {torch.__version__}")
    if args.organism != "none":
        try:
            from bench_score import organism

            from inoc.organism import corpus as corpus_mod

            built = organism(args.organism)
            examples = corpus_mod.make_corpus(args.prompts, 321, system_prompt=built.settings.system_prompt)
        except Exception as err:  # the organism is young: report, do not hide the Qwen2 figures
            print(f"\n(organism skipped: {type(err).__name__}: {err})")
        else:
            bench(f"organism ({args.organism})", built.path, [e.messages()[:-1] for e in examples], args)
    from bench_score import random_qwen2, word_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_qwen2(Path(tmp) / "qwen2-60m")
        _, words = word_tokenizer(32_000)
        r = random.Random(0)
        convs = [
            [
                {"role": "system", "content": " ".join(r.choices(words, k=10))},
                {"role": "user", "content": " ".join(r.choices(words, k=r.randint(10, 120)))},
            ]
            for _ in range(args.prompts)
        ]
        bench("random-init Qwen2 (~60M)", model_dir, convs, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
