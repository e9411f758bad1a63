"""``inoc plan`` arithmetic: tokens, GPU-hours and dollars per stage of an experiment.

The GPU stages and what they run (see the pipeline assets):

==============  ===============================================================================
datagen         on-policy training data: the base model answers ``n_train`` instructions
                (off-policy data: here when ``datagen.backend`` is ``generate_job``, priced as the
                API stage ``datagen_api`` when it is ``openai``; ``file``: free)
elicitation     the base model answers the eval instructions under every prompt (+ no prompt)
logprobs        single-trait completion sets (generate), then log p of training completions under
                every prompt and none (score)
training        one LoRA run per (prompt × prefix type) + the controls, per learning rate
eval            every run's adapters at their checkpoints × eval conditions × eval instructions,
                plus the base model once
==============  ===============================================================================

GPU-hours = tokens / throughput. Throughputs (``Assumptions``) are per A100-80GB for a 7B model in
bf16, scaled by the accelerator's relative speed (``accelerators.RELATIVE_SPEED``) and inversely by
model size; a 4-bit (QLoRA) base trains at ``qlora_factor`` of that; LoRA decoding at
``lora_decode_factor``. Throughputs measured by finished cloud jobs (``ledger.measured_throughputs``)
replace the assumptions for the accelerators they ran on. Dollars: GPU-hours × the hourly price of the
accelerator SkyPilot would pick — the cheapest candidate per hour in SkyPilot's catalog — on-demand and
spot. Two ways of running are compared:

* **packed** (this backend): jobs share up to ``compute.max_clusters`` clusters through SkyPilot's job
  queue — a cluster starts once per stage — and evaluation serves many adapters from one vLLM engine
  (``adapters_per_eval_job`` per job);
* **one cluster per job** (as the original study ran): every job provisions, sets up, downloads and
  loads the model, and the eval runs one job per adapter.

Every assumption is a field of ``Assumptions`` with its reason; ``inoc plan`` prints them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields

from gpu_jobs.train import checkpoint_steps, plan_steps
from inoc.cloud.accelerators import DEFAULT_PARAMS_B, Candidate, model_params_b, parse_candidates
from inoc.cloud.catalog_prices import Offer, Prices
from inoc.config import ExperimentConfig
from inoc.judges.pricing import estimate_cost

GPU_STAGES = ("datagen", "elicitation", "logprobs", "training", "eval")
API_STAGES = ("rephrasings", "datagen_api", "judging")


def _a(default: float, why: str):
    return field(default=default, metadata={"why": why})


@dataclass(frozen=True)
class Assumptions:
    """Every number the estimate rests on (tokens per item, throughputs, overheads), each with its reason."""

    prompt_tokens: int = _a(80, "a user turn: instruction (~60 tokens) with chat template and system prompt")
    prefix_tokens: int = _a(15, "an inoculation prefix or datagen instruction (7-30 tokens)")
    completion_tokens: int = _a(350, "a chat answer when max_tokens allows it (the original's answers: ~300)")
    generate_tokens_per_s: float = _a(2500.0, "vLLM offline generation, output tokens/s, 7B bf16, one A100-80GB")
    score_tokens_per_s: float = _a(10000.0, "vLLM prompt_logprobs scoring (prefill), tokens/s, 7B, one A100-80GB")
    train_tokens_per_s: float = _a(3000.0, "Unsloth LoRA r=32 bf16, grad. checkpointing, batch 4x8, 7B, one A100-80GB")
    qlora_factor: float = _a(0.6, "a 4-bit base (QLoRA) trains at this share of the bf16 speed")
    lora_decode_factor: float = _a(0.8, "decoding through LoRA adapters versus the base model")
    reference_params_b: float = _a(7.0, "throughputs above are for this model size; they scale with 1/size")
    cluster_start_min: float = _a(12.0, "provisioning + setup of a cluster (two virtualenvs), billed minutes")
    download_gb_per_min: float = _a(15.0, "weights downloaded once per cluster from the HF hub (~250 MB/s)")
    load_min_per_10b: float = _a(1.5, "loading the model onto the GPU, minutes per 10B parameters, per job")
    per_job_teardown_min: float = _a(1.0, "a cluster per job is torn down right after it (the original's pods)")
    adapters_per_eval_job: int = _a(64, "adapters one vLLM engine serves in one eval job (max_loras resident)")
    judge_template_tokens: int = _a(150, "a judge call's template around the instruction and answer")
    rephrasing_prompt_tokens: int = _a(200, "one rephrasing request (50 rephrasings a call)")
    rephrasing_tokens: int = _a(25, "one rephrasing")

    def describe(self) -> list[tuple[str, object, str]]:
        return [(f.name, getattr(self, f.name), f.metadata.get("why", "")) for f in fields(self)]


@dataclass
class Stage:
    stage: str
    #: jobs when packed / with a cluster per job
    jobs: int
    jobs_per_job: int
    requests: int
    tokens_in: int
    tokens_out: int
    #: compute hours on the on-demand choice / the spot choice of accelerator
    hours_on_demand: float
    hours_spot: float
    note: str = ""


@dataclass
class ApiStage:
    stage: str
    model: str
    calls: int
    tokens_in: int
    tokens_out: int
    usd: float | None


@dataclass
class ModeTotal:
    mode: str
    jobs: int
    cluster_starts: int
    compute_hours_on_demand: float
    compute_hours_spot: float
    overhead_hours: float
    usd_on_demand: float | None
    usd_spot: float | None

    @property
    def hours_on_demand(self) -> float:
        return self.compute_hours_on_demand + self.overhead_hours

    @property
    def hours_spot(self) -> float:
        return self.compute_hours_spot + self.overhead_hours


@dataclass
class Plan:
    experiment: str
    model_id: str
    params_b: float
    candidates: list[Candidate]
    on_demand: Offer | None
    spot: Offer | None
    use_spot: bool
    max_budget_usd: float
    max_clusters: int
    stages: list[Stage]
    api: list[ApiStage]
    packed: ModeTotal
    per_job: ModeTotal
    assumptions: Assumptions
    measured: dict[str, str] = field(default_factory=dict)
    selection: list[str] = field(default_factory=list)

    @property
    def api_usd(self) -> float:
        return sum(a.usd or 0.0 for a in self.api)

    def gpu_usd(self, mode: str = "packed") -> float | None:
        total = self.packed if mode == "packed" else self.per_job
        return total.usd_spot if self.use_spot else total.usd_on_demand

    @property
    def total_usd(self) -> float:
        """What the budget guard compares: the packed GPU cost as configured (spot or not) + API."""
        gpu = self.gpu_usd("packed")
        if gpu is None:  # spot asked for but no spot price: the on-demand price bounds it
            gpu = self.packed.usd_on_demand or 0.0
        return gpu + self.api_usd

    def to_dict(self) -> dict:
        return {**asdict(self), "total_usd": self.total_usd, "api_usd": self.api_usd}


class PlanError(ValueError):
    pass


# ------------------------------------------------------------------------------- helpers
def completion(max_tokens: int, a: Assumptions) -> int:
    return min(max_tokens, a.completion_tokens)


def eval_instructions(cfg: ExperimentConfig) -> int:
    """Instructions a checkpoint is evaluated on per condition: the held-out set (split shuffle) and the extra sets."""
    data = cfg.data
    if data is None:
        return 0
    return (data.n_eval if data.split == "shuffle" else 0) + sum(s.n for s in data.eval_sets)


def held_out_instructions(cfg: ExperimentConfig) -> int:
    """Instructions of elicitation and the control completions (``data.held_out_set``)."""
    data = cfg.data
    if data is None:
        return 0
    return data.n_eval if data.split == "shuffle" else data.eval_sets[0].n


def training_steps(cfg: ExperimentConfig) -> int:
    t = cfg.training
    n = cfg.data.n_train if cfg.data else 0
    return plan_steps(n, t.per_device_batch_size, t.gradient_accumulation_steps, t.epochs).total_steps


def evaluated_checkpoints(cfg: ExperimentConfig) -> int:
    """Checkpoints evaluated per run: every saved step but 0 (step 0 is the base model, evaluated once)."""
    return len(checkpoint_steps(cfg.training.checkpoints, training_steps(cfg))) - 1


def run_count(cfg: ExperimentConfig, prompts: Sequence[str], with_controls: bool) -> int:
    lrs = len(cfg.training.learning_rates) or 1
    controls = (
        int(cfg.runs.control) + len([c for c in cfg.runs.extra_controls if c != "no_inoculation"])
        if with_controls
        else 0
    )
    chosen = set(prompts)
    inoculated = sum(1 for key, _ in cfg.run_partition_keys() if key in chosen)
    return (inoculated + controls) * lrs


def throughput(
    kind: str, cand: Candidate, params_b: float, a: Assumptions, measured: dict[tuple[str, str], float] | None = None
) -> float:
    """Tokens/s of ``kind`` (generate | score | train) on ``cand`` for a ``params_b`` model."""
    ref = measured.get((kind, cand.name)) if measured else None
    if ref is None:
        base = {"generate": a.generate_tokens_per_s, "score": a.score_tokens_per_s, "train": a.train_tokens_per_s}[kind]
        ref = base * cand.speed
    else:
        ref *= cand.count
    return ref * a.reference_params_b / max(params_b, 0.1)


def calibrate(rows: Iterable[dict], a: Assumptions) -> dict[tuple[str, str], float]:
    """Measured ``{job, accelerator, params_b, tokens_per_s}`` rows → median tokens/s per (job, accelerator),
    normalised to the reference model size and one device."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        try:
            kind, acc = str(r["job"]), str(r["accelerator"])
            tps, params, count = float(r["tokens_per_s"]), float(r["params_b"]), float(r.get("accelerator_count") or 1)
        except (KeyError, TypeError, ValueError):
            continue
        if kind not in ("generate", "score", "train") or tps <= 0 or params <= 0:
            continue
        by.setdefault((kind, acc), []).append(tps * params / a.reference_params_b / count)
    return {k: statistics.median(v) for k, v in by.items()}


