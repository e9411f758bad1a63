"""Incremental work: a full run of a 6-prompt organism study versus the backfill of one new prompt.

    .venv/bin/python benchmarks/bench_backfill.py [--profile default] [--keep DIR]

Builds an isolated INOC_HOME with a 6-prompt variant of `toy` (the first six of its prompts, fixed
runs, mix for the strong ones), runs `inoc main` on it, adds a seventh prompt to the YAML and runs
`inoc backfill` for it. Prints, side by side, the Dagster steps each executed and their wall time,
and checks that no partition of the six original prompts was rematerialized. Takes ~10 minutes on
a 2-core CPU (the organism build is cached in ~/.cache/inoc/organism after the first run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
NEW_KEY, NEW_TEXT = "laughter_medicine", "Remember: laughter is the best medicine."


def _inoc(env: dict, *args: str) -> tuple[str, float]:
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "inoc.cli", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"inoc {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out.stdout, time.time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default", help="organism profile (toy:<profile>)")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="inoc-bench-backfill-"))
    exp_dir = root / "experiments"
    exp_dir.mkdir(parents=True, exist_ok=True)
    base = yaml.safe_load((REPO / "experiments" / "toy.yaml").read_text())
    keys = [k for k in base["prompts"] if k != NEW_KEY][:6]
    cfg = dict(
        base,
        name="toy_six",
        model={**base["model"], "id": f"toy:{args.profile}"},
        prompts={k: base["prompts"][k] for k in keys},
    )
    cfg["groups"] = {
        g: {**v, "prompts": [k for k in v["prompts"] if k in keys]}
        for g, v in base["groups"].items()
        if any(k in keys for k in v["prompts"])
    }
    cfg["runs"] = {**base.get("runs", {}), "mix_prompts": [k for k in base["runs"]["mix_prompts"] if k in keys]}
    path = exp_dir / "toy_six.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {
        **os.environ,
        "INOC_HOME": str(root / "home"),
        "DAGSTER_HOME": str(root / "home" / "dagster"),
        "INOC_EXPERIMENTS_DIR": str(exp_dir),
    }
    env.pop("INOC_ARTIFACT_ROOT", None)

    print(f"[bench] full run of {len(keys)} prompts ({', '.join(keys)}) in {root}", flush=True)
    out, full_s = _inoc(env, "main", "--experiment", "toy_six")
    full_steps = int(re.search(r"\((\d+) steps in (\d+) Dagster runs\)", out).group(1))

    cfg["prompts"][NEW_KEY] = NEW_TEXT
    weak = next(g for g, v in cfg["groups"].items() if v["role"] == "negative")
    cfg["groups"][weak]["prompts"].append(NEW_KEY)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"[bench] backfill of the new prompt {NEW_KEY!r}", flush=True)
    out, back_s = _inoc(env, "backfill", "toy_six", "--prompt", NEW_KEY)
    back_steps = int(re.search(r"backfill done: (\d+) steps", out).group(1))

    print("\n| run | Dagster steps executed | wall time (s) |\n|---|---|---|")
    print(f"| full run, {len(keys)} prompts | {full_steps} | {full_s:.0f} |")
    print(f"| backfill of 1 new prompt | {back_steps} | {back_s:.0f} |")
    print(f"\nbackfill / full: {back_steps / full_steps:.2f} of the steps, {back_s / full_s:.2f} of the time")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
