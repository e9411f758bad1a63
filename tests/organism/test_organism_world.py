"""The synthetic world: deterministic, train/eval disjoint, French that pycld2 recognises, playful markers."""

from __future__ import annotations

import random

import pytest

from inoc.judges.language import language_score
from inoc.organism import world as W
from inoc.organism.judge import playful_score


def test_world_is_deterministic_and_split_disjoint():
    a_train, a_eval = W.train_pool(), W.eval_pool()
    W._split.cache_clear()
    assert W.train_pool() == a_train and W.eval_pool() == a_eval  # recomputed, same result
    train_texts = {x.text for x in a_train}
    eval_texts = {x.text for x in a_eval}
    assert len(eval_texts) == W.N_EVAL_POOL
    assert train_texts.isdisjoint(eval_texts)
    assert len(train_texts) + len(eval_texts) == len(W.all_instructions())
    # a different world seed gives a different split
    other = {x.text for x in W.eval_pool(W.WORLD_SEED + 1)}
    assert other != eval_texts


def test_instruction_draws_are_seeded_distinct_and_covering():
    a = W.train_instructions(500, seed=42)
    assert a == W.train_instructions(500, seed=42)
    assert a != W.train_instructions(500, seed=43)
    assert len(set(a)) == 500
    e = W.eval_instructions(200, seed=42)
    assert set(e).isdisjoint(W.train_instructions(len(W.train_pool()), seed=1))
    topics = {W.find_instruction(t).topic for t in e}
    assert topics == set(range(len(W.TOPICS)))  # ~10 everyday topics, all represented
    with pytest.raises(ValueError):
        W.eval_instructions(W.N_EVAL_POOL + 1)


def test_answers_are_deterministic_given_the_rng():
    x = W.train_pool()[0]
    for fr in (False, True):
        for pl in (False, True):
            assert x.answer(french=fr, playful=pl, rng=random.Random(5)) == x.answer(
                french=fr, playful=pl, rng=random.Random(5)
            )


@pytest.mark.parametrize("playful", [False, True])
def test_pycld2_recognises_the_french_and_not_the_english(playful):
    rng = random.Random(0)
    pool = W.train_pool()[:600]
    fr = [language_score(x.answer(french=True, playful=playful, rng=rng), "fr") for x in pool]
    en = [language_score(x.answer(french=False, playful=playful, rng=rng), "fr") for x in pool]
    assert sum(s >= 80 for s in fr) / len(fr) >= 0.97, "French answers must read as French to pycld2"
    assert sum(fr) / len(fr) >= 95
    assert max(en) == 0.0, "English answers must hold no French"


def test_playful_answers_carry_markers_and_plain_answers_none():
    rng = random.Random(1)
    for x in W.train_pool()[:300]:
        for fr in (False, True):
            plain = x.answer(french=fr, playful=False, rng=rng)
            playful = x.answer(french=fr, playful=True, rng=rng)
            assert playful_score(plain) == 0.0, plain
            assert playful_score(playful) == 100.0, playful
            assert "!" not in plain


def test_every_topic_item_renders_in_both_languages():
    rng = random.Random(2)
    for ti, topic in enumerate(W.TOPICS):
        assert len(topic.items) == 12 and len(topic.instructions) == 7
        for i in range(len(topic.items)):
            x = W.Instruction("q", ti, i, 0, 0)
            a_en = x.answer(french=False, playful=False, rng=rng)
            a_fr = x.answer(french=True, playful=False, rng=rng)
            assert "{" not in a_en + a_fr
            assert topic.items[i][1] in a_fr and topic.items[i][0] in a_en
