"""`<experiment>/base_model`: the study model. For ``toy:<profile>`` it builds the model organism (cached by a
hash of its settings); for a hub model it records what the GPU jobs will load."""

import time
from pathlib import Path

import dagster as dg

from inoc.config import load_experiment
from inoc_assets.plumbing import key
from inoc_assets.stages import SETUP, stage_tag


def base_model_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    @dg.asset(
        key=key(experiment, "base_model"),
        group_name=experiment,
        tags=stage_tag(SETUP),
        deps=[key(experiment, "experiment")],
        kinds={"pytorch"},
        description="The study model. For `toy:<profile>` this builds the model organism (corpus → BPE tokenizer "
        "→ tiny Qwen2 trained from random init, saved with save_pretrained), cached by a hash of its settings.",
    )
    def base_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        cfg = load_experiment(config_path)
        mid = cfg.model.id
        if not mid.startswith("toy:"):
            return dg.MaterializeResult(
                metadata={
                    "model": mid,
                    "revision": cfg.model.revision or "main",
                    "note": "loaded by the GPU jobs from the hub",
                }
            )
        from inoc.organism.build import build_base_model

        last = [0.0]

        def progress(ev) -> None:
            if ev.stage != "train" or ev.done == ev.total or time.time() - last[0] > 10:
                last[0] = time.time()
                loss = f" loss {ev.loss:.3f}" if ev.loss is not None else ""
                context.log.info(f"organism build: {ev.stage} {ev.done}/{ev.total}{loss} ({ev.elapsed_s:.0f} s)")

        try:
            built = build_base_model(mid.split(":", 1)[1] or "default", progress=progress)
        except ValueError as exc:
            raise dg.Failure(description=f"{config_path}: model.id {mid!r}: {exc}") from None
        m = built.manifest
        return dg.MaterializeResult(
            metadata={
                "model": mid,
                "path": dg.MetadataValue.path(str(built.path)),
                "settings_hash": built.settings_hash,
                "cached": built.cached,
                "n_parameters": m.get("model", {}).get("n_parameters"),
                "final_loss": m.get("train", {}).get("final_loss"),
                "build_wall_s": round(sum(m.get("timing", {}).values()), 1),
            }
        )

    return base_model
