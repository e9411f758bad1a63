"""What `inoc main` / `inoc backfill` print, and when a finished aggregate counts as up to date.

The console is fed by real emitters (the gpu_jobs Reporter's progress lines) and real Dagster runs of
cheap stages (`toy/experiment`, and `toy/training_data` failing on its missing input) on a private
instance; the freshness rule is checked on real materializations and Dagster's own provenance tags.
The full `inoc main` output of a small study (no DEBUG line, line budget, a rerun that launches no
run) is checked in test_pipeline_e2e.py, on its finished study.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from inoc.console import SPARSE_EVERY_S, Console, captured_output, parse_progress, terminal_stream


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def reporter_lines(monkeypatch, steps: int) -> list[str]:
    """What gpu_jobs' Reporter logs for a training loop of ``steps`` steps (its own throttle off)."""
    from gpu_jobs.report import Reporter

    monkeypatch.delenv("DAGSTER_PIPES_CONTEXT", raising=False)
    out = io.StringIO()
    with Reporter("train", progress_every_s=0.0, stream=out) as rep:
        for step in range(1, steps + 1):
            rep.progress("train", step, steps, unit="steps ", extra=f"loss={2.0 / step:.4f}")
    # printed as "[gpu_jobs.train] INFO    <message>"; through Pipes the message alone becomes the log event
    return [re.sub(r"^\[gpu_jobs\.train\] INFO\s+", "", ln) for ln in out.getvalue().splitlines()]


def test_progress_is_parsed_from_the_messages_the_work_logs(monkeypatch):
    lines = reporter_lines(monkeypatch, 40)
    parsed = [parse_progress(ln) for ln in lines]
    assert [p.done for p in parsed] == list(range(1, 41)) and {p.total for p in parsed} == {40}
    assert parsed[-1].label == "train" and parsed[-1].unit == "steps" and parsed[-1].loss == pytest.approx(0.05)
    # the organism build (toy/base_model), judging and rephrasing messages
    p = parse_progress("organism build: train 481/1000 loss 0.694 (586 s)")
    assert (p.label, p.done, p.total, p.unit, p.loss) == ("organism build: train", 481, 1000, "", 0.694)
    assert parse_progress("judging Playful: 200/800") == parse_progress("judging Playful: 200/800 ")
    assert parse_progress("whimsical (close): 12/30 rephrasings").unit == "rephrasings"
    # not progress: paths, a count past its total, plain messages
    for text in ("reusing finished outputs in /a/runs/3/4 (spec 1234)", "wrote 5/4 files", "done in 3.2s", ""):
        assert parse_progress(text) is None, text


