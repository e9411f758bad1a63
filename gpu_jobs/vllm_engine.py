"""The vLLM backend of generate and score: one engine, many LoRA adapters, token-id prompts.

* One ``LLM(enable_lora=True, max_lora_rank=…)`` serves every adapter of the spec through
  ``LoRARequest(name, int_id, path)`` — all checkpoints of all runs of a study in one engine.
  ``max_lora_rank`` defaults to the largest ``r`` among the adapters, rounded up to a rank vLLM
  supports (its own default, 16, is below the study's r = 32).
* Prompts go in as token ids (``{"prompt_token_ids": ids}``) rendered by the chat template and
  tokenized without special tokens, so a BOS-adding tokenizer cannot double the BOS.
* ``dtype`` is passed through as resolved by the job (float32 stays float32; vLLM's ``auto`` would
  cast a float32 checkpoint to bfloat16).
* Scoring uses ``SamplingParams(max_tokens=1, prompt_logprobs=0)``: the log-prob of each prompt token
  given the ones before it. vLLM allocates prompt tokens × vocab floats for these outside its memory
  planning, so calls are cut to ``max_prompt_logprob_tokens`` prompt tokens each.

**Base rows never share an engine call with adapter rows.** In vLLM's CPU LoRA ops
(``vllm/lora/ops/torch_ops/lora_ops.py``) the "no adapter" index −1 indexes the stacked slot tensors
Python-style, i.e. it selects the *last* slot: once every slot holds an adapter (always, when
``max_loras`` slots serve as many or more adapters), base rows batched with adapter rows silently get
that adapter's delta (vllm-project/vllm PR #49656, open). Keeping one slot free only helps while the
engine never holds more adapters than slots − 1 — the LRU fills every slot as soon as a study has more
adapters than slots, and one spare slot per adapter costs GPU memory for nothing. A call whose rows
are all base rows is exact on every device: vLLM's ``no_lora`` fast path skips the LoRA ops for it
(and the CUDA kernels treat −1 as "no adapter" anyway). So each call is split into its base rows and
its adapter rows, run as two engine calls; on a GPU the cost is one extra, smaller batch per part.

**And the split is checked.** ``set_base_reference`` computes the prompt log-probs of a sample of the
job's base rows *before any adapter is loaded* (every slot is still zero, so no path through the LoRA
ops can change them). Every later call re-reads those rows' prompt log-probs from the very forward pass
that serves the job and compares; a disagreement beyond the dtype's tolerance raises
``BaseRowMismatch`` naming the rows, so an engine bug of this kind fails the job instead of passing
silently.

``vllm`` is imported at run time, or passed in as a namespace with ``LLM``, ``SamplingParams`` and
``LoRARequest`` — the seam the tests use to inject faults into the real engine's answers.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gpu_jobs.hf_generate import Sampled

#: LoRA ranks vLLM accepts for ``max_lora_rank``.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def import_vllm() -> SimpleNamespace:
    import vllm
    from vllm.lora.request import LoRARequest

    return SimpleNamespace(LLM=vllm.LLM, SamplingParams=vllm.SamplingParams, LoRARequest=LoRARequest)


def adapter_rank(path: str | Path) -> int:
    cfg = json.loads((Path(path) / "adapter_config.json").read_text())
    ranks = [int(cfg.get("r", 0))] + [int(v) for v in (cfg.get("rank_pattern") or {}).values()]
    return max(ranks)


def lora_rank_for(ranks: Sequence[int]) -> int:
    need = max(ranks)
    for r in VLLM_LORA_RANKS:
        if r >= need:
            return r
    raise ValueError(f"adapter rank {need} exceeds the largest rank vLLM supports ({VLLM_LORA_RANKS[-1]})")


#: Base rows whose log-probs are re-checked against the no-adapter reference (``set_base_reference``).
BASE_CHECK_ROWS = 8
#: (mean, max) |Δ logprob| per token a checked base row may differ by, per dtype: float32 differs by
#: ~1e-5 between batch shapes; 16-bit kernels by up to ~0.1 on a token. The corruption this guards
#: against moved base tokens by up to 14.5 nats.
BASE_CHECK_TOLERANCE = {"float32": (1e-3, 1e-2), "bfloat16": (0.05, 1.0), "float16": (0.05, 1.0)}
#: KV cache of a CPU engine when the spec leaves ``gpu_memory_utilization`` unset: on the CPU backend
#: that fraction reserves host memory (0.9 of a shared machine's RAM fails), so a fixed size is used.
CPU_KV_CACHE_BYTES = 1 << 30


class BaseRowMismatch(RuntimeError):
    """Base-model rows came back different from the no-adapter reference: the engine mixed adapters in."""


def _engine_processes() -> list[dict[str, Any]]:
    """The engine's worker processes (descendants of this one) and the OpenMP binding vLLM gave them
    (``OMP_NUM_THREADS`` and the affinity list are set in the worker's environment at spawn)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            env = dict(
                kv.split("=", 1)
                for kv in (Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0"))
                if "=" in kv
            )
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if "OMP_NUM_THREADS" in env:
            cores = env.get("OMP_PLACES") or env.get("GOMP_CPU_AFFINITY") or env.get("KMP_AFFINITY") or ""
            out.append({"pid": pid, "name": name, "omp_threads": int(env["OMP_NUM_THREADS"]), "cores": cores})
    return out


class VllmEngine:
    @classmethod
    def for_spec(cls, spec: Any, *, dtype: str, device: str, vllm: SimpleNamespace | None = None, seed: int = 0):
        """The engine of a generate or score spec: its model (an organism id resolved to its folder),
        tokenizer, revision and adapters."""
        from gpu_jobs.modeling import resolve_model_path

        return cls(
            model_path=resolve_model_path(spec.model.id),
            tokenizer_path=resolve_model_path(spec.model.tokenizer) if spec.model.tokenizer else None,
            dtype=dtype,
            adapters=spec.adapters,
            options=spec.vllm,
            seed=seed,
            revision=spec.model.revision,
            trust_remote_code=spec.model.trust_remote_code,
            device=device,
            vllm=vllm,
        )

    def __init__(
        self,
        *,
        model_path: str,
        tokenizer_path: str | None,
        dtype: str,
        adapters: dict[str, str],
        options: Any,
        seed: int = 0,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device: str = "cuda",
        vllm: SimpleNamespace | None = None,
    ):
        self.ns = vllm if vllm is not None else import_vllm()
        self.dtype, self.device = dtype, device
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": tokenizer_path or model_path,
            "dtype": dtype,
            "seed": seed,
            "trust_remote_code": trust_remote_code,
            "enforce_eager": options.enforce_eager,
        }
        if options.gpu_memory_utilization is not None:
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
        elif device == "cpu":
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        else:
            kwargs["gpu_memory_utilization"] = 0.9
        if revision:
            kwargs["revision"] = revision
        if options.max_model_len:
            kwargs["max_model_len"] = options.max_model_len
        if options.max_num_seqs:
            kwargs["max_num_seqs"] = options.max_num_seqs
        if adapters:
            ranks = [adapter_rank(p) for p in adapters.values()]
            rank = options.max_lora_rank or lora_rank_for(ranks)
            if rank < max(ranks):
                raise ValueError(f"vllm.max_lora_rank={rank} is below the adapters' rank {max(ranks)}")
            # No slot is kept free: base rows never share a call with adapter rows (module docstring).
            kwargs.update(enable_lora=True, max_lora_rank=rank, max_loras=min(options.max_loras, len(adapters)))
        self.engine_kwargs = kwargs
        self.llm = self.ns.LLM(**kwargs)
        # int ids are 1-based and fixed by name order, so the same adapter keeps its id across calls
        self.lora = {
            name: self.ns.LoRARequest(name, i + 1, str(path)) for i, (name, path) in enumerate(sorted(adapters.items()))
        }
        self.max_prompt_logprob_tokens = options.max_prompt_logprob_tokens
        # GPU_JOBS_VLLM_MIX_BASE_ROWS=1 restores the old single mixed call — only for the test that shows
        # the base-row check catching the real CPU corruption.
        self.split_base_rows = os.environ.get("GPU_JOBS_VLLM_MIX_BASE_ROWS", "") != "1"
        self.adapter_calls = 0
        self.reference: dict[tuple[int, ...], list[float]] = {}
        self.checked_rows = 0
        self.max_check_diff = 0.0

    def close(self) -> None:
        """Shut the engine core down now. Left to interpreter exit, vLLM 0.32's CPU engine sometimes aborts
        the finished job ("terminate called without an active exception", exit 134) after its outputs
        are complete, which would turn a good job into a failed one."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None
        import gc

        gc.collect()

    def _lora(self, name: str | None) -> Any:
        return None if name is None else self.lora[name]

    def _call(self, prompts: Sequence[Sequence[int]], params: Any, adapters: Sequence[str | None]) -> list[Any]:
        if any(a is not None for a in adapters):
            self.adapter_calls += 1
        outs = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts],
            sampling_params=params,
            lora_request=[self._lora(a) for a in adapters],
            use_tqdm=False,
        )
        if len(outs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outs)} results for {len(prompts)} prompts")
        return list(outs)

    def _groups(self, adapters: Sequence[str | None]) -> list[list[int]]:
        """Row indices per engine call: the base rows, then the adapter rows (or all at once, mixed)."""
        if not self.split_base_rows:
            return [list(range(len(adapters)))]
        base = [i for i, a in enumerate(adapters) if a is None]
        lora = [i for i, a in enumerate(adapters) if a is not None]
        return [g for g in (base, lora) if g]

    # -- the base-row check
    def set_base_reference(self, prompts: Sequence[Sequence[int]]) -> int:
        """Prompt log-probs of up to ``BASE_CHECK_ROWS`` base-row prompts, computed while no adapter is
        loaded. Must run before the first call with an adapter row; returns the number of references."""
        if not self.lora:
            return 0
        if self.adapter_calls:
            raise RuntimeError("set_base_reference must run before any adapter is loaded into the engine")
        unique = list(dict.fromkeys(tuple(p) for p in prompts if len(p) > 1))
        if len(unique) > BASE_CHECK_ROWS:  # spread over the job, deterministic
            step = len(unique) / BASE_CHECK_ROWS
            unique = [unique[int(k * step)] for k in range(BASE_CHECK_ROWS)]
        if not unique:
            return 0
        params = self.ns.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        for batch in self._budget_batches(range(len(unique)), [len(u) for u in unique]):
            outs = self._call([unique[i] for i in batch], params, [None] * len(batch))
            for i, out in zip(batch, outs):
                self.reference[unique[i]] = _prompt_lps(out, unique[i])
        return len(self.reference)

    def _budget_batches(self, indices: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
        """Consecutive batches of at most ``max_prompt_logprob_tokens`` prompt tokens (or one prompt):
        vLLM allocates tokens × vocab floats for prompt log-probs outside its memory planning."""
        batches: list[list[int]] = []
        batch: list[int] = []
        budget = 0
        for i in indices:
            if batch and budget + lengths[i] > self.max_prompt_logprob_tokens:
                batches.append(batch)
                batch, budget = [], 0
            batch.append(i)
            budget += lengths[i]
        if batch:
            batches.append(batch)
        return batches

    def _check(self, rows: list[tuple[str, tuple[int, ...], list[float]]]) -> None:
        tol_mean, tol_max = BASE_CHECK_TOLERANCE.get(self.dtype, BASE_CHECK_TOLERANCE["bfloat16"])
        bad = []
        for name, key, got in rows:
            ref = self.reference[key]
            diffs = [abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf for a, b in zip(got, ref)]
            if len(got) != len(ref):
                diffs.append(math.inf)
            worst = max(diffs, default=0.0)
            mean = sum(diffs) / len(diffs) if diffs else 0.0
            self.checked_rows += 1
            self.max_check_diff = max(self.max_check_diff, worst)
            if mean > tol_mean or worst > tol_max:
                at = diffs.index(worst) + 1
                bad.append(f"{name} (mean |Δ| {mean:.4g}, max |Δ| {worst:.4g} nats at prompt token {at})")
        if bad:
            raise BaseRowMismatch(
                f"{len(bad)} base-model row(s) disagree with the engine's no-adapter reference beyond the "
                f"{self.dtype} tolerance (mean {tol_mean}, max {tol_max}): {'; '.join(bad)}. The engine "
                "applied an adapter to rows that asked for none; the outputs of this call are not trustworthy"
            )

    def metadata(self) -> dict[str, Any]:
        """What the engine actually ran with: its worker processes' thread binding and the base-row check."""
        md: dict[str, Any] = {
            "engine_max_loras": self.engine_kwargs.get("max_loras", 0),
            "base_check_rows": self.checked_rows,
            "base_check_max_abs_diff": round(self.max_check_diff, 8),
            "base_rows_split": self.split_base_rows,
        }
        procs = _engine_processes() if self.device == "cpu" else []
        if procs:
            md["threads"] = sum(p["omp_threads"] for p in procs)
            md["engine_cores"] = [p["cores"] for p in procs]
        return md

    # -- the jobs' calls
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        adapters: Sequence[str | None],
        *,
        seeds: Sequence[int],
        n: int,
        temperature: float,
        top_p: float,
        max_tokens: int,
        stop_ids: Sequence[int],
        names: Sequence[str] | None = None,
    ) -> list[list[Sampled]]:
        """``n`` completions per prompt, each truncated before its first stop token."""
        names = names or [str(i) for i in range(len(prompts))]

        def params(i: int) -> Any:
            check = adapters[i] is None and tuple(prompts[i]) in self.reference
            return self.ns.SamplingParams(
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                seed=int(seeds[i]),
                stop_token_ids=list(stop_ids),
                skip_special_tokens=True,
                **({"prompt_logprobs": 0} if check else {}),
            )

        outs: list[Any] = [None] * len(prompts)
        for group in self._groups(adapters):
            got = self._call([prompts[i] for i in group], [params(i) for i in group], [adapters[i] for i in group])
            checks = []
            for i, out in zip(group, got):
                outs[i] = out
                key = tuple(prompts[i])
                if adapters[i] is None and key in self.reference:
                    checks.append((names[i], key, _prompt_lps(out, key)))
            self._check(checks)
        stop = set(stop_ids)
        result = []
        for out in outs:
            samples = []
            for c in out.outputs:
                ids = list(c.token_ids)
                cut = next((k for k, t in enumerate(ids) if t in stop), None)
                if cut is not None:
                    samples.append(Sampled(ids[:cut], "stop"))
                else:
                    samples.append(Sampled(ids, "stop" if c.finish_reason == "stop" else "length"))
            if len(samples) != n:
                raise RuntimeError(f"vLLM returned {len(samples)} completions, expected n={n}")
            result.append(samples)
        return result

    def prompt_logprobs(
        self,
        seqs: Sequence[Sequence[int]],
        adapters: Sequence[str | None],
        spans: Sequence[tuple[int, int]],
        names: Sequence[str] | None = None,
    ) -> list[list[float]]:
        """log p(seq[j] | seq[:j]) for j in each span ``[start, end)``."""
        names = names or [str(i) for i in range(len(seqs))]
        params = self.ns.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        result: list[list[float]] = [[] for _ in seqs]

        def flush(batch: list[int]) -> None:
            outs = self._call([seqs[i] for i in batch], params, [adapters[i] for i in batch])
            checks = []
            for i, out in zip(batch, outs):
                start, end = spans[i]
                lps = out.prompt_logprobs
                result[i] = [float(lps[j][seqs[i][j]].logprob) for j in range(start, end)]
                key = tuple(seqs[i])
                if adapters[i] is None and key in self.reference:
                    checks.append((names[i], key, _prompt_lps(out, key)))
            self._check(checks)

        lengths = [len(s) for s in seqs]
        for group in self._groups(adapters):
            for batch in self._budget_batches(group, lengths):
                flush(batch)
        return result


def _prompt_lps(out: Any, ids: Sequence[int]) -> list[float]:
    """log p(ids[j] | ids[:j]) for j ≥ 1 from a ``prompt_logprobs=0`` output."""
    lps = out.prompt_logprobs
    return [float(lps[j][ids[j]].logprob) for j in range(1, len(ids))]
