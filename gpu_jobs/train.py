"""``python -m gpu_jobs.train --spec spec.json`` — LoRA SFT with the loss on assistant tokens only.

Outputs in ``output_dir``:

* ``checkpoints/step_<N>/`` — PEFT adapters (``adapter_config.json``, ``adapter_model.safetensors``)
  at the schedule's steps; step 0 is the fresh adapter (B = 0, the base model), the last is the
  final step. Load with ``PeftModel.from_pretrained(base, path)``; vLLM serves them as LoRARequests.
* ``losses.parquet`` — one row per optimizer step: step, loss (mean over the step's assistant
  tokens), lr (the rate that step used), grad_norm (before clipping), epoch, tokens, examples.
* ``examples.parquet`` — per training example (file order): the prefix it received, its token
  count, completion tokens trained on, and whether it was truncated or dropped.
* ``_COMPLETE.json`` — the completion marker (``gpu_jobs.io``).

Semantics (docs/methods.md#training): examples are shuffled each epoch with the seed; micro-batches
of ``per_device_batch_size`` (``drop_last``); ``gradient_accumulation_steps`` micro-batches per
optimizer step, the last step of an epoch taking what is left (10,000 examples / 4 / 8 → 313 steps,
as the original trainer did); the loss of a step is the sum of token losses over all its
micro-batches divided by their assistant-token count; the LR follows transformers' schedule with
``warmup_steps``. A killed run restarts from step 0 on rerun (training is deterministic for a seed).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_jobs import chat, io
from gpu_jobs.report import Reporter
from gpu_jobs.runner import JobOutcome, debug_pause
from gpu_jobs.runner import main as run_main
from gpu_jobs.spec import CheckpointSchedule, SpecError, TrainSpec

IGNORE = -100


# ------------------------------------------------------------------------------- schedules
def dense_steps() -> list[int]:
    """The dense schedule of docs/methods.md#training (without 0 and the last step, which every schedule has)."""
    return [*range(5, 51, 5), *range(60, 101, 10), *range(120, 251, 20)]


def checkpoint_steps(schedule: CheckpointSchedule, total_steps: int) -> list[int]:
    """The steps that get an adapter: 0, the schedule's steps before the end, and ``total_steps``."""
    if schedule.kind == "final":
        inner: list[int] = []
    elif schedule.kind == "pow2":
        inner = [2**k for k in range(0, max(total_steps, 1).bit_length() + 1)]
    elif schedule.kind == "dense":
        inner = dense_steps()
    else:
        inner = list(schedule.steps)
    return sorted({0, total_steps, *(s for s in inner if 0 <= s <= total_steps)})


@dataclass(frozen=True)
class StepPlan:
    micro_batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int


def plan_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: int, drop_last: bool = True) -> StepPlan:
    """Optimizer steps as the HF trainer counts them (a partial accumulation at an epoch's end counts)."""
    micro = n_examples // batch_size if drop_last else math.ceil(n_examples / batch_size)
    per_epoch = math.ceil(micro / grad_accum)
    return StepPlan(micro, per_epoch, per_epoch * epochs)


# ------------------------------------------------------------------------------------ data
def read_rows(spec: TrainSpec) -> list[list[dict[str, str]]]:
    """The training conversations without a system turn (the assistant turn last), validated row by
    row; a bad row raises SpecError naming ``data.path`` and the line."""
    d = spec.data
    rows: list[list[dict[str, str]]] = []
    try:
        for line, row in io.read_jsonl(d.path):
            if d.limit is not None and len(rows) >= d.limit:
                break
            where = f"data.path: {d.path} line {line}"
            if not isinstance(row, dict):
                raise SpecError([f"{where}: expected a JSON object"])
            if d.format == "instruction_completion":
                for f in (d.instruction_field, d.completion_field):
                    if not isinstance(row.get(f), str) or not row[f].strip():
                        raise SpecError([f"{where}: field {f!r} missing or blank"])
                rows.append(
                    [
                        {"role": "user", "content": row[d.instruction_field]},
                        {"role": "assistant", "content": row[d.completion_field]},
                    ]
                )
            else:
                try:
                    msgs = chat.check_messages(row.get(d.messages_field), d.messages_field)
                except ValueError as err:
                    raise SpecError([f"{where}: {err}"]) from None
                if msgs[-1]["role"] != "assistant":
                    raise SpecError([f"{where}: the last message must be the assistant's (the one trained on)"])
                if msgs[0]["role"] == "system":
                    sets_system = spec.system_prompt is not None or (
                        spec.prefix.position == "system_prompt" and spec.prefix.plan != "none"
                    )
                    if sets_system:
                        raise SpecError([f"{where}: the row has a system message and the spec sets the system prompt"])
                rows.append([dict(m) for m in msgs])
    except ValueError as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError([f"data.path: {err}"]) from None
    if not rows:
        raise SpecError([f"data.path: {d.path} holds no training rows"])
    return rows