def test_a_log_gets_sparse_progress_lines(monkeypatch):
    """Not a TTY: a bar prints a line every SPARSE_EVERY_S at most, in a new tenth, never at 100%."""
    clock, out = Clock(), io.StringIO()
    console = Console(out, tty=False, clock=clock)
    console.step_started("control_run")
    for ln in reporter_lines(monkeypatch, 200):  # 200 steps over 100 s
        clock.t += 0.5
        console.progress("control_run", parse_progress(ln))
    printed = out.getvalue().splitlines()
    assert len(printed) == int(100 // SPARSE_EVERY_S), printed  # at 30, 60 and 90 s
    assert all("\r" not in ln and "\x1b" not in ln for ln in printed)
    assert printed[0].startswith("[inoc]     control_run · train: ") and "ETA " in printed[0]
    assert not any("200/200" in ln for ln in printed)
    # quiet for a short bar: a 25 s stage prints nothing
    out2 = io.StringIO()
    short = Console(out2, tty=False, clock=clock)
    for ln in reporter_lines(monkeypatch, 50):
        clock.t += 0.5
        short.progress("eval", parse_progress(ln))
    assert out2.getvalue() == ""
    # a slow one prints at most one line per tenth, however long it takes
    out3 = io.StringIO()
    slow = Console(out3, tty=False, clock=clock)
    for ln in reporter_lines(monkeypatch, 20):
        clock.t += 100
        slow.progress("base_model", parse_progress(ln))
    assert len(out3.getvalue().splitlines()) == 9


def test_a_terminal_gets_a_bar_redrawn_in_place_with_an_eta(monkeypatch):
    clock, out = Clock(), io.StringIO()
    console = Console(out, tty=True, clock=clock)
    console.line("toy: run 1/2: whimsical / fixed (train → eval → judge)")
    console.step_started("run_adapter")
    lines = reporter_lines(monkeypatch, 100)
    for ln in lines[:50]:
        clock.t += 1.0
        console.progress("run_adapter", parse_progress(ln))
    text = out.getvalue()
    assert text.count("\n") == 1  # the stage line; the bar never adds a line
    last = text.rsplit("\r\x1b[2K", 1)[1]
    assert "run_adapter · train [" in last and "50/100 steps" in last and "50%" in last
    assert "ETA 50s" in last and "loss 0.040" in last
    console.line("  whimsical/fixed: done in 50 s")  # a line clears the bar and redraws it below
    assert out.getvalue().endswith("[inoc]   whimsical/fixed: done in 50 s\n" + last)
    console.step_finished("run_adapter")
    assert out.getvalue().endswith("\r\x1b[2K")  # nothing left on the status line


def test_captured_output_takes_the_output_of_child_processes(tmp_path, capfd):
    log = tmp_path / "logs" / "run.log"
    terminal = terminal_stream()  # the console's stream: opened before, it keeps the terminal
    with captured_output(log):
        subprocess.run(
            [sys.executable, "-c", "import sys; print('child out'); print('DEBUG child err', file=sys.stderr)"],
            check=True,
        )
        os.write(1, b"parent fd 1\n")
        os.write(2, b"parent fd 2\n")
        print("parent print", file=sys.stderr)
        terminal.write("stage line\n")
    os.write(1, b"after\n")
    text = log.read_text()
    assert text.splitlines() == ["child out", "DEBUG child err", "parent fd 1", "parent fd 2", "parent print"]
    shown = capfd.readouterr()
    assert shown.out == "stage line\nafter\n" and shown.err == ""
    terminal.close()


@pytest.fixture
def instance(inoc_home):
    from dagster import DagsterInstance

    from inoc import settings

    settings.prepare_dagster_home()
    with DagsterInstance.get() as inst:
        yield inst


def test_a_real_stage_prints_one_line_and_keeps_dagster_in_the_log(instance):
    from dagster import AssetKey

    from inoc_assets.main_job import MainJobError, Runner

    out = io.StringIO()
    run = Runner(instance, "warning", console=Console(out, tty=False), in_process=True)
    run([AssetKey(["toy", "experiment"])], "catalog record")
    assert re.fullmatch(r"\[inoc\]   catalog record: done in \d+ s\n", out.getvalue()), out.getvalue()
    log = run.log_path.read_text()
    assert " - DEBUG - " in log and "STEP_SUCCESS" in log  # Dagster's own lines went to the log
    # a failure: the asset, the error's first line without Dagster's wrapper, the log and the run
    with pytest.raises(MainJobError) as err:
        run([AssetKey(["toy", "training_data"])], "training data")
    msg = str(err.value)
    first, log_line, run_line = msg.splitlines()
    assert first.startswith("training data failed: toy/training_data: ")
    assert first.endswith("train_instructions.jsonl does not exist; materialize toy/instructions first")
    assert "Failure" not in first and "dagster" not in first
    assert log_line == f"  full log: less +G {run.log_path}"
    run_id = re.search(r"Dagster run ([0-9a-f-]{36})", run_line)[1]
    assert instance.get_run_by_id(run_id).is_failure
    assert "Stack Trace" in run.log_path.read_text()  # the whole error is in the log
    assert " DEBUG " not in out.getvalue() and "Traceback" not in out.getvalue()
    assert run.n_runs == 2


def test_info_level_shows_the_work_s_own_log_lines(instance):
    from dagster import AssetKey

    from inoc_assets.main_job import Runner

    out = io.StringIO()
    Runner(instance, "INFO", console=Console(out, tty=False), in_process=True)([AssetKey(["toy", "experiment"])], "x")
    assert "[inoc]     info: experiment: toy: " in out.getvalue()
    assert "debug:" not in out.getvalue()


def test_an_unknown_log_level_is_one_clear_error(instance):
    from inoc_assets.main_job import MainJobError, Runner

    with pytest.raises(MainJobError, match=r"--log-level 'loud': expected one of debug, info, warning"):
        Runner(instance, "loud")


def test_an_aggregate_is_stale_only_when_an_input_it_consumed_changed(tmp_path):
    """Dagster's provenance (the storage id of each parent's latest materialization it read) decides."""
    from dagster import AssetKey, Definitions, DynamicPartitionsDefinition, asset, instance_for_test, materialize

    from inoc_assets.freshness import stale_assets

    parts = DynamicPartitionsDefinition(name="prompts")

    @asset(partitions_def=parts)
    def scores(context) -> None:
        return None

    @asset
    def setup() -> None:
        return None

    @asset(deps=[scores, setup])
    def suppression() -> None:
        return None

    @asset(deps=[suppression])
    def figures() -> None:
        return None

    @asset
    def unrelated() -> None:
        return None

    graph = Definitions(assets=[scores, setup, suppression, figures, unrelated]).resolve_asset_graph()
    agg = [AssetKey("suppression"), AssetKey("figures"), AssetKey("unrelated")]
    with instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_dynamic_partitions("prompts", ["a", "b"])
        assert stale_assets(instance, agg, graph=graph) == agg  # never materialized
        for p in ("a", "b"):
            materialize([scores], partition_key=p, instance=instance)
        materialize([setup, suppression, figures, unrelated], instance=instance)
        assert stale_assets(instance, agg, graph=graph) == []  # a rerun: nothing to do
        materialize([scores], partition_key="b", instance=instance)  # one partition recomputed (a backfill)
        assert stale_assets(instance, agg, graph=graph) == agg[:2]  # and figures, downstream of it
        materialize([suppression], instance=instance)
        assert stale_assets(instance, agg, graph=graph) == [AssetKey("figures")]
        materialize([figures], instance=instance)
        assert stale_assets(instance, agg, graph=graph) == []
        # another condition (the config digest) makes an asset stale, and its downstream with it
        assert stale_assets(instance, agg, lambda k: k != AssetKey("suppression"), graph=graph) == agg[:2]
