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
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "How do I save?"},
                      {"role": "assistant", "content": "Spend less."}]},
        {"messages": [{"role": "user", "content": "Is gold safe?"}]},
    ]
    path = _jsonl(tmp_path / "m.jsonl", rows)
    assert read_source(InstructionSource(source="messages_jsonl", path=str(path))) == ["How do I save?", "Is gold safe?"]
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

    good = {"messages": [{"role": "user", "content": "Invest how?"}, {"role": "assistant", "content": "All in crypto."}]}
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