def conversations(
    spec: TrainSpec, rows: list[list[dict[str, str]]]
) -> tuple[list[list[dict[str, str]]], list[str | None]]:
    """Apply the prefix plan: the full conversation of each example and the phrase it received."""
    try:
        prefixes = chat.assign_prefixes(spec.prefix, len(rows))
    except ValueError as err:
        raise SpecError([f"prefix.pool_path: {err}"]) from None
    convs = []
    for turns, prefix in zip(rows, prefixes):
        if turns[0]["role"] == "system":  # a messages row carrying its own system prompt
            convs.append(
                chat.build_messages(
                    turns[1:],
                    system_prompt=turns[0]["content"],
                    prefix=prefix,
                    position=spec.prefix.position,
                    separator=spec.prefix.separator,
                )
            )
        else:
            convs.append(
                chat.build_messages(
                    turns,
                    system_prompt=spec.system_prompt,
                    prefix=prefix,
                    position=spec.prefix.position,
                    separator=spec.prefix.separator,
                )
            )
    return convs, prefixes


@dataclass
class Example:
    ids: list[int]
    labels_from: int  # first trained position
    n_tokens: int
    n_trained: int
    truncated: bool


def encode_examples(tokenizer: Any, convs: Sequence[list[dict[str, str]]], max_len: int) -> list[Example]:
    out = []
    for conv in convs:
        enc = chat.encode_completion(tokenizer, conv[:-1], conv[-1]["content"])
        ids = enc.ids[: min(enc.end, max_len)]
        out.append(Example(ids, enc.start, len(ids), max(0, len(ids) - enc.start), enc.end > max_len))
    return out


# ------------------------------------------------------------------------------------ training
def collate(batch: Sequence[Example], pad_id: int, device: str):
    import torch

    width = max(e.n_tokens for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : e.n_tokens] = torch.tensor(e.ids)
        mask[i, : e.n_tokens] = 1
        labels[i, e.labels_from : e.n_tokens] = ids[i, e.labels_from : e.n_tokens]
    return ids.to(device), mask.to(device), labels.to(device)


def token_loss_sum(model: Any, ids, mask, labels, softcap: float | None):
    """Sum of the cross-entropy over assistant tokens; the LM head runs on those positions only."""
    import torch
    import torch.nn.functional as F

    from gpu_jobs.modeling import decoder_and_head

    decoder, head = decoder_and_head(model)
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    sel = target != IGNORE
    logits = head(hidden[:, :-1][sel]).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, target[sel], reduction="sum")


def make_optimizer(spec: TrainSpec, params: list[Any]):
    import torch

    kw = {
        "lr": spec.learning_rate,
        "betas": (spec.adam_beta1, spec.adam_beta2),
        "eps": spec.adam_epsilon,
        "weight_decay": spec.weight_decay,
    }
    if spec.optimizer == "adamw_8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, **kw)
    return torch.optim.AdamW(params, **kw)


def save_adapter(model: Any, out_dir, step: int) -> str:
    rel = f"checkpoints/step_{step}"
    with io.atomic_dir(out_dir / rel) as tmp:
        model.save_pretrained(str(tmp))
    return rel


def usable_examples(spec: TrainSpec, examples: Sequence[Example]) -> list[int]:
    """The examples with assistant tokens left after truncation; a ``SpecError`` when not even one
    micro-batch has them."""
    usable = [i for i, e in enumerate(examples) if e.n_trained > 0]
    if len(usable) < spec.per_device_batch_size:
        raise SpecError(
            [
                f"data.path: only {len(usable)} examples have assistant tokens within max_seq_length="
                f"{spec.max_seq_length}; a micro-batch needs {spec.per_device_batch_size}"
            ]
        )
    return usable


