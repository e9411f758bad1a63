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

``vllm`` is imported at run time, or passed in as a namespace with ``LLM``, ``SamplingParams`` and
``LoRARequest`` — the seam the tests use with a fake (vLLM is a GPU-image dependency).
"""

from __future__ import annotations

import json
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


class VllmEngine:
    def __init__(self, *, model_path: str, tokenizer_path: str | None, dtype: str, adapters: dict[str, str],
                 options: Any, seed: int = 0, revision: str | None = None, trust_remote_code: bool = False,
                 vllm: SimpleNamespace | None = None):
        self.ns = vllm if vllm is not None else import_vllm()
        kwargs: dict[str, Any] = {
            "model": model_path,
            "tokenizer": tokenizer_path or model_path,
            "dtype": dtype,
            "seed": seed,
            "trust_remote_code": trust_remote_code,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "enforce_eager": options.enforce_eager,
        }
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
            kwargs.update(enable_lora=True, max_lora_rank=rank, max_loras=min(options.max_loras, len(adapters)))
        self.engine_kwargs = kwargs
        self.llm = self.ns.LLM(**kwargs)
        # int ids are 1-based and fixed by name order, so the same adapter keeps its id across calls
        self.lora = {name: self.ns.LoRARequest(name, i + 1, str(path))
                     for i, (name, path) in enumerate(sorted(adapters.items()))}
        self.max_prompt_logprob_tokens = options.max_prompt_logprob_tokens

    def _lora(self, name: str | None) -> Any:
        return None if name is None else self.lora[name]

    def generate(self, prompts: Sequence[Sequence[int]], adapters: Sequence[str | None], *, seeds: Sequence[int],
                 n: int, temperature: float, top_p: float, max_tokens: int,
                 stop_ids: Sequence[int]) -> list[list[Sampled]]:
        """``n`` completions per prompt, each truncated before its first stop token."""
        params = [self.ns.SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                         seed=int(s), stop_token_ids=list(stop_ids), skip_special_tokens=True)
                  for s in seeds]
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], sampling_params=params,
                                 lora_request=[self._lora(a) for a in adapters], use_tqdm=False)
        if len(outs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outs)} results for {len(prompts)} prompts")
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

    def prompt_logprobs(self, seqs: Sequence[Sequence[int]], adapters: Sequence[str | None],
                        spans: Sequence[tuple[int, int]]) -> list[list[float]]:
        """log p(seq[j] | seq[:j]) for j in each span ``[start, end)``."""
        params = self.ns.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        result: list[list[float]] = [[] for _ in seqs]
        batch: list[int] = []
        budget = 0

        def flush() -> None:
            outs = self.llm.generate([{"prompt_token_ids": list(seqs[i])} for i in batch],
                                     sampling_params=params, lora_request=[self._lora(adapters[i]) for i in batch],
                                     use_tqdm=False)
            for i, out in zip(batch, outs):
                start, end = spans[i]
                lps = out.prompt_logprobs
                result[i] = [float(lps[j][seqs[i][j]].logprob) for j in range(start, end)]

        for i, s in enumerate(seqs):
            if batch and budget + len(s) > self.max_prompt_logprob_tokens:
                flush()
                batch, budget = [], 0
            batch.append(i)
            budget += len(s)
        if batch:
            flush()
        return result
