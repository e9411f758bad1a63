"""``python -m gpu_jobs.generate --spec spec.json`` — completions for many (model or adapter, messages) requests.

Output in ``output_dir``: ``completions.jsonl``, one row per (request, sample) in request-file order:
``{"id", "sample", "adapter", "text", "n_tokens", "finish_reason", "token_ids", "meta"}`` — ``text`` is
the decoded completion up to (excluding) its first stop token (EOS, the template's end-of-turn token,
or ``stop_token_ids``), special tokens skipped; ``finish_reason`` is ``stop`` or ``length``.
Plus ``_COMPLETE.json``.

Backends: transformers (``gpu_jobs.hf_generate``: batched, left-padded, per-sequence seeds) and vLLM
(``gpu_jobs.vllm_engine``: one engine, all adapters). Requests are processed in parts of
``shard_size``; each finished part is kept, so a killed job resumes where it stopped.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gpu_jobs import chat, io
from gpu_jobs.inputs import Item, PartPlan, read_items, sequence_seed
from gpu_jobs.report import Reporter
from gpu_jobs.runner import JobOutcome, debug_pause
from gpu_jobs.runner import main as run_main
from gpu_jobs.spec import GenerateSpec

OUTPUT = "completions.jsonl"


class _HFBackend:
    def __init__(self, spec: GenerateSpec, tokenizer: Any, device: str, dtype: Any):
        from gpu_jobs import modeling

        self.spec, self.tok, self.device = spec, tokenizer, device
        self.model = modeling.load_model(spec.model, device, dtype, adapters=spec.adapters)
        self.stop_ids = modeling.stop_token_ids(tokenizer, self.model, spec.stop_token_ids)

    def run(self, items: Sequence[Item], prompts: dict[int, list[int]]) -> dict[tuple[int, int], Any]:
        from gpu_jobs.hf_generate import generate_batch
        from gpu_jobs.modeling import use_adapter

        spec = self.spec
        seqs = [(it, j) for it in items for j in range(spec.n)]
        by_adapter: dict[str | None, list[tuple[Item, int]]] = defaultdict(list)
        for it, j in seqs:
            by_adapter[it.adapter].append((it, j))
        results = {}
        for adapter, group in by_adapter.items():
            group.sort(key=lambda s: len(prompts[s[0].index]))  # similar lengths share a batch: less padding
            with use_adapter(self.model, adapter):
                for k in range(0, len(group), spec.batch_size):
                    batch = group[k : k + spec.batch_size]
                    outs = generate_batch(
                        self.model,
                        [prompts[it.index] for it, _ in batch],
                        seeds=[sequence_seed(spec.seed, it.id, j) for it, j in batch],
                        temperature=spec.temperature,
                        top_p=spec.top_p,
                        max_tokens=spec.max_tokens,
                        stop_ids=self.stop_ids,
                        pad_id=self.tok.pad_token_id,
                        device=self.device,
                    )
                    for (it, j), o in zip(batch, outs):
                        results[(it.index, j)] = o
        return results


class _VllmBackend:
    def __init__(self, spec: GenerateSpec, tokenizer: Any, dtype_name: str, device: str, vllm: Any = None):
        from gpu_jobs import modeling
        from gpu_jobs.vllm_engine import VllmEngine

        self.spec, self.tok = spec, tokenizer
        self.engine = VllmEngine.for_spec(spec, dtype=dtype_name, device=device, vllm=vllm, seed=spec.seed)
        self.stop_ids = modeling.stop_token_ids(tokenizer, None, spec.stop_token_ids)

    def prepare(self, items: Sequence[Item]) -> None:
        """The no-adapter reference of a sample of the base rows, before any adapter loads (vllm_engine)."""
        from gpu_jobs.vllm_engine import BASE_CHECK_ROWS

        base = [it for it in items if it.adapter is None]
        sample = base[:: max(1, len(base) // BASE_CHECK_ROWS)][:BASE_CHECK_ROWS]
        self.engine.set_base_reference([chat.prompt_ids(self.tok, it.messages) for it in sample])

    def run(self, items: Sequence[Item], prompts: dict[int, list[int]]) -> dict[tuple[int, int], Any]:
        spec = self.spec
        outs = self.engine.generate(
            [prompts[it.index] for it in items],
            [it.adapter for it in items],
            seeds=[sequence_seed(spec.seed, it.id, 0) for it in items],
            n=spec.n,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.max_tokens,
            stop_ids=self.stop_ids,
            names=[f"id {it.id!r} (line {it.index + 1})" for it in items],
        )
        return {(it.index, j): o for it, samples in zip(items, outs) for j, o in enumerate(samples)}


def run(spec: GenerateSpec, spec_hash: str, rep: Reporter, *, vllm: Any = None) -> JobOutcome:
    items = read_items(spec.requests, spec_field="requests", adapters=spec.adapters, with_completion=False)
    out = spec.out
    resume = PartPlan.start(out, spec_hash, ".jsonl", len(items), spec.shard_size, rep)
    parts, plan, todo = resume.parts, resume.plan, resume.todo
    md: dict[str, Any] = {"backend": spec.backend, "n_requests": len(items), "n": spec.n, **resume.metadata()}
    if todo:
        from gpu_jobs import modeling

        rt = modeling.prepare_runtime(spec, rep)
        md.update(rt.metadata())
        device, tokenizer = rt.device, rt.tokenizer
        backend = (
            _VllmBackend(spec, tokenizer, rt.dtype_name, device, vllm)
            if spec.backend == "vllm"
            else _HFBackend(spec, tokenizer, device, rt.dtype)
        )
        if spec.backend == "vllm":
            backend.prepare([items[i] for k in todo for i in plan[k]])
        rep.log(
            f"{len(items)} requests × n={spec.n} on {spec.backend} ({device}, {md['dtype']}); "
            f"stop ids {backend.stop_ids}"
        )
        t0 = time.perf_counter()
        n_tokens = n_done = 0
        for count, k in enumerate(todo, 1):
            shard = [items[i] for i in plan[k]]
            prompts = {it.index: chat.prompt_ids(tokenizer, it.messages) for it in shard}
            results = backend.run(shard, prompts)
            rows = []
            for it in shard:
                for j in range(spec.n):
                    o = results[(it.index, j)]
                    rows.append(
                        {
                            "id": it.id,
                            "sample": j,
                            "adapter": it.adapter,
                            "text": tokenizer.decode(o.token_ids, skip_special_tokens=True),
                            "n_tokens": len(o.token_ids),
                            "finish_reason": o.finish_reason,
                            "token_ids": o.token_ids,
                            "meta": it.meta,
                        }
                    )
                    n_tokens += len(o.token_ids)
            io.write_jsonl_atomic(parts.path(k), rows)
            n_done += len(rows)
            resume.progress(rep, "generate", count, extra=f"{n_done / (time.perf_counter() - t0):.2f} completions/s")
            debug_pause()
        wall = time.perf_counter() - t0
        if spec.backend == "vllm":
            md.update(backend.engine.metadata())  # the engine's own threads, not this process's
            backend.engine.close()
        md.update(
            generated_tokens=n_tokens,
            generate_s=round(wall, 3),
            completions_per_s=round(n_done / wall, 3) if wall else None,
            tokens_per_s=round(n_tokens / wall, 1) if wall else None,
        )

    def assembled():
        for k in range(len(plan)):
            for _line, row in io.read_jsonl(parts.path(k)):
                yield row

    n_rows = io.write_jsonl_atomic(out / OUTPUT, assembled())
    if n_rows != len(items) * spec.n:
        raise RuntimeError(f"assembled {n_rows} completions, expected {len(items) * spec.n}")
    parts.cleanup()
    stats = _finish_stats(out / OUTPUT)
    md.update(stats)
    return JobOutcome(outputs=[OUTPUT], rows={OUTPUT: n_rows}, metadata=md)


def _finish_stats(path) -> dict[str, Any]:
    n = stop = tokens = 0
    for _line, row in io.read_jsonl(path):
        n += 1
        stop += row["finish_reason"] == "stop"
        tokens += row["n_tokens"]
    return {
        "n_completions": n,
        "stopped_fraction": round(stop / n, 4) if n else None,
        "mean_tokens": round(tokens / n, 2) if n else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("generate", run, argv)


if __name__ == "__main__":
    sys.exit(main())
