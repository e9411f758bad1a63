"""Reading the request files of generate and score, row by row, before any model loads.

Row format (JSONL, one object per line):

* generate: ``{"id": str|int, "messages": [{role, content}, ...], "adapter": name|null, "meta": {...}}``
* score, one of three forms (plus ``adapter`` and ``meta`` in each):

  - ``{"id", "messages", "completion"}``: the completion as the assistant turn after ``messages``
    (its context);
  - ``{"id", "messages", "completion", "completion_role": "user"}``: the completion as the content
    of a user turn after ``messages`` (its header is context); ``completion_role`` defaults to
    ``"assistant"``, the first form;
  - ``{"id", "text"}``: plain text without a chat template (no ``messages``, ``completion`` or
    ``completion_role``); ``text`` is a non-empty string.

``id`` must be unique in the file; ``adapter`` (optional) must be a key of the spec's ``adapters``
(absent or null: the base model); ``meta`` (optional) is copied to the output row untouched, so the
caller can carry its own keys (run, step, condition, instruction index …) through the job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_jobs import chat, io
from gpu_jobs.spec import SpecError


@dataclass
class Item:
    index: int  # row position in the file (outputs keep this order)
    id: str | int
    messages: list[dict[str, str]]
    adapter: str | None = None
    completion: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: score: the turn the completion is scored as (``assistant`` or ``user``)
    completion_role: str = "assistant"
    #: score: plain text scored without a chat template (then ``messages`` is empty)
    text: str | None = None


#: The roles a score pair's completion may take.
COMPLETION_ROLES = ("assistant", "user")
#: Fields a raw-text score row must not have.
_NOT_WITH_TEXT = ("messages", "completion", "completion_role")


def read_items(path: str, *, spec_field: str, adapters: dict[str, str], with_completion: bool) -> list[Item]:
    """Validated items; the first bad row raises SpecError naming ``spec_field``, the file and line."""
    items: list[Item] = []
    seen: dict[Any, int] = {}
    allowed = {"id", "messages", "adapter", "meta"} | (
        {"completion", "completion_role", "text"} if with_completion else set()
    )
    try:
        for line, row in io.read_jsonl(path):
            where = f"{spec_field}: {path} line {line}"
            if not isinstance(row, dict):
                raise SpecError([f"{where}: expected a JSON object"])
            unknown = set(row) - allowed
            if unknown:
                raise SpecError([f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}"])
            rid = row.get("id")
            if not isinstance(rid, (str, int)) or isinstance(rid, bool):
                raise SpecError([f"{where}: `id` must be a string or an integer"])
            if rid in seen:
                raise SpecError([f"{where}: id {rid!r} already used on line {seen[rid]}"])
            seen[rid] = line
            if with_completion and "text" in row:
                clash = [f for f in _NOT_WITH_TEXT if f in row]
                if clash:
                    raise SpecError(
                        [
                            f"{where}: `text` (a raw-text row) cannot be combined with "
                            f"{', '.join(f'`{f}`' for f in clash)}; give either `text` or `messages` and "
                            "`completion`"
                        ]
                    )
                text = row["text"]
                if not isinstance(text, str) or not text:
                    raise SpecError([f"{where}: `text` must be a non-empty string"])
                items.append(
                    Item(len(items), rid, [], _adapter(row, where, adapters), None, _meta(row, where), text=text)
                )
                continue
            try:
                msgs = chat.check_messages(row.get("messages"), "messages")
            except ValueError as err:
                raise SpecError([f"{where}: {err}"]) from None
            if not with_completion and msgs[-1]["role"] == "assistant":
                raise SpecError([f"{where}: the last message is the assistant's; a request ends with a user turn"])
            adapter = _adapter(row, where, adapters)
            meta = _meta(row, where)
            completion, role = None, "assistant"
            if with_completion:
                completion = row.get("completion")
                if not isinstance(completion, str):
                    raise SpecError([f"{where}: `completion` must be a string"])
                role = row.get("completion_role", "assistant")
                if role not in COMPLETION_ROLES:
                    raise SpecError(
                        [
                            f"{where}: `completion_role` must be one of {', '.join(map(repr, COMPLETION_ROLES))}, "
                            f"got {role!r}"
                        ]
                    )
            items.append(Item(len(items), rid, msgs, adapter, completion, meta, completion_role=role))
    except ValueError as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError([f"{spec_field}: {err}"]) from None
    if not items:
        raise SpecError([f"{spec_field}: {path} holds no rows"])
    return items


def _adapter(row: dict, where: str, adapters: dict[str, str]) -> str | None:
    adapter = row.get("adapter")
    if adapter is not None and adapter not in adapters:
        known = ", ".join(sorted(adapters)) or "none"
        raise SpecError([f"{where}: adapter {adapter!r} is not in the spec's adapters ({known})"])
    return adapter


def _meta(row: dict, where: str) -> dict[str, Any]:
    meta = row.get("meta", {})
    if not isinstance(meta, dict):
        raise SpecError([f"{where}: `meta` must be an object"])
    return meta


def sequence_seed(seed: int, item_id: str | int, sample: int) -> int:
    """The seed of completion ``sample`` of request ``item_id``: independent of batching and order."""
    digest = hashlib.sha256(f"{seed}\x1f{item_id!r}\x1f{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 62) - 1)


def shards(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


@dataclass
class PartPlan:
    """A job's input cut into parts of ``shard_size`` items: which are already done (kept from a killed
    run of the same spec) and which are still ``todo``."""

    parts: io.Parts
    plan: list[range]
    todo: list[int]

    @classmethod
    def start(cls, out_dir: Path, spec_hash: str, suffix: str, n_items: int, shard_size: int, rep: Any) -> "PartPlan":
        parts = io.Parts(out_dir, spec_hash, suffix)
        parts.prepare()
        plan = shards(n_items, shard_size)
        todo = [k for k in range(len(plan)) if not parts.done(k)]
        if len(todo) < len(plan):
            rep.log(f"resuming: {len(plan) - len(todo)} of {len(plan)} parts already done")
        return cls(parts, plan, todo)

    @property
    def n_reused(self) -> int:
        return len(self.plan) - len(self.todo)

    def metadata(self) -> dict[str, int]:
        return {"parts": len(self.plan), "parts_reused": self.n_reused}

    def progress(self, rep: Any, job: str, count: int, extra: str) -> None:
        """Report the ``count``-th part of this run done (the reused ones count as done)."""
        rep.progress(job, self.n_reused + count, len(self.plan), unit="parts ", extra=extra)
