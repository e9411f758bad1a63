"""The `inoc` commands a user types: sync, sql (query and named-query files), materialize errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd

from warehouse import Warehouse, replace_rows


def _inoc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inoc.cli", *args], capture_output=True, text=True, env=env or os.environ.copy()
    )


def test_sync_registers_prompts_once_and_keeps_removed_ones(inoc_home, experiments_copy):
    first = _inoc("sync")
    assert first.returncode == 0, first.stderr
    assert "toy__prompts: added 8 partition(s)" in first.stdout
    assert "playful_french_qwen7b__prompts: added 48 partition(s)" in first.stdout
    assert "toy__runs: added 10 partition(s)" in first.stdout  # every prompt fixed, two of them mix
    assert (inoc_home / "dagster" / "dagster.yaml").read_text().startswith("# inoc's Dagster instance")
    again = _inoc("sync")
    assert "every configured prompt and run already has its partition" in again.stdout
    toy = experiments_copy / "toy.yaml"
    toy.write_text(toy.read_text().replace("    prompts: [had_fun_today]", "    prompts: []"))
    broken = _inoc("sync")  # an invalid YAML is reported, the others still sync
    assert broken.returncode == 1 and "toy.yaml" in broken.stderr and "Traceback" not in broken.stderr
    toy.write_text(
        toy.read_text()
        .replace("    prompts: []", "    prompts: [the_sky_is_blue]")
        .replace("  neutral:\n    role: neutral\n    family: neutral\n    prompts: [the_sky_is_blue]\n", "")
        .replace('  had_fun_today: "I had fun today."\n', "")
    )
    kept = _inoc("sync")
    assert kept.returncode == 0, kept.stderr
    assert "toy__prompts: kept 1 partition(s) no longer in the YAML: had_fun_today" in kept.stdout
    assert "toy__runs: kept 1 partition(s) no longer in the YAML: had_fun_today/fixed" in kept.stdout


def test_sql_query_and_named_query_file(inoc_home, tmp_path):
    with Warehouse(inoc_home / "warehouse.duckdb").writer() as conn:
        replace_rows(conn, "experiments", pd.DataFrame([{"model": "m", "source": "pipeline"}]), {"experiment": "e1"})
    out = _inoc("sql", "SELECT experiment, model FROM experiments")
    assert out.returncode == 0 and "| e1" in out.stdout
    queries = tmp_path / "q.sql"
    queries.write_text(
        "-- header\n\n-- name: one\nSELECT 1 AS x;\n\n-- name: two\nSELECT count(*) AS n FROM experiments;\n"
    )
    both = _inoc("sql", "--file", str(queries))
    assert "-- one" in both.stdout and "-- two" in both.stdout
    only = _inoc("sql", "--file", str(queries), "--name", "two", "--format", "csv")
    assert only.stdout.strip().splitlines() == ["-- two", "n", "1"]
    missing = _inoc("sql", "--file", str(queries), "--name", "three")
    assert missing.returncode == 2 and "no query named 'three'" in missing.stderr
    bad = _inoc("sql", "SELECT * FROM no_such_table")
    assert bad.returncode == 2 and "SQL error" in bad.stderr and "Traceback" not in bad.stderr


def test_materialize_names_unknown_assets_and_needs_a_partition(inoc_home, experiments_copy):
    unknown = _inoc("materialize", "toy/nope")
    assert unknown.returncode == 2 and "unknown asset 'toy/nope'" in unknown.stderr and "toy/prompt" in unknown.stderr
    partitioned = _inoc("materialize", "toy/prompt")
    assert partitioned.returncode == 2 and "--partition" in partitioned.stderr
    ok = _inoc("materialize", "toy/prompt", "--partition", "whimsical", "--log-level", "ERROR")
    assert ok.returncode == 0, ok.stderr
    rows = Warehouse(inoc_home / "warehouse.duckdb").query("SELECT prompt_key, prompt_text FROM prompts")
    assert rows.to_dict("records") == [{"prompt_key": "whimsical", "prompt_text": "You have a whimsical personality."}]


def test_backfill_of_an_unplanned_run_type_is_one_line(inoc_home, experiments_copy):
    out = _inoc("backfill", "toy", "--prompt", "whimsical", "--prefix-type", "close_mix")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "inoc: toy: no run is planned for whimsical/close_mix (see inoculation.prefix_types and runs.<type>_prompts)"
    )
