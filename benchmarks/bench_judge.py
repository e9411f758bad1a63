"""Judge throughput against a local OpenAI-protocol server with simulated latency.

    python benchmarks/bench_judge.py [--items 2000] [--items-c1 200] [--latency 0.05] [--concurrency 1 8 32]

Starts the tests' fake server, ``tests/fakes/openai_server.py``, in its own process (so the server
does not share the judge's GIL), with ``--latency`` seconds before every reply, then judges
``--items`` distinct items with ``OpenAILogprobJudge`` at each concurrency (``max_in_flight``), cache disabled, and prints
items/s. At concurrency 1 a 2,000-item run takes ~100 s, so it judges ``--items-c1`` items (default
200; pass ``--items-c1 2000`` for the full run); items/s is comparable either way. Exits non-zero
when the highest concurrency is not at least ``--min-speedup`` (default 20) times concurrency 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# The fake server is a test double (tests/fakes/), not product code: benchmarks are scripts, not a
# package, so this one runs it by path rather than importing it from the product.
FAKE_SERVER = REPO / "tests" / "fakes" / "openai_server.py"

from inoc.judges import JudgeItem, LLMJudgeSettings, OpenAILogprobJudge  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_SERVER), "--latency", str(latency)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the fake server did not start (said {line!r})")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def server_stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url + "/stats", timeout=5) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--items-c1", type=int, default=200, help="items for the concurrency-1 run")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--min-speedup", type=float, default=20.0)
    args = parser.parse_args(argv)

    proc, base_url = start_server(args.latency)
    rates: dict[int, float] = {}
    try:
        print(f"fake OpenAI server at {base_url}, {args.latency * 1000:.0f} ms latency per request; cache disabled")
        print(f"{'concurrency':>11} {'items':>6} {'wall s':>8} {'items/s':>9} {'API calls':>9} {'max in flight':>13}")
        for run, concurrency in enumerate(args.concurrency):
            n = args.items_c1 if concurrency == 1 else args.items
            settings = LLMJudgeSettings(base_url=base_url, max_in_flight=concurrency, max_retries=0, timeout_s=30)
            judge = OpenAILogprobJudge(settings, cache=None, api_key="sk-bench-not-a-key")
            items = [JudgeItem("Playful", f"Question {i}?", f"run {run} answer {i}") for i in range(n)]
            started = time.perf_counter()
            result = judge.score(items)
            wall = time.perf_counter() - started
            if result.n_nan:
                raise SystemExit(f"{result.n_nan} NaN scores at concurrency {concurrency}: {result.metadata()}")
            rates[concurrency] = n / wall
            seen = server_stats(base_url)["max_in_flight"]
            print(
                f"{concurrency:>11} {n:>6} {wall:>8.2f} {rates[concurrency]:>9.1f} {result.n_api_calls:>9} {seen:>13}"
            )
    finally:
        proc.kill()
        proc.wait()
    low, high = min(rates), max(rates)
    speedup = rates[high] / rates[low]
    note = (
        f" (concurrency {low} judged {args.items_c1} items, the others {args.items})"
        if args.items_c1 != args.items
        else ""
    )
    print(f"speedup concurrency {high} vs {low}: {speedup:.1f}x (target >= {args.min_speedup:g}x){note}")
    return 0 if speedup >= args.min_speedup else 1


if __name__ == "__main__":
    sys.exit(main())
