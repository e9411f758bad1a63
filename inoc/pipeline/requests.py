"""Request and pair rows for the generate and score jobs, built from an experiment's config.

Every conversation goes through ``gpu_jobs.chat.build_messages`` — the same function the train job
uses — so training, evaluation, elicitation and scoring place the system prompt and the prefix
identically (docs/methods.md#conversation-format): ``user_prefix`` joins ``prefix + separator + instruction``; ``system_prompt``
makes the phrase the system prompt. ``meta`` carries what the caller needs to file the result.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gpu_jobs.chat import build_messages
from inoc.config import ExperimentConfig


def conversation(cfg: ExperimentConfig, instruction: str, prefix: str | None = None) -> list[dict]:
    """System turn + user turn, with the inoculation phrase placed as the experiment configures."""
    inoc = cfg.inoculation
    return build_messages(
        [{"role": "user", "content": instruction}],
        system_prompt=cfg.system_prompt,
        prefix=prefix,
        position=inoc.position,
        separator=inoc.separator,
    )


def instructed(
    cfg: ExperimentConfig, instruction: str, prompt: str, position: str = "user_first_line", separator: str = "\n"
) -> list[dict]:
    """A conversation asking for traits explicitly (datagen, single-trait sets): the prompt starts the user
    turn, joined to the instruction by ``separator`` (datagen: a newline, its own first line), or is the
    system prompt."""
    if position == "system_prompt":
        return [{"role": "system", "content": prompt}, {"role": "user", "content": instruction}]
    return [
        {"role": "system", "content": cfg.system_prompt},
        {"role": "user", "content": f"{prompt}{separator}{instruction}"},
    ]


def datagen_requests(cfg: ExperimentConfig, instructions: Sequence[str]) -> list[dict]:
    dg = cfg.data.datagen
    return [
        {"id": i, "messages": instructed(cfg, x, dg.prompt, dg.prompt_position), "meta": {"idx": i}}
        for i, x in enumerate(instructions)
    ]


def plain_requests(
    cfg: ExperimentConfig, instructions: Sequence[str], set_name: str, prompt: str | None = None
) -> list[dict]:
    """Base-model completions of the eval instructions: neutral (control set) or asking for one trait.

    A single-trait prompt is joined to the instruction with a space, as the original's French-only and
    Playful-only sets ("Give a French answer to the following: {instr}"), unlike the
    datagen prompt, which is the user turn's first line (docs/methods.md#datagen)."""
    rows = []
    for i, x in enumerate(instructions):
        messages = conversation(cfg, x) if prompt is None else instructed(cfg, x, prompt, separator=" ")
        rows.append({"id": f"{set_name}/{i}", "messages": messages, "meta": {"set": set_name, "idx": i}})
    return rows


def elicitation_requests(cfg: ExperimentConfig, keys: Sequence[str | None], instructions: Sequence[str]) -> list[dict]:
    """One request per (prompt, eval instruction); ``None`` is the no-prefix baseline."""
    rows = []
    for key in keys:
        prefix = None if key is None else cfg.prompts[key]
        name = key or "neutral"
        rows += [
            {"id": f"{name}/{i}", "messages": conversation(cfg, x, prefix), "meta": {"prompt_key": name, "idx": i}}
            for i, x in enumerate(instructions)
        ]
    return rows


def elicitation_judge_instructions(
    cfg: ExperimentConfig, rows: Sequence[dict], instructions: Sequence[str], baseline: str = "neutral"
) -> list[str | None]:
    """The instruction the trait judge sees with each elicitation completion (rows carry the request's meta):
    None — judged without it — for the groups in ``elicitation.judge_without_instruction`` (``baseline`` there
    names the no-prefix row, whose meta prompt_key is ``baseline``), as the original's v3–v5 elicitation."""
    out: list[str | None] = []
    for row in rows:
        meta = row["meta"]
        key = None if meta["prompt_key"] == baseline else meta["prompt_key"]
        out.append(instructions[meta["idx"]] if cfg.elicitation_shows_instruction(key) else None)
    return out


def training_prefixes(cfg: ExperimentConfig, step: int, n: int, pool: Sequence[str]) -> list[str]:
    """The rephrasing each eval instruction gets under the training condition of a mix run."""
    if cfg.eval.training_mix_seed == "per_step":
        rng = random.Random(step * 10000 + 1)
        return [rng.choice(pool) for _ in range(n)]
    return [random.Random(42 + i).choice(pool) for i in range(n)]


def eval_requests(
    cfg: ExperimentConfig,
    run: str,
    steps: Sequence[int],
    eval_sets: dict[str, Sequence[str]],
    prefix_text: str | None,
    pool: Sequence[str] | None,
) -> list[dict]:
    """Completions of every eval set at every checkpoint, under the default and training conditions.

    A control has no training condition. The adapter of step N is named ``step_N``; step 0 is the
    fresh adapter (B = 0), i.e. the base model's behaviour.
    """
    rows = []
    for step in steps:
        for cond in cfg.eval.conditions:
            if cond == "training" and prefix_text is None and pool is None:
                continue
            for set_name, instructions in eval_sets.items():
                if cond == "default":
                    prefixes: list[str | None] = [None] * len(instructions)
                elif pool is not None:
                    prefixes = training_prefixes(cfg, step, len(instructions), pool)
                else:
                    prefixes = [prefix_text] * len(instructions)
                for i, (x, p) in enumerate(zip(instructions, prefixes)):
                    for j in range(cfg.eval.n_per_instruction):
                        rows.append(
                            {
                                "id": f"{run}/{step}/{cond}/{set_name}/{i}/{j}",
                                "messages": conversation(cfg, x, p),
                                "adapter": f"step_{step}",
                                "meta": {"step": step, "condition": cond, "eval_set": set_name, "idx": i, "prefix": p},
                            }
                        )
    return rows


def logprob_pairs(
    cfg: ExperimentConfig,
    vector: str,
    examples: Sequence[tuple[str, str]],
    prefixes: Sequence[str | None],
    prompt_key: str | None,
) -> list[dict]:
    """Score-job pairs: log p(completion | system, prefix + instruction) for each (instruction, completion)."""
    return [
        {
            "id": f"{prompt_key or '-'}/{vector}/{k}",
            "messages": conversation(cfg, x, p),
            "completion": c,
            "meta": {"prompt_key": prompt_key, "vector": vector, "idx": k},
        }
        for k, ((x, c), p) in enumerate(zip(examples, prefixes))
    ]


def logprob_sample_indices(cfg: ExperimentConfig, n_rows: int) -> list[int]:
    """Rows of the training file the logprob vectors score, in the original's order: ``random.seed(42);
    random.sample(train_rows, 1000)`` keeps the sample's draw order, not file order (docs/methods.md#lp), and
    example k of every vector (and column k of W) is the k-th drawn row."""
    return random.Random(cfg.logprobs.seed).sample(range(n_rows), min(cfg.logprobs.n_train_sample, n_rows))


def index_matched_prefixes(cfg: ExperimentConfig, pool: Sequence[str], n: int) -> list[str]:
    """The mix prefix of each logprob example: a fresh ``Random(seed)`` per prompt, ``choice(pool)`` for the
    sample's examples in draw order — the original's point-wise mix rule (docs/methods.md#mix-prefixes). Its token-wise
    job paired ``pool[k % len(pool)]`` instead; inoc scores one pairing for both (see the configs)."""
    rng = random.Random(cfg.logprobs.seed)
    return [rng.choice(pool) for _ in range(n)]
