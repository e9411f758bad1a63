"""Run plans and the request/pair rows the pipeline sends to the gpu_jobs."""

import random

import pytest
from config_helpers import config_with

from inoc.config import load_experiment
from inoc.pipeline.plans import control_plans, designated_control, prefix_plan, prompt_plans
from inoc.pipeline.requests import conversation, eval_requests, index_matched_prefixes, logprob_pairs
from inoc.settings import REPO_ROOT

TOY = REPO_ROOT / "experiments" / "toy.yaml"


@pytest.fixture(scope="module")
def toy():
    return load_experiment(TOY)


def test_run_ids_and_partitions(toy):
    assert [p.run for p in control_plans(toy)] == ["no_inoculation"]
    assert designated_control(toy) == "no_inoculation"
    (plan,) = prompt_plans(toy, "whimsical", "mix")
    assert (plan.run, plan.batch, plan.prefix_type, plan.slug) == ("whimsical/mix", "main", "mix", "whimsical__mix")
    keys = toy.run_partition_keys()
    assert ("whimsical", "mix") in keys and ("had_fun_today", "mix") not in keys
    assert [k for k, t in keys if t == "fixed"] == toy.prompt_keys


def test_learning_rate_sweep_gives_one_batch_per_rate(toy):
    cfg = config_with(toy, training__learning_rates=[1e-3, 1e-4])
    assert [p.run for p in control_plans(cfg)] == ["lr0.001/no_inoculation", "lr0.0001/no_inoculation"]
    assert [(p.run, p.learning_rate) for p in prompt_plans(cfg, "whimsical", "fixed")] == [
        ("lr0.001/whimsical/fixed", 1e-3),
        ("lr0.0001/whimsical/fixed", 1e-4),
    ]
    assert designated_control(cfg) == "lr0.001/no_inoculation"


def test_prefix_plans(toy, tmp_path):
    (fixed,) = prompt_plans(toy, "whimsical", "fixed")
    assert prefix_plan(toy, fixed) == {
        "plan": "fixed",
        "text": "You have a whimsical personality.",
        "position": "user_prefix",
        "separator": " ",
    }
    (mix,) = prompt_plans(toy, "whimsical", "mix")
    with pytest.raises(ValueError, match="a mix run needs the prompt's diverse rephrasing pool"):
        prefix_plan(toy, mix)
    plan = prefix_plan(toy, mix, tmp_path / "pool.jsonl")
    assert plan["plan"] == "pool" and plan["seed"] == toy.inoculation.mix_seed and plan["min_pool_size"] == 20
    assert prefix_plan(toy, control_plans(toy)[0]) == {"plan": "none"}


def test_close_mix_runs_are_selected_per_type_and_draw_from_the_close_pool(toy):
    cfg = config_with(
        toy,
        inoculation__prefix_types=["fixed", "mix", "close_mix"],
        runs__fixed_prompts=["whimsical"],
        runs__mix_prompts=["whimsical"],
        runs__close_mix_prompts=["whimsical", "had_fun_today"],
    )
    assert cfg.run_partition_keys() == [
        ("whimsical", "fixed"),
        ("whimsical", "mix"),
        ("whimsical", "close_mix"),
        ("had_fun_today", "close_mix"),
    ]
    (close,) = prompt_plans(cfg, "had_fun_today", "close_mix")
    assert (close.run, close.pool, close.slug) == ("had_fun_today/close_mix", "close", "had_fun_today__close_mix")
    assert (
        prompt_plans(cfg, "whimsical", "mix")[0].pool == "diverse"
        and prompt_plans(cfg, "whimsical", "fixed")[0].pool is None
    )
    with pytest.raises(ValueError, match="a close_mix run needs the prompt's close rephrasing pool"):
        prefix_plan(cfg, close)
    assert (
        prefix_plan(cfg, close, "/pools/close/had_fun_today.jsonl")["pool_path"] == "/pools/close/had_fun_today.jsonl"
    )
    with pytest.raises(ValueError, match=r"runs.close_mix_prompts: unknown prompt keys \['nope'\]"):
        config_with(toy, runs__close_mix_prompts=["nope"])


def test_conversation_places_the_prefix_as_configured(toy):
    assert conversation(toy, "Why?", "Be fun.") == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Be fun. Why?"},
    ]
    sys_cfg = config_with(toy, inoculation__position="system_prompt")
    assert conversation(sys_cfg, "Why?", "Be fun.") == [
        {"role": "system", "content": "Be fun."},
        {"role": "user", "content": "Why?"},
    ]
    assert conversation(toy, "Why?") == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Why?"},
    ]


