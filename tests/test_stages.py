"""Every asset declares its stage, and the stages the main job runs cover every asset of a group."""

from __future__ import annotations

import pytest
from dagster import AssetKey, Definitions, asset

from inoc import settings
from inoc.config import load_all
from inoc_assets.definitions import build_definitions
from inoc_assets.main_job import stages_for
from inoc_assets.stages import SLIDES, STAGE_TAG, group_specs, stage_keys, stage_tag, untagged


@pytest.fixture(scope="module")
def shipped():
    return build_definitions(settings.experiments_dir()), load_all(settings.experiments_dir())


def test_every_shipped_asset_has_a_stage(shipped):
    defs, _ = shipped
    assert untagged(defs) == []


def test_the_stages_each_experiment_runs_cover_its_whole_group(shipped):
    defs, catalog = shipped
    assert catalog.configs, "no shipped experiments found"
    for name, cfg in catalog.configs.items():
        specs = group_specs(defs, name)
        covered = [k for stage in stages_for(cfg) for k in stage_keys(specs, stage)]
        assert sorted(covered, key=str) == sorted((s.key for s in specs), key=str), name
        assert len(covered) == len(set(covered)), f"{name}: an asset in two stages"
    assert {s.key for s in group_specs(defs, "slides")} == set(stage_keys(group_specs(defs, "slides"), SLIDES))


def test_a_computed_study_has_all_four_stages(shipped):
    defs, _ = shipped
    specs = group_specs(defs, "toy")
    by_stage = {
        stage: {k.path[-1] for k in stage_keys(specs, stage)} for stage in ("setup", "prompt", "run", "aggregate")
    }
    assert {"base_model", "instructions", "eval_instructions", "control_run"} <= by_stage["setup"]
    assert by_stage["prompt"] == {"prompt", "rephrasings", "elicitation", "logprobs"}
    assert by_stage["run"] == {"runs", "run_eval", "run_scores"}
    assert {"suppression", "prompt_geometry", "figures"} <= by_stage["aggregate"]


def test_an_asset_without_a_stage_is_reported():
    @asset(key=AssetKey(["x", "tagged"]), group_name="x", tags=stage_tag("setup"))
    def tagged() -> None: ...

    @asset(key=AssetKey(["x", "forgotten"]), group_name="x")
    def forgotten() -> None: ...

    @asset(key=AssetKey(["x", "misspelt"]), group_name="x", tags={STAGE_TAG: "aggregates"})
    def misspelt() -> None: ...

    assert sorted(untagged(Definitions(assets=[tagged, forgotten, misspelt])), key=str) == [
        AssetKey(["x", "forgotten"]),
        AssetKey(["x", "misspelt"]),
    ]
    with pytest.raises(ValueError, match="unknown stage"):
        stage_tag("aggregates")
