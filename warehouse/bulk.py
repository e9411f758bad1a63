"""The bulk store: tables that grow with examples × tokens live in Parquet, outside the catalogue.

`logprob_tokens` (86M rows for one full study) and `logprob_vectors` are stored as one Parquet file
per partition (experiment, prompt_key, vector) under `<artifacts>/_warehouse/<table>/`, in hive
folders (`experiment=…/prompt_key=…/vector=…/`, values percent-encoded, NULL as
`__HIVE_DEFAULT_PARTITION__`): the files hold only the other columns, and the partition columns come
from the path as constants, which made the token GROUP BY several times faster than reading them
from every row. LZ4: decoding zstd cost more than the bytes it saved. The
catalogue (`warehouse.duckdb`) keeps only the manifest `_bulk_files` and a view per table, named and
typed as the tables they replace, that reads exactly the files the manifest lists. So:

- a write of small tables (and the snapshot copy after it) never touches the bulk data;
- a partition is written to a hidden temp file, fsynced, then renamed to a fresh unique name, and
  only becomes visible when the writer's transaction commits the manifest row and the view that
  lists it. A killed writer leaves at most an unlisted file, which the next writer deletes;
- a replaced partition's file is retired (`_bulk_retired`) in the same transaction and deleted only
  after `RETIRE_GRACE_S`, so a reader still on the previous snapshot keeps its files.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

#: Bulk tables, their columns (the public schema) and Arrow types.
BULK_TABLES: dict[str, tuple[tuple[str, str, pa.DataType], ...]] = {
    "logprob_vectors": (
        ("experiment", "VARCHAR", pa.string()),
        ("prompt_key", "VARCHAR", pa.string()),
        ("vector", "VARCHAR", pa.string()),
        ("example_idx", "INTEGER", pa.int32()),
        ("lp", "DOUBLE", pa.float64()),
    ),
    "logprob_tokens": (
        ("experiment", "VARCHAR", pa.string()),
        ("prompt_key", "VARCHAR", pa.string()),
        ("vector", "VARCHAR", pa.string()),
        ("example_idx", "INTEGER", pa.int32()),
        ("token_idx", "INTEGER", pa.int32()),
        ("lp", "DOUBLE", pa.float64()),
    ),
}
PARTITION = ("experiment", "prompt_key", "vector")
#: Seconds a replaced partition file is kept for readers of older snapshots.
RETIRE_GRACE_S = 600.0
#: Rows per Parquet row group: readers stream one group at a time (bounded memory).
ROW_GROUP_ROWS = 1 << 20


class BulkError(ValueError):
    pass


def bulk_root_for(db_path: str | Path) -> Path:
    """The bulk store of the catalogue at `db_path`: `<its folder>/artifacts/_<its stem>`, so
    `$INOC_HOME/artifacts/_warehouse` (the default artifact store) for `warehouse.duckdb`. Named by
    the stem because a writer deletes every file of its store that its manifest does not list: two
    catalogues in one folder must not share a store."""
    path = Path(db_path).resolve()
    return path.parent / "artifacts" / f"_{path.stem}"


def db_path(conn: duckdb.DuckDBPyConnection) -> Path:
    row = conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0]:
        raise BulkError("bulk tables need a file-backed warehouse (no path for an in-memory database)")
    return Path(row[0])


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
UNCLEAN = ".unclean"  # partition files were written since the last garbage collection
COMPRESSION = "lz4"


def _schema(table: str) -> pa.Schema:
    """The columns stored in a partition file (the partition columns are in its path)."""
    return pa.schema([(name, typ) for name, _, typ in BULK_TABLES[table] if name not in PARTITION])


def view_sql(table: str, paths: list[str]) -> str:
    cols = ", ".join(name for name, _, _ in BULK_TABLES[table])
    if not paths:
        typed = ", ".join(f"CAST(NULL AS {sql}) AS {name}" for name, sql, _ in BULK_TABLES[table])
        return f"CREATE OR REPLACE VIEW {table} AS SELECT {typed} WHERE false"
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    types = ", ".join(f"'{c}': 'VARCHAR'" for c in PARTITION)
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {cols} FROM read_parquet([{listed}], "
        f"hive_partitioning = true, hive_types = {{{types}}}, hive_types_autocast = false)"
    )


def refresh_views(conn: duckdb.DuckDBPyConnection) -> None:
    """(Re)create each bulk table's view over the files its manifest lists (ordered for stable output)."""
    for table in BULK_TABLES:
        paths = [
            p
            for (p,) in conn.execute(
                "SELECT path FROM _bulk_files WHERE table_name = ? ORDER BY experiment, prompt_key NULLS FIRST, vector",
                [table],
            ).fetchall()
        ]
        conn.execute(view_sql(table, paths))