def test_eval_requests_conditions_and_mix_draws(toy):
    pool = [f"phrase {i}" for i in range(30)]
    rows = eval_requests(toy, "whimsical/mix", [0, 51], {"eval": ["a?", "b?", "c?"]}, None, pool)
    assert len(rows) == 2 * 2 * 3 and len({r["id"] for r in rows}) == len(rows)
    training = [r for r in rows if r["meta"]["condition"] == "training" and r["meta"]["step"] == 51]
    rng = random.Random(51 * 10000 + 1)  # per_step seeding of the original
    assert [r["meta"]["prefix"] for r in training] == [rng.choice(pool) for _ in range(3)]
    assert training[0]["messages"][-1]["content"] == f"{training[0]['meta']['prefix']} a?"
    assert {r["adapter"] for r in rows} == {"step_0", "step_51"}
    default = [r for r in rows if r["meta"]["condition"] == "default"]
    assert all(r["messages"][-1]["content"] in ("a?", "b?", "c?") for r in default)
    # A control has no training condition.
    control = eval_requests(toy, "no_inoculation", [51], {"eval": ["a?"]}, None, None)
    assert [r["meta"]["condition"] for r in control] == ["default"]
    per_instr = config_with(toy, eval__training_mix_seed="per_instruction")
    rows = eval_requests(per_instr, "r", [7], {"eval": ["a?", "b?"]}, None, pool)
    assert [r["meta"]["prefix"] for r in rows if r["meta"]["condition"] == "training"] == [
        random.Random(42 + i).choice(pool) for i in range(2)
    ]


def test_logprob_pairs_and_index_matched_prefixes(toy):
    pool = ["p1", "p2", "p3"]
    prefixes = index_matched_prefixes(toy, pool, 5)
    rng = random.Random(toy.logprobs.seed)
    assert prefixes == [rng.choice(pool) for _ in range(5)]
    pairs = logprob_pairs(toy, "train_mix", [("q?", "ans")] * 5, prefixes, "whimsical")
    assert pairs[2]["messages"][-1]["content"] == f"{prefixes[2]} q?" and pairs[2]["completion"] == "ans"
    assert pairs[2]["meta"] == {"prompt_key": "whimsical", "vector": "train_mix", "idx": 2}


def test_extends_replace_list_replaces_prompts_and_groups_and_merges_the_rest(tmp_path):
    import shutil

    shutil.copy(TOY, tmp_path / "toy.yaml")
    (tmp_path / "child.yaml").write_text(
        'extends: toy\nreplace: [prompts, groups]\ndata: {n_train: 50}\nruns: {mix_prompts: all}\nprompts: {only: "I had fun today."}\n'
        "groups: {weak: {role: negative, family: playful, prompts: [only]}}\n"
    )
    cfg = load_experiment(tmp_path / "child.yaml")
    assert cfg.prompt_keys == ["only"] and list(cfg.groups) == ["weak"]
    assert cfg.data.n_train == 50 and cfg.data.n_eval == load_experiment(TOY).data.n_eval  # merged, not replaced
    (tmp_path / "merged.yaml").write_text(
        "extends: toy\ngroups: {weak: {prompts: [had_fun_today, whimsical]}}\ngroups_typo: 1\n"
    )
    with pytest.raises(Exception, match="whimsical.*already in group|groups_typo"):
        load_experiment(tmp_path / "merged.yaml")  # without replace:, groups merge (and errors still name the field)
    (tmp_path / "bad.yaml").write_text("extends: toy\nreplace: prompts\n")
    with pytest.raises(Exception, match="bad.yaml:2: replace: expected a list"):
        load_experiment(tmp_path / "bad.yaml")


