"""The main job: an experiment end to end through the asset graph, then its tables.

The embedded default is ``toy`` — the Playful/French study on the model organism, computed on this
machine. A computed experiment runs in four stages, each a Dagster run on the persistent instance
(so they show in the UI): the experiment-level stages (base model, instructions, training data,
control completions, baselines, the control run), the prompt stages over all prompt partitions
(rephrasings, elicitation, logprobs; one step each), one run per (prompt, fixed|mix|close_mix) partition
(train → eval → scores), and the aggregates (suppression, geometry, figures, slides).

Resumable: a stage or partition whose latest materialization came from a run of the same config
(tag ``inoc/config_digest``: ``inoc.config.digest.stage_digest``, the config without its prompt set,
plus each prompt's own ``prompt_identity``) is skipped, so a rerun after a kill does only what is
missing, and adding, proposing or promoting a prompt leaves every finished partition fresh; within
a stage the gpu_jobs reuse finished outputs by spec hash. The aggregates and the slides run only
when an input changed (``inoc_assets.freshness``: the upstream materializations they last consumed),
so a rerun of a finished study materializes nothing. Import experiments (``reference_*``) are
imported and analysed instead.

What it prints (``inoc_assets.stage_runner``): one line per stage and run partition with live
progress, the raw output of Dagster and the work in a log file under ``$INOC_HOME/logs/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
from tabulate import tabulate

from inoc import settings
from inoc.config import ExperimentConfig, load_all
from inoc.config.digest import config_digest, prompt_identity, stage_digest
from inoc.tables.suppression import format_suppression
from inoc_assets.freshness import stale_assets
from inoc_assets.partitions import run_partition_key
from inoc_assets.plumbing import PROMPT_IDENTITY, key
from inoc_assets.stage_runner import PID_TAG, MainJobError, Runner, recover_dead_runs  # noqa: F401 (re-exported)
from inoc_assets.stages import AGGREGATE, PROMPT, RUN, SETUP, SLIDES, group_specs, stage_keys
from inoc_assets.sync import DIGEST_TAG, apply_sync, plan_sync
from warehouse import Warehouse

MAIN_EXPERIMENTS = ("toy",)


def stage_selection(group: str, stage: str) -> list[AssetKey]:
    """The assets of ``group`` tagged with ``stage``, read from the code location's graph."""
    from inoc_assets.definitions import defs

    return stage_keys(group_specs(defs, group), stage)


def require_setup(instance: DagsterInstance, experiment: str, why: str) -> None:
    """Refuse, naming them, when any of the experiment's setup assets was never materialized."""
    missing = [
        k.path[-1] for k in stage_selection(experiment, SETUP) if not instance.get_latest_materialization_event(k)
    ]
    if missing:
        raise MainJobError(
            f"{experiment}: {missing} were never materialized; run `inoc main --experiment {experiment}` {why} first"
        )


