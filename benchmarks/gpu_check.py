"""GPU check: the three jobs on CUDA in bf16 (train → generate → score) on the model organism.

    python benchmarks/gpu_check.py [--organism test] [--work DIR] [--vllm] [--engines]
    python benchmarks/gpu_check.py --device cpu --small     # dry run of this script's logic on a CPU

Without a CUDA device it prints why and exits 0 (no test depends on a GPU). On any CUDA machine it
takes a few minutes (well under 10): it builds (or reuses) the organism, then runs each job from its
spec file through ``python -m gpu_jobs.<job>`` exactly as the local backend does:

1. train — LoRA (r 32, α 16, rsLoRA, all projection modules) in bf16 with gradient checkpointing,
   8-bit AdamW when bitsandbytes is installed (else AdamW), a pow2 checkpoint schedule;
2. generate — requests spread over the base model, the step-0 adapter and the final adapter, sampled
   in bf16 batches; plus a greedy batched-vs-one-at-a-time comparison (bf16 kernels may differ in
   the last bits between batch shapes, so this prints the share of identical completions);
3. score — completion log-probs in bf16 under the final adapter and the base model, compared with a
   float32 run of the same job and timed against a naive per-example loop.

With ``--vllm`` generate and score also run on the vLLM backend, in ``.venv-vllm`` (``make engines``, or
``sky/setup.sh`` on a cluster; ``$INOC_ENGINE_ENVS`` for another folder): the base rows' no-adapter check
runs there with the bf16 tolerance. With ``--engines`` it also prints ``benchmarks/bench_engines.py``'s
table (transformers vs vLLM vs Unsloth: tokens/s, start-up, peak RSS) on this device. Prints every
figure; exits non-zero if a job fails or a number is not finite.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def job(name: str, spec: dict, work: Path, timeout: float, python: str | Path = sys.executable) -> dict:
    """Run one job from a spec file (with ``python``: an engine venv's for vLLM); returns its marker's metadata."""
    path = work / f"{name}-{spec['output_dir'].rsplit('/', 1)[-1]}.json"
    path.write_text(json.dumps(spec, indent=1))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), "-m", f"gpu_jobs.{name}", "--spec", str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
        raise SystemExit(f"gpu_jobs.{name} failed with exit code {proc.returncode}")
    md = json.loads((Path(spec["output_dir"]) / "_COMPLETE.json").read_text())["metadata"]
    md["process_wall_s"] = round(wall, 1)
    return md


def finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def naive_scores(
    model_dir: str, adapter: str | None, pairs: list[dict], device: str, dtype
) -> tuple[list[float], float]:
    """The original workers' loop: one example at a time, ``-loss`` of a labelled forward pass."""
    import torch
    from transformers import AutoModelForCausalLM

    from gpu_jobs import chat
    from gpu_jobs.modeling import open_tokenizer

    tok = open_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    out = []
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        for p in pairs:
            enc = chat.encode_completion(tok, p["messages"], p["completion"])
            ids = torch.tensor([enc.ids], device=device)
            labels = ids.clone()
            labels[0, : enc.start] = -100
            out.append(-float(model(input_ids=ids, labels=labels).loss))
    sync()
    return out, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument(
        "--organism",
        default="test",
        help="organism profile (test builds in about a minute) or the folder of a built one",
    )
    ap.add_argument("--work", default=None, help="folder for specs and outputs (default: a temporary one)")
    ap.add_argument("--small", action="store_true", help="tiny sizes (for a CPU dry run)")
    ap.add_argument("--vllm", action="store_true", help="also run generate and score on the vLLM backend")
    ap.add_argument("--engines", action="store_true", help="also print bench_engines.py's table on this device")
    args = ap.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
            "nothing to check here — run it on a GPU machine."
        )
        return 0
    t_start = time.perf_counter()
    device = args.device
    if device == "cuda":
        print(
            f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"
        )
    dtype = "bfloat16" if device == "cuda" else "float32"
    n_train, n_gen, n_score, n_naive = (64, 12, 32, 8) if args.small else (4096, 384, 2048, 256)
    max_new = 16 if args.small else 128

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_score import organism

    from inoc.organism import corpus as corpus_mod

    t = time.perf_counter()
    built = organism(args.organism)
    model_dir = str(built.path)
    print(
        f"organism {args.organism!r}: {model_dir} ({'cached' if built.cached else 'built'} in "
        f"{time.perf_counter() - t:.0f}s)"
    )
    examples = corpus_mod.make_corpus(n_train + n_gen + n_score, 777, system_prompt=built.settings.system_prompt)
    train_ex, gen_ex, score_ex = (examples[:n_train], examples[n_train : n_train + n_gen], examples[n_train + n_gen :])

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)

    def write(name: str, rows: list[dict]) -> str:
        (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(work / name)

    import importlib.util

    optimizer = "adamw_8bit" if device == "cuda" and importlib.util.find_spec("bitsandbytes") else "adamw_torch"
    figures: dict[str, object] = {}
    ok = True

    # 1. train
    train_spec = {
        "output_dir": str(work / "train"),
        "model": {"id": model_dir, "dtype": dtype},
        "device": device,
        "data": {"path": write("train.jsonl", [{"messages": e.messages()} for e in train_ex]), "format": "messages"},
        "prefix": {"plan": "pool", "pool": ["Answer playfully.", "Be playful.", "Answer in a playful way."]},
        "optimizer": optimizer,
        "learning_rate": 1e-3,
        "warmup_steps": 5,
        "per_device_batch_size": 8,
        "gradient_accumulation_steps": 4,
        "max_seq_length": 512,
        "gradient_checkpointing": True,
        "checkpoints": {"kind": "pow2"},
    }
    tr = job("train", train_spec, work, timeout=300)
    final = f"{work}/train/checkpoints/step_{tr['total_steps']}"
    figures["train"] = {
        k: tr.get(k)
        for k in (
            "total_steps",
            "first_loss",
            "final_loss_mean10",
            "train_s",
            "trained_tokens_per_s",
            "dtype",
            "device",
            "process_wall_s",
        )
    }
    figures["train"]["optimizer"] = optimizer
    ok &= finite(tr["first_loss"], tr["final_loss"]) and tr["final_loss_mean10"] < tr["first_loss"]

    # 2. generate
    adapters = {"step_0": f"{work}/train/checkpoints/step_0", "final": final}
    requests = [
        {"id": i, "messages": e.messages()[:-1], "adapter": [None, "step_0", "final"][i % 3]}
        for i, e in enumerate(gen_ex)
    ]
    gen_spec = {
        "output_dir": str(work / "generate"),
        "model": {"id": model_dir, "dtype": dtype},
        "device": device,
        "requests": write("requests.jsonl", requests),
        "adapters": adapters,
        "max_tokens": max_new,
        "temperature": 1.0,
        "batch_size": 64,
    }
    gm = job("generate", gen_spec, work, timeout=240)
    figures["generate"] = {
        k: gm.get(k)
        for k in (
            "n_completions",
            "completions_per_s",
            "tokens_per_s",
            "stopped_fraction",
            "mean_tokens",
            "process_wall_s",
        )
    }
    ok &= gm["n_completions"] == len(requests)

    import torch
    from transformers import AutoModelForCausalLM

    from gpu_jobs import chat
    from gpu_jobs.hf_generate import generate_batch
    from gpu_jobs.modeling import open_tokenizer, resolve_dtype, stop_token_ids

    tok = open_tokenizer(model_dir)
    tdtype = resolve_dtype(dtype, device)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=tdtype).to(device).eval()
    prompts = [chat.prompt_ids(tok, r["messages"]) for r in requests[:16]]
    stops = stop_token_ids(tok, model)
    kw = dict(temperature=0.0, top_p=1.0, max_tokens=max_new, stop_ids=stops, pad_id=tok.pad_token_id, device=device)
    together = generate_batch(model, prompts, seeds=[0] * len(prompts), **kw)
    alone = [generate_batch(model, [p], seeds=[0], **kw)[0] for p in prompts]
    same = sum(a.token_ids == b.token_ids for a, b in zip(alone, together))
    figures["generate"]["greedy_batched_equals_unbatched"] = f"{same}/{len(prompts)}"
    del model

    # 3. score
    pairs = [
        {
            "id": i,
            "messages": e.messages()[:-1],
            "completion": e.messages()[-1]["content"],
            "adapter": "final" if i % 2 else None,
        }
        for i, e in enumerate(score_ex)
    ]
    pairs_path = write("pairs.jsonl", pairs)
    score_spec = {
        "output_dir": str(work / "score"),
        "model": {"id": model_dir, "dtype": dtype},
        "device": device,
        "pairs": pairs_path,
        "adapters": {"final": final},
    }
    sm = job("score", score_spec, work, timeout=240)
    sub = [p for p in pairs if p["adapter"] is None][:n_naive]
    write("pairs_base.jsonl", sub)
    ref_spec = {
        "output_dir": str(work / "score_fp32"),
        "model": {"id": model_dir, "dtype": "float32"},
        "device": device,
        "pairs": str(work / "pairs_base.jsonl"),
    }
    job("score", ref_spec, work, timeout=240)
    import numpy as np
    import pandas as pd

    bf = pd.read_parquet(work / "score/scores.parquet")
    bf = bf[bf["adapter"].isna()].head(len(sub))
    fp = pd.read_parquet(work / "score_fp32/scores.parquet")
    naive, naive_s = naive_scores(model_dir, None, sub, device, tdtype)
    naive_tokens = sum(len(chat.encode_completion(tok, p["messages"], p["completion"]).ids) for p in sub)
    figures["score"] = {
        k: sm.get(k)
        for k in ("n_pairs", "tokens", "tokens_per_s", "score_s", "n_nan", "mean_of_mean_logprob", "process_wall_s")
    }
    figures["score"]["naive_tokens_per_s"] = round(naive_tokens / naive_s, 1)
    figures["score"]["speedup_vs_naive"] = round(sm["tokens_per_s"] / (naive_tokens / naive_s), 2)
    figures["score"]["max_abs_d_lp_bf16_vs_fp32"] = float(
        np.max(np.abs(bf["mean_logprob"].values - fp["mean_logprob"].values))
    )
    figures["score"]["max_abs_d_lp_job_vs_naive_same_dtype"] = float(
        np.max(np.abs(bf["mean_logprob"].values - np.asarray(naive)))
    )
    ok &= sm["n_nan"] == 0 and finite(sm["mean_of_mean_logprob"])

    from bench_engines import bench, engine_python, table

    if args.vllm:
        vllm_python = engine_python("vllm")
        if vllm_python is None:
            print("(--vllm: .venv-vllm is absent — build it with `make engines`; skipped)")
        else:
            vg = job(
                "generate",
                {**gen_spec, "output_dir": str(work / "generate_vllm"), "backend": "vllm"},
                work,
                600,
                vllm_python,
            )
            vs = job(
                "score",
                {**score_spec, "output_dir": str(work / "score_vllm"), "backend": "vllm"},
                work,
                600,
                vllm_python,
            )
            a = pd.read_parquet(work / "score/scores.parquet")["mean_logprob"].values
            b = pd.read_parquet(work / "score_vllm/scores.parquet")["mean_logprob"].values
            figures["vllm"] = {
                "completions_per_s": vg.get("completions_per_s"),
                "score_tokens_per_s": vs.get("tokens_per_s"),
                "max_abs_d_lp_vs_transformers": float(np.max(np.abs(a - b))),
            }

    if args.engines:
        sizes = argparse.Namespace(
            requests=n_gen, max_tokens=max_new, pairs=n_score, examples=n_train // 8, threads=os.cpu_count() or 1
        )
        (work / "engines").mkdir(exist_ok=True)
        rows = bench(model_dir, device, work / "engines", sizes)
        print(table(rows))
        ok &= all("note" not in r for r in rows)

    print(json.dumps(figures, indent=2, default=str))
    print(f"gpu_check: {'OK' if ok else 'FAILED'} in {time.perf_counter() - t_start:.0f}s; outputs in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
