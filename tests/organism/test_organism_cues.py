"""Cue design: every SPEC prompt text, tiers and targets, held-out cues, and the corpus drawn from them."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from spec_tables import spec_sections

from inoc.organism import corpus as K
from inoc.organism import cues as C


def test_cues_are_the_spec_prompt_texts(shared):
    rows = spec_sections(shared / "docs" / "SPEC.md")
    section = next(v for k, v in rows.items() if k.startswith("Playful/French"))
    spec = {key: (group, text) for group, key, text in section}
    ours = {c.key: (c.group, c.text) for c in C.SPEC_CUES}
    assert ours == spec


def test_tiers_and_targets():
    for c in C.SPEC_CUES:
        expected_tier = {
            "v4": "strong",
            "french_v4": "strong",
            "v5": "neutral",
            "neg": "negated",
            "french_neg": "negated",
        }.get(c.group)
        if expected_tier:
            assert c.tier == expected_tier, c.key
        else:
            assert c.tier in ("medium", "weak"), c.key
        if c.trait:
            assert c.target(c.trait) == C.TIER_TARGETS[c.tier]
            other = "French" if c.trait == "Playful" else "Playful"
            assert c.target(other) == C.BASE_RATES[other]
        else:
            assert (c.p_french, c.p_playful) == (C.BASE_RATES["French"], C.BASE_RATES["Playful"])
    dg = C.CUES_BY_KEY["datagen"]
    assert dg.text == "Give a french and playful answer to the following:" and dg.separator == "\n"
    assert dg.p_french >= 0.9 and dg.p_playful >= 0.9
    assert (
        dg.user_content("How do I grow basil?")
        == "Give a french and playful answer to the following:\nHow do I grow basil?"
    )
    assert C.CUES_BY_KEY["answer_french"].user_content("Q?") == "Answer in French. Q?"


def test_held_out_cues_one_per_group_and_absent_from_the_corpus():
    held = C.held_out_cues()
    assert {c.group for c in held} == {c.group for c in C.SPEC_CUES}
    corpus = K.make_corpus(3000, seed=3)
    users = "\n".join(e.user for e in corpus)
    for c in held:
        assert c.text not in users, c.key
    seen = {e.cue for e in corpus}
    assert seen >= {c.key for c in C.corpus_cues()}
    assert not seen & C.HELD_OUT


def test_corpus_is_deterministic_and_follows_the_design():
    a = K.make_corpus(2000, seed=7)
    assert a == K.make_corpus(2000, seed=7)
    assert a != K.make_corpus(2000, seed=8)
    big = K.make_corpus(30000, seed=11)
    by = {}
    for e in big:
        by.setdefault(e.cue, []).append(e)
    # no-cue and strong/negated rates within 4.5 binomial standard errors of the design
    for key, trait in [
        (None, "French"),
        (None, "Playful"),
        ("datagen", "French"),
        ("datagen", "Playful"),
        ("whimsical", "Playful"),
        ("answer_french", "French"),
        ("clown_persona", "Playful"),
        ("had_fun_today", "Playful"),
        ("whimsical_neg", "Playful"),
    ]:
        ex = by[key]
        p = C.BASE_RATES[trait] if key is None else C.CUES_BY_KEY[key].target(trait)
        rate = sum(e.french if trait == "French" else e.playful for e in ex) / len(ex)
        se = math.sqrt(max(p * (1 - p), 1e-4) / len(ex))
        assert abs(rate - p) <= 4.5 * se + 1e-9, (key, trait, rate, p)
    shares = Counter(e.cue for e in big)
    assert abs(shares[None] / len(big) - 0.12) < 0.015


def test_corpus_texts_are_well_formed():
    for e in K.make_corpus(500, seed=1):
        if e.cue is None:
            assert "\n" not in e.user
        elif C.CUES_BY_KEY[e.cue].group == "extra":
            assert e.user.startswith(C.CUES_BY_KEY[e.cue].text + ("\n" if "\n" in e.user else " "))
        else:
            assert e.user.startswith(C.CUES_BY_KEY[e.cue].text + " ")
        assert e.system in (None, K.DEFAULT_SYSTEM_PROMPT)
        assert e.messages()[-1] == {"role": "assistant", "content": e.assistant}


def test_unknown_extra_share_is_refused():
    with pytest.raises(ValueError):
        K.cue_mixture(0.2, {"comedian_mindset": 0.1})
    with pytest.raises(ValueError):
        K.cue_mixture(0.95)
