"""Import an experiment's result files: from its config's `import:` section, or a folder of files.

`parse_*` functions read everything first; `write_parsed` then writes in one warehouse transaction,
so a malformed file aborts the import with nothing written. An import adds: it replaces exactly the
batches (or, for elicitation and logprobs, the prompt keys) its files hold, records each file in
`imports`, and refuses to replace rows no import wrote (a computed experiment's runs) unless asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from inoc.config import ExperimentConfig, expand_path
from inoc.importers.reference import (
    BASELINE_PART,
    RUN_TABLES,
    Parsed,
    PromptLookup,
    ReferenceFormatError,
    parse_elicitation,
    parse_em_scores,
    parse_jobs,
    parse_losses,
    parse_perplexity,
    parse_perplexity_tokens,
    parse_scores,
    parts_of,
)
from warehouse import replace_rows

KINDS = ("scores", "elicitation", "losses", "jobs", "logprobs", "em_scores")
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
            out.merge(parse_scores(base / name, batch, imp.control_run_key, lookup_for(cfg)))
    elif kind == "elicitation":
        if imp.elicitation_file:
            out.merge(parse_elicitation(base / imp.elicitation_file))
        for setting, name in imp.elicitation_settings.items():
            out.merge(parse_elicitation(base / name, setting))
    elif kind == "jobs":
        for batch, name in imp.job_files.items():
            out.merge(parse_jobs(base / name, batch))
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
    _apply_config(cfg, out)
    return out


def _apply_config(cfg: ExperimentConfig, out: Parsed) -> None:
    imp = cfg.import_
    runs = out.tables.get("runs")
    if runs is not None and imp is not None and imp.run_prefix_types:  # runs whose name does not say their prefix type
        key = runs.run.str.rsplit("/", n=1).str[-1]
        known = key.map(imp.run_prefix_types)
        out.tables["runs"] = runs.assign(prefix_type=known.where(known.notna(), runs.prefix_type))


def configured_kinds(cfg: ExperimentConfig) -> list[str]:
    imp = cfg.import_
    if imp is None:
        return []
    present = {
        "scores": bool(imp.score_files),
        "elicitation": bool(imp.elicitation_file or imp.elicitation_settings),
        "losses": bool(imp.loss_files or imp.em_losses_file),
        "jobs": bool(imp.job_files),
        "logprobs": bool(imp.perplexity_file or imp.perplexity_tokens_file),
        "em_scores": bool(imp.em_scores_file),
    }
    return [k for k in KINDS if present[k]]


def lookup_for(cfg: ExperimentConfig) -> PromptLookup:
    imp = cfg.import_
    return PromptLookup(
        prompts={**cfg.prompts, **(imp.sweep_prompts if imp else {})},  # study prompts first: their text wins
        pools=dict(imp.pool_prompts) if imp else {},
        run_prompts=dict(imp.run_prompts) if imp else {},
    )


def batch_name(path: Path, prefix: str, model_slug: str | None) -> str:
    """`scores_multi_prompt_v3_qwen2.5-7b-instruct.json` → `multi_prompt_v3`."""
    stem = path.stem.removeprefix(prefix)
    if model_slug and stem.endswith("_" + model_slug):
        stem = stem[: -len(model_slug) - 1]
    stem = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    return stem or "imported"


def _configured_names(cfg: ExperimentConfig | None) -> dict[str, tuple[str, str]]:
    """File name → (kind, batch or setting) as the experiment's `import:` section names it, so
    `inoc import` of one of its files writes the same batch as the config's import assets."""
    imp = cfg.import_ if cfg is not None else None
    if imp is None:
        return {}
    names: dict[str, tuple[str, str]] = {}
    for kind, mapping in (
        ("scores", imp.score_files),
        ("losses", imp.loss_files),
        ("jobs", imp.job_files),
        ("elicitation_setting", imp.elicitation_settings),
    ):
        for batch, name in mapping.items():
            names[name] = (kind, batch)
    return names


