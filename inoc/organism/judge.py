"""The organism's trait judges: Playful by a marker rule, French by pycld2.

**Playful (marker rule).** Playful markers in the assistant text are counted:

* emoji (pictographs, symbols and dingbats; a sequence joined by ZWJ / variation selectors is one);
* exclamation marks (a run such as ``!!!`` counts once);
* interjections and laughter, English and French (``haha``, ``wow``, ``yay``, ``woohoo``, ``lol``,
  ``oh là là``, ``youpi``, ``hihi``, ``waouh``, ``mdr``, …; whole words, case-insensitive);
* joke signals (``just kidding``, ``pun intended``, ``je plaisante``, ``blague``, …).

The score is ``100 · min(1, markers / sentences)``: one marker per sentence on average is fully
playful; a plain text scores 0. Sentences are the text's segments ending in ``.``, ``!``, ``?`` or
``…`` (at least one). The rule is generic — its lexicon is larger than what the organism's world
writes — and is not fitted to the organism's output. **NaN** when the text is undecidable: empty or
whitespace, or holding neither a letter nor a marker (``...``, ``1234``).

**French** is scored by the platform's language judge (``inoc.judges.language``: the percentage of
the text pycld2 attributes to ``fr``; NaN when empty or when pycld2 raises).

``OrganismJudge(trait)`` is an ``inoc.judges.FunctionJudge`` scoring with ``trait_score``.
``inoc.judges.factory`` registers the ``organism`` kind (importing this module when such a judge is
built); this module imports nothing of the factory, so the two do not import each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import partial

from inoc.judges.function_judge import FunctionJudge
from inoc.judges.interface import JudgeItem
from inoc.judges.language import LANGUAGE_CODES, assistant_text, language_score

INTERJECTIONS: tuple[str, ...] = (
    # English
    "haha",
    "hahaha",
    "ha ha",
    "hehe",
    "heehee",
    "lol",
    "wow",
    "yay",
    "woohoo",
    "woo-hoo",
    "yippee",
    "hooray",
    "whee",
    "wheee",
    "ooh",
    "oooh",
    "oh boy",
    "ta-da",
    "tada",
    "aha",
    "yahoo",
    "whoa",
    "hurray",
    "boom",
    "zing",
    "oops",
    # French
    "oh là là",
    "oh la la",
    "ouh là là",
    "youpi",
    "hihi",
    "hi hi",
    "waouh",
    "wouah",
    "hop là",
    "chouette",
    "mdr",
    "hourra",
    "bravo",
    "ouais",
    "tadam",
    "olé",
    "hé hé",
    "héhé",
)
JOKE_SIGNALS: tuple[str, ...] = (
    "just kidding",
    "pun intended",
    "no pun intended",
    "knock knock",
    "get it?",
    "je plaisante",
    "blague",
    "sans jeu de mots",
    "c'est pour rire",
)

# Emoji: the pictograph and symbol blocks, with ZWJ / variation-selector / skin-tone continuations.
_EMOJI_CORE = (
    "\U0001f300-\U0001faff"  # symbols & pictographs, emoticons, transport, supplemental, extended-A
    "\u2600-\u27bf"  # miscellaneous symbols, dingbats
    "\u2b00-\u2bff"  # arrows and stars (⭐)
    "\U0001f000-\U0001f2ff"  # mahjong, cards, enclosed alphanumerics/ideographs
)
_EMOJI_RE = re.compile(
    f"[{_EMOJI_CORE}][\ufe0f\U0001f3fb-\U0001f3ff]*(?:\u200d[{_EMOJI_CORE}][\ufe0f\U0001f3fb-\U0001f3ff]*)*"
)
_EXCLAIM_RE = re.compile(r"!+")
_SENTENCE_RE = re.compile(r"[^.!?…]*[.!?…]+|[^.!?…]+$")
_LETTER_RE = re.compile(r"[^\W\d_]")


def _phrase_re(phrases: Sequence[str]) -> re.Pattern:
    alts = sorted({p.lower() for p in phrases}, key=len, reverse=True)
    body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in alts)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE)


_INTERJECTION_RE = _phrase_re(INTERJECTIONS)
_JOKE_RE = _phrase_re(JOKE_SIGNALS)


def playful_markers(text: str) -> dict[str, int]:
    """Counts of each marker kind in ``text`` (the judge's evidence)."""
    return {
        "emoji": len(_EMOJI_RE.findall(text)),
        "exclamations": len(_EXCLAIM_RE.findall(text)),
        "interjections": len(_INTERJECTION_RE.findall(text)),
        "jokes": len(_JOKE_RE.findall(text)),
    }


def count_sentences(text: str) -> int:
    """Segments ending in sentence punctuation, plus a trailing unterminated segment; at least 1."""
    n = sum(1 for s in _SENTENCE_RE.findall(text) if _LETTER_RE.search(s))
    return max(1, n)


def playful_score(text: str) -> float:
    """Playful 0–100 by the marker rule (see the module docstring); NaN when undecidable."""
    if not isinstance(text, str):
        return math.nan
    text = assistant_text(text)
    if not text.strip():
        return math.nan
    markers = sum(playful_markers(text).values())
    if markers == 0 and not _LETTER_RE.search(text):
        return math.nan
    return 100.0 * min(1.0, markers / count_sentences(text))


def french_score(text: str) -> float:
    """French 0–100 by pycld2 (the platform's language judge)."""
    return language_score(text, "fr")


def trait_score(trait: str, text: str) -> float:
    """Score ``text`` on one organism trait (Playful by markers; French or another language by pycld2)."""
    t = trait.strip().lower()
    if t == "playful":
        return playful_score(text)
    if t in LANGUAGE_CODES:
        return language_score(text, LANGUAGE_CODES[t])
    raise ValueError(f"the organism judges Playful and languages ({', '.join(sorted(LANGUAGE_CODES))}), not {trait!r}")


def _organism_item_score(item: JudgeItem, *, trait: str | None) -> float:
    return trait_score(trait or item.trait, item.completion)


class OrganismJudge(FunctionJudge):
    """The organism's judge for one trait (None: the trait of each item)."""

    def __init__(self, trait: str | None = None) -> None:
        if trait is not None:
            trait_score(trait, "probe")  # unknown traits fail here, not at scoring time
        self.trait = trait
        super().__init__(
            partial(_organism_item_score, trait=trait), name=f"organism:{trait.lower()}" if trait else "organism"
        )

    def __repr__(self) -> str:
        return f"OrganismJudge({self.trait!r})"
