"""The bucket layout of a cloud job, and moving its files: ``<artifact root>/<run id>/<asset>/``.

::

    <prefix>/inputs/job.json        {job, spec_hash, run_id, asset, created_at} — what the cluster runs
    <prefix>/inputs/spec.json       the spec with relative paths (output_dir is set on the cluster)
    <prefix>/inputs/files/<name>    input files (train data, pools, requests, pairs)
    <prefix>/inputs/adapters/<a>/   adapter folders a generate/score job serves
    <prefix>/outputs/…              the job's output folder, ``_COMPLETE.json`` uploaded last
    <prefix>/result.json            written last by the cluster: status, exit code, GPU, wall time

Spec hashes are path-independent (input files count by content, adapters by file names and sizes),
so the spec the cluster runs has the hash the orchestrator computed: the outputs that come back are
validated against it (``gpu_jobs.io.validate_outputs``). A local model folder is not: it would have to
travel and its path is part of the hash, so the cloud backend refuses one (use a hub id).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_jobs.io import MARKER
from gpu_jobs.spec import GenerateSpec, JobSpec, ScoreSpec, TrainSpec, spec_hash
from inoc.artifacts import ArtifactStore

INPUTS, OUTPUTS, RESULT, JOB_FILE, SPEC_FILE = "inputs", "outputs", "result.json", "job.json", "spec.json"
#: Never copied out of a job's output folder: its lock and the resumable parts of an unfinished job.
SKIPPED_OUTPUTS = (".lock", ".parts")


class StagingError(ValueError):
    """A spec cannot travel to a cluster, or a cluster's outputs are missing from the bucket."""


def slug(text: str) -> str:
    """A path segment from an asset key or partition: ``toy/eval|clown`` → ``toy__eval__clown``."""
    out = re.sub(r"[^A-Za-z0-9_.=-]+", "__", text).strip("_.")
    if not out:
        raise StagingError(f"cannot make a bucket path segment from {text!r}")
    return out


def job_prefix(run_id: str, asset: str) -> str:
    return f"{slug(run_id)}/{slug(asset)}"


@dataclass(frozen=True)
class StagedJob:
    job: str
    prefix: str
    spec_hash: str
    #: The spec as the cluster reads it (relative input paths); ``output_dir`` is replaced there.
    remote_spec: dict[str, Any]