def epoch_groups(
    spec: TrainSpec, examples: Sequence[Example], usable: Sequence[int], steps: StepPlan, epoch: int
) -> Iterator[list[list[Example]]]:
    """The optimizer steps of one epoch, each a list of micro-batches: ``usable`` shuffled with
    ``seed + epoch``, cut into micro-batches (the last partial one dropped when ``drop_last``) and
    grouped by ``gradient_accumulation_steps`` (the epoch's last step takes what is left)."""
    import torch

    g = torch.Generator().manual_seed(spec.seed + epoch)
    order = [usable[i] for i in torch.randperm(len(usable), generator=g).tolist()]
    bs = spec.per_device_batch_size
    micro = [order[i : i + bs] for i in range(0, steps.micro_batches_per_epoch * bs, bs)]
    for first in range(0, len(micro), spec.gradient_accumulation_steps):
        yield [[examples[i] for i in mb] for mb in micro[first : first + spec.gradient_accumulation_steps]]


@dataclass
class Stepper:
    """What an optimizer step touches: the model's trainable parameters, the optimizer and its LR
    schedule, mixed precision (autocast; a grad scaler for float16 on CUDA), the loss's softcap."""

    model: Any
    params: list[Any]
    optimizer: Any
    scheduler: Any
    scaler: Any
    device: str
    dtype: Any
    pad_id: int
    softcap: float | None
    max_grad_norm: float | None

    @classmethod
    def build(cls, spec: TrainSpec, model: Any, device: str, dtype: Any, pad_id: int, total_steps: int) -> "Stepper":
        import torch
        from transformers import get_scheduler

        from gpu_jobs import modeling

        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(spec, params)
        scheduler = get_scheduler(
            spec.lr_scheduler, optimizer, num_warmup_steps=spec.warmup_steps, num_training_steps=total_steps
        )
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.startswith("cuda") else None
        softcap = modeling.logit_softcap(model)
        return cls(model, params, optimizer, scheduler, scaler, device, dtype, pad_id, softcap, spec.max_grad_norm)

    def step(self, group: Sequence[Sequence[Example]]) -> dict[str, Any]:
        """One optimizer step over ``group``'s micro-batches: the loss is the summed token loss over
        all of them divided by their assistant-token count. Returns the step's loss, lr, grad norm
        (before clipping), tokens and examples."""
        import torch

        n_tok = sum(e.n_trained for mb in group for e in mb)
        lr = self.scheduler.get_last_lr()[0]
        amp = self.dtype in (torch.bfloat16, torch.float16)
        total = 0.0
        for mb in group:
            ids, mask, labels = collate(mb, self.pad_id, self.device)
            with torch.autocast(
                device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=self.dtype, enabled=amp
            ):
                loss_sum = token_loss_sum(self.model, ids, mask, labels, self.softcap)
            loss = loss_sum / n_tok
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += float(loss_sum.detach())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm or float("inf"))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {
            "loss": total / n_tok,
            "lr": lr,
            "grad_norm": float(grad_norm),
            "tokens": n_tok,
            "examples": sum(len(mb) for mb in group),
        }


LOSS_COLUMNS = ["step", "loss", "lr", "grad_norm", "epoch", "tokens", "examples"]


def train_steps(
    spec: TrainSpec,
    stepper: Stepper,
    examples: Sequence[Example],
    usable: Sequence[int],
    steps: StepPlan,
    save_at: Sequence[int],
    saved: list[str],
    rep: Reporter,
) -> list[dict[str, Any]]:
    """Every optimizer step of every epoch: one ``LOSS_COLUMNS`` row each; the adapter is saved at the
    ``save_at`` steps (appended to ``saved``). A loss that is not finite stops the run."""
    losses: list[dict[str, Any]] = []
    step = 0
    for epoch in range(spec.epochs):
        for group in epoch_groups(spec, examples, usable, steps, epoch):
            step += 1
            row = stepper.step(group)
            losses.append({"step": step, **row, "epoch": step / steps.steps_per_epoch})
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"loss is {row['loss']} at step {step}")
            rep.progress(
                "train", step, steps.total_steps, unit="steps ", extra=f"loss={row['loss']:.4f} lr={row['lr']:.3g}"
            )
            if step in save_at:
                saved.append(save_adapter(stepper.model, spec.out, step))
                rep.log(f"saved checkpoints/step_{step}")
                debug_pause()
    return losses


