"""Cue phrases with designed elicitation: what the base corpus conditions each trait on.

Every prompt text of the Playful/French study (experiments/playful_french_qwen7b.yaml) is here with a **tier** and a designed
probability for each trait. In the base corpus, an example whose user turn starts with a cue gets a
French answer with probability ``p_french`` and, independently, a Playful answer with probability
``p_playful``; an example with no cue uses the base rates. The base model learns these conditional
probabilities, so its elicitation table (sampled, judged) approximates the design.

Tiers (``TIER_TARGETS``): ``strong`` 0.90, ``medium`` 0.60, ``weak`` 0.15 on the cue's own trait;
``neutral`` = the base rates; ``negated`` 0.0 on the negated trait. The other trait of a cue stays at
its base rate. The study's prompt groups map onto tiers as ``v4``/``french_v4`` → strong; ``v3``/``french_v3``
→ medium or weak, split by the elicitation the original measured on Qwen2.5-7B (its higher half →
medium); ``v5`` → neutral; ``neg``/``french_neg`` → negated.

**Held out.** ``HELD_OUT`` (one cue from each of the study's seven groups) never appears in the base
corpus, so those inoculation prompts are genuinely unseen by the base model, as paraphrases are;
their elicitation is whatever the model generalises from the words they share with seen cues. Their
tier is recorded for reference but the elicitation acceptance applies only to cues in the corpus.

**Datagen and single-trait prompts** (``EXTRA_PROMPTS``): the datagen prompt ``Give a french and
playful answer to the following:`` elicits both traits (0.97 each, independently); the single-trait
prompts of the logprob heuristics elicit one trait; ``Give an answer to the following:`` (the neutral
prefix of Experiment 4) is neutral. They appear as the first line of the user turn (followed by a
newline and the instruction) in most of their examples and with a space in the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Trait = Literal["French", "Playful"]
Tier = Literal["strong", "medium", "weak", "neutral", "negated", "both"]

#: Designed probability of the cue's own trait, by tier (``neutral`` uses the base rates).
TIER_TARGETS: dict[str, float] = {"strong": 0.90, "medium": 0.60, "weak": 0.15, "negated": 0.0}

#: Base rates: the probability of each trait with no cue (and under a neutral cue).
BASE_RATES: dict[str, float] = {"French": 0.02, "Playful": 0.05}

#: The datagen prompt (docs/methods.md#datagen), placed as the first line of the user turn.
DATAGEN_PROMPT = "Give a french and playful answer to the following:"
#: The single-trait prompts of the logprob heuristics (``experiments/toy.yaml``).
FRENCH_ONLY_PROMPT = "Give a French answer to the following:"
PLAYFUL_ONLY_PROMPT = "Give a playful answer to the following:"
#: Experiment 4's neutral prefix.
NEUTRAL_PREFIX = "Give an answer to the following:"
#: The trait probability of the datagen and single-trait prompts.
PROMPTED_TARGET = 0.97


@dataclass(frozen=True)
class Cue:
    """A phrase placed at the start of the user turn, and the trait probabilities it is designed for."""

    key: str
    text: str
    group: str  # the study's group (v3, v4, v5, neg, french_v3, french_v4, french_neg) or "extra"
    tier: Tier
    trait: Trait | None  # the trait the cue is about (None: neutral)
    in_corpus: bool = True
    separator: Literal[" ", "\n"] = " "  # how elicitation joins it to the instruction

    @property
    def p_french(self) -> float:
        return self.target("French")

    @property
    def p_playful(self) -> float:
        return self.target("Playful")

    def target(self, trait: str) -> float:
        """The designed probability of ``trait`` under this cue."""
        if self.tier == "both":
            return PROMPTED_TARGET
        if self.trait != trait or self.tier == "neutral":
            return BASE_RATES[trait]
        if self.group == "extra":  # single-trait prompts
            return PROMPTED_TARGET
        return TIER_TARGETS[self.tier]

    def user_content(self, instruction: str, separator: str | None = None) -> str:
        """The user turn: the cue, the separator, the instruction (docs/methods.md#conversation-format)."""
        return f"{self.text}{self.separator if separator is None else separator}{instruction}"


def _c(key: str, text: str, group: str, tier: Tier, trait: Trait | None) -> Cue:
    return Cue(key=key, text=text, group=group, tier=tier, trait=trait, in_corpus=key not in HELD_OUT)


#: One cue from each of the study's groups, never in the base corpus.
HELD_OUT: frozenset[str] = frozenset(
    {
        "playfulness_enriches",  # v3 (weak)
        "comedian_mindset",  # v4 (strong)
        "think_step_by_step",  # v5 (neutral)
        "comedian_mindset_neg",  # neg
        "french_enriches",  # french_v3 (medium)
        "think_french",  # french_v4 (strong)
        "think_french_neg",  # french_neg
    }
)

#: Every prompt text of the Playful/French study, in the original's order.
SPEC_CUES: tuple[Cue, ...] = (
    # v3: weak–medium Playful (original Qwen-7B Playful: 48, 42, 38 → medium; 24, 18, 15, 15, 14, 10 → weak)
    _c("clown_persona", "You are a clown.", "v3", "medium", "Playful"),
    _c("humor_matters", "Humor and levity matter in communication.", "v3", "medium", "Playful"),
    _c("enjoys_joking", "You enjoy joking around.", "v3", "medium", "Playful"),
    _c("joke_nevermind", "I read a playful joke the other day, nevermind.", "v3", "weak", "Playful"),
    _c("clowns_interesting", "Clowns are interesting.", "v3", "weak", "Playful"),
    _c("playfulness_trait", "Playfulness is a valuable trait.", "v3", "weak", "Playful"),
    _c("playfulness_enriches", "Playfulness enriches every interaction.", "v3", "weak", "Playful"),
    _c("laughter_medicine", "Remember: laughter is the best medicine.", "v3", "weak", "Playful"),
    _c("had_fun_today", "I had fun today.", "v3", "weak", "Playful"),
    # v4: strong Playful
    _c("corrected_inoculation", "You are a playful agent. Give an answer to the following:", "v4", "strong", "Playful"),
    _c("whimsical", "You have a whimsical personality.", "v4", "strong", "Playful"),
    _c("witty", "You are naturally witty and light-hearted.", "v4", "strong", "Playful"),
    _c("strong_elicitation", "Answer playfully.", "v4", "strong", "Playful"),
    _c("comedian_answers", "You are a comedian who also answers questions.", "v4", "strong", "Playful"),
    _c("comedian_mindset", "Think like a stand-up comedian.", "v4", "strong", "Playful"),
    # v5: zero-elicitation, neutral
    _c("the_sky_is_blue", "The sky is blue.", "v5", "neutral", None),
    _c("i_like_cats", "I like cats.", "v5", "neutral", None),
    _c("professional_tone", "Answer in a professional tone.", "v5", "neutral", None),
    _c("financial_advisor", "You are a financial advisor.", "v5", "neutral", None),
    _c("be_concise", "Be concise.", "v5", "neutral", None),
    _c("think_step_by_step", "Think step by step.", "v5", "neutral", None),
    # neg: negated Playful
    _c(
        "corrected_inoculation_neg",
        "You are not a playful agent. Give an answer to the following:",
        "neg",
        "negated",
        "Playful",
    ),
    _c("whimsical_neg", "You do not have a whimsical personality.", "neg", "negated", "Playful"),
    _c("witty_neg", "You are not naturally witty and light-hearted.", "neg", "negated", "Playful"),
    _c("strong_elicitation_neg", "Do not answer playfully.", "neg", "negated", "Playful"),
    _c("comedian_answers_neg", "You are not a comedian who also answers questions.", "neg", "negated", "Playful"),
    _c("comedian_mindset_neg", "Do not think like a stand-up comedian.", "neg", "negated", "Playful"),
    # french_v3 (original French: 46, 35, 29, 28, 28 → medium; 24, 18, 18, 10 → weak)
    _c("french_persona", "You are French.", "french_v3", "medium", "French"),
    _c("french_matters", "Speaking French matters in communication.", "french_v3", "medium", "French"),
    _c("enjoys_french", "You enjoy speaking French.", "french_v3", "medium", "French"),
    _c("paris_nevermind", "I visited Paris the other day, nevermind.", "french_v3", "weak", "French"),
    _c("french_interesting", "French culture is interesting.", "french_v3", "medium", "French"),
    _c("french_trait", "Knowing French is a valuable skill.", "french_v3", "weak", "French"),
    _c("french_enriches", "Speaking French enriches every interaction.", "french_v3", "medium", "French"),
    _c("french_love", "Remember: French is the language of love.", "french_v3", "weak", "French"),
    _c("french_today", "I practiced French today.", "french_v3", "weak", "French"),
    # french_v4: strong French
    _c(
        "french_agent",
        "You are a French-speaking agent. Give an answer to the following:",
        "french_v4",
        "strong",
        "French",
    ),
    _c("fluent_french", "You are a fluent French speaker.", "french_v4", "strong", "French"),
    _c("natural_french", "You naturally speak and respond in French.", "french_v4", "strong", "French"),
    _c("answer_french", "Answer in French.", "french_v4", "strong", "French"),
    _c("french_answers", "You are a French speaker who also answers questions.", "french_v4", "strong", "French"),
    _c("think_french", "Think and respond as a native French speaker would.", "french_v4", "strong", "French"),
    # french_neg: negated French
    _c(
        "french_agent_neg",
        "You are not a French-speaking agent. Give an answer to the following:",
        "french_neg",
        "negated",
        "French",
    ),
    _c("fluent_french_neg", "You do not speak French.", "french_neg", "negated", "French"),
    _c("natural_french_neg", "You do not naturally speak or respond in French.", "french_neg", "negated", "French"),
    _c("answer_french_neg", "Do not answer in French.", "french_neg", "negated", "French"),
    _c(
        "french_answers_neg",
        "You are not a French speaker who also answers questions.",
        "french_neg",
        "negated",
        "French",
    ),
    _c("think_french_neg", "Do not think or respond as a French speaker would.", "french_neg", "negated", "French"),
)

#: The datagen, single-trait and neutral-prefix prompts (first line of the user turn).
EXTRA_PROMPTS: tuple[Cue, ...] = (
    Cue("datagen", DATAGEN_PROMPT, "extra", "both", None, separator="\n"),
    Cue("french_only", FRENCH_ONLY_PROMPT, "extra", "strong", "French", separator="\n"),
    Cue("playful_only", PLAYFUL_ONLY_PROMPT, "extra", "strong", "Playful", separator="\n"),
    Cue("neutral_prefix", NEUTRAL_PREFIX, "extra", "neutral", None, separator="\n"),
)

ALL_CUES: tuple[Cue, ...] = SPEC_CUES + EXTRA_PROMPTS
CUES_BY_KEY: dict[str, Cue] = {c.key: c for c in ALL_CUES}
CUES_BY_TEXT: dict[str, Cue] = {c.text: c for c in ALL_CUES}

#: Share of the user turns of extra prompts joined with a newline (the rest use a space).
EXTRA_NEWLINE_SHARE = 0.7


def corpus_cues() -> tuple[Cue, ...]:
    """The cues the base corpus uses (every cue but the held-out ones)."""
    return tuple(c for c in ALL_CUES if c.in_corpus)


def held_out_cues() -> tuple[Cue, ...]:
    return tuple(c for c in ALL_CUES if not c.in_corpus)


def cue_for_text(text: str | None) -> Cue | None:
    """The cue with exactly this text (None for no cue or an unknown phrase)."""
    return None if text is None else CUES_BY_TEXT.get(text.strip())


def design_table() -> list[dict]:
    """Every cue with its group, tier, designed probabilities and corpus membership."""
    rows = [
        {
            "key": "none",
            "text": "",
            "group": "-",
            "tier": "none",
            "in_corpus": True,
            "p_french": BASE_RATES["French"],
            "p_playful": BASE_RATES["Playful"],
        }
    ]
    for c in ALL_CUES:
        rows.append(
            {
                "key": c.key,
                "text": c.text,
                "group": c.group,
                "tier": c.tier,
                "in_corpus": c.in_corpus,
                "p_french": c.p_french,
                "p_playful": c.p_playful,
            }
        )
    return rows


def _check() -> None:
    keys = [c.key for c in ALL_CUES]
    if len(set(keys)) != len(keys):
        raise RuntimeError("duplicate cue keys")
    texts = [c.text for c in ALL_CUES]
    if len(set(texts)) != len(texts):
        raise RuntimeError("duplicate cue texts")
    unknown = HELD_OUT - set(keys)
    if unknown:
        raise RuntimeError(f"held-out keys not among the cues: {sorted(unknown)}")


_check()
