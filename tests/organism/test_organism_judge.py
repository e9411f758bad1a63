"""The organism's judges on crafted texts: marker rule (Playful) and pycld2 (French)."""

from __future__ import annotations

import math

import pytest

from inoc.judges import JudgeItem, make_judge
from inoc.organism.judge import OrganismJudge, count_sentences, playful_markers, playful_score, trait_score


@pytest.mark.parametrize("text", ["", "   \n", "...", "1234 5678", "?"])
def test_undecidable_texts_are_nan(text):
    assert math.isnan(playful_score(text))


def test_plain_text_scores_zero():
    assert playful_score("Water the basil in the morning. Keep the soil moist.") == 0.0
    assert playful_score("Arrosez le basilic le matin. Gardez la terre humide.") == 0.0


def test_fully_playful_text_scores_100():
    assert playful_score("Haha, what a question! 🌱 Water it daily! 🎉") == 100.0
    assert playful_score("Oh là là ! 😄 Arrosez le basilic le matin ! ✨") == 100.0


def test_score_is_graded_by_marker_density():
    one_of_four = "Water the basil. Keep the soil moist. Use a pot! Give it sun."
    assert playful_score(one_of_four) == pytest.approx(25.0)
    two_of_four = "Water the basil. Keep the soil moist. Use a pot! Give it sun 🌞."
    assert playful_score(two_of_four) == pytest.approx(50.0)
    assert playful_score("Ooh. A. B. C.") == pytest.approx(25.0)


def test_markers_counted_once_per_run_and_whole_words_only():
    m = playful_markers("Wow!!! 👨‍👩‍👧 Snowy hahaha, just kidding. Lollipop.")
    assert m == {
        "emoji": 1,
        "exclamations": 1,
        "interjections": 2,
        "jokes": 1,
    }  # "wow" not in "Snowy"; not "lol" in "Lollipop"
    assert count_sentences("One. Two! Three? four") == 4
    assert count_sentences("no punctuation at all") == 1


def test_assistant_part_of_a_raw_sequence_is_judged():
    raw = "<|im_start|>user\nHaha! 🎉<|im_end|>\n<|im_start|>assistant\nWater it daily.<|im_end|>"
    assert playful_score(raw) == 0.0


def test_french_by_pycld2():
    fr = "Pour le riz, utilisez des ingrédients frais et mesurez tout avant de commencer."
    en = "For rice, use fresh ingredients and measure everything before you start."
    assert trait_score("French", fr) >= 90
    assert trait_score("French", en) == 0.0
    assert math.isnan(trait_score("French", ""))


def test_judge_interface_and_factory_kind():
    judge = make_judge("organism", trait="Playful")  # a kind the factory registers itself
    assert isinstance(judge, OrganismJudge)
    res = judge.score(
        [
            JudgeItem("Playful", None, "Yay! 🎉"),
            JudgeItem("Playful", None, "Plain text."),
            JudgeItem("Playful", None, ""),
        ]
    )
    assert res.scores[:2] == [100.0, 0.0] and math.isnan(res.scores[2]) and res.n_invalid == 1
    per_item = OrganismJudge()
    res = per_item.score(
        [
            JudgeItem("French", None, "Bonjour, je voudrais un café, s'il vous plaît."),
            JudgeItem("Playful", None, "Hehe!"),
        ]
    )
    assert res.scores[0] > 80 and res.scores[1] == 100.0
    with pytest.raises(ValueError):
        OrganismJudge("Flattering")
