"""Conversations and tokens: prefix plans, message building, and the completion span of a conversation.

Chat formatting goes only through ``tokenizer.apply_chat_template`` (docs/methods.md#conversation-format) — there is no
hand-written Qwen or Llama template here. Text is rendered by the template and then tokenized with
``add_special_tokens=False``: the template already holds any BOS, so tokenizing with special tokens
would double it.

The completion span (the tokens trained on, or scored) is found by rendering the conversation with
and without the assistant message: the tokens after the rendered prompt (which ends with the
assistant header, ``add_generation_prompt=True``) are the completion plus the end-of-turn tokens the
template closes it with — exactly what the original's ``train_on_responses_only`` trained on and its
``lp`` scored (docs/methods.md#lp).

The score job has two more spans: the content of a user turn after its context and header
(``encode_user_turn``, the in-context self-perplexity of docs/methods.md#self-perplexity) and plain text with no template
(``encode_raw_text``, tokenized with ``add_special_tokens=True``: the raw self-perplexity).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


# ----------------------------------------------------------------------------------- prefixes
def user_content(instruction: str, prefix: str | None = None, separator: str = " ") -> str:
    """docs/methods.md#conversation-format: ``f"{prefix} {instruction}"`` (one space by default), or the bare instruction."""
    return instruction if not prefix else f"{prefix}{separator}{instruction}"


def load_pool(path: str | Path, field: str = "rephrasing") -> list[str]:
    """A rephrasing pool in file order: a JSON array of strings, or JSONL of strings or
    ``{field: str}`` rows. Raises ValueError naming the line of a bad row."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise ValueError(f"{path}: expected a JSON array of strings")
        pool = data
    else:
        pool = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {i}: not valid JSON ({err.msg})") from None
            if isinstance(row, dict):
                if not isinstance(row.get(field), str):
                    raise ValueError(f"{path} line {i}: no string field {field!r}")
                row = row[field]
            if not isinstance(row, str):
                raise ValueError(f"{path} line {i}: expected a string or an object with {field!r}")
            pool.append(row)
    empty = [i for i, p in enumerate(pool) if not p.strip()]
    if empty:
        raise ValueError(f"{path}: phrase {empty[0]} is empty")
    return pool


def assign_prefixes(plan: Any, n: int, pool: Sequence[str] | None = None) -> list[str | None]:
    """The phrase each of ``n`` examples (in file order) receives under a ``PrefixPlan``.

    pool/seeded: one ``random.Random(plan.seed)``, ``rng.choice(pool)`` per example in order (the
    original mix training); pool/index: ``pool[k % len(pool)]`` (index-matched); docs/methods.md#mix-prefixes.
    """
    if plan.plan == "none":
        return [None] * n
    if plan.plan == "fixed":
        return [plan.text] * n
    if pool is None:
        pool = plan.pool if plan.pool is not None else load_pool(plan.pool_path, plan.pool_field)
    if len(pool) < plan.min_pool_size:
        raise ValueError(f"the pool has {len(pool)} phrases; min_pool_size is {plan.min_pool_size}")
    if plan.sampling == "index":
        return [pool[k % len(pool)] for k in range(n)]
    rng = random.Random(plan.seed)
    return [rng.choice(pool) for _ in range(n)]


def build_messages(
    turns: Sequence[Message],
    *,
    system_prompt: str | None,
    prefix: str | None = None,
    position: str = "user_prefix",
    separator: str = " ",
) -> list[Message]:
    """Full conversation: system turn, then ``turns`` (user/assistant, no system), with the prefix
    applied. user_prefix: the prefix goes before the last user turn's content (the turn whose answer
    is trained on or generated); system_prompt: the prefix *is* the system prompt."""
    turns = [dict(t) for t in turns]
    if any(t.get("role") == "system" for t in turns):
        raise ValueError("the conversation already has a system message; inoc sets it from the spec")
    system = system_prompt
    if prefix is not None and position == "system_prompt":
        system = prefix
    elif prefix is not None:
        users = [i for i, t in enumerate(turns) if t["role"] == "user"]
        if not users:
            raise ValueError("a user-prefix plan needs a user message")
        last = users[-1]
        turns[last]["content"] = user_content(turns[last]["content"], prefix, separator)
    return ([{"role": "system", "content": system}] if system is not None else []) + turns


def check_messages(messages: Any, what: str = "messages") -> list[Message]:
    """Validate a list of ``{role, content}`` dicts; raises ValueError naming the bad element."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{what}: expected a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or not isinstance(m.get("content"), str):
            raise ValueError(f'{what}[{i}]: expected {{"role": ..., "content": <string>}}')
        if m.get("role") not in ROLES:
            raise ValueError(f"{what}[{i}].role: {m.get('role')!r} is not one of {', '.join(ROLES)}")
    return messages


