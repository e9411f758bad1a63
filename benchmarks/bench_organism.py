"""Build the model organism from scratch and print its elicitation table.

    python benchmarks/bench_organism.py [--profile default] [--n 100] [--cache DIR] [--keep]
                                        [--max-build-s 300] [--determinism]

Builds the profile into a fresh temporary cache (or ``--cache``), reporting wall time, the build
process's CPU time, final loss and parameter count, then samples every cue condition (``--n`` eval
instructions each, temperature 1), judges French (pycld2) and Playful (marker rule) and prints the
table and the issue's acceptance checks. ``--determinism`` builds a second time into another folder
and compares every file byte for byte. Exits non-zero when the build exceeds ``--max-build-s`` wall
seconds, an acceptance check fails, or (with ``--determinism``) the two builds differ.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inoc.organism import elicitation as E  # noqa: E402
from inoc.organism.build import build_base_model, file_digests, profile_settings  # noqa: E402


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--n", type=int, default=200, help="eval instructions per condition (the original: 200)")
    ap.add_argument("--cache", help="cache root (default: a fresh temporary folder)")
    ap.add_argument("--max-build-s", type=float, default=300.0)
    ap.add_argument("--determinism", action="store_true")
    ap.add_argument("--examples", action="store_true", help="print two completions per condition")
    args = ap.parse_args()

    settings = profile_settings(args.profile)
    tmp = tempfile.TemporaryDirectory(prefix="bench-organism-")
    root = Path(args.cache) if args.cache else Path(tmp.name)
    ok = True

    print(f"profile {args.profile}: {settings}")
    print(f"load average before: {load_average()}")
    c0, t0 = cpu_seconds(), time.perf_counter()
    res = build_base_model(settings, root / "a")
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    m = res.manifest
    print(f"build: {'cached' if res.cached else 'built'} at {res.path}")
    print(f"  wall {wall:.1f}s  cpu {cpu:.1f}s  (stages: {m['timing']})  load average after: {load_average()}")
    print(
        f"  final loss {res.final_loss:.4f}  parameters {res.n_parameters:,}  steps {m['train']['steps']}  "
        f"tokens {m['train']['tokens']:,} (answer {m['train']['answer_tokens']:,})  examples {m['corpus']['n']:,}"
    )
    if not res.cached and wall > args.max_build_s:
        print(f"FAIL: build took {wall:.0f}s > {args.max_build_s:.0f}s")
        ok = False

    if args.determinism:
        again = build_base_model(settings, root / "b")
        same = file_digests(res.path) == file_digests(again.path)
        print(
            f"determinism: second build {'identical' if same else 'DIFFERS'} "
            f"({len(file_digests(res.path))} files compared byte for byte)"
        )
        ok &= same

    t = time.perf_counter()
    rows = E.elicit(res.path, n=args.n)
    print(f"\nelicitation: {len(rows)} conditions x {args.n} eval instructions in {time.perf_counter() - t:.0f}s\n")
    print(E.format_table(rows))
    if args.examples:
        for r in rows:
            print(f"\n## {r.condition.key}")
            for e in r.examples:
                print("  ", e)
    for trait in E.TRAITS:
        means = E.tier_means(rows, trait)
        print(f"{trait} tier means: " + ", ".join(f"{k} {v:.1f}" for k, v in means.items()))
    checks = E.check_acceptance(rows)
    print("\n" + E.format_checks(checks))
    ok &= all(c.passed for c in checks)
    print("\nOK" if ok else "\nFAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
