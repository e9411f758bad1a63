"""The job specs: pydantic models validated before anything heavy is imported or loaded.

A spec is a JSON file. Every problem is reported as ``<field.path>: <what is wrong>`` — a missing
field, a wrong type (validation is strict: ``"32"`` is not an int), an unknown field (a typo must
not fall back to a default), an input file that does not exist, a prefix plan that lacks its text
or pool. Relative paths are resolved against the spec file's folder, so a spec and its inputs can
travel together (to a cluster, into a test's tmp dir).

The training fields live in ``LoraTraining``, which ``inoc.config.schema.TrainingConfig`` derives
from too, so the orchestrator builds a ``TrainSpec`` from the experiment config field for field.

Idempotency: ``spec_hash(spec)`` covers every field that can change an output — input files by the
sha256 of their content, adapters by their files' names and sizes — and leaves out where the
outputs go (``output_dir``) and how many threads compute them (``threads``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

#: Bump when the meaning of a spec field or the layout of the outputs changes: old outputs rerun.
SPEC_FORMAT = 1

JobName = Literal["train", "generate", "score"]
DType = Literal["auto", "float32", "bfloat16", "float16"]
Device = Literal["auto", "cpu", "cuda"]


class SpecError(ValueError):
    """A spec (or an input file it names) is invalid. ``problems`` holds ``field: message`` lines."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid spec{where}:\n" + "\n".join(f"  {p}" for p in problems))


