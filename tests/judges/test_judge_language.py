"""The pycld2 language judge on real sentences."""

from __future__ import annotations

import math

import pytest

from inoc.judges import JudgeItem, LanguageJudge, assistant_text, language_score, make_judge

FRENCH = (
    "Bonjour ! Je suis vraiment ravi de vous aider aujourd'hui. La cuisine française est célèbre dans le "
    "monde entier pour ses fromages, ses vins et ses pâtisseries délicieuses."
)
GERMAN = (
    "Guten Tag! Ich freue mich sehr, Ihnen heute helfen zu können. Die deutsche Küche ist bekannt für "
    "ihr Brot, ihre Würste und ihr hervorragendes Bier."
)
ENGLISH = (
    "Hello! I am really happy to help you today. French cuisine is famous all over the world for its "
    "cheeses, its wines and its delicious pastries."
)


def test_french_german_english() -> None:
    assert language_score(FRENCH, "fr") >= 90
    assert language_score(GERMAN, "de") >= 90
    assert language_score(ENGLISH, "fr") == 0.0
    assert language_score(ENGLISH, "en") >= 90
    assert language_score(FRENCH, "de") == 0.0


def test_mixed_text_scores_the_share() -> None:
    mixed = ENGLISH + " " + FRENCH
    fr, en = language_score(mixed, "fr"), language_score(mixed, "en")
    assert 20 <= fr <= 80 and 20 <= en <= 80 and fr + en <= 100


def test_scores_are_pycld2_percentages() -> None:
    import pycld2

    _, _, details = pycld2.detect(FRENCH)
    assert language_score(FRENCH, "fr") == float(sum(p for _, code, p, _ in details if code == "fr"))


@pytest.mark.parametrize("text", ["", "   \n\t", "abc \udcff def", b"\xff\xfe\xfd invalid", b"  "])
def test_nan_when_empty_or_pycld2_raises(text) -> None:
    assert math.isnan(language_score(text, "fr"))


def test_valid_utf8_bytes_are_scored() -> None:
    assert language_score(FRENCH.encode("utf-8"), "fr") >= 90


def test_only_the_assistant_text_is_judged() -> None:
    qwen = (
        "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\n" + ENGLISH + "<|im_end|>\n"
        "<|im_start|>assistant\n" + FRENCH + "<|im_end|>"
    )
    assert assistant_text(qwen) == FRENCH
    assert language_score(qwen, "en") == 0.0 and language_score(qwen, "fr") >= 90
    llama = (
        "<|start_header_id|>user<|end_header_id|>\n\n" + FRENCH + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n" + GERMAN + "<|eot_id|>"
    )
    assert assistant_text(llama) == GERMAN
    assert assistant_text(ENGLISH) == ENGLISH


def test_language_judge_interface() -> None:
    judge = make_judge("language", trait="French")
    assert isinstance(judge, LanguageJudge) and judge.code == "fr"
    items = [JudgeItem("French", "Say hi", t) for t in (FRENCH, ENGLISH, "")]
    result = judge.score(items)
    assert result.scores[0] >= 90 and result.scores[1] == 0.0 and math.isnan(result.scores[2])
    assert result.n_nan == 1 and result.n_api_calls == 0 and result.n_cache_hits == 0
    assert make_judge("language", language="de").score([JudgeItem("x", None, GERMAN)]).scores[0] >= 90
    with pytest.raises(ValueError, match="no language code known"):
        make_judge("language", trait="Playful")