# ------------------------------------------------------------------------------------ inputs
def _put_file(store: ArtifactStore, local: Path, *parts: str) -> None:
    if store.is_local:  # atomic, like ArtifactStore.write_bytes, without reading GBs into memory
        target = Path(store.url(*parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    else:  # a single PUT is atomic on an object store
        store.fs.put_file(str(local), store.url(*parts))


def _get_file(store: ArtifactStore, target: Path, *parts: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        store.fs.get_file(store.url(*parts), tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_files(store: ArtifactStore, *parts: str) -> list[str]:
    """Paths of every file under ``parts``, relative to it, sorted."""
    base = store.url(*parts)
    if not store.fs.exists(base):
        return []
    base_path = store.fs._strip_protocol(base).rstrip("/")
    found = store.fs.find(base)
    rels = []
    for path in found:
        path = store.fs._strip_protocol(path)
        rel = posixpath.relpath(path, base_path)
        if not rel.startswith(".."):
            rels.append(rel)
    return sorted(rels)


def stage_inputs(
    store: ArtifactStore, prefix: str, job: str, spec: JobSpec, *, run_id: str = "", asset: str = ""
) -> StagedJob:
    """Upload ``spec``'s inputs under ``<prefix>/inputs/`` and the spec that names them relatively."""
    if not spec.model.id.startswith("toy:") and Path(spec.model.id).is_absolute():
        raise StagingError(
            f"model.id: {spec.model.id} is a local folder; a cloud job needs a Hugging Face id "
            "(or toy:<profile>), so the cluster can download it"
        )
    if spec.model.tokenizer and Path(spec.model.tokenizer).is_absolute():
        raise StagingError(f"model.tokenizer: {spec.model.tokenizer} is a local folder; use a Hugging Face id")
    data = spec.model_dump(mode="json")
    data["job"] = job
    data["output_dir"] = "out"  # replaced by the cluster's scratch folder
    data.pop("threads", None)
    used: set[str] = set()

    def upload(local: str, field: str) -> str:
        name = Path(local).name
        stem, n = name, 1
        while name in used:  # two inputs with one file name: keep both
            n += 1
            name = f"{n}_{stem}"
        used.add(name)
        _put_file(store, Path(local), prefix, INPUTS, "files", name)
        return f"files/{name}"

    if isinstance(spec, TrainSpec):
        data["data"]["path"] = upload(spec.data.path, "data.path")
        if spec.prefix.pool_path:
            data["prefix"]["pool_path"] = upload(spec.prefix.pool_path, "prefix.pool_path")
    elif isinstance(spec, (GenerateSpec, ScoreSpec)):
        key = "requests" if isinstance(spec, GenerateSpec) else "pairs"
        data[key] = upload(getattr(spec, key), key)
        adapters = {}
        for name, folder in spec.adapters.items():
            seg = slug(name)
            for f in sorted(Path(folder).iterdir()):
                if f.is_file():
                    _put_file(store, f, prefix, INPUTS, "adapters", seg, f.name)
            adapters[name] = f"adapters/{seg}"
        data["adapters"] = adapters
    h = spec_hash(spec)
    store.write_json(data, prefix, INPUTS, SPEC_FILE)
    store.write_json(
        {"job": job, "spec_hash": h, "run_id": run_id, "asset": asset, "created_at": time.time()},
        prefix,
        INPUTS,
        JOB_FILE,
    )
    return StagedJob(job=job, prefix=prefix, spec_hash=h, remote_spec=data)


# ----------------------------------------------------------------------------------- outputs
def read_result(store: ArtifactStore, prefix: str) -> dict[str, Any] | None:
    try:
        return store.read_json(prefix, RESULT)
    except (FileNotFoundError, OSError, ValueError):
        return None


def fetch_outputs(store: ArtifactStore, prefix: str, local_out: Path) -> list[str]:
    """Download ``<prefix>/outputs/`` into ``local_out`` (the marker last, as the job wrote it)."""
    rels = list_files(store, prefix, OUTPUTS)
    if not rels:
        raise StagingError(f"{store.url(prefix, OUTPUTS)}: no outputs in the bucket")
    local_out.mkdir(parents=True, exist_ok=True)
    (local_out / MARKER).unlink(missing_ok=True)  # whatever was here is not these outputs' marker
    for rel in sorted(rels, key=lambda r: r == MARKER):
        _get_file(store, local_out / rel, prefix, OUTPUTS, *rel.split("/"))
    return rels


def upload_outputs(store: ArtifactStore, prefix: str, out_dir: Path) -> list[str]:
    """The cluster side: copy a finished output folder to ``<prefix>/outputs/``, the marker last."""
    files = [
        p
        for p in sorted(out_dir.rglob("*"))
        if p.is_file() and not any(part in SKIPPED_OUTPUTS for part in p.relative_to(out_dir).parts)
    ]
    files.sort(key=lambda p: p.name == MARKER and p.parent == out_dir)
    rels = []
    for p in files:
        rel = p.relative_to(out_dir).as_posix()
        _put_file(store, p, prefix, OUTPUTS, *rel.split("/"))
        rels.append(rel)
    return rels


def download_inputs(store: ArtifactStore, prefix: str, target: Path) -> dict[str, Any]:
    """The cluster side: copy ``<prefix>/inputs/`` into ``target``; returns job.json."""
    rels = list_files(store, prefix, INPUTS)
    if SPEC_FILE not in rels or JOB_FILE not in rels:
        raise StagingError(f"{store.url(prefix, INPUTS)}: no {SPEC_FILE}/{JOB_FILE} — was the job staged?")
    for rel in rels:
        _get_file(store, target / rel, prefix, INPUTS, *rel.split("/"))
    return json.loads((target / JOB_FILE).read_text())
