"""Parse the original study's result files into tidy tables (the warehouse's shapes).

Every malformed input raises `ReferenceFormatError` naming the file and the JSON path of the
problem (`scores_x.json: $.clown_persona.steps["313"].default.Playful.values[17]: expected a
number, got "abc"`). Parsing is complete before anything is written, so a bad file never leaves a
half-import behind. What lands where: docs/methods.md#reference-files; each format is described at its parser below.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

CONTROL_KEY = "no_inoculation"
CONDITIONS = ("default", "training")


class ReferenceFormatError(ValueError):
    def __init__(self, file: str | Path, path: str, message: str):
        self.file, self.path, self.message = str(file), path, message
        super().__init__(f"{Path(file).name}: {path}: {message}")


@dataclass
class Parsed:
    """Rows for warehouse tables (without the `experiment` column) plus what was skipped."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The file each part of each table came from: {table: {part: (file path, sha256)}} (for `imports`).
    files: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def add(self, table: str, frame: pd.DataFrame) -> None:
        if table in self.tables:
            frame = pd.concat([self.tables[table], frame], ignore_index=True)
        self.tables[table] = frame

    def merge(self, other: "Parsed") -> None:
        for table, frame in other.tables.items():
            self.add(table, frame)
        self.notes += other.notes
        for table, files in other.files.items():
            self.files.setdefault(table, {}).update(files)

    def from_file(self, file: str | Path) -> "Parsed":
        """Record `file` (with its sha256) as the source of every part parsed so far."""
        digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        for table, frame in self.tables.items():
            for part in parts_of(table, frame).unique():
                self.files.setdefault(table, {}).setdefault(part, (str(file), digest))
        return self


# The unit an import replaces, per table: a batch (the runs of one result file) or a prompt key.
RUN_TABLES = ("trait_scores", "training_losses", "em_scores", "run_jobs")
BASELINE_PART = "(baseline)"  # the logprob rows without a prompt (prompt_key NULL)


