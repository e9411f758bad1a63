"""The rehearsal config: a real study's config with its model, API models, sizes and compute
substituted, and everything else — groups, prefix types, run kinds, eval sets and conditions,
checkpoint kind, inoculation position, data files, judges — kept.

``rehearsal_config(data, cfg, api_base_url)`` takes the study's resolved YAML mapping (``extends:``
merged) and returns the rehearsal's mapping plus the list of ``Substitution``s it made, each naming
the field, the real value and the rehearsal's; the rehearsal prints that list, so nothing is changed
silently.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inoc.config.schema import PREFIX_TYPE_SELECTIONS, ExperimentConfig

#: The shrunk sizes (examples, eval instructions, tokens, pools, logprob sample, steps).
SIZES = {
    "n_train": 48,
    "n_eval": 12,
    "eval_set_n": 8,
    "datagen_tokens": 32,
    "control_tokens": 24,
    "eval_tokens": 24,
    "elicitation_tokens": 24,
    "pool": 12,
    "logprob_sample": 12,
    "embedded_rephrasings": 8,
    "batch_size": 4,
    "grad_accum": 2,
    "max_seq_length": 512,
    "n_per_instruction": 1,
}


@dataclass(frozen=True)
class Substitution:
    field: str
    real: Any
    rehearsal: Any
    why: str

    def __str__(self) -> str:
        return f"{self.field}: {self.real!r} → {self.rehearsal!r} ({self.why})"


class RehearsalConfigError(ValueError):
    """The study cannot be rehearsed as configured (the message names the field)."""


def standin_model(model_id: str) -> str:
    """The stand-in organism of a model's chat-template family: Llama 3 headers or ChatML."""
    low = model_id.lower()
    if "llama" in low:
        return "toy:standin-llama3"
    if "qwen" in low or model_id.startswith("toy:"):
        return "toy:standin-chatml"
    raise RehearsalConfigError(
        f"model.id: no stand-in for the chat template of {model_id!r}; rehearsals know the ChatML (Qwen) and "
        "Llama 3 header families"
    )


def rehearsal_prompts(cfg: ExperimentConfig) -> list[str]:
    """One prompt per group, chosen so that every prefix type the study trains keeps at least one run:
    in each group, the prompt that adds the most prefix types not yet covered (then the first)."""
    types: dict[str, set[str]] = {}
    for p, t in cfg.run_partition_keys():
        types.setdefault(p, set()).add(t)
    covered: set[str] = set()
    chosen = []
    for group in cfg.groups.values():
        candidates = [p for p in group.prompts if p not in chosen]
        if not candidates:
            continue
        best = max(
            candidates,
            key=lambda p: (len(types.get(p, set()) - covered), len(types.get(p, set())), -candidates.index(p)),
        )
        chosen.append(best)
        covered |= types.get(best, set())
    return chosen


def rehearsal_runs(cfg: ExperimentConfig, prompts: list[str]) -> dict[str, list[str]]:
    """One run per rehearsed prompt (that has runs), its prefix type chosen so every type the study
    trains is covered: a type not yet covered first, else the prompt's first type."""
    types: dict[str, list[str]] = {}
    for p, t in cfg.run_partition_keys():
        types.setdefault(p, []).append(t)
    covered: set[str] = set()
    runs: dict[str, list[str]] = {t: [] for t in cfg.inoculation.prefix_types}
    for p in prompts:
        if p not in types:
            continue
        t = next((t for t in types[p] if t not in covered), types[p][0])
        runs[t].append(p)
        covered.add(t)
    return runs


class _Editor:
    def __init__(self, data: dict[str, Any]):
        self.data, self.subs = data, []

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def set(self, path: str, value: Any, why: str, *, real: Any = None) -> None:
        parts = path.split(".")
        node = self.data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        old = node.get(parts[-1], real)
        if old == value:
            return
        node[parts[-1]] = value
        self.subs.append(Substitution(path, old, value, why))

    def drop(self, path: str, why: str) -> None:
        parts = path.split(".")
        node = self.get(".".join(parts[:-1])) if len(parts) > 1 else self.data
        if isinstance(node, dict) and parts[-1] in node:
            self.subs.append(Substitution(path, node.pop(parts[-1]), None, why))

    def shrink(self, path: str, limit: int, real_default: int, why: str = "sizes shrunk") -> None:
        real = self.get(path, real_default)
        if real > limit:
            self.set(path, limit, why, real=real_default)


