"""Which experiments the catalog loads (issue 16, item 7), and the CLI's one-line errors (item 6).

`INOC_EXPERIMENTS` (names, `local`, `all`) selects the experiments of the code location; `inoc ui`
loads `local` by default — the toy studies and the imports, not the cloud GPU studies — and takes
`--experiment NAME` (repeatable) or `--all-experiments`. `inoc materialize` refuses what Dagster would
reject with a traceback (half of a multi-asset, assets on different partitions, unknown partitions).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from inoc.config import load_all
from inoc.config.selection import SelectionError, parse_selection, runs_locally, select_experiments
from inoc_assets.cli_selection import SelectionProblem, resolve
from inoc_assets.definitions import build_definitions

GPU_STUDIES = {"playful_french_qwen7b", "german_flattering_llama8b", "em_risky_finance_qwen32b"}


def _groups(defs) -> set[str]:
    return {k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()}


def _inoc(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "INOC_EXPERIMENTS"} | env
    return subprocess.run(
        [sys.executable, "-m", "inoc.cli", *args], capture_output=True, text=True, env=full, timeout=300
    )


def test_local_picks_the_imports_and_the_studies_that_run_here(experiments_copy):
    catalog = load_all(experiments_copy)
    local = set(select_experiments(catalog, ["local"]))
    # Decided by each config, not by name: skypilot studies are out, their imports (files only) are in.
    assert local == {n for n, cfg in catalog.configs.items() if cfg.is_import or cfg.compute.backend == "local"}
    assert "toy" in local and {"reference_pf_qwen7b", "reference_gf_llama8b", "reference_em_qwen32b"} <= local
    assert not local & GPU_STUDIES
    assert all(
        catalog.configs[n].compute.backend == "skypilot" and not runs_locally(catalog.configs[n]) for n in GPU_STUDIES
    )
    assert select_experiments(catalog, None) == list(catalog.configs)  # unset: every valid YAML
    assert set(select_experiments(catalog, ["all"])) == set(catalog.configs)
    mixed = select_experiments(catalog, parse_selection(" local , playful_french_qwen7b,"))
    assert set(mixed) == local | {"playful_french_qwen7b"} and mixed == [n for n in catalog.configs if n in mixed]
    with pytest.raises(SelectionError, match=r"INOC_EXPERIMENTS: no experiment 'toyy' \(expected .*local, all, .*toy"):
        select_experiments(catalog, ["toy", "toyy"])
    assert parse_selection("") is None and parse_selection(" , ") is None


def test_definitions_built_under_the_setting_hold_only_those_groups(experiments_copy, monkeypatch):
    monkeypatch.setenv("INOC_EXPERIMENTS", "toy,reference_pf_qwen7b")
    assert _groups(build_definitions()) == {"toy", "reference_pf_qwen7b", "slides"}
    local = _groups(build_definitions(selection=["local"]))
    assert "toy" in local and not local & GPU_STUDIES
    monkeypatch.delenv("INOC_EXPERIMENTS")
    assert GPU_STUDIES | {"toy", "slides"} <= _groups(build_definitions())  # unset: everything, as runs need
    monkeypatch.setenv("INOC_EXPERIMENTS", "toy,nope")
    with pytest.raises(SelectionError, match="INOC_EXPERIMENTS: no experiment 'nope'"):
        build_definitions()


def test_an_invalid_yaml_named_in_the_selection_is_skipped_like_any_invalid_yaml(experiments_copy, monkeypatch):
    toy = experiments_copy / "toy_exp3_lr_sweep.yaml"
    toy.write_text(toy.read_text() + "\nno_such_field: 1\n")
    monkeypatch.setenv("INOC_EXPERIMENTS", "toy,toy_exp3_lr_sweep")
    assert _groups(build_definitions()) == {"toy", "slides"}


def test_materialize_half_a_multi_asset_is_one_line_and_exit_2(inoc_home, experiments_copy):
    half = _inoc("materialize", "toy/instructions", INOC_EXPERIMENTS="toy")
    assert half.returncode == 2, half.stderr
    assert half.stderr.count("\n") == 1 and "Traceback" not in half.stderr, half.stderr
    assert half.stderr == (
        "inoc: toy/instructions is computed in one step with toy/eval_instructions; select them "
        "together: inoc materialize toy/instructions toy/eval_instructions\n"
    )
    gone = _inoc("materialize", "em_risky_finance_qwen32b/instructions", INOC_EXPERIMENTS="toy")
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    assert "'em_risky_finance_qwen32b' is not loaded: INOC_EXPERIMENTS=toy leaves it out" in gone.stderr


def test_resolve_takes_a_whole_multi_asset_and_refuses_mixed_partitions(experiments_copy):
    defs = build_definitions(selection=["toy"])
    names = list(load_all(experiments_copy).configs)
    whole = resolve(defs, ["toy/instructions", "toy/eval_instructions"], names, None)
    assert [k.to_user_string() for k in whole.keys] == ["toy/instructions", "toy/eval_instructions"]
    assert whole.partitions_def is None
    prompts = resolve(defs, ["toy/prompt"], names, None)
    assert prompts.partitions_def is not None and prompts.partitions_def.name == "toy__prompts"
    with pytest.raises(
        SelectionProblem, match=r"toy/prompt \(toy__prompts\) and toy/runs \(toy__runs\) are partitioned differently"
    ):
        resolve(defs, ["toy/prompt", "toy/runs"], names, None)
    with pytest.raises(SelectionProblem, match="unknown asset 'toy/nope'; assets of that experiment: .*toy/prompt"):
        resolve(defs, ["toy/nope"], names, None)


@pytest.mark.slow
def test_materialize_names_registered_partitions(inoc_home, experiments_copy):
    bad = _inoc("materialize", "toy/prompt", "--partition", "nope", INOC_EXPERIMENTS="toy")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert (
        bad.stderr.startswith("inoc: --partition nope: no such partition of toy__prompts (have: ")
        and "whimsical" in bad.stderr
    )
    unpartitioned = _inoc("materialize", "toy/experiment", "--partition", "whimsical", INOC_EXPERIMENTS="toy")
    assert unpartitioned.returncode == 2
    assert unpartitioned.stderr == "inoc: --partition whimsical: none of the selected assets is partitioned\n"


def test_inoc_ui_refuses_an_unknown_experiment_and_a_busy_port(inoc_home, experiments_copy):
    unknown = _inoc("ui", "--experiment", "toy", "--experiment", "nope")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "Traceback" not in unknown.stderr
    assert unknown.stderr.startswith(
        "inoc: --experiment: no experiment 'nope' (expected a comma-separated list of: local, all,"
    )
    empty = _inoc("ui", "--experiment", "")  # once started the UI with no experiment at all
    assert empty.returncode == 2 and empty.stderr == "inoc: --experiment: give an experiment name (or `local`, `all`)\n"
    from_env = _inoc("ui", INOC_EXPERIMENTS="nope")
    assert from_env.returncode == 2 and from_env.stderr.startswith("inoc: INOC_EXPERIMENTS: no experiment 'nope'")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _inoc("ui", "--port", str(port))
    assert taken.returncode == 2
    assert taken.stderr == f"inoc: port {port} on 127.0.0.1 is in use (another `inoc ui`?): pass --port N\n"