def parse_folder(paths: list[Path], model_slug: str | None, cfg: ExperimentConfig | None = None) -> Parsed:
    """Parse result files by their name: scores_*, elicitation_scores*, losses_*, perplexity_heuristic_*,
    training_jobs_* / jobs_*. A file the experiment's config names keeps the config's batch."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    named = _configured_names(cfg)
    lookup = lookup_for(cfg) if cfg is not None else None
    control = cfg.import_.control_run_key if cfg is not None and cfg.import_ else "no_inoculation"
    out = Parsed()
    recognised = 0
    for f in files:
        name = f.name
        kind, batch = named.get(name, (None, None))
        if kind == "scores" or (kind is None and name.startswith("scores_") and not name.startswith("scores_em_")):
            out.merge(parse_scores(f, batch or batch_name(f, "scores_", model_slug), control, lookup))
        elif name.startswith("scores_em_"):
            out.merge(parse_em_scores(f, batch_name(f, "scores_em_", model_slug)))
        elif kind == "elicitation_setting":
            out.merge(parse_elicitation(f, batch))
        elif name.startswith("elicitation_scores"):
            out.merge(parse_elicitation(f))
        elif kind == "losses" or name.startswith("losses_"):
            out.merge(parse_losses(f, batch or batch_name(f, "losses_", model_slug)))
        elif kind == "jobs" or name.startswith(("training_jobs_", "jobs_")):
            prefix = "training_jobs_" if name.startswith("training_jobs_") else "jobs_"
            out.merge(parse_jobs(f, batch or batch_name(f, prefix, model_slug)))
        elif name.startswith("perplexity_heuristic_tokens"):
            out.merge(parse_perplexity_tokens(f))
        elif name.startswith("perplexity_heuristic"):
            out.merge(parse_perplexity(f))
        else:
            out.notes.append(f"{name}: not a recognised result file name; ignored")
            continue
        recognised += 1
    if not recognised:
        raise ReferenceFormatError(
            paths[0] if paths else "?",
            "$",
            "no result files (scores_*, elicitation_scores*, losses_*, perplexity_heuristic_*, jobs_*) found",
        )
    if cfg is not None:
        _apply_config(cfg, out)
    _check_unique_runs(out)
    return out


def _check_unique_runs(parsed: Parsed) -> None:
    runs = parsed.tables.get("runs")
    if runs is not None and runs.run.duplicated().any():
        dup = runs.run[runs.run.duplicated()].iloc[0]
        raise ReferenceFormatError("runs", "$", f"run id {dup!r} appears in two files; run ids must be unique")


# --- writing: replace exactly the parts the files hold -------------------------------------------------


def _where(table: str) -> str:
    """SQL selecting one part's rows of `table` (parameters: experiment, part)."""
    if table == "runs":
        return "experiment = ? AND batch = ?"
    if table in RUN_TABLES:
        return "experiment = ? AND starts_with(run, ? || '/')"
    if table == "elicitation_scores_by_setting":
        return "experiment = ? AND setting = ?"
    return f"experiment = ? AND coalesce(prompt_key, '{BASELINE_PART}') = ?"


class ImportRefused(ValueError):
    """The import would replace rows an import did not write (an experiment's computed results)."""


@dataclass
class TableReport:
    table: str
    rows: int
    added: dict[str, int] = field(default_factory=dict)  # part → rows written
    replaced: dict[str, tuple[int, int]] = field(default_factory=dict)  # part → (rows before, rows after)
    unchanged: list[str] = field(default_factory=list)  # parts replaced from the very same file


def _existing(conn: duckdb.DuckDBPyConnection, table: str, experiment: str, part: str) -> int:
    return conn.execute(f'SELECT count(*) FROM "{table}" WHERE {_where(table)}', [experiment, part]).fetchone()[0]


