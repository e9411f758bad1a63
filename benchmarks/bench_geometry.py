"""Benchmark of inoc.analysis.geometry on a token-level W of the original's size.

Builds a seeded synthetic W (48 prompts × 352,000 tokens, float32: the Qwen-7B Playful/French
token matrix), then runs the token-level recipe (StandardScaler + PCA(3), TruncatedSVD(3)), r(PC1, PH),
the pairwise angles in the three representations and their group statistics. Prints wall time and
peak traced memory per stage (tracemalloc, which sees numpy's buffers) and the process's peak RSS.

Acceptance: total under 60 s and peak RSS under 4 GB on a 2-core machine.

    python benchmarks/bench_geometry.py [--prompts 48] [--tokens 352000] [--seed 0] [--from-lists] [--verify]

`--from-lists` also times `token_weight_matrix` building W from per-example Python lists (1000
examples per prompt, as the token-level JSON holds them); the lists alone take ~1 GB.

`--verify` additionally checks the singular values against numpy's dense float64 SVD of the whole
matrix (outside the timed stages; it makes the float64 copy the library avoids).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from inoc.analysis.geometry import (  # noqa: E402
    angle_group_stats,
    component_correlation,
    pairwise_angles,
    pca,
    truncated_svd,
)
from inoc.analysis.matrices import token_weight_matrix  # noqa: E402

ROLE_COUNTS = {"negative": 21, "positive": 21, "neutral": 6}  # the original's 48-prompt layout


def synthetic_token_w(n_prompts: int, n_tokens: int, seed: int) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Low-rank structure per role plus heavy-ish noise, built in float32 row by row (no float64 copy)."""
    rng = np.random.default_rng(seed)
    roles: list[str] = []
    for role, count in ROLE_COUNTS.items():
        roles += [role] * count
    roles = (roles * (n_prompts // len(roles) + 1))[:n_prompts]
    keys = [f"prompt_{i:02d}" for i in range(n_prompts)]
    factors = rng.standard_normal((4, n_tokens), dtype=np.float32)  # shared, negative, positive, sparse
    factors[3] *= rng.random(n_tokens, dtype=np.float32) < 0.05
    strength = {"negative": (0.6, 0.4, 0.0), "positive": (0.6, 0.0, 0.4), "neutral": (0.1, 0.05, 0.05)}
    W = np.empty((n_prompts, n_tokens), dtype=np.float32)
    for i, role in enumerate(roles):
        a, b, c = strength[role]
        w = rng.uniform(0.5, 1.5, 4).astype(np.float32) * np.array([a, b, c, 0.3], dtype=np.float32)
        row = w @ factors
        row += 0.3 * rng.standard_normal(n_tokens, dtype=np.float32)
        W[i] = row
    return W, keys, dict(zip(keys, roles))


def as_example_lists(W: np.ndarray, n_examples: int, seed: int) -> tuple[list, list]:
    """Split W's columns into per-example token lists: default log-probs and per-prompt inoc = default + w."""
    rng = np.random.default_rng(seed + 1)
    cuts = np.sort(rng.choice(np.arange(1, W.shape[1]), n_examples - 1, replace=False))
    default = -rng.gamma(1.0, 1.0, W.shape[1])
    default_lists = [d.tolist() for d in np.split(default, cuts)]
    inoc_lists = [[seg.tolist() for seg in np.split(default + W[n], cuts)] for n in range(W.shape[0])]
    return default_lists, inoc_lists


def _stage(name: str, fn: Callable[[], Any], report: list[tuple[str, float, float]]) -> Any:
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    report.append((name, dt, peak / 2**20))
    print(f"{name:<34s} {dt:8.3f} s   peak +{peak / 2**20:8.1f} MiB", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=352_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--from-lists", action="store_true", help="also time building W from per-example lists")
    ap.add_argument("--verify", action="store_true", help="compare singular values with a dense float64 SVD")
    args = ap.parse_args(argv)

    print(f"token-level W: {args.prompts} × {args.tokens} float32, seed {args.seed}")
    tracemalloc.start()
    report: list[tuple[str, float, float]] = []
    t_all = time.perf_counter()
    W, keys, roles = _stage(
        "build synthetic W", lambda: synthetic_token_w(args.prompts, args.tokens, args.seed), report
    )
    print(f"  W: {W.nbytes / 2**20:.1f} MiB")
    if args.from_lists:
        # Input preparation, untimed and untraced (tracemalloc would add ~70 B per float object).
        tracemalloc.stop()
        t_prep = time.perf_counter()
        default_lists, inoc_lists = as_example_lists(W, 1000, args.seed)
        t_all += time.perf_counter() - t_prep
        tracemalloc.start()
        W_built = _stage(
            "token_weight_matrix (from lists)", lambda: token_weight_matrix(default_lists, inoc_lists), report
        )
        print(f"  max |W_built − W| = {float(np.max(np.abs(W_built - W))):.2e}")
        del default_lists, inoc_lists, W_built
    ph = _stage("PH (row means)", lambda: W.mean(axis=1, dtype=np.float64), report)
    dec_pca = _stage("StandardScaler + PCA(3)", lambda: pca(W, 3, standardize=True), report)
    dec_svd = _stage("TruncatedSVD(3)", lambda: truncated_svd(W, 3), report)
    r = _stage("r(PC1, PH)", lambda: component_correlation(dec_pca, ph), report)
    a_raw = _stage("angles: raw rows", lambda: pairwise_angles(W), report)
    a_pca = _stage("angles: PCA(2) coords", lambda: pairwise_angles(pca(W, 2).coords), report)
    a_svd = _stage("angles: TruncatedSVD(2) coords", lambda: pairwise_angles(truncated_svd(W, 2).coords), report)
    stats = _stage(
        "group stats (3 representations)",
        lambda: {n: angle_group_stats(a, keys, roles) for n, a in (("raw", a_raw), ("pca", a_pca), ("svd", a_svd))},
        report,
    )
    total = time.perf_counter() - t_all
    traced_peak = max(p for _, _, p in report)
    tracemalloc.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    print(f"{'total' + (' (excl. list preparation)' if args.from_lists else ''):<34s} {total:8.3f} s")
    print(
        f"largest per-stage traced peak: {traced_peak:.1f} MiB; process peak RSS: {rss_mib:.1f} MiB"
        + (" (includes the ~1 GB of input lists)" if args.from_lists else "")
    )
    print(
        "results: PCA(std) EVR "
        + ", ".join(f"{v:.2%}" for v in dec_pca.explained_variance_ratio)
        + "; TruncSVD EVR "
        + ", ".join(f"{v:.2%}" for v in dec_svd.explained_variance_ratio)
        + f"; r(PC1, PH) = {r.r:+.3f}"
    )
    print(stats["raw"].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    ok = total < 60.0 and rss_mib < 4096
    print(f"acceptance (< 60 s, < 4096 MiB): {'PASS' if ok else 'FAIL'}")

    if args.verify:
        t0 = time.perf_counter()
        s_dense = np.linalg.svd(W.astype(np.float64), compute_uv=False)[:3]
        err = np.max(np.abs(dec_svd.singular_values - s_dense) / s_dense)
        print(
            f"verify: TruncatedSVD singular values vs dense float64 SVD, max rel err {err:.2e} "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        ok = ok and err < 1e-9
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
