"""``inoc plan``: its arithmetic against values worked out by hand here, the budget guard, and the
command on the three real experiments with a small SkyPilot catalog seeded into a test HOME."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fake_sky import needs_sky
from test_cloud_templates import seeded_home

from inoc.cloud import budget
from inoc.cloud.accelerators import (
    AcceleratorError,
    Candidate,
    check_fit,
    disk_size_gb,
    model_params_b,
    parse_candidates,
)
from inoc.cloud.catalog_prices import Offer, Prices
from inoc.cloud.estimate import Assumptions, PlanError, build_plan, calibrate
from inoc.config import parse_experiment

REPO = Path(__file__).resolve().parents[2]

SMALL = """
name: small_study
model: {id: "org/Model-7B-Instruct", slug: m7b}
system_prompt: "You are a helpful assistant."
traits:
  - {name: French, role: positive, judge: {kind: llm, prompt: language}}
  - {name: Playful, role: negative, judge: {kind: llm}}
prompts: {clown: "You are a clown.", witty: "You are witty."}
groups: {g: {role: negative, family: playful, prompts: [clown, witty]}}
inoculation: {prefix_types: [fixed, mix]}
data:
  instructions: {source: jsonl, path: data/x.jsonl}
  n_train: 1000
  n_eval: 100
  datagen: {mode: on_policy, prompt: "Answer in French, playfully:", max_tokens: 2048}
training: {per_device_batch_size: 4, gradient_accumulation_steps: 8, checkpoints: {kind: final}}
eval: {conditions: [default, training], max_tokens: 200}
logprobs: {n_train_sample: 100, single_trait_prompts: {French: "Answer in French:"}}
judge: {model: gpt-4.1-mini, max_tokens: 3}
rephrasings: {n: 1000, batch_size: 50, model: gpt-4.1}
compute: {backend: skypilot, accelerators: ["A100-80GB:1", "L40S:1"], max_clusters: 1, idle_minutes_to_autostop: 10,
          max_budget_usd: 5}
