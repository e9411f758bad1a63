"""Connections to the DuckDB warehouse: one serialized writer, lock-free readers.

DuckDB allows one read-write process per file, and while it holds the file even read-only opens
from other processes fail. So:
- every write goes through `Warehouse.writer()`: an exclusive OS file lock (`warehouse.lock`)
  serializes writers across processes (parallel Dagster steps wait instead of failing), the
  connection is short-lived, the schema is applied idempotently, and the write is one transaction;
- bulk tables (`logprob_tokens`, `logprob_vectors`) are Parquet partitions outside the file, read
  through views (`warehouse.bulk`), so the file holds only the small tables and the manifest;
- after each write the file is copied to `warehouse_snapshot.duckdb` (temp + atomic rename) while
  the lock is still held. Readers — `inoc sql`, notebooks, slides — open the snapshot read-only, so
  they never block a writer and never see a half-applied write. The copy costs the size of the
  small tables only (a few MB at a full study), never the bulk data.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import duckdb
import pandas as pd

from warehouse import bulk

SQL_DIR = Path(__file__).resolve().parent
SNAPSHOT_NAME = "warehouse_snapshot.duckdb"  # of the default warehouse.duckdb

ConnectionFactory = Callable[[], ContextManager[duckdb.DuckDBPyConnection]]


def schema_version() -> str:
    """A digest of everything `apply_schema` creates; stored in the file once applied."""
    digest = hashlib.sha256()
    for name in ("schema.sql", "views.sql", "bulk.py", "db.py"):
        digest.update((SQL_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def apply_schema(conn: duckdb.DuckDBPyConnection) -> bool:
    """Create missing tables, bring older warehouses up to date, (re)create views; idempotent, never drops data.

    Skipped (one cheap read) when the file records this code's schema version: re-running ~40
    statements on every write was most of a small write's time. Returns True when bulk rows were
    moved out of the file (the caller then compacts it)."""
    version = schema_version()
    try:
        if conn.execute("SELECT version FROM _schema_version").fetchall() == [(version,)]:
            return False
    except duckdb.CatalogException:
        pass  # a new file, or one from before versions were recorded
    conn.execute((SQL_DIR / "schema.sql").read_text())
    migrate(conn)
    moved = migrate_bulk(conn)
    bulk.refresh_views(conn)
    conn.execute((SQL_DIR / "views.sql").read_text())
    conn.execute("CREATE OR REPLACE TABLE _schema_version AS SELECT ? AS version", [version])
    return moved


def _table_sql(name: str) -> str:
    text = (SQL_DIR / "schema.sql").read_text()
    start = text.index(f"CREATE TABLE IF NOT EXISTS {name} (")
    return text[start : text.index(");", start) + 2]


def migrate(conn: duckdb.DuckDBPyConnection) -> None:
    """Changes since a warehouse was created that `CREATE TABLE IF NOT EXISTS` cannot make.

    - `rephrasings.pool` (close pools): added, existing rows are the diverse pools.
    - `suppression_predictions.extrapolated`: added, false for predictions made before it existed.
    - `runs.prefix_type` accepts `close_mix`: DuckDB cannot alter a CHECK, so the table is rebuilt
      with its rows, inside one transaction.
    """
    conn.execute("ALTER TABLE rephrasings ADD COLUMN IF NOT EXISTS pool VARCHAR DEFAULT 'diverse'")
    conn.execute("ALTER TABLE suppression_predictions ADD COLUMN IF NOT EXISTS extrapolated BOOLEAN DEFAULT false")
    check = conn.execute(
        "SELECT constraint_text FROM duckdb_constraints() WHERE table_name = 'runs' AND constraint_type = 'CHECK'"
    ).fetchall()
    if check and not any("close_mix" in text for (text,) in check):
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute("ALTER TABLE runs RENAME TO runs_before_close_mix")
            conn.execute(_table_sql("runs"))
            conn.execute("INSERT INTO runs BY NAME SELECT * FROM runs_before_close_mix")
            conn.execute("DROP TABLE runs_before_close_mix")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def migrate_bulk(conn: duckdb.DuckDBPyConnection) -> bool:
    """Move the rows of a warehouse created before the bulk store (`logprob_tokens`/`logprob_vectors`
    as tables in the file) into Parquet partitions, in one transaction: the tables are dropped only
    together with the manifest rows that list every moved row. Returns whether anything was moved."""
    present = {
        t
        for (t,) in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND table_name IN ('logprob_vectors', 'logprob_tokens')"
        ).fetchall()
    }
    if not present:
        return False
    conn.execute("BEGIN TRANSACTION")
    try:
        for table in sorted(present):
            keys = conn.execute(f"SELECT DISTINCT experiment, prompt_key, vector FROM {table}").fetchall()
            for exp, pk, vec in keys:
                frame = conn.execute(
                    f"SELECT * FROM {table} WHERE experiment = ? AND prompt_key IS NOT DISTINCT FROM ? AND vector = ?",
                    [exp, pk, vec],
                ).df()
                path = bulk.write_partition_file(bulk.bulk_root_for(bulk.db_path(conn)), table, frame)
                conn.execute(
                    "INSERT INTO _bulk_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [table, exp, pk, vec, str(path), len(frame), time.time()],
                )
            moved = conn.execute(
                "SELECT coalesce(sum(n_rows), 0) FROM _bulk_files WHERE table_name = ?", [table]
            ).fetchone()[0]
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if moved != n:  # the manifest must account for every row before the table goes
                raise RuntimeError(f"migrating {table}: {n} rows in the table, {moved} in Parquet partitions")
            conn.execute(f"DROP TABLE {table}")
        bulk.refresh_views(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return True


def compact(path: Path) -> None:
    """Rewrite the file without its free blocks (DuckDB never shrinks a file after a DROP). Caller
    holds the writer lock and no connection is open."""
    tmp = path.with_name(f".compact-{os.getpid()}-{path.name}")
    tmp.unlink(missing_ok=True)
    try:
        conn = duckdb.connect()
        try:
            conn.execute(f"ATTACH '{path}' AS old (READ_ONLY)")
            conn.execute(f"ATTACH '{tmp}' AS new")
            conn.execute("COPY FROM DATABASE old TO new")
            conn.execute("DETACH new")
        finally:
            conn.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _default_factory(path: Path) -> ConnectionFactory:
    @contextmanager
    def factory() -> Iterator[duckdb.DuckDBPyConnection]:
        conn = duckdb.connect(str(path))
        try:
            yield conn
        finally:
            conn.close()

    return factory


class Warehouse:
    """The warehouse file at `path`; `connect` may supply connections (dagster-duckdb's resource)."""

    def __init__(self, path: str | Path, connect: ConnectionFactory | None = None):
        self.path = Path(path)
        # <stem>_snapshot.duckdb: warehouse_snapshot.duckdb for the default file; two catalogues in one folder keep their own
        self.snapshot_path = self.path.with_name(f"{self.path.stem}_snapshot.duckdb")
        self.lock_path = self.path.with_name(self.path.stem + ".lock")
        self.bulk_root = bulk.bulk_root_for(self.path)
        self._connect = connect or _default_factory(self.path)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # released by the OS if this process dies
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An exclusive write connection; everything inside is one transaction."""
        with self._lock():
            with self._connect() as conn:
                moved = apply_schema(conn)
                conn.execute("BEGIN TRANSACTION")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                bulk.collect_garbage(conn, self.bulk_root)
                conn.execute("CHECKPOINT")
            if moved:
                compact(self.path)
            self._publish_snapshot()

    def _publish_snapshot(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".snapshot-", suffix=".duckdb")
        os.close(fd)
        try:
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, self.snapshot_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def ensure(self) -> None:
        """Create the file with the schema (and its snapshot) if missing."""
        with self.writer():
            pass

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the latest snapshot; never blocks or is blocked by writers."""
        if not self.snapshot_path.exists():
            self.ensure()
        # The snapshot may be replaced while open: we keep reading the inode we opened.
        for attempt in range(5):
            try:
                conn = duckdb.connect(str(self.snapshot_path), read_only=True)
                break
            except duckdb.IOException:
                if attempt == 4:
                    raise
                time.sleep(0.2)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        # A writer may swap the snapshot while DuckDB is reading it (DuckDB can reopen the file by
        # path); a fresh open then sees the complete new snapshot, so an I/O error is retried.
        for attempt in range(5):
            try:
                with self.reader() as conn:
                    return conn.execute(sql, params or []).df()
            except duckdb.IOException:
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")


def replace_rows(conn: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, key: dict[str, Any]) -> int:
    """Replace the rows of `table` matching `key` (column → value; None matches NULL) with `frame`.

    Insertion is by column name, never by position (positional inserts silently swap same-typed
    columns). Idempotent: re-materializing a partition replaces, never duplicates. Bulk tables
    (`warehouse.bulk.BULK_TABLES`) are replaced as Parquet partitions, in the same transaction.
    """
    if table in bulk.BULK_TABLES:
        return bulk.replace(conn, table, frame, key)
    clauses, params = [], []
    for col, value in key.items():
        if value is None:
            clauses.append(f'"{col}" IS NULL')
        else:
            clauses.append(f'"{col}" = ?')
            params.append(value)
    where = " AND ".join(clauses) or "TRUE"
    conn.execute(f'DELETE FROM "{table}" WHERE {where}', params)
    if len(frame):
        for col, value in key.items():
            if col not in frame.columns:
                frame = frame.assign(**{col: value})
        conn.register("_inoc_frame", frame)
        try:
            conn.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM _inoc_frame')
        finally:
            conn.unregister("_inoc_frame")
    return len(frame)
