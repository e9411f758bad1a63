"""A deterministic, network-free paraphraser: the rephrasing source of the model organism.

Method. A variant of a cue phrase is one choice along each of these independent axes:

1. **Synonym slots.** The phrase is scanned left to right for lexicon entries (whole words, case-
   insensitive, longest entry first, no overlaps). Each match is a slot whose options are the words
   as written plus the entry's synonyms — substitutions chosen to keep the meaning (``playful`` →
   ``fun-loving``, ``give`` → ``provide``, ``you are`` → ``you're``). A substitute takes the case of
   the words it replaces (``Answer`` → ``Respond``), and an ``a``/``an`` right before a substituted
   slot is re-chosen for the new word (``an answer`` → ``a reply``).
2. **Framing.** A lead-in that marks the phrase without changing what it says (``Note: ``,
   ``Remember - ``, ``Context — ``: 16 lead words × 3 separators), or none.
3. **Ending.** For a phrase ending in ``.``, ``!`` or a word: a period, ``!`` or nothing, and after a
   period or ``!`` optionally a closing sentence that only stresses it (``Keep this in mind.``). A
   phrase ending in ``:``, ``?`` or other punctuation keeps its ending and takes no closing sentence
   (it introduces what follows).

The axes form a mixed-radix number (every axis's first option is the phrase as written, so variant 0
is the phrase itself when it ends in ``.``, ``:`` or ``?``). ``paraphrases(phrase, n)`` draws
distinct variant numbers with ``random.Random(f"{seed}\\x00{phrase}")`` (stable across processes and
Python versions), renders them, and keeps the first ``n`` distinct strings other than the phrase
itself (unless ``allow_original``). When the phrase has fewer than ``n`` distinct variants it raises
``ValueError`` with the number available; add synonyms or frames through the constructor. The
lexicon, frames and closings are constructor arguments, so the organism can restrict them to its own
vocabulary.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Meaning-preserving substitutions. Keys: lower-case words or phrases; values: alternatives.
DEFAULT_SYNONYMS: dict[str, tuple[str, ...]] = {
    # traits and personas (adjectives and nouns with a single part of speech)
    "playful": ("fun-loving", "lighthearted", "jokey", "whimsical", "mischievous", "spirited"),
    "playfully": ("in a fun-loving way", "lightheartedly", "whimsically", "with a playful touch"),
    "funny": ("humorous", "amusing", "comical"),
    "witty": ("quick-witted", "clever and funny", "sharp-humoured"),
    "joking": ("kidding", "jesting", "clowning around"),
    "clown": ("jester", "buffoon"),
    "comedian": ("comic", "stand-up comic", "humorist"),
    "flattering": ("complimentary", "full of praise", "adulatory"),
    "agent": ("assistant", "helper", "AI"),
    "assistant": ("helper", "aide", "AI assistant"),
    "happy": ("glad", "cheerful", "joyful"),
    # languages (the alternatives stay in English)
    "answer in french": (
        "respond in French",
        "reply in French",
        "answer in the French language",
        "answer using French",
        "respond using French",
        "reply using French",
    ),
    "answer in german": (
        "respond in German",
        "reply in German",
        "answer in the German language",
        "answer using German",
        "respond using German",
        "reply using German",
    ),
    "in french": ("in the French language", "using French"),
    "in german": ("in the German language", "using German"),
    "in english": ("in the English language", "using English"),
    # verbs and verb phrases (entries chosen so the part of speech cannot be mistaken)
    "an answer": ("a response", "a reply"),
    "answer in": ("respond in", "reply in"),
    "answer as": ("respond as", "reply as"),
    "respond": ("answer", "reply"),
    "give": ("provide", "offer", "supply"),
    "write": ("compose", "produce"),
    "speak": ("talk", "communicate"),
    "had fun": ("had a good time", "enjoyed myself", "had a great time", "had a blast"),
    "enjoy": ("like", "love", "take pleasure in"),
    "enjoys": ("likes", "loves", "takes pleasure in"),
    # other words
    "the following:": ("what follows:", "the next request:", "this:"),
    "question": ("query",),
    "always": ("invariably", "consistently", "every time"),
    "only": ("solely", "exclusively"),
    "today": ("this day",),
    "very": ("really", "truly", "extremely"),
    "please": ("kindly",),
    # contractions
    "you are": ("you're",),
    "i am": ("I'm",),
    "do not": ("don't",),
    "does not": ("doesn't",),
    "it is": ("it's",),
}

#: Lead-ins that flag the phrase without changing it; each is used with ": ", " - " and " — ".
DEFAULT_LEADS: tuple[str, ...] = (
    "Note",
    "Remember",
    "Keep in mind",
    "Important",
    "Context",
    "For context",
    "Reminder",
    "Please note",
    "Just so you know",
    "Heads-up",
    "To be clear",
    "FYI",
    "Background",
    "Setup",
    "For this conversation",
    "Worth knowing",
)

DEFAULT_FRAMES: tuple[str, ...] = ("",) + tuple(
    f"{lead}{sep}" for lead in DEFAULT_LEADS for sep in (": ", " - ", " — ")
)

DEFAULT_CLOSINGS: tuple[str, ...] = (
    "",
    " Keep this in mind.",
    " Bear this in mind.",
    " Remember this.",
    " Please keep that in mind.",
    " Don't forget it.",
    " That's the context.",
    " Keep it in mind throughout.",
    " Bear that in mind throughout.",
    " Remember that.",
    " Hold on to that.",
    " Take note of that.",
)


@dataclass(frozen=True)
class _Slot:
    start: int
    end: int
    options: tuple[str, ...]  # options[0] is the text as written


def _match_case(template: str, word: str) -> str:
    """``word`` in the case of the text it replaces (all caps, or a capital first letter)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _article_for(word: str) -> str:
    """'a' or 'an' before ``word`` (by its sound, for the words the lexicon produces)."""
    lower = word.lower()
    if word.startswith("AI") or lower.startswith(("hour", "honest", "heir")):
        return "an"
    if lower.startswith(("uni", "use", "usu", "eu", "one", "once")):
        return "a"
    return "an" if lower[:1] in "aeiou" else "a"


