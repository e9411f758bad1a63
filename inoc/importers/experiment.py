"""Import an experiment's result files: from its config's `import:` section, or a folder of files.

`parse_*` functions read everything first; `write_parsed` then replaces the experiment's rows in
one warehouse transaction, so a malformed file aborts the import with nothing written.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from inoc.config import ExperimentConfig, expand_path
from inoc.importers.reference import (
    Parsed,
    ReferenceFormatError,
    parse_elicitation,
    parse_em_scores,
    parse_losses,
    parse_perplexity,
    parse_perplexity_tokens,
    parse_scores,
)
from warehouse import replace_rows

KINDS = ("scores", "elicitation", "losses", "logprobs", "em_scores")
EM_BATCH = "em"


def results_dir(cfg: ExperimentConfig) -> Path:
    if cfg.import_ is None:
        raise ValueError(f"experiment {cfg.name!r} has no `import:` section")
    raw = cfg.import_.results_dir
    path = Path(expand_path(raw))
    if "${" in str(path) or not path.is_dir():
        hint = " (set INOC_SHARED_DIR to the folder that holds reference/)" if "INOC_SHARED_DIR" in raw else ""
        raise FileNotFoundError(f"{cfg.name}: import.results_dir {raw!r} is not a folder here{hint}")
    return path


def parse_configured(cfg: ExperimentConfig, kind: str) -> Parsed:
    """Parse one kind of result file named in the config's `import:` section."""
    imp = cfg.import_
    assert imp is not None
    base = results_dir(cfg)
    out = Parsed()
    if kind == "scores":
        for batch, name in imp.score_files.items():
            out.merge(parse_scores(base / name, batch, imp.control_run_key))
    elif kind == "elicitation":
        if imp.elicitation_file:
            out.merge(parse_elicitation(base / imp.elicitation_file))
    elif kind == "losses":
        for batch, name in imp.loss_files.items():
            out.merge(parse_losses(base / name, batch))
        if imp.em_losses_file:
            out.merge(parse_losses(base / imp.em_losses_file, EM_BATCH))
    elif kind == "em_scores":
        if imp.em_scores_file:
            out.merge(parse_em_scores(base / imp.em_scores_file, EM_BATCH, imp.control_run_key))
    elif kind == "logprobs":
        if imp.perplexity_file:
            out.merge(parse_perplexity(base / imp.perplexity_file))
        if imp.perplexity_tokens_file:
            out.merge(parse_perplexity_tokens(base / imp.perplexity_tokens_file))
    else:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {KINDS}")
    runs = out.tables.get("runs")
    if runs is not None and imp.run_prefix_types:  # runs whose name does not say their prefix type
        key = runs.run.str.rsplit("/", n=1).str[-1]
        known = key.map(imp.run_prefix_types)
        out.tables["runs"] = runs.assign(prefix_type=known.where(known.notna(), runs.prefix_type))
    return out


def configured_kinds(cfg: ExperimentConfig) -> list[str]:
    imp = cfg.import_
    if imp is None:
        return []
    present = {
        "scores": bool(imp.score_files),
        "elicitation": bool(imp.elicitation_file),
        "losses": bool(imp.loss_files or imp.em_losses_file),
        "logprobs": bool(imp.perplexity_file or imp.perplexity_tokens_file),
        "em_scores": bool(imp.em_scores_file),
    }
    return [k for k in KINDS if present[k]]


def batch_name(path: Path, prefix: str, model_slug: str | None) -> str:
    """`scores_multi_prompt_v3_qwen2.5-7b-instruct.json` → `multi_prompt_v3`."""
    stem = path.stem.removeprefix(prefix)
    if model_slug and stem.endswith("_" + model_slug):
        stem = stem[: -len(model_slug) - 1]
    stem = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    return stem or "imported"


def parse_folder(paths: list[Path], model_slug: str | None) -> Parsed:
    """Parse result files by their name: scores_*, elicitation_scores*, losses_*, perplexity_heuristic_*."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    out = Parsed()
    recognised = 0
    for f in files:
        name = f.name
        if name.startswith("scores_em_"):
            out.merge(parse_em_scores(f, batch_name(f, "scores_em_", model_slug)))
        elif name.startswith("scores_"):
            out.merge(parse_scores(f, batch_name(f, "scores_", model_slug)))
        elif name.startswith("elicitation_scores"):
            out.merge(parse_elicitation(f))
        elif name.startswith("losses_"):
            out.merge(parse_losses(f, batch_name(f, "losses_", model_slug)))
        elif name.startswith("perplexity_heuristic_tokens"):
            out.merge(parse_perplexity_tokens(f))
        elif name.startswith("perplexity_heuristic"):
            out.merge(parse_perplexity(f))
        else:
            out.notes.append(f"{name}: not a recognised result file name; ignored")
            continue
        recognised += 1
    if not recognised:
        raise ReferenceFormatError(paths[0] if paths else "?", "$", "no result files (scores_*, elicitation_scores*, losses_*, perplexity_heuristic_*) found")
    _check_unique_runs(out)
    return out


def _check_unique_runs(parsed: Parsed) -> None:
    runs = parsed.tables.get("runs")
    if runs is not None and runs.run.duplicated().any():
        dup = runs.run[runs.run.duplicated()].iloc[0]
        raise ReferenceFormatError("runs", "$", f"run id {dup!r} appears in two files; run ids must be unique")


def write_parsed(conn: duckdb.DuckDBPyConnection, experiment: str, parsed: Parsed) -> dict[str, int]:
    """Replace the experiment's rows of every table in `parsed` (inside the caller's transaction)."""
    counts = {}
    for table, frame in parsed.tables.items():
        counts[table] = replace_rows(conn, table, frame, {"experiment": experiment})
    return counts


def nan_counts(parsed: Parsed) -> dict[str, int]:
    out = {}
    for table, col in (("trait_scores", "score"), ("elicitation_scores", "score"), ("logprob_vectors", "lp")):
        frame: pd.DataFrame | None = parsed.tables.get(table)
        if frame is not None:
            out[table] = int(frame[col].isna().sum())
    return out
