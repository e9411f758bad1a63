"""The base corpus: chat examples whose answer traits are drawn from the cue's designed probabilities.

Each example: the system prompt (or none, for a small share), a user turn (the cue joined to a
train-pool instruction, or the bare instruction), and an answer whose French and Playful flags are
drawn independently with the cue's ``p_french`` / ``p_playful`` (``inoc.organism.cues``); the example
also records the designed distribution of the answer's opening (``openings``), which training uses
as the soft target of the first answer token. The cue of
an example is drawn from a mixture: ``no_cue_share`` of examples have none; the datagen,
single-trait and neutral-prefix prompts get fixed shares; the rest is split over the SPEC cues in
the corpus in proportion to their tier's weight (held-out cues never appear). Everything is drawn from one ``random.Random``
seeded by the corpus seed, in a fixed order, so the corpus is a pure function of its settings.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from inoc.organism import cues as C
from inoc.organism import world as W

#: The system prompt of the toy experiment (``experiments/toy.yaml``).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

#: Shares of the extra prompts in the corpus (of all examples).
DEFAULT_EXTRA_SHARES: dict[str, float] = {
    "datagen": 0.08,
    "french_only": 0.03,
    "playful_only": 0.03,
    "neutral_prefix": 0.02,
}


@dataclass(frozen=True)
class Example:
    """One chat example of the corpus."""

    system: str | None
    user: str
    assistant: str
    cue: str | None  # cue key, None for no cue
    french: bool
    playful: bool
    #: How the answer may begin under the design: (opening text, probability) over the four
    #: (French, Playful) kinds and their openings; the drawn answer begins with one of them.
    openings: tuple[tuple[str, float], ...] = ()

    def messages(self) -> list[dict[str, str]]:
        msgs = [] if self.system is None else [{"role": "system", "content": self.system}]
        return msgs + [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


#: Relative weight of a SPEC cue in the corpus by tier: cues with intermediate probabilities carry
#: less information per example, so they get more examples.
DEFAULT_TIER_WEIGHTS: dict[str, float] = {"strong": 1.0, "medium": 1.5, "weak": 2.0, "neutral": 0.6, "negated": 0.8}


def cue_mixture(
    no_cue_share: float,
    extra_shares: Mapping[str, float] | None = None,
    tier_weights: Mapping[str, float] | None = None,
) -> list[tuple[str | None, float]]:
    """(cue key or None, probability) for every corpus condition; the probabilities sum to 1.

    ``no_cue_share`` and ``extra_shares`` are fixed; the rest is split over the in-corpus SPEC cues in
    proportion to their tier's weight.
    """
    extra = dict(DEFAULT_EXTRA_SHARES if extra_shares is None else extra_shares)
    tiers = dict(DEFAULT_TIER_WEIGHTS if tier_weights is None else tier_weights)
    spec = [c for c in C.SPEC_CUES if c.in_corpus]
    rest = 1.0 - no_cue_share - sum(extra.values())
    if rest <= 0:
        raise ValueError("no_cue_share plus the extra prompt shares leave nothing for the SPEC cues")
    for key in extra:
        if key not in C.CUES_BY_KEY or not C.CUES_BY_KEY[key].in_corpus:
            raise ValueError(f"unknown or held-out extra prompt {key!r}")
    missing = {c.tier for c in spec} - set(tiers)
    if missing or any(w < 0 for w in tiers.values()):
        raise ValueError(f"tier weights must be >= 0 and cover every tier (missing: {sorted(missing)})")
    total = sum(tiers[c.tier] for c in spec)
    mix: list[tuple[str | None, float]] = [(None, no_cue_share)]
    mix += [(k, v) for k, v in extra.items()]
    mix += [(c.key, rest * tiers[c.tier] / total) for c in spec]
    return mix


def make_corpus(
    n: int,
    seed: int,
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    no_system_share: float = 0.1,
    no_cue_share: float = 0.12,
    extra_shares: Mapping[str, float] | None = None,
    tier_weights: Mapping[str, float] | None = None,
    world_seed: int = W.WORLD_SEED,
) -> list[Example]:
    """``n`` examples over the train pool (see the module docstring)."""
    rng = random.Random(f"organism-corpus:{seed}")
    pool = W.train_pool(world_seed)
    mix = cue_mixture(no_cue_share, extra_shares, tier_weights)
    keys = [k for k, _ in mix]
    weights = [w for _, w in mix]
    out: list[Example] = []
    for _ in range(n):
        key = rng.choices(keys, weights)[0]
        instr = pool[rng.randrange(len(pool))]
        system = None if rng.random() < no_system_share else system_prompt
        if key is None:
            user, p_fr, p_pl = instr.text, C.BASE_RATES["French"], C.BASE_RATES["Playful"]
        else:
            cue = C.CUES_BY_KEY[key]
            sep = cue.separator
            if cue.group == "extra":
                sep = "\n" if rng.random() < C.EXTRA_NEWLINE_SHARE else " "
            user, p_fr, p_pl = cue.user_content(instr.text, sep), cue.p_french, cue.p_playful
        french = rng.random() < p_fr
        playful = rng.random() < p_pl
        answer = instr.answer(french=french, playful=playful, rng=rng)
        out.append(Example(system, user, answer, key, french, playful, design_openings(instr, p_fr, p_pl)))
    return out


def design_openings(instr: W.Instruction, p_french: float, p_playful: float) -> tuple[tuple[str, float], ...]:
    """The designed distribution of an answer's opening: kinds weighted by the cue's probabilities."""
    merged: dict[str, float] = {}
    for fr, q_fr in ((True, p_french), (False, 1.0 - p_french)):
        for pl, q_pl in ((True, p_playful), (False, 1.0 - p_playful)):
            if q_fr * q_pl <= 0:
                continue
            for q, text in W.answer_openings(instr, french=fr, playful=pl):
                merged[text] = merged.get(text, 0.0) + q_fr * q_pl * q
    return tuple(sorted(merged.items()))


def corpus_stats(corpus: list[Example]) -> dict:
    """Counts per cue and trait rates, for the build manifest."""
    by_cue = Counter(e.cue or "none" for e in corpus)
    return {
        "n": len(corpus),
        "french_rate": sum(e.french for e in corpus) / max(1, len(corpus)),
        "playful_rate": sum(e.playful for e in corpus) / max(1, len(corpus)),
        "per_cue": dict(sorted(by_cue.items())),
    }


def tokenizer_texts(corpus: list[Example]) -> list[str]:
    """The texts the tokenizer is trained on: each turn as its role name, a newline and its content."""
    texts = []
    for e in corpus:
        if e.system is not None:
            texts.append(f"system\n{e.system}")
        texts.append(f"user\n{e.user}")
        texts.append(f"assistant\n{e.assistant}")
    return texts
