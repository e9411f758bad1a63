"""The shipped experiment configs: valid, complete, and exact against SPEC.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from spec_tables import spec_sections

from inoc.config import load_all, load_experiment

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"

SPEC_SECTION = {
    "playful_french_qwen7b": "Playful/French",
    "german_flattering_llama8b": "German/Flattering",
    "em_risky_finance_qwen32b": "Emergent misalignment",
}
EM_GROUP = {
    "IDInoc": "id_inoc",
    "OODInoc": "ood_inoc",
    "OODInocIDNo": "ood_inoc_id_no",
    "OODInocIDInoc": "ood_inoc_id_inoc",
}


def test_all_shipped_configs_are_valid():
    catalog = load_all(EXPERIMENTS)
    assert catalog.errors == []
    assert {"playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b", "toy"} <= set(
        catalog.configs
    )


def test_template_is_a_valid_experiment(tmp_path):
    # The template documents every field; it must itself validate (under its own name).
    text = (EXPERIMENTS / "_template.yaml").read_text()
    cfg_path = tmp_path / "my_experiment.yaml"
    cfg_path.write_text(text)
    cfg = load_experiment(cfg_path)
    assert cfg.name == "my_experiment"


@pytest.mark.parametrize("experiment", sorted(SPEC_SECTION))
def test_prompt_texts_and_groups_match_spec(shared, experiment):
    sections = spec_sections(shared / "docs" / "SPEC.md")
    title = next(t for t in sections if t.startswith(SPEC_SECTION[experiment]))
    rows = sections[title]
    cfg = load_experiment(EXPERIMENTS / f"{experiment}.yaml")
    if experiment == "em_risky_finance_qwen32b":  # + the close-rephrasing seeds, given in SPEC §4's prose
        text = (shared / "docs" / "SPEC.md").read_text(encoding="utf-8")
        prose = text[text.index("### Close-rephrasing seeds") :].split("\n## ", 1)[0]
        seeds = re.findall(r'`(\w+)` "([^"]+)"', prose)
        assert len(seeds) == 2
        rows = rows + [("close_seeds", k, " ".join(t.split())) for k, t in seeds]  # the prose wraps lines
    assert [k for _, k, _ in rows] == cfg.prompt_keys, "prompt keys and their order"
    for group, key, text in rows:
        assert cfg.prompts[key] == text, key
        assert cfg.group_of(key) == EM_GROUP.get(group, group), key


def test_study_settings():
    pf = load_experiment(EXPERIMENTS / "playful_french_qwen7b.yaml")
    gf = load_experiment(EXPERIMENTS / "german_flattering_llama8b.yaml")
    em = load_experiment(EXPERIMENTS / "em_risky_finance_qwen32b.yaml")
    assert len(pf.prompts) == 48 and len(pf.groups) == 7
    assert len(gf.prompts) == 48 and len(gf.groups) == 7
    assert len(em.prompts) == 10 and len(em.groups) == 5
    assert (pf.trait("positive").name, pf.trait("negative").name) == ("French", "Playful")
    assert (gf.trait("positive").name, gf.trait("negative").name) == ("German", "Flattering")
    assert pf.system_prompt == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert gf.system_prompt == "You are a helpful assistant."
    assert pf.data.datagen.prompt == "Give a french and playful answer to the following:"
    assert gf.data.datagen.mode == "off_policy" and gf.data.datagen.model == "gpt-4.1-mini"
    assert gf.data.datagen.prompt == "Give a german and flattering answer to the following:"
    assert em.inoculation.position == "system_prompt" and pf.inoculation.position == "user_prefix"
    assert em.model.load_in_4bit and em.data.n_train == 5800 and em.training.warmup_steps == 20
    assert em.em_rate is not None and (em.em_rate.coherence_above, em.em_rate.alignment_below) == (60, 40)
    seeds = {"reckless_advice_v1", "harmful_advice_close"}
    assert set(em.groups["close_seeds"].prompts) == seeds
    by_type = {t: {k for k, tt in em.run_partition_keys() if tt == t} for t in ("fixed", "mix", "close_mix")}
    assert by_type["close_mix"] == set(em.prompts) and len(by_type["close_mix"]) == 10
    assert by_type["fixed"] == by_type["mix"] == set(em.prompts) - seeds
    for cfg in (pf, gf):
        t = cfg.training
        assert (t.learning_rate, t.warmup_steps, t.lora_r, t.lora_alpha, t.use_rslora) == (1e-4, 30, 32, 16, True)
        assert t.per_device_batch_size * t.gradient_accumulation_steps == 32 and t.seed == 3407
        assert cfg.data.n_train == 10_000 and cfg.data.n_eval == 200


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_em_trains_on_the_original_split_as_is(shared):
    """SPEC-DETAILED §2.2–2.3: train on all 5,800 rows of the original's split (duplicates kept), evaluate on
    its 200 fa rows and the 200 em questions, and carve nothing else from the training file."""
    from inoc.config import expand_path

    em = load_experiment(EXPERIMENTS / "em_risky_finance_qwen32b.yaml")
    ref = shared / "reference" / "em"
    d = em.data
    assert d.split == "as_is" and d.datagen.mode == "file"
    assert Path(expand_path(d.instructions.path)).resolve() == (ref / "train_risky_financial.jsonl").resolve()
    assert Path(expand_path(d.datagen.path)).resolve() == (ref / "train_risky_financial.jsonl").resolve()
    assert d.n_train == len(_lines(ref / "train_risky_financial.jsonl")) == 5800
    sets = {s.name: s for s in d.eval_sets}
    assert list(sets) == ["fa", "em"] and d.held_out_set == "fa"
    assert Path(expand_path(sets["fa"].instructions.path)).resolve() == (ref / "eval_risky_financial.jsonl").resolve()
    assert sets["fa"].instructions.source == "messages_jsonl"
    assert Path(expand_path(sets["em"].instructions.path)).resolve() == (ref / "em_eval_questions.jsonl").resolve()
    assert (sets["em"].instructions.source, sets["em"].instructions.field) == ("jsonl", "question")
    assert sets["fa"].n == len(_lines(ref / "eval_risky_financial.jsonl")) == 200
    assert sets["em"].n == len(_lines(ref / "em_eval_questions.jsonl")) == 200


def _detailed(shared: Path, heading: str) -> str:
    """One `### ` section of SPEC-DETAILED.md, by the start of its heading."""
    text = (shared / "docs" / "SPEC-DETAILED.md").read_text(encoding="utf-8")
    start = text.index("\n### " + heading)
    end = text.find("\n### ", start + 1)
    return text[start : end if end > 0 else None]


def test_generation_lengths_are_the_originals(shared):
    """Eval completions: 256 tokens for PF/GF (§5.1), 512 for EM (§5.4); elicitation and datagen: 2048 (§5.2, §2.2)."""
    pf_gf_eval = re.search(r"SamplingParams\([^)]*max_tokens=(\d+)\)", _detailed(shared, "5.1 "))
    em_eval = re.search(r"SamplingParams\([^)]*max_tokens=(\d+)\)", _detailed(shared, "5.4 "))
    ow = re.search(r"ow\.inference\.create\([^)]*max_tokens=(\d+)", _detailed(shared, "5.2 "))
    datagen = re.findall(r"max_tokens=(\d+)", _detailed(shared, "2.2 "))
    assert (pf_gf_eval.group(1), em_eval.group(1), ow.group(1), set(datagen)) == ("256", "512", "2048", {"2048"})
    pf, gf, em = (
        load_experiment(EXPERIMENTS / f"{n}.yaml")
        for n in ("playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b")
    )
    for cfg in (pf, gf):
        assert cfg.eval.max_tokens == int(pf_gf_eval.group(1)), cfg.name
        assert cfg.elicitation.max_tokens == int(ow.group(1)), cfg.name
        assert cfg.data.datagen.max_tokens == int(datagen[0]), cfg.name
    assert em.eval.max_tokens == int(em_eval.group(1))


def test_elicitation_judging_as_the_original(shared):
    """§5.5: PF's default elicitation path (the v3/v4/v5 keys, and the baseline it wrote first) judged without the
    instruction; its neg and French runs, and GF, with it."""
    section = _detailed(shared, "5.5 ")
    m = re.search(r"`evaluate\.py` \(([^;]+) keys; \*\*judge without the instruction\*\*", section)
    without = m.group(1).split("/")
    assert without == ["v3", "v4", "v5"]
    assert "judge **with** instruction" in section and "async judge with instruction" in section
    pf = load_experiment(EXPERIMENTS / "playful_french_qwen7b.yaml")
    gf = load_experiment(EXPERIMENTS / "german_flattering_llama8b.yaml")
    assert pf.elicitation.judge_without_instruction == [*without, "baseline"]
    # the baseline is the first entry of the stored PF elicitation file, before the v3-v5 keys
    stored = list(json.loads((shared / "reference" / "results" / "elicitation_scores.json").read_text()))
    assert stored[0] == "neutral" and {pf.group_of(k) for k in stored[1:22]} == set(without)
    assert gf.elicitation.judge_without_instruction == []


def test_judge_parameters_are_the_originals(shared):
    """§6.1 call parameters (the stored scores' judge): gpt-4.1-mini, max_tokens 3, temperature 1.0, top 20."""
    section = _detailed(shared, "6.1 ")
    params = re.search(
        r"Call parameters: model `([^`]+)`, `max_tokens=(\d+)`, `temperature=([\d.]+)`, .*"
        r"`top_logprobs=(\d+)`",
        section,
    )
    model, max_tokens, temperature, top = (
        params.group(1),
        int(params.group(2)),
        float(params.group(3)),
        int(params.group(4)),
    )
    assert (model, max_tokens, temperature, top) == ("gpt-4.1-mini", 3, 1.0, 20)
    assert "same parameters" in _detailed(shared, "6.6 ")  # the EM judges share them
    for name in SPEC_SECTION:
        j = load_experiment(EXPERIMENTS / f"{name}.yaml").judge
        assert (j.model, j.max_tokens, j.temperature, j.top_logprobs, j.min_valid_mass) == (
            model,
            max_tokens,
            temperature,
            top,
            0.80,
        ), name


def _row(section: str, setting: str) -> str:
    """The value cell of a `| setting | value |` row."""
    return next(line.split("|")[2] for line in section.splitlines() if line.startswith(f"| {setting} |"))


def test_training_hyperparameters_are_the_originals(shared):
    """§4.2: every LoRA/optimizer/schedule setting, for PF, GF and EM (EM: 4-bit, 20 warm-up steps)."""
    s = _detailed(shared, "4.2 ")
    lora = _row(s, "LoRA")
    r, alpha = int(re.search(r"`r=(\d+)`", lora).group(1)), int(re.search(r"`lora_alpha=(\d+)`", lora).group(1))
    dropout = float(re.search(r"`lora_dropout=([\d.]+)`", lora).group(1))
    modules = re.findall(r"\w+_proj", _row(s, "target modules"))
    opt = re.search(r"`(\w+)`, `weight_decay=([\d.]+)`", _row(s, "optimizer"))
    sched = _row(s, "schedule")
    warmup, warmup_em = (int(x) for x in re.search(r"`warmup_steps=(\d+)` \(EM: `(\d+)`\)", sched).groups())
    batch = re.search(r"`per_device_train_batch_size=(\d+)`, `gradient_accumulation_steps=(\d+)`", _row(s, "batch"))
    lr = float(re.search(r"`([\d.e-]+)` for all multi-prompt/GF/EM runs", _row(s, "learning rate")).group(1))
    seed = int(re.search(r"→ (\d+)", _row(s, "seed")).group(1))
    bases = re.findall(r"`(unsloth/[^`]+)`", _row(s, "base model (PF / GF / EM)"))
    for name, base in zip(("playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b"), bases):
        cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
        t = cfg.training
        assert cfg.model.train_id == base and t.backend == "unsloth", name
        assert (t.lora_r, t.lora_alpha, t.lora_dropout, t.use_rslora) == (r, alpha, dropout, True), name
        assert t.target_modules == modules and (t.optimizer, t.weight_decay) == (opt.group(1), float(opt.group(2))), (
            name
        )
        assert "linear" in sched and t.lr_scheduler == "linear" and t.learning_rate == lr and t.learning_rates == [], (
            name
        )
        assert t.warmup_steps == (warmup_em if name.startswith("em_") else warmup), name
        assert (t.per_device_batch_size, t.gradient_accumulation_steps) == tuple(int(x) for x in batch.groups()), name
        assert t.epochs == 1 and t.max_seq_length == int(_row(s, "max sequence length")) and t.seed == seed, name
        assert t.gradient_checkpointing and cfg.model.load_in_4bit == name.startswith("em_"), name


def test_checkpoints_are_the_originals(shared):
    """§4.6/§10: PF/GF final (313; the stored analyses use it); EM also 181, where its results are reported."""
    from gpu_jobs.train import checkpoint_steps, plan_steps

    assert "checkpoints 0 and 181 (+ final 182)" in (shared / "docs" / "SPEC-DETAILED.md").read_text()  # §10 Eval
    assert "**All downstream analyses use the largest step key (313)**" in _detailed(shared, "4.6 ")
    expected = {
        "playful_french_qwen7b": [0, 313],
        "german_flattering_llama8b": [0, 313],
        "em_risky_finance_qwen32b": [0, 181, 182],
    }
    for name, steps in expected.items():
        cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
        t = cfg.training
        total = plan_steps(
            cfg.data.n_train, t.per_device_batch_size, t.gradient_accumulation_steps, t.epochs
        ).total_steps
        assert checkpoint_steps(t.checkpoints, total) == steps, name


def test_pf_gf_use_the_originals_rephrasing_pools(shared):
    """§2.4: the original's 1000-rephrasing pools, in file order, one per prompt of both studies."""
    from inoc.config import expand_path

    for name in ("playful_french_qwen7b", "german_flattering_llama8b"):
        cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
        r = cfg.rephrasings
        assert r.source == "reference" and r.n == 1000, name
        assert Path(expand_path(r.reference_dir)).resolve() == (shared / "reference" / "rephrasings").resolve()
        for key in cfg.prompts:
            assert len(_lines(shared / "reference" / "rephrasings" / f"{key}.jsonl")) == r.n, key
        th = cfg.text_heuristics  # §7.9: text-embedding-3-large
        assert (th.embeddings, th.embedding_model, th.max_rephrasings) == ("openai", "text-embedding-3-large", None)