def _resolve(value: str, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    if not path.is_absolute():  # against the spec's folder, else the working directory
        path = (Path(base) if base is not None else Path.cwd()) / path
    return path


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = _resolve(value, info)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelRef(Strict):
    """Which weights: a Hugging Face id, a local folder, or ``toy:<profile>`` (the model organism)."""

    id: str = Field(min_length=1)
    revision: str | None = None
    tokenizer: str | None = Field(None, description="tokenizer id/folder when it differs from `id`")
    dtype: DType = Field("auto", description="auto: bfloat16 on a CUDA GPU that supports it, else float32")
    trust_remote_code: bool = False

    @field_validator("id", "tokenizer")
    @classmethod
    def _local_must_exist(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or v.startswith("toy:"):
            return v
        if v.startswith(("/", "./", "../", "~")):
            path = _resolve(v, info)
            if not path.is_dir():
                raise ValueError(f"no such model folder: {path}")
            return str(path)
        base = (info.context or {}).get("base_dir")
        if base is not None and (Path(base) / v).is_dir():  # a folder next to the spec
            return str(Path(base) / v)
        return v  # a hub id: checked when it loads


def _adapters(v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    out = {}
    for name, path in v.items():
        if not name or name == "base":
            raise ValueError(f"adapter name {name!r} is reserved; use another name")
        resolved = _resolve(path, info)
        if not (resolved / "adapter_config.json").is_file():
            raise ValueError(f"adapter {name!r}: no adapter_config.json in {resolved}")
        out[name] = str(resolved)
    return out


class JobSpec(Strict):
    """Fields every job has."""

    job: JobName | None = Field(None, description="optional; when given it must match the job run")
    output_dir: str = Field(min_length=1)
    model: ModelRef
    device: Device = "auto"
    threads: int | None = Field(None, gt=0, description="torch CPU threads; default $GPU_JOBS_THREADS, else torch's")

    #: Fields that hold input file paths: hashed by content, not by path.
    input_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields that do not change any output.
    unhashed_fields: ClassVar[frozenset[str]] = frozenset({"output_dir", "threads", "job"})

    @field_validator("output_dir")
    @classmethod
    def _out(cls, v: str, info: ValidationInfo) -> str:
        path = _resolve(v, info)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a folder")
        return str(path)

    @property
    def out(self) -> Path:
        return Path(self.output_dir)


# --------------------------------------------------------------------------------------- train
class CheckpointSchedule(Strict):
    """Which optimizer steps get an adapter. Step 0 (the fresh adapter) and the final step always do.

    final: only those two; pow2: 1, 2, 4, … below the final step; dense: 5–50 every 5, 60–100 every
    10, 120–250 every 20; list: ``steps`` (steps past the end of training are dropped).
    """

    kind: Literal["final", "pow2", "dense", "list"] = "final"
    steps: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> "CheckpointSchedule":
        if self.kind == "list" and not self.steps:
            raise ValueError("schedule kind 'list' needs `steps`")
        if any(s < 0 for s in self.steps):
            raise ValueError("checkpoint steps must be >= 0")
        return self


class TrainData(Strict):
    path: str
    format: Literal["instruction_completion", "messages"] = Field(
        "instruction_completion",
        description="instruction_completion: {instruction, completion} rows; messages: {messages: [...]} rows "
        "whose last message is the assistant turn trained on",
    )
    instruction_field: str = "instruction"
    completion_field: str = "completion"
    messages_field: str = "messages"
    limit: int | None = Field(None, gt=0, description="use only the first `limit` rows")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str, info: ValidationInfo) -> str:
        return _existing_file(v, info)


class PrefixPlan(Strict):
    """The inoculation of each training example.

    plan none: no inoculation. fixed: ``text`` in every example. pool: one phrase of the pool per
    example — ``sampling: seeded`` draws ``random.Random(seed).choice(pool)`` per example in file
    order (the original mix training), ``sampling: index`` takes ``pool[k % len(pool)]``.
    position user_prefix: user turn = prefix + separator + instruction; system_prompt: the phrase
    replaces the system prompt.
    """

    plan: Literal["none", "fixed", "pool"] = "none"
    position: Literal["user_prefix", "system_prompt"] = "user_prefix"
    text: str | None = None
    pool: list[str] | None = None
    pool_path: str | None = Field(None, description="JSONL of {pool_field: str} rows, JSONL strings, or a JSON array")
    pool_field: str = "rephrasing"
    sampling: Literal["seeded", "index"] = "seeded"
    seed: int = 42
    separator: str = " "
    min_pool_size: int = Field(1, gt=0)

    @field_validator("pool_path")
    @classmethod
    def _pool_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _existing_file(v, info)

    @model_validator(mode="after")
    def _needs(self) -> "PrefixPlan":
        if self.plan == "fixed" and not (self.text and self.text.strip()):
            raise _at("text", "prefix plan 'fixed' needs `text` (the inoculation phrase)")
        if self.plan == "pool":
            if not self.pool and not self.pool_path:
                raise _at("pool", "prefix plan 'pool' needs `pool` (a list of phrases) or `pool_path`")
            if self.pool is not None and self.pool_path is not None:
                raise _at("pool", "give `pool` or `pool_path`, not both")
            if self.pool is not None:
                if len(self.pool) < self.min_pool_size:
                    raise _at("pool", f"the pool has {len(self.pool)} phrases; min_pool_size is {self.min_pool_size}")
                bad = [i for i, p in enumerate(self.pool) if not p.strip()]
                if bad:
                    raise _at("pool", f"pool[{bad[0]}] is empty")
        if self.plan == "none" and (self.text or self.pool or self.pool_path):
            raise _at("plan", "plan 'none' with a text or pool: set plan to 'fixed' or 'pool'")
        return self


class _FieldError(ValueError):
    """A model-level check that names a sub-field (pydantic reports model validators at the model)."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def _at(field: str, message: str) -> _FieldError:
    return _FieldError(field, message)


class LoraTraining(Strict):
    """The LoRA fine-tuning settings, defined once (docs/methods.md#training).

    The train job's spec (``TrainSpec``) and the experiment config's ``training`` section
    (``inoc.config.schema.TrainingConfig``) both derive from it, so the names, defaults and bounds
    cannot drift apart; a run plan copies ``run_plan_fields()`` from the one into the other.
    """

    backend: Literal["peft", "unsloth"] = "peft"
    learning_rate: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    optimizer: Literal["adamw_8bit", "adamw_torch", "adamw"] = Field(
        "adamw_8bit", description="adamw_8bit needs bitsandbytes; adamw is adamw_torch"
    )
    lora_r: int = Field(32, gt=0)
    lora_alpha: int = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    use_rslora: bool = True
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        min_length=1,
    )
    per_device_batch_size: int = Field(4, gt=0)
    gradient_accumulation_steps: int = Field(8, gt=0)
    epochs: int = Field(1, gt=0)
    max_seq_length: int = Field(2048, gt=0)
    gradient_checkpointing: bool = True
    seed: int = 3407
    checkpoints: CheckpointSchedule = Field(default_factory=CheckpointSchedule)

    #: Set per run rather than copied: a run plan carries its own rate (one per rate of a sweep), and the
    #: schedule goes over as a plain dict.
    per_run_fields: ClassVar[tuple[str, ...]] = ("learning_rate", "checkpoints")

    @classmethod
    def run_plan_fields(cls) -> tuple[str, ...]:
        """The shared fields a run plan copies verbatim from the experiment's training config into its spec."""
        return tuple(f for f in LoraTraining.model_fields if f not in LoraTraining.per_run_fields)


class TrainSpec(LoraTraining, JobSpec):
    """The train job: the LoRA settings of ``LoraTraining``, the data and inoculation, and the job's own knobs."""

    data: TrainData
    system_prompt: str | None = Field(None, description="the study's neutral system prompt; None: no system turn")
    prefix: PrefixPlan = Field(default_factory=PrefixPlan)
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip the global grad norm; None: no clipping")
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    drop_last: bool = True
    load_in_4bit: bool = Field(False, description="QLoRA base (bitsandbytes / Unsloth, CUDA only)")

    input_fields: ClassVar[tuple[str, ...]] = ("data.path", "prefix.pool_path")


# ------------------------------------------------------------------------------- generate / score
class VllmOptions(Strict):
    max_model_len: int | None = Field(None, gt=0)
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        le=1,
        description="GPU: share of its memory vLLM may use (None: 0.9); CPU: share of the host's "
        "RAM vLLM reserves for its KV cache (None: a fixed 1 GiB, since 0.9 of a shared machine fails)",
    )
    enforce_eager: bool = False
    max_loras: int = Field(4, gt=0, description="adapters resident at once")
    max_lora_rank: int | None = Field(None, gt=0, description="default: the largest r among the adapters")
    max_num_seqs: int | None = Field(None, gt=0)
    max_prompt_logprob_tokens: int = Field(
        8192, gt=0, description="score: prompt tokens per engine call (vLLM allocates tokens × vocab floats for them)"
    )


class EngineJobSpec(JobSpec):
    """Fields of the jobs that run a model over many rows (generate, score): the engine and the adapters."""

    backend: Literal["transformers", "vllm"] = "transformers"
    adapters: dict[str, str] = Field(default_factory=dict, description="adapter name → PEFT adapter folder")
    vllm: VllmOptions = Field(default_factory=VllmOptions)

    @field_validator("adapters")
    @classmethod
    def _adapter_dirs(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return _adapters(v, info)


class GenerateSpec(EngineJobSpec):
    requests: str = Field(description="JSONL: {id, messages, adapter?, meta?} per line")
    n: int = Field(1, gt=0, description="completions per request")
    temperature: float = Field(1.0, ge=0, description="0: greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(2048, gt=0)
    seed: int = Field(0, description="completion j of request id gets the stream seeded by sha256(seed, id, j)")
    stop_token_ids: list[int] = Field(default_factory=list, description="extra stop ids (EOS/end-of-turn always stop)")
    batch_size: int = Field(32, gt=0, description="transformers: sequences decoded together")
    shard_size: int = Field(256, gt=0, description="requests per resumable part")

    input_fields: ClassVar[tuple[str, ...]] = ("requests",)

    @field_validator("requests")
    @classmethod
    def _requests(cls, v: str, info: ValidationInfo) -> str:
        return _existing_file(v, info)


class ScoreSpec(EngineJobSpec):
    pairs: str = Field(
        description="JSONL: {id, messages (the context), completion, completion_role?, adapter?, "
        "meta?} or {id, text, adapter?, meta?} per line"
    )
    token_level: bool = Field(True, description="store per-token log-probs and ids")
    score_end_of_turn: bool = Field(
        True,
        description="also score the end-of-turn tokens the template appends after the completion (docs/methods.md#lp)",
    )
    max_length: int | None = Field(None, gt=0, description="drop completion tokens past this sequence length")
    max_batch_tokens: int = Field(16384, gt=0, description="padded tokens per forward pass")
    max_batch_size: int = Field(64, gt=0)
    max_padding_fraction: float = Field(
        0.1,
        gt=0,
        le=1,
        description="start a new batch rather than pad a sequence by more than this share of the batch width",
    )
    logit_chunk: int = Field(
        1024, gt=0, description="completion positions per log-softmax chunk (chunk × vocab floats)"
    )
    shard_size: int = Field(1024, gt=0, description="pairs per resumable part")

    input_fields: ClassVar[tuple[str, ...]] = ("pairs",)

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: str, info: ValidationInfo) -> str:
        return _existing_file(v, info)


def check_environment(spec: JobSpec) -> None:
    """Checks that depend on the machine the job runs on (not on the spec alone); raises ``SpecError``.

    Kept out of the models so an orchestrator on a CPU machine can validate a spec meant for a GPU.
    """
    import importlib.util

    def missing(pkg: str) -> bool:
        return importlib.util.find_spec(pkg) is None

    problems = []
    backend = getattr(spec, "backend", None)
    if backend == "unsloth" and missing("unsloth"):
        problems.append("backend: 'unsloth' but the unsloth package is not installed here; use 'peft'")
    if backend == "vllm" and missing("vllm"):
        problems.append("backend: 'vllm' but the vllm package is not installed here; use 'transformers'")
    if isinstance(spec, TrainSpec):
        if spec.optimizer == "adamw_8bit" and missing("bitsandbytes"):
            problems.append("optimizer: 'adamw_8bit' needs the bitsandbytes package; use 'adamw_torch' here")
        if spec.load_in_4bit and missing("bitsandbytes"):
            problems.append("load_in_4bit: true needs the bitsandbytes package (CUDA)")
    if spec.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append("device: 'cuda' but torch sees no CUDA device")
    if problems:
        raise SpecError(problems)


SPECS: dict[str, type[JobSpec]] = {"train": TrainSpec, "generate": GenerateSpec, "score": ScoreSpec}


# ------------------------------------------------------------------------------------ loading
def _format_error(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        ctx_err = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            loc = f"{loc}.{ctx_err.field}" if loc else ctx_err.field
            msg = str(ctx_err).split(": ", 1)[1]
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "missing":
                msg = "required field is missing"
            elif e["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling)"
        out.append(f"{loc or '<spec>'}: {msg}" + (f" (got {e['input']!r})" if e["type"].endswith("_type") else ""))
    return out


def parse_spec(job: str, data: Any, *, base_dir: str | Path | None = None, source: str | None = None) -> JobSpec:
    """Validate ``data`` (a dict) as the spec of ``job``; raises ``SpecError`` naming the fields."""
    if job not in SPECS:
        raise SpecError([f"job: unknown job {job!r}; known: {', '.join(SPECS)}"], source)
    if not isinstance(data, dict):
        raise SpecError([f"<spec>: expected a JSON object, got {type(data).__name__}"], source)
    if data.get("job") not in (None, job):
        raise SpecError([f"job: the spec is for {data['job']!r} but it was given to gpu_jobs.{job}"], source)
    try:
        return SPECS[job].model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        raise SpecError(_format_error(err), source) from None


def load_spec(job: str, path: str | Path) -> JobSpec:
    """Read and validate a spec file; relative paths inside resolve against its folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError([f"--spec: no such file: {path}"]) from None
    except json.JSONDecodeError as err:
        raise SpecError([f"<spec>: not valid JSON ({err})"], str(path)) from None
    return parse_spec(job, data, base_dir=path.resolve().parent, source=str(path))


# ------------------------------------------------------------------------------------ hashing
def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _get(obj: dict, dotted: str) -> tuple[dict, str] | None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        obj = obj.get(p) or {}
        if not isinstance(obj, dict):
            return None
    return obj, parts[-1]


def spec_hash(spec: JobSpec) -> str:
    """sha256 of everything that determines the outputs (see the module docstring)."""
    payload = spec.model_dump(mode="json", exclude=set(spec.unhashed_fields))
    for dotted in spec.input_fields:
        hit = _get(payload, dotted)
        if hit is not None and hit[0].get(hit[1]) is not None:
            hit[0][hit[1]] = {"sha256": file_sha256(hit[0][hit[1]])}
    adapters = payload.get("adapters")
    if isinstance(adapters, dict):  # adapter folders by file names and sizes (hashing GBs of weights is slow)
        payload["adapters"] = {
            name: sorted((p.name, p.stat().st_size) for p in Path(path).iterdir() if p.is_file())
            for name, path in adapters.items()
        }
    payload = {"job": type(spec).__name__, "format": SPEC_FORMAT, "spec": payload}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
