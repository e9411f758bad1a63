"""Off-policy datagen over an OpenAI-compatible API: order, settings, resume, retries, failures, no key leaks.

The one mock is at the paid-API boundary: a local fake OpenAI server over real HTTP.
"""

from __future__ import annotations

import json
import random
import re
import time
import zlib
from pathlib import Path

import pytest
from fakes.openai_server import FakeOpenAIServer, Reply, RequestInfo, Script

from inoc.config import parse_experiment
from inoc.judges.transport import JudgeFatalError
from inoc.pipeline.api_datagen import PARTIAL_FILE, RESULT_FILE, ApiDatagenSettings, DatagenError, generate
from inoc.pipeline.requests import datagen_requests

REPO = Path(__file__).resolve().parents[2]
SECRET = "fake-datagen-key.DO-NOT-LEAK.0123456789"
TOY_DATAGEN = """\
  datagen:
    mode: on_policy
    prompt: "Give a french and playful answer to the following:"
    prompt_position: user_first_line
    max_tokens: 96
    keep: both_traits           # the control then leaks both traits cleanly
"""
N = 10


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def toy_text(datagen: str, n_train: int = 1000) -> str:
    text = (REPO / "experiments" / "toy.yaml").read_text()
    assert TOY_DATAGEN in text and "n_train: 1000\n" in text
    return text.replace(TOY_DATAGEN, datagen).replace("n_train: 1000\n", f"n_train: {n_train}\n")


def config(base_url: str = "http://127.0.0.1:9/v1", **extra: object):
    fields = {
        "mode": "off_policy",
        "model": "gpt-4.1-mini",
        "base_url": base_url,
        "prompt": "Answer in French, playfully:",
        "prompt_position": "system_prompt",
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 321,
        **extra,
    }
    block = "  datagen:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fields.items())
    return parse_experiment(toy_text(block), "toy.yaml")


def requests(cfg, n: int = N) -> list[dict]:
    return datagen_requests(cfg, [f"ITEM:{i} Tell me about thing {i}." for i in range(n)])


def settings(cfg, **overrides) -> ApiDatagenSettings:
    # fast backoff: the tests exercise the retry decisions, not the waiting
    return ApiDatagenSettings.from_config(cfg.data.datagen, backoff_base_s=0.001, backoff_max_s=0.01, **overrides)


def answer(info: RequestInfo) -> Reply:
    i = re.search(r"ITEM:(\d+)", info.user_content).group(1)
    time.sleep(random.random() * 0.02)  # replies arrive out of order
    return Reply.message(f"Réponse {i} !", usage=(11, 7))


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


def test_every_request_gets_its_completion_in_order_with_the_configured_settings(tmp_path):
    with FakeOpenAIServer(Script(default=answer)) as server:
        cfg = config(server.base_url, max_in_flight=3)
        reqs = requests(cfg)
        seen: list[tuple[int, int]] = []
        result = generate(reqs, settings(cfg), tmp_path, progress=lambda d, t: seen.append((d, t)))
        bodies = [r.body for r in server.requests]
        assert server.max_in_flight <= 3
    assert result.texts == [f"Réponse {i} !" for i in range(N)]
    assert [r["meta"]["idx"] for r in result.rows] == list(range(N))
    written = [json.loads(line) for line in (tmp_path / RESULT_FILE).read_text().splitlines()]
    assert written == result.rows and written[3]["finish_reason"] == "stop" and written[3]["n_tokens"] == 7
    assert len(bodies) == N
    for body in bodies:
        assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == (
            "gpt-4.1-mini",
            0.7,
            0.9,
            321,
        )
    by_item = {re.search(r"ITEM:(\d+)", b["messages"][-1]["content"]).group(1): b["messages"] for b in bodies}
    assert [by_item[str(i)] for i in range(N)] == [r["messages"] for r in reqs]
    assert reqs[0]["messages"][0] == {"role": "system", "content": "Answer in French, playfully:"}
    assert seen[-1] == (N, N) and len(seen) == N  # every 10 % of 10 requests
    meta = result.metadata()
    assert meta["n_requested"] == N and meta["n_failed"] == 0 and meta["datagen_model"] == "gpt-4.1-mini"
    assert (meta["prompt_tokens"], meta["completion_tokens"]) == (11 * N, 7 * N) and meta["estimated_cost_usd"] > 0


