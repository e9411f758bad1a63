"""Language judge: pycld2 on the assistant text (docs/methods.md#judges).

Score = the sum of the percentages pycld2 reports for the target language code among its (up to
three) detected languages, 0–100; 0 when the language is not among them; NaN when the text is empty
(nothing but whitespace) or pycld2 raises (e.g. invalid UTF-8, which a Python string holds as lone
surrogates, or raw bytes). No API, no cache: pycld2 is fast and deterministic.

When the completion still holds a chat template's assistant header (a raw decoded sequence), only the
text after the *last* assistant header is judged, cut at its end-of-turn token — Qwen
(``<|im_start|>assistant`` … ``<|im_end|>``) and Llama-3 (``<|start_header_id|>assistant<|end_header_id|>``
… ``<|eot_id|>``), as the original did. Otherwise the text is judged as it is.
"""

from __future__ import annotations

import math
from functools import partial

import pycld2

from inoc.judges.function_judge import FunctionJudge
from inoc.judges.interface import JudgeItem

#: Trait name (lower-case) → pycld2 language code, for traits whose judge is the language judge.
LANGUAGE_CODES: dict[str, str] = {
    "french": "fr",
    "german": "de",
    "english": "en",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "dutch": "nl",
}

_MARKERS = (
    ("<|im_start|>assistant", "<|im_end|>"),
    ("<|start_header_id|>assistant<|end_header_id|>", "<|eot_id|>"),
)


def assistant_text(text: str) -> str:
    """The assistant's part of a decoded chat sequence, or the text unchanged when it has no header."""
    best: tuple[int, str, str] | None = None
    for start, end in _MARKERS:
        pos = text.rfind(start)
        if pos >= 0 and (best is None or pos > best[0]):
            best = (pos, start, end)
    if best is None:
        return text
    pos, start, end = best
    tail = text[pos + len(start) :].lstrip("\n")
    cut = tail.find(end)
    return (tail if cut < 0 else tail[:cut]).strip()


def language_score(text: str | bytes, code: str) -> float:
    """Percent of ``text`` pycld2 attributes to ``code`` (0–100); NaN when empty or pycld2 raises."""
    if isinstance(text, str):
        text = assistant_text(text)
        if not text.strip():
            return math.nan
    elif not text.strip():
        return math.nan
    try:
        _reliable, _bytes_found, details = pycld2.detect(text)
    except (pycld2.error, ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return math.nan
    return float(sum(percent for _name, lang, percent, _score in details if lang == code))


def _language_item_score(item: JudgeItem, *, code: str) -> float:
    return language_score(item.completion, code)


class LanguageJudge(FunctionJudge):
    """Scores the share of a completion written in one language, with pycld2 (the trait is ignored)."""

    def __init__(self, code: str, *, name: str | None = None) -> None:
        code = code.strip().lower()
        if not code:
            raise ValueError("LanguageJudge needs a language code such as 'fr'")
        self.code = code
        super().__init__(partial(_language_item_score, code=code), name=name or f"language:{code}")

    @classmethod
    def for_trait(cls, trait: str) -> "LanguageJudge":
        """The language judge for a trait named after a language (French → fr)."""
        try:
            return cls(LANGUAGE_CODES[trait.strip().lower()])
        except KeyError:
            raise ValueError(
                f"no language code known for trait {trait!r}; pass one explicitly "
                f"(known: {', '.join(sorted(LANGUAGE_CODES))})"
            ) from None

    def __repr__(self) -> str:
        return f"LanguageJudge({self.code!r})"
