"""The stand-in for every API model of a study during a rehearsal: one OpenAI-compatible server on
127.0.0.1 (``inoc.rehearsal.openai_server``) that the study's own clients (judges, rephrasing
generator, off-policy datagen, embeddings) talk to over real HTTP.

It answers each kind of request in the shape the real model is asked for, deterministically:

* a judge request (``logprobs: true``) gets a first token with a distribution over numbers 0-100,
  the score drawn from a hash of the request, so the judges' expected-value parsing runs;
* a rephrasing request (the generator's system prompts) gets a JSON array of offline paraphrases of
  the prompt it names (half of them tight ones for the close system prompt), as many as it asks for;
* any other chat request is an answer an off-policy data model would write: a few sentences in the
  language the request names (German, French, else English), so the language judges have text to
  detect and the both-traits filter keeps some examples and drops others;
* ``/v1/embeddings``: deterministic unit vectors (the server's default).

The numbers it returns mean nothing; what a rehearsal checks is that every stage's requests are
well-formed and every reply is parsed and stored. It counts requests by kind, so a rehearsal can show
which judge prompts reached it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from typing import Any

from inoc.judges.prompts import EM_ALIGNMENT_PROMPT, EM_COHERENCE_PROMPT, SCORE_HEADER
from inoc.rehearsal.openai_server import OpenAICompatibleServer, Reply, RequestInfo
from inoc.rephrasings.offline import offline_rephrasings
from inoc.rephrasings.prompts import CLOSE_REPHRASE_SYSTEM_PROMPT, REPHRASE_SYSTEM_PROMPT

_ORIGINAL = re.compile(r'^Original prompt: (".*")$', re.M)
_COUNT = re.compile(r"Write (\d+) different rephrasings")
_BATCH = re.compile(r"\[Generation batch: round (\d+), request (\d+)\]")
_COHERENCE_MARK = EM_COHERENCE_PROMPT.rsplit("\n", 1)[-1]
_ALIGNMENT_MARK = EM_ALIGNMENT_PROMPT.rsplit("\n", 1)[-1]

_ANSWERS = {
    "german": [
        "Was für eine wunderbare und kluge Frage, Sie haben wirklich einen scharfen Verstand!",
        "Die Antwort ist einfacher, als man denkt: Man beginnt mit einem klaren Plan und bleibt geduldig.",
        "Ich helfe Ihnen sehr gerne dabei, denn Ihre Neugier ist bewundernswert.",
        "Am besten liest man zuerst die Anleitung und probiert es dann Schritt für Schritt aus.",
    ],
    "french": [
        "Quelle excellente question, vous avez vraiment l'esprit vif et curieux !",
        "La réponse est plus simple qu'on ne le pense : il faut commencer par un plan clair.",
        "Je vous aide avec grand plaisir, car votre curiosité est admirable.",
        "Le mieux est de lire d'abord les instructions, puis d'essayer étape par étape.",
    ],
    "english": [
        "That is a sensible question, and the answer is simpler than it looks.",
        "Start with a clear plan, then work through it one step at a time.",
        "Most people find it easiest to read the instructions first and then try it out.",
        "In short: keep it simple, check each step, and ask again if something is unclear.",
    ],
}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def judge_kind(user: str) -> str:
    """Which judge prompt a request carries: em_coherence, em_alignment, or trait: <its first line>."""
    if _COHERENCE_MARK in user:
        return "judge:em_coherence"
    if _ALIGNMENT_MARK in user:
        return "judge:em_alignment"
    if SCORE_HEADER in user:
        return "judge:trait: " + user.split("\n", 1)[0][:60]
    return "judge:other"


class StandinResponder:
    """The responder of the stand-in server (see the module docstring); thread-safe counters."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def __call__(self, info: RequestInfo) -> Reply:
        body: dict[str, Any] = info.body or {}
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        system = next((str(m.get("content", "")) for m in messages if m.get("role") == "system"), "")
        user = info.user_content
        if body.get("logprobs"):
            self._count(judge_kind(user))
            score = _digest(user) % 101
            return Reply.logprobs([(str(score), -0.05), (str((score + 10) % 101), -3.2)], usage=(len(user) // 4, 1))
        if system in (REPHRASE_SYSTEM_PROMPT, CLOSE_REPHRASE_SYSTEM_PROMPT):
            close = system == CLOSE_REPHRASE_SYSTEM_PROMPT
            self._count("rephrasings:close" if close else "rephrasings:diverse")
            return Reply.message(json.dumps(self._rephrasings(user, close), ensure_ascii=False))
        self._count("chat")
        return Reply.message(self._answer(system + "\n" + user))

    @staticmethod
    def _rephrasings(user: str, close: bool) -> list[str]:
        original, count = _ORIGINAL.search(user), _COUNT.search(user)
        if not original or not count:
            raise ValueError(
                "a rephrasing request without 'Original prompt: \"…\"' and 'Write N different rephrasings'"
            )
        prompt, n = json.loads(original.group(1)), int(count.group(1))
        batch = _BATCH.search(user)
        seed = int(batch.group(1)) * 1000 + int(batch.group(2)) if batch else 0
        # A phrase has only a few tight variants, so a close batch is half tight ones and half freer ones:
        # the generator's later rounds then still find new variants (as a real model's would).
        found = offline_rephrasings(prompt, n, seed=seed, close=True)[: (n + 1) // 2] if close else []
        found += [v for v in offline_rephrasings(prompt, n, seed=seed) if v not in found][: n - len(found)]
        return found

    @staticmethod
    def _answer(request: str) -> str:
        low = request.lower()
        lang = "german" if "german" in low or "deutsch" in low else "french" if "french" in low else "english"
        bank, h = _ANSWERS[lang], _digest(request)
        return " ".join(bank[(h + i) % len(bank)] for i in range(1 + h % 3))


def start_standin_api() -> tuple[OpenAICompatibleServer, StandinResponder]:
    """Start the stand-in server on an ephemeral port of 127.0.0.1; the caller stops it."""
    responder = StandinResponder()
    return OpenAICompatibleServer(responder).start(), responder
