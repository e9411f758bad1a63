"""Where inoc keeps things: every location is a setting read from the environment.

INOC_HOME             working state (warehouse, artifacts); default `.inoc/` in the working directory
INOC_ARTIFACT_ROOT    artifact store, any fsspec URL (default `$INOC_HOME/artifacts`)
INOC_EXPERIMENTS_DIR  experiment YAMLs (default `experiments/` of the checkout, else of the cwd)
INOC_EXPERIMENTS      which of them the code location loads: names, `local`, `all` (comma-separated);
                      default every one (`inoc ui` defaults to `local`; see inoc.config.selection)
INOC_SHARED_DIR       the original study's reference data (default `../shared` beside the checkout);
                      optional: nothing but reference imports and their tests reads it
DAGSTER_HOME          Dagster instance (default `$INOC_HOME/dagster`, holding a copy of dagster.yaml)
INOC_WORK_DIR         local working files of computed experiments: instruction and data files,
                      gpu_job folders (adapters, completions, scores); default `$INOC_HOME/work`
INOC_JUDGE_CACHE      the judges' SQLite answer cache (default `$INOC_HOME/judge_cache.sqlite`)
INOC_DOWNLOAD_CACHE   public data files fetched by URL and pinned by hash (InstructionWild);
                      default `$INOC_HOME/downloads`
INOC_ORGANISM_CACHE   built model organisms (default `~/.cache/inoc/organism`)
"""

from __future__ import annotations

import os
from pathlib import Path

#: The checkout this package was installed from (editable install) — used only for defaults.
REPO_ROOT = Path(__file__).resolve().parent.parent


def inoc_home() -> Path:
    return Path(os.environ.get("INOC_HOME") or Path.cwd() / ".inoc").resolve()


def warehouse_path() -> Path:
    return inoc_home() / "warehouse.duckdb"


def work_dir() -> Path:
    return Path(os.environ.get("INOC_WORK_DIR") or inoc_home() / "work").resolve()


def judge_cache_path() -> Path:
    return Path(os.environ.get("INOC_JUDGE_CACHE") or inoc_home() / "judge_cache.sqlite").resolve()


def download_cache() -> Path:
    return Path(os.environ.get("INOC_DOWNLOAD_CACHE") or inoc_home() / "downloads").resolve()


def artifact_root() -> str:
    """Root URL of the artifact store (a local path or any fsspec URL such as s3://bucket/prefix)."""
    return os.environ.get("INOC_ARTIFACT_ROOT") or str(inoc_home() / "artifacts")


def experiments_dir() -> Path:
    env = os.environ.get("INOC_EXPERIMENTS_DIR")
    if env:
        return Path(env).resolve()
    for candidate in (Path.cwd() / "experiments", REPO_ROOT / "experiments"):
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd() / "experiments").resolve()


def experiment_selection() -> str | None:
    """The raw `INOC_EXPERIMENTS` selection, or None when unset (every experiment)."""
    return os.environ.get("INOC_EXPERIMENTS") or None


def shared_dir() -> Path | None:
    """The reference data folder, or None when this machine has none (a user's fresh clone)."""
    env = os.environ.get("INOC_SHARED_DIR")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared", Path.cwd().parent / "shared"]
    for candidate in candidates:
        if (candidate / "reference").is_dir():
            return candidate.resolve()
    return None


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or inoc_home() / "dagster").resolve()


def prepare_dagster_home() -> Path:
    """Make DAGSTER_HOME exist, hold the repository's dagster.yaml, and be set in the environment.

    A persistent home matters: without one `dagster dev` uses a throw-away folder and loses run
    history and the dynamic prompt partitions.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    source = REPO_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.is_file() and source.resolve() != target.resolve():
        text = source.read_text()
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    os.environ["DAGSTER_HOME"] = str(home)
    return home
