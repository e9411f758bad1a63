"""gpu_jobs — the three standalone GPU jobs (train, generate, score), importable without Dagster.

Run one as ``python -m gpu_jobs.<train|generate|score> --spec spec.json`` (see ``README.md``). The
package needs only ``dagster-pipes`` for reporting; torch, transformers and peft are imported when a
job actually computes, so validating a spec or reusing finished outputs imports none of them.
"""

JOBS = ("train", "generate", "score")
