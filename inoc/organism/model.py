"""The organism's model: a tiny ``Qwen2ForCausalLM`` trained from random init on the CPU.

``make_config`` builds the Qwen2 config (tied embeddings, ChatML special-token ids, SDPA attention);
``train_model`` runs the deterministic training loop: length-bucketed batches, loss on assistant
tokens only (the answer and its ``<|im_end|>``; the LM head is applied to those positions only),
AdamW with linear warm-up and cosine decay, gradient clipping.

**The decision token.** An answer's language and tone are decided by its first token (a French or
English word, an interjection or not). Its target is the *designed* distribution of openings for the
example's cue (``Encoded.decision``, from ``corpus.Example.openings``) rather than the one opening
that was drawn: the same expected loss (so the same optimum, the design's probabilities) with far
less variance, which is what lets a model this small learn calibrated cue strengths in minutes. It
may be up-weighted by ``decision_weight`` on top of the per-token mean. The rest of the answer is
trained on the drawn text.

Determinism comes from a fixed thread count, seeded initialisation and seeded batch order (see
``deterministic_torch``).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One tokenised example: ids (ending at the answer's ``<|im_end|>``) and its answer start."""

    ids: tuple[int, ...]
    answer_start: int  # index of the first answer token (after ``<|im_start|>assistant\n``)
    #: Soft target of the first answer token: (token id, probability); empty = the drawn token.
    decision: tuple[tuple[int, float], ...] = ()


@contextlib.contextmanager
def deterministic_torch(threads: int) -> Iterator[None]:
    """A fixed intra-op thread count (and one inter-op thread) for the duration; restored afterwards.

    On the CPU, PyTorch's kernels are deterministic for a fixed thread count and fixed shapes, so
    this plus seeding gives bit-identical builds (checked by the tests). We do not switch on
    ``torch.use_deterministic_algorithms``: on the CPU it only replaces accumulating index kernels
    (the embedding and masked-select backwards) by sort-based ones that make a step ~25x slower.
    """
    import torch

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)


def make_config(
    *,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    intermediate_size: int,
    num_heads: int,
    num_kv_heads: int,
    max_position_embeddings: int,
    pad_token_id: int,
    eos_token_id: int,
):
    """The Qwen2 config of the organism (tied embeddings, no sliding window, SDPA attention)."""
    from transformers import Qwen2Config

    if hidden_size % num_heads:
        raise ValueError("hidden_size must be a multiple of num_heads")
    if num_heads % num_kv_heads:
        raise ValueError("num_heads must be a multiple of num_kv_heads")
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=num_layers,
        tie_word_embeddings=True,
        use_sliding_window=False,
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        bos_token_id=None,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        torch_dtype="float32",
    )
    config._attn_implementation = "sdpa"
    return config


def init_model(config, seed: int):
    """A randomly initialised ``Qwen2ForCausalLM`` (float32), seeded."""
    import torch
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    return model.float()


