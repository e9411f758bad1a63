"""`inoc` command line: validate configs, sync partitions, open the UI, query the warehouse, run jobs.

Dagster is imported only by the commands that need it, so `inoc validate` and `inoc sql` start fast.
Every user-facing error is one clear message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from inoc import settings
from inoc.cloud.plan_command import add_plan_parser
from inoc.config.schema import PREFIX_TYPES


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _config_paths(paths: list[str]) -> list[Path]:
    from inoc.config import experiment_files

    out: list[Path] = []
    for raw in paths or [str(settings.experiments_dir())]:
        p = Path(raw)
        if p.is_dir():
            found = experiment_files(p)
            if not found:
                raise UserError(f"{p}: no experiment YAML files in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    from inoc.config import ConfigError, load_experiment
    from inoc.config.checks import config_warnings

    failed = 0
    for path in _config_paths(args.paths):
        try:
            cfg = load_experiment(path)
        except ConfigError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            continue
        print(f"ok  {path}  ({cfg.name}: {len(cfg.prompts)} prompts in {len(cfg.groups)} groups, model {cfg.model.id})")
        for warning in config_warnings(cfg, path):  # valid, but would not measure what it claims
            print(str(warning), file=sys.stderr)
    if failed:
        print(f"{failed} invalid experiment file(s)", file=sys.stderr)
        return 1
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    settings.prepare_dagster_home()
    from dagster import DagsterInstance

    from inoc_assets.sync import apply_sync, plan_sync

    with DagsterInstance.get() as instance:
        plan = plan_sync(instance, settings.experiments_dir())
        migrated = apply_sync(instance, plan)
    for err in plan.errors:
        print(f"skipped invalid config:\n{err}", file=sys.stderr)
    for defn, keys in plan.to_add.items():
        print(f"{defn}: added {len(keys)} partition(s): {', '.join(keys)}")
    for defn, keys in plan.orphaned.items():
        print(f"{defn}: kept {len(keys)} partition(s) no longer in the YAML: {', '.join(keys)}")
    if migrated:
        print(f"migrated {migrated} run materialization(s) from prompt × prefix-type partitions to <prompt>/<type>")
    if not plan.to_add:
        print("every configured prompt and run already has its partition")
    return 1 if plan.errors else 0


def _ui_selection(args: argparse.Namespace) -> tuple[list[str], str]:
    """The experiment selection of the UI's code location, and where it came from."""
    from inoc.config.selection import ALL, LOCAL, parse_selection

    if args.all_experiments:
        return [ALL], "--all-experiments"
    if args.experiment is not None:
        words = [w for raw in args.experiment for w in parse_selection(raw) or []]
        if not words:
            raise UserError("--experiment: give an experiment name (or `local`, `all`)")
        return words, "--experiment"
    env = parse_selection(settings.experiment_selection())
    return (env, "INOC_EXPERIMENTS") if env else ([LOCAL], "the default")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cmd_ui(args: argparse.Namespace) -> int:
    from inoc.config import load_all
    from inoc.config.selection import SelectionError, select_experiments
    from inoc.process_tree import run_until_signal

    words, source = _ui_selection(args)
    catalog = load_all(settings.experiments_dir())
    try:
        loaded = select_experiments(catalog, words, source)
    except SelectionError as exc:
        raise UserError(str(exc)) from None
    if not _port_free(args.port):
        raise UserError(f"port {args.port} on 127.0.0.1 is in use (another `inoc ui`?): pass --port N")
    home = settings.prepare_dagster_home()
    # The code location (and every run it launches) reads the selection from the environment; the
    # words, not the names, travel, so `local` still picks up a new local YAML on *Reload definitions*.
    env = {**os.environ, "INOC_EXPERIMENTS": ",".join(words)}
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "inoc_assets.definitions",
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    left_out = [n for n in catalog.configs if n not in loaded]
    print(f"DAGSTER_HOME={home}", flush=True)
    print(f"experiments ({source}: {','.join(words)}): {', '.join(loaded) or 'none'}", flush=True)
    if left_out:
        print(f"not loaded: {', '.join(left_out)} (add with --experiment NAME, or --all-experiments)", flush=True)
    print(f"opening the UI on http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    return run_until_signal(cmd, env=env)


def cmd_sql(args: argparse.Namespace) -> int:
    from warehouse import Warehouse

    wh = Warehouse(settings.warehouse_path())
    if args.file:
        queries = named_queries(Path(args.file))
        if args.name:
            if args.name not in queries:
                raise UserError(f"{args.file}: no query named {args.name!r} (have: {', '.join(queries)})")
            queries = {args.name: queries[args.name]}
    elif args.query:
        queries = {"": args.query}
    else:
        raise UserError("give a query, or --file PATH [--name NAME]")
    for name, sql in queries.items():
        if name:
            print(f"-- {name}")
        _print_query(wh, sql, args)
    return 0


def named_queries(path: Path) -> dict[str, str]:
    """`-- name: X` sections of a SQL file (the format of warehouse/queries/*.sql)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror}") from None
    parts = text.split("\n-- name: ")[1:]
    if not parts:
        raise UserError(f"{path}: no '-- name: <query>' sections")
    return {p.split("\n", 1)[0].strip(): p.split("\n", 1)[1] for p in parts}


def _print_query(wh, sql: str, args: argparse.Namespace) -> None:
    import duckdb
    from tabulate import tabulate

    try:
        frame = wh.query(sql)
    except duckdb.Error as exc:
        raise UserError(f"SQL error: {exc}") from None
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    else:
        limit = args.max_rows
        shown = frame if limit <= 0 or len(frame) <= limit else frame.head(limit)
        print(tabulate(shown, headers="keys", tablefmt="github", showindex=False, floatfmt=".4g"))
        if len(shown) < len(frame):
            print(f"… {len(frame) - len(shown)} more rows (use --max-rows 0 or --format csv)")


def cmd_main(args: argparse.Namespace) -> int:
    settings.prepare_dagster_home()
    from inoc_assets.main_job import MAIN_EXPERIMENTS, MainJobError, run_main

    try:
        run_main(tuple(args.experiment) if args.experiment else MAIN_EXPERIMENTS, log_level=args.log_level)
    except MainJobError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    settings.prepare_dagster_home()
    from inoc_assets.main_job import MainJobError, backfill

    try:
        backfill(args.experiment, args.prompt, log_level=args.log_level, prefix_types=args.prefix_type)
    except MainJobError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    settings.prepare_dagster_home()
    from inoc_assets.main_job import MainJobError
    from inoc_assets.propose import propose_candidates, select_and_promote, show_ranking

    try:
        if args.n is not None:
            propose_candidates(args.experiment, args.trait, args.n, log_level=args.log_level)
        if args.select is not None:
            select_and_promote(args.experiment, args.trait, args.select, args.rule, args.write, args.prefix_type)
        if args.n is None and args.select is None:
            show_ranking(args.experiment, args.trait, log_level=args.log_level)
    except MainJobError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_rehearse(args: argparse.Namespace) -> int:
    from inoc.rehearsal.run import RehearsalError, format_report, rehearse

    failed = []
    for experiment in args.experiment:
        try:
            result = rehearse(experiment, home=Path(args.home) / experiment if args.home else None)
        except RehearsalError as exc:
            raise UserError(f"rehearsal of {experiment} cannot start:\n{exc}") from None
        print(format_report(result), flush=True)
        if not result.ok:
            failed.append(experiment)
    if failed:
        raise UserError(f"rehearsal failed: {', '.join(failed)} (see the report above)")
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    settings.prepare_dagster_home()
    from dagster import DagsterInstance, DagsterInvalidSubsetError, DagsterUnknownPartitionError

    from inoc.config import load_all
    from inoc.config.selection import SelectionError
    from inoc_assets.cli_selection import SelectionProblem, check_partition_args, partition_keys, resolve
    from inoc_assets.runner import run_assets
    from inoc_assets.sync import apply_sync, plan_sync

    try:
        from inoc_assets.definitions import build_definitions

        defs = build_definitions()
        selection = resolve(
            defs, args.assets, list(load_all(settings.experiments_dir()).configs), settings.experiment_selection()
        )
    except (SelectionError, SelectionProblem) as exc:
        raise UserError(str(exc)) from None
    with DagsterInstance.get() as instance:
        apply_sync(instance, plan_sync(instance, settings.experiments_dir()))
        try:
            check_partition_args(selection, instance, args.partition, args.all_partitions)
        except SelectionProblem as exc:
            raise UserError(str(exc)) from None
        rng = None
        if args.all_partitions and selection.partitions_def is not None:
            keys = partition_keys(selection, instance)
            rng = (keys[0], keys[-1])
        try:
            result = run_assets(
                instance, selection.keys, partition_key=args.partition, partition_range=rng, log_level=args.log_level
            )
        except (
            DagsterInvalidSubsetError,
            DagsterUnknownPartitionError,
        ) as exc:  # checked above; a last line of defence
            raise UserError(str(exc).strip().splitlines()[0]) from None
    print(f"run {result.run_id}: {'success' if result.success else 'FAILED (see inoc ui → Runs)'}")
    return 0 if result.success else 1


def cmd_import(args: argparse.Namespace) -> int:
    import pandas as pd

    from inoc.config import load_all
    from inoc.importers.experiment import nan_counts, parse_folder, write_parsed
    from inoc.importers.reference import ReferenceFormatError
    from warehouse import Warehouse, replace_rows

    catalog = load_all(settings.experiments_dir())
    cfg = catalog.configs.get(args.experiment)
    if cfg is None:
        bad = [e for e in catalog.errors if Path(e.problems[0].file).stem == args.experiment]
        if bad:
            raise UserError(f"experiment config {args.experiment!r} is invalid:\n{bad[0]}")
        raise UserError(
            f"no experiment {args.experiment!r} in {settings.experiments_dir()}: create "
            f"experiments/{args.experiment}.yaml first (e.g. `extends: playful_french_qwen7b`), so the "
            "imported prompts have their texts and groups"
        )
    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or folder")
    try:
        parsed = parse_folder(paths, cfg.model.slug, cfg)
    except ReferenceFormatError as exc:
        raise UserError(f"{exc}\nnothing was imported") from None
    from inoc.config.records import experiment_record
    from inoc.importers.experiment import ImportRefused, describe

    try:
        with Warehouse(settings.warehouse_path()).writer() as conn:
            known = conn.execute("SELECT source FROM experiments WHERE experiment = ?", [cfg.name]).fetchall()
            if not known:  # a computed experiment keeps its record (source 'pipeline')
                replace_rows(
                    conn,
                    "experiments",
                    pd.DataFrame([{**experiment_record(cfg), "source": "import"}]),
                    {"experiment": cfg.name},
                )
            reports = write_parsed(conn, cfg.name, parsed, replace_computed=args.replace_computed)
    except ImportRefused as exc:
        raise UserError(str(exc)) from None
    for note in parsed.notes:
        print(f"note: {note}")
    for line in describe(reports):
        print(line)
    for table, n in nan_counts(parsed).items():
        print(f"{table}: {n} NaN values kept as NaN")
    return 0


def _add_log_level(p: argparse.ArgumentParser) -> None:
    """`inoc main` / `inoc backfill`: which Dagster events reach the console (the log file keeps all)."""
    p.add_argument(
        "--log-level",
        type=str.lower,
        default="warning",
        choices=("debug", "info", "warning", "error", "critical"),
        help="Dagster events shown on the console besides the stage lines and progress bars "
        "(default: warning; debug shows every event). The full output of every run is in "
        "$INOC_HOME/logs/, named on failure and at the end",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inoc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate experiment YAMLs (files or folders; default experiments/)")
    p.add_argument("paths", nargs="*")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("sync", help="register new prompts of every YAML as partitions (never removes any)")
    p.set_defaults(fn=cmd_sync)

    p = sub.add_parser(
        "ui", help="start the Dagster UI (and daemon) on 127.0.0.1; SIGINT/SIGTERM stop it and every process it started"
    )
    p.add_argument("--port", type=int, default=3000)
    p.add_argument(
        "--experiment",
        action="append",
        metavar="NAME",
        help="load only this experiment (repeatable; also `local`, `all`, comma lists); default: "
        "$INOC_EXPERIMENTS, else `local` (imports and studies that run on this machine)",
    )
    p.add_argument(
        "--all-experiments", action="store_true", help="load every experiment YAML, cloud GPU studies included"
    )
    p.set_defaults(fn=cmd_ui)

    p = sub.add_parser("main", help="run the main job on the embedded default and print the suppression table")
    p.add_argument("--experiment", action="append", help="experiment to run (repeatable; default: toy)")
    _add_log_level(p)
    p.set_defaults(fn=cmd_main)

    p = sub.add_parser(
        "backfill",
        help="compute only the given prompts of an experiment (a new prompt), then "
        "its aggregates; prints the executed step count",
    )
    p.add_argument("experiment")
    p.add_argument("--prompt", action="append", required=True, help="prompt key (repeatable)")
    p.add_argument(
        "--prefix-type",
        action="append",
        choices=PREFIX_TYPES,
        help="only these runs of the prompts (repeatable; run partitions are <prompt>/<prefix_type>)",
    )
    _add_log_level(p)
    p.set_defaults(fn=cmd_backfill)

    from inoc.propose.acquisition import RULES

    p = sub.add_parser(
        "propose",
        help="propose candidate prompts for a trait, measure them with the cheap per-prompt "
        "stages only, rank them by predicted suppression; --select K promotes K of them to be trained",
    )
    p.add_argument("experiment")
    p.add_argument("--trait", required=True, help="the trait the candidates should inoculate against (e.g. Playful)")
    p.add_argument("--n", type=int, help="make N new candidates (written to the YAML's `candidates:`; no run planned)")
    p.add_argument("--select", type=int, metavar="K", help="pick K candidates by --rule and promote them")
    p.add_argument("--rule", choices=list(RULES), default="ucb", help="; ".join(f"{k}: {v}" for k, v in RULES.items()))
    p.add_argument("--prefix-type", choices=PREFIX_TYPES, default="fixed", help="the predicted suppression to rank by")
    p.add_argument("--write", action="store_true", help="write the promotion without asking")
    _add_log_level(p)
    p.set_defaults(fn=cmd_propose)

    p = sub.add_parser(
        "rehearse",
        help="run a real study's whole asset graph on this CPU with a stand-in model and "
        "API, shrunk sizes and its SkyPilot tasks validated, before renting a GPU",
    )
    p.add_argument("experiment", nargs="+", help="experiment name(s), e.g. em_risky_finance_qwen32b")
    p.add_argument("--home", help="folder for the rehearsals' results (default ./.inoc-rehearsal/<experiment>)")
    p.set_defaults(fn=cmd_rehearse)

    p = sub.add_parser("materialize", help="materialize assets (e.g. toy/experiment) in one run on the local instance")
    p.add_argument("assets", nargs="+", help="asset keys as experiment/asset")
    p.add_argument("--partition", help="partition key: a prompt key, or <prompt>/<prefix type> for run assets")
    p.add_argument("--all-partitions", action="store_true", help="every registered partition, in one run")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(fn=cmd_materialize)

    p = sub.add_parser("import", help="import result files (original study's formats) into an experiment")
    p.add_argument("paths", nargs="+", help="result files or folders of them")
    p.add_argument("--experiment", required=True, help="experiment name (its YAML must exist)")
    p.add_argument(
        "--replace-computed",
        action="store_true",
        help="allow replacing rows no import wrote (a "
        "computed experiment's runs of the same batch); without it such an import is refused",
    )
    p.set_defaults(fn=cmd_import)

    p = sub.add_parser("sql", help="run a query on the warehouse (read-only snapshot) and print it")
    p.add_argument("query", nargs="?", help="a SQL query")
    p.add_argument("--file", help="a SQL file of '-- name: X' sections (e.g. warehouse/queries/reference_tables.sql)")
    p.add_argument("--name", help="with --file: run only this query")
    p.add_argument("--format", choices=["table", "csv"], default="table")
    p.add_argument("--max-rows", type=int, default=100)
    p.set_defaults(fn=cmd_sql)
    add_plan_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as exc:
        print(f"inoc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
