"""Candidate inoculation prompts for one trait, made through the study's own rephrasing source.

Seeds are the study's prompts of the trait's family; for the model organism also every cue of its
vocabulary about that trait (strong, medium and weak tiers, seen and held out: `inoc.organism.cues`), so
the candidates span a range of elicitation. Each seed is paraphrased (`rephrasings.source`: the offline
paraphraser for the organism, the configured OpenAI-compatible endpoint for `generate`) and candidates are
taken round-robin over the seeds, skipping texts the study already has. Deterministic for the offline source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from inoc.config import ExperimentConfig

#: Candidate keys: `<family>_cand<round>_<nn>` (a prompt-key slug).
KEY_FORMAT = "{family}_cand{round}_{n:02d}"


class ProposeError(ValueError):
    """A request `inoc propose` cannot carry out; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    key: str
    text: str
    seed: str  # the text it paraphrases


def trait_group(cfg: ExperimentConfig, trait: str) -> tuple[str, str, str]:
    """(role, family, candidate group name) of a trait of the study; raises ProposeError naming the traits."""
    match = next((t for t in cfg.traits if t.name.lower() == trait.lower()), None)
    if match is None or match.role not in ("positive", "negative"):
        names = ", ".join(t.name for t in cfg.traits if t.role in ("positive", "negative"))
        raise ProposeError(f"{cfg.name}: no trait {trait!r} with a role (the study's traits: {names})")
    families = [g.family for g in cfg.groups.values() if g.role == match.role]
    if not families:
        raise ProposeError(f"{cfg.name}: no prompt group has role {match.role!r} ({match.name}); add one to seed from")
    family = max(set(families), key=families.count)
    return match.role, family, f"{family}_candidates"


def seeds(cfg: ExperimentConfig, trait: str) -> list[str]:
    """The texts to paraphrase: the study's prompts of the trait's family (negations left out: they elicit the
    opposite), then, for the organism, its cues about the trait."""
    role, family, _ = trait_group(cfg, trait)
    out = [
        cfg.prompts[k]
        for name, g in cfg.groups.items()
        if g.role == role and g.family == family
        for k in g.prompts
        if k not in cfg.candidates and not _negated(cfg.prompts[k])
    ]
    if cfg.rephrasings.source == "organism":
        from inoc.organism.cues import SPEC_CUES

        out += [
            c.text
            for c in SPEC_CUES
            if c.trait and c.trait.lower() == trait.lower() and c.tier in ("strong", "medium", "weak")
        ]
    return list(dict.fromkeys(out))


def _negated(text: str) -> bool:
    return bool(re.search(r"\b(not|don't|do not|never)\b", text, re.I))


def paraphraser(cfg: ExperimentConfig) -> Callable[[str, int], list[str]]:
    """`fn(seed, n) -> n paraphrases` through the study's rephrasing source."""
    r = cfg.rephrasings
    if r.source == "organism":
        from inoc.rephrasings.offline import OfflineParaphraser

        para = OfflineParaphraser(seed=cfg.inoculation.mix_seed + 1)  # not the mix pools' draw
        return lambda text, n: para.paraphrases(text, min(n, para.variant_count(text) - 1))
    if r.source == "generate":
        from inoc.rephrasings.generate import RephrasingSettings, generate_rephrasings

        settings = RephrasingSettings.from_config(r, close=False, temperature=r.temperature)
        return lambda text, n: generate_rephrasings(text, n, settings).rephrasings
    raise ProposeError(
        f"{cfg.name}: rephrasings.source is {r.source!r}; proposing needs a source that makes new "
        "text ('organism' or 'generate')"
    )


def propose(
    cfg: ExperimentConfig, trait: str, n: int, round_: int, paraphrase: Callable[[str, int], list[str]] | None = None
) -> list[Candidate]:
    """``n`` new candidates for ``trait``, keyed for round ``round_``."""
    if n < 1:
        raise ProposeError(f"--n must be at least 1, got {n}")
    _, family, _ = trait_group(cfg, trait)
    pool = seeds(cfg, trait)
    if not pool:
        raise ProposeError(f"{cfg.name}: no prompt of the {family} family to paraphrase; add one to the YAML")
    paraphrase = paraphrase or paraphraser(cfg)
    per_seed = -(-n // len(pool)) + 2  # a few spare: some collide with existing texts
    variants = {s: paraphrase(s, per_seed) for s in pool}
    taken = {t.strip().lower() for t in cfg.prompts.values()}
    out: list[Candidate] = []
    for i in range(per_seed):
        for s in pool:
            if len(out) == n:
                return out
            if i < len(variants[s]) and (text := variants[s][i].strip()) and text.lower() not in taken:
                taken.add(text.lower())
                key = KEY_FORMAT.format(family=family, round=round_, n=len(out) + 1)
                if key in cfg.prompts:
                    raise ProposeError(
                        f"{cfg.name}: prompt key {key!r} already exists; round {round_} was proposed "
                        "before (use the next round)"
                    )
                out.append(Candidate(key, text, s))
    if len(out) < n:
        raise ProposeError(
            f"only {len(out)} distinct new candidates could be made from {len(pool)} seed(s); ask for fewer"
        )
    return out


def next_round(cfg: ExperimentConfig, family: str) -> int:
    """1 + the highest round among the study's `<family>_cand<round>_<nn>` keys."""
    rounds = [int(m.group(1)) for k in cfg.prompts if (m := re.fullmatch(rf"{re.escape(family)}_cand(\d+)_\d+", k))]
    return max(rounds, default=0) + 1