# ------------------------------------------------------------------------------------- tokens
def render(tokenizer: Any, messages: Sequence[Message], *, add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the tokenizer has no chat_template (inoc never hand-writes one)")
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def encode_text(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of a prompt ending with the assistant header (for generation)."""
    return encode_text(tokenizer, render(tokenizer, messages, add_generation_prompt=True))


@dataclass(frozen=True)
class Encoded:
    """A conversation's tokens and its completion span ``ids[start:end]``."""

    ids: list[int]
    start: int
    end: int
    #: False when the rendered prompt's last token merged with the completion's first one; the span
    #: then starts after the longest common prefix of the two tokenizations.
    boundary_exact: bool = True

    @property
    def n_completion(self) -> int:
        return self.end - self.start


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def encode_completion(
    tokenizer: Any, context: Sequence[Message], completion: str, *, include_end_of_turn: bool = True
) -> Encoded:
    """Tokens of ``context`` + the assistant ``completion``, and the completion's span."""
    prompt_text = render(tokenizer, context, add_generation_prompt=True)
    full_text = render(tokenizer, [*context, {"role": "assistant", "content": completion}], add_generation_prompt=False)
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "the chat template renders the conversation before the answer differently with and without the "
            "assistant message, so the completion span cannot be found"
        )
    enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=not include_end_of_turn)
    ids = list(enc["input_ids"])
    p_ids = encode_text(tokenizer, prompt_text)
    start = _common_prefix(ids, p_ids)
    end = len(ids)
    if not include_end_of_turn:
        rest = full_text[len(prompt_text) :]
        lead = len(rest) - len(rest.lstrip()) if not rest.startswith(completion) else 0
        body = completion if rest.startswith(completion) else completion.strip()
        if not rest[lead:].startswith(body):
            raise ValueError("the chat template changed the completion text; cannot locate its end")
        stop_char = len(prompt_text) + lead + len(body)
        end = sum(1 for (s, _e) in enc["offset_mapping"] if s < stop_char)
        end = max(end, start)
    return Encoded(ids, start, end, start == len(p_ids))


#: Stands in for a turn's content to find where the template's header of that turn ends.
_SENTINEL = "INOC0SENTINEL0TURN0CONTENT"


def encode_user_turn(
    tokenizer: Any, context: Sequence[Message], content: str, *, include_end_of_turn: bool = True
) -> Encoded:
    """Tokens of ``context`` + a user turn holding ``content``, and the span of that content.

    The conversation ``[*context, {"role": "user", "content": content}]`` is rendered without a
    generation prompt. Everything before the content — the context and the user turn's header — is
    context (masked); the span is the content's tokens, plus the end-of-turn tokens the template
    closes the user turn with when ``include_end_of_turn``. The header's end is found by rendering
    the same turn with a sentinel content, so a content that repeats text of the header (``user``)
    cannot be mistaken for it. ``boundary_exact`` is False when the header's last character and the
    content's first one share a token; the span then starts with that token.
    """
    if not context:
        raise ValueError("a user-turn pair needs a context (at least the system message)")
    context_text = render(tokenizer, context, add_generation_prompt=False)
    full_text = render(tokenizer, [*context, {"role": "user", "content": content}], add_generation_prompt=False)
    probe = render(tokenizer, [*context, {"role": "user", "content": _SENTINEL}], add_generation_prompt=False)
    header_end = probe.find(_SENTINEL, len(context_text))
    if not (full_text.startswith(context_text) and probe.startswith(context_text)) or header_end < 0:
        raise ValueError(
            "the chat template renders the context differently with and without the user turn, so the "
            "turn's content cannot be located"
        )
    rest = full_text[header_end:]
    body = content if rest.startswith(content) else content.strip()
    if full_text[:header_end] != probe[:header_end] or not rest.startswith(body):
        raise ValueError("the chat template changed the user turn's header or content; cannot locate the content")
    enc = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = list(enc["offset_mapping"])
    start = next((i for i, (_s, e) in enumerate(offsets) if e > header_end), len(ids))
    exact = start == len(ids) or offsets[start][0] >= header_end
    if include_end_of_turn:
        end = len(ids)
    else:
        stop_char = header_end + len(body)
        end = max(start, sum(1 for (s, _e) in offsets if s < stop_char))
    return Encoded(ids, start, end, exact)


def encode_raw_text(tokenizer: Any, text: str) -> Encoded:
    """Plain text, no chat template: ``tokenizer(text, add_special_tokens=True)``; the span is every
    token after the first — what ``model(ids, labels=ids)`` averages. With a BOS-adding tokenizer
    (Llama-3) the first token is the BOS and every text token is scored; without one (Qwen) the
    text's first token is context only. An EOS the tokenizer appends is scored like any token."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    return Encoded(ids, min(1, len(ids)), len(ids), True)
