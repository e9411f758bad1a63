"""``inoc rehearse EXPERIMENT``: run a real study's own asset graph on this machine before renting a GPU.

What runs is the study's config with these substitutions (each printed): the model becomes a locally
built stand-in of its chat-template family; every API model becomes one OpenAI-compatible server on
127.0.0.1 (``standin_api``); sizes shrink (examples, eval instructions, pools, logprob sample, steps,
tokens); the prompts become one per group with every prefix type kept; compute is local. Every group,
prefix type, run kind (control, extra controls, close seeds, learning-rate batches), eval set and
condition, the checkpoint kind and the inoculation position stay as configured, and the data files
are the real ones.

Before anything runs, the config is validated and every file it names is checked (``preflight``);
afterwards each GPU job the real run would launch has its SkyPilot task rendered and validated, and
``inoc plan``'s estimate is printed for the real sizes. Results go to the rehearsal's own home
(``--home``, default ``./.inoc-rehearsal/<experiment>``, emptied first), never to INOC_HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inoc import settings
from inoc.config import ConfigError, load_experiment
from inoc.config.load import resolved_mapping
from inoc.rehearsal.derive import RehearsalConfigError, Substitution, rehearsal_config, rehearsal_prompts
from inoc.rehearsal.preflight import preflight
from inoc.rehearsal.standin_api import start_standin_api

#: The API key the rehearsal's clients send to the stand-in server (the user's real key is never used).
STANDIN_KEY = "rehearsal-local-no-key"
#: Settings that would point the rehearsal at the real home; the worker gets its own.
_HOME_VARS = (
    "INOC_HOME",
    "DAGSTER_HOME",
    "INOC_EXPERIMENTS_DIR",
    "INOC_WORK_DIR",
    "INOC_JUDGE_CACHE",
    "INOC_ARTIFACT_ROOT",
    "INOC_DOWNLOAD_CACHE",
)


class RehearsalError(Exception):
    """The study cannot be rehearsed; the message names the file and field to fix."""


@dataclass
class Rehearsal:
    experiment: str
    home: Path
    substitutions: list[Substitution] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    api_requests: dict[str, int] = field(default_factory=dict)
    sky_tasks: list[dict[str, Any]] = field(default_factory=list)
    plan_text: str = ""
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.report.get("error") is None and all(
            a["materialized"] == a["expected"] for a in self.report.get("assets", [])
        )


def default_home(experiment: str) -> Path:
    base = os.environ.get("INOC_REHEARSAL_HOME")
    return (Path(base) if base else Path.cwd() / ".inoc-rehearsal").resolve() / experiment


def _say(msg: str) -> None:
    print(f"[rehearse] {msg}", flush=True)


def load_study(experiment: str, experiments_dir: Path | None = None):
    """The study's config, validated, and its file; errors name file, line and field."""
    directory = experiments_dir or settings.experiments_dir()
    path = directory / f"{experiment}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("_"))
        raise RehearsalError(f"no experiment {experiment!r} in {directory} (known: {', '.join(known)})")
    try:
        return load_experiment(path), path
    except ConfigError as exc:
        raise RehearsalError(str(exc)) from None


def rehearse(
    experiment: str, home: Path | None = None, experiments_dir: Path | None = None, timeout_s: float = 3600
) -> Rehearsal:
    started = time.time()
    cfg, path = load_study(experiment, experiments_dir)
    home = (home or default_home(experiment)).resolve()
    real_home = settings.inoc_home()
    if home == real_home or real_home in home.parents or home in real_home.parents:
        raise RehearsalError(f"--home {home} overlaps INOC_HOME {real_home}; a rehearsal keeps its results apart")
    try:
        problems = preflight(cfg, path, rehearsal_prompts(cfg))
    except RehearsalConfigError as exc:
        raise RehearsalError(f"{path}: {exc}") from None
    if problems:
        raise RehearsalError("\n".join(str(p) for p in problems))
    shared = settings.shared_dir()
    server, responder = start_standin_api()
    try:
        try:
            data, subs = rehearsal_config(resolved_mapping(path), cfg, server.base_url, str(shared) if shared else None)
        except RehearsalConfigError as exc:
            raise RehearsalError(f"{path}: {exc}") from None
        if home.exists():
            shutil.rmtree(home)
        (home / "experiments").mkdir(parents=True)
        rehearsal_file = home / "experiments" / f"{experiment}.yaml"
        header = f"# The rehearsal of {path} (written by `inoc rehearse`; substitutions in report.json)\n"
        rehearsal_file.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        try:
            load_experiment(rehearsal_file)
        except ConfigError as exc:
            raise RehearsalError(f"the rehearsal config derived from {path} is invalid:\n{exc}") from None
        result = Rehearsal(experiment, home, subs)
        _say(f"{experiment}: {len(subs)} substitutions; home {home}; API stand-in at {server.base_url}")
        for s in subs:
            _say(f"  {s}")
        env = {k: v for k, v in os.environ.items() if k not in _HOME_VARS}
        env.update(
            INOC_HOME=str(home),
            DAGSTER_HOME=str(home / "dagster"),
            INOC_EXPERIMENTS_DIR=str(home / "experiments"),
            OPENAI_API_KEY=STANDIN_KEY,
        )
        if shared:
            env["INOC_SHARED_DIR"] = str(shared)
        report_path = home / "report.json"
        proc = subprocess.run(
            [sys.executable, "-m", "inoc_assets.rehearsal_worker", experiment, str(report_path)],
            env=env,
            timeout=timeout_s,
            check=False,
        )
        if not report_path.is_file():
            raise RehearsalError(
                f"{experiment}: the rehearsal's pipeline process exited {proc.returncode} without "
                "a report; its output is above"
            )
        result.report = json.loads(report_path.read_text())
    finally:
        server.stop()
    result.api_requests = dict(sorted(responder.counts.items()))
    result.sky_tasks = render_sky_tasks(cfg)
    result.plan_text = plan_text(cfg)
    result.wall_s = time.time() - started
    report = {
        **result.report,
        "substitutions": [s.__dict__ for s in subs],
        "api_requests": result.api_requests,
        "sky_tasks": result.sky_tasks,
        "plan": result.plan_text,
        "total_wall_s": round(result.wall_s, 1),
    }
    report_path.write_text(json.dumps(report, indent=1, default=str))
    return result


