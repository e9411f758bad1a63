"""Build `slides_dataset` (SPEC §13) inside a warehouse write transaction, from `dataset.sql`."""

from __future__ import annotations

from pathlib import Path

import duckdb

DATASET_SQL = Path(__file__).with_name("dataset.sql")


def build_slides_dataset(conn: duckdb.DuckDBPyConnection) -> int:
    """(Re)create the table from the tidy tables; returns its row count."""
    conn.execute(DATASET_SQL.read_text())
    return int(conn.execute("SELECT count(*) FROM slides_dataset").fetchone()[0])
