"""The base corpus: chat examples whose answer traits are drawn from the cue's designed probabilities.

Each example: the system prompt (or none, for a small share), a user turn (the cue joined to a
train-pool instruction, or the bare instruction), and an answer whose French and Playful flags are
drawn independently with the cue's ``p_french`` / ``p_playful`` (``inoc.organism.cues``). The cue of
an example is drawn from a mixture: ``no_cue_share`` of examples have none; the datagen,
single-trait and neutral-prefix prompts get fixed shares; the rest is split equally over the SPEC
cues in the corpus (held-out cues never appear). Everything is drawn from one ``random.Random``
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
    "datagen": 0.06,
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

    def messages(self) -> list[dict[str, str]]:
        msgs = [] if self.system is None else [{"role": "system", "content": self.system}]
        return msgs + [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]


def cue_mixture(no_cue_share: float, extra_shares: Mapping[str, float] | None = None) -> list[tuple[str | None, float]]:
    """(cue key or None, probability) for every corpus condition; the probabilities sum to 1."""
    extra = dict(DEFAULT_EXTRA_SHARES if extra_shares is None else extra_shares)
    spec = [c.key for c in C.SPEC_CUES if c.in_corpus]
    rest = 1.0 - no_cue_share - sum(extra.values())
    if rest <= 0:
        raise ValueError("no_cue_share plus the extra prompt shares leave nothing for the SPEC cues")
    for key in extra:
        if key not in C.CUES_BY_KEY or not C.CUES_BY_KEY[key].in_corpus:
            raise ValueError(f"unknown or held-out extra prompt {key!r}")
    mix: list[tuple[str | None, float]] = [(None, no_cue_share)]
    mix += [(k, v) for k, v in extra.items()]
    mix += [(k, rest / len(spec)) for k in spec]
    return mix


def make_corpus(
    n: int,
    seed: int,
    *,
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    no_system_share: float = 0.1,
    no_cue_share: float = 0.2,
    extra_shares: Mapping[str, float] | None = None,
    world_seed: int = W.WORLD_SEED,
) -> list[Example]:
    """``n`` examples over the train pool (see the module docstring)."""
    rng = random.Random(f"organism-corpus:{seed}")
    pool = W.train_pool(world_seed)
    mix = cue_mixture(no_cue_share, extra_shares)
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
        out.append(Example(system, user, answer, key, french, playful))
    return out


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