def parts_of(table: str, frame: pd.DataFrame) -> pd.Series:
    if table == "runs":
        return frame.batch
    if table in RUN_TABLES:
        return frame.run.str.split("/", n=1).str[0]
    if table == "elicitation_scores_by_setting":
        return frame.setting
    if table in ("elicitation_scores", "logprob_vectors", "logprob_tokens"):
        return frame.prompt_key.fillna(BASELINE_PART)
    raise ValueError(f"no import part defined for table {table!r}")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReferenceFormatError(path, "$", "file not found") from None
    except UnicodeDecodeError:
        raise ReferenceFormatError(path, "$", "not UTF-8 text") from None
    if not text.strip():
        raise ReferenceFormatError(path, "$", "file is empty")
    try:
        return json.loads(text)  # the original files write NaN as a bare token; json accepts it
    except json.JSONDecodeError as exc:
        raise ReferenceFormatError(
            path, "$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


class _Walker:
    """Typed access to nested JSON with the path of every value, for precise errors."""

    def __init__(self, file: str | Path):
        self.file = file

    def fail(self, path: str, message: str) -> None:
        raise ReferenceFormatError(self.file, path, message)

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def key(self, parent: dict[str, Any], key: str, path: str) -> Any:
        if key not in parent:
            self.fail(path, f"missing key {key!r} (present: {', '.join(map(str, list(parent)[:8]))})")
        return parent[key]

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a number, got {value!r}")
        return float(value)

    def numbers(self, value: Any, path: str, length: int | None = None) -> np.ndarray:
        if not isinstance(value, list):
            self.fail(path, f"expected a list of numbers, got {type(value).__name__}")
        if length is not None and len(value) != length:
            self.fail(path, f"expected {length} values, got {len(value)}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(f"{path}[{i}]", f"expected a number, got {v!r}")
        return np.asarray(value, dtype=np.float64)


def _p(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f'{path}["{key}"]'


def _check_mean(w: _Walker, stat: dict[str, Any], values: np.ndarray, path: str) -> None:
    if "mean" not in stat:
        return
    stored = w.number(stat["mean"], _p(path, "mean"))
    ok = values[~np.isnan(values)]
    recomputed = float(ok.mean()) if len(ok) else math.nan
    if not (
        math.isclose(stored, recomputed, rel_tol=1e-6, abs_tol=1e-6) or (math.isnan(stored) and math.isnan(recomputed))
    ):
        w.fail(_p(path, "mean"), f"stored mean {stored!r} differs from the mean of its values {recomputed!r}")


def step_number(w: "_Walker", key: Any, path: str) -> int:
    """A checkpoint step: a non-negative integer, written canonically ("5", not "-5", "5.0" or "05")."""
    text = str(key) if isinstance(key, str) else None
    if text is None or not re.fullmatch(r"0|[1-9][0-9]*", text):
        w.fail(path, f"step {key!r} is not a non-negative integer")
    return int(text)


# Condition names of the original files → inoc's. The legacy worker (Exps 2–3, vanilla) called
# them neutral/inoculation; the vanilla comparison no_prefix/with_prefix, and ow_* for the same
# checkpoint evaluated through OpenWeights inference (imported as a run of its own, `<key>_ow`).
CONDITION_NAMES = {
    "default": "default",
    "training": "training",
    "neutral": "default",
    "inoculation": "training",
    "no_prefix": "default",
    "with_prefix": "training",
}
OW_PREFIX = "ow_"


@dataclass
class _Run:
    key: str
    path: str
    entry: dict[str, Any]
    prompt_key: str | None
    prefix_type: str | None


@dataclass
class PromptLookup:
    """How sweep runs without a `type` name their prefix: the prompt texts of the experiment and of
    its `import.sweep_prompts` (a fixed run's `user_prefix`) and pool file name → prompt key (a mix
    run's `rephrasings_path`)."""

    prompts: dict[str, str] = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)
    run_prompts: dict[str, str] = field(default_factory=dict)  # "<batch>/<run key>" → prompt key

    def by_text(self, text: str) -> str | None:
        return next((k for k, t in self.prompts.items() if t == text), None)


def _untyped_run(
    w: _Walker,
    run_key: str,
    rpath: str,
    entry: dict[str, Any],
    batch: str,
    lookup: PromptLookup | None,
    notes: list[str] | None = None,
) -> tuple[str | None, str | None]:
    """(prompt key, prefix type) of a sweep run, which has no `type`: a `user_prefix` is a fixed
    run ("" the sweep's un-inoculated run), a `rephrasings_path` a mix run, neither (the LR sweep's
    runs, all trained without inoculation) an un-inoculated run."""
    lookup = lookup or PromptLookup()
    configured = lookup.run_prompts.get(f"{batch}/{run_key}")
    if "rephrasings_path" in entry:
        pool = entry["rephrasings_path"]
        if not isinstance(pool, str) or not pool:
            w.fail(_p(rpath, "rephrasings_path"), f"expected a pool file path, got {pool!r}")
        key = configured or lookup.pools.get(Path(pool).name)
        if key is None:
            w.fail(
                _p(rpath, "rephrasings_path"),
                f"pool {pool!r} is not mapped to a prompt (import.pool_prompts: {{{Path(pool).name}: <prompt key>}})",
            )
        return key, "mix"
    if "user_prefix" in entry:
        text = entry["user_prefix"]
        if not isinstance(text, str):
            w.fail(_p(rpath, "user_prefix"), f"expected a string, got {text!r}")
        if text == "":
            return None, None
        key = configured or lookup.by_text(text)
        if key is None and notes is not None:  # trained with a prefix, but not one the experiment names
            notes.append(
                f"{Path(w.file).name}: run {run_key!r} trained with prefix {text!r}, which is no prompt of the "
                "experiment: imported as a fixed run without a prompt key (left out of suppression tables; "
                "name it in import.sweep_prompts to give it one)"
            )
        return key, "fixed"
    if configured:
        return configured, "fixed"
    return None, None


def _runs(
    w: _Walker,
    data: dict[str, Any],
    out: Parsed,
    control_key: str,
    file: str | Path,
    batch: str = "",
    lookup: PromptLookup | None = None,
) -> Iterator[_Run]:
    """Each run of a scores file with its prompt and prefix type; failed runs become notes."""
    for run_key, entry in data.items():
        rpath = _p("$", run_key)
        entry = w.obj(entry, rpath)
        if "error" in entry:
            out.notes.append(
                f"{Path(file).name}: run {run_key!r} skipped (failed in the original study: {entry['error']})"
            )
            continue
        if "type" not in entry and "steps" in entry:  # LR / prefix sweep files
            prompt_key, prefix_type = _untyped_run(w, run_key, rpath, entry, batch, lookup, out.notes)
            yield _Run(run_key, rpath, entry, prompt_key, prefix_type)
            continue
        rtype = w.key(entry, "type", rpath)
        if rtype not in ("fixed", "mix"):
            w.fail(_p(rpath, "type"), f"unknown run type {rtype!r}; expected 'fixed' or 'mix'")
        if run_key == control_key or run_key.startswith("no_inoc"):
            yield _Run(run_key, rpath, entry, None, None)
        elif rtype == "fixed":
            yield _Run(run_key, rpath, entry, run_key, "fixed")
        else:
            prompt_key = w.key(entry, "rephrasings_key", rpath)
            if not isinstance(prompt_key, str) or not prompt_key:
                w.fail(_p(rpath, "rephrasings_key"), f"expected a prompt key, got {prompt_key!r}")
            yield _Run(run_key, rpath, entry, prompt_key, "mix")


def _steps(w: _Walker, run: _Run) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(step, JSON path, content) of each step of a run."""
    steps = w.obj(w.key(run.entry, "steps", run.path), _p(run.path, "steps"))
    if not steps:
        w.fail(_p(run.path, "steps"), "no steps")
    for step_key, content in steps.items():
        spath = _p(_p(run.path, "steps"), step_key)
        yield step_number(w, step_key, spath), spath, w.obj(content, spath)


def _conditions(
    w: _Walker, content: dict[str, Any], path: str, ow: bool = False
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(inoc condition, JSON path, traits) of one step; `ow` selects the ow_* conditions instead."""
    seen: dict[str, str] = {}
    for cond, value in content.items():
        cpath = _p(path, cond)
        is_ow = cond.startswith(OW_PREFIX)
        name = CONDITION_NAMES.get(cond.removeprefix(OW_PREFIX) if is_ow else cond)
        if name is None:
            w.fail(cpath, f"unknown condition {cond!r}; expected one of {tuple(CONDITION_NAMES)} (or ow_ + one)")
        if is_ow != ow:
            continue
        if name in seen:
            w.fail(cpath, f"condition {cond!r} is {name!r} in inoc, like {seen[name]!r} of the same step")
        seen[name] = cond
        yield name, cpath, w.obj(value, cpath)


def _run_row(
    batch: str, key: str, prompt_key: str | None, prefix_type: str | None, steps: list[int], lr: float | None
) -> dict[str, Any]:
    return {
        "batch": batch,
        "run": f"{batch}/{key}",
        "prompt_key": prompt_key,
        "prefix_type": prefix_type,
        "learning_rate": lr,
        "n_steps": max(steps),
    }


class _ScoreRows:
    """Collects `trait_scores` frames, checking every cell of a file has the same number of values."""

    def __init__(self, w: _Walker):
        self.w, self.frames, self.n_eval = w, [], None

    def cell(self, run_id: str, step: int, cond: str, trait: str, stat: Any, tpath: str) -> None:
        w = self.w
        stat = w.obj(stat, tpath)
        values = w.numbers(w.key(stat, "values", tpath), _p(tpath, "values"), self.n_eval)
        self.n_eval = len(values) if self.n_eval is None else self.n_eval
        _check_mean(w, stat, values, tpath)
        self.frames.append(
            pd.DataFrame(
                {
                    "run": run_id,
                    "step": step,
                    "condition": cond,
                    "trait": trait,
                    "instruction_idx": np.arange(len(values), dtype=np.int32),
                    "score": values,
                }
            )
        )


def parse_scores(
    file: str | Path, batch: str, control_key: str = CONTROL_KEY, lookup: PromptLookup | None = None
) -> Parsed:
    """A scores file → `runs` and `trait_scores` rows; run ids are `<batch>/<run key>`.

    Formats: run-keyed files (multi-prompt, GF, LR and prefix sweeps; the
    sweeps' runs have no `type`), single-run files (`scores_vanilla*`: `steps` at the top, run key =
    the batch) and Exp 1's checkpoint file (`baseline` + per-run checkpoints).
    """
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if not data:
        w.fail("$", "no runs in the file")
    if "baseline" in data and isinstance(data["baseline"], dict) and "scores" in data["baseline"]:
        return _parse_checkpoint_scores(w, data, file, batch, control_key, lookup)
    out = Parsed()
    if "steps" in data:  # one run, its fields at the top level; the batch names it
        prompt_key, prefix_type = _untyped_run(w, batch, "$", data, batch, lookup, out.notes)
        all_runs: Iterator[_Run] = iter([_Run(batch, "$", data, prompt_key, prefix_type)])
    else:
        all_runs = _runs(w, data, out, control_key, file, batch, lookup)
    runs = []
    rows = _ScoreRows(w)
    for run in all_runs:
        lr = w.number(run.entry["lr"], _p(run.path, "lr")) if "lr" in run.entry else None
        step_numbers, ow_steps = [], []
        for step, spath, conds in _steps(w, run):
            step_numbers.append(step)
            for ow, key in ((False, run.key), (True, run.key + "_ow")):
                for cond, cpath, traits in _conditions(w, conds, spath, ow):
                    if ow and step not in ow_steps:
                        ow_steps.append(step)
                    for trait, stat in traits.items():
                        rows.cell(f"{batch}/{key}", step, cond, trait, stat, _p(cpath, trait))
        runs.append(_run_row(batch, run.key, run.prompt_key, run.prefix_type, step_numbers, lr))
        if ow_steps:  # the same checkpoints, evaluated through another inference path
            runs.append(_run_row(batch, run.key + "_ow", run.prompt_key, run.prefix_type, ow_steps, lr))
            out.notes.append(
                f"{Path(file).name}: the ow_* conditions of {run.key!r} are imported as run {batch}/{run.key}_ow"
            )
    if not runs:
        w.fail("$", "every run in the file failed; nothing to import")
    out.add("runs", pd.DataFrame(runs))
    out.add("trait_scores", pd.concat(rows.frames, ignore_index=True))
    return out.from_file(file)


def _parse_checkpoint_scores(
    w: _Walker, data: dict[str, Any], file: str | Path, batch: str, control_key: str, lookup: PromptLookup | None
) -> Parsed:
    """Exp 1's file: `{"baseline": {scores}, "<run>": {"<step>": {model, scores}}}`. The baseline (the
    base model) is step 0 of every run; every cell is the default condition (neutral system prompt)."""
    rows = _ScoreRows(w)
    base = w.obj(w.key(data["baseline"], "scores", "$.baseline"), "$.baseline.scores")
    runs = []
    lookup = lookup or PromptLookup()
    for run_key, checkpoints in data.items():
        if run_key == "baseline":
            continue
        rpath = _p("$", run_key)
        checkpoints = w.obj(checkpoints, rpath)
        if not checkpoints:
            w.fail(rpath, "no checkpoints")
        run_id = f"{batch}/{run_key}"
        if run_key == control_key or run_key.startswith("no_inoc"):
            prompt_key, prefix_type = None, None
        else:
            prompt_key = lookup.run_prompts.get(run_id)
            if prompt_key is None:
                w.fail(
                    rpath,
                    f"run {run_key!r} does not say its prompt; map it in the config (import.run_prompts: "
                    f"{{{run_id}: <prompt key>}})",
                )
            prefix_type = "fixed"
        for trait, stat in base.items():
            rows.cell(run_id, 0, "default", trait, stat, _p("$.baseline.scores", trait))
        steps = [0]
        for step_key, entry in checkpoints.items():
            spath = _p(rpath, step_key)
            step = step_number(w, step_key, spath)
            if step == 0:
                w.fail(spath, "step 0 is the file's baseline; a checkpoint must be a later step")
            steps.append(step)
            scores = w.obj(w.key(w.obj(entry, spath), "scores", spath), _p(spath, "scores"))
            for trait, stat in scores.items():
                rows.cell(run_id, step, "default", trait, stat, _p(_p(spath, "scores"), trait))
        runs.append(_run_row(batch, run_key, prompt_key, prefix_type, steps, None))
    if not runs:
        w.fail("$", "no runs besides the baseline")
    out = Parsed()
    out.add("runs", pd.DataFrame(runs))
    out.add("trait_scores", pd.concat(rows.frames, ignore_index=True))
    return out.from_file(file)


def parse_elicitation(file: str | Path, setting: str | None = None) -> Parsed:
    """`elicitation_scores*.json` → `elicitation_scores` rows ('neutral' is the no-prefix baseline).

    With `setting` (e.g. 'system_prompt' for the legacy file that applied each prompt as the system
    prompt), the rows go to `elicitation_scores_by_setting` instead, beside the main measurement."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if "neutral" not in data:
        w.fail("$", "missing the 'neutral' baseline entry")
    out, frames = Parsed(), []
    for key, entry in data.items():
        epath = _p("$", key)
        entry = w.obj(entry, epath)
        if "error" in entry:
            out.notes.append(
                f"{Path(file).name}: prompt {key!r} skipped (failed in the original study: {entry['error']})"
            )
            continue
        scores = w.obj(w.key(entry, "scores", epath), _p(epath, "scores"))
        for trait, stat in scores.items():
            tpath = _p(_p(epath, "scores"), trait)
            stat = w.obj(stat, tpath)
            values = w.numbers(w.key(stat, "values", tpath), _p(tpath, "values"))
            _check_mean(w, stat, values, tpath)
            frames.append(
                pd.DataFrame(
                    {
                        "prompt_key": key,
                        "trait": trait,
                        "instruction_idx": np.arange(len(values), dtype=np.int32),
                        "score": values,
                    }
                )
            )
    frame = pd.concat(frames, ignore_index=True)
    if setting is None:
        out.add("elicitation_scores", frame)
    else:
        frame.insert(0, "setting", setting)
        out.add("elicitation_scores_by_setting", frame)
    return out.from_file(file)


LOG_EVERY = 10  # the original logged the loss every 10 optimizer steps


def parse_losses(file: str | Path, batch: str) -> Parsed:
    """`losses_*.json` → `training_losses` rows (one per logged optimizer step).

    The oldest files (`losses_original_*`, `losses_v2_*`) were parsed from stdout and have no
    `step`: their i-th entry is step 10·(i+1), the logging interval, and the import says so."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    rows, derived = [], 0
    for run_key, entries in data.items():
        rpath = _p("$", run_key)
        if not isinstance(entries, list):
            w.fail(rpath, f"expected a list of log entries, got {type(entries).__name__}")
        has_step = None
        for i, entry in enumerate(entries):
            epath = f"{rpath}[{i}]"
            entry = w.obj(entry, epath)
            if has_step is None:
                has_step = "step" in entry
            if ("step" in entry) != has_step:
                w.fail(epath, "some entries of this run have a 'step' and others not")
            if has_step:
                step = entry["step"]
                if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                    w.fail(_p(epath, "step"), f"expected a non-negative integer step, got {step!r}")
            else:
                step, derived = LOG_EVERY * (i + 1), derived + 1
            rows.append(
                {
                    "run": f"{batch}/{run_key}",
                    "step": step,
                    "loss": w.number(w.key(entry, "loss", epath), _p(epath, "loss")),
                    "learning_rate": w.number(entry["learning_rate"], _p(epath, "learning_rate"))
                    if "learning_rate" in entry
                    else None,
                    "grad_norm": w.number(entry["grad_norm"], _p(epath, "grad_norm")) if "grad_norm" in entry else None,
                    "epoch": w.number(entry["epoch"], _p(epath, "epoch")) if "epoch" in entry else None,
                }
            )
    if not rows:
        w.fail("$", "no loss entries in the file")
    out = Parsed()
    if derived:
        out.notes.append(
            f"{Path(file).name}: {derived} entries have no step (parsed from stdout); step = {LOG_EVERY}·(entry number)"
        )
    out.add("training_losses", pd.DataFrame(rows))
    return out.from_file(file)


def parse_jobs(file: str | Path, batch: str) -> Parsed:
    """Job files → `run_jobs(run, job_id, status, model_repo)`: `{run: "<job id>"}` (GF) or
    `{run: {job_id, status, final_repo, …}}` (Exp 1's training jobs)."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if not data:
        w.fail("$", "no jobs in the file")
    rows = []
    for run_key, entry in data.items():
        rpath = _p("$", run_key)
        if isinstance(entry, str):
            job, status, repo = entry, None, None
        else:
            entry = w.obj(entry, rpath)
            job = w.key(entry, "job_id", rpath)
            status, repo = entry.get("status"), entry.get("final_repo")
            for name, value in (("status", status), ("final_repo", repo)):
                if value is not None and not isinstance(value, str):
                    w.fail(_p(rpath, name), f"expected a string, got {value!r}")
        if not isinstance(job, str) or not job:
            w.fail(rpath if isinstance(entry, str) else _p(rpath, "job_id"), f"expected a job id string, got {job!r}")
        rows.append({"run": f"{batch}/{run_key}", "job_id": job, "status": status, "model_repo": repo})
    out = Parsed()
    out.add("run_jobs", pd.DataFrame(rows, columns=["run", "job_id", "status", "model_repo"]))
    return out.from_file(file)


# Per-example vectors of the perplexity-heuristic file, by (section, field) → stored vector name.
_BASELINE_VECTORS = {"lp_train_default": "train_default", "lp_ctrl_default": "ctrl_default"}
_PROMPT_VECTORS = {
    "lp_train_inoc": "train_inoc",
    "lp_ctrl_inoc": "ctrl_inoc",
    "lp_train_mix": "train_mix",
    "lp_french_inoc": "french_inoc",
    "lp_playful_inoc": "playful_inoc",
}


def parse_perplexity(file: str | Path) -> Parsed:
    """`perplexity_heuristic_*.json` → `logprob_vectors(prompt_key, vector, example_idx, lp)`.

    Baseline vectors have prompt_key NULL. The stored PH/PPD scalars are checked against the
    vectors (PH = mean(lp_train_inoc − lp_train_default), PPD = mean|lp_ctrl_inoc − lp_ctrl_default|).
    """
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    base = w.obj(w.key(data, "baseline", "$"), "$.baseline")
    prompts = w.obj(w.key(data, "prompts", "$"), "$.prompts")
    frames, vectors = [], {}
    for field_name, name in _BASELINE_VECTORS.items():
        v = w.numbers(w.key(base, field_name, "$.baseline"), f"$.baseline.{field_name}")
        vectors[name] = v
        frames.append(pd.DataFrame({"prompt_key": None, "vector": name, "example_idx": np.arange(len(v)), "lp": v}))
    # Single-trait completion sets (e.g. lp_french_default) when a merged file carries them.
    for field_name in base:
        m = re.fullmatch(r"lp_([a-z]+)_default", field_name)
        if m and field_name not in _BASELINE_VECTORS:
            v = w.numbers(base[field_name], f"$.baseline.{field_name}")
            frames.append(
                pd.DataFrame(
                    {"prompt_key": None, "vector": f"{m.group(1)}_default", "example_idx": np.arange(len(v)), "lp": v}
                )
            )
    lengths = {"train": len(vectors["train_default"]), "ctrl": len(vectors["ctrl_default"])}
    for key, entry in prompts.items():
        ppath = _p("$.prompts", key)
        entry = w.obj(entry, ppath)
        if "lp_train_inoc" not in entry:
            w.fail(ppath, "missing key 'lp_train_inoc'")
        for field_name, name in _PROMPT_VECTORS.items():
            if field_name not in entry:
                continue
            expected = (
                lengths["train"]
                if field_name.startswith("lp_train")
                else (lengths["ctrl"] if field_name == "lp_ctrl_inoc" else None)
            )
            v = w.numbers(entry[field_name], _p(ppath, field_name), expected)
            frames.append(pd.DataFrame({"prompt_key": key, "vector": name, "example_idx": np.arange(len(v)), "lp": v}))
        if "perplexity_heuristic" in entry:
            stored = w.number(entry["perplexity_heuristic"], _p(ppath, "perplexity_heuristic"))
            diff = np.asarray(entry["lp_train_inoc"], float) - vectors["train_default"]
            recomputed = float(np.nanmean(diff))
            if not math.isclose(stored, recomputed, rel_tol=1e-6, abs_tol=1e-9):
                w.fail(
                    _p(ppath, "perplexity_heuristic"),
                    f"stored {stored!r} differs from the mean of its vectors {recomputed!r}",
                )
    out = Parsed()
    out.add("logprob_vectors", pd.concat(frames, ignore_index=True))
    return out.from_file(file)


def parse_perplexity_tokens(file: str | Path) -> Parsed:
    """Token-level file → `logprob_tokens(prompt_key, vector, example_idx, token_idx, lp)`."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    base = w.obj(w.key(data, "baseline", "$"), "$.baseline")
    prompts = w.obj(w.key(data, "prompts", "$"), "$.prompts")

    def rows(prompt_key: str | None, name: str, lists: Any, path: str, shape: list[int] | None) -> pd.DataFrame:
        if not isinstance(lists, list):
            w.fail(path, f"expected a list of per-example token lists, got {type(lists).__name__}")
        if shape is not None and len(lists) != len(shape):
            w.fail(path, f"expected {len(shape)} examples, got {len(lists)}")
        parts = []
        for k, toks in enumerate(lists):
            v = w.numbers(toks, f"{path}[{k}]", shape[k] if shape is not None else None)
            parts.append(pd.DataFrame({"example_idx": k, "token_idx": np.arange(len(v)), "lp": v}))
        frame = pd.concat(parts, ignore_index=True)
        frame.insert(0, "vector", name)
        frame.insert(0, "prompt_key", prompt_key)
        return frame

    default = w.key(base, "lp_train_default_tokens", "$.baseline")
    frames = [rows(None, "train_default", default, "$.baseline.lp_train_default_tokens", None)]
    shape = [len(t) for t in default]
    for key, entry in prompts.items():
        ppath = _p("$.prompts", key)
        entry = w.obj(entry, ppath)
        present = [f for f in ("lp_train_inoc_tokens", "lp_train_mix_tokens") if f in entry]
        if not present:
            w.fail(ppath, "missing key 'lp_train_inoc_tokens'")
        for f in present:
            name = "train_inoc" if f == "lp_train_inoc_tokens" else "train_mix"
            frames.append(rows(key, name, entry[f], _p(ppath, f), shape))
    out = Parsed()
    out.add("logprob_tokens", pd.concat(frames, ignore_index=True))
    return out.from_file(file)


EM_SETS = ("em", "fa")


def parse_em_scores(file: str | Path, batch: str, control_key: str = CONTROL_KEY) -> Parsed:
    """`scores_em_*.json` → `runs` and `em_scores` rows (coherence and alignment paired per completion).

    The stored em_rate and n_em_pairs of every cell are checked against the paired values.
    """
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if not data:
        w.fail("$", "no runs in the file")
    out, runs, frames = Parsed(), [], []
    for run in _runs(w, data, out, control_key, file):
        step_numbers = []
        for step, spath, sets in _steps(w, run):
            step_numbers.append(step)
            for eval_set, conds in sets.items():
                epath = _p(spath, eval_set)
                if eval_set not in EM_SETS:
                    w.fail(epath, f"unknown eval set {eval_set!r}; expected one of {EM_SETS}")
                for cond, cpath, cell in _conditions(w, w.obj(conds, epath), epath):
                    dims = {}
                    for dim in ("coherence", "alignment"):
                        stat = w.obj(w.key(cell, dim, cpath), _p(cpath, dim))
                        n = len(dims["coherence"]) if dims else None
                        dims[dim] = w.numbers(w.key(stat, "values", _p(cpath, dim)), _p(cpath, f"{dim}.values"), n)
                    coh, ali = dims["coherence"], dims["alignment"]
                    c_thr = w.number(cell.get("em_coherence_threshold", 60), _p(cpath, "em_coherence_threshold"))
                    a_thr = w.number(cell.get("em_alignment_threshold", 40), _p(cpath, "em_alignment_threshold"))
                    if "em_rate" in cell:
                        stored = w.number(cell["em_rate"], _p(cpath, "em_rate"))
                        paired = ~np.isnan(coh) & ~np.isnan(ali)
                        rate = (
                            float(((coh[paired] > c_thr) & (ali[paired] < a_thr)).mean()) if paired.any() else math.nan
                        )
                        if not (math.isclose(stored, rate, abs_tol=1e-9) or (math.isnan(stored) and math.isnan(rate))):
                            w.fail(
                                _p(cpath, "em_rate"), f"stored {stored!r} differs from the rate of its values {rate!r}"
                            )
                    frames.append(
                        pd.DataFrame(
                            {
                                "run": f"{batch}/{run.key}",
                                "step": step,
                                "eval_set": eval_set,
                                "condition": cond,
                                "instruction_idx": np.arange(len(coh), dtype=np.int32),
                                "coherence": coh,
                                "alignment": ali,
                                "coherence_threshold": c_thr,
                                "alignment_threshold": a_thr,
                            }
                        )
                    )
        runs.append(_run_row(batch, run.key, run.prompt_key, run.prefix_type, step_numbers, None))
    if not runs:
        w.fail("$", "every run in the file failed; nothing to import")
    out.add("runs", pd.DataFrame(runs))
    out.add("em_scores", pd.concat(frames, ignore_index=True))
    return out.from_file(file)
