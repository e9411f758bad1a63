"""The SkyPilot compute backend: run a gpu_job on a cloud GPU, as ``LocalGpuJobs`` runs it locally.

Usage inside an asset (same as the local backend, plus the experiment's compute settings)::

    result = gpu_jobs.run(context, "train", spec, base_dir=..., compute=cfg.compute, experiment=cfg.name)
    return result.materialize_result()

What ``run`` does (the logic lives in the Dagster-free ``inoc.cloud`` package; this is the thin shell):

* validates the spec in-process (``gpu_jobs.spec.parse_spec``; a bad spec fails the step at once);
* reuses finished local outputs of the same spec hash without launching anything;
* checks the experiment's estimate against ``compute.max_budget_usd`` (``inoc.cloud.budget``);
* stages the inputs in the artifact store bucket under ``<run id>/<asset>/inputs/``, renders
  ``sky/<job>.yaml`` for the experiment's accelerators, and launches it (``inoc.cloud.launcher``): a
  named cluster with autodown, shared by the experiment's jobs, or a managed job with spot recovery;
* streams the job's log lines into the Dagster run, waits, downloads ``outputs/`` and validates them
  against the spec hash (``gpu_jobs.io.validate_outputs``);
* returns a ``GpuJobResult`` whose metadata adds the GPU, cloud, cluster, wall time and estimated cost.

On failure, cancellation (terminate from the UI) or a timeout, the launcher cancels the job and tears
down the clusters this run launched (``on_failure``), or leaves their autodown armed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from dagster import AssetExecutionContext, ConfigurableResource, Failure, MetadataValue, OpExecutionContext
from pydantic import BaseModel, Field

from gpu_jobs import JOBS
from gpu_jobs import io as job_io
from gpu_jobs.runner import summary_metadata
from gpu_jobs.spec import SpecError, parse_spec, spec_hash
from inoc import settings
from inoc.artifacts import ArtifactStore
from inoc.cloud import budget, ledger, staging
from inoc.cloud.accelerators import AcceleratorError, model_params_b
from inoc.cloud.launcher import JobFailed, JobRequest, Launcher, LaunchPolicy
from inoc.cloud.sky_sdk import RealSky, SkySdk
from inoc.cloud.task_render import ComputeSettings, RenderError, check_bucket, render_task
from inoc.config.schema import ComputeConfig
from inoc_assets.backends.local import GpuJobResult

#: Where the SkyPilot client comes from; tests replace it with a fake of the same shape.
sdk_factory: Callable[[], SkySdk] = RealSky
#: The marker metadata field that is each job's throughput (tokens/s), for ``inoc plan``'s calibration.
THROUGHPUT_FIELD = {"train": "trained_tokens_per_s", "generate": "tokens_per_s", "score": "tokens_per_s"}


class SkyPilotGpuJobs(ConfigurableResource):
    """Runs gpu_jobs (train / generate / score) on cloud GPUs through SkyPilot."""

    mode: Literal["cluster", "managed"] = Field(
        "cluster",
        description="cluster: named clusters with autodown, shared through the job queue; "
        "managed: SkyPilot managed jobs (spot preemptions recovered by the jobs controller)",
    )
    on_failure: Literal["down", "autostop"] = Field(
        "down",
        description="a cluster this run launched, when its job fails or is cancelled: tear it down, or "
        "leave it to its autodown (to inspect it)",
    )
    down_on_success: bool = Field(False, description="tear down after success instead of keeping it for the next job")
    launch_attempts: int = Field(3, gt=0, description="tries for provisioning (no capacity) and spot preemptions")
    retry_wait_s: float = Field(60.0, ge=0)
    job_timeout_hours: float = Field(12.0, gt=0, description="a job is killed past this, on the cluster and here")
    poll_interval_s: float = Field(15.0, gt=0)
    cluster_prefix: str = Field("inoc", description="cluster names: <prefix>-<experiment>-<n>")
    artifact_root: str = Field("", description="the bucket (default: INOC_ARTIFACT_ROOT)")
    require_bucket: bool = Field(True, description="refuse a local artifact root (a cluster cannot reach it)")
    secret_names: list[str] = Field(
        default_factory=lambda: ["HF_TOKEN", "OPENAI_API_KEY"],
        description="forwarded as SkyPilot secrets when set in this environment",
    )
    enforce_budget: bool = Field(True, description="refuse launches above compute.max_budget_usd unless confirmed")
    template_dir: str = Field("", description="folder of the task templates (default: sky/ of the checkout)")

    def run(
        self,
        context: AssetExecutionContext | OpExecutionContext,
        job: str,
        spec: Mapping[str, Any] | BaseModel,
        *,
        base_dir: str | Path | None = None,
        compute: ComputeConfig | None = None,
        experiment: str = "",
    ) -> GpuJobResult:
        if job not in JOBS:
            raise Failure(f"unknown gpu job {job!r}; known: {', '.join(JOBS)}")
        data = spec.model_dump(mode="json") if isinstance(spec, BaseModel) else dict(spec)
        try:
            parsed = parse_spec(job, data, base_dir=Path(base_dir or os.getcwd()).resolve())
        except SpecError as err:
            raise Failure(
                description=f"gpu_jobs.{job}: {err}", metadata={"problems": MetadataValue.json(err.problems)}
            ) from None
        out = parsed.out
        expected = spec_hash(parsed)
        done = job_io.read_complete(out, expected)
        if done is not None and not job_io.validate_outputs(out, job, expected):
            context.log.info(f"[sky] {out} already holds this spec's outputs: no launch")
            return self._result(job, out, done, reused=True, cloud_md={"cloud_launch": False})

        compute = compute or ComputeConfig(backend="skypilot")
        if self.enforce_budget and experiment:
            self._check_budget(context, experiment)
        root = self.artifact_root or settings.artifact_root()
        try:
            if self.require_bucket:
                check_bucket(root)
        except RenderError as err:
            raise Failure(description=str(err)) from None
        store = ArtifactStore(root)
        prefix = staging.job_prefix(context.run.run_id, self._asset_label(context, out))
        previous = staging.read_result(store, prefix)
        if not (previous and previous.get("status") == "succeeded" and previous.get("spec_hash") == expected):
            if previous is not None:  # a failed earlier attempt of this step: its result must not be read as ours
                store.fs.rm(store.url(prefix, staging.RESULT))
            try:
                staging.stage_inputs(store, prefix, job, parsed, run_id=context.run.run_id, asset=prefix)
                task = render_task(
                    job,
                    compute=ComputeSettings.of(compute),
                    model_id=parsed.model.id,
                    artifact_root=root,
                    prefix=prefix,
                    mode=self.mode,
                    job_timeout_s=int(self.job_timeout_hours * 3600),
                    name=f"inoc-{job}",
                    secret_names=tuple(self.secret_names),
                    template_dir=Path(self.template_dir) if self.template_dir else None,
                )
            except (staging.StagingError, RenderError, AcceleratorError) as err:
                raise Failure(description=f"gpu_jobs.{job}: {err}") from None
            out.mkdir(parents=True, exist_ok=True)
            (out / "sky_task.yaml").write_text(task.to_yaml())  # secrets by name only (see task_render)
            outcome = self._launch(context, task, compute, experiment or "default", job, prefix)
        else:
            context.log.info(f"[sky] {store.url(prefix)} already holds this spec's outputs (an earlier attempt)")
            outcome = None

        result = staging.read_result(store, prefix) or {}
        try:
            staging.fetch_outputs(store, prefix, out)
        except staging.StagingError as err:
            raise Failure(
                description=f"gpu_jobs.{job}: the job ended SUCCEEDED but {err}",
                metadata={"result": MetadataValue.json(result)},
            ) from None
        problems = job_io.validate_outputs(out, job, expected)
        if problems:
            raise Failure(
                description=(
                    f"gpu_jobs.{job} succeeded on the cluster but the outputs fetched into {out} "
                    "are missing or malformed:\n  " + "\n  ".join(problems[:20])
                ),
                metadata={"problems": MetadataValue.json(problems)},
            )
        marker = job_io.read_marker(out)
        assert marker is not None  # validate_outputs checked it
        cloud_md = self._cloud_metadata(outcome, result, store.url(prefix))
        self._record_throughput(job, parsed.model.id, marker, outcome)
        return self._result(
            job, out, marker, reused=outcome is None, cloud_md=cloud_md, log_tail=outcome.log_tail if outcome else []
        )

    # ---------------------------------------------------------------------------- helpers
    def _launch(self, context: Any, task: Any, compute: ComputeConfig, experiment: str, job: str, prefix: str):
        policy = LaunchPolicy(
            mode=self.mode,
            idle_minutes_to_autostop=compute.idle_minutes_to_autostop,
            max_clusters=compute.max_clusters,
            on_failure=self.on_failure,
            down_on_success=self.down_on_success,
            launch_attempts=self.launch_attempts,
            retry_wait_s=self.retry_wait_s,
            job_timeout_s=self.job_timeout_hours * 3600 + 3600,
            poll_interval_s=self.poll_interval_s,
            cluster_prefix=self.cluster_prefix,
        )

        def log(level: str, message: str) -> None:
            getattr(context.log, level if level in ("debug", "info", "warning", "error") else "info")(message)

        launcher = Launcher(sdk_factory(), policy, log)
        request = JobRequest(task=task, experiment=experiment, owner=context.run.run_id, name=f"{job} {prefix}")
        try:
            return launcher.run(request)
        except JobFailed as err:
            o = err.outcome
            store_tail = ""
            remote = staging.read_result(ArtifactStore(task.envs["INOC_ARTIFACT_ROOT"]), prefix) or {}
            if remote.get("log_tail"):
                store_tail = "\n".join(remote["log_tail"][-20:])
            tail = store_tail or "\n".join(o.log_tail[-20:])
            raise Failure(
                description=f"{err} [{err.kind}]. Clusters: {'; '.join(o.actions) or 'none launched'}. "
                f"Last output lines:\n{tail}",
                metadata={
                    "failure": err.kind,
                    "status": o.status,
                    "cluster": o.cluster or "",
                    "actions": MetadataValue.json(o.actions),
                    "attempts": o.attempts,
                    "exit_code": remote.get("exit_code", -1),
                },
            ) from None

    def _check_budget(self, context: Any, experiment: str) -> None:
        from inoc.cloud.catalog_prices import PricingError, catalog_prices
        from inoc.cloud.estimate import build_plan
        from inoc.config import load_all

        catalog = load_all(settings.experiments_dir())
        cfg = catalog.configs.get(experiment)
        if cfg is None:  # an unpriceable launch is refused, not waved through
            errors = "\n".join(str(e) for e in catalog.errors if experiment in str(e))
            raise Failure(
                description=f"{experiment}: no valid experiment config in {settings.experiments_dir()} to "
                f"check the budget against{':' + chr(10) + errors if errors else ''}"
            )
        tags = getattr(getattr(context, "run", None), "tags", None) or {}
        try:
            from inoc.cloud.accelerators import parse_candidates

            prices = catalog_prices(parse_candidates(list(cfg.compute.accelerators)))
            estimate = build_plan(cfg, prices, measured_rows=ledger.measured_throughputs()).total_usd
            budget.check_budget(
                cfg,
                estimate,
                confirmed=budget.tag_confirms(tags, experiment),
                source=str(catalog.paths.get(experiment, "")),
            )
        except budget.BudgetExceeded as err:
            raise Failure(description=str(err)) from None
        except (PricingError, AcceleratorError) as err:
            raise Failure(
                description=f"{experiment}: cannot price the experiment to check its budget ({err}); "
                "set enforce_budget=False on the resource to launch anyway"
            ) from None

    @staticmethod
    def _asset_label(context: Any, out: Path) -> str:
        """``<asset key>[/<partition>]/<output folder>-<hash>``: one bucket folder per gpu_job of a step."""
        try:
            name = context.asset_key.to_user_string()
        except Exception:  # noqa: BLE001 — an op, or a multi-asset: the step's name
            name = getattr(getattr(context, "op", None), "name", "gpu_job")
        parts = [name]
        if getattr(context, "has_partition_key", False):
            parts.append(str(context.partition_key))
        parts.append(f"{out.name}-{hashlib.sha256(str(out).encode()).hexdigest()[:8]}")
        return "/".join(parts)

    @staticmethod
    def _cloud_metadata(outcome: Any, result: dict, url: str) -> dict[str, Any]:
        md: dict[str, Any] = {
            "cloud_launch": outcome is not None,
            "cloud_prefix": url,
            "cloud_gpu": str(result.get("gpu", "")),
            "cloud_job_wall_s": result.get("wall_s"),
        }
        if outcome is None:
            return md
        w = outcome.where
        hourly = w.hourly_usd if w is not None else None
        md.update(
            {
                "cloud_mode": outcome.mode,
                "cloud_cluster": outcome.cluster or "",
                "cloud_job_id": outcome.job_id,
                "cloud_accelerator": (
                    f"{w.accelerator}:{w.accelerator_count:g}"
                    if w and w.accelerator and w.accelerator_count
                    else (w.accelerator if w else None)
                ),
                "cloud": w.cloud if w else None,
                "cloud_region": w.region if w else None,
                "cloud_instance_type": w.instance_type if w else None,
                "cloud_spot": w.use_spot if w else None,
                "cloud_launched_cluster": outcome.launched_cluster,
                "cloud_attempts": outcome.attempts,
                "cloud_preemptions": outcome.preemptions,
                "cloud_wall_s": round(outcome.wall_s, 1),
                "cloud_usd_per_hour": hourly,
                # the job's share of the cluster: its wall time (launch included when it launched the cluster)
                "cloud_est_cost_usd": round(hourly * outcome.wall_s / 3600.0, 4) if hourly is not None else None,
                "cloud_actions": MetadataValue.json(outcome.actions),
            }
        )
        return {k: v for k, v in md.items() if v is not None}

    @staticmethod
    def _record_throughput(job: str, model_id: str, marker: job_io.Marker, outcome: Any) -> None:
        tps = marker.metadata.get(THROUGHPUT_FIELD[job])
        w = getattr(outcome, "where", None)
        params = model_params_b(model_id)
        if outcome is None or not tps or w is None or not w.accelerator or params is None:
            return
        ledger.record_throughput(
            {
                "job": job,
                "accelerator": w.accelerator,
                "accelerator_count": w.accelerator_count or 1,
                "params_b": params,
                "model": model_id,
                "tokens_per_s": tps,
                "at": time.time(),
            }
        )

    @staticmethod
    def _result(
        job: str,
        out: Path,
        marker: job_io.Marker,
        *,
        reused: bool,
        cloud_md: dict[str, Any],
        log_tail: list[str] | None = None,
    ) -> GpuJobResult:
        reported = summary_metadata(marker, reused, str(out))
        reported.update(cloud_md)
        return GpuJobResult(
            job=job,
            output_dir=out,
            spec_hash=marker.spec_hash,
            reused=reused,
            outputs=marker.outputs,
            marker_metadata=marker.metadata,
            reported_metadata={k: _md(v) for k, v in reported.items()},
            log_tail=log_tail or [],
        )


def _md(v: Any) -> Any:
    """Dagster metadata values: containers as JSON."""
    return MetadataValue.json(v) if isinstance(v, (dict, list)) else v
