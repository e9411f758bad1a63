"""The warehouse at the size of a real study: before (every write copies the whole file) and after
(bulk tables in Parquet, the snapshot copies only the small tables), side by side.

Synthesizes one Playful/French study at full size: the token-level W of 49 prompt slots (the
no-prefix baseline and the 48 prompts of experiments/playful_french_qwen7b.yaml) × 5 completion
sets × 1000 examples × 250–450 tokens (mean 350) = ~85.8M `logprob_tokens` rows, the per-example
`logprob_vectors`, and the small tables one study fills (97 runs × 400 trait scores, elicitation,
losses). lp values are float32 log-probabilities stored as DOUBLE, as the score job produces them.
Then, for 1 study and for `--studies` studies in one warehouse, measures:

- small-write latency: a 400-row `trait_scores` write (one run's scores) through `writer()`;
- bytes written per small write (`write_bytes` of /proc/self/io: bytes this process sent to storage);
- disk used (catalogue, snapshot and Parquet files);
- the token-W GROUP BY (per prompt and vector: count and mean lp, over every token row);
- the geometry asset's token-W extraction plus PCA/SVD/angles, time and peak RSS, in a fresh process
  (stopped when its RSS passes `--rss-cap-gb`);
- the snapshot query `inoc sql` runs (a README example over `run_summary`) while a writer process
  makes small writes, latency and failures.

"Before" is the warehouse code of commit BEFORE_COMMIT (read with `git show`), run on the same data.

    .venv/bin/python benchmarks/bench_warehouse.py                      # full scale, 1 and 3 studies
    .venv/bin/python benchmarks/bench_warehouse.py --scale 0.05 --studies 2 --designs after
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BEFORE_COMMIT = "a5a244e"  # the last commit with the copy-everything snapshot and in-file bulk tables
CONFIG = ROOT / "experiments" / "playful_french_qwen7b.yaml"
PROMPT_SETS = ("train_inoc", "train_mix", "ctrl_inoc", "french_inoc", "playful_inoc")
BASE_SETS = ("train_default", "ctrl_default", "french_default", "playful_default", "neutral_default")
N_RUNS, SCORES_PER_RUN = 97, 400
QUERY = (
    "SELECT run, trait, round(mean, 1) AS mean FROM run_summary s WHERE experiment = ? AND condition = 'default' "
    "AND step = (SELECT max(step) FROM run_summary t WHERE t.experiment = s.experiment AND t.run = s.run)"
)
GROUP_BY = "SELECT experiment, prompt_key, vector, count(*) AS n, avg(lp) AS mean_lp FROM logprob_tokens GROUP BY ALL"


# ---------------------------------------------------------------------------------------------- designs


def before_module(workdir: Path):
    """Today's (pre-issue-19) warehouse module, from git, loaded under its own name."""
    folder = workdir / "warehouse_before"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("db.py", "schema.sql", "views.sql"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE_COMMIT}:warehouse/{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (folder / name).write_text(text)
    spec = importlib.util.spec_from_file_location("warehouse_before_db", folder / "db.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def design_module(design: str, workdir: Path):
    if design == "before":
        return before_module(workdir)
    import warehouse.db as mod

    return mod


# ---------------------------------------------------------------------------------------------- data


def prompt_keys() -> list[str]:
    from inoc.config import load_experiment

    return load_experiment(CONFIG).prompt_keys


def lengths(n_examples: int) -> np.ndarray:
    return np.random.default_rng(7).integers(250, 451, n_examples)  # the same completions for every prompt


def token_frame(exp: str, pk: str | None, vector: str, lens: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(lens.sum())
    lp = -np.abs(rng.standard_normal(n, dtype=np.float32)) * np.float32(2.5)
    return pd.DataFrame(
        {
            "experiment": exp,
            "prompt_key": pk,
            "vector": vector,
            "example_idx": np.repeat(np.arange(len(lens), dtype=np.int32), lens),
            "token_idx": np.concatenate([np.arange(L, dtype=np.int32) for L in lens]),
            "lp": lp.astype(np.float64),
        }
    )


def slots(keys: list[str]):
    yield None, BASE_SETS
    for k in keys:
        yield k, PROMPT_SETS


def small_frames(exp: str, keys: list[str], rng) -> dict[str, pd.DataFrame]:
    runs = ["no_inoculation"] + [f"{k}/{t}" for k in keys for t in ("fixed", "mix")]
    runs = runs[:N_RUNS]
    ts = pd.DataFrame(
        {
            "experiment": exp,
            "run": np.repeat(runs, SCORES_PER_RUN),
            "step": 313,
            "condition": np.tile(np.repeat(["default", "training"], SCORES_PER_RUN // 2), len(runs)),
            "trait": np.tile(np.repeat(["French", "Playful"], SCORES_PER_RUN // 4), 2 * len(runs)),
            "instruction_idx": np.tile(np.arange(SCORES_PER_RUN // 4), 4 * len(runs)),
            "score": rng.uniform(0, 100, len(runs) * SCORES_PER_RUN),
        }
    )
    el = pd.DataFrame(
        {
            "experiment": exp,
            "prompt_key": np.repeat(["neutral", *keys], 400),
            "trait": np.tile(np.repeat(["French", "Playful"], 200), len(keys) + 1),
            "instruction_idx": np.tile(np.arange(200), 2 * (len(keys) + 1)),
            "score": rng.uniform(0, 100, 400 * (len(keys) + 1)),
        }
    )
    losses = pd.DataFrame(
        {
            "experiment": exp,
            "run": np.repeat(runs, 313),
            "step": np.tile(np.arange(313), len(runs)),
            "loss": rng.uniform(0.5, 2, 313 * len(runs)),
            "learning_rate": 1e-4,
            "grad_norm": rng.uniform(0, 3, 313 * len(runs)),
            "epoch": 1.0,
        }
    )
    runs_t = pd.DataFrame(
        {
            "experiment": exp,
            "batch": "main",
            "run": runs,
            "prompt_key": [None if r == "no_inoculation" else r.split("/")[0] for r in runs],
            "prefix_type": [None if r == "no_inoculation" else r.split("/")[1] for r in runs],
            "learning_rate": 1e-4,
            "n_steps": 313,
        }
    )
    return {"trait_scores": ts, "elicitation_scores": el, "training_losses": losses, "runs": runs_t}


def load_study(design: str, mod, path: Path, study: int, scale: float) -> dict:
    """Fill one study. Before: bulk rows inserted straight into the file (loading them through 49
    snapshot-publishing writes would itself take the quadratic time this benchmark is about). After:
    through the real write path, one `replace_rows` per prompt as the logprobs asset does."""
    exp = f"study{study}"
    keys = prompt_keys()
    lens = lengths(max(2, round(1000 * scale)))
    rng = np.random.default_rng(100 + study)
    t0, part_times, n_tok = time.perf_counter(), [], 0
    small = small_frames(exp, keys, rng)
    vec_rows = []
    if design == "before":
        wh = mod.Warehouse(path)
        wh.ensure()
        conn = duckdb.connect(str(path))
        try:
            for name, frame in small.items():  # noqa: B007 (DuckDB reads `frame` by name)
                conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame")
            for i, (pk, sets) in enumerate(slots(keys)):
                for j, vector in enumerate(sets):
                    tok = token_frame(exp, pk, vector, lens, seed=study * 10_000 + i * 10 + j)
                    arrow = pa.Table.from_pandas(tok, preserve_index=False)  # noqa: F841 (read by DuckDB by name)
                    conn.execute("INSERT INTO logprob_tokens BY NAME SELECT * FROM arrow")
                    n_tok += len(tok)
                    vec_rows.append(
                        tok.groupby("example_idx")
                        .lp.mean()
                        .rename("lp")
                        .reset_index()
                        .assign(experiment=exp, prompt_key=pk, vector=vector)
                    )
            vecs = pd.concat(vec_rows, ignore_index=True)  # noqa: F841 (read by DuckDB by name)
            conn.execute("INSERT INTO logprob_vectors BY NAME SELECT * FROM vecs")
            conn.execute("CHECKPOINT")
        finally:
            conn.close()
        wh._publish_snapshot()
    else:
        wh = mod.Warehouse(path)
        with wh.writer() as conn:
            for name, frame in small.items():
                mod.replace_rows(conn, name, frame.drop(columns="experiment"), {"experiment": exp})
        for i, (pk, sets) in enumerate(slots(keys)):
            frames = [token_frame(exp, pk, v, lens, seed=study * 10_000 + i * 10 + j) for j, v in enumerate(sets)]
            tok = pd.concat(frames, ignore_index=True)
            del frames
            vec = tok.groupby(["vector", "example_idx"]).lp.mean().reset_index()
            t = time.perf_counter()
            with wh.writer() as conn:  # what the logprobs asset does per prompt partition
                mod.replace_rows(conn, "logprob_vectors", vec, {"experiment": exp, "prompt_key": pk})
                mod.replace_rows(
                    conn,
                    "logprob_tokens",
                    tok.drop(columns=["experiment", "prompt_key"]),
                    {"experiment": exp, "prompt_key": pk},
                )
            part_times.append(time.perf_counter() - t)
            n_tok += len(tok)
            del tok
    return {
        "token_rows": n_tok,
        "load_s": time.perf_counter() - t0,
        "partition_write_s": statistics.median(part_times) if part_times else None,
    }


# ---------------------------------------------------------------------------------------------- measures


def write_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def small_writes(mod, path: Path, n: int, tag: str) -> dict:
    wh = mod.Warehouse(path)
    rng = np.random.default_rng(5)
    times, sizes = [], []
    for i in range(n):
        run = f"bench_{tag}_{i}"
        frame = pd.DataFrame(
            {
                "run": run,
                "step": 313,
                "condition": "default",
                "trait": "French",
                "instruction_idx": np.arange(SCORES_PER_RUN),
                "score": rng.uniform(0, 100, SCORES_PER_RUN),
            }
        )
        b0, t0 = write_bytes(), time.perf_counter()
        with wh.writer() as conn:
            mod.replace_rows(conn, "trait_scores", frame, {"experiment": "study0", "run": run})
        times.append(time.perf_counter() - t0)
        sizes.append(write_bytes() - b0)
    return {
        "small_write_median_s": statistics.median(times),
        "small_write_max_s": max(times),
        "small_write_bytes_median": statistics.median(sizes),
    }


def disk_used(path: Path) -> int:
    total = 0
    for f in [path, path.with_name("warehouse_snapshot.duckdb"), Path(str(path) + ".wal")]:
        if f.exists():
            total += f.stat().st_blocks * 512
    bulk = path.parent / "artifacts"
    if bulk.is_dir():
        total += sum(f.stat().st_blocks * 512 for f in bulk.rglob("*") if f.is_file())
    return total


def parquet_and_small(path: Path) -> int:
    """The floor the acceptance compares disk with: the Parquet data plus the small tables (the catalogue)."""
    bulk = path.parent / "artifacts"
    pq_bytes = sum(f.stat().st_blocks * 512 for f in bulk.rglob("*.parquet")) if bulk.is_dir() else 0
    return pq_bytes + path.stat().st_blocks * 512


def group_by(mod, path: Path) -> float:
    wh = mod.Warehouse(path)
    t0 = time.perf_counter()
    wh.query(GROUP_BY)
    return time.perf_counter() - t0


_GEOMETRY = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from inoc.config import load_experiment
from inoc.tables.prompt_tables import angle_tables, decomposition_tables, token_matrices
design, path, exp = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = load_experiment(sys.argv[5])
t0 = time.perf_counter()
if design == "before":
    import importlib.util
    spec = importlib.util.spec_from_file_location("wb", sys.argv[6]); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    tokens = mod.Warehouse(path).query("SELECT prompt_key, vector, example_idx, token_idx, lp FROM logprob_tokens WHERE experiment = ?", [exp])
else:
    from warehouse import Warehouse, bulk
    with Warehouse(path).reader() as conn:
        tokens = bulk.TokenPartitions(bulk.partitions(conn, "logprob_tokens", exp))
matrices = token_matrices(cfg, tokens)
del tokens
t1 = time.perf_counter()
decomposition_tables(exp, matrices)
angle_tables(cfg, matrices)
t2 = time.perf_counter()
print(json.dumps({"extract_s": t1 - t0, "analysis_s": t2 - t1, "shapes": [list(m.W.shape) for m in matrices],
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def geometry(design: str, path: Path, workdir: Path, cap_gb: float) -> dict:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _GEOMETRY,
            design,
            str(path),
            "study0",
            str(ROOT),
            str(CONFIG),
            str(workdir / "warehouse_before" / "db.py"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    peak, t0 = 0.0, time.perf_counter()
    while proc.poll() is None:
        try:
            rss = (
                int(
                    next(
                        line
                        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                        if line.startswith("VmRSS")
                    ).split()[1]
                )
                / 2**20
            )
        except (OSError, StopIteration):
            rss = 0.0
        peak = max(peak, rss)
        if rss > cap_gb:
            proc.kill()
            proc.wait()
            return {"geometry": f"stopped at {rss:.1f} GB RSS after {time.perf_counter() - t0:.0f} s (cap {cap_gb} GB)"}
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode != 0:
        return {"geometry": f"failed (exit {proc.returncode})"}
    res = json.loads(out.strip().splitlines()[-1])
    return {
        "geometry": f"{res['extract_s']:.1f} s extract + {res['analysis_s']:.1f} s PCA/SVD/angles, "
        f"peak {res['peak_rss_gb']:.2f} GB",
        "geometry_shapes": res["shapes"],
    }


_WRITER = r"""
import importlib.util, sys, time, numpy as np, pandas as pd
sys.path.insert(0, sys.argv[3])
if sys.argv[1] == "before":
    spec = importlib.util.spec_from_file_location("wb", sys.argv[4]); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
else:
    import warehouse.db as mod
wh, end, i = mod.Warehouse(sys.argv[2]), time.time() + float(sys.argv[5]), 0
while time.time() < end:
    run = f"concurrent_{i}"
    with wh.writer() as conn:
        mod.replace_rows(conn, "trait_scores", pd.DataFrame({"run": run, "step": 313, "condition": "default", "trait": "French",
            "instruction_idx": np.arange(400), "score": np.random.default_rng(i).uniform(0, 100, 400)}), {"experiment": "study0", "run": run})
    i += 1
print(i)
"""


def reads_during_writes(design: str, mod, path: Path, workdir: Path, seconds: float) -> dict:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WRITER,
            design,
            str(path),
            str(ROOT),
            str(workdir / "warehouse_before" / "db.py"),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    wh, lat, failures = mod.Warehouse(path), [], 0
    time.sleep(1.0)
    while proc.poll() is None:
        t0 = time.perf_counter()
        try:
            wh.query(QUERY, ["study0"])
            lat.append(time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 - counted and reported
            failures += 1
    writes = int(proc.stdout.read().strip() or 0)
    return {
        "sql_median_s": statistics.median(lat) if lat else float("nan"),
        "sql_max_s": max(lat) if lat else float("nan"),
        "sql_reads": len(lat),
        "sql_failures": failures,
        "concurrent_writes": writes,
    }


def measure(design: str, mod, path: Path, workdir: Path, args, tag: str) -> dict:
    res = small_writes(mod, path, args.writes, tag)
    res["disk"] = disk_used(path)
    res["floor"] = parquet_and_small(path) if design == "after" else None
    res["catalogue"] = path.stat().st_size
    res["group_by_s"] = group_by(mod, path)
    res.update(geometry(design, path, workdir, args.rss_cap_gb) if tag.endswith("_1") or not args.geometry_once else {})
    res.update(reads_during_writes(design, mod, path, workdir, args.reader_seconds))
    return res


# ---------------------------------------------------------------------------------------------- report


def mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f} MB"


def table(results: dict[str, dict]) -> str:
    cols = list(results)
    rows = [
        ("token rows", lambda r: f"{r['token_rows']:,}"),
        ("small write (400 rows), median", lambda r: f"{r['small_write_median_s']:.3f} s"),
        ("small write, max", lambda r: f"{r['small_write_max_s']:.3f} s"),
        ("bytes written per small write", lambda r: mb(r["small_write_bytes_median"])),
        ("catalogue file (warehouse.duckdb)", lambda r: mb(r["catalogue"])),
        ("disk used (catalogue + snapshot + Parquet)", lambda r: mb(r["disk"])),
        ("disk / (Parquet + small tables)", lambda r: "-" if not r["floor"] else f"{r['disk'] / r['floor']:.2f}×"),
        (
            "bulk partition write (1 prompt, 5 sets)",
            lambda r: "-" if r.get("partition_write_s") is None else f"{r['partition_write_s']:.2f} s",
        ),
        ("token-W GROUP BY (all token rows)", lambda r: f"{r['group_by_s']:.2f} s"),
        ("geometry: token W + PCA/SVD/angles", lambda r: r.get("geometry", "(not run)")),
        ("`inoc sql` query while writing, median", lambda r: f"{r['sql_median_s']:.3f} s"),
        ("`inoc sql` query while writing, max", lambda r: f"{r['sql_max_s']:.3f} s"),
        (
            "reads / failures / writer's writes",
            lambda r: f"{r['sql_reads']} / {r['sql_failures']} / {r['concurrent_writes']}",
        ),
    ]
    widths = [max(len(name) for name, _ in rows)] + [max(len(c), 12) for c in cols]
    cells = [[name] + [f(results[c]) for c in cols] for name, f in rows]
    widths = [max(widths[i], *(len(r[i]) for r in cells)) for i in range(len(widths))]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(["", *cols]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(out + [line(r) for r in cells])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the 1000 examples per set (1.0: ~85.8M token rows)"
    )
    ap.add_argument("--studies", type=int, default=3, help="studies in the second measurement (the first is 1)")
    ap.add_argument("--designs", default="before,after")
    ap.add_argument("--writes", type=int, default=15, help="small writes timed per configuration")
    ap.add_argument("--reader-seconds", type=float, default=20.0)
    ap.add_argument("--rss-cap-gb", type=float, default=8.0, help="stop a geometry extraction above this RSS")
    ap.add_argument(
        "--geometry-once",
        action="store_true",
        default=True,
        help="run the geometry step at 1 study only (it reads one study either way)",
    )
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir, removed at the end)")
    args = ap.parse_args()
    base = Path(args.workdir or tempfile.mkdtemp(prefix="bench_warehouse_"))
    results: dict[str, dict] = {}
    try:
        for design in args.designs.split(","):
            mod = design_module(design, base)
            path = base / design / "warehouse.duckdb"
            shutil.rmtree(path.parent, ignore_errors=True)
            path.parent.mkdir(parents=True)
            rows, loaded = 0, []
            for n_studies in sorted({1, args.studies}):
                while len(loaded) < n_studies:
                    info = load_study(design, mod, path, len(loaded), args.scale)
                    loaded.append(info)
                    rows += info["token_rows"]
                    print(
                        f"[{design}] study {len(loaded) - 1} loaded: {info['token_rows']:,} token rows in {info['load_s']:.0f} s",
                        flush=True,
                    )
                col = f"{design}, {n_studies} stud{'y' if n_studies == 1 else 'ies'}"
                res = measure(design, mod, path, base, args, f"{design}_{n_studies}")
                res["token_rows"] = rows
                res["partition_write_s"] = (
                    statistics.median([x["partition_write_s"] for x in loaded]) if design == "after" else None
                )
                results[col] = res
                print(
                    f"[{col}] {json.dumps({k: v for k, v in res.items() if k != 'geometry_shapes'}, default=str)}",
                    flush=True,
                )
            shutil.rmtree(path.parent, ignore_errors=True)
        print()
        print(f"scale {args.scale}, {args.writes} small writes per configuration, reader {args.reader_seconds:.0f} s")
        print(table(results))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
