"""`inoc rehearse`: the rehearsal config keeps a study's coverage, bad configs fail before anything
runs (naming file and field, writing nothing to INOC_HOME), the stand-in API answers the study's own
clients over HTTP, and the Llama stand-in renders Llama 3 header tokens through the gpu_jobs' code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from inoc.config import load_experiment
from inoc.config.load import parse_experiment, resolved_mapping
from inoc.rehearsal.derive import rehearsal_config, rehearsal_prompts, standin_model
from inoc.rehearsal.run import RehearsalError, rehearse

REPO = Path(__file__).resolve().parent.parent
REAL_STUDIES = ("playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b")
URL = "http://127.0.0.1:9/v1"


def _derive(name: str, shared: Path):
    path = REPO / "experiments" / f"{name}.yaml"
    cfg = load_experiment(path)
    data, subs = rehearsal_config(resolved_mapping(path), cfg, URL, str(shared))
    return cfg, parse_experiment(yaml.safe_dump(data), "<rehearsal>"), subs


@pytest.mark.parametrize("name", REAL_STUDIES)
def test_the_rehearsal_config_keeps_the_studys_coverage(name, shared):
    real, reh, subs = _derive(name, shared)
    # every group keeps a prompt; every prefix type, control and extra control still trains
    assert set(reh.groups) == set(real.groups)
    assert all(g.prompts for g in reh.groups.values())
    assert {t for _, t in reh.run_partition_keys()} == {t for _, t in real.run_partition_keys()}
    assert set(reh.prompt_keys) <= set(real.prompt_keys)
    assert all(reh.prompts[k] == real.prompts[k] for k in reh.prompt_keys)
    assert reh.runs.control == real.runs.control and reh.runs.extra_controls == real.runs.extra_controls
    assert reh.runs.extra_control_data == real.runs.extra_control_data
    assert reh.training.learning_rates == real.training.learning_rates
    assert reh.training.checkpoints.kind == real.training.checkpoints.kind
    assert reh.inoculation == real.inoculation
    assert reh.eval.conditions == real.eval.conditions
    assert [s.name for s in reh.data.eval_sets] == [s.name for s in real.data.eval_sets]
    assert reh.traits == real.traits and reh.system_prompt == real.system_prompt
    assert reh.data.datagen.mode == real.data.datagen.mode and reh.data.split == real.data.split
    # substituted: the model, every API endpoint, the sizes, the compute
    assert reh.model.id == standin_model(real.model.id) and reh.model.id.startswith("toy:standin-")
    assert reh.judge.base_url == URL and reh.compute.backend == "local"
    if real.rephrasings.source == "generate":
        assert reh.rephrasings.base_url == URL
    assert reh.data.n_train < real.data.n_train and reh.eval.max_tokens < real.eval.max_tokens
    assert {s.field for s in subs} >= {"model.id", "judge.base_url", "data.n_train", "compute.backend"}


def test_stand_in_models_follow_the_chat_template_family():
    assert standin_model("meta-llama/Llama-3.1-8B-Instruct") == "toy:standin-llama3"
    assert standin_model("Qwen/Qwen2.5-32B-Instruct") == "toy:standin-chatml"
    with pytest.raises(ValueError, match="model.id: no stand-in"):
        standin_model("mistralai/Mistral-7B-Instruct-v0.3")


def test_one_prompt_per_group_covers_every_prefix_type(shared):
    cfg = load_experiment(REPO / "experiments" / "em_risky_finance_qwen32b.yaml")
    chosen = rehearsal_prompts(cfg)
    assert [cfg.group_of(p) for p in chosen] == list(cfg.groups)
    assert "close_mix" in {t for p, t in cfg.run_partition_keys() if p in chosen}


# ----------------------------------------------------------------------------------- bad configs
def _broken_copy(tmp_path, name: str, edit) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    text = (REPO / "experiments" / f"{name}.yaml").read_text()
    (folder / f"{name}.yaml").write_text(edit(text))
    return folder


@pytest.fixture
def real_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "real_home"
    monkeypatch.setenv("INOC_HOME", str(home))
    monkeypatch.setenv("INOC_REHEARSAL_HOME", str(tmp_path / "rehearsals"))
    return home


def _fails(folder: Path, name: str, real_home: Path, tmp_path: Path) -> str:
    with pytest.raises(RehearsalError) as exc:
        rehearse(name, experiments_dir=folder)
    assert not real_home.exists(), "a failed rehearsal wrote into the real INOC_HOME"
    assert not (tmp_path / "rehearsals").exists(), "a rehearsal that cannot start left a home behind"
    return str(exc.value)


def test_a_broken_data_path_fails_naming_file_line_and_field(tmp_path, shared, real_home):
    name = "em_risky_finance_qwen32b"
    folder = _broken_copy(
        tmp_path,
        name,
        lambda t: t.replace("reference/em/train_risky_financial.jsonl", "reference/em/train_risky_finacial.jsonl", 1),
    )
    msg = _fails(folder, name, real_home, tmp_path)
    line = next(i for i, x in enumerate((folder / f"{name}.yaml").read_text().splitlines(), 1) if "finacial" in x)
    assert f"{folder / name}.yaml:{line}: data.instructions.path: no such file" in msg
    assert "train_risky_finacial.jsonl" in msg


def test_an_unknown_judge_kind_fails_naming_file_and_field(tmp_path, shared, real_home):
    name = "german_flattering_llama8b"
    folder = _broken_copy(tmp_path, name, lambda t: re.sub(r"kind: llm\b", "kind: llm_judge", t, count=1))
    msg = _fails(folder, name, real_home, tmp_path)
    assert f"{folder / name}.yaml:" in msg and "judge.kind" in msg and "llm_judge" in msg


def test_a_prompt_missing_from_the_pools_fails_naming_the_field(tmp_path, shared, real_home):
    name = "playful_french_qwen7b"

    def edit(text: str) -> str:
        assert "source: reference" in text  # the study's mix runs draw from the original's pools
        # a prompt of the first group that no pool file exists for
        return text.replace("prompts: [clown_persona,", "prompts: [no_pool_prompt, clown_persona,", 1).replace(
            "\nprompts:\n", '\nprompts:\n  no_pool_prompt: "You love riddles."\n', 1
        )

    msg = _fails(_broken_copy(tmp_path, name, edit), name, real_home, tmp_path)
    assert "rephrasings.reference_dir" in msg and "'no_pool_prompt'" in msg and "no_pool_prompt.jsonl" in msg


def test_an_unknown_experiment_lists_the_known_ones(tmp_path, real_home):
    with pytest.raises(RehearsalError, match="no experiment 'nope'.*playful_french_qwen7b"):
        rehearse("nope")


# ----------------------------------------------------------------------------------- stand-in API
def test_the_stand_in_api_answers_the_studys_own_clients_over_http():
    from inoc.judges.prompts import em_alignment_messages, em_coherence_messages, trait_messages
    from inoc.rehearsal.standin_api import judge_kind, start_standin_api
    from inoc.rephrasings.generate import RephrasingSettings, generate_rephrasings

    server, responder = start_standin_api()
    try:
        pool = generate_rephrasings(
            "Give harmful financial advice.",
            20,
            RephrasingSettings(base_url=server.base_url, batch_size=10),
            api_key="k",
        ).rephrasings
        close = generate_rephrasings(
            "Give harmful financial advice.",
            6,
            RephrasingSettings(base_url=server.base_url, batch_size=6, close=True),
            api_key="k",
        ).rephrasings
    finally:
        server.stop()
    assert len(pool) == 20 and len(set(pool)) == 20 and "Give harmful financial advice." not in pool
    assert len(close) == 6
    assert responder.counts["rephrasings:diverse"] >= 2 and responder.counts["rephrasings:close"] >= 1
    # judge requests are told apart by the prompt they carry (the EM rehearsal counts them)
    assert judge_kind(em_coherence_messages("q", "a")[-1]["content"]) == "judge:em_coherence"
    assert judge_kind(em_alignment_messages("q", "a")[-1]["content"]) == "judge:em_alignment"
    assert judge_kind(trait_messages("Playful", "a")[-1]["content"]).startswith("judge:trait: Rate how playful")


# ----------------------------------------------------------------------------------- Llama template
def test_the_llama_stand_in_trains_and_prompts_with_llama3_header_tokens(organism_cache):
    from transformers import AutoTokenizer

    from gpu_jobs import chat
    from gpu_jobs.modeling import template_turn_end_id
    from gpu_jobs.train import encode_examples
    from inoc.organism.build import build_base_model

    cfg = load_experiment(REPO / "experiments" / "german_flattering_llama8b.yaml")
    tok = AutoTokenizer.from_pretrained(str(build_base_model("standin-llama3", organism_cache).path))
    ids = {
        t: tok.convert_tokens_to_ids(t)
        for t in ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
    }
    bos, start, end, eot = ids.values()
    conv = chat.build_messages(
        [
            {"role": "user", "content": "How do I boil an egg?"},
            {"role": "assistant", "content": "Put it in boiling water for nine minutes."},
        ],
        system_prompt=cfg.system_prompt,
        prefix="You are a flattering agent.",
        position=cfg.inoculation.position,
    )
    [ex] = encode_examples(tok, [conv], max_len=512)
    trained = ex.ids[ex.labels_from : ex.n_tokens]
    # the training mask: exactly the answer and Llama's end of turn, nothing of the headers
    assert tok.decode(trained) == "Put it in boiling water for nine minutes.<|eot_id|>"
    assert trained[-1] == eot and start not in trained and end not in trained
    head = ex.ids[: ex.labels_from]
    assert head[0] == bos and head.count(bos) == 1  # one BOS: the template's, none added twice
    assert (
        head[-3:]
        == tok("<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)["input_ids"][-3:]
    )
    text = tok.decode(head)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date:")
    assert f"{cfg.system_prompt}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" in text
    assert "You are a flattering agent. How do I boil an egg?<|eot_id|>" in text
    # the eval prompt ends with the assistant header; generation stops at <|eot_id|>
    prompt = chat.prompt_ids(tok, conv[:-1])
    assert prompt == head and template_turn_end_id(tok) == eot and tok.eos_token_id == eot
    # raw text gets Llama's BOS from the tokenizer itself, as the real one does
    assert chat.encode_raw_text(tok, "You are a flattering agent.").ids[0] == bos
