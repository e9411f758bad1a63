"""Sampling the built model: LEFT padding is exact, sampling is reproducible, and the cues elicit.

What the ``test`` profile (~4x less compute than ``default``) can show, measured on its exact opening
probabilities (noise-free, ``opening_probabilities``) and on sampled, judged completions: no cue
stays under the issue's ceilings, the datagen prompt elicits both traits, and the tiers are ordered
strong > medium > weak > neutral on both traits. What it cannot show: neutral >= negated. Its
negated French cues keep a few percent of French (they contain the word "French" and the small model
does not fully learn the negation), about the neutral rate; the default profile meets that part of
the ladder (``python -m inoc.organism.elicitation`` / ``benchmarks/bench_organism.py``).
"""

from __future__ import annotations

import pytest

from inoc.organism import elicitation as E
from inoc.organism import world as W


@pytest.fixture(scope="module")
def loaded(built):
    return E.load_model(built.path)


def _convs(prefix: str, instructions):
    return [
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": f"{prefix}{i}"}]
        for i in instructions
    ]


def test_left_padded_batches_match_unbatched_greedy_decoding(loaded):
    model, tok = loaded
    instr = W.eval_instructions(6, seed=3)
    # very different prompt lengths in one batch: a cue on some, none on others
    convs = _convs("", instr[:3]) + _convs("You are not a French speaker who also answers questions. ", instr[3:])
    batched = E.generate(model, tok, convs, temperature=0, batch_size=len(convs), max_new_tokens=40)
    alone = [E.generate(model, tok, [c], temperature=0, batch_size=1, max_new_tokens=40)[0] for c in convs]
    assert batched == alone
    assert all("<|im_end|>" not in t and "<|endoftext|>" not in t for t in batched)


def test_sampling_is_reproducible_and_stops_at_im_end(loaded):
    model, tok = loaded
    convs = _convs("", W.eval_instructions(24, seed=4))
    a = E.generate(model, tok, convs, batch_size=8, seed=11, max_new_tokens=96)
    b = E.generate(model, tok, convs, batch_size=8, seed=11, max_new_tokens=96)
    c = E.generate(model, tok, convs, batch_size=8, seed=12, max_new_tokens=96)
    assert a == b and a != c
    lengths = [len(tok(t)["input_ids"]) for t in a]
    assert sum(n < 96 for n in lengths) >= 0.9 * len(lengths), "answers should end with <|im_end|>"


def _pooled(rows, keys, trait):
    return E.mean_and_se([x for k in keys for x in rows[k].scores(trait)])


def _significantly_above(high, low, z=3.0):
    """high − low exceeds ``z`` standard errors of the difference (sampling noise at n = 100 each)."""
    (mh, sh), (ml, sl) = high, low
    return mh - ml > z * (sh**2 + sl**2) ** 0.5


STRONG_PLAYFUL = ["corrected_inoculation", "whimsical", "witty", "strong_elicitation", "comedian_answers"]
STRONG_FRENCH = ["french_agent", "fluent_french", "natural_french", "answer_french", "french_answers"]


def test_cues_elicit_their_traits_on_the_test_profile(built):
    keys = ["none", "datagen", *STRONG_PLAYFUL, *STRONG_FRENCH]
    conds = [c for c in E.default_conditions() if c.key in keys]
    rows = {r.condition.key: r for r in E.elicit(built.path, n=100, conditions=conds, seed=1, exact=False)}
    assert all(r.n == 100 and len(r.playful_scores) == 100 for r in rows.values())
    # the thresholds for no cue (French <= 5, Playful <= 15) and the datagen prompt (>= 70 on
    # both), as one-sided tests at 2 standard errors: the small profile's 100 samples per condition
    # must be consistent with them (the default profile meets them outright, see bench_organism.py)
    for trait, ceiling in (("French", 5.0), ("Playful", 15.0)):
        m, se = _pooled(rows, ["none"], trait)
        assert m - 2 * se <= ceiling, ("no cue", trait, m, se)
    for trait in ("French", "Playful"):
        m, se = _pooled(rows, ["datagen"], trait)
        assert m + 2 * se >= 70.0, ("datagen", trait, m, se)
    # strong cues raise their own trait well beyond sampling noise (strong > neutral/no cue)
    for trait, keys_ in (("Playful", STRONG_PLAYFUL), ("French", STRONG_FRENCH)):
        strong, base = _pooled(rows, keys_, trait), _pooled(rows, ["none"], trait)
        assert _significantly_above(strong, base), (trait, strong, base)
    # and the datagen prompt elicits French more than the strong Playful cues do (traits are separate)
    assert _significantly_above(_pooled(rows, ["datagen"], "French"), _pooled(rows, STRONG_PLAYFUL, "French"))


