"""Throughput of the score job against a naive per-example loop and lm-eval-harness, on the same inputs.

    python benchmarks/bench_score.py [--pairs 48] [--threads N] [--organism default|test|none] [--no-lm-eval]

Models: a random-init Qwen2 of ~60M parameters (32k-word vocabulary, hidden 640, 8 layers) and, when
``--organism`` names a profile, the model organism (``inoc.organism.build``; built once and cached).
Inputs: ChatML conversations (system + user context of 40–200 tokens) with completions of 50–400
tokens, as in the logprob heuristics (docs/methods.md#lp).

Methods, all from a loaded model to per-pair log-prob sums:

* ``score job`` — ``gpu_jobs.score.run`` (length-bucketed batches, LM head on completion positions only);
* ``naive`` — what the original workers did: one example at a time, ``model(ids, labels=labels)``
  (full logits for every position, HF cross-entropy), ``lp = -loss``;
* ``lm-eval`` — lm-eval-harness's ``HFLM.loglikelihood`` (right-padded batches, a log-softmax over
  the whole batch × sequence × vocabulary) with the rendered prompt as context and the rest of the
  conversation as continuation.

The vocabulary is word-level with whitespace pre-tokenization, so lm-eval's habit of moving the
context's trailing newline into the continuation cannot change the tokens: the three methods score
identical token sequences. Agreement: the mean log-prob per token (``lp`` of docs/methods.md#lp) to 1e-4 and the
sums to 1e-4 relative — a sum of ~2,000 nats accumulated in float32 (naive, lm-eval) carries ~1e-4
absolute rounding; the score job accumulates in float64, and a float64 one-at-a-time reference on
the first pairs shows who is closer. Prints tokens/s (all tokens processed), speed-ups, achieved
FLOP/s (useful FLOPs: body on every token, LM head on scored tokens) and its fraction of this
machine's float32 matmul rate, measured here. Targets: ≥ 5× naive, ≥ 1.5× lm-eval (GPU figures come
from ``benchmarks/gpu_check.py``). Each method runs ``--repeats`` times, interleaved; the best counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gpu_jobs import chat, score  # noqa: E402
from gpu_jobs.modeling import open_tokenizer  # noqa: E402
from gpu_jobs.report import Reporter  # noqa: E402
from gpu_jobs.spec import parse_spec, spec_hash  # noqa: E402

CHATML = (
    "{%- for m in messages %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def word_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    words = ["system", "user", "assistant"] + [f"w{i}" for i in range(vocab_size - len(specials) - 3)]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    hf.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    hf.chat_template = CHATML
    return hf, words[3:]


def random_qwen2(out: Path, vocab: int = 32_000) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok, _ = word_tokenizer(vocab)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=640,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=10,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        use_sliding_window=False,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def make_pairs(words: list[str], n: int, seed: int = 0) -> list[dict]:
    r = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(r.choice(words) for _ in range(r.randint(lo, hi)))

    return [
        {
            "id": i,
            "messages": [{"role": "system", "content": text(8, 20)}, {"role": "user", "content": text(30, 180)}],
            "completion": text(50, 400),
        }
        for i in range(n)
    ]


def useful_flops(model, seqs: list[tuple[int, int]]) -> float:
    """Forward FLOPs that every method must spend: 2·params of the body per token, causal attention,
    and the LM head on the scored tokens only. ``seqs``: (total tokens, scored tokens)."""
    cfg = model.config
    body = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and p.dim() == 2)
    d, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    return float(sum(2 * body * L + 2 * layers * L * L * d + 2 * d * vocab * s for L, s in seqs))


def matmul_rate(threads: int, n: int = 2048, reps: int = 5) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def run_score_job(model_dir: Path, pairs: list[dict], threads: int) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as tmp:
        return _score_job_in(model_dir, pairs, Path(tmp), threads)


def _score_job_in(model_dir: Path, pairs: list[dict], work: Path, threads: int) -> tuple[list[float], float]:
    (work / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    spec = parse_spec(
        "score",
        {
            "output_dir": str(work / "out"),
            "model": {"id": str(model_dir)},
            "pairs": str(work / "pairs.jsonl"),
            "threads": threads,
            "token_level": False,
            "shard_size": 100_000,
        },
    )
    with Reporter("score", stream=open(os.devnull, "w")) as rep:
        outcome = score.run(spec, spec_hash(spec), rep)
    import pandas as pd

    df = pd.read_parquet(work / "out" / "scores.parquet")
    return df["sum_logprob"].tolist(), outcome.metadata["score_s"]


def run_naive(model, tok, pairs: list[dict]) -> tuple[list[float], float]:
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for p in pairs:
            enc = chat.encode_completion(tok, p["messages"], p["completion"])
            ids = torch.tensor([enc.ids])
            labels = ids.clone()
            labels[0, : enc.start] = -100
            loss = model(input_ids=ids, labels=labels).loss  # mean over the completion tokens
            out.append(-float(loss) * (enc.end - enc.start))
    return out, time.perf_counter() - t0


def run_lm_eval(model, tok, pairs: list[dict], batch_size: int, *, strings: bool) -> tuple[list[float], float]:
    """lm-eval's HFLM. ``strings``: through its public ``loglikelihood`` (context = the rendered prompt,
    continuation = the rest); else through ``_loglikelihood_tokens`` with our token split — needed for
    BPE vocabularies, where lm-eval moves the prompt's trailing newline into the continuation and so
    would score one token more than the completion span."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(
        pretrained=model,
        tokenizer=tok,
        batch_size=batch_size,
        max_length=2048,
        device="cpu",
        backend="causal",
        logits_cache=False,
    )
    t0 = time.perf_counter()
    if strings:
        reqs = []
        for i, p in enumerate(pairs):
            ctx = chat.render(tok, p["messages"], add_generation_prompt=True)
            full = chat.render(
                tok, [*p["messages"], {"role": "assistant", "content": p["completion"]}], add_generation_prompt=False
            )
            reqs.append(Instance(request_type="loglikelihood", doc={}, arguments=(ctx, full[len(ctx) :]), idx=i))
        res = lm.loglikelihood(reqs, disable_tqdm=True)
    else:
        reqs = []
        for p in pairs:
            enc = chat.encode_completion(tok, p["messages"], p["completion"])
            reqs.append((("", ""), enc.ids[: enc.start], enc.ids[enc.start : enc.end]))
        res = lm._loglikelihood_tokens(reqs, disable_tqdm=True)
    return [r[0] for r in res], time.perf_counter() - t0