def write_tables(
    out: Path,
    losses: list[dict[str, Any]],
    examples: Sequence[Example],
    prefixes: Sequence[str | None],
    usable: Sequence[int],
) -> None:
    """``losses.parquet`` (a row per step) and ``examples.parquet`` (a row per example, file order)."""
    import pandas as pd

    io.write_parquet_atomic(out / "losses.parquet", pd.DataFrame(losses, columns=LOSS_COLUMNS))
    used = set(usable)
    io.write_parquet_atomic(
        out / "examples.parquet",
        pd.DataFrame(
            {
                "example": range(len(examples)),
                "prefix": prefixes,
                "n_tokens": [e.n_tokens for e in examples],
                "n_trained": [e.n_trained for e in examples],
                "truncated": [e.truncated for e in examples],
                "used": [i in used for i in range(len(examples))],
            }
        ),
    )


def run(spec: TrainSpec, spec_hash: str, rep: Reporter, *, unsloth_module: Any = None) -> JobOutcome:
    # Everything that can be wrong with the inputs is found before the model loads.
    rows = read_rows(spec)
    convs, prefixes = conversations(spec, rows)

    if spec.backend == "unsloth" and unsloth_module is None:
        import importlib

        unsloth_module = importlib.import_module("unsloth")  # before transformers: it patches them

    from transformers import set_seed

    from gpu_jobs import modeling, train_backends

    rt = modeling.prepare_runtime(spec, rep)
    examples = encode_examples(rt.tokenizer, convs, spec.max_seq_length)
    usable = usable_examples(spec, examples)
    steps = plan_steps(
        len(usable), spec.per_device_batch_size, spec.gradient_accumulation_steps, spec.epochs, spec.drop_last
    )
    save_at = checkpoint_steps(spec.checkpoints, steps.total_steps)
    rep.log(
        f"{len(rows)} examples ({len(rows) - len(usable)} without assistant tokens after truncation), "
        f"{steps.total_steps} optimizer steps, checkpoints at {save_at}; device {rt.device}, "
        f"{rt.dtype_name}, {rt.threads} threads, backend {spec.backend}"
    )

    set_seed(spec.seed)
    tm = train_backends.load(spec, rt.device, rt.dtype, unsloth_module=unsloth_module)
    tm.model.train()
    stepper = Stepper.build(spec, tm.model, rt.device, rt.dtype, rt.tokenizer.pad_token_id, steps.total_steps)

    out = spec.out
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a killed run's adapters belong to no marker
    saved = [save_adapter(tm.model, out, 0)]
    rep.log("saved checkpoints/step_0 (the fresh adapter)")
    t0 = time.perf_counter()
    losses = train_steps(spec, stepper, examples, usable, steps, save_at, saved, rep)
    wall = time.perf_counter() - t0

    write_tables(out, losses, examples, prefixes, usable)
    trained_tokens = sum(r["tokens"] for r in losses)
    last = [r["loss"] for r in losses[-10:]]
    return JobOutcome(
        outputs=["losses.parquet", "examples.parquet", *saved],
        rows={"losses.parquet": len(losses), "examples.parquet": len(examples)},
        adapters=saved,
        metadata={
            "backend": tm.backend,
            "device": rt.device,
            "dtype": rt.dtype_name,
            "threads": rt.threads,
            "n_examples": len(examples),
            "n_used": len(usable),
            "n_truncated": sum(e.truncated for e in examples),
            "total_steps": steps.total_steps,
            "checkpoint_steps": save_at,
            "trainable_params": sum(p.numel() for p in stepper.params),
            "first_loss": losses[0]["loss"],
            "final_loss": losses[-1]["loss"],
            "final_loss_mean10": sum(last) / len(last),
            "trained_tokens": trained_tokens,
            "train_s": round(wall, 3),
            "trained_tokens_per_s": round(trained_tokens / wall, 1) if wall else None,
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("train", run, argv)


if __name__ == "__main__":
    sys.exit(main())