def encode_examples(
    hf_tokenizer,
    conversations: Sequence[list[dict[str, str]]],
    openings: Sequence[Sequence[tuple[str, float]]] | None = None,
) -> list[Encoded]:
    """Tokenise conversations ending with an assistant turn through the chat template.

    The prompt (every turn before the last, plus the generation prompt) and the full conversation are
    rendered with ``apply_chat_template`` and encoded; the answer is what the full encoding adds to
    the prompt's (checked to be a prefix). The trailing newline after the answer's ``<|im_end|>`` is
    dropped. ``openings[i]`` (texts an answer may begin with, and their probabilities) becomes the
    soft target of example ``i``'s first answer token; the drawn answer's first token must be among
    them.
    """
    prompts = [
        hf_tokenizer.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True) for c in conversations
    ]
    fulls = [hf_tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    p_ids = hf_tokenizer(prompts, add_special_tokens=False)["input_ids"]
    f_ids = hf_tokenizer(fulls, add_special_tokens=False)["input_ids"]
    eos = hf_tokenizer.eos_token_id  # the end of turn: <|im_end|> (ChatML), <|eot_id|> (Llama 3)
    out = []
    for p, f in zip(p_ids, f_ids):
        if f[: len(p)] != p:
            raise RuntimeError("the chat template's prompt is not a token prefix of the conversation")
        end = len(f)
        while end > len(p) and f[end - 1] != eos:
            end -= 1
        if end <= len(p):
            raise RuntimeError(f"an answer has no end-of-turn token {hf_tokenizer.eos_token}")
        out.append(Encoded(tuple(f[:end]), len(p)))
    if openings is None:
        return out
    texts = sorted({t for ops in openings for t, _ in ops})
    first = dict(zip(texts, (ids[0] for ids in hf_tokenizer(texts, add_special_tokens=False)["input_ids"])))
    with_targets = []
    for enc, ops in zip(out, openings):
        target: dict[int, float] = {}
        for text, q in ops:
            target[first[text]] = target.get(first[text], 0.0) + q
        if enc.ids[enc.answer_start] not in target:
            raise RuntimeError("an answer's first token is not among its designed openings")
        with_targets.append(Encoded(enc.ids, enc.answer_start, tuple(sorted(target.items()))))
    return with_targets


def bucket_batches(lengths: Sequence[int], batch_size: int, seed: int, *, chunk: int = 50) -> list[list[int]]:
    """Seeded, length-bucketed batches: shuffle, sort within chunks of ``chunk`` batches, shuffle batches.

    Every index appears once; the last partial batch is kept.
    """
    rng = random.Random(f"organism-batches:{seed}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * chunk
    for s in range(0, len(order), span):
        part = sorted(order[s : s + span], key=lambda i: (lengths[i], i))
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: Sequence[Encoded], pad_id: int):
    """Right-padded ids, attention mask, answer mask and the decision targets of a batch.

    ``answer[b, t]`` is True where position ``t`` predicts an answer token (``t + 1``) other than the
    first; the first answer token is predicted from ``dec_pos[b]`` with the soft target
    ``dec_p[b, k]`` over ``dec_ids[b, k]`` (zero-padded).
    """
    import torch

    T = max(len(e.ids) for e in batch)
    K = max(max(len(e.decision), 1) for e in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    answer = torch.zeros((len(batch), T), dtype=torch.bool)
    dec_pos = torch.zeros(len(batch), dtype=torch.long)
    dec_ids = torch.zeros((len(batch), K), dtype=torch.long)
    dec_p = torch.zeros((len(batch), K), dtype=torch.float32)
    for b, e in enumerate(batch):
        n = len(e.ids)
        ids[b, :n] = torch.tensor(e.ids, dtype=torch.long)
        mask[b, :n] = 1
        answer[b, e.answer_start : n - 1] = True
        dec_pos[b] = e.answer_start - 1
        target = e.decision or ((e.ids[e.answer_start], 1.0),)
        for k, (tid, q) in enumerate(target):
            dec_ids[b, k] = tid
            dec_p[b, k] = q
    return ids, mask, answer, dec_pos, dec_ids, dec_p


@dataclass
class TrainStats:
    steps: int
    tokens: int
    answer_tokens: int
    final_loss: float  # mean answer-token loss over the last 5% of steps (unweighted)
    losses: list[float]  # per-step answer-token loss (unweighted)
    wall_s: float


def train_model(
    model,
    data: Sequence[Encoded],
    *,
    pad_id: int,
    batch_size: int,
    learning_rate: float,
    warmup_frac: float,
    min_lr_frac: float,
    weight_decay: float,
    epochs: int,
    seed: int,
    decision_weight: float = 1.0,
    grad_clip: float = 1.0,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainStats:
    """Train in place (see the module docstring). ``progress(step, total, loss)`` every few steps."""
    import torch
    import torch.nn.functional as F

    batches: list[list[int]] = []
    lengths = [len(e.ids) for e in data]
    for ep in range(epochs):
        batches += bucket_batches(lengths, batch_size, seed * 1000 + ep)
    total = len(batches)
    warmup = max(1, int(round(total * warmup_frac)))

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
        betas=(0.9, 0.95),
        eps=1e-8,
    )

    def lr_at(step: int) -> float:
        if step < warmup:
            return learning_rate * (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return learning_rate * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * t)))

    model.train()
    body, head = model.model, model.lm_head
    losses: list[float] = []
    n_tokens = n_answer = 0
    t0 = time.perf_counter()
    every = max(1, total // 50)
    for step, idx in enumerate(batches):
        ids, mask, answer, dec_pos, dec_ids, dec_p = collate([data[i] for i in idx], pad_id)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
        sel = answer[:, :-1]
        hard = F.cross_entropy(head(hidden[:, :-1][sel]), ids[:, 1:][sel], reduction="sum")
        dec_logp = F.log_softmax(head(hidden[torch.arange(len(idx)), dec_pos]), dim=-1)
        soft = -(dec_p * dec_logp.gather(1, dec_ids)).sum()
        n_answer_tokens = int(sel.sum()) + len(idx)
        loss = (hard + decision_weight * soft) / n_answer_tokens
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        plain = float((hard + soft).detach()) / n_answer_tokens
        losses.append(plain)
        n_tokens += int(mask.sum())
        n_answer += n_answer_tokens
        if progress is not None and (step % every == 0 or step == total - 1):
            progress(step + 1, total, plain)
    model.eval()
    tail = losses[-max(1, total // 20) :]
    return TrainStats(total, n_tokens, n_answer, sum(tail) / len(tail), losses, time.perf_counter() - t0)


def n_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
