"""``inoc plan EXPERIMENT [--select …] [--confirm]``: what an experiment will cost on cloud GPUs.

Registered in ``inoc/cli.py`` by ``add_plan_parser(sub)``; also runs on its own as
``python -m inoc.cloud.plan_command``. Prints tokens, GPU-hours and dollars per stage (SkyPilot's catalog
prices of the cheapest candidate accelerator, on-demand and spot), the packed plan against one cluster
per job, the API calls, the assumptions, and the budget verdict. Exit status: 0 within budget (or
confirmed), 3 over ``compute.max_budget_usd`` without ``--confirm``, 2 on a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from inoc import settings

EXIT_OVER_BUDGET = 3


class PlanUserError(Exception):
    pass


def add_plan_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "plan",
        help="estimate tokens, GPU-hours and dollars of an experiment on cloud GPUs; "
        "--confirm accepts an estimate above compute.max_budget_usd",
    )
    _arguments(p)
    p.set_defaults(fn=cmd_plan)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name (in INOC_EXPERIMENTS_DIR) or a YAML file")
    p.add_argument(
        "--select",
        action="append",
        default=[],
        help="stages (datagen, elicitation, logprobs, training, eval, rephrasings, datagen_api, judging) "
        "and/or prompt keys, comma-separated or repeated; a prompt key plans just that prompt",
    )
    p.add_argument("--confirm", action="store_true", help="accept this estimate even above the budget (recorded)")
    p.add_argument(
        "--clouds",
        default="",
        help="catalogs to price from, comma-separated (default: $INOC_PLAN_CLOUDS, "
        "else aws,gcp,azure,lambda,runpod,nebius)",
    )
    p.add_argument(
        "--assume",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an assumption (e.g. completion_tokens=500); listed at the end of the output",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def _load(ref: str):
    from inoc.config import ConfigError, load_all, load_experiment

    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        try:
            return load_experiment(path), str(path)
        except ConfigError as exc:
            raise PlanUserError(str(exc)) from None
    catalog = load_all(settings.experiments_dir())
    if ref not in catalog.configs:
        bad = [e for e in catalog.errors if Path(e.problems[0].file).stem == ref]
        if bad:
            raise PlanUserError(f"experiment config {ref!r} is invalid:\n{bad[0]}")
        raise PlanUserError(
            f"no experiment {ref!r} in {settings.experiments_dir()} "
            f"(have: {', '.join(sorted(catalog.configs)) or 'none'})"
        )
    return catalog.configs[ref], str(catalog.paths[ref])


def _assumptions(pairs: list[str]):
    from inoc.cloud.estimate import Assumptions

    a = Assumptions()
    changes = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if not hasattr(a, name) or not value:
            raise PlanUserError(
                f"--assume {pair!r}: expected NAME=VALUE with NAME one of {', '.join(n for n, _, _ in a.describe())}"
            )
        kind = type(getattr(a, name))
        try:
            changes[name] = kind(value)
        except ValueError:
            raise PlanUserError(f"--assume {pair!r}: {value!r} is not a {kind.__name__}") from None
    return replace(a, **changes)


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        return _plan(args)
    except PlanUserError as exc:
        print(f"inoc plan: {exc}", file=sys.stderr)
        return 2


def _plan(args: argparse.Namespace) -> int:
    from inoc.cloud import budget, ledger
    from inoc.cloud.accelerators import AcceleratorError, parse_candidates
    from inoc.cloud.catalog_prices import PricingError, catalog_prices
    from inoc.cloud.estimate import PlanError, build_plan

    cfg, source = _load(args.experiment)
    select = [s.strip() for item in args.select for s in item.split(",") if s.strip()]
    clouds = [c.strip() for c in args.clouds.split(",") if c.strip()] or None
    try:
        candidates = parse_candidates(list(cfg.compute.accelerators))
        prices = catalog_prices(candidates, clouds)
        plan = build_plan(
            cfg,
            prices,
            select=select,
            assumptions=_assumptions(args.assume),
            measured_rows=ledger.measured_throughputs(),
        )
    except (AcceleratorError, PricingError, PlanError) as exc:
        raise PlanUserError(f"{source}: {exc}") from None
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1, default=str))
    else:
        print(render(plan, skipped=prices.skipped))
    from inoc.config.checks import config_warnings

    for warning in config_warnings(cfg, source):  # on stderr: the JSON on stdout stays parseable
        print(str(warning), file=sys.stderr)
    over = plan.total_usd > cfg.compute.max_budget_usd
    if args.confirm:
        budget.confirm(cfg, plan.total_usd)
        print(
            f"\nconfirmed: launches of {cfg.name} may spend up to ${plan.total_usd:,.2f} "
            f"(recorded in {ledger.cloud_dir() / 'budget_confirmations.json'})"
        )
        return 0
    if over and not budget.is_confirmed(cfg, plan.total_usd):
        try:
            budget.check_budget(cfg, plan.total_usd, source=source)
        except budget.BudgetExceeded as exc:
            print(f"\ninoc plan: {exc}", file=sys.stderr)
            return EXIT_OVER_BUDGET
    return 0


# ----------------------------------------------------------------------------------- output
def _n(x: float) -> str:
    if x >= 1e9:
        return f"{x / 1e9:.2f}B"
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def _usd(x: float | None) -> str:
    return "—" if x is None else f"${x:,.2f}"


def render(plan, skipped: dict[str, str] | None = None) -> str:
    from tabulate import tabulate

    from inoc.cloud.estimate import overhead_minutes

    od, sp = plan.on_demand, plan.spot
    lines = [
        f"inoc plan {plan.experiment}: {plan.model_id} (~{plan.params_b:g}B), candidates "
        + ", ".join(map(str, plan.candidates))
        + (f"; selection: {', '.join(plan.selection)}" if plan.selection else "")
    ]
    for label, offer in (("on-demand", od), ("spot", sp)):
        lines.append(
            f"  {label:9s}: "
            + (
                f"{offer.candidate} at ${offer.usd_per_hour:.2f}/h ({offer.cloud} "
                f"{offer.instance_type}, {offer.region}) — the cheapest candidate per hour"
                if offer
                else "no price in the catalogs read"
            )
        )
    if skipped:
        lines.append("  catalogs not read: " + "; ".join(f"{c} ({why[:60]})" for c, why in skipped.items()))
    rows = []
    for s in plan.stages:
        rows.append(
            [
                s.stage,
                s.jobs,
                s.jobs_per_job,
                _n(s.requests),
                _n(s.tokens_in),
                _n(s.tokens_out),
                f"{s.hours_on_demand:.2f}",
                _usd(s.hours_on_demand * od.usd_per_hour if od else None),
                f"{s.hours_spot:.2f}",
                _usd(s.hours_spot * sp.usd_per_hour if sp else None),
                s.note,
            ]
        )
    p = plan.packed
    rows.append(
        [
            "overhead (packed)",
            "",
            "",
            "",
            "",
            "",
            f"{p.overhead_hours:.2f}",
            _usd(p.overhead_hours * od.usd_per_hour if od else None),
            f"{p.overhead_hours:.2f}",
            _usd(p.overhead_hours * sp.usd_per_hour if sp else None),
            f"{p.cluster_starts} cluster start(s), {p.jobs} model load(s)",
        ]
    )
    rows.append(
        [
            "GPU total (packed)",
            p.jobs,
            plan.per_job.jobs,
            "",
            "",
            "",
            f"{p.hours_on_demand:.2f}",
            _usd(p.usd_on_demand),
            f"{p.hours_spot:.2f}",
            _usd(p.usd_spot),
            "",
        ]
    )
    lines.append("")
    lines.append(
        tabulate(
            rows,
            headers=[
                "stage",
                "jobs",
                "jobs (1/cluster)",
                "requests",
                "tokens in",
                "tokens out",
                "GPU-h",
                "$ on-demand",
                "GPU-h spot",
                "$ spot",
                "what",
            ],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    start, load = overhead_minutes(plan.assumptions, plan.params_b)
    lines.append("")
    lines.append(
        f"packing versus one cluster per job (a cluster start ≈ {start:.0f} min incl. download, "
        f"a model load ≈ {load:.1f} min):"
    )
    mrows = []
    for t, label in (
        (plan.packed, f"packed: ≤{plan.max_clusters} cluster(s), multi-LoRA eval"),
        (plan.per_job, "one cluster per job (as the original)"),
    ):
        mrows.append(
            [
                label,
                t.jobs,
                t.cluster_starts,
                f"{t.hours_on_demand:.1f}",
                _usd(t.usd_on_demand),
                f"{t.hours_spot:.1f}",
                _usd(t.usd_spot),
            ]
        )
    lines.append(
        tabulate(
            mrows,
            headers=["mode", "jobs", "cluster starts", "GPU-h", "$ on-demand", "GPU-h spot", "$ spot"],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    if plan.packed.usd_on_demand and plan.per_job.usd_on_demand:
        saved = plan.per_job.usd_on_demand - plan.packed.usd_on_demand
        lines.append(f"packing saves {_usd(saved)} on-demand ({100 * saved / plan.per_job.usd_on_demand:.0f}%)")
    if plan.api:
        lines.append("")
        lines.append("API calls (not GPU):")
        lines.append(
            tabulate(
                [[a.stage, a.model, _n(a.calls), _n(a.tokens_in), _n(a.tokens_out), _usd(a.usd)] for a in plan.api],
                headers=["stage", "model", "calls", "tokens in", "tokens out", "$"],
                tablefmt="github",
                disable_numparse=True,
            )
        )
    gpu = plan.gpu_usd("packed")
    kind = "spot" if plan.use_spot else "on-demand"
    verdict = "within budget" if plan.total_usd <= plan.max_budget_usd else "OVER BUDGET"
    lines.append("")
    lines.append(
        f"estimate: {_usd(gpu)} GPU ({kind}, packed) + {_usd(plan.api_usd)} API = "
        f"{_usd(plan.total_usd)}; compute.max_budget_usd {_usd(plan.max_budget_usd)}: {verdict}"
    )
    if plan.measured:
        lines.append("measured throughputs used: " + "; ".join(f"{k}: {v}" for k, v in plan.measured.items()))
    lines.append("")
    lines.append("assumptions (override with --assume NAME=VALUE):")
    for name, value, why in plan.assumptions.describe():
        lines.append(f"  {name} = {value:g}  — {why}" if isinstance(value, float) else f"  {name} = {value}  — {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inoc plan", description=__doc__.splitlines()[0])
    _arguments(parser)
    return cmd_plan(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
