"""Parse the original study's result files into tidy tables (the warehouse's shapes).

Every malformed input raises `ReferenceFormatError` naming the file and the JSON path of the
problem (`scores_x.json: $.clown_persona.steps["313"].default.Playful.values[17]: expected a
number, got "abc"`). Parsing is complete before anything is written, so a bad file never leaves a
half-import behind. Formats: SPEC.md §15, SPEC-DETAILED.md §2.6.
"""

from __future__ import annotations

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

    def add(self, table: str, frame: pd.DataFrame) -> None:
        if table in self.tables:
            frame = pd.concat([self.tables[table], frame], ignore_index=True)
        self.tables[table] = frame

    def merge(self, other: "Parsed") -> None:
        for table, frame in other.tables.items():
            self.add(table, frame)
        self.notes += other.notes


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
        raise ReferenceFormatError(path, "$", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


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
    if not (math.isclose(stored, recomputed, rel_tol=1e-6, abs_tol=1e-6) or (math.isnan(stored) and math.isnan(recomputed))):
        w.fail(_p(path, "mean"), f"stored mean {stored!r} differs from the mean of its values {recomputed!r}")


@dataclass
class _Run:
    key: str
    path: str
    entry: dict[str, Any]
    prompt_key: str | None
    prefix_type: str | None


def _runs(w: _Walker, data: dict[str, Any], out: Parsed, control_key: str, file: str | Path) -> Iterator[_Run]:
    """Each run of a scores file with its prompt and prefix type; failed runs become notes."""
    for run_key, entry in data.items():
        rpath = _p("$", run_key)
        entry = w.obj(entry, rpath)
        if "error" in entry:
            out.notes.append(f"{Path(file).name}: run {run_key!r} skipped (failed in the original study: {entry['error']})")
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
        try:
            step = int(step_key)
        except ValueError:
            w.fail(spath, f"step key {step_key!r} is not an integer")
        yield step, spath, w.obj(content, spath)


def _conditions(w: _Walker, content: dict[str, Any], path: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for cond, value in content.items():
        cpath = _p(path, cond)
        if cond not in CONDITIONS:
            w.fail(cpath, f"unknown condition {cond!r}; expected one of {CONDITIONS}")
        yield cond, cpath, w.obj(value, cpath)


def _run_row(batch: str, run: _Run, steps: list[int], lr: float | None) -> dict[str, Any]:
    return {
        "batch": batch, "run": f"{batch}/{run.key}", "prompt_key": run.prompt_key, "prefix_type": run.prefix_type,
        "learning_rate": lr, "n_steps": max(steps),
    }  # fmt: skip


def parse_scores(file: str | Path, batch: str, control_key: str = CONTROL_KEY) -> Parsed:
    """`scores_*.json` → `runs` and `trait_scores` rows; run ids are `<batch>/<run key>`."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if not data:
        w.fail("$", "no runs in the file")
    out = Parsed()
    runs, frames = [], []
    n_eval: int | None = None
    for run in _runs(w, data, out, control_key, file):
        lr = w.number(run.entry["lr"], _p(run.path, "lr")) if "lr" in run.entry else None
        step_numbers = []
        for step, spath, conds in _steps(w, run):
            step_numbers.append(step)
            for cond, cpath, traits in _conditions(w, conds, spath):
                for trait, stat in traits.items():
                    tpath = _p(cpath, trait)
                    stat = w.obj(stat, tpath)
                    values = w.numbers(w.key(stat, "values", tpath), _p(tpath, "values"), n_eval)
                    n_eval = len(values) if n_eval is None else n_eval
                    _check_mean(w, stat, values, tpath)
                    frames.append(
                        pd.DataFrame(
                            {
                                "run": f"{batch}/{run.key}",
                                "step": step,
                                "condition": cond,
                                "trait": trait,
                                "instruction_idx": np.arange(len(values), dtype=np.int32),
                                "score": values,
                            }
                        )
                    )
        runs.append(_run_row(batch, run, step_numbers, lr))
    if not runs:
        w.fail("$", "every run in the file failed; nothing to import")
    out.add("runs", pd.DataFrame(runs))
    out.add("trait_scores", pd.concat(frames, ignore_index=True))
    return out


def parse_elicitation(file: str | Path) -> Parsed:
    """`elicitation_scores*.json` → `elicitation_scores` rows ('neutral' is the no-prefix baseline)."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    if "neutral" not in data:
        w.fail("$", "missing the 'neutral' baseline entry")
    out, frames = Parsed(), []
    for key, entry in data.items():
        epath = _p("$", key)
        entry = w.obj(entry, epath)
        if "error" in entry:
            out.notes.append(f"{Path(file).name}: prompt {key!r} skipped (failed in the original study: {entry['error']})")
            continue
        scores = w.obj(w.key(entry, "scores", epath), _p(epath, "scores"))
        for trait, stat in scores.items():
            tpath = _p(_p(epath, "scores"), trait)
            stat = w.obj(stat, tpath)
            values = w.numbers(w.key(stat, "values", tpath), _p(tpath, "values"))
            _check_mean(w, stat, values, tpath)
            frames.append(
                pd.DataFrame(
                    {"prompt_key": key, "trait": trait, "instruction_idx": np.arange(len(values), dtype=np.int32), "score": values}
                )
            )
    out.add("elicitation_scores", pd.concat(frames, ignore_index=True))
    return out


def parse_losses(file: str | Path, batch: str) -> Parsed:
    """`losses_*.json` → `training_losses` rows (one per logged optimizer step)."""
    w = _Walker(file)
    data = w.obj(load_json(file), "$")
    rows = []
    for run_key, entries in data.items():
        rpath = _p("$", run_key)
        if not isinstance(entries, list):
            w.fail(rpath, f"expected a list of log entries, got {type(entries).__name__}")
        for i, entry in enumerate(entries):
            epath = f"{rpath}[{i}]"
            entry = w.obj(entry, epath)
            step = w.key(entry, "step", epath)
            if isinstance(step, bool) or not isinstance(step, int):
                w.fail(_p(epath, "step"), f"expected an integer step, got {step!r}")
            rows.append(
                {
                    "run": f"{batch}/{run_key}",
                    "step": step,
                    "loss": w.number(w.key(entry, "loss", epath), _p(epath, "loss")),
                    "learning_rate": w.number(entry["learning_rate"], _p(epath, "learning_rate")) if "learning_rate" in entry else None,
                    "grad_norm": w.number(entry["grad_norm"], _p(epath, "grad_norm")) if "grad_norm" in entry else None,
                    "epoch": w.number(entry["epoch"], _p(epath, "epoch")) if "epoch" in entry else None,
                }
            )
    out = Parsed()
    out.add("training_losses", pd.DataFrame(rows))
    return out


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
            frames.append(pd.DataFrame({"prompt_key": None, "vector": f"{m.group(1)}_default", "example_idx": np.arange(len(v)), "lp": v}))
    lengths = {"train": len(vectors["train_default"]), "ctrl": len(vectors["ctrl_default"])}
    for key, entry in prompts.items():
        ppath = _p("$.prompts", key)
        entry = w.obj(entry, ppath)
        if "lp_train_inoc" not in entry:
            w.fail(ppath, "missing key 'lp_train_inoc'")
        for field_name, name in _PROMPT_VECTORS.items():
            if field_name not in entry:
                continue
            expected = lengths["train"] if field_name.startswith("lp_train") else (
                lengths["ctrl"] if field_name == "lp_ctrl_inoc" else None
            )
            v = w.numbers(entry[field_name], _p(ppath, field_name), expected)
            frames.append(pd.DataFrame({"prompt_key": key, "vector": name, "example_idx": np.arange(len(v)), "lp": v}))
        if "perplexity_heuristic" in entry:
            stored = w.number(entry["perplexity_heuristic"], _p(ppath, "perplexity_heuristic"))
            diff = np.asarray(entry["lp_train_inoc"], float) - vectors["train_default"]
            recomputed = float(np.nanmean(diff))
            if not math.isclose(stored, recomputed, rel_tol=1e-6, abs_tol=1e-9):
                w.fail(_p(ppath, "perplexity_heuristic"), f"stored {stored!r} differs from the mean of its vectors {recomputed!r}")
    out = Parsed()
    out.add("logprob_vectors", pd.concat(frames, ignore_index=True))
    return out


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
    return out


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
                        rate = float(((coh[paired] > c_thr) & (ali[paired] < a_thr)).mean()) if paired.any() else math.nan
                        if not (math.isclose(stored, rate, abs_tol=1e-9) or (math.isnan(stored) and math.isnan(rate))):
                            w.fail(_p(cpath, "em_rate"), f"stored {stored!r} differs from the rate of its values {rate!r}")
                    frames.append(
                        pd.DataFrame(
                            {
                                "run": f"{batch}/{run.key}", "step": step, "eval_set": eval_set, "condition": cond,
                                "instruction_idx": np.arange(len(coh), dtype=np.int32), "coherence": coh, "alignment": ali,
                                "coherence_threshold": c_thr, "alignment_threshold": a_thr,
                            }
                        )
                    )  # fmt: skip
        runs.append(_run_row(batch, run, step_numbers, None))
    if not runs:
        w.fail("$", "every run in the file failed; nothing to import")
    out.add("runs", pd.DataFrame(runs))
    out.add("em_scores", pd.concat(frames, ignore_index=True))
    return out
