"""`<experiment>/suppression`: suppression per prompt (fixed and mix, with CIs), every batch against its own
control, and its figure."""

from pathlib import Path

import dagster as dg

from inoc import figures
from inoc.config import load_experiment
from inoc.tables.suppression import format_suppression, suppression_by_batch, suppression_table
from inoc_assets.figure_metadata import FigurePublisher
from inoc_assets.plumbing import key
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from inoc_assets.stages import AGGREGATE, stage_tag
from inoc_assets.table_metadata import table as table_md
from warehouse import replace_rows


def suppression_asset(experiment: str, config_path: Path, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    k = key(experiment, "suppression")

    @dg.asset(
        key=k,
        group_name=experiment,
        tags=stage_tag(AGGREGATE),
        kinds={"duckdb"},
        deps=deps,
        description=(
            "Trait and cross-trait suppression of every prompt's fixed and mix runs against the designated "
            "control: paired per-instruction differences at the final step, default condition, t-based 95% CI "
            "→ `suppression` table and a bar chart; every batch against its own control → `suppression_by_batch` "
            "(and, for a learning-rate sweep, suppression against the rate)."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                "every_run_has_its_suppression",
                asset=k,
                description="Each prompt run in `runs` has a suppression row for every trait, with n > 1 pairs.",
            )
        ],
    )
    def suppression(context: dg.AssetExecutionContext, warehouse: WarehouseResource, artifacts: ArtifactStoreResource):
        cfg = load_experiment(config_path)
        wh = warehouse.warehouse
        runs = wh.query("SELECT * FROM runs WHERE experiment = ?", [experiment])
        scores = wh.query(
            "SELECT run, step, condition, trait, instruction_idx, score FROM trait_scores WHERE experiment = ?",
            [experiment],
        )
        table = suppression_table(cfg, runs, scores)
        by_batch = suppression_by_batch(cfg, runs, scores)
        with wh.writer() as conn:
            replace_rows(conn, "suppression", table.drop(columns=["experiment"]), {"experiment": experiment})
            replace_rows(
                conn, "suppression_by_batch", by_batch.drop(columns=["experiment"]), {"experiment": experiment}
            )
        publisher = FigurePublisher(artifacts.store, context.log)
        if by_batch.learning_rate.nunique() > 1:  # a learning-rate sweep
            publisher.publish(
                "figure_by_learning_rate",
                figures.suppression_vs_learning_rate(by_batch, f"{experiment}: suppression by learning rate"),
                experiment,
                "figures",
                "suppression_vs_learning_rate.png",
            )
        control = table.control_run.iloc[0] if len(table) else "control"
        publisher.publish(
            "figure",
            figures.suppression_bars(table, f"{experiment}: suppression vs {control}"),
            experiment,
            "figures",
            "suppression.png",
        )
        printable = format_suppression(table)
        own = table[table.target == "trait"]
        yield dg.MaterializeResult(
            metadata={
                "n_rows": len(table),
                "n_prompts": int(table.prompt_key.nunique()),
                "table": table_md(printable),
                **publisher.summary(),
                **{f"mean_suppression_{t}": float(g.suppression.mean()) for t, g in own.groupby("prefix_type")},
                "n_rows_by_batch": len(by_batch),
            }
        )
        prompt_runs = runs[runs.prompt_key.notna() & runs.prompt_key.isin(cfg.prompt_keys)]
        n_traits = sum(t.role in ("positive", "negative") for t in cfg.traits)
        expected = len(prompt_runs.drop_duplicates(["prompt_key", "prefix_type"])) * n_traits
        ok = len(table) == expected and bool((table.n > 1).all())
        yield dg.AssetCheckResult(
            check_name="every_run_has_its_suppression",
            passed=ok,
            metadata={
                "rows": len(table),
                "expected_rows": expected,
                "min_pairs": int(table.n.min()) if len(table) else 0,
            },
        )

    return suppression
