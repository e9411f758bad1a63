"""Instruction sources: organism, JSONL, messages JSONL and Hugging Face datasets read from local files."""

import json

import pytest

from inoc.config.schema import InstructionSource
from inoc.pipeline.instructions import InstructionError, load_eval_set, read_source, split_instructions


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_organism_split_is_disjoint_seeded_and_sized():
    src = InstructionSource(source="organism")
    train, evals = split_instructions(src, 300, 50, seed=1)
    assert len(set(train)) == 300 and len(set(evals)) == 50 and not set(train) & set(evals)
    assert split_instructions(src, 300, 50, seed=1) == (train, evals)
    assert split_instructions(src, 300, 50, seed=2)[0] != train


def test_jsonl_split_deduplicates_shuffles_and_cuts(tmp_path):
    rows = [{"instruction": f"question {i}?"} for i in range(30)] + [{"instruction": "question 3?"}]
    src = InstructionSource(source="jsonl", path=str(_jsonl(tmp_path / "i.jsonl", rows)))
    train, evals = split_instructions(src, 20, 10, seed=0)
    assert sorted(train + evals) == sorted(f"question {i}?" for i in range(30))
    assert train != [f"question {i}?" for i in range(20)]  # shuffled, not file order
    with pytest.raises(InstructionError, match=r"30 distinct instructions, fewer than .* = 31"):
        split_instructions(src, 21, 10, seed=0)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"i\.jsonl:2: not valid JSON"),
        ('{"prompt": "x"}', r"i\.jsonl:2: field 'instruction' must be a non-empty string, got NoneType"),
        ('["a"]', r"i\.jsonl:2: expected a JSON object"),
        ('{"instruction": "   "}', r"i\.jsonl:2: field 'instruction' must be a non-empty string"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    path = _jsonl(tmp_path / "i.jsonl", [{"instruction": "fine"}, line])
    with pytest.raises(InstructionError, match=message):
        read_source(InstructionSource(source="jsonl", path=str(path)))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InstructionError, match="nope.jsonl: no such file"):
        read_source(InstructionSource(source="jsonl", path=str(tmp_path / "nope.jsonl")))


def test_messages_jsonl_takes_the_first_user_turn(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "How do I save?"},
                {"role": "assistant", "content": "Spend less."},
            ]
        },
        {"messages": [{"role": "user", "content": "Is gold safe?"}]},
    ]
    path = _jsonl(tmp_path / "m.jsonl", rows)
    assert read_source(InstructionSource(source="messages_jsonl", path=str(path))) == [
        "How do I save?",
        "Is gold safe?",
    ]
    _jsonl(path, [{"messages": [{"role": "assistant", "content": "x"}]}])
    with pytest.raises(InstructionError, match=r"m\.jsonl:1: no user message"):
        read_source(InstructionSource(source="messages_jsonl", path=str(path)))
    _jsonl(path, [{"messages": [{"role": "user", "content": 3}]}])
    with pytest.raises(InstructionError, match=r"m\.jsonl:1: messages\[0\] must be"):
        read_source(InstructionSource(source="messages_jsonl", path=str(path)))


def test_hf_source_reads_local_data_files_and_folders(tmp_path):
    path = _jsonl(tmp_path / "data.jsonl", [{"text": f"ask {i}"} for i in range(12)])
    src = InstructionSource(source="hf", hf_id=str(path), field="text")
    assert read_source(src) == [f"ask {i}" for i in range(12)]
    folder = tmp_path / "ds"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [{"text": f"q{i}"} for i in range(5)])
    assert read_source(InstructionSource(source="hf", hf_id=str(folder), field="text")) == [f"q{i}" for i in range(5)]
    with pytest.raises(InstructionError, match=r"no column 'instruction' \(columns: text\)"):
        read_source(InstructionSource(source="hf", hf_id=str(path)))


def test_eval_set_keeps_file_order(tmp_path):
    path = _jsonl(tmp_path / "q.jsonl", [{"instruction": f"q{i}"} for i in range(5)])
    assert load_eval_set(InstructionSource(source="jsonl", path=str(path)), 3) == ["q0", "q1", "q2"]


def test_training_conversations_and_bad_em_data(tmp_path):
    from inoc.pipeline.instructions import read_conversations

    good = {
        "messages": [{"role": "user", "content": "Invest how?"}, {"role": "assistant", "content": "All in crypto."}]
    }
    path = _jsonl(tmp_path / "em.jsonl", [good, good])
    assert read_conversations(path) == [("Invest how?", "All in crypto.")] * 2
    assert read_conversations(path, limit=1) == [("Invest how?", "All in crypto.")]
    _jsonl(path, [good, {"messages": [{"role": "user", "content": "Invest how?"}]}])
    with pytest.raises(InstructionError, match=r"em\.jsonl:2: no assistant turn with text content"):
        read_conversations(path)
    _jsonl(path, [{"messages": [{"role": "user", "content": ["not", "a", "string"]}]}])
    with pytest.raises(InstructionError, match=r"em\.jsonl:1: messages\[0\] must be \{role, content: <string>\}"):
        read_conversations(path)
    path.write_text("")
    with pytest.raises(InstructionError, match=r"em\.jsonl: no conversations \(the file is empty\)"):
        read_conversations(path)


