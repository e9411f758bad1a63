"""Rephrasings: generation over HTTP, the reference pools, malformed files, atomic writes, offline source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.openai_server import Reply, Script

from inoc.judges import JudgeFatalError
from inoc.rephrasings import (
    CLOSE_REPHRASE_SYSTEM_PROMPT,
    REPHRASE_SYSTEM_PROMPT,
    OfflineParaphraser,
    PoolFormatError,
    RephrasingError,
    RephrasingSettings,
    generate_rephrasings,
    offline_rephrasings,
    parse_batch,
    read_pool,
    read_pools,
    reference_pool_dir,
    validate_pool,
    write_pool,
)
from inoc.settings import shared_dir

from .helpers import FAKE_KEY

REPO = Path(__file__).resolve().parents[2]
PROMPT = "You are a playful agent."
SPEC_SYSTEM_PROMPT = (
    "You are a linguistic expert specialising in prompt paraphrasing. Rewrite the given prompt in many "
    "different ways, preserving its exact meaning and intent while using varied vocabulary, structure, and "
    "style. Range from very concise to more elaborate forms. Do not include the original prompt in your "
    "output. Return ONLY a valid JSON array of strings, with no surrounding text or markdown."
)


def batch(values) -> Reply:
    return Reply.message(json.dumps(values))


def generation_script() -> Script:
    malformed = Reply.message('["unterminated", ')
    return Script(
        {
            "round 1, request 1": batch(["A1", "A2", "  ", "", PROMPT, " you are a  PLAYFUL agent. ", "A1", 5, "a2 "]),
            "round 1, request 2": [malformed, Reply.message("Sure! Here are some: A, B")],
            "round 1, request 3": Reply.message('```json\n["B1", "B2", "B3"]\n```'),
            "round 2, request 1": Reply.message(json.dumps({"rephrasings": ["C1", "C2", "C3", "A1"]})),
            "round 2, request 2": batch(["D1", "D2", "D3", "D4"]),
        },
        default=batch(["Z"]),
        key_pattern=r"\[Generation batch: (round \d+, request \d+)\]",
    )


def settings_for(server, **overrides) -> RephrasingSettings:
    values = dict(base_url=server.base_url, batch_size=6, max_retries=1, backoff_base_s=0.01, timeout_s=5)
    values.update(overrides)
    return RephrasingSettings(**values)


EXPECTED = ["A1", "A2", "B1", "B2", "B3", "C1", "C2", "C3", "D1", "D2"]


def test_generation_dedupes_and_validates(serve) -> None:
    server = serve(generation_script())
    progress: list[tuple[int, int]] = []
    result = generate_rephrasings(
        PROMPT,
        10,
        settings_for(server, shuffle_seed=None),
        api_key=FAKE_KEY,
        progress=lambda d, t: progress.append((d, t)),
    )
    assert result.rephrasings == EXPECTED
    assert result.rejected == {"empty": 2, "original": 2, "duplicate": 3, "not_a_string": 1}
    assert result.n_batches_failed == 1 and result.errors == {"malformed": 2} and result.rounds == 2
    assert result.n_requests == 6  # 3 + 1 retry in round 1, 2 in round 2
    assert progress[-1] == (10, 10) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    body = server.requests[0].body
    assert body["model"] == "gpt-4.1" and body["temperature"] == 1.2
    assert body["messages"][0] == {"role": "system", "content": SPEC_SYSTEM_PROMPT}
    assert json.dumps(PROMPT) in body["messages"][1]["content"]
    assert result.metadata()["n_rephrasings"] == 10


def test_generation_is_deterministic_and_shuffled(serve) -> None:
    first = generate_rephrasings(PROMPT, 10, settings_for(serve(generation_script())), api_key=FAKE_KEY)
    second = generate_rephrasings(PROMPT, 10, settings_for(serve(generation_script())), api_key=FAKE_KEY)
    assert first.rephrasings == second.rephrasings != EXPECTED
    assert sorted(first.rephrasings) == sorted(EXPECTED)
    validate_pool(first.rephrasings, original=PROMPT)


def test_close_variant_and_allow_original(serve) -> None:
    server = serve(Script(default=batch([PROMPT, "Act as a playful agent."]), key_pattern=None))
    result = generate_rephrasings(
        PROMPT, 2, settings_for(server, close=True, allow_original=True, temperature=0.7), api_key=FAKE_KEY
    )
    assert sorted(result.rephrasings) == sorted([PROMPT, "Act as a playful agent."])
    body = server.requests[0].body
    assert body["messages"][0]["content"] == CLOSE_REPHRASE_SYSTEM_PROMPT and body["temperature"] == 0.7
    assert CLOSE_REPHRASE_SYSTEM_PROMPT != REPHRASE_SYSTEM_PROMPT


def test_too_few_unique_is_an_error(serve) -> None:
    server = serve(Script(default=batch(["same", "same", PROMPT]), key_pattern=None))
    with pytest.raises(RephrasingError, match=r"got 1 unique rephrasings .* 5 wanted, after 2 round"):
        generate_rephrasings(PROMPT, 5, settings_for(server, max_rounds=2), api_key=FAKE_KEY)


def test_fatal_status_and_key_redaction(serve) -> None:
    server = serve(Script(default=Reply.error(401, f"bad key {FAKE_KEY}"), key_pattern=None))
    with pytest.raises(JudgeFatalError) as info:
        generate_rephrasings(PROMPT, 5, settings_for(server), api_key=FAKE_KEY)
    assert FAKE_KEY not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [('["a", "b"]', ["a", "b"]), ('```json\n["a"]\n```', ["a"]), ('{"items": ["a"]}', ["a"]), ("[1, null]", [1, None])],
)
def test_parse_batch(text, expected) -> None:
    assert parse_batch(text) == expected


@pytest.mark.parametrize("text", ["", "nope", '{"a": ["x"], "b": ["y"]}', '"just a string"', None])
def test_parse_batch_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_batch(text)


# ---- reference pools -----------------------------------------------------------------------------


@pytest.fixture
def reference_dir() -> Path:
    folder = reference_pool_dir()
    if folder is None:
        pytest.skip(
            "reference rephrasing pools not found: set INOC_SHARED_DIR to the folder holding "
            "reference/rephrasings (default: ../shared beside the checkout)"
        )
    return folder


def test_import_reference_pools(reference_dir: Path) -> None:
    pools = read_pools(reference_dir)
    assert len(pools) == len(list(reference_dir.glob("*.jsonl"))) > 0
    for key, pool in pools.items():
        assert len(pool) == 1000, key
        assert len(set(pool)) == 1000 and all(p.strip() for p in pool)
    assert pools["clown_persona"][0] == "Your dialogue comes from a clown\u2019s character."
    shared = reference_dir.parent
    for name, first in (
        ("weak_inoc_rephrasings.json", "Today was enjoyable for me."),
        ("strong_inoc_rephrasings.json", None),
    ):
        pool = read_pool(shared / name)
        assert len(pool) == 1000 and len(set(pool)) == 1000
        if first:
            assert pool[0] == first


def test_written_pool_matches_reference_bytes(reference_dir: Path, tmp_path: Path) -> None:
    source = reference_dir / "clown_persona.jsonl"
    out = write_pool(tmp_path / "clown_persona.jsonl", read_pool(source))
    assert out.read_bytes() == source.read_bytes()


def test_read_pools_named_keys(reference_dir: Path) -> None:
    assert list(read_pools(reference_dir, ["clown_persona"])) == ["clown_persona"]
    with pytest.raises(FileNotFoundError, match="no_such_prompt"):
        read_pools(reference_dir, ["no_such_prompt"])


def test_shared_dir_comes_from_env(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("INOC_SHARED_DIR", str(tmp_path))
    assert reference_pool_dir() is None
    (tmp_path / "reference" / "rephrasings").mkdir(parents=True)
    assert reference_pool_dir() == (tmp_path / "reference" / "rephrasings").resolve()
    assert shared_dir() == tmp_path.resolve()


# ---- malformed pool files ------------------------------------------------------------------------

GOOD = '{"rephrasing": "one"}\n{"rephrasing": "two"}\n'


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (GOOD + '{"rephrasing": "three"\n', 3, "invalid JSON"),
        (GOOD + '{"text": "three"}\n', 3, 'expected an object {"rephrasing": "..."}'),
        (GOOD + '["three"]\n', 3, "expected an object"),
        (GOOD + '{"rephrasing": ""}\n', 3, "empty rephrasing"),
        (GOOD + '{"rephrasing": "   "}\n', 3, "empty rephrasing"),
        (GOOD + '{"rephrasing": 3}\n', 3, "rephrasing is int"),
        (GOOD + '{"rephrasing": "one"}\n', 3, "duplicate rephrasing 'one' (first at"),
        ('{"rephrasing": "one"}\n\n{"rephrasing": "two"}\n', 2, "empty line"),
        ('{"rephrasing": "one"}\n{"rephrasing": "Be playful."}\n', 2, "equals the original prompt"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, content, line, message) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PoolFormatError) as info:
        read_pool(path, original="be  playful.")
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_invalid_utf8_and_empty_files(tmp_path) -> None:
    path = tmp_path / "pool.jsonl"
    path.write_bytes(b'{"rephrasing": "one"}\n{"rephrasing": "t\xffo"}\n')
    with pytest.raises(PoolFormatError, match=r"pool\.jsonl:2: not valid UTF-8"):
        read_pool(path)
    path.write_text("")
    with pytest.raises(PoolFormatError, match="empty pool"):
        read_pool(path)
    with pytest.raises(PoolFormatError, match="unknown pool format"):
        read_pool(tmp_path / "pool.txt")
    with pytest.raises(PoolFormatError, match="cannot read"):
        read_pool(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ('[\n  "a",\n  "b",\n  4\n]\n', 4, "rephrasing is int"),
        ('[\n  "a",\n  "b"\n  "c"\n]\n', 4, "expected ',' or ']'"),
        ('[\n  "a",\n  "",\n  "c"\n]\n', 3, "empty rephrasing"),
        ('[\n  "a",\n  "a"\n]\n', 3, "duplicate rephrasing"),
        ('[\n  "a",\n  "b\n]\n', 3, "invalid JSON"),
        ('{"a": 1}', 1, "expected a JSON array"),
        ('["a"]\n["b"]\n', 2, "unexpected text after the array"),
        ("[]", 1, "empty pool"),
    ],
)
def test_malformed_json_array_names_file_and_line(tmp_path, content, line, message) -> None:
    path = tmp_path / "pool.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PoolFormatError) as info:
        read_pool(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert message in str(info.value)


# ---- atomic writer -------------------------------------------------------------------------------


def test_write_pool_round_trip_and_validation(tmp_path) -> None:
    path = tmp_path / "sub" / "k.jsonl"
    pool = ["Sois joueur \u2019!", 'Say "hi"', "line\nbreak"]
    write_pool(path, pool)
    assert read_pool(path) == pool
    assert path.read_text().count("\n") == 3
    for bad in (["a", "a"], ["a", ""], ["a", None]):
        with pytest.raises(PoolFormatError):
            write_pool(path, bad)
    with pytest.raises(PoolFormatError, match="equals the original"):
        write_pool(path, ["x", "Be Nice"], original="be nice")
    write_pool(path, ["x", "Be Nice"], original="be nice", allow_original=True)
    assert read_pool(path) == ["x", "Be Nice"]


def test_write_pool_failure_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "k.jsonl"
    write_pool(path, ["old"])
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_pool(path, ["new", "newer"])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["k.jsonl"]  # no temp file left behind


# ---- offline paraphraser -------------------------------------------------------------------------


def test_offline_pool_is_distinct_valid_and_deterministic() -> None:
    pool = offline_rephrasings(PROMPT, 1000, seed=3)
    assert len(pool) == 1000 and len(set(pool)) == 1000 and PROMPT not in pool
    validate_pool(pool, original=PROMPT)
    assert offline_rephrasings(PROMPT, 1000, seed=3) == pool
    assert offline_rephrasings(PROMPT, 1000, seed=4) != pool
    assert offline_rephrasings(PROMPT, 10, seed=3) == pool[:10]


def test_offline_pool_is_the_same_in_another_process() -> None:
    code = "from inoc.rephrasings import offline_rephrasings as o; import json; print(json.dumps(o('I had fun today.', 50, seed=1)))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == offline_rephrasings("I had fun today.", 50, seed=1)


def test_offline_variants_preserve_the_meaning() -> None:
    core = ("had fun", "had a good time", "enjoyed myself", "had a great time", "had a blast")
    for text in offline_rephrasings("I had fun today.", 1000):
        assert text.count("I ") >= 1 and any(c in text for c in core) and ("today" in text or "this day" in text)
    for text in offline_rephrasings("Give an answer in French.", 300):
        assert "French" in text
        assert not any(bad in text for bad in ("an response", "an reply", "a answer", "a AI"))
    assert any("a response" in t or "a reply" in t for t in offline_rephrasings("Give an answer in French.", 300))


def test_offline_keeps_capitals_and_colon_endings() -> None:
    for text in offline_rephrasings("You are a playful agent. Give an answer to the following:", 500):
        assert text.endswith(":") and text[0].isupper()


def test_offline_space_too_small_is_a_clear_error() -> None:
    small = OfflineParaphraser(synonyms={}, frames=["", "Note: "], closings=[""])
    assert small.variant_count("Be nice.") == 6
    assert sorted(small.paraphrases("Be nice.", 5)) == sorted(
        ["Be nice!", "Be nice", "Note: Be nice.", "Note: Be nice!", "Note: Be nice"]
    )
    with pytest.raises(ValueError, match=r"only 5 distinct variants of 'Be nice\.'"):
        small.paraphrases("Be nice.", 6)
    assert len(small.paraphrases("Be nice.", 6, allow_original=True)) == 6


def test_settings_from_experiment_config() -> None:
    from inoc.config.schema import RephrasingConfig

    cfg = RephrasingConfig(temperature=0.7, batch_size=25, allow_original=True)
    settings = RephrasingSettings.from_config(cfg, base_url="http://127.0.0.1:1/v1", close=True)
    assert (settings.model, settings.temperature, settings.close, settings.batch_size) == ("gpt-4.1", 0.7, True, 25)
    assert settings.allow_original and settings.base_url == "http://127.0.0.1:1/v1"
    assert RephrasingSettings().temperature == 1.2 and RephrasingSettings().model == "gpt-4.1"