# ----------------------------------------------------------------------------------- cloud side
def render_sky_tasks(cfg) -> list[dict[str, Any]]:
    """Each GPU job kind of the real study rendered from sky/<job>.yaml and built into a ``sky.Task``
    (resources checked against SkyPilot's catalog where it can be read)."""
    from inoc.cloud.task_render import JOB_KINDS, ComputeSettings, RenderError, render_task

    root = os.environ.get("INOC_ARTIFACT_ROOT", "")
    bucket = root if "://" in root else "s3://your-bucket/inoc"
    out = []
    for job in JOB_KINDS:
        row: dict[str, Any] = {"job": job, "bucket": bucket}
        try:
            model_id = (cfg.model.train_id or cfg.model.id) if job == "train" else cfg.model.id
            task = render_task(
                job,
                compute=ComputeSettings.of(cfg.compute),
                model_id=model_id,
                artifact_root=bucket,
                prefix=f"rehearsal/{cfg.name}",
                secrets_from={},
            )
            row.update(
                accelerators=sorted(task.config["resources"]["accelerators"]),
                disk_gb=task.config["resources"]["disk_size"],
                spot=task.config["resources"]["use_spot"],
            )
        except RenderError as exc:
            out.append({**row, "status": "error", "detail": str(exc)})
            continue
        try:
            import sky

            built = sky.Task.from_yaml_config(task.config, env_overrides=task.env_overrides())
            row["status"] = "valid"
            try:
                for res in built.resources:
                    res.validate()
                row["resources"] = "checked against the catalog"
            except Exception as exc:  # noqa: BLE001 — offline: the catalog cannot be downloaded
                row["resources"] = f"resources not checked: {_why_no_catalog(exc)}"
        except ImportError:
            row["status"] = "rendered (SkyPilot client not installed: `make setup` installs it)"
        except Exception as exc:  # noqa: BLE001 — a template SkyPilot rejects
            row.update(status="error", detail=f"{type(exc).__name__}: {exc}")
        out.append(row)
    return out


def plan_text(cfg) -> str:
    """``inoc plan``'s table for the real study: tokens and GPU-hours, and dollars when the catalog is readable."""
    from inoc.cloud.estimate import PlanError, build_plan
    from inoc.cloud.plan_command import render

    prices, note = None, ""
    try:
        from inoc.cloud.accelerators import parse_candidates
        from inoc.cloud.catalog_prices import catalog_prices

        prices = catalog_prices(parse_candidates(list(cfg.compute.accelerators)), None)
    except Exception as exc:  # noqa: BLE001 — offline; the estimate still has tokens and hours
        prices, note = None, f"(no dollars: {_why_no_catalog(exc)}; tokens and GPU-hours only)\n"
    try:
        return note + render(build_plan(cfg, prices))
    except PlanError as exc:
        return f"inoc plan: {exc}"


def _why_no_catalog(exc: Exception) -> str:
    text = str(exc)
    if "ConnectionError" in text or "Max retries" in text or "internet" in text:
        return "SkyPilot's accelerator catalog could not be downloaded here (offline)"
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


# ----------------------------------------------------------------------------------- report
def format_report(r: Rehearsal) -> str:
    from tabulate import tabulate

    rep = r.report
    lines = [f"\n== rehearsal of {r.experiment} ({r.wall_s:.0f} s; results in {r.home}) =="]
    stages = [
        [s["stage"], s["wall_s"], ", ".join(f"{t} {n:+d}" for t, n in s["rows"].items()) or "—"]
        for s in rep.get("stages", [])
    ]
    lines.append(tabulate(stages, headers=["stage", "wall s", "warehouse rows written"], tablefmt="github"))
    assets = [
        [
            a["asset"],
            a["stage"],
            f"{a['materialized']}/{a['expected']}",
            "ok" if a["materialized"] == a["expected"] else "NOT MATERIALIZED",
        ]
        for a in rep.get("assets", [])
    ]
    lines.append("")
    lines.append(tabulate(assets, headers=["asset", "stage", "partitions", ""], tablefmt="github"))
    lines.append("\nAPI stand-in requests: " + (", ".join(f"{k} {n}" for k, n in r.api_requests.items()) or "none"))
    lines.append("\nSkyPilot tasks of the real study:")
    for t in r.sky_tasks:
        lines.append(
            f"  {t['job']}: {t.get('status')}; {', '.join(t.get('accelerators', []))}; disk "
            f"{t.get('disk_gb')} GB; {t.get('resources', t.get('detail', ''))}"
        )
    lines.append(f"\ninoc plan {r.experiment} (the real sizes):\n{r.plan_text}")
    if rep.get("error"):
        lines.append(f"\nFAILED: {rep['error']}")
    else:
        missing = [a["asset"] for a in rep.get("assets", []) if a["materialized"] != a["expected"]]
        lines.append(
            f"\n{'FAILED: not materialized: ' + ', '.join(missing) if missing else 'rehearsal passed'}: "
            f"{sum(a['materialized'] == a['expected'] for a in rep.get('assets', []))} of "
            f"{len(rep.get('assets', []))} assets of {r.experiment} materialized"
        )
    return "\n".join(lines)
