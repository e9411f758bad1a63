"""Reading the request files of generate and score, row by row, before any model loads.

Row format (JSONL, one object per line):

* generate: ``{"id": str|int, "messages": [{role, content}, ...], "adapter": name|null, "meta": {...}}``
* score: the same plus ``"completion": str`` (``messages`` is the context the completion follows)

``id`` must be unique in the file; ``adapter`` (optional) must be a key of the spec's ``adapters``
(absent or null: the base model); ``meta`` (optional) is copied to the output row untouched, so the
caller can carry its own keys (run, step, condition, instruction index …) through the job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
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


def read_items(path: str, *, spec_field: str, adapters: dict[str, str], with_completion: bool) -> list[Item]:
    """Validated items; the first bad row raises SpecError naming ``spec_field``, the file and line."""
    items: list[Item] = []
    seen: dict[Any, int] = {}
    allowed = {"id", "messages", "adapter", "meta"} | ({"completion"} if with_completion else set())
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
            try:
                msgs = chat.check_messages(row.get("messages"), "messages")
            except ValueError as err:
                raise SpecError([f"{where}: {err}"]) from None
            if not with_completion and msgs[-1]["role"] == "assistant":
                raise SpecError([f"{where}: the last message is the assistant's; a request ends with a user turn"])
            adapter = row.get("adapter")
            if adapter is not None and adapter not in adapters:
                known = ", ".join(sorted(adapters)) or "none"
                raise SpecError([f"{where}: adapter {adapter!r} is not in the spec's adapters ({known})"])
            meta = row.get("meta", {})
            if not isinstance(meta, dict):
                raise SpecError([f"{where}: `meta` must be an object"])
            completion = None
            if with_completion:
                completion = row.get("completion")
                if not isinstance(completion, str):
                    raise SpecError([f"{where}: `completion` must be a string"])
            items.append(Item(len(items), rid, msgs, adapter, completion, meta))
    except ValueError as err:
        if isinstance(err, SpecError):
            raise
        raise SpecError([f"{spec_field}: {err}"]) from None
    if not items:
        raise SpecError([f"{spec_field}: {path} holds no rows"])
    return items


def sequence_seed(seed: int, item_id: str | int, sample: int) -> int:
    """The seed of completion ``sample`` of request ``item_id``: independent of batching and order."""
    digest = hashlib.sha256(f"{seed}\x1f{item_id!r}\x1f{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 62) - 1)


def shards(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, size)]