# ------------------------------------------------------------------------------- the plan
@dataclass
class Scope:
    """What a ``--select`` asks for: the stages, the prompts of the per-prompt stages, the prompts
    that get runs, and whether the shared work (controls, the no-prompt baselines, the base-model
    eval) is in."""

    stages: set[str]
    prompts: list[str]
    run_prompts: list[str]
    shared: bool


def scope_of(cfg: ExperimentConfig, select: Sequence[str]) -> Scope:
    """``select``: stage names and/or prompt keys (a prompt key restricts the per-prompt stages to those
    prompts and drops the shared work: datagen, controls, the base eval); empty: everything."""
    every = GPU_STAGES + API_STAGES
    unknown = [s for s in select if s not in every and s not in cfg.prompts]
    if unknown:
        raise PlanError(
            f"--select: {', '.join(unknown)} is neither a stage ({', '.join(every)}) nor a prompt of {cfg.name}"
        )
    sel_stages = {s for s in select if s in every}
    sel_prompts = [s for s in select if s in cfg.prompts]
    stages_on = set(sel_stages or every)
    if sel_prompts and not sel_stages:
        stages_on -= {"datagen", "datagen_api"}
    return Scope(
        stages=stages_on,
        prompts=sel_prompts or list(cfg.prompts),
        run_prompts=[p for p in sel_prompts if p not in cfg.candidates] if sel_prompts else cfg.run_prompt_keys,
        shared=not sel_prompts,
    )


