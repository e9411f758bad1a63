"""`<experiment>/instructions` and `<experiment>/eval_instructions` (one multi-asset): disjoint train and
held-out eval instructions, and the extra eval sets, from the configured source → ``data/*.jsonl``."""

from pathlib import Path

import dagster as dg

from inoc.config import load_experiment
from inoc.pipeline.instructions import InstructionError, load_eval_set, split_instructions, training_split_as_is
from inoc_assets.plumbing import data_path, key, write_jsonl
from inoc_assets.stages import SETUP, stage_tag


def instructions_asset(experiment: str, config_path: Path) -> dg.AssetsDefinition:
    train_key, eval_key = key(experiment, "instructions"), key(experiment, "eval_instructions")

    @dg.multi_asset(
        name=f"{experiment}__instructions",
        specs=[
            dg.AssetSpec(
                train_key,
                group_name=experiment,
                deps=[key(experiment, "experiment")],
                kinds={"json"},
                tags=stage_tag(SETUP),
                description="Training instructions (data.n_train) from the configured source → data/train_instructions.jsonl.",
            ),
            dg.AssetSpec(
                eval_key,
                group_name=experiment,
                deps=[key(experiment, "experiment")],
                kinds={"json"},
                tags=stage_tag(SETUP),
                description="Held-out eval instructions (data.n_eval, disjoint from training; none with "
                "data.split as_is) and the extra eval sets → data/eval_instructions.jsonl, "
                "data/eval_set_<name>.jsonl.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                "disjoint_and_complete",
                asset=eval_key,
                description="n_train training instructions (distinct with split shuffle; rows "
                "as they are with split as_is), n_eval distinct held-out ones (none with as_is), "
                "and no instruction of any eval set appears in the training instructions.",
            )
        ],
    )
    def instructions(context: dg.AssetExecutionContext):
        cfg = load_experiment(config_path)
        d = cfg.data
        try:
            if d.split == "as_is":  # the file is the training split: every row as it is, nothing held out
                train, evals = training_split_as_is(d.instructions, d.n_train), []
            else:
                train, evals = split_instructions(d.instructions, d.n_train, d.n_eval, d.seed, log=context.log.info)
        except InstructionError as exc:
            raise dg.Failure(description=f"{config_path}: data.instructions: {exc}") from None
        try:
            extra = {s.name: load_eval_set(s.instructions, s.n) for s in d.eval_sets}
        except InstructionError as exc:
            raise dg.Failure(description=f"{config_path}: data.eval_sets: {exc}") from None
        write_jsonl(data_path(experiment, "train_instructions.jsonl"), ({"instruction": x} for x in train))
        if d.split == "shuffle":
            write_jsonl(data_path(experiment, "eval_instructions.jsonl"), ({"instruction": x} for x in evals))
        for name, rows in extra.items():
            write_jsonl(data_path(experiment, f"eval_set_{name}.jsonl"), ({"instruction": x} for x in rows))
        context.log.info(
            f"{len(train)} train and {len(evals)} eval instructions from {d.instructions.source} "
            f"(split {d.split}); eval sets {', '.join(f'{k} {len(v)}' for k, v in extra.items()) or 'none'}"
        )
        yield dg.MaterializeResult(
            asset_key=train_key,
            metadata={
                "n": len(train),
                "n_distinct": len(set(train)),
                "split": d.split,
                "source": d.instructions.source,
                "example": train[0],
            },
        )
        yield dg.MaterializeResult(
            asset_key=eval_key,
            metadata={
                "n": len(evals),
                **{f"n_{k}": len(v) for k, v in extra.items()},
                "held_out_set": d.held_out_set,
                "example": (evals or [*extra.values()][0])[0],
            },
        )
        # Complete: shuffle takes n_train and n_eval distinct instructions; as_is n_train rows, duplicates kept.
        # InstructionWild samples the original's list as it is, so its duplicate rows may both be drawn.
        distinct = d.split == "shuffle" and d.instructions.source != "instructionwild"
        n_train_ok = len(set(train)) == d.n_train if distinct else len(train) == d.n_train
        overlap = {"eval": len(set(train) & set(evals)), **{k: len(set(train) & set(v)) for k, v in extra.items()}}
        n_eval = len(set(evals)) if distinct else len(evals)
        ok = n_train_ok and n_eval == (d.n_eval if d.split == "shuffle" else 0) and not any(overlap.values())
        yield dg.AssetCheckResult(
            check_name="disjoint_and_complete",
            asset_key=eval_key,
            passed=ok,
            metadata={
                "n_train": len(train),
                "n_train_distinct": len(set(train)),
                "n_eval": len(set(evals)),
                **{f"overlap_{k}": v for k, v in overlap.items()},
            },
        )

    return instructions
