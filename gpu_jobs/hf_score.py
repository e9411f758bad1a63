"""Completion log-probabilities with transformers, in length-bucketed batches with bounded memory.

The transformer body runs once per batch (right padding, attention mask); the LM head and the
log-softmax run only on the positions that predict completion tokens, ``logit_chunk`` positions at a
time. Peak extra memory is ``logit_chunk × vocab`` floats, never ``batch × seq × vocab``: for
Qwen2.5's 152k vocabulary a full batch of 16 × 2048 would be 20 GB in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpu_jobs.modeling import decoder_and_head, logit_softcap


def length_batches(
    lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int, max_padding_fraction: float = 1.0
) -> list[list[int]]:
    """Indices grouped longest-first so that batch size × longest length ≤ ``max_batch_tokens`` (a
    sequence longer than the budget gets a batch of its own) and no sequence is padded by more than
    ``max_padding_fraction`` of the batch width — pads cost as much as tokens, and on a CPU a bigger
    batch buys almost nothing."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:  # longest first, so a batch's width is its first sequence's length
        if cur:
            width = lengths[cur[0]]
            if (
                width * (len(cur) + 1) > max_batch_tokens
                or len(cur) >= max_batch_size
                or lengths[i] < (1.0 - max_padding_fraction) * width
            ):
                batches.append(cur)
                cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


def score_batch(
    model: Any,
    seqs: Sequence[Sequence[int]],
    spans: Sequence[tuple[int, int]],
    *,
    pad_id: int,
    device: str,
    logit_chunk: int,
) -> list[Any]:
    """Per-token log p(seq[j] | seq[:j]) for j in each span ``[start, end)``, as float32 tensors (CPU).

    ``seqs`` may stop at ``end``: later tokens cannot change these numbers (causal attention). No
    attention mask is passed: with right padding a real token never attends to a pad (pads lie in its
    future), so plain causal attention is exact at every scored position — and lets SDPA take its
    causal fast path instead of a masked one."""
    import torch

    decoder, head = decoder_and_head(model)
    softcap = logit_softcap(model)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    rows, cols, targets = [], [], []
    for b, (s, (start, end)) in enumerate(zip(seqs, spans)):
        ids[b, : len(s)] = torch.tensor(list(s), dtype=torch.long)
        rows += [b] * (end - start)
        cols += range(start - 1, end - 1)  # position j-1 predicts token j
        targets += s[start:end]
    if not targets:  # nothing to score in this batch (empty spans)
        return [torch.empty(0) for _ in spans]
    with torch.inference_mode():
        hidden = decoder(input_ids=ids.to(device)).last_hidden_state
        sel = hidden[
            torch.tensor(rows, dtype=torch.long, device=device), torch.tensor(cols, dtype=torch.long, device=device)
        ]
        tgt = torch.tensor(targets, dtype=torch.long, device=device)
        lps = torch.empty(len(targets), dtype=torch.float32, device=device)
        for k in range(0, len(targets), logit_chunk):
            logits = head(sel[k : k + logit_chunk]).float()
            if softcap:
                logits = torch.tanh(logits / softcap) * softcap
            lps[k : k + logit_chunk] = logits.gather(-1, tgt[k : k + logit_chunk, None]).squeeze(-1) - torch.logsumexp(
                logits, dim=-1
            )
        lps = lps.cpu()
    out, k = [], 0
    for start, end in spans:
        out.append(lps[k : k + end - start])
        k += end - start
    return out
