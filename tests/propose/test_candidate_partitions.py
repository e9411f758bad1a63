"""A candidate is a prompt partition and never a run partition until it is promoted; promoting one plans its runs
and leaves every finished partition of the study fresh."""

from __future__ import annotations

from dagster import AssetKey, AssetMaterialization, DagsterInstance, instance_for_test
from dagster._core.storage.dagster_run import DagsterRun

from inoc.config import load_experiment
from inoc.config.digest import stage_digest
from inoc.propose import yaml_edit
from inoc.propose.generate import propose, trait_group


def _propose(path, n=3):
    cfg = load_experiment(path)
    role, family, group = trait_group(cfg, "Playful")
    cands = propose(cfg, "Playful", n, 1)
    return yaml_edit.write(path, yaml_edit.add_candidates(path, group, role, family, {c.key: c.text for c in cands}))


def test_unpromoted_candidates_have_no_run_partitions(inoc_home, experiments_copy):
    from inoc_assets.sync import apply_sync, plan_sync

    path = experiments_copy / "toy_propose.yaml"
    cfg = _propose(path)
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        apply_sync(instance, plan_sync(instance, experiments_copy))
        prompts = set(instance.get_dynamic_partitions("toy_propose__prompts"))
        runs = set(instance.get_dynamic_partitions("toy_propose__runs"))
        assert set(cfg.candidates) <= prompts  # the cheap stages can run on them
        assert not [r for r in runs if r.split("/")[0] in cfg.candidates]
        assert "clown_persona/fixed" in runs

        promoted = yaml_edit.write(path, yaml_edit.promote(path, cfg.candidates[:1]))
        apply_sync(instance, plan_sync(instance, experiments_copy))
        runs = set(instance.get_dynamic_partitions("toy_propose__runs"))
        assert f"{cfg.candidates[0]}/fixed" in runs
        assert not [r for r in runs if r.split("/")[0] in promoted.candidates]


def test_a_finished_run_stays_fresh_when_candidates_are_added_and_promoted(inoc_home, experiments_copy):
    from inoc_assets.main_job import _fresh, run_tags

    path = experiments_copy / "toy_propose.yaml"
    before = load_experiment(path)
    key = AssetKey(["toy_propose", "run_scores"])
    with instance_for_test(temp_dir=str(inoc_home / "dagster")) as instance:
        _materialize(instance, key, "clown_persona/fixed", run_tags(before, "clown_persona", stage_digest(before)))
        after = _propose(path)
        after = yaml_edit.write(path, yaml_edit.promote(path, after.candidates[:2]))
        assert _fresh(
            instance,
            key,
            "clown_persona/fixed",
            stage_digest(after),
            run_tags(after, "clown_persona", "")["inoc/prompt_identity"],
        )
        # the prompt's own text changed: that run is stale, and only it
        edited = yaml_edit.write(path, path.read_text().replace('"You are a clown."', '"You are a sad clown."'))
        ident = run_tags(edited, "clown_persona", "")["inoc/prompt_identity"]
        assert stage_digest(edited) == stage_digest(before)
        assert not _fresh(instance, key, "clown_persona/fixed", stage_digest(edited), ident)


def _materialize(instance: DagsterInstance, key: AssetKey, partition: str, tags: dict[str, str]) -> None:
    """Record a materialization of ``partition`` by a run carrying ``tags``, as a run of the main job does."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id="b" * 36, tags=tags))
    event = DagsterEvent(
        DagsterEventType.ASSET_MATERIALIZATION.value,
        "__ASSET_JOB",
        event_specific_data=StepMaterializationData(AssetMaterialization(key, partition=partition)),
    )
    instance.store_event(
        EventLogEntry(
            error_info=None,
            level="INFO",
            user_message="",
            run_id=run.run_id,
            timestamp=__import__("time").time(),
            dagster_event=event,
        )
    )