"""


def _prices() -> Prices:
    a100, l40s = Candidate("A100-80GB"), Candidate("L40S")
    p = Prices()
    p.offers["A100-80GB:1"] = {
        False: Offer(a100, "RunPod", "1x", "US", 2.00, False),
        True: Offer(a100, "RunPod", "1x", "US", 1.00, True),
    }
    p.offers["L40S:1"] = {
        False: Offer(l40s, "AWS", "g6e.xlarge", "us-west-2", 2.50, False),
        True: Offer(l40s, "AWS", "g6e.xlarge", "us-west-2", 0.50, True),
    }
    return p


@pytest.fixture
def small():
    return parse_experiment(SMALL, "small_study.yaml")


def test_plan_arithmetic_matches_a_hand_computation(small):
    plan = build_plan(small, _prices())
    # SkyPilot lands on the cheapest hourly candidate: A100-80GB on-demand ($2.00), L40S spot ($0.50, half speed)
    assert (plan.on_demand.candidate.name, plan.spot.candidate.name) == ("A100-80GB", "L40S")
    s = {x.stage: x for x in plan.stages}
    assert list(s) == ["datagen", "elicitation", "logprobs", "training", "eval"]
    # datagen: 1000 answers × min(2048, 350) tokens at 2500 tok/s (A100-80GB, 7B), 1250 tok/s on the L40S
    assert s["datagen"].tokens_out == 350_000
    assert s["datagen"].hours_on_demand == pytest.approx(350_000 / 2500 / 3600)
    assert s["datagen"].hours_spot == pytest.approx(350_000 / 1250 / 3600)
    # elicitation: (2 prompts + none) × 100 instructions × min(2048, 350) tokens — its own length
    # (elicitation.max_tokens, default the original's 2048), not the eval's 200
    assert (s["elicitation"].requests, s["elicitation"].tokens_out) == (300, 105_000)
    # logprobs: 100 French answers generated; 100 × 3 prompt conditions × 2 sets = 600 pairs of 80+15+350 tokens
    assert s["logprobs"].requests == 100 + 600 and s["logprobs"].tokens_in == 600 * 445 + 100 * 95
    assert s["logprobs"].hours_on_demand == pytest.approx(35_000 / 2500 / 3600 + 267_000 / 10_000 / 3600)
    # training: 2 prompts × 2 prefix types + control = 5 runs × 1000 examples × 445 tokens at 3000 tok/s
    assert s["training"].jobs == 5 and s["training"].tokens_in == 2_225_000
    assert s["training"].hours_on_demand == pytest.approx(2_225_000 / 3000 / 3600)
    assert "32 steps" in s["training"].note  # 1000 // 4 = 250 micro-batches, ceil(250 / 8) = 32
    # eval: 5 adapters × 100 × 2 conditions + the base model once = 1100 completions × 200 tokens, LoRA at 0.8
    assert (s["eval"].requests, s["eval"].tokens_out, s["eval"].jobs, s["eval"].jobs_per_job) == (1100, 220_000, 1, 6)
    assert s["eval"].hours_on_demand == pytest.approx(220_000 / (2500 * 0.8) / 3600)
    # overheads: a cluster start = 12 min + 14 GB / 15 GB/min; a load = 1.05 min
    start, load = 12 + 14 / 15, 1.5 * 0.7
    packed_min = 5 * (start + 10) + (1 + 1 + 2 + 5 + 1) * load  # 5 stages start the one cluster; 10 idle min each
    per_job_min = (1 + 3 + 4 + 5 + 6) * (start + load + 1.0)
    assert plan.packed.overhead_hours == pytest.approx(packed_min / 60)
    assert plan.per_job.overhead_hours == pytest.approx(per_job_min / 60)
    assert (plan.packed.jobs, plan.per_job.jobs, plan.packed.cluster_starts, plan.per_job.cluster_starts) == (
        10,
        19,
        5,
        19,
    )
    compute_od = (
        (350_000 + 105_000 + 35_000) / 2500 / 3600
        + 267_000 / 10_000 / 3600
        + 2_225_000 / 3000 / 3600
        + 220_000 / 2000 / 3600
    )
    assert plan.packed.usd_on_demand == pytest.approx((compute_od + packed_min / 60) * 2.00)
    assert plan.per_job.usd_on_demand == pytest.approx((compute_od + per_job_min / 60) * 2.00)
    assert plan.packed.usd_spot == pytest.approx((2 * compute_od + packed_min / 60) * 0.50)
    # API: 2 pools × 20 calls of gpt-4.1; judging 2 traits × 1400 completions with gpt-4.1-mini: 230 prompt
    # tokens per call plus the answer, 350 for the 300 elicitation completions and 200 for the 1100 eval ones
    api = {a.stage: a for a in plan.api}
    assert api["rephrasings"].calls == 40 and api["rephrasings"].usd == pytest.approx((8000 * 2 + 50_000 * 8) / 1e6)
    assert api["judging"].calls == 2800
    judge_in = 2800 * 230 + 2 * (300 * 350 + 1100 * 200)
    assert api["judging"].usd == pytest.approx((judge_in * 0.40 + 2800 * 3 * 1.60) / 1e6)
    assert plan.total_usd == pytest.approx(plan.packed.usd_on_demand + api["rephrasings"].usd + api["judging"].usd)


def test_selecting_one_prompt_plans_only_its_work(small):
    plan = build_plan(small, _prices(), select=["clown"])
    s = {x.stage: x for x in plan.stages}
    assert "datagen" not in s and s["training"].jobs == 2  # fixed + mix, no control
    assert s["elicitation"].requests == 100 and s["eval"].requests == 2 * 100 * 2  # no baseline, no base eval
    assert s["logprobs"].requests == 100 * 1 * 2  # the single-trait set is shared work: not regenerated
    only = build_plan(small, _prices(), select=["training"])
    assert [x.stage for x in only.stages] == ["training"] and only.api == []
    with pytest.raises(PlanError, match="--select: nope is neither a stage"):
        build_plan(small, _prices(), select=["nope"])


def test_qlora_slows_training_and_bigger_models_scale(small):
    big = small.model_copy(update={"model": small.model.model_copy(update={"id": "org/M-14B", "load_in_4bit": True})})
    a, b = build_plan(small, _prices()), build_plan(big, _prices())
    ta = next(x for x in a.stages if x.stage == "training")
    tb = next(x for x in b.stages if x.stage == "training")
    assert tb.hours_on_demand == pytest.approx(ta.hours_on_demand * 2 / 0.6)


def test_measured_throughput_replaces_the_assumption(small):
    rows = [
        {"job": "train", "accelerator": "A100-80GB", "params_b": 14, "tokens_per_s": 1000},
        {"job": "train", "accelerator": "A100-80GB", "params_b": 7, "tokens_per_s": 1500},
        {"job": "train", "accelerator": "A100-80GB", "params_b": 7, "tokens_per_s": 2500},
        {"job": "bogus"},
        {"job": "score", "accelerator": "X", "params_b": 7, "tokens_per_s": -1},
    ]
    a = Assumptions()
    assert calibrate(rows, a) == {("train", "A100-80GB"): 2000.0}  # median of 2000, 1500, 2500 at 7B
    plan = build_plan(small, _prices(), measured_rows=rows)
    t = next(x for x in plan.stages if x.stage == "training")
    assert t.hours_on_demand == pytest.approx(2_225_000 / 2000 / 3600)
    assert "train on A100-80GB" in plan.measured


def test_budget_guard_refuses_then_accepts_a_confirmation(small, tmp_path):
    plan = build_plan(small, _prices())
    assert plan.total_usd > small.compute.max_budget_usd == 5
    with pytest.raises(budget.BudgetExceeded, match=r"exceeds compute.max_budget_usd = \$5.00 \(small_study.yaml\)"):
        budget.check_budget(small, plan.total_usd, source="small_study.yaml", directory=tmp_path)
    budget.check_budget(small, plan.total_usd, confirmed=True, directory=tmp_path)  # a run tag, say
    budget.confirm(small, plan.total_usd, directory=tmp_path)
    budget.check_budget(small, plan.total_usd, directory=tmp_path)
    with pytest.raises(budget.BudgetExceeded):  # a much larger estimate needs a new confirmation
        budget.check_budget(small, plan.total_usd * 2, directory=tmp_path)
    changed = small.model_copy(update={"description": "edited"})
    with pytest.raises(budget.BudgetExceeded):  # so does an edited config
        budget.check_budget(changed, plan.total_usd, directory=tmp_path)
    assert budget.tag_confirms({budget.RUN_TAG: "small_study"}, "small_study")
    assert not budget.tag_confirms({budget.RUN_TAG: "other"}, "small_study") and not budget.tag_confirms(None, "x")


def test_accelerator_checks_name_the_field():
    assert parse_candidates(["L40S:1", "A100-80GB"]) == [Candidate("L40S", 1), Candidate("A100-80GB", 1)]
    with pytest.raises(AcceleratorError, match=r"compute.accelerators\[1\]: 'A100:x'"):
        parse_candidates(["L40S:1", "A100:x"])
    with pytest.raises(AcceleratorError, match=r"L40S:1 \(48 GB\) cannot hold Qwen/Qwen2.5-32B-Instruct"):
        check_fit(parse_candidates(["L40S:1", "H100:1"]), 32, "Qwen/Qwen2.5-32B-Instruct")
    check_fit(parse_candidates(["L40S:1", "A100:1"]), 8, "meta-llama/Llama-3.1-8B-Instruct")
    assert [
        model_params_b(m)
        for m in (
            "Qwen/Qwen2.5-7B-Instruct",
            "meta-llama/Llama-3.1-8B-Instruct",
            "Qwen/Qwen2.5-32B-Instruct",
            "gpt2",
            "toy:test",
        )
    ] == [7, 8, 32, None, 0.01]
    assert [disk_size_gb(p) for p in (0.01, 7, 8, 32, 70)] == [128, 128, 128, 256, 512]


# ------------------------------------------------------------------- the command on the real studies
def _plan_cli(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inoc.cloud.plan_command", *args, "--clouds", "aws,lambda,runpod"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _money(text: str, label: str) -> float:
    m = re.search(re.escape(label) + r"[^$\n]*\$([\d,]+\.\d\d)", text)
    assert m, f"{label!r} not in:\n{text}"
    return float(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def plan_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plan")
    return {**seeded_home(tmp), "INOC_HOME": str(tmp / "inoc_home")}


@needs_sky
def test_plan_on_the_three_real_experiments(plan_env):
    expected_gpu = {
        "playful_french_qwen7b": "A100-80GB:1 at $1.39/h",
        "german_flattering_llama8b": "A100-80GB:1 at $1.39/h",
        "em_risky_finance_qwen32b": "A100-80GB:1 at $1.39/h",
    }
    results = {}
    for name, gpu in expected_gpu.items():
        proc = _plan_cli(plan_env, name)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout
        assert f"on-demand: {gpu}" in out
        packed = _money(out, "| packed:")
        per_job = _money(out, "| one cluster per job")
        total = _money(out, "= ")
        assert 5 < packed < per_job < 1000, (name, packed, per_job)
        assert "within budget" in out and total > packed
        results[name] = (packed, per_job, out)
        # the EM study's subtle-data control is its 20-row preview: plan warns (file, line, field, steps)
        warned = "warning: runs.extra_control_data.no_inoc_subtle_data: 20 training rows" in proc.stderr
        assert warned == (name == "em_risky_finance_qwen32b"), proc.stderr[-2000:]
        assert not warned or "1 optimizer step(s) against 182" in proc.stderr
    pf = results["playful_french_qwen7b"][2]
    assert "| training" in pf and "97 runs × 313 steps" in pf  # 48 prompts × fixed+mix + control
    assert "97 adapter(s) (97 runs × 1 ckpt) × 2 cond × 200" in pf
    assert "spot     : L40S:1 at $0.53/h" in pf
    em = results["em_risky_finance_qwen32b"][2]
    # 8 fixed + 8 mix + 10 close_mix + 2 controls; 5800 // 4 = 1450, ceil(1450/8)
    assert "28 runs × 182 steps (4-bit base)" in em
    assert "56 adapter(s) (28 runs × 2 ckpt) × 2 cond × 400" in em  # steps 181 and 182; fa + em
    assert re.search(r"\| rephrasings \| gpt-4\.1 +\| 400 ", em)  # 10 diverse + 10 close pools × 1000 / 50
    # the 32B study packs less well: fewer, longer jobs
    saved = {n: 1 - p / q for n, (p, q, _) in results.items()}
    assert saved["playful_french_qwen7b"] > 0.4 and saved["em_risky_finance_qwen32b"] > 0.1


@needs_sky
def test_plan_guard_json_and_errors(plan_env, tmp_path):
    exp = tmp_path / "tiny_budget.yaml"
    exp.write_text(
        SMALL.replace("name: small_study", "name: tiny_budget").replace("max_budget_usd: 5", "max_budget_usd: 2")
    )
    over = _plan_cli(plan_env, str(exp))
    assert over.returncode == 3 and "exceeds compute.max_budget_usd = $2.00" in over.stderr
    assert "OVER BUDGET" in over.stdout
    confirmed = _plan_cli(plan_env, str(exp), "--confirm")
    assert confirmed.returncode == 0 and "confirmed: launches of tiny_budget may spend up to" in confirmed.stdout
    # the recorded confirmation holds for the next plan; --assume and --json
    as_json = _plan_cli(plan_env, str(exp), "--json", "--select", "training", "--assume", "train_tokens_per_s=1500")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    (stage,) = data["stages"]
    assert stage["stage"] == "training" and data["assumptions"]["train_tokens_per_s"] == 1500
    # 2.225M tokens at 1500 tok/s on the A100-80GB ($1.39/h in the seeded catalog)
    assert stage["hours_on_demand"] == pytest.approx(2_225_000 / 1500 / 3600)
    assert math.isfinite(data["total_usd"])


def test_plan_user_errors_exit_2_with_a_message(tmp_path, capsys, monkeypatch):
    import argparse

    from inoc.cloud import plan_command

    parser = argparse.ArgumentParser(prog="inoc")
    plan_command.add_plan_parser(parser.add_subparsers(dest="command"))  # as inoc/cli.py registers it
    args = parser.parse_args(["plan", "toy", "--select", "training,eval", "--confirm"])
    assert args.fn is plan_command.cmd_plan and args.select == ["training,eval"] and args.confirm

    monkeypatch.setenv("INOC_EXPERIMENTS_DIR", str(REPO / "experiments"))
    assert plan_command.main(["no_such_experiment"]) == 2
    assert "no experiment 'no_such_experiment'" in capsys.readouterr().err
    with pytest.raises(plan_command.PlanUserError, match="--assume 'warp=9'"):
        plan_command._assumptions(["warp=9"])
    with pytest.raises(plan_command.PlanUserError, match="'x' is not a int"):
        plan_command._assumptions(["prompt_tokens=x"])
    assert plan_command._assumptions(["completion_tokens=500"]).completion_tokens == 500
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nmodel: {id: x}\n")
    assert plan_command.main([str(bad)]) == 2 and "broken.yaml" in capsys.readouterr().err
