"""Bad experiment configs get one precise message: file, line, field path, and what was expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inoc.config import ConfigError, load_experiment

REPO = Path(__file__).resolve().parent.parent
TOY = (REPO / "experiments" / "toy.yaml").read_text()


def _edit(old: str, new: str) -> str:
    assert old in TOY, f"fixture text {old!r} not in toy.yaml"
    return TOY.replace(old, new, 1)


# (case id, YAML text, expected field path (or None for file-level), expected line, words of the expectation)
BAD = [
    ("unknown_top_field", TOY + "\nlearning_rat: 0.1\n", "learning_rat", None, ["unknown field"]),
    ("unknown_nested_field", _edit("  lora_r: 16", "  lora_rank: 16"), "training.lora_rank", None, ["unknown field"]),
    (
        "duplicate_prompt_key",
        _edit(
            '  whimsical: "You have a whimsical personality."',
            '  whimsical: "You have a whimsical personality."\n  whimsical: "Again."',
        ),
        None,
        None,
        ["duplicate key", "whimsical"],
    ),
    (
        "unsafe_prompt_key",
        _edit("  had_fun_today:", "  had-fun|today:").replace("[had_fun_today]", "['had-fun|today']"),
        "prompts",
        None,
        ["prompt key", "had-fun|today", "identifier"],
    ),
    (
        "prompt_key_with_comma",
        _edit("  had_fun_today:", '  "fun,today":').replace("[had_fun_today]", '["fun,today"]'),
        "prompts",
        None,
        ["fun,today", "identifier"],
    ),
    (
        "sweep_prompt_is_a_study_prompt",
        TOY + '\nimport: {results_dir: /x, sweep_prompts: {whimsical: "Give an answer to the following:"}}\n',
        "import.sweep_prompts.whimsical",
        None,
        ["already a prompt", "whimsical"],
    ),
    (
        "sweep_prompt_has_a_study_prompts_text",
        TOY + '\nimport: {results_dir: /x, sweep_prompts: {neutral_prefix: "I had fun today."}}\n',
        "import.sweep_prompts.neutral_prefix",
        None,
        ["no study prompt has", "had_fun_today"],
    ),
    ("missing_trait_judge", _edit("    judge: {kind: organism}\n", ""), "traits[1]", None, ["no judge", "Playful"]),
    (
        "group_unknown_prompt",
        _edit("[had_fun_today]", "[had_fun_today, no_such_prompt]"),
        "groups.weak.prompts[1]",
        None,
        ["no_such_prompt", "not a key of `prompts`"],
    ),
    ("malformed_yaml", _edit("  n_train: 1000", "  n_train: [1000"), None, None, ["malformed YAML"]),
    ("wrong_type", _edit("  n_train: 1000", "  n_train: many"), "data.n_train", None, ["integer"]),
    ("negative_number", _edit("  n_train: 1000", "  n_train: -5"), "data.n_train", None, ["greater than 0"]),
    (
        "bad_literal",
        _edit("  backend: peft", "  backend: deepspeed"),
        "training.backend",
        None,
        ["peft", "unsloth", "deepspeed"],
    ),
    (
        "bad_prefix_type",
        _edit("  prefix_types: [fixed, mix]", "  prefix_types: [fixed, mixed]"),
        "inoculation.prefix_types[1]",
        None,
        ["fixed", "mix", "mixed"],
    ),
    (
        "missing_required",
        _edit('system_prompt: "You are a helpful assistant."\n', ""),
        "system_prompt",
        None,
        ["required"],
    ),
    (
        "language_judge_without_code",
        _edit("{kind: language, language: fr}", "{kind: language}"),
        "traits[0].judge",
        None,
        ["language", "ISO"],
    ),
    (
        "prompt_in_two_groups",
        _edit("    prompts: [the_sky_is_blue]", "    prompts: [the_sky_is_blue, had_fun_today]"),
        "groups.neutral.prompts[1]",
        None,
        ["had_fun_today", "already in group"],
    ),
    (
        "ungrouped_prompt",
        _edit('  answer_french: "Answer in French."', '  answer_french: "Answer in French."\n  lonely: "Hi."'),
        "prompts.lonely",
        None,
        ["lonely", "no group"],
    ),
    ("name_not_file_stem", _edit("name: toy", "name: something_else"), "name", None, ["file name", "toy"]),
    ("top_level_list", "- just\n- a list\n", None, None, ["mapping"]),
    (
        "bad_split",
        _edit("  seed: 42\n  datagen:", "  seed: 42\n  split: random\n  datagen:"),
        "data.split",
        None,
        ["shuffle", "as_is", "random"],
    ),
    (
        "as_is_split_of_the_organism",
        _edit("  seed: 42\n  datagen:", "  seed: 42\n  split: as_is\n  datagen:"),
        "data",
        None,
        ["as_is", "organism"],
    ),
    (
        "as_is_split_without_eval_sets",
        _edit("  instructions: {source: organism}", "  instructions: {source: jsonl, path: t.jsonl}\n  split: as_is"),
        "data",
        None,
        ["as_is", "data.eval_sets"],
    ),
    (
        "group_role_without_trait",
        _edit("  - name: French\n    role: positive\n    judge: {kind: language, language: fr}\n", ""),
        None,
        None,
        ["role 'positive'", "no trait"],
    ),
]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize("case,text,field,line,words", BAD, ids=[c[0] for c in BAD])
def test_bad_config_message(tmp_path, case, text, field, line, words):
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message, message
    assert "Traceback" not in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    if field is not None:
        assert any(p.field == field for p in info.value.problems), (field, message)
    # Every problem carries a line number pointing into the file.
    assert all(p.line is not None and 1 <= p.line <= len(text.splitlines()) + 1 for p in info.value.problems), message


def test_lines_point_at_the_offending_text(tmp_path):
    text = _edit("  lora_r: 16", "  lora_rank: 16")
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.problems[0].line == _line_of(text, "lora_rank")

    text = _edit("  n_train: 1000", "  n_train: many")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.problems[0].line == _line_of(text, "n_train: many")

    text = _edit(
        '  whimsical: "You have a whimsical personality."',
        '  whimsical: "You have a whimsical personality."\n  whimsical: "Again."',
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.problems[0].line == _line_of(text, 'whimsical: "Again."')

    text = _edit("[had_fun_today]", "[had_fun_today,\n      no_such_prompt]")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert info.value.problems[0].line == _line_of(text, "no_such_prompt]")


def test_cli_validate_reports_without_traceback(tmp_path):
    bad = tmp_path / "toy.yaml"
    bad.write_text(_edit("  lora_r: 16", "  lora_rank: 16"))
    good = REPO / "experiments" / "playful_french_qwen7b.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "validate", str(good), str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{bad}:" in proc.stderr and "training.lora_rank" in proc.stderr and "unknown field" in proc.stderr
    assert "ok" in proc.stdout and "playful_french_qwen7b" in proc.stdout


def test_cli_validate_missing_path(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "inoc.cli", "validate", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def _em_copy(tmp_path: Path, control_rows: int | None) -> Path:
    """The shipped EM config, with its subtle-data control pointed at a file of ``control_rows`` rows (None: missing)."""
    text = (REPO / "experiments" / "em_risky_finance_qwen32b.yaml").read_text()
    data = tmp_path / "subtle.jsonl"
    data.unlink(missing_ok=True)
    if control_rows is not None:
        row = '{"messages": [{"role": "user", "content": "Invest?"}, {"role": "assistant", "content": "All in."}]}\n'
        data.write_text(row * control_rows)
    old = "${INOC_SHARED_DIR}/reference/em/train_reckless_completions_sample.jsonl"
    assert text.count(old) == 1
    path = tmp_path / "em_risky_finance_qwen32b.yaml"
    path.write_text(text.replace(old, str(data)))
    return path


def test_small_control_data_warns_with_threshold_and_steps(tmp_path):
    from inoc.config.checks import CONTROL_DATA_MIN_FRACTION, config_warnings

    assert CONTROL_DATA_MIN_FRACTION == 0.5
    path = _em_copy(tmp_path, 20)  # the size of the published preview
    (w,) = config_warnings(load_experiment(path), path)
    line = _line_of(path.read_text(), "no_inoc_subtle_data: /")
    assert (w.file, w.line, w.field) == (str(path), line, "runs.extra_control_data.no_inoc_subtle_data")
    # 20 rows / (4 x 8) -> 1 optimizer step; 5,800 rows -> 182 (SPEC-DETAILED §4.2)
    assert "20 training rows in subtle.jsonl, 0.3% of the study's 5800" in w.message
    assert "1 optimizer step(s) against 182" in w.message and "below 50%" in w.message
    assert config_warnings(load_experiment(p := _em_copy(tmp_path, 2899)), p)  # just below half: warned
    assert config_warnings(load_experiment(p := _em_copy(tmp_path, 2900)), p) == []  # half the study's data: fine
    (missing,) = config_warnings(load_experiment(p := _em_copy(tmp_path, None)), p)
    assert "no such file" in missing.message


def test_cli_validate_warns_about_the_shipped_subtle_data_control(shared):
    em = REPO / "experiments" / "em_risky_finance_qwen32b.yaml"
    proc = subprocess.run([sys.executable, "-m", "inoc.cli", "validate", str(em)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr  # a warning, not an error
    line = _line_of(em.read_text(), "no_inoc_subtle_data: ${INOC_SHARED_DIR}")
    assert (
        f"{em}:{line}: warning: runs.extra_control_data.no_inoc_subtle_data: 20 training rows in "
        "train_reckless_completions_sample.jsonl" in proc.stderr
    )
    assert "1 optimizer step(s) against 182" in proc.stderr and "ok  " in proc.stdout
