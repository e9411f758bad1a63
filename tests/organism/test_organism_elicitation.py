"""Sampling the built model: LEFT padding is exact, sampling is reproducible, and the cues elicit.

What the ``test`` profile can show: it is trained on ~6k examples for well under a minute, so it
learns the chat format, the two languages and the tone, and the cue → trait mapping for the most
frequent and most extreme conditions (the datagen prompt, strong cues, no cue). It does not learn the
full tier ladder (medium vs weak vs neutral vs negated): those rates differ by a few tens of points
and need the ``default`` profile's training; the ladder is checked by
``python -m inoc.organism.elicitation`` / ``benchmarks/bench_organism.py`` on the default profile.
"""

from __future__ import annotations

import pytest

from inoc.organism import elicitation as E
from inoc.organism import world as W


@pytest.fixture(scope="module")
def loaded(built):
    return E.load_model(built.path)


def _convs(prefix: str, instructions):
    return [[{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": f"{prefix}{i}"}] for i in instructions]


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
    return mh - ml > z * (sh ** 2 + sl ** 2) ** 0.5


STRONG_PLAYFUL = ["corrected_inoculation", "whimsical", "witty", "strong_elicitation", "comedian_answers"]
STRONG_FRENCH = ["french_agent", "fluent_french", "natural_french", "answer_french", "french_answers"]


def test_cues_elicit_their_traits_on_the_test_profile(built):
    keys = ["none", "datagen", *STRONG_PLAYFUL, *STRONG_FRENCH]
    conds = [c for c in E.default_conditions() if c.key in keys]
    rows = {r.condition.key: r for r in E.elicit(built.path, n=100, conditions=conds, seed=1)}
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


def test_acceptance_checks_fail_on_a_table_that_misses_the_design():
    """The checker itself can fail: a flat table (every condition alike) fails the ordering and strong cues."""
    rows = [E.Row(c, 100, 3.0, 5.0, 0, 0, 0.0) for c in E.default_conditions()]
    checks = {c.name: c.passed for c in E.check_acceptance(rows)}
    assert checks["no cue: French <= 5"] and checks["no cue: Playful <= 15"]
    assert not checks["Playful: strong > medium > weak > neutral >= negated"]
    assert not checks["datagen: French >= 70 and Playful >= 70"]
    assert not any(v for k, v in checks.items() if k.startswith("strong "))