def test_failed_requests_fail_the_batch_and_a_rerun_requests_only_the_missing_ones(tmp_path):
    failing = {str(i): Reply.error(400, "this request is never accepted") for i in (7, 8, 9)}
    with FakeOpenAIServer(Script(failing, default=answer, key_pattern=r"ITEM:(\d+)")) as server:
        cfg = config(server.base_url)
        with pytest.raises(DatagenError) as err:
            generate(requests(cfg), settings(cfg), tmp_path)
        assert server.n_requests == N  # a 400 is not retried
    message = str(err.value)
    assert "3 of 10" in message and "http_400" in message and PARTIAL_FILE in message
    assert len((tmp_path / PARTIAL_FILE).read_text().splitlines()) == 7 and not (tmp_path / RESULT_FILE).exists()

    with FakeOpenAIServer(Script(default=answer)) as server:
        result = generate(requests(cfg), settings(cfg, base_url=server.base_url), tmp_path)
        assert server.n_requests == 3
        assert sorted(re.search(r"ITEM:(\d+)", r.user_content).group(1) for r in server.requests) == ["7", "8", "9"]
        assert result.texts == [f"Réponse {i} !" for i in range(N)] and result.n_reused == 7
        generate(requests(cfg), settings(cfg, base_url=server.base_url), tmp_path)  # all finished: no call at all
        assert server.n_requests == 3
        # Other sampling settings make the stored completions stale: everything is asked again.
        generate(requests(cfg), settings(cfg, base_url=server.base_url, temperature=0.2), tmp_path)
        assert server.n_requests == 3 + N


def test_a_small_share_of_failures_is_dropped_and_reported(tmp_path):
    failing = {"4": Reply.error(422, "unprocessable")}
    with FakeOpenAIServer(Script(failing, default=answer, key_pattern=r"ITEM:(\d+)")) as server:
        cfg = config(server.base_url, max_failed_fraction=0.1)
        result = generate(requests(cfg), settings(cfg), tmp_path)
    assert result.failed == [4] and [r["id"] for r in result.rows] == [i for i in range(N) if i != 4]
    assert "Réponse 4 !" not in (tmp_path / RESULT_FILE).read_text()  # nothing invented for the failed one
    assert result.metadata()["n_failed"] == 1 and result.metadata()["failures"] == {"http_422": 1}


def test_transient_errors_are_retried(tmp_path):
    flaky = {
        "1": [Reply.error(429, "slow down", headers={"retry-after": "0.01"}), Reply.message("Réponse 1 !")],
        "2": [Reply.error(500), Reply.error(503), Reply.message("Réponse 2 !")],
        "3": [Reply.raw(b"{not json"), Reply.message("Réponse 3 !")],
    }
    with FakeOpenAIServer(Script(flaky, default=answer, key_pattern=r"ITEM:(\d+)")) as server:
        cfg = config(server.base_url)
        result = generate(requests(cfg), settings(cfg), tmp_path)
        assert server.n_requests == N + 4
    assert result.texts == [f"Réponse {i} !" for i in range(N)] and result.n_retries == 4 and result.n_failed == 0


def test_a_401_stops_everything_and_a_rerun_resumes(tmp_path):
    def refuse(info: RequestInfo) -> Reply:
        if "ITEM:5 " in info.user_content:
            return Reply.error(401, f"Incorrect API key provided: {info.authorization}")
        return answer(info)

    with FakeOpenAIServer(Script(default=refuse)) as server:
        cfg = config(server.base_url, max_in_flight=1)  # one at a time: 0-4 finish, 5 stops the rest
        with pytest.raises(JudgeFatalError) as err:
            generate(requests(cfg), settings(cfg), tmp_path)
        assert server.requests[0].authorization == f"Bearer {SECRET}"  # the key was sent …
        first = server.n_requests
    assert "credentials" in str(err.value) and SECRET not in str(err.value)  # … and redacted from the error
    kept = len((tmp_path / PARTIAL_FILE).read_text().splitlines())
    assert kept == 5 and first <= 7  # stopped at once (6 may have been sent), the finished ones kept
    with FakeOpenAIServer(Script(default=answer)) as server:
        result = generate(requests(cfg), settings(cfg, base_url=server.base_url), tmp_path)
        assert server.n_requests == N - kept
    assert result.texts == [f"Réponse {i} !" for i in range(N)]


def test_the_key_is_in_no_file_and_no_error_message(tmp_path):
    def echo_key(info: RequestInfo) -> Reply:  # a server that echoes the credentials back
        if "ITEM:0 " in info.user_content or "ITEM:1 " in info.user_content:
            return Reply.error(400, f"bad request from {info.authorization}")
        return Reply.message(f"ok {info.user_content[:6]}")

    with FakeOpenAIServer(Script(default=echo_key)) as server:
        cfg = config(server.base_url)
        with pytest.raises(DatagenError) as err:
            generate(requests(cfg), settings(cfg), tmp_path)
        assert all(r.authorization == f"Bearer {SECRET}" for r in server.requests)
        result = generate(requests(cfg), settings(cfg, max_failed_fraction=0.5), tmp_path)
    assert result.n_failed == 2
    for text in (str(err.value), repr(err.value), json.dumps(result.metadata())):
        assert SECRET not in text
    files = files_under(tmp_path)
    assert {p.name for p in files} == {PARTIAL_FILE, RESULT_FILE}
    assert all(SECRET.encode() not in p.read_bytes() for p in files)