@dataclass
class StageEstimator:
    """The estimate of each stage of one experiment: requests, tokens and hours (on the on-demand and
    the spot choice of accelerator) or API calls and dollars."""

    cfg: ExperimentConfig
    a: Assumptions
    scope: Scope
    params_b: float
    candidates: list[Candidate]
    on_demand: Offer | None
    spot: Offer | None
    measured: dict[tuple[str, str], float]

    def hours(self, kind: str, tokens: float, factor: float = 1.0) -> tuple[float, float]:
        out = []
        for offer in (self.on_demand, self.spot):
            cand = offer.candidate if offer else self.candidates[0]
            out.append(tokens / (throughput(kind, cand, self.params_b, self.a, self.measured) * factor) / 3600.0)
        return out[0], out[1]

    @property
    def _prompt_tokens(self) -> int:
        return self.a.prompt_tokens + self.a.prefix_tokens

    @property
    def _train_completion(self) -> float:
        dg = self.cfg.data.datagen
        return completion(dg.max_tokens, self.a) if dg.mode != "file" else self.a.completion_tokens

    def datagen(self) -> Stage | None:
        # off-policy: datagen.backend says who serves the model — the generate job (GPU) or an API
        d = self.cfg.data
        dg = d.datagen
        on_gpu = dg.mode == "on_policy" or (dg.mode == "off_policy" and dg.backend == "generate_job")
        if "datagen" not in self.scope.stages or not on_gpu:
            return None
        n = d.n_train
        t_in, t_out = n * self._prompt_tokens, n * completion(dg.max_tokens, self.a)
        if dg.mode == "on_policy":
            factor, note = 1.0, f"{n} on-policy answers, max_tokens {dg.max_tokens}"
        else:  # throughput scales inversely with the size of the model that generates
            factor = self.params_b / (model_params_b(str(dg.model)) or self.params_b)
            note = f"{n} off-policy answers by {dg.model}, max_tokens {dg.max_tokens}"
        return Stage("datagen", 1, 1, n, t_in, t_out, *self.hours("generate", t_out, factor), note=note)

    def datagen_api(self) -> ApiStage | None:
        d = self.cfg.data
        dg = d.datagen
        if "datagen_api" not in self.scope.stages or dg.mode != "off_policy" or dg.backend != "openai":
            return None
        n = d.n_train
        t_in, t_out = n * self._prompt_tokens, n * completion(dg.max_tokens, self.a)
        return ApiStage("datagen_api", str(dg.model), n, t_in, t_out, estimate_cost(str(dg.model), t_in, t_out))

    def elicitation(self) -> Stage | None:
        """Every prompt (and none) on the held-out instructions, base model."""
        if "elicitation" not in self.scope.stages:
            return None
        cfg = self.cfg
        k = len(self.scope.prompts) + (1 if self.scope.shared else 0)
        n_held_out = held_out_instructions(cfg)
        req = k * n_held_out * cfg.eval.n_per_instruction
        t_in, t_out = req * self._prompt_tokens, req * completion(cfg.elicitation.max_tokens, self.a)
        return Stage(
            "elicitation",
            1,
            k,
            req,
            t_in,
            t_out,
            *self.hours("generate", t_out),
            note=f"{k} prompt(s) × {n_held_out} instructions, max_tokens {cfg.elicitation.max_tokens}",
        )

    def logprobs(self) -> Stage | None:
        """Single-trait completion sets, then scoring under every prompt and none."""
        if "logprobs" not in self.scope.stages:
            return None
        lp = self.cfg.logprobs
        sets = len(lp.single_trait_prompts)
        gen_req = sets * lp.n_train_sample if self.scope.shared else 0
        k = len(self.scope.prompts) + (1 if self.scope.shared else 0)
        pairs = lp.n_train_sample * k * (1 + sets)
        seq = self._prompt_tokens + self._train_completion
        gen_out = gen_req * self._train_completion
        score_tokens = pairs * seq
        g = self.hours("generate", gen_out)
        s = self.hours("score", score_tokens)
        return Stage(
            "logprobs",
            (1 if gen_req else 0) + 1,
            (sets if gen_req else 0) + k,
            gen_req + pairs,
            score_tokens + gen_req * self._prompt_tokens,
            gen_out,
            g[0] + s[0],
            g[1] + s[1],
            note=f"{pairs} pairs ({k} prompt(s) × {lp.n_train_sample} × {1 + sets} set(s))",
        )

    def training(self, n_runs: int) -> Stage | None:
        if "training" not in self.scope.stages or not n_runs:
            return None
        cfg, d = self.cfg, self.cfg.data
        per_run = d.n_train * cfg.training.epochs * (self._prompt_tokens + self._train_completion)
        factor = self.a.qlora_factor if cfg.model.load_in_4bit else 1.0
        tokens = n_runs * per_run
        return Stage(
            "training",
            n_runs,
            n_runs,
            n_runs * d.n_train * cfg.training.epochs,
            tokens,
            0,
            *self.hours("train", tokens, factor),
            note=f"{n_runs} runs × {training_steps(cfg)} steps" + (" (4-bit base)" if cfg.model.load_in_4bit else ""),
        )

    def eval(self, n_runs: int) -> Stage | None:
        shared = self.scope.shared
        if "eval" not in self.scope.stages or not (n_runs or shared):
            return None
        cfg = self.cfg
        n_eval, per_ins, ckpts = eval_instructions(cfg), cfg.eval.n_per_instruction, evaluated_checkpoints(cfg)
        conds = len(cfg.eval.conditions)
        adapters = n_runs * ckpts
        req = adapters * n_eval * conds * per_ins + (n_eval * per_ins if shared else 0)
        t_in, t_out = req * self._prompt_tokens, req * completion(cfg.eval.max_tokens, self.a)
        jobs = max(1, math.ceil(adapters / self.a.adapters_per_eval_job))
        return Stage(
            "eval",
            jobs,
            adapters + (1 if shared else 0),
            req,
            t_in,
            t_out,
            *self.hours("generate", t_out, self.a.lora_decode_factor),
            note=f"{adapters} adapter(s) ({n_runs} runs × {ckpts} ckpt) × {conds} cond × {n_eval}, "
            f"max_tokens {cfg.eval.max_tokens}",
        )

    def rephrasings(self) -> ApiStage | None:
        """Every prompt's diverse pool (when the study has mix runs), and a close pool per close_mix run."""
        cfg, r, a = self.cfg, self.cfg.rephrasings, self.a
        prompts = self.scope.prompts
        pools = len(prompts) * ("mix" in cfg.inoculation.prefix_types) + sum(
            1 for k, t in cfg.run_partition_keys() if t == "close_mix" and k in prompts
        )
        if "rephrasings" not in self.scope.stages or r.source != "generate" or not pools:
            return None
        calls = pools * math.ceil(r.n / r.batch_size)
        t_in, t_out = calls * a.rephrasing_prompt_tokens, pools * r.n * a.rephrasing_tokens
        return ApiStage("rephrasings", r.model, calls, t_in, t_out, estimate_cost(r.model, t_in, t_out))

    def judging(self, stages: Sequence[Stage]) -> ApiStage | None:
        """Every elicitation and eval completion, once per trait an API judge scores."""
        if "judging" not in self.scope.stages:
            return None
        cfg, a = self.cfg, self.a
        judged = [
            t for t in cfg.traits if t.judge is not None and t.judge.kind in ("llm", "em_coherence", "em_alignment")
        ]
        by_stage = {s.stage: s.requests for s in stages if s.stage in ("elicitation", "eval")}
        completions = sum(by_stage.values())
        if not (judged and completions):
            return None
        calls = completions * len(judged)
        lengths = {"elicitation": cfg.elicitation.max_tokens, "eval": cfg.eval.max_tokens}
        answers = sum(n * completion(lengths[stage], a) for stage, n in by_stage.items())
        t_in = calls * (a.judge_template_tokens + a.prompt_tokens) + len(judged) * answers
        t_out = calls * cfg.judge.max_tokens
        return ApiStage("judging", cfg.judge.model, calls, t_in, t_out, estimate_cost(cfg.judge.model, t_in, t_out))


