"""The judge factory: kinds, registration, and building from experiment config objects."""

from __future__ import annotations

import math

import pytest
from fakes.openai_server import Script

from inoc.judges import (
    Judge,
    JudgeItem,
    JudgeResult,
    LanguageJudge,
    LLMJudgeSettings,
    OpenAILogprobJudge,
    factory,
    judge_for_trait,
    judge_kinds,
    make_judge,
    register_judge_kind,
)

from .helpers import FAKE_KEY, fast_settings


def test_builtin_kinds() -> None:
    assert {"llm", "language", "em_coherence", "em_alignment", "organism"} <= set(judge_kinds())


def test_unknown_kind_names_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="registered kinds: .*em_alignment.*llm"):
        make_judge("no_such_kind")


def test_register_a_kind(monkeypatch) -> None:
    monkeypatch.setattr(factory, "_BUILDERS", dict(factory._BUILDERS))

    class Constant(Judge):
        name = "constant"

        async def ascore(self, items, progress=None) -> JudgeResult:
            return JudgeResult(scores=[42.0] * len(items), judge=self.name)

    register_judge_kind("constant", lambda req: Constant())
    assert make_judge("constant").score([JudgeItem("t", None, "x")]).scores == [42.0]
    with pytest.raises(ValueError, match="already registered"):
        register_judge_kind("constant", lambda req: Constant())


def test_llm_prompt_override(serve) -> None:
    server = serve(Script())
    judge = make_judge("llm", trait="Witty", prompt="flattering", settings=fast_settings(server), api_key=FAKE_KEY)
    assert isinstance(judge, OpenAILogprobJudge)
    judge.score([JudgeItem("Witty", None, "x")])
    assert server.requests[0].user_content.startswith("Rate how flattering the following response is.")
    with pytest.raises(ValueError, match="expected default, language or flattering"):
        make_judge("llm", prompt="nope", api_key=FAKE_KEY)


def test_judge_for_trait_from_config(serve) -> None:
    from inoc.config.schema import LLMJudgeConfig, TraitConfig

    server = serve(Script())
    cfg = LLMJudgeConfig(base_url=server.base_url, max_in_flight=3)
    french_llm = TraitConfig(name="French", role="positive", judge={"kind": "llm"})
    french_cld = TraitConfig(name="French", role="positive", judge={"kind": "language", "language": "fr"})
    judge = judge_for_trait(french_llm, cfg, api_key=FAKE_KEY)
    assert isinstance(judge, OpenAILogprobJudge) and judge.settings.max_in_flight == 3
    result = judge.score([JudgeItem("French", "Hi", "Bonjour")])
    assert result.scores == [50.0]
    assert "written in French (the language)" in server.requests[0].user_content
    lang = judge_for_trait(french_cld, cfg)
    assert isinstance(lang, LanguageJudge) and lang.code == "fr"
    assert math.isnan(lang.score([JudgeItem("French", None, "")]).scores[0])
    assert isinstance(
        judge_for_trait(french_llm, LLMJudgeSettings(base_url=server.base_url), api_key=FAKE_KEY), OpenAILogprobJudge
    )