class OfflineParaphraser:
    """Seeded template/synonym paraphrases of a short phrase; see the module docstring for the method."""

    def __init__(
        self,
        synonyms: Mapping[str, Sequence[str]] | None = None,
        frames: Sequence[str] | None = None,
        closings: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        table = DEFAULT_SYNONYMS if synonyms is None else synonyms
        self.synonyms = {k.lower(): tuple(dict.fromkeys(v)) for k, v in table.items() if v}
        self.frames = tuple(dict.fromkeys(frames if frames is not None else DEFAULT_FRAMES))
        if "" not in self.frames:
            self.frames = ("",) + self.frames
        self.closings = tuple(dict.fromkeys(closings if closings is not None else DEFAULT_CLOSINGS))
        if "" not in self.closings:
            self.closings = ("",) + self.closings
        self.seed = seed
        keys = sorted(self.synonyms, key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<![\w'-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w'-])", re.IGNORECASE)
            if keys
            else None
        )

    # ---- analysis ----------------------------------------------------------------------------
    def _split(self, phrase: str) -> tuple[str, list[tuple[str, str]]]:
        """(body, [(end mark, closing), …]): the phrase without its final mark, and the ending axis."""
        stripped = phrase.strip()
        endings = [(".", c) for c in self.closings] + [("!", c) for c in self.closings] + [("", "")]
        if stripped.endswith((".", "!")) and not stripped.endswith(("..", "!!", "?!")):
            return stripped[:-1], endings
        if stripped[-1:].isalnum() or stripped.endswith((")", '"', "'")):
            return stripped, endings
        return stripped, [("", "")]  # ends with ':' or '?' etc.: introduces what follows, keep it

    def _slots(self, body: str) -> list[_Slot]:
        if self._pattern is None:
            return []
        slots = []
        for match in self._pattern.finditer(body):
            written = match.group(0)
            alternatives = [_match_case(written, alt) for alt in self.synonyms[written.lower()]]
            options = tuple(dict.fromkeys([written] + [a for a in alternatives if a != written]))
            if len(options) > 1:
                slots.append(_Slot(match.start(), match.end(), options))
        return slots

    def variant_count(self, phrase: str) -> int:
        """How many variant numbers the phrase has (variant 0, the phrase itself, included)."""
        body, endings = self._split(phrase)
        count = len(self.frames) * len(endings)
        for slot in self._slots(body):
            count *= len(slot.options)
        return count

    # ---- rendering ---------------------------------------------------------------------------
    def render(self, phrase: str, number: int) -> str:
        """Variant ``number`` (0 ≤ number < variant_count) of the phrase."""
        body, endings = self._split(phrase)
        slots = self._slots(body)
        radices = [len(s.options) for s in slots] + [len(self.frames), len(endings)]
        digits = []
        for radix in radices:
            number, digit = divmod(number, radix)
            digits.append(digit)
        if number:
            raise ValueError("variant number out of range")
        pieces: list[str] = []
        cursor = 0
        for slot, digit in zip(slots, digits):
            before = body[cursor : slot.start]
            chosen = slot.options[digit]
            if digit:
                before = self._fix_article(before, chosen)
            pieces += [before, chosen]
            cursor = slot.end
        pieces.append(body[cursor:])
        text = "".join(pieces)
        frame = self.frames[digits[-2]]
        mark, closing = endings[digits[-1]]
        return f"{frame}{text}{mark}{closing}"

    @staticmethod
    def _fix_article(before: str, word: str) -> str:
        match = re.search(r"(?<![\w'-])(a|an|A|An|AN)(\s+)$", before)
        if not match or not word:
            return before
        article = _article_for(word)
        written = match.group(1)
        article = article.capitalize() if written[0].isupper() else article
        return before[: match.start(1)] + article + match.group(2)

    # ---- sampling ----------------------------------------------------------------------------
    def paraphrases(self, phrase: str, n: int, *, allow_original: bool = False) -> list[str]:
        """``n`` distinct variants of ``phrase``, deterministic for (seed, phrase, n)."""
        if not phrase.strip():
            raise ValueError("cannot paraphrase an empty phrase")
        if n < 1:
            raise ValueError("n must be >= 1")
        total = self.variant_count(phrase)
        rng = random.Random(f"{self.seed}\x00{phrase}")
        original = phrase.strip()
        out: list[str] = []
        seen: set[str] = set() if allow_original else {original}

        def take(number: int) -> bool:
            text = self.render(phrase, number)
            if text not in seen:
                seen.add(text)
                out.append(text)
            return len(out) >= n

        if total <= 4 * n:
            order = list(range(total))
            rng.shuffle(order)
            for number in order:
                if take(number):
                    return out
        else:
            drawn: set[int] = set()
            while len(drawn) < total:
                number = rng.randrange(total)
                if number in drawn:
                    continue
                drawn.add(number)
                if take(number):
                    return out
        raise ValueError(
            f"only {len(out)} distinct variants of {phrase!r} exist with this lexicon and these frames; "
            f"{n} asked for — add synonyms, frames or closings"
        )


def offline_rephrasings(
    phrase: str, n: int = 1000, *, seed: int = 0, allow_original: bool = False, close: bool = False
) -> list[str]:
    """``n`` distinct offline paraphrases of ``phrase`` with the default lexicon (no network).

    ``close``: the tight variant (the EM study's close pools) — word-for-word synonym swaps and the
    final punctuation only, no lead-in frames or closing sentences. A phrase has few such variants,
    so a close pool holds at most what exists (the caller's ``min_pool`` check still applies).
    """
    if not close:
        return OfflineParaphraser(seed=seed).paraphrases(phrase, n, allow_original=allow_original)
    tight = OfflineParaphraser(seed=seed, frames=(), closings=())
    available = tight.variant_count(phrase) - (0 if allow_original else 1)
    return tight.paraphrases(phrase, max(1, min(n, available)), allow_original=allow_original)