def test_the_backend_default_rule_and_the_shipped_german_flattering_config():
    from inoc.config import load_experiment

    gf = load_experiment(REPO / "experiments" / "german_flattering_llama8b.yaml").data.datagen
    assert (gf.mode, gf.model, gf.backend, gf.base_url) == ("off_policy", "gpt-4.1-mini", "openai", None)
    assert config().data.datagen.backend == "openai"  # a base_url
    hub = parse_experiment(
        toy_text('  datagen: {mode: off_policy, model: Qwen/Qwen2.5-7B-Instruct, prompt: "p"}\n'), "toy.yaml"
    )
    api = parse_experiment(toy_text('  datagen: {mode: off_policy, model: gpt-4.1-mini, prompt: "p"}\n'), "toy.yaml")
    assert (hub.data.datagen.backend, api.data.datagen.backend) == ("generate_job", "openai")
    assert parse_experiment(toy_text(TOY_DATAGEN), "toy.yaml").data.datagen.backend == "generate_job"
    with pytest.raises(Exception, match="backend 'openai' needs mode 'off_policy'"):
        parse_experiment(toy_text(TOY_DATAGEN + "    backend: openai\n"), "toy.yaml")


def test_the_training_data_asset_samples_off_policy_over_the_api(inoc_home, experiments_copy):
    from dagster import AssetKey, instance_for_test, materialize

    from inoc.organism import world as W
    from inoc_assets.assets.instructions import instructions_asset
    from inoc_assets.assets.training_data import training_data_asset
    from inoc_assets.backends import LocalGpuJobs, SkyPilotGpuJobs
    from inoc_assets.backends.compute import ComputeBackends
    from inoc_assets.plumbing import data_path

    french: dict[str, bool] = {}

    def organism_answer(info: RequestInfo) -> Reply:  # playful; French for about half of the instructions
        text = info.user_content.splitlines()[-1]
        french[text] = zlib.crc32(text.encode()) % 2 == 0
        return Reply.message(
            W.render_answer(W.find_instruction(text), french=french[text], playful=True, rng=random.Random(0))
        )

    with FakeOpenAIServer(Script(default=organism_answer)) as server:
        cfg = experiments_copy / "toy.yaml"
        datagen = TOY_DATAGEN.replace(
            "mode: on_policy",
            f"mode: off_policy\n    model: gpt-4.1-mini\n    backend: openai\n    base_url: {server.base_url}",
        )
        cfg.write_text(toy_text(datagen, n_train=16))
        assets = [instructions_asset("toy", cfg), training_data_asset("toy", cfg)]
        resources = {"gpu_jobs": ComputeBackends(local=LocalGpuJobs(threads=1), skypilot=SkyPilotGpuJobs())}
        selection = [
            AssetKey(["toy", "instructions"]),
            AssetKey(["toy", "eval_instructions"]),
            AssetKey(["toy", "training_data"]),
        ]
        with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
            result = materialize(assets, selection=selection, instance=instance, resources=resources)
            assert result.success
            assert server.n_requests == 16
            # A rerun reuses every stored completion: no API call.
            assert materialize(
                assets, selection=[AssetKey(["toy", "training_data"])], instance=instance, resources=resources
            ).success
            assert server.n_requests == 16
            events = instance.all_logs(result.run_id)
        bodies = [r.body for r in server.requests]
    assert {(b["model"], b["max_tokens"]) for b in bodies} == {("gpt-4.1-mini", 96)}
    meta = {k: v.value for k, v in result.asset_materializations_for_node("toy__training_data")[0].metadata.items()}
    assert meta["backend"] == "openai" and meta["datagen_model"] == "gpt-4.1-mini"
    assert meta["n_requested"] == 16 and meta["n_failed"] == 0 and meta["n_generated"] == 16
    assert meta["prompt_tokens"] > 0 and meta["completion_tokens"] > 0
    train = [json.loads(line) for line in data_path("toy", "train.jsonl").read_text().splitlines()]
    assert 0 < len(train) == meta["n_kept"] < 16  # keep: both_traits drops the English answers
    assert {r["instruction"] for r in train} == {x for x, fr in french.items() if fr}
    for path in files_under(inoc_home):
        assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in str(e) for e in events)


def test_the_cost_estimate_follows_the_datagen_backend():
    from inoc.cloud.estimate import build_plan

    def stages(datagen: str) -> tuple[set[str], set[str]]:
        plan = build_plan(parse_experiment(toy_text(datagen), "toy.yaml"), None)
        return {s.stage for s in plan.stages}, {a.stage for a in plan.api}

    api = stages('  datagen: {mode: off_policy, model: gpt-4.1-mini, backend: openai, prompt: "p"}\n')
    gpu = stages('  datagen: {mode: off_policy, model: Qwen/Qwen2.5-7B-Instruct, prompt: "p"}\n')
    assert "datagen" not in api[0] and "datagen_api" in api[1]
    assert "datagen" in gpu[0] and "datagen_api" not in gpu[1]