def rehearsal_config(
    data: Mapping[str, Any], cfg: ExperimentConfig, api_base_url: str, shared_dir: str | None = None
) -> tuple[dict[str, Any], list[Substitution]]:
    """The rehearsal's config mapping and the substitutions made (see the module docstring)."""
    if cfg.is_import:
        raise RehearsalConfigError(f"{cfg.name} imports its results; there is nothing to rehearse")
    if cfg.data is None:
        raise RehearsalConfigError("data: a computed study needs a data section")
    e = _Editor(copy.deepcopy(dict(data)))
    e.data.pop("extends", None)
    e.data.pop("replace", None)
    local = "the stand-in API server on 127.0.0.1"

    # the model: a stand-in of the same chat-template family, float32 on the CPU
    e.set("model.id", standin_model(cfg.model.id), "a locally built stand-in of the same chat-template family")
    e.set("model.slug", f"{cfg.model.slug}-standin", "artifacts of the stand-in are named apart")
    for field in ("train_id", "revision"):
        e.drop(f"model.{field}", "the stand-in is built locally")
    e.set("model.dtype", "float32", "the CPU computes in float32", real=cfg.model.dtype)
    e.set("model.load_in_4bit", False, "4-bit loading needs a GPU", real=cfg.model.load_in_4bit)
    e.shrink("model.max_model_len", 2048, cfg.model.max_model_len, "the stand-in's context")

    # prompts: one per group, every prefix type kept
    keep = rehearsal_prompts(cfg)
    if len(keep) < len(cfg.prompts):
        e.subs.append(
            Substitution("prompts", f"{len(cfg.prompts)} prompts", keep, "one per group, every prefix type kept")
        )
        e.data["prompts"] = {k: v for k, v in cfg.prompts.items() if k in keep}
        for g in e.data["groups"].values():
            g["prompts"] = [p for p in g["prompts"] if p in keep]
        chosen = e.get("runs.prompts")
        if isinstance(chosen, list):
            e.data["runs"]["prompts"] = [p for p in chosen if p in keep]
    runs = rehearsal_runs(cfg, keep)
    n_real = len(cfg.run_partition_keys())
    if sum(map(len, runs.values())) < n_real:
        e.subs.append(
            Substitution(
                "runs",
                f"{n_real} prompt runs",
                {t: ps for t, ps in runs.items() if ps},
                "one run per rehearsed prompt, every prefix type kept; controls all kept",
            )
        )
        for ptype, ps in runs.items():
            e.data.setdefault("runs", {})[PREFIX_TYPE_SELECTIONS[ptype]] = ps

    # data: the real sources and files, fewer rows and tokens
    d = cfg.data
    e.shrink("data.n_train", SIZES["n_train"], d.n_train)
    if d.split == "shuffle":
        e.shrink("data.n_eval", SIZES["n_eval"], d.n_eval)
    for i, s in enumerate(d.eval_sets):
        if s.n > SIZES["eval_set_n"]:
            e.data["data"]["eval_sets"][i]["n"] = SIZES["eval_set_n"]
            e.subs.append(Substitution(f"data.eval_sets[{s.name}].n", s.n, SIZES["eval_set_n"], "sizes shrunk"))
    if d.instructions.source == "instructionwild":
        if not shared_dir:
            raise RehearsalConfigError(
                "data.instructions: source instructionwild is fetched from the internet; a rehearsal runs offline and "
                "reads the public files in <shared>/reference/instructionwild (set INOC_SHARED_DIR)"
            )
        e.set(
            "data.instructions.base_url",
            "${INOC_SHARED_DIR}/reference/instructionwild",
            "offline: the public files that exist here (user_1..3)",
        )
        e.set("data.instructions.allow_missing", True, "offline: user_4 is not available here; the source says so")
    e.shrink("data.datagen.max_tokens", SIZES["datagen_tokens"], d.datagen.max_tokens)
    e.shrink("data.control_max_tokens", SIZES["control_tokens"], d.control_max_tokens)
    if d.datagen.mode == "off_policy" and d.datagen.backend == "openai":
        e.set("data.datagen.base_url", api_base_url, local)
        e.set("data.datagen.max_in_flight", min(d.datagen.max_in_flight, 8), "a local server")

    # API models
    e.set("judge.base_url", api_base_url, local)
    if cfg.rephrasings.source == "generate":
        e.set("rephrasings.base_url", api_base_url, local)
    e.shrink("rephrasings.n", SIZES["pool"], cfg.rephrasings.n)
    e.shrink("rephrasings.batch_size", SIZES["pool"] // 2, cfg.rephrasings.batch_size)
    e.shrink("rephrasings.min_pool", SIZES["pool"], cfg.rephrasings.min_pool)
    th = cfg.text_heuristics
    if th.embeddings == "openai":
        e.set("text_heuristics.embedding_base_url", api_base_url, local)
    e.shrink("text_heuristics.max_rephrasings", SIZES["embedded_rephrasings"], th.max_rephrasings or 10**9)

    # training: the real hyper-parameters where the CPU runs them, a few steps
    t = cfg.training
    if t.backend != "peft":
        e.set("training.backend", "peft", f"{t.backend} is a GPU engine; the rehearsal trains with PEFT")
    if t.optimizer == "adamw_8bit":
        e.set("training.optimizer", "adamw_torch", "8-bit AdamW needs bitsandbytes on a GPU")
    e.shrink("training.per_device_batch_size", SIZES["batch_size"], t.per_device_batch_size)
    e.shrink("training.gradient_accumulation_steps", SIZES["grad_accum"], t.gradient_accumulation_steps)
    e.shrink("training.max_seq_length", SIZES["max_seq_length"], t.max_seq_length)
    e.shrink("training.warmup_steps", 1, t.warmup_steps, "a few steps")

    # eval and logprobs: fewer tokens and samples; conditions, sets and seeds kept
    e.shrink("eval.max_tokens", SIZES["eval_tokens"], cfg.eval.max_tokens)
    e.shrink("eval.n_per_instruction", SIZES["n_per_instruction"], cfg.eval.n_per_instruction)
    elicitation = getattr(cfg, "elicitation", None)
    if elicitation is not None and hasattr(elicitation, "max_tokens"):
        e.shrink("elicitation.max_tokens", SIZES["elicitation_tokens"], elicitation.max_tokens)
    e.shrink("logprobs.n_train_sample", SIZES["logprob_sample"], cfg.logprobs.n_train_sample)

    # compute: this machine
    e.set(
        "compute.backend",
        "local",
        "jobs run on this machine; their SkyPilot tasks are rendered and validated",
        real=cfg.compute.backend,
    )
    e.set(
        "compute.generation_backend",
        "transformers",
        "the CPU generates with transformers",
        real=cfg.compute.generation_backend,
    )
    return e.data, e.subs