def _imported_before(conn: duckdb.DuckDBPyConnection, experiment: str, table: str, part: str) -> list[str]:
    rows = conn.execute(
        "SELECT sha256 FROM imports WHERE experiment = ? AND table_name = ? AND part = ?", [experiment, table, part]
    ).fetchall()
    return [r[0] for r in rows]


def write_parsed(
    conn: duckdb.DuckDBPyConnection, experiment: str, parsed: Parsed, replace_computed: bool = False
) -> dict[str, TableReport]:
    """Write the parsed rows, replacing exactly the parts (batches, prompt keys) they hold; every
    other row of the experiment stays. Rows an import did not write (a computed experiment's own
    runs) are replaced only with `replace_computed`; otherwise `ImportRefused` is raised before
    anything is changed. Runs inside the caller's transaction; records provenance in `imports`."""
    plan: list[tuple[str, str, pd.DataFrame, int]] = []
    computed: list[str] = []
    for table, frame in parsed.tables.items():
        parts = parts_of(table, frame)
        for part, rows in frame.groupby(parts, sort=False):
            before = _existing(conn, table, experiment, part)
            if before and not _imported_before(conn, experiment, table, part):
                computed.append(f"{table} {part!r} ({before} rows)")
            plan.append((table, part, rows, before))
    if computed and not replace_computed:
        raise ImportRefused(
            f"{experiment}: refused, the import would replace rows an import did not write (computed results): "
            f"{'; '.join(computed[:6])}{' …' if len(computed) > 6 else ''}. Nothing was written; rename the batch "
            "(the file name) or pass --replace-computed to replace them"
        )
    reports: dict[str, TableReport] = {}
    digests = {table: files for table, files in parsed.files.items()}
    for table, part, rows, before in plan:
        rep = reports.setdefault(table, TableReport(table, 0))
        previous = _imported_before(conn, experiment, table, part)
        if table in ("logprob_vectors", "logprob_tokens"):  # bulk tables: through the warehouse's public write function
            replace_rows(
                conn, table, rows, {"experiment": experiment, "prompt_key": None if part == BASELINE_PART else part}
            )
        else:
            conn.execute(f'DELETE FROM "{table}" WHERE {_where(table)}', [experiment, part])
            conn.register("_inoc_import", rows.assign(experiment=experiment))
            try:
                conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _inoc_import')
            finally:
                conn.unregister("_inoc_import")
        rep.rows += len(rows)
        file, digest = digests.get(table, {}).get(part, ("(unknown)", ""))
        if before:
            rep.replaced[part] = (before, len(rows))
            if previous == [digest] and before == len(rows):
                rep.unchanged.append(part)
        else:
            rep.added[part] = len(rows)
        conn.execute(
            "DELETE FROM imports WHERE experiment = ? AND table_name = ? AND part = ?", [experiment, table, part]
        )
        conn.execute(
            "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, now())", [experiment, table, part, file, digest, len(rows)]
        )
    return reports


def describe(reports: dict[str, TableReport]) -> list[str]:
    """Printable lines: rows per table, the parts added, and every replacement with its counts."""
    lines = []
    for rep in reports.values():
        lines.append(f"{rep.table}: {rep.rows} rows")
        if rep.added:
            lines.append(f"  added: {', '.join(f'{p} ({n})' for p, n in rep.added.items())}")
        for part, (before, after) in rep.replaced.items():
            same = " — same file as before, unchanged" if part in rep.unchanged else ""
            lines.append(f"  replaced {part}: {before} rows → {after} rows{same}")
    return lines


def counts(reports: dict[str, TableReport]) -> dict[str, int]:
    return {t: r.rows for t, r in reports.items()}


def nan_counts(parsed: Parsed) -> dict[str, int]:
    out = {}
    for table, col in (("trait_scores", "score"), ("elicitation_scores", "score"), ("logprob_vectors", "lp")):
        frame: pd.DataFrame | None = parsed.tables.get(table)
        if frame is not None:
            out[table] = int(frame[col].isna().sum())
    return out
