"""The warehouse: schema, by-name replacement, CI view, serialized writers and lock-free readers."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from warehouse import Warehouse, replace_rows


def _scores(values, run="r1", trait="French", step=313, condition="default"):
    return pd.DataFrame(
        {
            "run": run,
            "step": step,
            "condition": condition,
            "trait": trait,
            "instruction_idx": np.arange(len(values)),
            "score": values,
        }
    )


def test_run_summary_ci_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, 57)
    values[[3, 9, 20]] = np.nan
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    with wh.writer() as conn:
        replace_rows(conn, "trait_scores", _scores(values), {"experiment": "e"})
    row = wh.query("SELECT * FROM run_summary").iloc[0]
    ok = values[~np.isnan(values)]
    se = ok.std(ddof=1) / math.sqrt(len(ok))
    assert (row.n, row.n_nan) == (54, 3)
    assert row["mean"] == pytest.approx(ok.mean(), abs=1e-9)
    assert row.ci_lo == pytest.approx(ok.mean() - 1.96 * se, abs=1e-9)
    assert row.ci_hi == pytest.approx(ok.mean() + 1.96 * se, abs=1e-9)
    # NaN is stored as NaN, never as a number.
    stored = wh.query("SELECT score FROM trait_scores ORDER BY instruction_idx").score.to_numpy()
    assert np.isnan(stored[[3, 9, 20]]).all()


def test_replace_rows_is_by_name_and_idempotent(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    frame = pd.DataFrame(  # columns deliberately out of table order
        {
            "prompt_family": ["playful"],
            "prompt_group": ["v3"],
            "prompt_text": ["You are a clown."],
            "prompt_key": ["clown"],
        }
    )
    for _ in range(3):
        with wh.writer() as conn:
            replace_rows(conn, "prompts", frame, {"experiment": "e", "prompt_key": "clown"})
    rows = wh.query("SELECT * FROM prompts").to_dict("records")
    assert rows == [
        {
            "experiment": "e",
            "prompt_key": "clown",
            "prompt_text": "You are a clown.",
            "prompt_group": "v3",
            "prompt_family": "playful",
        }
    ]


def test_a_warehouse_from_before_close_mix_is_migrated_with_its_rows(tmp_path):
    import duckdb

    path = tmp_path / "warehouse.duckdb"
    old = duckdb.connect(str(path))  # the schema of a warehouse created before close_mix runs existed
    old.execute("""CREATE TABLE runs (experiment VARCHAR NOT NULL, batch VARCHAR NOT NULL, run VARCHAR NOT NULL,
        prompt_key VARCHAR, prefix_type VARCHAR CHECK (prefix_type IN ('fixed', 'mix')), learning_rate DOUBLE,
        n_steps INTEGER, PRIMARY KEY (experiment, run))""")
    old.execute("""CREATE TABLE rephrasings (experiment VARCHAR NOT NULL, prompt_key VARCHAR NOT NULL,
        idx INTEGER NOT NULL, rephrasing VARCHAR NOT NULL, source VARCHAR NOT NULL)""")
    old.execute(
        "INSERT INTO runs VALUES ('e', 'main', 'p/mix', 'p', 'mix', 1e-4, 10), ('e', 'main', 'no_inoculation', NULL, NULL, 1e-4, 10)"
    )
    old.execute("INSERT INTO rephrasings VALUES ('e', 'p', 0, 'Be p.', 'organism')")
    with pytest.raises(duckdb.ConstraintException):
        old.execute("INSERT INTO runs VALUES ('e', 'main', 'p/close_mix', 'p', 'close_mix', 1e-4, 10)")
    old.close()
    wh = Warehouse(path)
    for _ in range(2):  # idempotent: the second write finds nothing to migrate
        with wh.writer() as conn:
            replace_rows(
                conn,
                "runs",
                pd.DataFrame(
                    [
                        {
                            "batch": "main",
                            "prompt_key": "p",
                            "prefix_type": "close_mix",
                            "learning_rate": 1e-4,
                            "n_steps": 10,
                        }
                    ]
                ),
                {"experiment": "e", "run": "p/close_mix"},
            )
    runs = wh.query("SELECT run, prefix_type FROM runs ORDER BY run")
    assert runs.values.tolist() == [["no_inoculation", None], ["p/close_mix", "close_mix"], ["p/mix", "mix"]]
    assert wh.query("SELECT pool FROM rephrasings").pool.tolist() == ["diverse"]
    with pytest.raises(duckdb.ConstraintException):  # the CHECK is still there, with the new type
        with wh.writer() as conn:
            conn.execute("INSERT INTO runs VALUES ('e', 'main', 'p/other', 'p', 'other', 1e-4, 10)")
    assert wh.query("SELECT count(*) AS n FROM run_summary").n.iloc[0] == 0  # the views are back


def test_failed_write_rolls_back(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    with wh.writer() as conn:
        replace_rows(conn, "trait_scores", _scores([1.0, 2.0]), {"experiment": "e"})
    with pytest.raises(RuntimeError):
        with wh.writer() as conn:
            replace_rows(conn, "trait_scores", _scores([5.0]), {"experiment": "e"})
            raise RuntimeError("boom in the middle of a write")
    assert wh.query("SELECT count(*) AS n FROM trait_scores").n[0] == 2


def _writer_proc(path: str, worker: int, n: int) -> None:
    wh = Warehouse(path)
    for i in range(n):
        with wh.writer() as conn:
            run = f"w{worker}_{i}"
            replace_rows(
                conn, "trait_scores", _scores([float(worker), float(i)], run=run), {"experiment": "e", "run": run}
            )


def test_parallel_writers_and_a_reader_never_fail(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    Warehouse(path).ensure()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer_proc, args=(path, w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):  # a user's SQL session while the platform writes
        Warehouse(path).query("SELECT count(*) FROM run_summary")
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0
    assert Warehouse(path).query("SELECT count(DISTINCT run) AS n FROM trait_scores").n[0] == 60


_HOLDER = """
import sys, time, pandas as pd
from warehouse import Warehouse, replace_rows
wh = Warehouse(sys.argv[1])
with wh.writer() as conn:
    replace_rows(conn, "experiments", pd.DataFrame([{"model": "m", "source": "pipeline"}]), {"experiment": "killed"})
    print("inside", flush=True)
    time.sleep(60)
