"""InstructionWild data_v2 source: the real user_1..3 files served over HTTP on 127.0.0.1, checked against
an independent computation of the original's filter and split (SPEC-DETAILED §2.1)."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from inoc.config.schema import InstructionSource
from inoc.pipeline import instructionwild as iw
from inoc.pipeline.instructions import InstructionError, read_source, split_instructions

REAL = ("user_1.jsonl", "user_2.jsonl", "user_3.jsonl")


class Server:
    """Serves {url name: file} read in place at /data_v2/<name>; 404 otherwise; counts GETs per name."""

    def __init__(self, files: dict[str, Path], delay_s: float = 0.0):
        self.files, self.hits = files, Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                outer.hits[name] += 1
                time.sleep(delay_s)
                path = outer.files.get(name) if self.path.startswith("/data_v2/") else None
                if path is None:
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data_v2"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def env(inoc_home, monkeypatch):
    for var in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "INOC_DOWNLOAD_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    return inoc_home


@pytest.fixture
def serve():
    servers = []

    def start(files, delay_s=0.0):
        servers.append(Server(files, delay_s))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def iw_dir(shared) -> Path:
    return shared / "reference" / "instructionwild"


def _src(**kw) -> InstructionSource:
    return InstructionSource(source="instructionwild", **kw)


def _cache(home: Path) -> Path:
    return home / "downloads" / "instructionwild"


def independent(folder: Path, n: int, seed: int):
    """The original's procedure, written out plainly: filter each file in order, concatenate, sample."""
    counts, pool = {}, []
    for name in REAL:
        c = Counter()
        with open(folder / name, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                c["rows"] += 1
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    c["malformed"] += 1
                    continue
                text = row.get("instruction") if isinstance(row, dict) else None
                if not isinstance(text, str):
                    c["no_instruction"] += 1
                elif len(text.strip()) < 10:
                    c["too_short"] += 1
                else:
                    pool.append(text)
                    c["kept"] += 1
        counts[name] = c
    return counts, pool, random.Random(seed).sample(pool, n)


@pytest.mark.shared
def test_filter_and_split_match_an_independent_computation(env, serve, iw_dir):
    server = serve({n: iw_dir / n for n in REAL})
    n_train, n_eval = 400, 100
    lines = []
    train, evals = split_instructions(
        _src(base_url=server.url, allow_missing=True), n_train, n_eval, 42, log=lines.append
    )
    counts, pool, picked = independent(iw_dir, n_train + n_eval, 42)
    # The measured counts of the three public files (malformed rows: bad \escapes in user_2 and user_3).
    assert {k: dict(v) for k, v in counts.items()} == {
        "user_1.jsonl": {"rows": 429, "too_short": 1, "kept": 428},
        "user_2.jsonl": {"rows": 248, "malformed": 2, "kept": 246},
        "user_3.jsonl": {"rows": 201, "malformed": 3, "kept": 198},
    }
    data = iw.load(_src(base_url=server.url, allow_missing=True), log=lambda s: None)
    for f in data.files[:3]:
        c = counts[f.name]
        assert (f.rows, f.malformed, f.no_instruction, f.too_short, f.kept) == (
            c["rows"],
            c["malformed"],
            c["no_instruction"],
            c["too_short"],
            c["kept"],
        ), f.name
        assert f.status == "cached" and f.pinned_by == "sha256 + git blob"
    assert data.instructions == pool and len(pool) == 872
    assert (train[0], train[-1], evals[0], evals[-1]) == (picked[0], picked[n_train - 1], picked[n_train], picked[-1])
    assert train + evals == picked and len(train) == n_train and len(evals) == n_eval
    assert any(t != t.strip() for t in pool), "kept text is the file's text, not stripped"
    # The missing file is said, with the count actually used.
    assert data.missing == ["user_4.jsonl"] and "HTTP 404" in data.files[3].reason
    assert lines[0].startswith("InstructionWild data_v2: 872 instructions from 3 of 4 files; MISSING user_4.jsonl")


@pytest.mark.shared
def test_duplicate_rows_landing_on_both_sides_are_refused_as_the_original_asserts(env, iw_dir):
    # user_2 and user_3 each hold one duplicated instruction; with seed 42 and 800/60 one lands on both sides.
    _, _, picked = independent(iw_dir, 860, 42)
    assert set(picked[:800]) & set(picked[800:])
    with pytest.raises(InstructionError, match=r"1 instruction\(s\) in both train and eval"):
        split_instructions(_src(base_url=str(iw_dir), allow_missing=True), 800, 60, 42, log=lambda s: None)


@pytest.mark.shared
def test_fewer_rows_than_requested_is_an_error_naming_the_count(env, iw_dir):
    with pytest.raises(
        InstructionError,
        match=r"872 instructions kept; missing user_4\.jsonl, fewer than "
        r"data\.n_train \+ data\.n_eval = 900",
    ):
        split_instructions(_src(base_url=str(iw_dir), allow_missing=True), 800, 100, 42, log=lambda s: None)


@pytest.mark.shared
def test_cache_is_reused_without_a_second_request(env, serve, iw_dir):
    server = serve({n: iw_dir / n for n in REAL})
    first = iw.load(_src(base_url=server.url, allow_missing=True), log=lambda s: None)
    assert [f.status for f in first.files] == ["downloaded"] * 3 + ["missing"]
    assert sorted(p.name for p in _cache(env).iterdir()) == sorted([*REAL, *(n + ".url" for n in REAL)])
    for name in REAL:
        assert (_cache(env) / name).read_bytes() == (iw_dir / name).read_bytes()
    second = iw.load(_src(base_url=server.url, allow_missing=True), log=lambda s: None)
    assert [f.status for f in second.files] == ["cached"] * 3 + ["missing"]
    assert second.instructions == first.instructions
    assert {n: server.hits[n] for n in REAL} == {n: 1 for n in REAL}  # no second download
    assert server.hits["user_4.jsonl"] == 2  # a missing file is asked for again, not cached


@pytest.mark.shared
def test_sha256_mismatch_is_rejected_and_leaves_no_cache_file(env, serve, iw_dir, tmp_path):
    bad = tmp_path / "served" / "user_1.jsonl"
    bad.parent.mkdir()
    bad.write_bytes((iw_dir / "user_1.jsonl").read_bytes().replace(b"CTF", b"ctf", 1))
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    server = serve({"user_1.jsonl": bad, "user_2.jsonl": iw_dir / "user_2.jsonl"})
    with pytest.raises(InstructionError) as exc:
        iw.load(_src(base_url=server.url, allow_missing=True), log=lambda s: None)
    msg = str(exc.value)
    assert "user_1.jsonl" in msg and f"expected {iw.SHA256['user_1.jsonl']}" in msg and f"got {actual}" in msg
    assert not _cache(env).exists() or not list(_cache(env).iterdir())  # no file, no leftover .part


def test_git_blob_pin_guards_user_4_and_a_config_sha256_replaces_it(env, serve, tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    fake = folder / "user_4.jsonl"
    fake.write_text('{"instruction": "Not the Discord file, but long enough."}\n')
    server = serve({"user_4.jsonl": fake})
    with pytest.raises(
        InstructionError,
        match=rf"user_4\.jsonl from .*: git blob id mismatch .* expected "
        rf"{iw.GIT_BLOB['user_4.jsonl']}",
    ):
        iw.load(_src(base_url=server.url, allow_missing=True), log=lambda s: None)
    assert not (_cache(env) / "user_4.jsonl").exists()
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    data = iw.load(_src(base_url=server.url, allow_missing=True, sha256={"user_4.jsonl": digest}), log=lambda s: None)
    assert data.instructions == ["Not the Discord file, but long enough."]
    assert data.files[3].pinned_by == "sha256" and data.files[3].sha256 == digest
    assert data.missing == ["user_1.jsonl", "user_2.jsonl", "user_3.jsonl"]


@pytest.mark.shared
def test_a_missing_file_without_allow_missing_names_file_url_and_fix(env, serve, iw_dir):
    server = serve({n: iw_dir / n for n in REAL})
    with pytest.raises(InstructionError) as exc:
        read_source(_src(base_url=server.url))
    msg = str(exc.value)
    assert msg.startswith(f"user_4.jsonl: not available from {server.url}/user_4.jsonl: HTTP 404")
    assert "allow_missing: true" in msg and iw.GIT_BLOB["user_4.jsonl"] in msg
    assert str(_cache(env) / "user_4.jsonl") in msg  # where to put it by hand


def test_unreachable_and_slow_servers_fail_with_the_url(env, serve):
    slow = serve({}, delay_s=3.0)
    start = time.monotonic()
    with pytest.raises(
        InstructionError,
        match=rf"user_1\.jsonl: not available from {slow.url}/user_1\.jsonl: "
        "unreachable",
    ):
        read_source(_src(base_url=slow.url, timeout_s=0.5))
    assert time.monotonic() - start < 2.5  # the timeout, not the server, ended the request
    dead = serve({})
    url = dead.url
    dead.close()
    with pytest.raises(InstructionError, match=r"unreachable"):
        read_source(_src(base_url=url))


def test_rows_are_filtered_as_the_original_did_not_failed(env, tmp_path):
    folder = tmp_path / "iw"
    folder.mkdir()
    (folder / "user_1.jsonl").write_text(
        '{"instruction": "  a long enough instruction  "}\n'
        "{broken json\n"
        "\n"
        '{"prompt": "no instruction field here"}\n'
        '["not", "an", "object"]\n'
        '{"instruction": null}\n'
        '{"instruction": "   short    "}\n'
        '{"instruction": "0123456789"}\n'
        '{"instruction": " 123456789 "}\n'
    )
    (folder / "user_2.jsonl").write_bytes(b'{"instruction": "crlf line endings, kept"}\r\n{"instruction": "x"}\r\n')
    (folder / "user_3.jsonl").write_text('{"instruction": "line\\u2028separator inside a string"}\n')
    pins = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in REAL}
    data = iw.load(_src(base_url=folder.as_uri(), sha256=pins, allow_missing=True), log=lambda s: None)
    assert data.instructions == [
        "  a long enough instruction  ",
        "0123456789",
        "crlf line endings, kept",
        "line\u2028separator inside a string",
    ]
    f = data.files[0]
    assert (f.rows, f.blank, f.malformed, f.no_instruction, f.too_short, f.kept) == (8, 1, 1, 3, 2, 2)
    assert (data.files[1].too_short, data.files[2].kept, data.files[3].status) == (1, 1, "missing")


@pytest.mark.shared
def test_offline_rehearsal_seeds_the_cache_and_reports_what_is_missing(env, serve, iw_dir):
    assert iw.seed_cache(iw_dir) == list(REAL)
    counter = serve({})  # stands in for an unreachable internet: user_4 is asked for, nothing else
    dead_url = counter.url
    data = iw.load(_src(base_url=dead_url, allow_missing=True), log=lambda s: None)
    assert [f.status for f in data.files] == ["cached"] * 3 + ["missing"]
    assert len(data.instructions) == 872 and set(counter.hits) == {"user_4.jsonl"}
    # Reading the folder in place gives the same pool.
    assert iw.load(_src(base_url=str(iw_dir), allow_missing=True), log=lambda s: None).instructions == data.instructions


def test_schema_rejects_stray_fields_and_bad_pins():
    with pytest.raises(ValidationError, match="only source 'instructionwild' reads this"):
        InstructionSource(source="jsonl", path="x.jsonl", allow_missing=True)
    with pytest.raises(ValidationError, match=r"sha256: unknown file 'user_5\.jsonl'"):
        _src(sha256={"user_5.jsonl": "0" * 64})
    with pytest.raises(ValidationError, match=r"sha256\.user_4\.jsonl: expected 64 lower-case hex digits"):
        _src(sha256={"user_4.jsonl": "ABC"})


@pytest.mark.parametrize("experiment", ["playful_french_qwen7b", "german_flattering_llama8b"])
def test_pf_and_gf_use_the_original_source_and_sizes(experiment):
    from inoc.config import load_experiment

    d = load_experiment(Path(__file__).resolve().parents[2] / "experiments" / f"{experiment}.yaml").data
    assert (d.instructions.source, d.n_train, d.n_eval, d.seed, d.split) == (
        "instructionwild",
        10_000,
        200,
        42,
        "shuffle",
    )
    assert (d.instructions.base_url, d.instructions.allow_missing, d.instructions.sha256) == (None, False, {})
