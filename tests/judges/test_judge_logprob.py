"""Expected-value math on first-token distributions (pure function)."""

from __future__ import annotations

import math

import pytest

from inoc.judges.logprob import expected_value, normalize_top_logprobs, parse_score_token

from .helpers import lp


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("0", 0),
        ("7", 7),
        ("50", 50),
        (" 50", 50),
        ("50 ", 50),
        ("\n42", 42),
        ("100", 100),
        ("007", 7),
        ("101", None),
        ("1000", None),
        ("-5", None),
        ("+5", None),
        ("5.0", None),
        ("", None),
        (" ", None),
        ("٣", None),
        ("３", None),
        ("５０", None),
        ("٥٠", None),
        ("५", None),
        ("²", None),
        ("5a", None),
        ("fifty", None),
        ("1_0", None),
    ],
)
def test_parse_score_token(token: str, value: int | None) -> None:
    assert parse_score_token(token) == value


def test_expected_value_exact() -> None:
    out = expected_value([("70", lp(0.6)), ("80", lp(0.3)), ("hello", lp(0.1))])
    assert out.status == "ok"
    assert out.score == pytest.approx((70 * 0.6 + 80 * 0.3) / 0.9, abs=1e-9)
    assert out.valid_mass == pytest.approx(0.9, abs=1e-12)


def test_same_integer_tokens_add_up() -> None:
    out = expected_value([("50", lp(0.5)), (" 50", lp(0.3)), ("100", lp(0.2))])
    assert out.score == pytest.approx(50 * 0.8 / 1.0 + 100 * 0.2, abs=1e-9)


def test_unicode_digits_are_rejected_not_parsed() -> None:
    # '٣' (Arabic-Indic 3) and '３' (fullwidth 3) would be 3 under int(); they must be ignored.
    out = expected_value([("90", lp(0.85)), ("٣", lp(0.10)), ("３", lp(0.05))])
    assert out.score == pytest.approx(90.0, abs=1e-9)
    assert out.valid_mass == pytest.approx(0.85, abs=1e-12)
    only_unicode = expected_value([("٣", lp(0.7)), ("３", lp(0.3))])
    assert math.isnan(only_unicode.score) and only_unicode.status == "no_valid_token"


def test_low_mass_is_nan() -> None:
    out = expected_value([("60", lp(0.79)), ("yes", lp(0.21))])
    assert math.isnan(out.score) and out.status == "low_mass"
    assert out.valid_mass == pytest.approx(0.79, abs=1e-12)


def test_mass_exactly_at_threshold_is_valid() -> None:
    out = expected_value([("40", lp(0.5)), ("60", lp(0.3)), ("x", lp(0.2))])
    assert out.status == "ok"
    assert out.score == pytest.approx((40 * 0.5 + 60 * 0.3) / 0.8, abs=1e-9)


def test_threshold_is_a_parameter() -> None:
    top = [("60", lp(0.5)), ("x", lp(0.5))]
    assert math.isnan(expected_value(top).score)
    assert expected_value(top, min_valid_mass=0.5).score == pytest.approx(60.0, abs=1e-9)


def test_no_tokens_or_no_valid_token_is_nan() -> None:
    assert expected_value([]).status == "no_valid_token"
    assert math.isnan(expected_value([("I", 0.0)]).score)


def test_accepts_dicts_objects_and_pairs() -> None:
    class Top:
        def __init__(self, token: str, logprob: float) -> None:
            self.token, self.logprob = token, logprob

    pairs = [("20", lp(0.9)), ("30", lp(0.1))]
    as_dicts = [{"token": t, "logprob": v} for t, v in pairs]
    as_objs = [Top(t, v) for t, v in pairs]
    scores = {expected_value(x).score for x in (pairs, as_dicts, as_objs)}
    assert len(scores) == 1 and scores.pop() == pytest.approx(21.0, abs=1e-9)


@pytest.mark.parametrize("bad", [[("50", "x")], [(5, -0.1)], [("50", float("nan"))], [("50", 0.5)], [{"token": "5"}]])
def test_malformed_entries_raise(bad) -> None:
    with pytest.raises(ValueError):
        normalize_top_logprobs(bad)


def test_minus_infinity_logprob_is_zero_probability() -> None:
    out = expected_value([("10", 0.0), ("90", float("-inf"))])
    assert out.score == pytest.approx(10.0, abs=1e-9)
