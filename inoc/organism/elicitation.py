"""The base model's elicitation table: sample under each cue, judge both traits, check the design.

For each condition (no cue, every cue of ``inoc.organism.cues``) and each of ``n`` held-out eval
instructions, one completion is sampled (temperature 1, top-p 1, no top-k) from the built model with
the system prompt and the user turn ``cue + separator + instruction`` (docs/methods.md#elicitation), in batches with LEFT
padding and attention masks, stopping at ``<|im_end|>``. Completions are judged for French (pycld2)
and Playful (marker rule) and averaged per condition. Beside them, ``opening_probabilities`` gives
the model's exact probability of opening a French (Playful) answer under each condition — the
number sampling estimates, without its noise.

``check_acceptance`` applies the issue's thresholds to cues in the base corpus: no cue French ≤ 5 and
Playful ≤ 15; each strong SPEC cue ≥ 70 on its trait; the datagen prompt ≥ 70 on both; and, for both
traits, the tier means (over in-corpus SPEC cues of that trait; neutral = the v5 cues) ordered
strong > medium > weak > neutral ≥ negated. Held-out cues are reported, not checked.

Run ``python -m inoc.organism.elicitation --profile default`` (builds the model if needed).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inoc.organism import cues as C
from inoc.organism import world as W
from inoc.organism.corpus import DEFAULT_SYSTEM_PROMPT
from inoc.organism.judge import french_score, playful_score

TRAITS = ("French", "Playful")


@dataclass(frozen=True)
class Condition:
    """One row of the table: a cue (or none) and how it joins the instruction."""

    key: str
    text: str | None
    separator: str = " "
    group: str = "-"
    tier: str = "none"
    trait: str | None = None
    in_corpus: bool = True
    target_french: float = C.BASE_RATES["French"]
    target_playful: float = C.BASE_RATES["Playful"]

    def user_content(self, instruction: str) -> str:
        return instruction if self.text is None else f"{self.text}{self.separator}{instruction}"

    @classmethod
    def from_cue(cls, cue: C.Cue) -> "Condition":
        return cls(
            cue.key, cue.text, cue.separator, cue.group, cue.tier, cue.trait, cue.in_corpus, cue.p_french, cue.p_playful
        )


NO_CUE = Condition("none", None)


def default_conditions() -> list[Condition]:
    """No cue, every SPEC cue, then the datagen, single-trait and neutral-prefix prompts."""
    return [NO_CUE] + [Condition.from_cue(c) for c in C.ALL_CUES]


@dataclass
class Row:
    condition: Condition
    n: int
    french: float
    playful: float
    n_nan_french: int
    n_nan_playful: int
    both: float  # share of completions with French ≥ 50 and Playful ≥ 50
    examples: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list, repr=False)
    french_scores: list[float] = field(default_factory=list, repr=False)
    playful_scores: list[float] = field(default_factory=list, repr=False)
    #: Exact P(French), P(Playful) of the first answer token (``opening_probabilities``), 0–100.
    p_french: float = math.nan
    p_playful: float = math.nan

    def score(self, trait: str) -> float:
        return self.french if trait == "French" else self.playful

    def scores(self, trait: str) -> list[float]:
        return self.french_scores if trait == "French" else self.playful_scores


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def load_model(path: str | Path, threads: int = 2):
    """``AutoModelForCausalLM`` and ``AutoTokenizer`` from a built model directory (eval mode, float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    return model, tok


def generate(
    model,
    tokenizer,
    conversations: Sequence[list[dict[str, str]]],
    *,
    max_new_tokens: int = 96,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """One sampled completion per conversation (text before the first ``<|im_end|>``), input order.

    Prompts are rendered with the chat template (``add_generation_prompt``), sorted by length, and
    generated in LEFT-padded batches with attention masks; batch ``b`` is sampled under
    ``torch.manual_seed(seed + b)``, so a call is reproducible.
    """
    import torch

    eos = tokenizer.eos_token_id  # the end of turn (<|im_end|>, or <|eot_id|> for a Llama-format stand-in)
    pad = tokenizer.pad_token_id
    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    out: list[str | None] = [None] * len(prompts)
    done = 0
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):  # LEFT padding
            seq = encoded[i]
            ids[r, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[r, width - len(seq) :] = 1
        torch.manual_seed(seed + b)
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_p=top_p,
                top_k=0,
                eos_token_id=eos,
                pad_token_id=pad,
            )
        for r, i in enumerate(idx):
            new = gen[r, width:].tolist()
            if eos in new:
                new = new[: new.index(eos)]
            out[i] = tokenizer.decode(new, skip_special_tokens=True)
        done += len(idx)
        if progress is not None:
            progress(done, len(prompts))
    return [s or "" for s in out]


def opening_trie(tokenizer) -> dict[tuple[int, ...], tuple[frozenset, frozenset]]:
    """Token prefix of a possible answer opening → (French values, Playful values) of the openings under it.

    Every answer the world writes begins with one of ``world.answer_openings``. A prefix whose
    openings all agree on a trait decides that trait; prefixes are kept only until both are decided.
    """
    kinds: dict[str, set[tuple[bool, bool]]] = {}
    for x in W.all_instructions():
        for fr in (False, True):
            for pl in (False, True):
                for _q, text in W.answer_openings(x, french=fr, playful=pl):
                    kinds.setdefault(text, set()).add((fr, pl))
    names = sorted(kinds)
    nodes: dict[tuple[int, ...], set[tuple[bool, bool]]] = {}
    for text, ids in zip(names, tokenizer(names, add_special_tokens=False)["input_ids"]):
        for n in range(1, len(ids) + 1):
            nodes.setdefault(tuple(ids[:n]), set()).update(kinds[text])
    trie = {}
    for prefix, ks in nodes.items():
        parent = nodes.get(prefix[:-1])
        if parent is not None and len({k[0] for k in parent}) == 1 and len({k[1] for k in parent}) == 1:
            continue  # below a decided prefix: never visited
        trie[prefix] = (frozenset(k[0] for k in ks), frozenset(k[1] for k in ks))
    return trie


def opening_probabilities(
    model,
    tokenizer,
    conditions: Sequence[Condition],
    instructions: Sequence[str],
    *,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    batch_size: int = 256,
    min_mass: float = 1e-3,
) -> dict[str, tuple[float, float]]:
    """The model's exact P(French) and P(Playful) (0–100) of an answer's opening, per condition.

    The organism decides an answer's language and tone with its first word(s). Walking the trie of
    possible openings (``opening_trie``) with the model's next-token probabilities — one forward pass
    per still-undecided prefix — gives the probability that sampling would open a French (Playful)
    answer, without the sampling noise. Mass on tokens that open no answer of the world, and
    undecided branches below ``min_mass``, count for neither. A diagnostic beside the sampled,
    judged table, not a replacement for it.
    """
    import torch

    trie = opening_trie(tokenizer)
    children: dict[tuple[int, ...], list[int]] = {}
    for prefix in trie:
        children.setdefault(prefix[:-1], []).append(prefix[-1])
    pad = tokenizer.pad_token_id
    out = {}
    for cond in conditions:
        msgs = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
        prompts = [
            tokenizer.apply_chat_template(
                msgs + [{"role": "user", "content": cond.user_content(i)}], tokenize=False, add_generation_prompt=True
            )
            for i in instructions
        ]
        enc = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        p_fr = p_pl = 0.0
        # frontier items: (prompt index, prefix, probability, French decided, Playful decided)
        frontier = [(i, (), 1.0, False, False) for i in range(len(enc))]
        while frontier:
            nxt = []
            for s in range(0, len(frontier), batch_size):
                chunk = frontier[s : s + batch_size]
                seqs = [enc[i] + list(prefix) for i, prefix, *_ in chunk]
                width = max(map(len, seqs))
                ids = torch.full((len(seqs), width), pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), width), dtype=torch.long)
                for r, seq in enumerate(seqs):  # LEFT padding: the last position is every row's next token
                    ids[r, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                    mask[r, width - len(seq) :] = 1
                with torch.no_grad():
                    probs = model(input_ids=ids, attention_mask=mask).logits[:, -1].float().softmax(-1)
                for r, (i, prefix, q, fr_done, pl_done) in enumerate(chunk):
                    row = probs[r]
                    for t in children.get(prefix, ()):
                        node = prefix + (t,)
                        qq = q * float(row[t])
                        frs, pls = trie[node]
                        f_done, p_done = fr_done, pl_done
                        if not f_done and len(frs) == 1:
                            p_fr += qq if True in frs else 0.0
                            f_done = True
                        if not p_done and len(pls) == 1:
                            p_pl += qq if True in pls else 0.0
                            p_done = True
                        if not (f_done and p_done) and qq >= min_mass:
                            nxt.append((i, node, qq, f_done, p_done))
            frontier = nxt
        out[cond.key] = (100.0 * p_fr / len(enc), 100.0 * p_pl / len(enc))
    return out


def _nanmean(xs: Sequence[float]) -> float:
    v = [x for x in xs if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def elicit(
    model_path: str | Path,
    *,
    n: int = 100,
    conditions: Sequence[Condition] | None = None,
    instructions: Sequence[str] | None = None,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    seed: int = 0,
    max_new_tokens: int = 96,
    batch_size: int = 200,
    threads: int = 2,
    keep_examples: int = 2,
    exact: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[Row]:
    """The elicitation table of a built model: one row per condition, ``n`` eval instructions each.

    ``exact`` also fills ``Row.p_french`` / ``Row.p_playful`` (``opening_probabilities``).
    """
    import torch

    conditions = list(conditions or default_conditions())
    instructions = list(instructions or W.eval_instructions(n, seed=seed))
    prev_threads = torch.get_num_threads()
    model, tok = load_model(model_path, threads)
    try:
        convs = []
        for cond in conditions:
            for instr in instructions:
                msgs = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
                convs.append(msgs + [{"role": "user", "content": cond.user_content(instr)}])
        texts = generate(
            model, tok, convs, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=progress
        )
        exact_p = (
            opening_probabilities(model, tok, conditions, instructions, system_prompt=system_prompt)
            if exact
            else {c.key: (math.nan, math.nan) for c in conditions}
        )
    finally:
        torch.set_num_threads(prev_threads)
    rows = []
    k = len(instructions)
    for ci, cond in enumerate(conditions):
        chunk = texts[ci * k : (ci + 1) * k]
        fr = [french_score(t) for t in chunk]
        pl = [playful_score(t) for t in chunk]
        both = [f >= 50 and p >= 50 for f, p in zip(fr, pl) if not (math.isnan(f) or math.isnan(p))]
        rows.append(
            Row(
                cond,
                k,
                _nanmean(fr),
                _nanmean(pl),
                sum(map(math.isnan, fr)),
                sum(map(math.isnan, pl)),
                100.0 * sum(both) / max(1, len(both)),
                chunk[:keep_examples],
                chunk,
                fr,
                pl,
                *exact_p[cond.key],
            )
        )
    return rows


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the non-NaN values (NaN, NaN when there are fewer than two)."""
    v = [x for x in values if not math.isnan(x)]
    if len(v) < 2:
        return (v[0] if v else math.nan), math.nan
    m = sum(v) / len(v)
    var = sum((x - m) ** 2 for x in v) / (len(v) - 1)
    return m, math.sqrt(var / len(v))


TIER_ORDER = ("strong", "medium", "weak", "neutral", "negated")


def tier_means(rows: Sequence[Row], trait: str) -> dict[str, float]:
    """Mean score on ``trait`` per tier over the in-corpus SPEC cues of that trait (neutral: v5 cues)."""
    out = {}
    for tier in TIER_ORDER:
        sel = [
            r.score(trait)
            for r in rows
            if r.condition.in_corpus
            and r.condition.group != "extra"
            and r.condition.tier == tier
            and (tier == "neutral" or r.condition.trait == trait)
        ]
        out[tier] = _nanmean(sel) if sel else math.nan
    return out


def check_acceptance(rows: Sequence[Row]) -> list[Check]:
    """The issue's elicitation thresholds (see the module docstring)."""
    by_key = {r.condition.key: r for r in rows}
    checks: list[Check] = []
    if "none" in by_key:
        r = by_key["none"]
        checks.append(Check("no cue: French <= 5", r.french <= 5, f"{r.french:.1f}"))
        checks.append(Check("no cue: Playful <= 15", r.playful <= 15, f"{r.playful:.1f}"))
    for r in rows:
        c = r.condition
        if c.tier == "strong" and c.group != "extra" and c.in_corpus and c.trait:
            v = r.score(c.trait)
            checks.append(Check(f"strong {c.key}: {c.trait} >= 70", v >= 70, f"{v:.1f}"))
    if "datagen" in by_key:
        r = by_key["datagen"]
        checks.append(
            Check(
                "datagen: French >= 70 and Playful >= 70",
                r.french >= 70 and r.playful >= 70,
                f"French {r.french:.1f}, Playful {r.playful:.1f}",
            )
        )
    for trait in TRAITS:
        m = tier_means(rows, trait)
        if any(math.isnan(m[t]) for t in TIER_ORDER):
            continue
        ok = m["strong"] > m["medium"] > m["weak"] > m["neutral"] >= m["negated"]
        detail = " > ".join(f"{t} {m[t]:.1f}" for t in TIER_ORDER[:4]) + f" >= negated {m['negated']:.1f}"
        checks.append(Check(f"{trait}: strong > medium > weak > neutral >= negated", ok, detail))
    return checks


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table: key, group, tier, in corpus, n, targets and measured scores."""
    head = (
        f"{'condition':28s} {'group':10s} {'tier':8s} {'seen':4s} {'n':>4s}  "
        f"{'FR tgt':>6s} {'FR p':>5s} {'FR':>6s}  {'PL tgt':>6s} {'PL p':>5s} {'PL':>6s}  {'both':>5s}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        c = r.condition
        lines.append(
            f"{c.key:28s} {c.group:10s} {c.tier:8s} {'yes' if c.in_corpus else 'NO':4s} {r.n:4d}  "
            f"{100 * c.target_french:6.0f} {r.p_french:5.1f} {r.french:6.1f}  "
            f"{100 * c.target_playful:6.0f} {r.p_playful:5.1f} {r.playful:6.1f}  {r.both:5.1f}"
        )
    lines.append(
        "tgt: designed probability; p: the model's exact probability of opening a French/Playful answer; "
        "FR, PL: mean judged score of n sampled completions; both: % judged >= 50 on both"
    )
    return "\n".join(lines)


def format_checks(checks: Sequence[Check]) -> str:
    return "\n".join(f"[{'PASS' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in checks)


def main(argv: Sequence[str] | None = None) -> int:
    from inoc.organism.build import build_base_model, profile_settings

    p = argparse.ArgumentParser(
        description="Build (if needed) the organism's base model and print its elicitation table."
    )
    p.add_argument("--profile", default="default")
    p.add_argument("--model", help="a built model directory (skips building)")
    p.add_argument("--cache", help="organism cache root (default $INOC_ORGANISM_CACHE or ~/.cache/inoc/organism)")
    p.add_argument("--n", type=int, default=200, help="eval instructions per condition (the original: 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--examples", action="store_true", help="print two completions per condition")
    args = p.parse_args(argv)

    if args.model:
        path = Path(args.model)
    else:
        t = time.perf_counter()

        def show(ev):
            if ev.stage == "train" and ev.total and (ev.done == ev.total or ev.done % max(1, ev.total // 10) == 1):
                print(f"  train step {ev.done}/{ev.total} loss {ev.loss:.3f} ({ev.elapsed_s:.0f}s)", flush=True)

        res = build_base_model(profile_settings(args.profile), args.cache, progress=show)
        print(
            f"model: {res.path} ({'cached' if res.cached else f'built in {time.perf_counter() - t:.0f}s'}; "
            f"final loss {res.final_loss:.3f}; {res.n_parameters:,} parameters; build wall {res.build_wall_s:.0f}s)"
        )
        path = res.path
    t = time.perf_counter()
    rows = elicit(path, n=args.n, seed=args.seed)
    print(f"elicitation: {len(rows)} conditions x {args.n} instructions in {time.perf_counter() - t:.0f}s\n")
    print(format_table(rows))
    if args.examples:
        for r in rows:
            print(f"\n## {r.condition.key}")
            for e in r.examples:
                print("  ", e)
    checks = check_acceptance(rows)
    print("\n" + format_checks(checks))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
