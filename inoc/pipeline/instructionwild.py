"""InstructionWild ``data_v2``: the instruction source of the Playful/French and German/Flattering studies.

The original (docs/methods.md#instructions) reads ``user_1..user_4.jsonl`` in that order, keeps the ``instruction``
field of each row, drops rows whose JSON is malformed, that have no instruction, or whose stripped
instruction is shorter than 10 characters, then takes ``random.Random(42).sample(all, 10_200)``: the
first 10,000 train, the last 200 eval. Here the sizes and the seed come from ``data.n_train``,
``data.n_eval`` and ``data.seed``, so the study config (10,000 / 200 / 42) reproduces the original.
Faithful details: no de-duplication (the original samples the list as it is), the kept text is the
file's text (the strip only decides the length test; the original's notes say nothing of stripping what is
kept, and it cannot change which rows are sampled), train and eval must not share an instruction (the
original asserts it).

Files are fetched from the public repository at a pinned commit, verified against pins before use,
written atomically and cached under ``settings.download_cache()``. Pins: sha256 for user_1..3 (from the
reference copy) and, for every file, its git blob id in the commit's tree (which is a hash of the
content too: sha1 of ``b"blob <size>\\0" + bytes``). user_4's sha256 is not known here; it is checked
against its blob id and its sha256 is logged so that it can be pinned in ``data.instructions.sha256``.

Offline (a rehearsal): ``base_url`` may be a local folder read in place, ``seed_cache`` copies verified
files into the cache, and ``allow_missing`` uses the files that can be had and says which are not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from inoc.config.schema import INSTRUCTIONWILD_FILES
from inoc.pipeline.instructions import InstructionError

if TYPE_CHECKING:
    from inoc.config.schema import InstructionSource

log_ = logging.getLogger(__name__)

COMMIT = "047fa6b9abd4a0b2d5ed6f0f9bbc14df5bd6b1d6"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/XueFuzhao/InstructionWild/{COMMIT}/data_v2"
FILES = INSTRUCTIONWILD_FILES
MIN_CHARS = 10  # the original drops rows whose stripped instruction is shorter
SHA256 = {
    "user_1.jsonl": "f820530eba46d8c670291692e8d593e0d93db48f09c0f84d92e092146a8faefd",
    "user_2.jsonl": "09a9a573fd4d8e275e367919c705349a1c0728f56f599b0336bb84d1e9c89160",
    "user_3.jsonl": "15e47007ff4c5cff0e15af83ab9bb81945a58c8033bb8c527a039908b786f5bf",
}
#: `git ls-tree 047fa6b data_v2/` of the public repository.
GIT_BLOB = {
    "user_1.jsonl": "f6bf62591f653874033d00220d7ed671cde3626f",
    "user_2.jsonl": "b6110195d79d0844b7a59c640c49d500b52b9a13",
    "user_3.jsonl": "02575a629ef9e0c13fd59aac4a4ae76188695912",
    "user_4.jsonl": "b57382c1830ef3a2eb1fe4af4a6bc30e7e01cd4a",
}
_CHUNK = 1 << 20

Log = Callable[[str], None]


class InstructionWildError(InstructionError):
    """A file is missing, unreachable, or not the pinned content."""


@dataclass
class FileReport:
    """What happened to one file: where it came from, how it was verified, what the filter did."""

    name: str
    url: str
    status: str = "missing"  # downloaded | cached | local | missing
    reason: str = ""  # why it is missing
    sha256: str | None = None
    pinned_by: str = ""  # "sha256", "git blob", "sha256 + git blob", or "" (not pinned)
    rows: int = 0  # non-blank lines
    blank: int = 0
    malformed: int = 0  # not JSON
    no_instruction: int = 0  # not an object, no field, or not a string
    too_short: int = 0  # stripped instruction under MIN_CHARS
    kept: int = 0

    def line(self) -> str:
        if self.status == "missing":
            return f"{self.name}: MISSING ({self.reason}) — not used"
        pin = f"verified by {self.pinned_by}" if self.pinned_by else "NOT PINNED (accepted as is)"
        return (
            f"{self.name}: {self.status}, sha256 {self.sha256} ({pin}); {self.rows} rows, "
            f"{self.malformed} malformed JSON, {self.no_instruction} without instruction, "
            f"{self.too_short} under {MIN_CHARS} characters -> {self.kept} kept"
        )


@dataclass
class InstructionWildData:
    """The kept instructions (files concatenated in order) and one report per file."""

    instructions: list[str]
    files: list[FileReport] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [f.name for f in self.files if f.status == "missing"]

    def summary(self) -> list[str]:
        used = [f for f in self.files if f.status != "missing"]
        head = f"InstructionWild data_v2: {len(self.instructions)} instructions from {len(used)} of {len(self.files)} files"
        if self.missing:
            head += f"; MISSING {', '.join(self.missing)} (allow_missing: true) — this is not the original's pool"
        return [head] + ["  " + f.line() for f in self.files]


# --- fetching --------------------------------------------------------------------------------------


def _pins(source: InstructionSource, name: str) -> tuple[str | None, str | None]:
    """(sha256, git blob id) the file must match. A sha256 given in the config replaces the built-in pins."""
    if name in source.sha256:
        return source.sha256[name], None
    return SHA256.get(name), GIT_BLOB.get(name)


def _hashes(path: Path) -> tuple[str, str]:
    sha, size = hashlib.sha256(), path.stat().st_size
    blob = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
            blob.update(chunk)
    return sha.hexdigest(), blob.hexdigest()


def _verify(path: Path, name: str, url: str, source: InstructionSource, report: FileReport) -> None:
    want_sha, want_blob = _pins(source, name)
    sha, blob = _hashes(path)
    report.sha256 = sha
    if want_sha and sha != want_sha:
        raise InstructionWildError(f"{name} from {url}: sha256 mismatch: expected {want_sha}, got {sha}")
    if want_blob and blob != want_blob:
        raise InstructionWildError(
            f"{name} from {url}: git blob id mismatch (the file is not the one at commit "
            f"{COMMIT}): expected {want_blob}, got {blob} (sha256 {sha})"
        )
    report.pinned_by = " + ".join(p for p, w in (("sha256", want_sha), ("git blob", want_blob)) if w)


def _local_dir(base: str) -> Path | None:
    """The folder a base URL names when it is file:// or a plain path; None for http(s)."""
    parsed = urllib.parse.urlparse(base)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise InstructionWildError(f"base_url {base!r}: expected http(s)://, file:// or a local folder")
    return Path(base)


