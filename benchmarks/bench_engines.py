"""Engines side by side: transformers/PEFT vs vLLM vs Unsloth, each in its own environment, one run.

    python benchmarks/bench_engines.py [--organism test] [--device cpu|cuda] [--requests 256] [--max-tokens 128]
                                       [--pairs 2048] [--examples 768] [--work DIR]

Runs the real jobs (``python -m gpu_jobs.<job> --spec``) on the model organism exactly as the local
backend launches them — transformers/PEFT with this Python, vLLM with ``.venv-vllm``, Unsloth with
``.venv-unsloth`` (``make engines``; ``$INOC_ENGINE_ENVS`` for another folder) — and prints one table:

* tokens/s: generated tokens (generate), prompt+completion tokens (score), trained tokens (train),
  over the job's own compute time;
* start-up s: the process's wall time minus that compute time (imports, model load, engine start);
* peak RSS: the largest sum of resident memory over the job's process tree (vLLM runs a front-end,
  an engine core and a worker process), sampled every 0.1 s;
* threads and engine as the job's metadata reports them.

An engine whose venv is missing is listed as such. ``benchmarks/gpu_check.py --engines`` prints the
same table on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = (
    "the cat dog sun moon answer question playful french clown joke river tree blue green red fast slow "
    "happy sad light dark water fire earth wind stone paper"
).split()


def engine_python(engine: str | None) -> Path | None:
    """The interpreter of an engine's venv (None: this process's), or None if absent."""
    if engine is None:
        return Path(sys.executable)
    root = Path(os.environ.get("INOC_ENGINE_ENVS") or REPO)
    python = root / f".venv-{engine}" / "bin" / "python"
    return python if python.is_file() else None


def _tree_rss(root_pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d.name))
            rss[int(d.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_job(python: Path, job: str, spec: dict, work: Path, threads: int) -> dict:
    path = work / f"{job}-{Path(spec['output_dir']).name}.json"
    path.write_text(json.dumps({"job": job, **spec}, indent=1))
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "GPU_JOBS_THREADS": str(threads),
    }
    env.pop("DAGSTER_PIPES_CONTEXT", None)
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), "-m", f"gpu_jobs.{job}", "--spec", str(path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"gpu_jobs.{job} ({python}) failed with exit code {proc.returncode}:\n{out[-3000:]}")
    md = json.loads((Path(spec["output_dir"]) / "_COMPLETE.json").read_text())["metadata"]
    compute = md.get("generate_s") or md.get("score_s") or md.get("train_s") or 0.0
    tps = md.get("tokens_per_s") or md.get("trained_tokens_per_s")
    return {
        "tokens_per_s": tps,
        "startup_s": wall - compute,
        "wall_s": wall,
        "compute_s": compute,
        "peak_rss_gb": peak[0] / 2**30,
        "threads": md.get("threads"),
        "engine": (md.get("versions") or {}).get("engine"),
    }


def inputs(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    r = random.Random(0)

    def sentence(lo: int, hi: int) -> str:
        return " ".join(r.choice(WORDS) for _ in range(r.randint(lo, hi)))

    files = {"requests": work / "requests.jsonl", "pairs": work / "pairs.jsonl", "train": work / "train.jsonl"}
    files["requests"].write_text(
        "".join(
            json.dumps({"id": i, "messages": [{"role": "user", "content": sentence(4, 16)}]}) + "\n"
            for i in range(args.requests)
        )
    )
    files["pairs"].write_text(
        "".join(
            json.dumps(
                {"id": i, "messages": [{"role": "user", "content": sentence(4, 16)}], "completion": sentence(20, 80)}
            )
            + "\n"
            for i in range(args.pairs)
        )
    )
    files["train"].write_text(
        "".join(
            json.dumps({"instruction": sentence(4, 16), "completion": sentence(10, 40)}) + "\n"
            for _ in range(args.examples)
        )
    )
    return files


def bench(model: str, device: str, work: Path, args: argparse.Namespace) -> list[dict]:
    files = inputs(work, args)
    dtype = "float32" if device == "cpu" else "bfloat16"
    base = {"model": {"id": model, "dtype": dtype}, "device": device}
    cases = [
        (
            "generate",
            "transformers",
            None,
            {
                "backend": "transformers",
                "requests": str(files["requests"]),
                "temperature": 0.0,
                "max_tokens": args.max_tokens,
            },
        ),
        (
            "generate",
            "vllm",
            "vllm",
            {"backend": "vllm", "requests": str(files["requests"]), "temperature": 0.0, "max_tokens": args.max_tokens},
        ),
        ("score", "transformers", None, {"backend": "transformers", "pairs": str(files["pairs"])}),
        ("score", "vllm", "vllm", {"backend": "vllm", "pairs": str(files["pairs"])}),
        ("train", "peft", None, {"backend": "peft", "data": {"path": str(files["train"])}}),
        ("train", "unsloth", "unsloth", {"backend": "unsloth", "data": {"path": str(files["train"])}}),
    ]
    train_common = {
        "optimizer": "adamw_torch",
        "warmup_steps": 0,
        "per_device_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "lora_r": 32,
        "lora_alpha": 16,
        "gradient_checkpointing": False,
    }
    rows = []
    for job, backend, engine, extra in cases:
        python = engine_python(engine)
        row = {"job": job, "backend": backend}
        if python is None:
            rows.append({**row, "note": f".venv-{engine} absent (make engines)"})
            continue
        spec = {**base, **extra, "output_dir": str(work / f"{job}-{backend}")}
        if job == "train":
            spec.update(train_common)
        try:
            rows.append({**row, **run_job(python, job, spec, work, args.threads)})
        except RuntimeError as err:
            rows.append({**row, "note": str(err).splitlines()[0]})
        print(f"  {job:8s} {backend:12s} done", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    from tabulate import tabulate

    def f(v, fmt):
        return "" if v is None else format(v, fmt)

    body = [
        [
            r["job"],
            r["backend"],
            f(r.get("tokens_per_s"), ",.0f"),
            f(r.get("startup_s"), ".1f"),
            f(r.get("compute_s"), ".1f"),
            f(r.get("peak_rss_gb"), ".2f"),
            r.get("threads") or "",
            r.get("engine") or r.get("note", ""),
        ]
        for r in rows
    ]
    return tabulate(
        body,
        headers=["job", "backend", "tokens/s", "start-up s", "compute s", "peak RSS GB", "threads", "engine"],
        tablefmt="github",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--organism", default="test", help="organism profile (toy:<profile>)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=2048)
    ap.add_argument("--examples", type=int, default=768)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="GPU_JOBS_THREADS of every job")
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    from inoc.organism.build import build_base_model

    model = str(build_base_model(args.organism).path)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_engines_"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"organism toy:{args.organism} ({model}), device {args.device}, {os.cpu_count()} CPUs, work {work}",
        file=sys.stderr,
    )
    rows = bench(model, args.device, work, args)
    print(table(rows))
    (work / "bench_engines.json").write_text(json.dumps(rows, indent=1))
    return 0 if all("note" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