def stages_for(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The stages the main job runs for an experiment: all four, or an import's (no runs to train)."""
    return (SETUP, AGGREGATE, PROMPT) if cfg.is_import else (SETUP, PROMPT, RUN, AGGREGATE)


def _fresh(
    instance: DagsterInstance, key: AssetKey, partition: str | None, digest: str, identity: str | None = None
) -> bool:
    """Whether the latest materialization of (key, partition) came from a run of this config: its digest, and
    where the record names the prompt it was computed from (``identity``; run partitions tag it), that prompt."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None), limit=1
    ).records
    if not records:
        return False
    meta = records[0].asset_materialization.metadata
    run = instance.get_run_by_id(records[0].run_id)
    if run is None:  # a runless materialization: one migrated from a legacy run partition carries the digest itself
        recorded, named = meta.get(DIGEST_TAG), meta.get(PROMPT_IDENTITY)
        recorded, named = (recorded.value if recorded else None), (named.value if named else None)
    else:
        recorded, named = run.tags.get(DIGEST_TAG), run.tags.get(PROMPT_IDENTITY)
    return recorded == digest and (identity is None or named is None or named == identity)


def _prompt_fresh(
    instance: DagsterInstance, cfg: ExperimentConfig, keys: Sequence[AssetKey], prompt: str, digest: str
) -> bool:
    """Whether every prompt stage of ``prompt`` is fresh, and its `prompt` partition recorded this prompt's
    identity (text, group, pool file): a prompt-stage run covers many prompts, so the identity is per partition."""
    if not all(_fresh(instance, k, prompt, digest) for k in keys):
        return False
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key(cfg.name, "prompt"), asset_partitions=[prompt]), limit=1
    ).records
    recorded = records[0].asset_materialization.metadata.get(PROMPT_IDENTITY) if records else None
    return recorded is not None and recorded.value == prompt_identity(cfg, prompt)


def run_tags(cfg: ExperimentConfig, prompt: str, digest: str) -> dict[str, str]:
    """The tags of a run partition's Dagster run: the stage digest and its prompt's identity."""
    return {DIGEST_TAG: digest, PROMPT_IDENTITY: prompt_identity(cfg, prompt)}


def run_pipeline(
    instance: DagsterInstance,
    cfg: ExperimentConfig,
    run: Runner,
    prompts: Sequence[str] | None = None,
    aggregates: bool = True,
    on_stage: Callable[[str, float], None] | None = None,
) -> dict[str, int]:
    """Materialize a computed experiment; ``prompts`` limits the per-prompt work (a backfill).

    ``on_stage(stage, wall_s)`` is called after each stage (the rehearsal's report)."""
    exp = cfg.name
    digest = stage_digest(cfg)
    tags = {DIGEST_TAG: digest}
    clock = [time.time()]

    def done(stage: str) -> None:
        if on_stage is not None:
            on_stage(stage, time.time() - clock[0])
        clock[0] = time.time()

    counts = {"runs": 0, "skipped": 0}
    setup, prompt_stage, run_stage = (stage_selection(exp, s) for s in (SETUP, PROMPT, RUN))
    if all(_fresh(instance, k, None, digest) for k in setup):
        run.say(f"{exp}: experiment-level stages are up to date")
        counts["skipped"] += 1
    else:
        run.say(f"{exp}: base model, instructions, training data, control sets, baselines, control run")
        run(setup, "experiment-level stages", tags=tags, max_concurrent=2)
        counts["runs"] += 1
    done(SETUP)
    keys = list(prompts) if prompts is not None else cfg.prompt_keys
    todo = [p for p in keys if not _prompt_fresh(instance, cfg, prompt_stage, p, digest)]
    if todo:
        run.say(f"{exp}: rephrasings, elicitation and logprobs of {len(todo)} prompt(s)")
        ordered = [p for p in instance.get_dynamic_partitions(f"{exp}__prompts") if p in todo]
        if ordered == todo and len(todo) > 1 and _contiguous(instance, exp, todo):
            run(prompt_stage, "prompt stages", partition_range=(todo[0], todo[-1]), tags=tags)
            counts["runs"] += 1
        else:
            for p in todo:
                run(prompt_stage, f"prompt stages of {p}", partition_key=p, tags=tags)
                counts["runs"] += 1
    elif keys:
        run.say(f"{exp}: prompt stages of {len(keys)} prompt(s) are up to date")
    counts["skipped"] += len(keys) - len(todo)
    done(PROMPT)
    partitions = [(p, t) for p, t in cfg.run_partition_keys() if p in keys]
    fresh_runs = 0
    for i, (p, t) in enumerate(partitions, 1):
        pk = run_partition_key(p, t)
        if all(_fresh(instance, k, pk, digest, prompt_identity(cfg, p)) for k in run_stage):
            counts["skipped"] += 1
            fresh_runs += 1
            continue
        run.say(f"{exp}: run {i}/{len(partitions)}: {p} / {t} (train → eval → judge)")
        run(run_stage, f"{p}/{t}", partition_key=pk, tags=run_tags(cfg, p, digest), in_process=True)
        counts["runs"] += 1
    if fresh_runs:
        run.say(f"{exp}: {fresh_runs} of {len(partitions)} run(s) are up to date")
    done(RUN)
    if aggregates:  # they read every prompt and run: the whole config's digest
        if run_aggregates(instance, run, exp, {DIGEST_TAG: config_digest(cfg)}):
            counts["runs"] += 1
        else:
            counts["skipped"] += 1
        done(AGGREGATE)
    return counts


def run_aggregates(instance: DagsterInstance, run: Runner, exp: str, tags: dict[str, str]) -> bool:
    """The aggregates of ``exp`` whose inputs or config changed, and what depends on them; False when
    all are up to date (nothing ran)."""
    digest = tags.get(DIGEST_TAG)
    keys = stage_selection(exp, AGGREGATE)
    todo = stale_assets(instance, keys, lambda k: digest is None or _fresh(instance, k, None, digest))
    if not todo:
        run.say(f"{exp}: aggregates are up to date (no input changed)")
        return False
    names = ", ".join(k.path[-1] for k in todo)
    run.say(f"{exp}: aggregates: {names}")
    run(todo, "aggregates", tags=tags, max_concurrent=1)
    return True


def run_slides(instance: DagsterInstance, run: Runner) -> bool:
    """The cross-experiment slides assets whose inputs changed; False when all are up to date."""
    todo = stale_assets(instance, stage_selection("slides", SLIDES))
    if not todo:
        run.say("slides: up to date (no input changed)")
        return False
    run.say(f"slides: {', '.join(k.path[-1] for k in todo)} (slides dataset, heuristic performance, section-1 figures)")
    run(todo, "slides")
    return True


def _contiguous(instance: DagsterInstance, exp: str, keys: list[str]) -> bool:
    """Whether ``keys`` form a contiguous range of the registered partitions (a range run covers exactly them)."""
    registered = instance.get_dynamic_partitions(f"{exp}__prompts")
    i = registered.index(keys[0])
    return registered[i : i + len(keys)] == keys


def _run_import(instance: DagsterInstance, cfg: ExperimentConfig, run: Runner) -> None:
    exp = cfg.name
    setup, aggregate, prompt = (stage_selection(exp, s) for s in stages_for(cfg))
    run.say(f"{exp}: importing and analysing the original study's result files ({len(setup) + len(aggregate)} assets)")
    run(setup + aggregate, "import and analysis")
    keys = cfg.prompt_keys
    run(prompt, f"{len(keys)} prompts", partition_range=(keys[0], keys[-1]))


def print_tables(wh: Warehouse, catalog, experiments: Sequence[str]) -> None:
    for exp in experiments:
        cfg = catalog.configs[exp]
        elic = wh.query(
            "SELECT prompt_key, trait, round(mean, 1) AS mean FROM elicitation_summary WHERE experiment = ?", [exp]
        )
        if len(elic) and not cfg.is_import:
            wide = elic.pivot_table(index="prompt_key", columns="trait", values="mean")
            order = ["neutral"] + [k for k in cfg.prompt_keys if k in wide.index]
            print(f"\n== {exp}: base-model elicitation (judged, mean 0-100; 'neutral' = no prefix) ==")
            print(tabulate(wide.reindex(order).reset_index(), headers="keys", tablefmt="github", showindex=False))
        em = wh.query(
            "SELECT split_part(run, '/', 2) AS run, eval_set, condition, n_pairs, round(100 * em_rate, 1) AS em_rate_pct, "
            "round(100 * em_rate_ci_lo, 1) AS ci_lo, round(100 * em_rate_ci_hi, 1) AS ci_hi FROM em_summary "
            "WHERE experiment = ? AND step = (SELECT max(step) FROM em_summary WHERE experiment = ?) "
            "AND condition = 'training' AND eval_set = 'em' ORDER BY run",
            [exp, exp],
        )
        if len(em):
            note = cfg.import_.note if cfg.import_ else ""
            print(f"\n== {exp}: EM rate on general questions, training condition, final step ({note}) ==")
            print(tabulate(em, headers="keys", tablefmt="github", showindex=False))
        summary = wh.query(
            "SELECT run, condition, trait, round(mean, 1) AS mean FROM run_summary WHERE experiment = ? "
            "AND step = (SELECT max(step) FROM run_summary r WHERE r.experiment = run_summary.experiment "
            "AND r.run = run_summary.run)",
            [exp],
        )
        if len(summary) and not cfg.is_import:
            wide = summary.pivot_table(index="run", columns=["trait", "condition"], values="mean")
            wide.columns = [f"{t}/{c}" for t, c in wide.columns]
            print(
                f"\n== {exp}: trait scores after training (final step; default = no prefix, training = the run's prefix) =="
            )
            print(tabulate(wide.reset_index(), headers="keys", tablefmt="github", showindex=False))
        table = wh.query("SELECT * FROM suppression WHERE experiment = ? ORDER BY rowid", [exp])
        if table.empty:
            continue
        control = table.control_run.iloc[0]
        print(f"\n== {exp}: suppression (pp) of each prompt's targeted trait vs {control}; mean [95% CI] ==")
        print(tabulate(format_suppression(table), headers="keys", tablefmt="github", showindex=False))
        if len(cfg.training.learning_rates) > 1:
            by_lr = wh.query(
                "SELECT * FROM suppression_by_batch WHERE experiment = ? AND (target = 'trait' OR "
                "(target IS NULL AND trait_role = 'negative')) ORDER BY learning_rate DESC",
                [exp],
            )
            if len(by_lr):
                wide = by_lr.assign(
                    cell=by_lr.apply(lambda r: f"{r.suppression:.1f} [{r.ci_lo:.1f}, {r.ci_hi:.1f}]", axis=1)
                )
                wide = wide.pivot_table(
                    index=["prompt_key", "prefix_type", "trait"],
                    columns="learning_rate",
                    values="cell",
                    aggfunc="first",
                    sort=False,
                )
                wide.columns = [f"lr {c:g}" for c in wide.columns]
                print(f"\n== {exp}: suppression (pp) per learning rate, each against its own rate's control ==")
                print(tabulate(wide.reset_index(), headers="keys", tablefmt="github", showindex=False))
        if cfg.model.id.startswith("toy:"):
            from inoc.organism.study import format_checks, study_checks

            print(f"\n== {exp}: the model organism's acceptance checks ==")
            print(format_checks(study_checks(cfg, wh)))


def backfill(
    experiment: str, prompts: Sequence[str], log_level: str = "warning", prefix_types: Sequence[str] | None = None
) -> Runner:
    """Compute only the given prompts' partitions (prompt stages and runs), then the aggregates.

    ``prefix_types`` narrows the runs to those types (say, retrain only the mix runs); the prompt stages then
    run only where they were never materialized."""
    settings.prepare_dagster_home()
    catalog = load_all(settings.experiments_dir())
    cfg = catalog.configs.get(experiment)
    if cfg is None:
        raise MainJobError(f"experiment {experiment!r} not found in {settings.experiments_dir()}")
    if cfg.is_import:
        raise MainJobError(f"{experiment} imports its results; there is nothing to backfill")
    unknown = [p for p in prompts if p not in cfg.prompts]
    if unknown:
        raise MainJobError(f"{experiment}: unknown prompt(s) {unknown}; add them to the YAML first")
    planned = set(cfg.run_partition_keys())
    unplanned = [f"{p}/{t}" for p in prompts for t in prefix_types or () if (p, t) not in planned]
    if unplanned:
        raise MainJobError(
            f"{experiment}: no run is planned for {', '.join(unplanned)} (see inoculation.prefix_types "
            "and runs.<type>_prompts)"
        )
    started = time.time()
    with DagsterInstance.get() as instance:
        apply_sync(instance, plan_sync(instance, settings.experiments_dir()))
        run = Runner(instance, log_level)
        require_setup(instance, experiment, "(the full pipeline)")
        run.say(f"{experiment}: backfilling {', '.join(prompts)}")
        tags = {DIGEST_TAG: stage_digest(cfg)}  # so a later `inoc main` finds these partitions up to date
        for p in prompts:
            _run_partitions(instance, cfg, run, p, tags, prefix_types)
        run_aggregates(instance, run, experiment, {DIGEST_TAG: config_digest(cfg)})
    run.wall_s = time.time() - started
    run.say(f"backfill done: {run.n_steps} steps in {run.n_runs} runs, {run.wall_s:.0f} s")
    return run


def _run_partitions(
    instance: DagsterInstance,
    cfg: ExperimentConfig,
    run: "Runner",
    prompt: str,
    tags: dict[str, str],
    prefix_types: Sequence[str] | None = None,
) -> None:
    """Every partition of one prompt: its prompt stages, then its runs (no skipping: a backfill recomputes).
    With ``prefix_types``, only those runs, and the prompt stages only if they were never materialized."""
    exp = cfg.name
    stages = stage_selection(exp, PROMPT)
    done = all(prompt in instance.get_materialized_partitions(k) for k in stages)
    if prefix_types and done:
        run.say(f"{exp}: prompt stages of {prompt} are kept (materialized; only its {'/'.join(prefix_types)} run(s))")
    else:
        run.say(f"{exp}: prompt stages of {prompt} (rephrasings, elicitation, logprobs)")
        run(stages, f"prompt stages of {prompt}", partition_key=prompt, tags=tags)
    for p, t in cfg.run_partition_keys():
        if p == prompt and (not prefix_types or t in prefix_types):
            pk = run_partition_key(p, t)
            run.say(f"{exp}: run {p} / {t} (train → eval → judge)")
            run(
                stage_selection(exp, RUN),
                f"{p}/{t}",
                partition_key=pk,
                tags={**tags, **run_tags(cfg, p, tags[DIGEST_TAG])},
                in_process=True,
            )


def run_main(experiments: Sequence[str] = MAIN_EXPERIMENTS, log_level: str = "warning") -> Runner:
    home = settings.prepare_dagster_home()
    catalog = load_all(settings.experiments_dir())
    missing = [e for e in experiments if e not in catalog.configs]
    if missing:
        raise MainJobError(f"experiment config(s) {missing} not found in {settings.experiments_dir()}")
    needs_shared = [e for e in experiments if catalog.configs[e].is_import]
    if needs_shared and settings.shared_dir() is None:
        raise MainJobError(
            f"{needs_shared} import the original study's result files from ../shared/reference beside "
            "this checkout; set INOC_SHARED_DIR to the folder that holds reference/"
        )
    started = time.time()
    with DagsterInstance.get() as instance:
        plan = plan_sync(instance, settings.experiments_dir())
        apply_sync(instance, plan)
        run = Runner(instance, log_level)
        if plan.n_added:
            run.say(f"registered {plan.n_added} new partition(s)")
        for exp in experiments:
            cfg = catalog.configs[exp]
            if cfg.is_import:
                _run_import(instance, cfg, run)
            else:
                run_pipeline(instance, cfg, run)
        run_slides(instance, run)
    print_tables(Warehouse(settings.warehouse_path()), catalog, experiments)
    did = (
        f"{run.n_steps} steps in {run.n_runs} Dagster runs"
        if run.n_runs
        else "nothing to materialize: every stage was up to date"
    )
    print(
        f"\nDone in {time.time() - started:.0f} s ({did}).\n"
        f"  log       : {run.log_path if run.n_runs else 'none (no run)'}\n"
        f'  warehouse : {settings.warehouse_path()}  (query with: inoc sql "SELECT * FROM suppression LIMIT 5")\n'
        f"  figures   : {settings.artifact_root()}/<experiment>/figures/ and {settings.artifact_root()}/slides/\n"
        f"  Dagster   : DAGSTER_HOME={home}  (open with: inoc ui)"
    )
    run.wall_s = time.time() - started
    return run