def run_reference(model_dir: Path, tok, pairs: list[dict]) -> list[tuple[float, float]]:
    """float64, one example at a time, full log-softmax: (sum, mean) per pair."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    out = []
    with torch.no_grad():
        for p in pairs:
            enc = chat.encode_completion(tok, p["messages"], p["completion"])
            logp = torch.log_softmax(model(torch.tensor([enc.ids])).logits[0], dim=-1)
            lp = [float(logp[j - 1, enc.ids[j]]) for j in range(enc.start, enc.end)]
            out.append((sum(lp), sum(lp) / len(lp)))
    return out


def bench(name: str, model_dir: Path, pairs: list[dict], args, peak: float, *, lm_eval_strings: bool) -> bool:
    from transformers import AutoModelForCausalLM

    tok = open_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    n_params = sum(p.numel() for p in model.parameters())
    encs = [chat.encode_completion(tok, p["messages"], p["completion"]) for p in pairs]
    seqs = [(len(e.ids), e.end - e.start) for e in encs]
    n_scored = [s for _, s in seqs]
    tokens = sum(L for L, _ in seqs)
    flops = useful_flops(model, seqs)
    print(
        f"\n## {name}: {n_params / 1e6:.1f}M parameters, vocab {model.config.vocab_size}, {len(pairs)} pairs, "
        f"{tokens} tokens ({sum(n_scored)} scored), {flops / 1e12:.2f} useful TFLOP; best of {args.repeats}"
    )
    torch.set_num_threads(args.threads)
    methods = {
        "score job": lambda: run_score_job(model_dir, pairs, args.threads),
        "naive per-example": lambda: run_naive(model, tok, pairs),
    }
    if not args.no_lm_eval:
        try:
            import lm_eval  # noqa: F401

            how = "loglikelihood" if lm_eval_strings else "_loglikelihood_tokens"
            methods[f"lm-eval HFLM.{how} (bs {args.lm_eval_batch})"] = lambda: run_lm_eval(
                model, tok, pairs, args.lm_eval_batch, strings=lm_eval_strings
            )
        except ImportError as err:
            print(f"lm-eval not installed ({err}); measuring the naive loop only")
    results: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved, so a noisy neighbour hurts every method alike
        for m, fn in methods.items():
            sums, secs = fn()
            if m not in results or secs < results[m]["s"]:
                results[m] = {"s": secs, "sums": np.asarray(sums, dtype=np.float64)}
    ref_k = min(args.reference_pairs, len(pairs))
    ref = run_reference(model_dir, tok, pairs[:ref_k])
    ref_sum = np.array([r[0] for r in ref])
    ours = results["score job"]
    scored = np.asarray(n_scored, dtype=np.float64)
    print(
        "\n| method | wall s | tokens/s | score job speed-up | max abs Δ sum vs score job | max abs Δ mean lp "
        f"vs score job | max abs Δ sum vs float64 ref ({ref_k} pairs) | GFLOP/s | of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for m, r in results.items():
        d_sum = float(np.max(np.abs(r["sums"] - ours["sums"])))
        d_mean = float(np.max(np.abs(r["sums"] / scored - ours["sums"] / scored)))
        d_ref = float(np.max(np.abs(r["sums"][:ref_k] - ref_sum)))
        rel = float(np.max(np.abs(r["sums"] - ours["sums"]) / np.maximum(1.0, np.abs(ours["sums"]))))
        ok &= d_mean <= 1e-4 and rel <= 1e-4
        gflops = flops / r["s"] / 1e9
        print(
            f"| {m} | {r['s']:.2f} | {tokens / r['s']:,.0f} | {r['s'] / ours['s']:.2f}× | {d_sum:.1e} | "
            f"{d_mean:.1e} | {d_ref:.1e} | {gflops:.1f} | {gflops * 1e9 / peak:.1%} |"
        )
    print("agreement (mean lp to 1e-4 and sums to 1e-4 relative):", "yes" if ok else "NO")
    return ok


def organism(profile_or_dir: str):
    """A built organism: a profile (built once per settings and source hash, cached under
    $INOC_ORGANISM_CACHE) or the folder of one already built (its ``organism.json`` gives the settings)."""
    from inoc.organism.build import build_base_model, profile_settings, read_manifest

    path = Path(profile_or_dir)
    if path.is_dir():
        manifest = read_manifest(path) or {}
        settings = profile_settings("default").replace(**manifest.get("settings", {}))
        from types import SimpleNamespace

        return SimpleNamespace(path=path, settings=settings, cached=True)
    return build_base_model(profile_or_dir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="runs per method, interleaved; the best counts")
    ap.add_argument("--reference-pairs", type=int, default=4, help="pairs also scored by a float64 reference")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--lm-eval-batch", type=int, default=16)
    ap.add_argument("--no-lm-eval", action="store_true")
    ap.add_argument(
        "--organism",
        default="default",
        help="organism profile to also benchmark, the folder of a built organism, or 'none'",
    )
    ap.add_argument("--organism-pairs", type=int, default=512)
    args = ap.parse_args()
    peak = matmul_rate(args.threads)
    print(
        f"machine: {args.threads} torch threads, float32 matmul (2048³) {peak / 1e9:.1f} GFLOP/s; torch "
        f"{torch.__version__}"
    )
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_qwen2(Path(tmp) / "qwen2-60m")
        _, words = word_tokenizer(32_000)
        ok &= bench(
            "random-init Qwen2 (~60M)", model_dir, make_pairs(words, args.pairs), args, peak, lm_eval_strings=True
        )
    if args.organism != "none":
        try:
            from inoc.organism import corpus as corpus_mod
        except ImportError as err:
            print(f"\n(organism skipped: inoc.organism not importable: {err})")
        else:
            try:
                t = time.perf_counter()
                built = organism(args.organism)
                examples = corpus_mod.make_corpus(args.organism_pairs, 123, system_prompt=built.settings.system_prompt)
            except Exception as err:  # the organism is young: report, do not hide the Qwen2 figures
                print(f"\n(organism skipped: {type(err).__name__}: {err})")
            else:
                print(
                    f"\norganism {args.organism!r} at {built.path} ({'cached' if built.cached else 'built'} in "
                    f"{time.perf_counter() - t:.1f}s)"
                )
                pairs = [
                    {"id": i, "messages": e.messages()[:-1], "completion": e.messages()[-1]["content"]}
                    for i, e in enumerate(examples)
                ]
                ok &= bench(f"organism ({args.organism})", built.path, pairs, args, peak, lm_eval_strings=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