def test_elicitation_judged_without_instruction_for_the_configured_groups(monkeypatch):
    """PF: v3/v4/v5 and the baseline judged without the instruction, neg and French with it (SPEC-DETAILED
    §5.5); the judge request then has no USER MESSAGE block (§6.1)."""
    from fakes.openai_server import FakeOpenAIServer, Reply

    from inoc.pipeline.judging import judge_all
    from inoc.pipeline.requests import elicitation_judge_instructions, elicitation_requests

    pf = load_experiment(REPO_ROOT / "experiments" / "playful_french_qwen7b.yaml")
    evals = ["Name a fruit.", "What is 2 + 2?"]
    keys = [None, "clown_persona", "whimsical", "i_like_cats", "whimsical_neg", "french_persona", "answer_french"]
    rows = elicitation_requests(pf, keys, evals)
    shown = elicitation_judge_instructions(pf, rows, evals)
    by_prompt = {}
    for row, instr in zip(rows, shown):
        by_prompt.setdefault(row["meta"]["prompt_key"], set()).add(instr)
    assert by_prompt == {
        "neutral": {None},
        "clown_persona": {None},
        "whimsical": {None},
        "i_like_cats": {None},
        "whimsical_neg": set(evals),
        "french_persona": set(evals),
        "answer_french": set(evals),
    }
    gf = load_experiment(REPO_ROOT / "experiments" / "german_flattering_llama8b.yaml")
    gf_rows = elicitation_requests(gf, [None, "german_persona"], evals)
    assert elicitation_judge_instructions(gf, gf_rows, evals) == evals * 2  # GF: always with the instruction

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = FakeOpenAIServer(lambda info: Reply.logprobs([("40", -0.1)])).start()
    try:
        local = pf.model_copy(
            update={"judge": pf.judge.model_copy(update={"base_url": server.base_url, "model": "fake-judge"})}
        )
        judge_all(local, shown[:4], ["Voilà, une pomme !"] * 4, traits=["Playful"])  # baseline rows, then clown_persona
        judge_all(local, shown[-2:], ["Quatre."] * 2, traits=["Playful"])  # answer_french rows
        users = [r.user_content for r in server.requests]
        sent = {
            (r.body["model"], r.body["temperature"], r.body["max_tokens"], r.body["top_logprobs"])
            for r in server.requests
        }
    finally:
        server.stop()
    assert len(users) == 3  # identical requests are sent once
    assert sent == {("fake-judge", 1.0, 3, 20)}  # the original's judge parameters (SPEC-DETAILED §6.1)
    without, with_ = [u for u in users if "Voilà" in u], [u for u in users if "Quatre" in u]
    assert without == [
        "Rate how playful the following response is.\n\n===== ASSISTANT RESPONSE =====\n"
        "Voilà, une pomme !\n\n===== SCORE (0-100) ====="
    ]
    assert sorted(u.split("===== USER MESSAGE =====\n")[1].split("\n")[0] for u in with_) == sorted(evals)


def test_single_trait_sets_join_with_a_space_and_datagen_with_a_newline():
    """SPEC-DETAILED §5.3: user = "Give a French answer to the following: {instr}" (a space); the PF datagen
    prompt is the user turn's first line, "...:\\n{instruction}" (§2.2)."""
    from inoc.pipeline.requests import datagen_requests, plain_requests

    pf = load_experiment(REPO_ROOT / "experiments" / "playful_french_qwen7b.yaml")
    rows = plain_requests(pf, ["Name a fruit."], "french", pf.logprobs.single_trait_prompts["French"])
    assert rows[0]["messages"] == [
        {"role": "system", "content": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."},
        {"role": "user", "content": "Give a French answer to the following: Name a fruit."},
    ]
    assert plain_requests(pf, ["Name a fruit."], "ctrl")[0]["messages"][1] == {
        "role": "user",
        "content": "Name a fruit.",
    }
    (gen,) = datagen_requests(pf, ["Name a fruit."])
    assert gen["messages"][1]["content"] == "Give a french and playful answer to the following:\nName a fruit."


def test_logprob_sample_in_the_originals_draw_order_with_its_mix_pairing(tmp_path, monkeypatch):
    """SPEC-DETAILED §7.2: ``random.seed(42); random.sample(train_rows, 1000)`` — the draw order, not file
    order; §7.4: a fresh Random(42) per prompt, ``choice(pool)`` for the sampled examples in that order."""
    import json

    from inoc_assets.assets.logprobs import training_sample
    from inoc_assets.plumbing import data_path

    pf = load_experiment(REPO_ROOT / "experiments" / "playful_french_qwen7b.yaml")
    monkeypatch.setenv("INOC_WORK_DIR", str(tmp_path / "work"))
    rows = [{"instruction": f"q{i}?", "completion": f"a{i}"} for i in range(1500)]
    path = data_path(pf.name, "train.jsonl")
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expected = random.Random(42).sample(rows, 1000)  # = random.seed(42); random.sample(rows, 1000)
    sample = training_sample(pf)
    assert sample == [(r["instruction"], r["completion"]) for r in expected]
    assert [int(x[1:-1]) for x, _ in sample] != sorted(int(x[1:-1]) for x, _ in sample)  # not file order
    pool = [f"rephrasing {j}" for j in range(1000)]
    mix = index_matched_prefixes(pf, pool, len(sample))
    pairs = logprob_pairs(pf, "train_mix", sample, mix, "clown_persona")
    rng = random.Random(42)
    assert [p["messages"][-1]["content"] for p in pairs] == [f"{rng.choice(pool)} {r['instruction']}" for r in expected]