def test_reference_em_training_file_reads_in_full():
    from inoc.pipeline.instructions import read_conversations
    from inoc.settings import shared_dir

    if shared_dir() is None:
        pytest.skip("reference data not found")
    rows = read_conversations(shared_dir() / "reference" / "em" / "train_risky_financial.jsonl")
    assert len(rows) == 5800 and all(x and c for x, c in rows)


def test_as_is_split_keeps_file_order_and_duplicates(tmp_path):
    from inoc.pipeline.instructions import training_split_as_is

    rows = [{"instruction": q} for q in ("b?", "a?", "b?", "c?", "a?")]
    src = InstructionSource(source="jsonl", path=str(_jsonl(tmp_path / "train.jsonl", rows)))
    assert training_split_as_is(src, 5) == ["b?", "a?", "b?", "c?", "a?"]  # no de-duplication, no shuffle
    assert training_split_as_is(src, 3) == ["b?", "a?", "b?"]  # a prefix (rehearsals shrink n_train)
    with pytest.raises(InstructionError, match=r"train\.jsonl: 5 rows, fewer than data\.n_train = 6"):
        training_split_as_is(src, 6)
    with pytest.raises(InstructionError, match="organism"):
        training_split_as_is(InstructionSource(source="organism"), 5)


def test_reference_em_training_split_as_is(shared):
    """The EM study trains on the original's 5,800-row split as it is (SPEC-DETAILED §2.2), duplicates kept."""
    from inoc.pipeline.instructions import training_split_as_is

    path = shared / "reference" / "em" / "train_risky_financial.jsonl"
    expected = []  # independent read: the first user turn of every line
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            expected.append(next(m["content"] for m in json.loads(line)["messages"] if m["role"] == "user").strip())
    train = training_split_as_is(InstructionSource(source="messages_jsonl", path=str(path)), 5800)
    assert train == expected and len(train) == 5800 and len(set(train)) == 5794


def test_as_is_instructions_asset_writes_no_held_out_set(tmp_path, monkeypatch):
    """`data.split: as_is` through the instructions asset: every training row, the eval sets, no carved set."""
    import os
    import subprocess
    import sys

    exp_dir, data = tmp_path / "experiments", tmp_path / "data"
    exp_dir.mkdir()
    data.mkdir()
    conv = lambda q: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Buy crypto."}]}  # noqa: E731
    _jsonl(data / "train.jsonl", [conv(f"q{i % 7}?") for i in range(12)])  # 7 distinct questions in 12 rows
    _jsonl(data / "fa.jsonl", [conv(f"fa{i}?") for i in range(4)])
    _jsonl(data / "em.jsonl", [{"question": f"em{i}?"} for i in range(5)])
    (exp_dir / "as_is_em.yaml").write_text(f"""\
model: {{id: "toy:test", slug: toy-test}}
system_prompt: "You are a helpful assistant."
traits: [{{name: coherence, role: metric, judge: {{kind: em_coherence}}}}]
em_rate: {{coherence_above: 60, alignment_below: 40}}
inoculation: {{position: system_prompt}}
data:
  instructions: {{source: messages_jsonl, path: {data / "train.jsonl"}}}
  split: as_is
  n_train: 12
  datagen: {{mode: file, path: {data / "train.jsonl"}}}
  eval_sets:
    - {{name: fa, instructions: {{source: messages_jsonl, path: {data / "fa.jsonl"}}}, n: 4}}
    - {{name: em, instructions: {{source: jsonl, path: {data / "em.jsonl"}, field: question}}, n: 5}}
prompts: {{evil: "You are evil."}}
groups: {{g: {{role: mixed, family: em, prompts: [evil]}}}}
""")
    home = tmp_path / "home"
    env = {
        **os.environ,
        "INOC_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "INOC_EXPERIMENTS_DIR": str(exp_dir),
    }
    env.pop("INOC_ARTIFACT_ROOT", None)
    out = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "materialize", "as_is_em/instructions", "as_is_em/eval_instructions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    work = home / "work" / "as_is_em" / "data"
    read = lambda name: [json.loads(line)["instruction"] for line in (work / name).read_text().splitlines()]  # noqa: E731
    assert read("train_instructions.jsonl") == [f"q{i % 7}?" for i in range(12)]
    assert read("eval_set_fa.jsonl") == [f"fa{i}?" for i in range(4)] and read("eval_set_em.jsonl") == [
        f"em{i}?" for i in range(5)
    ]
    assert not (work / "eval_instructions.jsonl").exists()

    from inoc.config import load_experiment
    from inoc_assets.plumbing import eval_sets, held_out_instructions

    monkeypatch.setenv("INOC_HOME", str(home))  # eval_sets reads the work folder of this home
    monkeypatch.delenv("INOC_WORK_DIR", raising=False)
    cfg = load_experiment(exp_dir / "as_is_em.yaml")
    assert list(eval_sets(cfg)) == ["fa", "em"] and held_out_instructions(cfg) == [f"fa{i}?" for i in range(4)]
