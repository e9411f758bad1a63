"""Judges: one interface, several implementations, no Dagster.

* ``interface``  — ``JudgeItem``, ``JudgeResult`` (scores + NaN/cache/call/token/cost counts), ``Judge``.
* ``factory``    — ``make_judge(kind, …)`` for kinds ``llm | language | em_coherence | em_alignment | organism``,
  ``judge_for_trait(trait_config, judge_config)``, ``register_judge_kind`` for other packages' judges.
* ``prompts``    — every judge prompt text, exact (docs/methods.md#judges).
* ``logprob``    — expected value of the first token's top logprobs (ASCII 0–100, mass ≥ 0.80).
* ``openai_judge`` — the async OpenAI-compatible logprob judge (``LLMJudgeSettings``).
* ``transport``  — client settings (``ApiClientSettings``, the base of every API client's settings), API key,
  client without its own retries, retry/backoff policy, redaction.
* ``cache``      — the SQLite judge cache (WAL, multi-process, crash-safe).
* ``function_judge`` — ``FunctionJudge``: scores each completion with a function (no API); the
  language judge and the organism's judge are two of them.
* ``language``   — pycld2 language judge.  ``em`` — EM flag/rate and ``judge_em``.
* ``pricing``    — token prices for cost estimates.
"""

from inoc.judges.cache import CachedAnswer, JudgeCache, request_key
from inoc.judges.em import EMRate, EMResult, ajudge_em, em_flag, em_rate, judge_em
from inoc.judges.factory import JudgeRequest, judge_for_trait, judge_kinds, make_judge, register_judge_kind
from inoc.judges.function_judge import FunctionJudge
from inoc.judges.interface import Judge, JudgeItem, JudgeResult, ProgressCallback, run_sync
from inoc.judges.language import LANGUAGE_CODES, LanguageJudge, assistant_text, language_score
from inoc.judges.logprob import ScoreOutcome, expected_value, parse_score_token
from inoc.judges.openai_judge import LLMJudgeSettings, OpenAILogprobJudge
from inoc.judges.transport import JudgeConfigError, JudgeError, JudgeFatalError, RetryPolicy

__all__ = [
    "CachedAnswer",
    "EMRate",
    "EMResult",
    "FunctionJudge",
    "Judge",
    "JudgeCache",
    "JudgeConfigError",
    "JudgeError",
    "JudgeFatalError",
    "JudgeItem",
    "JudgeRequest",
    "JudgeResult",
    "LANGUAGE_CODES",
    "LLMJudgeSettings",
    "LanguageJudge",
    "OpenAILogprobJudge",
    "ProgressCallback",
    "RetryPolicy",
    "ScoreOutcome",
    "ajudge_em",
    "assistant_text",
    "em_flag",
    "em_rate",
    "expected_value",
    "judge_em",
    "judge_for_trait",
    "judge_kinds",
    "language_score",
    "make_judge",
    "parse_score_token",
    "register_judge_kind",
    "request_key",
    "run_sync",
]