def build_plan(
    cfg: ExperimentConfig,
    prices: Prices | None,
    *,
    select: Sequence[str] = (),
    assumptions: Assumptions | None = None,
    measured_rows: Iterable[dict] = (),
) -> Plan:
    """The estimate for ``cfg``. ``select``: stage names and/or prompt keys (a prompt key restricts the
    per-prompt stages to those prompts and drops the shared work: datagen, controls, the base eval)."""
    a = assumptions or Assumptions()
    if cfg.data is None:
        raise PlanError(f"{cfg.name}: no `data:` section — an imported experiment has nothing to compute")
    scope = scope_of(cfg, select)
    candidates = parse_candidates(list(cfg.compute.accelerators))
    params = model_params_b(cfg.model.id)
    params_b = params if params is not None else DEFAULT_PARAMS_B
    on_demand = prices.cheapest(candidates, spot=False) if prices else None
    spot = prices.cheapest(candidates, spot=True) if prices else None
    measured = calibrate(measured_rows, a)
    est = StageEstimator(cfg, a, scope, params_b, candidates, on_demand, spot, measured)

    n_runs = run_count(cfg, scope.run_prompts, scope.shared)
    gpu = (est.datagen(), est.elicitation(), est.logprobs(), est.training(n_runs), est.eval(n_runs))
    stages = [s for s in gpu if s is not None]
    api = [s for s in (est.datagen_api(), est.rephrasings(), est.judging(stages)) if s is not None]

    packed, per_job = _totals(
        stages, a, params_b, cfg.compute.max_clusters, cfg.compute.idle_minutes_to_autostop, on_demand, spot
    )
    return Plan(
        experiment=cfg.name,
        model_id=cfg.model.id,
        params_b=params_b,
        candidates=candidates,
        on_demand=on_demand,
        spot=spot,
        use_spot=cfg.compute.use_spot,
        max_budget_usd=cfg.compute.max_budget_usd,
        max_clusters=cfg.compute.max_clusters,
        stages=stages,
        api=api,
        packed=packed,
        per_job=per_job,
        assumptions=a,
        measured={f"{k[0]} on {k[1]}": f"{v:.0f} tokens/s at {a.reference_params_b:g}B" for k, v in measured.items()},
        selection=list(select),
    )


