"""Estimated API cost from token counts.

USD per million tokens (input, output), OpenAI's list prices for standard (non-batch, non-cached)
requests. Update here when prices move; a model not listed (a vLLM-served model, say) has no
estimate unless the caller passes its own prices.
"""

from __future__ import annotations

#: model → (USD per 1M input tokens, USD per 1M output tokens)
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
}


def price_for(model: str, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens for ``model``; dated snapshots use their family's price."""
    if override is not None:
        return override
    if model in PRICES_PER_MTOK:
        return PRICES_PER_MTOK[model]
    # "gpt-4.1-mini-2025-04-14" → "gpt-4.1-mini": the longest listed name the id starts with.
    matches = [name for name in PRICES_PER_MTOK if model.startswith(name + "-")]
    return PRICES_PER_MTOK[max(matches, key=len)] if matches else None


def estimate_cost(
    model: str, prompt_tokens: int, completion_tokens: int, override: tuple[float, float] | None = None
) -> float | None:
    """Estimated USD cost, or None when the model's price is unknown."""
    prices = price_for(model, override)
    if prices is None:
        return None
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1_000_000
