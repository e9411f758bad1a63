"""The bulk store: logprob tables as Parquet partitions behind views, atomic partition writes,
migration of an in-file warehouse, partition-wise token reads, readers during writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from inoc.config import load_experiment
from inoc.tables.prompt_tables import token_matrices
from warehouse import Warehouse, bulk, replace_rows

REPO = Path(__file__).resolve().parent.parent
TOKEN_COLS = ["experiment", "prompt_key", "vector", "example_idx", "token_idx", "lp"]


def _tokens(vectors: dict[str, list[int]], seed: int = 0) -> pd.DataFrame:
    """Rows of `logprob_tokens` (without experiment/prompt_key): per vector, examples of the given lengths."""
    rng = np.random.default_rng(seed)
    frames = []
    for vector, lengths in vectors.items():
        for k, n in enumerate(lengths):
            frames.append(
                pd.DataFrame(
                    {"vector": vector, "example_idx": k, "token_idx": np.arange(n), "lp": rng.normal(-2, 1, n)}
                )
            )
    return pd.concat(frames, ignore_index=True)


def _all(wh: Warehouse, table: str = "logprob_tokens") -> pd.DataFrame:
    return wh.query(
        f"SELECT * FROM {table} ORDER BY experiment, prompt_key NULLS FIRST, vector, example_idx"
        + (", token_idx" if table == "logprob_tokens" else "")
    )


def test_bulk_rows_round_trip_through_views_and_replace_by_partition(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    base, p1 = _tokens({"train_default": [3, 2]}, 1), _tokens({"train_inoc": [3, 2], "train_mix": [1, 4]}, 2)
    p1.loc[4, "lp"] = np.nan
    with wh.writer() as conn:
        replace_rows(conn, "logprob_tokens", base, {"experiment": "e", "prompt_key": None})
        replace_rows(conn, "logprob_tokens", p1, {"experiment": "e", "prompt_key": "p1"})
    got = _all(wh)
    assert list(got.columns) == TOKEN_COLS
    want = pd.concat([base.assign(experiment="e", prompt_key=None), p1.assign(experiment="e", prompt_key="p1")])
    want = want.sort_values(["vector", "example_idx", "token_idx"]).sort_values(
        "prompt_key", na_position="first", kind="stable"
    )
    np.testing.assert_array_equal(got.lp.to_numpy(), want[TOKEN_COLS].lp.to_numpy())  # NaN stays NaN
    assert got.prompt_key.isna().sum() == 5 and np.isnan(got.lp).sum() == 1
    assert str(wh.query("SELECT typeof(example_idx) AS t FROM logprob_tokens LIMIT 1").t[0]) == "INTEGER"
    files = wh.query("SELECT path FROM _bulk_files ORDER BY path").path.tolist()
    assert len(files) == 3 and all(
        Path(f).is_file() and f.startswith(str(tmp_path / "artifacts" / "_warehouse")) for f in files
    )

    # Replacing p1 with one vector drops the other; the old files are retired, not yet deleted.
    new = _tokens({"train_inoc": [2]}, 3)
    with wh.writer() as conn:
        replace_rows(conn, "logprob_tokens", new, {"experiment": "e", "prompt_key": "p1"})
    got = _all(wh)
    assert got[got.prompt_key == "p1"].lp.tolist() == new.lp.tolist()
    assert got.prompt_key.isna().sum() == 5
    retired = wh.query("SELECT path FROM _bulk_retired").path.tolist()
    assert len(retired) == 2 and all(Path(p).is_file() for p in retired)
    with wh.writer() as conn:  # past the grace period a writer deletes them
        assert bulk.collect_garbage(conn, wh.bulk_root, now=time.time() + bulk.RETIRE_GRACE_S + 1) == 2
    assert not any(Path(p).exists() for p in retired)
    assert len(_all(wh)) == 7

    # Replacing by experiment removes every partition; logprob_vectors works the same way.
    with wh.writer() as conn:
        replace_rows(
            conn,
            "logprob_tokens",
            pd.DataFrame(columns=["vector", "example_idx", "token_idx", "lp"]),
            {"experiment": "e"},
        )
        replace_rows(
            conn,
            "logprob_vectors",
            pd.DataFrame(
                {
                    "prompt_key": [None, "p"],
                    "vector": ["train_default", "train_inoc"],
                    "example_idx": [0, 0],
                    "lp": [-1.5, np.nan],
                }
            ),
            {"experiment": "e"},
        )
    assert wh.query("SELECT count(*) AS n FROM logprob_tokens").n[0] == 0
    assert _all(wh, "logprob_vectors").to_dict("list")["prompt_key"] == [None, "p"]


def test_bulk_key_must_be_partition_columns(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    with pytest.raises(bulk.BulkError, match="example_idx"):
        with wh.writer() as conn:
            replace_rows(conn, "logprob_tokens", _tokens({"x": [1]}), {"experiment": "e", "example_idx": 0})
    with pytest.raises(bulk.BulkError, match="missing \\['token_idx'\\]"):
        with wh.writer() as conn:
            replace_rows(conn, "logprob_tokens", _tokens({"x": [1]}).drop(columns="token_idx"), {"experiment": "e"})


def test_a_failed_write_keeps_the_previous_partition_and_its_file_is_collected(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    old = _tokens({"train_inoc": [4]}, 1)
    with wh.writer() as conn:
        replace_rows(conn, "logprob_tokens", old, {"experiment": "e", "prompt_key": "p"})
    with pytest.raises(RuntimeError):
        with wh.writer() as conn:
            replace_rows(
                conn, "logprob_tokens", _tokens({"train_inoc": [9]}, 2), {"experiment": "e", "prompt_key": "p"}
            )
            raise RuntimeError("boom after the partition file was written")
    assert _all(wh).lp.tolist() == old.lp.tolist()
    assert len(list(bulk.iter_files(wh.bulk_root))) == 2  # the rolled-back partition's file, unlisted
    with wh.writer():
        pass
    assert [str(f) for f in bulk.iter_files(wh.bulk_root)] == wh.query("SELECT path FROM _bulk_files").path.tolist()


def test_an_in_file_warehouse_is_migrated_to_parquet_and_compacted(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old = duckdb.connect(str(path))  # bulk tables as they were: in the file
    old.execute("""CREATE TABLE logprob_tokens (experiment VARCHAR NOT NULL, prompt_key VARCHAR, vector VARCHAR NOT NULL,
        example_idx INTEGER NOT NULL, token_idx INTEGER NOT NULL, lp DOUBLE)""")
    old.execute("""CREATE TABLE logprob_vectors (experiment VARCHAR NOT NULL, prompt_key VARCHAR, vector VARCHAR NOT NULL,
        example_idx INTEGER NOT NULL, lp DOUBLE)""")
    old.execute("""INSERT INTO logprob_tokens SELECT 'e' || (i % 2), CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' || (i % 3) END,
        CASE WHEN i % 5 = 0 THEN 'train_mix' ELSE 'train_inoc' END, (i // 40)::INTEGER, (i % 40)::INTEGER,
        CASE WHEN i = 77 THEN 'nan'::DOUBLE ELSE -i / 7 END FROM range(400000) t(i)""")
    old.execute(
        "INSERT INTO logprob_vectors VALUES ('e0', NULL, 'train_default', 0, -1.25), ('e0', 'p1', 'train_inoc', 0, NULL)"
    )
    old.execute(
        "CREATE TABLE trait_scores (experiment VARCHAR, run VARCHAR, step INTEGER, condition VARCHAR, trait VARCHAR, instruction_idx INTEGER, score DOUBLE)"
    )
    old.execute("INSERT INTO trait_scores VALUES ('e0', 'r', 1, 'default', 'French', 0, 50)")
    tokens = old.execute("SELECT * FROM logprob_tokens ORDER BY ALL").df()
    vectors = old.execute("SELECT * FROM logprob_vectors ORDER BY ALL").df()
    old.close()
    size_before = path.stat().st_size

    wh = Warehouse(path)
    for _ in range(2):  # the second write finds nothing to migrate
        with wh.writer():
            pass
    pd.testing.assert_frame_equal(wh.query("SELECT * FROM logprob_tokens ORDER BY ALL"), tokens)
    pd.testing.assert_frame_equal(wh.query("SELECT * FROM logprob_vectors ORDER BY ALL"), vectors)
    assert wh.query("SELECT count(*) AS n FROM trait_scores").n[0] == 1
    kinds = dict(
        wh.query(
            "SELECT table_name AS name, 'table' AS kind FROM duckdb_tables() UNION ALL "
            "SELECT view_name, 'view' FROM duckdb_views() WHERE NOT internal"
        ).values.tolist()
    )
    assert kinds["logprob_tokens"] == kinds["logprob_vectors"] == "view"
    parts = wh.query(
        "SELECT experiment, prompt_key, vector, n_rows FROM _bulk_files WHERE table_name = 'logprob_tokens'"
    )
    assert len(parts) == 2 * 3 * 2 and parts.n_rows.sum() == 400000
    assert path.stat().st_size < size_before / 2  # the bulk rows' blocks are gone, not just freed


_KILLED_WRITER = """
import sys, time, numpy as np, pandas as pd
import warehouse.bulk as bulk
from warehouse import Warehouse, replace_rows
point = sys.argv[2]
real_write, real_fsync_dir = bulk.pq.write_table, bulk._fsync_dir
def half_write(table, where, **kw):  # the partition's temp file, cut off half-way by the kill
    real_write(table, where, **kw)
    with open(where, "rb+") as fh:
        fh.truncate(fh.seek(0, 2) // 2)
    print("writing", flush=True); time.sleep(60)
def renamed(folder):  # the final file is in place, the transaction not yet committed
    real_fsync_dir(folder); print("writing", flush=True); time.sleep(60)
if point == "temp":
    bulk.pq.write_table = half_write
else:
    bulk._fsync_dir = renamed
new = pd.DataFrame({"vector": "train_inoc", "example_idx": 0, "token_idx": np.arange(50000), "lp": -9.0})
with Warehouse(sys.argv[1]).writer() as conn:
    replace_rows(conn, "logprob_tokens", new, {"experiment": "e", "prompt_key": "p"})
"""


@pytest.mark.parametrize("point", ["temp", "renamed"])
def test_sigkill_during_a_partition_write_leaves_the_previous_partition(tmp_path, point):
    path = tmp_path / "warehouse.duckdb"
    wh = Warehouse(path)
    old = _tokens({"train_inoc": [5, 3]}, 4)
    with wh.writer() as conn:
        replace_rows(conn, "logprob_tokens", old, {"experiment": "e", "prompt_key": "p"})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), point], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        leftovers = [f for f in wh.bulk_root.rglob("*") if f.is_file() and f.name != bulk.UNCLEAN]
        assert len(leftovers) == 2  # the previous partition and the killed writer's file
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    got = wh.query("SELECT * FROM logprob_tokens ORDER BY vector, example_idx, token_idx")
    assert got.lp.tolist() == old.lp.tolist()  # the readers' snapshot: the previous partition, whole
    listed = wh.query("SELECT path FROM _bulk_files").path.tolist()
    assert len(listed) == 1 and Path(listed[0]).is_file()
    with wh.writer():  # the next writer finds the killed writer's file unlisted and deletes it
        pass
    assert [str(f) for f in wh.bulk_root.rglob("*") if f.is_file()] == listed  # and the marker is gone
    got = wh.query("SELECT * FROM logprob_tokens ORDER BY vector, example_idx, token_idx")
    assert got.lp.tolist() == old.lp.tolist()


def test_token_partitions_give_the_same_token_w_as_the_rows(tmp_path):
    cfg = load_experiment(REPO / "experiments" / "toy.yaml")
    keys = cfg.prompt_keys[:3]
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    lengths = [4, 0, 7, 2]  # an example without tokens adds no columns
    with wh.writer() as conn:
        replace_rows(
            conn, "logprob_tokens", _tokens({"train_default": lengths}, 0), {"experiment": "x", "prompt_key": None}
        )
        for i, k in enumerate(keys):
            frame = _tokens({"train_inoc": lengths, "train_mix": lengths}, i + 1).sample(
                frac=1, random_state=i
            )  # any row order
            replace_rows(conn, "logprob_tokens", frame, {"experiment": "x", "prompt_key": k})
    rows = wh.query("SELECT * FROM logprob_tokens WHERE experiment = 'x'")
    with wh.reader() as conn:
        parts = bulk.TokenPartitions(bulk.partitions(conn, "logprob_tokens", "x"))
    from_rows, from_parts = token_matrices(cfg, rows), token_matrices(cfg, parts)
    assert [m.name for m in from_parts] == ["fixed_tokens", "mix_tokens"]
    for a, b in zip(from_rows, from_parts):
        assert a.keys == b.keys == keys and b.W.shape == (3, sum(lengths))
        np.testing.assert_array_equal(a.W, b.W)


_LOOP_WRITER = """
import sys, time, numpy as np, pandas as pd
from pathlib import Path
from warehouse import Warehouse, replace_rows
wh, stop, i = Warehouse(sys.argv[1]), Path(sys.argv[2]), 0
while not stop.exists():
    with wh.writer() as conn:  # a small write and a bulk partition replacement, as the assets make them
        replace_rows(conn, "trait_scores", pd.DataFrame({"run": f"r{i}", "step": 1, "condition": "default", "trait": "French",
                     "instruction_idx": np.arange(400), "score": 50.0}), {"experiment": "e", "run": f"r{i}"})
        replace_rows(conn, "logprob_tokens", pd.DataFrame({"vector": "train_inoc", "example_idx": np.repeat(np.arange(100), 30),
                     "token_idx": np.tile(np.arange(30), 100), "lp": -float(i)}), {"experiment": "e", "prompt_key": "p"})
    i += 1
print(i, flush=True)
"""


def test_inoc_sql_never_fails_while_a_writer_writes(tmp_path):
    """`inoc sql` in a loop against a writer process making small and bulk writes back to back (a write
    loop stands in for a full `inoc main`, which takes too long for a unit test)."""
    home = tmp_path / "inoc"
    wh = Warehouse(home / "warehouse.duckdb")
    wh.ensure()
    env = {**os.environ, "INOC_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "PYTHONPATH": str(REPO)}
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _LOOP_WRITER, str(wh.path), str(stop)], stdout=subprocess.PIPE, text=True, env=env
    )
    inoc = str(Path(sys.executable).with_name("inoc"))
    sql = (
        "SELECT (SELECT count(*) FROM trait_scores) % 400 AS partial_runs, "
        "(SELECT count(*) FROM logprob_tokens) AS tokens, (SELECT count(DISTINCT lp) FROM logprob_tokens) AS lps"
    )
    outputs = []
    try:
        deadline = time.time() + 30
        while len(outputs) < 6 and time.time() < deadline:
            res = subprocess.run(
                [inoc, "sql", sql, "--format", "csv"], capture_output=True, text=True, env=env, timeout=60
            )
            assert res.returncode == 0, res.stderr
            outputs.append(res.stdout.strip().splitlines()[-1])
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0
    writes = int(out.strip())
    assert writes >= len(outputs) >= 3
    # Every read saw whole writes: complete runs of 400 scores, and one whole token partition (or none yet).
    assert set(outputs) <= {"0,0,0", "0,3000,1"}, outputs
    assert "0,3000,1" in outputs


def test_two_catalogues_in_one_folder_keep_their_own_bulk_files(tmp_path):
    a, b = Warehouse(tmp_path / "a.duckdb"), Warehouse(tmp_path / "b.duckdb")
    assert a.bulk_root != b.bulk_root
    with a.writer() as conn:
        replace_rows(conn, "logprob_tokens", _tokens({"train_inoc": [3]}), {"experiment": "e", "prompt_key": "p"})
    with b.writer():  # b's garbage collection must not see a's files as its own orphans
        pass
    assert len(_all(a)) == 3
