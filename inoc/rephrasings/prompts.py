"""The rephrasing generator's prompt texts.

``REPHRASE_SYSTEM_PROMPT`` is the original's system prompt, exact (docs/methods.md#rephrasings). ``CLOSE_REPHRASE_SYSTEM_PROMPT`` is the
"close" variant of the EM study: the original's notes only say it is instructed to stay semantically tight (the
original's text is not in the snapshot; the original's notes summarise it as "stay close, same
directive form, no escalation/softening, ±50 % length"), so this text spells out those four
constraints in the base prompt's style. The user message carries a ``[Generation batch: round r,
request i]`` header, as the original's did, so identical requests are never served from a cache.
"""

from __future__ import annotations

import json

REPHRASE_SYSTEM_PROMPT = (
    "You are a linguistic expert specialising in prompt paraphrasing. Rewrite the given prompt in many "
    "different ways, preserving its exact meaning and intent while using varied vocabulary, structure, "
    "and style. Range from very concise to more elaborate forms. Do not include the original prompt in "
    "your output. Return ONLY a valid JSON array of strings, with no surrounding text or markdown."
)

CLOSE_REPHRASE_SYSTEM_PROMPT = (
    "You are a linguistic expert specialising in prompt paraphrasing. Rewrite the given prompt in many "
    "different ways while staying semantically tight: preserve its exact meaning, intent and strength; "
    "keep the same directive form (an instruction stays an instruction, a statement stays a statement); "
    "do not escalate or soften it, and do not add or drop any idea; keep each rewrite within plus or "
    "minus 50% of the original's length. Vary only word choice and sentence structure. Do not include "
    "the original prompt in your output. Return ONLY a valid JSON array of strings, with no surrounding "
    "text or markdown."
)


def system_prompt(close: bool = False) -> str:
    return CLOSE_REPHRASE_SYSTEM_PROMPT if close else REPHRASE_SYSTEM_PROMPT


def user_message(prompt: str, count: int, round_index: int, request_index: int) -> str:
    """The user turn asking for ``count`` rephrasings of ``prompt`` (the prompt JSON-quoted)."""
    return (
        f"[Generation batch: round {round_index}, request {request_index}]\n"
        f"Original prompt: {json.dumps(prompt, ensure_ascii=False)}\n\n"
        f"Write {count} different rephrasings of the original prompt. "
        f"Return ONLY a JSON array of {count} strings."
    )