"""


def test_reader_works_while_writer_holds_the_file_and_kill_leaves_nothing(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    wh = Warehouse(path)
    with wh.writer() as conn:
        replace_rows(conn, "experiments", pd.DataFrame([{"model": "m", "source": "pipeline"}]), {"experiment": "kept"})
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
        # The writer holds the lock and the file, mid-transaction: readers still work.
        assert wh.query("SELECT experiment FROM experiments").experiment.tolist() == ["kept"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The OS released the lock; the uncommitted row is gone; the file opens for writing again.
    with wh.writer() as conn:
        names = conn.execute("SELECT experiment FROM experiments ORDER BY 1").fetchall()
    assert names == [("kept",)]


def test_every_table_and_view_is_documented():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "warehouse"
    sql = (root / "schema.sql").read_text() + (root / "views.sql").read_text()
    names = re.findall(r"CREATE (?:TABLE IF NOT EXISTS|OR REPLACE VIEW) (\w+)", sql) + ["slides_dataset"]
    doc = (root / "README.md").read_text()
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"undocumented in warehouse/README.md: {missing}"


def test_suppression_batches_says_why_a_batch_has_no_rows(tmp_path):
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    runs = pd.DataFrame(
        [
            ("a", "a/no_inoculation", None, None, 1e-4),
            ("a", "a/p/fixed", "p", "fixed", 1e-4),
            ("b", "b/p/mix", "p", "mix", 1e-4),  # no control of its own
            ("c", "c/lr_1e4", None, None, 1e-4),  # Exp 3: un-inoculated runs only, one per rate
            ("c", "c/lr_5e6", None, None, 5e-6),
            ("d", "d/no_inoculation", None, None, None),
            ("d", "d/odd_prefix", None, "fixed", None),  # a prefix no prompt names
        ],
        columns=["batch", "run", "prompt_key", "prefix_type", "learning_rate"],
    ).assign(n_steps=313)
    by_batch = pd.DataFrame(
        [
            ("a", 1e-4, "p", "g", "fixed", t, "negative", "trait", "a/no_inoculation", "a/p/fixed", 313, 50)
            for t in "XY"
        ],
        columns=[
            "batch",
            "learning_rate",
            "prompt_key",
            "prompt_group",
            "prefix_type",
            "trait",
            "trait_role",
            "target",
            "control_run",
            "run",
            "step",
            "n",
        ],
    ).assign(suppression=5.0)
    with wh.writer() as conn:
        replace_rows(conn, "runs", runs, {"experiment": "e"})
        replace_rows(conn, "suppression_by_batch", by_batch, {"experiment": "e"})
    t = wh.query("SELECT * FROM suppression_batches ORDER BY batch, learning_rate")
    a = t[t.batch == "a"].iloc[0]
    assert (a.n_rows, a.control_run, a.note) == (2, "a/no_inoculation", None)
    assert t[t.batch == "b"].note.item().startswith("no un-inoculated run of its own")
    c = t[t.batch == "c"]
    assert c.learning_rate.tolist() == [5e-6, 1e-4] and c.note.str.startswith("no inoculated run").all()
    assert (c.n_rows == 0).all() and c.control_run.isna().all()
    d = t[t.batch == "d"].iloc[0]
    assert pd.isna(d.learning_rate) and d.n_unkeyed_prefix_runs == 1 and "import.sweep_prompts" in d.note