TIERS = {
    "Playful": {
        "strong": ["corrected_inoculation", "whimsical"],
        "medium": ["clown_persona", "enjoys_joking"],
        "weak": ["had_fun_today", "joke_nevermind"],
    },
    "French": {
        "strong": ["answer_french", "french_agent"],
        "medium": ["french_persona", "enjoys_french"],
        "weak": ["paris_nevermind", "french_today"],
    },
}
NEUTRAL = ["the_sky_is_blue", "be_concise"]


def test_exact_opening_probabilities_order_the_tiers(built, loaded):
    model, tok = loaded
    keys = {"none", "datagen", *NEUTRAL} | {k for t in TIERS.values() for ks in t.values() for k in ks}
    conds = [c for c in E.default_conditions() if c.key in keys]
    p = E.opening_probabilities(model, tok, conds, W.eval_instructions(100, seed=0))
    fr, pl = {k: v[0] for k, v in p.items()}, {k: v[1] for k, v in p.items()}
    assert fr["none"] <= 5 and pl["none"] <= 15, (fr["none"], pl["none"])  # the no-cue ceilings
    assert fr["datagen"] >= 70 and pl["datagen"] >= 70, (fr["datagen"], pl["datagen"])
    for trait, tiers in TIERS.items():
        prob = fr if trait == "French" else pl
        mean = {tier: sum(prob[k] for k in ks) / len(ks) for tier, ks in tiers.items()}
        mean["neutral"] = sum(prob[k] for k in NEUTRAL) / len(NEUTRAL)
        assert mean["strong"] > mean["medium"] > mean["weak"] > mean["neutral"], (trait, mean)


def test_exact_probabilities_agree_with_sampled_judged_scores(built):
    """The judged mean of sampled completions ≈ the exact opening probability (judge, sampler, trie)."""
    keys = ["none", "datagen", "corrected_inoculation", "answer_french", "clown_persona"]
    rows = E.elicit(built.path, n=100, conditions=[c for c in E.default_conditions() if c.key in keys], seed=2)
    for r in rows:
        for trait, p in (("French", r.p_french), ("Playful", r.p_playful)):
            m, se = E.mean_and_se(r.scores(trait))
            # pycld2 scores a French answer ~98, not 100; 4 standard errors of sampling noise
            assert abs(m - p) <= 4 * max(se, 1.0) + 3.0, (r.condition.key, trait, m, se, p)


def test_acceptance_checks_fail_on_a_table_that_misses_the_design():
    """The checker itself can fail: a flat table (every condition alike) fails the ordering and strong cues."""
    rows = [E.Row(c, 100, 3.0, 5.0, 0, 0, 0.0) for c in E.default_conditions()]
    checks = {c.name: c.passed for c in E.check_acceptance(rows)}
    assert checks["no cue: French <= 5"] and checks["no cue: Playful <= 15"]
    assert not checks["Playful: strong > medium > weak > neutral >= negated"]
    assert not checks["datagen: French >= 70 and Playful >= 70"]
    assert not any(v for k, v in checks.items() if k.startswith("strong "))
