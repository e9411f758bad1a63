"""Which candidates to train next: stated rules over the predicted suppression and its interval."""

from __future__ import annotations

import math

import pandas as pd

from inoc.propose.generate import ProposeError

#: rule → what it picks (shown to the user with the choice).
RULES = {
    "ucb": "the highest upper bounds of the predicted suppression: optimism where the model is unsure",
    "greedy": "the highest predicted suppression",
    "explore": "the widest prediction intervals: the prompts the model knows least about",
    "mixed": "half by the highest prediction, half by the widest interval among the rest",
    "extremes": "half the highest and half the lowest predictions: a test of the ranking itself",
}


def select(table: pd.DataFrame, k: int, rule: str, prefix_type: str = "fixed") -> list[str]:
    """``k`` prompt keys of ``table`` (columns prompt_key, prediction_<type>, lo_<type>, hi_<type>) by ``rule``.
    Candidates without a finite prediction are never picked."""
    if rule not in RULES:
        raise ProposeError(f"--rule {rule!r}: expected one of {', '.join(RULES)}")
    cols = [f"{c}_{prefix_type}" for c in ("prediction", "lo", "hi")]
    missing = [c for c in cols if c not in table]
    if missing:
        raise ProposeError(
            f"no {prefix_type} predictions (columns {missing} absent); is {prefix_type} one of the "
            "study's inoculation.prefix_types?"
        )
    t = table[["prompt_key", *cols]].rename(columns=dict(zip(cols, ("pred", "lo", "hi"))))
    t = t[t.pred.map(lambda v: isinstance(v, float) and math.isfinite(v))]
    if k < 1 or k > len(t):
        raise ProposeError(f"--select {k}: expected 1 to {len(t)} (the candidates with a {prefix_type} prediction)")
    t = t.assign(width=t.hi - t.lo)
    if rule == "ucb":
        return list(t.sort_values(["hi", "pred"], ascending=False).prompt_key[:k])
    if rule == "greedy":
        return list(t.sort_values("pred", ascending=False).prompt_key[:k])
    if rule == "explore":
        return list(t.sort_values(["width", "pred"], ascending=False).prompt_key[:k])
    top = list(t.sort_values("pred", ascending=False).prompt_key[: math.ceil(k / 2)])
    rest = t[~t.prompt_key.isin(top)]
    if rule == "mixed":
        return top + list(rest.sort_values(["width", "pred"], ascending=False).prompt_key[: k - len(top)])
    return top + list(rest.sort_values("pred").prompt_key[: k - len(top)])  # extremes
