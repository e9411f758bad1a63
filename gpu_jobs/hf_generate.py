"""Batched sampling with transformers: left padding, attention masks, a KV cache, per-sequence RNGs.

Why a loop of our own rather than ``model.generate``: (1) each sequence samples from its own
``torch.Generator`` seeded by (seed, request id, sample index), so a completion does not depend on
which other requests share its batch; (2) the sampling rule is exactly temperature + top-p (what vLLM
does) with none of the generation-config defaults ``generate`` would add (e.g. ``top_k=50``);
(3) sequences leave the batch at their first stop token, and finished rows are dropped from the KV
cache so long tails do not keep the whole batch busy.

Left padding: prompts are right-aligned, the attention mask zeroes the pads, and position ids count
real tokens only (``cumsum(mask) - 1``), so a padded row computes what it would compute alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpu_jobs.modeling import base_model, cache_kwarg


@dataclass
class Sampled:
    token_ids: list[int]  # up to, excluding, the first stop token
    finish_reason: str  # "stop" (a stop token ended it) or "length" (max_tokens reached)


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=base_model(model).config)
    except TypeError:  # older transformers
        return DynamicCache()


def _pick(logits, generators: Sequence[Any] | None, temperature: float, top_p: float):
    import torch

    if temperature == 0 or generators is None:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:  # keep the smallest set of tokens whose probability reaches top_p
        sorted_p, sorted_idx = probs.sort(dim=-1, descending=True)
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, sorted_idx, sorted_p)
    return torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)])


def generate_batch(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    seeds: Sequence[int],
    temperature: float,
    top_p: float,
    max_tokens: int,
    stop_ids: Sequence[int],
    pad_id: int,
    device: str,
) -> list[Sampled]:
    """Sample one completion per prompt (greedy when ``temperature == 0``)."""
    import torch

    b = len(prompts)
    width = max(len(p) for p in prompts)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = _new_cache(model)
    ckw = cache_kwarg(model)
    generators = None
    if temperature > 0:
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    stop = set(int(s) for s in stop_ids)
    out_ids: list[list[int]] = [[] for _ in range(b)]
    reasons = ["length"] * b
    alive = list(range(b))  # original row of each row still in the batch

    with torch.inference_mode():
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **{ckw: cache}
        )
        logits = out.logits[:, -1].float()
        next_pos = positions[:, -1] + 1
        for step in range(max_tokens):
            gens = [generators[r] for r in alive] if generators is not None else None
            tokens = _pick(logits, gens, temperature, top_p)
            keep = []
            for j, r in enumerate(alive):
                t = int(tokens[j])
                if t in stop:
                    reasons[r] = "stop"
                else:
                    out_ids[r].append(t)
                    keep.append(j)
            if not keep or step == max_tokens - 1:
                break
            if len(keep) < len(alive):  # drop finished rows from the batch and the cache
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, next_pos, tokens = mask[idx], next_pos[idx], tokens[idx]
                alive = [alive[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=1)
            out = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                use_cache=True,
                **{ckw: cache},
            )
            logits = out.logits[:, -1].float()
            next_pos = next_pos + 1
    return [Sampled(out_ids[i], reasons[i]) for i in range(b)]
