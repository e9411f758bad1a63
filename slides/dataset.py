"""Build `slides_dataset` (docs/methods.md#slides-dataset) inside a warehouse write transaction: `dataset.sql`, then one
column per registry heuristic (`inoc.heuristics.registry`), generated, so a new heuristic needs no SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from inoc.heuristics.registry import REGISTRY, Heuristic, slide_entries

DATASET_SQL = Path(__file__).with_name("dataset.sql")


def _lookup(h: Heuristic) -> str:
    """`max(value) FILTER (...)` picking this heuristic's prompt_heuristics row for a slides row `d`."""
    if h.per_trait:
        head, tail = h.key.split("{trait}")
        trait = "d.trait_name" if h.extra.get("trait_case") == "as_configured" else "lower(d.trait_name)"
        name = f"'{head}' || {trait} || '{tail}'"
    else:
        name = f"'{h.key}'"
    prefix = {
        "row": "h.prefix_type = d.prefix_type",
        "fixed": "h.prefix_type = 'fixed'",
        "none": "h.prefix_type IS NULL",
    }[h.slide_prefix]
    return f'max(h.value) FILTER (WHERE h.heuristic = {name} AND {prefix}) AS "{h.slide_column}"'


def registry_sql() -> list[str]:
    """The statements that add the registry's columns to slides_dataset: prompt_heuristics lookups,
    then the cross-row `slides` heuristics (SQL over the finished columns, e.g. H7's global z-scores)."""
    lookups = [_lookup(h) for h in slide_entries() if h.kind != "slides"]
    derived = [f'{h.fn} AS "{h.slide_column}"' for h in slide_entries() if h.kind == "slides"]
    out = []
    if lookups:
        out.append(
            "CREATE OR REPLACE TABLE slides_dataset AS\n"
            "WITH d AS (SELECT *, row_number() OVER () AS _row FROM slides_dataset),\n"
            "x AS (SELECT d._row,\n    " + ",\n    ".join(lookups) + "\n"
            "  FROM d LEFT JOIN prompt_heuristics h ON h.experiment = d.experiment AND h.prompt_key = d.prompt_key\n"
            "  GROUP BY d._row)\n"
            "SELECT d.* EXCLUDE (_row), x.* EXCLUDE (_row) FROM d JOIN x USING (_row) ORDER BY d._row"
        )
    if derived:
        out.append(
            "CREATE OR REPLACE TABLE slides_dataset AS\n"
            "WITH d AS (SELECT *, row_number() OVER () AS _row FROM slides_dataset)\n"
            "SELECT d.* EXCLUDE (_row),\n    " + ",\n    ".join(derived) + "\nFROM d ORDER BY _row"
        )
    return out


def build_slides_dataset(conn: duckdb.DuckDBPyConnection) -> int:
    """(Re)create the table from the tidy tables; returns its row count."""
    conn.execute(DATASET_SQL.read_text())
    for statement in registry_sql():
        conn.execute(statement)
    write_slides_availability(conn)
    write_registry_table(conn)
    return int(conn.execute("SELECT count(*) FROM slides_dataset").fetchone()[0])


def write_registry_table(conn: duckdb.DuckDBPyConnection) -> None:
    """`heuristic_registry`: the registry itself, so SQL users can join ids, names and definitions."""
    frame = pd.DataFrame(
        [
            {
                "heuristic": h.key,
                "heuristic_id": h.id,
                "name": h.name,
                "definition": h.definition,
                "inputs": ", ".join(h.inputs),
                "kind": h.kind,
                "prefix_types": ", ".join(p or "prompt" for p in h.prefix_types),
                "per_trait": h.per_trait,
                "slide_column": h.slide_column,
                "performance_label": h.performance_label,
            }
            for h in REGISTRY.values()
        ]
    )
    conn.register("_inoc_registry", frame)
    try:
        conn.execute("DELETE FROM heuristic_registry")
        conn.execute("INSERT INTO heuristic_registry BY NAME SELECT * FROM _inoc_registry")
    finally:
        conn.unregister("_inoc_registry")


def write_ranking(conn: duckdb.DuckDBPyConnection, ranking: pd.DataFrame) -> None:
    """Replace `heuristic_ranking`. Its CI and group columns came after the table itself: a warehouse
    created in between gets them here (CREATE TABLE IF NOT EXISTS cannot add columns)."""
    from warehouse import replace_rows

    for col, kind in (("ci_lo", "DOUBLE"), ("ci_hi", "DOUBLE"), ("heuristic_group", "VARCHAR")):
        conn.execute(f"ALTER TABLE heuristic_ranking ADD COLUMN IF NOT EXISTS {col} {kind}")
    replace_rows(conn, "heuristic_ranking", ranking, {})


def _sql_str(text: str | None) -> str:
    return "CAST(NULL AS VARCHAR)" if text is None else "'" + text.replace("'", "''") + "'"


def write_slides_availability(conn: duckdb.DuckDBPyConnection) -> None:
    """`heuristic_availability` rows of the cross-row (`slides`) heuristics: every slides row where one
    is NULL, with the ingredient columns that are NULL on that row (or 'undefined' when none is)."""
    hs = [h for h in REGISTRY.values() if h.kind == "slides"]
    if not hs:
        return
    conn.execute(
        f"DELETE FROM heuristic_availability WHERE heuristic IN ({', '.join('?' for _ in hs)})", [h.key for h in hs]
    )
    for h in hs:

        def missing(cols: list[str]) -> str:
            if not cols:  # an unavailable heuristic reads no column
                return "''"
            parts = ", ".join(f"CASE WHEN {c} IS NULL OR isnan({c}) THEN '{c}' END" for c in cols)
            return f"concat_ws(', ', {parts})"

        conn.execute(
            f"""
            INSERT INTO heuristic_availability BY NAME
            SELECT experiment, '{h.key}' AS heuristic, {f"'{h.id}'" if h.id else "NULL"} AS heuristic_id, prompt_key, prefix_type,
                   CASE WHEN {_sql_str(h.extra.get("unavailable"))} IS NOT NULL THEN {_sql_str(h.extra.get("unavailable"))}
                        WHEN m = '' THEN 'undefined on the ' || trait_name || ' row (NaN): {h.definition.replace("'", "''")}'
                        ELSE 'on the ' || trait_name || ' row, absent: ' || m END AS reason
            FROM (SELECT *, CASE prefix_type WHEN 'fixed' THEN {missing(h.extra["uses"]["fixed"])}
                                             ELSE {missing(h.extra["uses"]["mix"])} END AS m
                  FROM slides_dataset WHERE "{h.slide_column}" IS NULL OR isnan("{h.slide_column}"))
            """
        )