def overhead_minutes(a: Assumptions, params_b: float) -> tuple[float, float]:
    """(minutes to start a cluster and download the weights, minutes to load the model for one job)."""
    start = a.cluster_start_min + params_b * 2.0 / a.download_gb_per_min
    load = a.load_min_per_10b * max(params_b, 1.0) / 10.0
    return start, load


def _totals(
    stages: list[Stage],
    a: Assumptions,
    params_b: float,
    max_clusters: int,
    idle_min: int,
    on_demand: Offer | None,
    spot: Offer | None,
) -> tuple[ModeTotal, ModeTotal]:
    start, load = overhead_minutes(a, params_b)
    out = []
    for mode in ("packed", "per_job"):
        jobs = starts = 0
        overhead_min = 0.0
        for s in stages:
            if mode == "packed":
                n_starts = min(max_clusters, s.jobs)
                overhead_min += n_starts * (start + idle_min) + s.jobs * load
                jobs += s.jobs
            else:
                n_starts = s.jobs_per_job
                overhead_min += n_starts * (start + load + a.per_job_teardown_min)
                jobs += s.jobs_per_job
            starts += n_starts
        od_h = sum(s.hours_on_demand for s in stages)
        sp_h = sum(s.hours_spot for s in stages)
        oh = overhead_min / 60.0
        usd_od = (od_h + oh) * on_demand.usd_per_hour if on_demand else None
        usd_sp = (sp_h + oh) * spot.usd_per_hour if spot else None
        out.append(ModeTotal(mode, jobs, starts, od_h, sp_h, oh, usd_od, usd_sp))
    return out[0], out[1]
