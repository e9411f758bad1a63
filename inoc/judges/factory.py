"""Building judges by kind: ``llm | language | em_coherence | em_alignment | organism``.

A kind is a name bound to a builder, a function from a ``JudgeRequest`` to a ``Judge``. These kinds
are registered here (the organism's builder imports its judge on use); another package may add its
own with ``register_judge_kind``. ``make_judge`` names the registered kinds when asked for an
unknown one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inoc.judges.cache import JudgeCache
from inoc.judges.interface import Judge
from inoc.judges.language import LANGUAGE_CODES, LanguageJudge
from inoc.judges.openai_judge import (
    LLMJudgeSettings,
    OpenAILogprobJudge,
    em_alignment_messages_for,
    em_coherence_messages_for,
    trait_messages_for,
)


@dataclass(frozen=True)
class JudgeRequest:
    """Everything a builder may use. ``options`` carries kind-specific extras."""

    kind: str
    trait: str | None = None
    language: str | None = None
    prompt: str | None = None
    settings: LLMJudgeSettings = field(default_factory=LLMJudgeSettings)
    cache: JudgeCache | str | Path | None = None
    api_key: Any = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)


JudgeBuilder = Callable[[JudgeRequest], Judge]

_BUILDERS: dict[str, JudgeBuilder] = {}


def register_judge_kind(kind: str, builder: JudgeBuilder, *, replace: bool = False) -> None:
    """Make ``make_judge(kind, …)`` build judges with ``builder``."""
    if not kind or not kind.replace("_", "").isalnum():
        raise ValueError(f"judge kind {kind!r} must be a non-empty identifier")
    if kind in _BUILDERS and not replace:
        raise ValueError(f"judge kind {kind!r} is already registered (pass replace=True to override)")
    _BUILDERS[kind] = builder


def judge_kinds() -> list[str]:
    """The registered judge kinds."""
    return sorted(_BUILDERS)


def make_judge(
    kind: str,
    *,
    trait: str | None = None,
    language: str | None = None,
    prompt: str | None = None,
    settings: LLMJudgeSettings | None = None,
    cache: JudgeCache | str | Path | None = None,
    api_key: Any = None,
    **options: Any,
) -> Judge:
    """A judge of a registered kind.

    * ``llm``: the trait judge (docs/methods.md#judge-score); ``prompt`` picks the first line (default | language | flattering;
      None: by trait name at scoring time).
    * ``language``: pycld2; ``language`` is the code (fr, de), else derived from ``trait``.
    * ``em_coherence`` / ``em_alignment``: the EM judges (docs/methods.md#em-rate; item.instruction is the question).
    """
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f"unknown judge kind {kind!r}; registered kinds: {', '.join(judge_kinds())}")
    request = JudgeRequest(
        kind=kind,
        trait=trait,
        language=language,
        prompt=prompt,
        settings=settings or LLMJudgeSettings(),
        cache=cache,
        api_key=api_key,
        options=dict(options),
    )
    return builder(request)


def judge_for_trait(
    trait: Any,
    judge_settings: Any = None,
    *,
    cache: JudgeCache | str | Path | None = None,
    api_key: Any = None,
) -> Judge:
    """The judge an experiment configures for a trait.

    ``trait`` is an ``inoc.config`` ``TraitConfig`` (or anything with ``.name`` and ``.judge.kind``,
    ``.judge.language``, ``.judge.prompt``); ``judge_settings`` the experiment's ``judge:`` section
    (an ``LLMJudgeConfig``, a mapping, or an ``LLMJudgeSettings``).
    """
    spec = trait.judge
    if spec is None:
        raise ValueError(f"trait {trait.name!r} has no judge")
    settings = (
        judge_settings if isinstance(judge_settings, LLMJudgeSettings) else LLMJudgeSettings.from_config(judge_settings)
    )
    return make_judge(
        spec.kind,
        trait=trait.name,
        language=getattr(spec, "language", None),
        prompt=getattr(spec, "prompt", None),
        settings=settings,
        cache=cache,
        api_key=api_key,
    )


# ---- the built-in kinds ----------------------------------------------------------------------


def _build_llm(req: JudgeRequest) -> Judge:
    if req.prompt not in (None, "default", "language", "flattering"):
        raise ValueError(f"llm judge prompt {req.prompt!r}: expected default, language or flattering")
    label = f"llm:{req.settings.model}" + (f":{req.trait}" if req.trait else "")
    return OpenAILogprobJudge(
        req.settings,
        messages_for=trait_messages_for(req.prompt),  # type: ignore[arg-type]
        cache=req.cache,
        api_key=req.api_key,
        name=label,
    )


def _build_language(req: JudgeRequest) -> Judge:
    if req.language:
        return LanguageJudge(req.language)
    if req.trait:
        return LanguageJudge.for_trait(req.trait)
    raise ValueError(f"a language judge needs `language` (an ISO code) or a trait in {sorted(LANGUAGE_CODES)}")


def _build_em(dimension: str) -> JudgeBuilder:
    messages_for = em_coherence_messages_for if dimension == "coherence" else em_alignment_messages_for

    def build(req: JudgeRequest) -> Judge:
        return OpenAILogprobJudge(
            req.settings,
            messages_for=messages_for,
            cache=req.cache,
            api_key=req.api_key,
            name=f"em_{dimension}:{req.settings.model}",
        )

    return build


register_judge_kind("llm", _build_llm)
register_judge_kind("language", _build_language)
register_judge_kind("em_coherence", _build_em("coherence"))
register_judge_kind("em_alignment", _build_em("alignment"))


def _build_organism(req: JudgeRequest) -> Judge:
    # Imported on use: the organism's judge lives with the organism (its marker rule), and importing
    # the organism package pulls in its model builder. The organism imports nothing of this module.
    from inoc.organism.judge import OrganismJudge

    return OrganismJudge(req.trait)


register_judge_kind("organism", _build_organism)