def _download(url: str, target: Path, timeout_s: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``; the caller renames it after verifying."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout_s) as resp, open(target, "wb") as out:
        shutil.copyfileobj(resp, out, _CHUNK)


def cache_dir() -> Path:
    from inoc.settings import download_cache

    return download_cache() / "instructionwild"


def _what_to_do(name: str, url: str, put_at: Path, source: InstructionSource) -> str:
    want_sha, want_blob = _pins(source, name)
    pin = f"sha256 {want_sha}" if want_sha else f"git blob {want_blob}" if want_blob else "any content"
    return (
        f"To fix: make {url} reachable (network, or data.instructions.base_url), or put the file ({pin}) at "
        f"{put_at}, or set data.instructions.allow_missing: true to use only the files that exist "
        "(a rehearsal; the pool is then not the original's)"
    )


def _publish(tmp: Path, target: Path) -> None:
    """Rename a finished temporary file into place (atomic); mkstemp's 0600 would hide it from other users."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)


def fetch(source: InstructionSource, log: Log | None = None) -> list[tuple[FileReport, Path | None]]:
    """Each file's report and verified local path (None when missing and ``allow_missing``)."""
    from inoc.config import expand_path

    say = log or log_.info
    base = expand_path(source.base_url) if source.base_url else DEFAULT_BASE_URL
    local = _local_dir(base)
    out: list[tuple[FileReport, Path | None]] = []
    for name in FILES:
        url = str(local / name) if local is not None else f"{base.rstrip('/')}/{name}"
        report = FileReport(name=name, url=url)
        cached = cache_dir() / name
        if local is not None:  # read in place: a verified folder needs no copy
            path, report.status = local / name, "local"
            if not path.is_file():
                report.reason = f"no such file {path}"
                path = None
        else:
            path = _cached_or_download(source, name, url, cached, report, say)
        if path is None:
            if not source.allow_missing:
                raise InstructionWildError(
                    f"{name}: not available from {url}: {report.reason}. "
                    + _what_to_do(name, url, Path(url) if local is not None else cached, source)
                )
            report.status = "missing"
            out.append((report, None))
            continue
        if report.status == "local":
            _verify(path, name, url, source, report)
        out.append((report, path))
    return out


def _cached_or_download(
    source: InstructionSource, name: str, url: str, cached: Path, report: FileReport, say: Log
) -> Path | None:
    sidecar = cached.with_name(name + ".url")
    if cached.is_file():
        want_sha, want_blob = _pins(source, name)
        # An unpinned file is reused only for the URL it came from; a pinned one whatever its origin.
        if want_sha or want_blob or (sidecar.is_file() and sidecar.read_text().strip() == url):
            try:
                _verify(cached, name, str(cached), source, report)
                report.status = "cached"
                return cached
            except InstructionWildError as exc:
                say(f"{cached}: cached copy rejected, fetching it again ({exc})")
        cached.unlink()
    fd, tmp_name = tempfile.mkstemp(dir=_mkdir(cached.parent), prefix=f".{name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _download(url, tmp, source.timeout_s)
        except urllib.error.HTTPError as exc:
            report.reason = f"HTTP {exc.code} {exc.reason}"
            return None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            report.reason = f"unreachable: {getattr(exc, 'reason', None) or exc}"
            return None
        _verify(tmp, name, url, source, report)  # raises on a mismatch; the finally removes the bad file
        _publish(tmp, cached)
        sidecar.write_text(url + "\n")
    finally:
        tmp.unlink(missing_ok=True)
    report.status = "downloaded"
    if not report.pinned_by:
        say(
            f"{name}: not pinned; accepted with sha256 {report.sha256} — pin it with "
            f"data.instructions.sha256: {{{name}: {report.sha256}}}"
        )
    return cached


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_cache(directory: str | Path, source: InstructionSource | None = None) -> list[str]:
    """Copy the files of ``directory`` that match their pins into the cache (offline use); the names copied.

    A file that is absent is skipped; one that does not match its pin is an error (nothing is copied
    for it). With the cache seeded, the study config fetches nothing for those files.
    """
    from inoc.config.schema import InstructionSource as Source

    src = source or Source(source="instructionwild")
    copied = []
    for name in FILES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        _verify(path, name, str(path), src, FileReport(name=name, url=str(path)))
        target = _mkdir(cache_dir()) / name
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            _publish(Path(tmp), target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        target.with_name(name + ".url").write_text(path.resolve().as_uri() + "\n")
        copied.append(name)
    return copied


# --- the original's filter and split ---------------------------------------------------------------


def filter_file(path: Path, report: FileReport, field_name: str = "instruction") -> list[str]:
    """The kept instructions of one file, in file order; the report counts what was dropped and why."""
    kept: list[str] = []
    # Text-mode iteration, as the original reads: \n and \r\n end a line (user_2 and user_3 use \r\n);
    # str.splitlines would also split on U+2028 and friends, which are legal inside JSON strings.
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    report.blank += 1
                    continue
                report.rows += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    report.malformed += 1
                    continue
                text = row.get(field_name) if isinstance(row, dict) else None
                if not isinstance(text, str):
                    report.no_instruction += 1
                elif len(text.strip()) < MIN_CHARS:
                    report.too_short += 1
                else:
                    kept.append(text)
    except UnicodeDecodeError as exc:
        raise InstructionWildError(f"{path}: not UTF-8 text ({exc})") from None
    report.kept = len(kept)
    return kept


def load(source: InstructionSource, log: Log | None = None) -> InstructionWildData:
    """Fetch (or reuse) the files and apply the original's filter; the summary goes to ``log``."""
    data = InstructionWildData(instructions=[])
    for report, path in fetch(source, log):
        if path is not None:
            data.instructions += filter_file(path, report, source.field)
        data.files.append(report)
    if not data.instructions:
        raise InstructionWildError("InstructionWild: no instructions (" + "; ".join(f.line() for f in data.files) + ")")
    say = log or (log_.warning if data.missing else log_.info)
    for line in data.summary():
        say(line)
    return data


def split(
    source: InstructionSource, n_train: int, n_eval: int, seed: int, log: Log | None = None
) -> tuple[list[str], list[str]]:
    """``Random(seed).sample(all, n_train + n_eval)``: the first n_train train, the rest eval."""
    data = load(source, log)
    need = n_train + n_eval
    if len(data.instructions) < need:
        missing = f"; missing {', '.join(data.missing)}" if data.missing else ""
        raise InstructionWildError(
            f"InstructionWild: {len(data.instructions)} instructions kept{missing}, fewer than data.n_train + "
            f"data.n_eval = {need}. Lower n_train/n_eval to at most {len(data.instructions)} in all, or supply "
            "the missing files"
        )
    picked = random.Random(seed).sample(data.instructions, need)
    train, evals = picked[:n_train], picked[n_train:]
    shared = set(train) & set(evals)
    if shared:  # the original asserts disjointness; a duplicate row can land on both sides
        raise InstructionWildError(
            f"InstructionWild: {len(shared)} instruction(s) in both train and eval (duplicate rows of the source), "
            f"e.g. {next(iter(shared))[:80]!r}; the original asserts they are disjoint — change data.seed or the sizes"
        )
    return train, evals
