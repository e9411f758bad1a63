"""``python -m gpu_jobs.score --spec spec.json`` — log p(completion | context) for many pairs.

A pair (``gpu_jobs.inputs``) is a completion scored as the assistant turn after its ``messages``
(the default), as the content of a user turn after them (``completion_role: "user"``), or plain
``text`` scored without a chat template (every token of ``tokenizer(text, add_special_tokens=True)``
after the first). All three give the same output row.

Output in ``output_dir``: ``scores.parquet``, one row per pair in file order:

* ``id``, ``adapter``, ``meta`` (JSON text of the row's ``meta``)
* ``n_context`` (tokens before the completion), ``n_tokens`` (completion tokens scored)
* ``sum_logprob`` (float64), ``mean_logprob`` (= sum / n_tokens; NaN when nothing was scored)
* ``token_logprobs`` (list<float32>) and ``token_ids`` (list<int32>) when ``token_level``
* ``truncated`` (``max_length`` cut the completion), ``boundary_exact`` (False when the template's
  prompt and the completion merged into one token at their boundary; the span then starts after the
  tokens both tokenizations share)

Only completion tokens count: the span after the rendered prompt (``add_generation_prompt=True``),
including the end-of-turn tokens the template appends unless ``score_end_of_turn`` is false — the
``lp`` of docs/methods.md#lp is ``mean_logprob``. A user-role pair counts the content of
the user turn (and its end-of-turn tokens, the same switch); a raw-text pair has ``n_context`` 1.
Plus ``_COMPLETE.json``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from gpu_jobs import chat, io
from gpu_jobs.inputs import Item, PartPlan, read_items
from gpu_jobs.report import Reporter
from gpu_jobs.runner import JobOutcome, debug_pause
from gpu_jobs.runner import main as run_main
from gpu_jobs.spec import ScoreSpec, SpecError

OUTPUT = "scores.parquet"


def encode_items(
    spec: ScoreSpec, tokenizer: Any, items: Sequence[Item]
) -> list[tuple[list[int], int, int, bool, bool]]:
    """(ids up to the span's end, start, end, truncated, boundary_exact) per item."""
    encoded = []
    for it in items:
        try:
            if it.text is not None:
                enc = chat.encode_raw_text(tokenizer, it.text)
            elif it.completion_role == "user":
                enc = chat.encode_user_turn(
                    tokenizer, it.messages, it.completion or "", include_end_of_turn=spec.score_end_of_turn
                )
            else:
                enc = chat.encode_completion(
                    tokenizer, it.messages, it.completion or "", include_end_of_turn=spec.score_end_of_turn
                )
        except ValueError as err:
            raise SpecError([f"pairs: row {it.index + 1} (id {it.id!r}): {err}"]) from None
        start, end = max(enc.start, 1), enc.end
        truncated = False
        if spec.max_length is not None and end > spec.max_length:
            end, truncated = max(start, spec.max_length), True
        encoded.append((enc.ids[:end], start, end, truncated, enc.boundary_exact))
    return encoded


class _HFBackend:
    def __init__(self, spec: ScoreSpec, tokenizer: Any, device: str, dtype: Any):
        from gpu_jobs import modeling

        self.spec, self.tok, self.device = spec, tokenizer, device
        self.model = modeling.load_model(spec.model, device, dtype, adapters=spec.adapters)

    def run(self, items: Sequence[Item], enc: Sequence[tuple]) -> list[list[float]]:
        from gpu_jobs.hf_score import length_batches, score_batch
        from gpu_jobs.modeling import use_adapter

        spec = self.spec
        out: list[Any] = [None] * len(items)
        groups: dict[str | None, list[int]] = defaultdict(list)
        for k, it in enumerate(items):
            groups[it.adapter].append(k)
        for adapter, idx in groups.items():
            with use_adapter(self.model, adapter):
                lengths = [len(enc[k][0]) for k in idx]
                for batch in length_batches(
                    lengths, spec.max_batch_tokens, spec.max_batch_size, spec.max_padding_fraction
                ):
                    ks = [idx[b] for b in batch]
                    res = score_batch(
                        self.model,
                        [enc[k][0] for k in ks],
                        [(enc[k][1], enc[k][2]) for k in ks],
                        pad_id=self.tok.pad_token_id,
                        device=self.device,
                        logit_chunk=spec.logit_chunk,
                    )
                    for k, r in zip(ks, res):
                        out[k] = r.tolist()
        return out


class _VllmBackend:
    def __init__(self, spec: ScoreSpec, dtype_name: str, device: str, vllm: Any = None):
        from gpu_jobs.vllm_engine import VllmEngine

        self.spec = spec
        self.engine = VllmEngine.for_spec(spec, dtype=dtype_name, device=device, vllm=vllm)

    def prepare(self, items: Sequence[Item], tokenizer: Any) -> None:
        """The no-adapter reference of a sample of the base rows, before any adapter loads (vllm_engine)."""
        from gpu_jobs.vllm_engine import BASE_CHECK_ROWS

        base = [it for it in items if it.adapter is None]
        sample = base[:: max(1, len(base) // BASE_CHECK_ROWS)][:BASE_CHECK_ROWS]
        self.engine.set_base_reference([e[0] for e in encode_items(self.spec, tokenizer, sample)])

    def run(self, items: Sequence[Item], enc: Sequence[tuple]) -> list[list[float]]:
        return self.engine.prompt_logprobs(
            [e[0] for e in enc],
            [it.adapter for it in items],
            [(e[1], e[2]) for e in enc],
            names=[f"id {it.id!r} (line {it.index + 1})" for it in items],
        )


def _table(spec: ScoreSpec, items: Sequence[Item], enc: Sequence[tuple], lps: Sequence[Sequence[float]]):
    import numpy as np
    import pyarrow as pa

    sums, means, n_tok = [], [], []
    for lp in lps:
        s = float(np.sum(np.asarray(lp, dtype=np.float64)))
        sums.append(s if lp else math.nan)
        means.append(s / len(lp) if lp else math.nan)
        n_tok.append(len(lp))
    cols: dict[str, Any] = {
        "id": pa.array([str(it.id) for it in items], pa.string()),
        "adapter": pa.array([it.adapter for it in items], pa.string()),
        "n_context": pa.array([e[1] for e in enc], pa.int32()),
        "n_tokens": pa.array(n_tok, pa.int32()),
        "sum_logprob": pa.array(sums, pa.float64()),
        "mean_logprob": pa.array(means, pa.float64()),
        "truncated": pa.array([e[3] for e in enc], pa.bool_()),
        "boundary_exact": pa.array([e[4] for e in enc], pa.bool_()),
        "meta": pa.array([json.dumps(it.meta, sort_keys=True) for it in items], pa.string()),
    }
    if spec.token_level:
        cols["token_logprobs"] = pa.array([list(map(float, lp)) for lp in lps], pa.list_(pa.float32()))
        cols["token_ids"] = pa.array([list(e[0][e[1] : e[2]]) for e in enc], pa.list_(pa.int32()))
    return pa.table(cols)


def run(spec: ScoreSpec, spec_hash: str, rep: Reporter, *, vllm: Any = None) -> JobOutcome:
    items = read_items(spec.pairs, spec_field="pairs", adapters=spec.adapters, with_completion=True)
    out = spec.out
    resume = PartPlan.start(out, spec_hash, ".parquet", len(items), spec.shard_size, rep)
    parts, plan, todo = resume.parts, resume.plan, resume.todo
    md: dict[str, Any] = {"backend": spec.backend, "n_pairs": len(items), **resume.metadata()}
    if todo:
        from gpu_jobs import modeling

        rt = modeling.prepare_runtime(spec, rep)
        md.update(rt.metadata())
        device, tokenizer = rt.device, rt.tokenizer
        backend = (
            _VllmBackend(spec, rt.dtype_name, device, vllm)
            if spec.backend == "vllm"
            else _HFBackend(spec, tokenizer, device, rt.dtype)
        )
        if spec.backend == "vllm":
            backend.prepare([items[i] for k in todo for i in plan[k]], tokenizer)
        rep.log(f"{len(items)} pairs on {spec.backend} ({device}, {md['dtype']})")
        t0 = time.perf_counter()
        tokens = scored = 0
        for count, k in enumerate(todo, 1):
            shard = [items[i] for i in plan[k]]
            enc = encode_items(spec, tokenizer, shard)
            lps = backend.run(shard, enc)
            io.write_parquet_atomic(parts.path(k), _table(spec, shard, enc, lps))
            tokens += sum(len(e[0]) for e in enc)
            scored += sum(len(lp) for lp in lps)
            resume.progress(rep, "score", count, extra=f"{tokens / (time.perf_counter() - t0):.0f} tokens/s")
            debug_pause()
        wall = time.perf_counter() - t0
        if spec.backend == "vllm":
            md.update(backend.engine.metadata())  # the engine's own threads, not this process's
            backend.engine.close()
        md.update(
            tokens=tokens,
            scored_tokens=scored,
            score_s=round(wall, 3),
            tokens_per_s=round(tokens / wall, 1) if wall else None,
        )

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(parts.path(k)) for k in range(len(plan))])
    if table.num_rows != len(items):
        raise RuntimeError(f"assembled {table.num_rows} rows, expected {len(items)}")
    n_rows = io.write_parquet_atomic(out / OUTPUT, table)
    parts.cleanup()
    means = table.column("mean_logprob").to_pylist()
    finite = [m for m in means if m is not None and math.isfinite(m)]
    md.update(
        n_scored=len(finite),
        n_nan=len(means) - len(finite),
        mean_of_mean_logprob=round(sum(finite) / len(finite), 6) if finite else None,
    )
    return JobOutcome(outputs=[OUTPUT], rows={OUTPUT: n_rows}, metadata=md)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("score", run, argv)


if __name__ == "__main__":
    sys.exit(main())
