"""The ``sky/<job>.yaml`` templates rendered into the task config of one job.

``render_task(job, …)`` returns a ``RenderedTask``: the config dict handed to
``sky.Task.from_yaml_config`` (secrets appear in it by name only, with null values), the per-job
environment (passed as ``env_overrides`` at construction, because SkyPilot substitutes env vars into
bucket sources when the Task is built), and the secrets' values, kept apart so that nothing that is
written to disk, logged or attached as metadata can hold them. (``Task.to_yaml_config()`` prints secrets
in plain text: never log it.)
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from inoc.cloud.accelerators import Candidate, check_fit, disk_size_gb, model_params_b, parse_candidates

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = REPO_ROOT / "sky"
JOB_KINDS = ("train", "generate", "score")
#: Secrets forwarded from the orchestrator's environment when set there.
DEFAULT_SECRETS = ("HF_TOKEN", "OPENAI_API_KEY")
#: Bucket URL schemes SkyPilot can mount (file_mounts ``source``).
BUCKET_SCHEMES = ("s3://", "gs://", "r2://", "cos://", "oci://", "https://")
STORE_MOUNT = "/inoc-store"


class RenderError(ValueError):
    """A template or a compute setting cannot make a valid task (the message names the file/field)."""


@dataclass(frozen=True)
class ComputeSettings:
    """The ``compute:`` fields a task needs (``inoc.config.schema.ComputeConfig`` has them)."""

    accelerators: tuple[str, ...] = ("L40S:1", "A100:1", "A100-80GB:1")
    use_spot: bool = False
    idle_minutes_to_autostop: int = 10

    @classmethod
    def of(cls, compute: Any | None) -> "ComputeSettings":
        if compute is None:
            return cls()
        return cls(
            accelerators=tuple(compute.accelerators),
            use_spot=bool(compute.use_spot),
            idle_minutes_to_autostop=int(compute.idle_minutes_to_autostop),
        )


@dataclass
class RenderedTask:
    job: str
    config: dict[str, Any]
    envs: dict[str, str]
    #: name → value; never written, logged or attached (see the module docstring)
    secrets: dict[str, str] = field(repr=False)
    candidates: list[Candidate] = field(default_factory=list)

    def env_overrides(self) -> list[tuple[str, str]]:
        return sorted(self.envs.items())

    def secrets_overrides(self) -> list[tuple[str, str]]:
        return sorted(self.secrets.items())

    def to_yaml(self) -> str:
        """The task as a YAML file could hold it: envs filled in, secrets by name only (values null)."""
        cfg = copy.deepcopy(self.config)
        cfg["envs"] = {**cfg.get("envs", {}), **self.envs}
        return yaml.safe_dump(cfg, sort_keys=False)


def load_template(job: str, template_dir: Path | None = None) -> dict[str, Any]:
    if job not in JOB_KINDS:
        raise RenderError(f"unknown gpu job {job!r}; known: {', '.join(JOB_KINDS)}")
    path = (template_dir or TEMPLATE_DIR) / f"{job}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise RenderError(f"{path}: cannot read the template ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise RenderError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict) or "run" not in data or "resources" not in data:
        raise RenderError(f"{path}: a task template needs `resources` and `run`")
    return data


def check_bucket(root: str, field: str = "INOC_ARTIFACT_ROOT") -> None:
    if not root.startswith(BUCKET_SCHEMES):
        raise RenderError(
            f"{field}={root!r} is not a bucket URL: a cloud job moves its files through the "
            f"artifact store, so set it to e.g. s3://my-bucket/inoc (schemes: {', '.join(BUCKET_SCHEMES)})"
        )


def render_task(
    job: str,
    *,
    compute: ComputeSettings,
    model_id: str,
    artifact_root: str,
    prefix: str,
    mode: Literal["cluster", "managed"] = "cluster",
    job_timeout_s: int | None = None,
    name: str | None = None,
    secrets_from: Mapping[str, str] | None = None,
    secret_names: tuple[str, ...] = DEFAULT_SECRETS,
    max_restarts_on_errors: int = 0,
    template_dir: Path | None = None,
    workdir: Path = REPO_ROOT,
) -> RenderedTask:
    """The task of one job. ``secrets_from`` defaults to ``os.environ``; only set names are forwarded."""
    cfg = load_template(job, template_dir)
    candidates = parse_candidates(list(compute.accelerators))
    params_b = model_params_b(model_id)
    if params_b is not None:
        check_fit(candidates, params_b, model_id)
    res = dict(cfg.get("resources") or {})
    res.pop("any_of", None)
    res["accelerators"] = {c.name: c.count for c in candidates}
    res["use_spot"] = compute.use_spot
    res["disk_size"] = max(int(res.get("disk_size") or 0), disk_size_gb(params_b if params_b is not None else 8.0))
    res["autostop"] = {"idle_minutes": compute.idle_minutes_to_autostop, "down": True}
    if mode == "managed":
        # managed jobs recover from preemption themselves; their clusters are the controller's to end
        res.pop("autostop", None)
        res["job_recovery"] = {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": max_restarts_on_errors}
    cfg["resources"] = res
    cfg["workdir"] = str(workdir)
    if name:
        cfg["name"] = name
    template_envs = {str(k): "" if v is None else str(v) for k, v in (cfg.get("envs") or {}).items()}
    cfg["envs"] = template_envs
    envs = {"INOC_ARTIFACT_ROOT": artifact_root, "INOC_JOB_PREFIX": prefix}
    if job_timeout_s:
        envs["INOC_JOB_TIMEOUT_S"] = str(int(job_timeout_s))
    # secrets: names stay in the config (null), values go to SkyPilot in memory; unset ones are dropped
    # (a null secret left in the config would be a managed-secret reference SkyPilot must resolve)
    source = os.environ if secrets_from is None else secrets_from
    declared = dict.fromkeys([*map(str, cfg.get("secrets") or {}), *secret_names])
    values = {n: source[n] for n in declared if source.get(n)}
    cfg["secrets"] = {n: None for n in values}
    if not cfg["secrets"]:
        cfg.pop("secrets")
    return RenderedTask(job=job, config=cfg, envs=envs, secrets=values, candidates=candidates)


def run_command(job: str, template_dir: Path | None = None) -> str:
    """The template's ``run`` script, exactly as a cluster executes it."""
    return str(load_template(job, template_dir)["run"])


def redact(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret value replaced by ``<NAME>`` (for lines streamed from a cluster)."""
    for name, value in secrets.items():
        if value:
            text = text.replace(value, f"<{name}>")
    return re.sub(r"sk-[A-Za-z0-9_-]{20,}", "<redacted>", text)