def _partition_dir(root: Path, table: str, experiment: str, prompt_key: str | None, vector: str) -> Path:
    def enc(value: str | None) -> str:  # DuckDB percent-decodes hive values
        return HIVE_NULL if value is None else quote(value, safe="")

    return root / table / f"experiment={enc(experiment)}" / f"prompt_key={enc(prompt_key)}" / f"vector={enc(vector)}"


def write_partition_file(root: Path, table: str, frame: pd.DataFrame) -> Path:
    """Write one partition (a frame of one experiment/prompt_key/vector) atomically; returns its final path.

    Rows are sorted by the table's index columns so readers can split examples without sorting.
    """
    exp, pk, vec = (frame[c].iloc[0] for c in PARTITION)
    pk = None if pk is None or (isinstance(pk, float) and np.isnan(pk)) else str(pk)
    order = [c for c in ("example_idx", "token_idx") if c in frame.columns]
    frame = frame.sort_values(order, kind="stable") if len(frame) > 1 else frame
    schema = _schema(table)
    arrays = []
    for field in schema:
        col = frame[field.name]
        if pa.types.is_integer(field.type):
            arrays.append(pa.array(col.to_numpy(np.int64), type=pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(col.to_numpy(np.float64), type=field.type))
    data = pa.Table.from_arrays(arrays, schema=schema)
    folder = _partition_dir(root, table, str(exp), pk, str(vec))
    folder.mkdir(parents=True, exist_ok=True)
    (root / UNCLEAN).touch()  # before the file: a kill from here on leaves a file to collect
    tmp = folder / f".{uuid.uuid4().hex}.parquet.tmp"  # hidden; never listed in the manifest
    final = folder / f"{uuid.uuid4().hex[:16]}.parquet"
    try:
        pq.write_table(data, tmp, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, key: dict[str, Any]) -> int:
    """`replace_rows` for a bulk table, inside the caller's write transaction.

    `key` may name only partition columns (experiment, prompt_key, vector). The partitions it
    matches are retired and `frame` is written as new partitions; all of it commits or rolls back
    with the transaction (uncommitted files are unlisted, and the next writer deletes them).
    """
    bad = [c for c in key if c not in PARTITION]
    if bad:
        raise BulkError(f"{table}: rows can be replaced by {', '.join(PARTITION)} only, not by {bad}")
    frame = frame.copy()
    for col, value in key.items():
        frame[col] = value
    if "prompt_key" not in frame.columns:  # nullable, as an INSERT BY NAME would leave it
        frame["prompt_key"] = None
    names = [name for name, _, _ in BULK_TABLES[table]]
    missing = [c for c in names if c not in frame.columns]
    extra = [c for c in frame.columns if c not in names]
    if len(frame) and (missing or extra):
        raise BulkError(f"{table}: frame columns missing {missing}, unexpected {extra}; expected {names}")
    if len(frame) and frame[["experiment", "vector"]].isna().any().any():
        raise BulkError(f"{table}: experiment and vector must be set on every row")
    clauses, params = ["table_name = ?"], [table]
    for col, value in key.items():
        if value is None:
            clauses.append(f"{col} IS NULL")
        else:
            clauses.append(f"{col} = ?")
            params.append(value)
    where = " AND ".join(clauses)
    conn.execute(f"INSERT INTO _bulk_retired SELECT path, ? FROM _bulk_files WHERE {where}", [time.time(), *params])
    conn.execute(f"DELETE FROM _bulk_files WHERE {where}", params)
    root = bulk_root_for(db_path(conn))
    if len(frame):
        groups = frame.groupby([frame.experiment, frame.prompt_key.fillna("\x00"), frame.vector], sort=True)
        for _, part in groups:
            path = write_partition_file(root, table, part)
            exp, pk, vec = (part[c].iloc[0] for c in PARTITION)
            pk = None if pk is None or (isinstance(pk, float) and np.isnan(pk)) else pk
            conn.execute(
                "INSERT INTO _bulk_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                [table, exp, pk, vec, str(path), len(part), time.time()],
            )
    refresh_views(conn)
    return len(frame)


def collect_garbage(conn: duckdb.DuckDBPyConnection, root: Path, now: float | None = None) -> int:
    """Delete retired files past their grace, and files no manifest lists (from killed or rolled-back
    writers). Call with the writer lock held, after the commit. Returns the number of files removed.

    The store is walked for unlisted files only when the `.unclean` marker says a writer wrote
    partition files since the last collection: walking ~1,500 folders per study on every small write
    made small writes slower with every study kept."""
    now = time.time() if now is None else now
    removed = 0
    old = [
        p
        for (p,) in conn.execute(
            "SELECT path FROM _bulk_retired WHERE retired_at < ?", [now - RETIRE_GRACE_S]
        ).fetchall()
    ]
    for p in old:
        Path(p).unlink(missing_ok=True)
        removed += 1
    if old:
        conn.execute("DELETE FROM _bulk_retired WHERE retired_at < ?", [now - RETIRE_GRACE_S])
    marker = root / UNCLEAN
    if marker.exists():
        known = {
            p
            for (p,) in conn.execute("SELECT path FROM _bulk_files UNION ALL SELECT path FROM _bulk_retired").fetchall()
        }
        for f in root.rglob("*"):
            if f.is_file() and str(f) not in known and (f.suffix == ".parquet" or f.name.endswith(".parquet.tmp")):
                f.unlink(missing_ok=True)
                removed += 1
        marker.unlink()
    return removed


def partitions(conn: duckdb.DuckDBPyConnection, table: str, experiment: str) -> pd.DataFrame:
    """The experiment's committed partitions of `table`: prompt_key, vector, path, n_rows."""
    return conn.execute(
        "SELECT prompt_key, vector, path, n_rows FROM _bulk_files WHERE table_name = ? AND experiment = ? "
        "ORDER BY prompt_key NULLS FIRST, vector",
        [table, experiment],
    ).df()


def read_token_lists(path: str | Path) -> list[np.ndarray]:
    """One `logprob_tokens` partition as per-example token lp arrays (example order), read a row group
    of the three needed columns at a time."""
    idx_parts, lp_parts = [], []
    pf = pq.ParquetFile(path)
    for g in range(pf.num_row_groups):
        batch = pf.read_row_group(g, columns=["example_idx", "token_idx", "lp"])
        idx_parts.append(
            np.column_stack([batch.column("example_idx").to_numpy(), batch.column("token_idx").to_numpy()])
        )
        lp_parts.append(batch.column("lp").to_numpy())
    if not lp_parts:
        return []
    idx, lp = np.concatenate(idx_parts), np.concatenate(lp_parts)
    order = np.lexsort((idx[:, 1], idx[:, 0]))  # files are written sorted; cheap insurance
    ex, lp = idx[order, 0], lp[order]
    cuts = np.flatnonzero(np.diff(ex)) + 1
    return np.split(lp, cuts)


def iter_files(root: Path) -> Iterator[Path]:
    return (f for f in root.rglob("*.parquet")) if root.is_dir() else iter(())


class TokenPartitions:
    """An experiment's `logprob_tokens` partitions as a token source (`inoc.tables.prompt_tables.token_matrices`):
    each (prompt, vector) is read from its own file when asked for, three columns at a time."""

    def __init__(self, parts: pd.DataFrame):
        self._paths: dict[tuple[str | None, str], list[str]] = {}
        for pk, vec, path in zip(parts.prompt_key, parts.vector, parts.path):
            pk = None if pk is None or (isinstance(pk, float) and np.isnan(pk)) else pk
            self._paths.setdefault((pk, vec), []).append(path)

    def prompt_keys(self, vector: str) -> set[str]:
        return {pk for pk, vec in self._paths if vec == vector and pk is not None}

    def lists(self, prompt_key: str | None, vector: str) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for path in self._paths.get((prompt_key, vector), []):  # one file per partition in practice
            out += read_token_lists(path)
        return out
