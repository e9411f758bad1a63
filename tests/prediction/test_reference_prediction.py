"""The suppression predictor asset on the real imported reference studies (PF = Playful/French on Qwen-7B,
GF = German/Flattering on Llama-8B): the leave-one-study-out table of issue 20 exists in both directions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import materialize

from inoc.config import load_experiment
from inoc.config.records import experiment_record, prompt_record
from inoc.importers.experiment import parse_configured, write_parsed
from inoc.settings import shared_dir
from inoc.tables.prompt_tables import heuristics_table
from inoc.tables.suppression import suppression_table
from inoc_assets.assets.suppression_predictor import suppression_predictor_asset
from inoc_assets.resources import ArtifactStoreResource, WarehouseResource
from slides.dataset import build_slides_dataset
from warehouse import Warehouse, replace_rows

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("reference_pf_qwen7b", "reference_gf_llama8b")


@pytest.fixture(scope="module")
def reference_slides(tmp_path_factory) -> Path:
    """Scores, elicitation and catalogue of both reference studies, imported as `inoc main` does; then what the
    suppression and geometry assets derive from them that the predictor reads (suppression, the elicitation rows
    of prompt_heuristics) and the slides dataset. The log-prob files are left out: elicitation is the only
    feature both studies have (PF's point-wise PH was not published)."""
    if shared_dir() is None:
        pytest.skip("reference data not found: set INOC_SHARED_DIR to the folder holding reference/")
    path = tmp_path_factory.mktemp("prediction") / "warehouse.duckdb"
    wh = Warehouse(path)
    for name in STUDIES:
        cfg = load_experiment(REPO / "experiments" / f"{name}.yaml")
        for kind in ("scores", "elicitation"):
            with wh.writer() as conn:
                write_parsed(conn, name, parse_configured(cfg, kind))
        with wh.writer() as conn:
            replace_rows(
                conn,
                "prompts",
                pd.DataFrame([prompt_record(cfg, k) for k in cfg.prompts]).drop(columns="experiment"),
                {"experiment": name},
            )
            replace_rows(
                conn,
                "experiments",
                pd.DataFrame([experiment_record(cfg)]).drop(columns="experiment"),
                {"experiment": name},
            )
        runs = wh.query("SELECT * FROM runs WHERE experiment = ?", [name])
        scores = wh.query(
            "SELECT run, step, condition, trait, instruction_idx, score FROM trait_scores WHERE experiment = ?", [name]
        )
        elicitation = wh.query("SELECT * FROM elicitation_summary WHERE experiment = ?", [name])
        heur = heuristics_table(
            cfg, pd.DataFrame(columns=["prompt_key", "vector", "example_idx", "lp"]), [], elicitation
        )
        with wh.writer() as conn:
            replace_rows(
                conn,
                "suppression",
                suppression_table(cfg, runs, scores).drop(columns=["experiment"]),
                {"experiment": name},
            )
            replace_rows(conn, "prompt_heuristics", heur.drop(columns=["experiment"]), {"experiment": name})
    with wh.writer() as conn:
        build_slides_dataset(conn)
    return path


def test_reference_leave_one_study_out_both_ways(reference_slides, tmp_path):
    result = materialize(
        [suppression_predictor_asset()],
        resources={
            "warehouse": WarehouseResource(database=str(reference_slides)),
            "artifacts": ArtifactStoreResource(root=str(tmp_path / "artifacts")),
        },
    )
    assert result.success
    wh = Warehouse(reference_slides)
    val = wh.query("SELECT * FROM predictor_validation")
    loso = val[val.scheme == "leave_one_study_out"]
    pf, gf = STUDIES
    for prefix_type in ("fixed", "mix"):
        for a, b in ((pf, gf), (gf, pf)):
            rows = loso[(loso.train_scope == a) & (loso.test_scope == b) & (loso.prefix_type == prefix_type)].set_index(
                "model"
            )
            assert set(rows.index) == {"predictor", "group_mean"}, (a, b, prefix_type)
            # the held-out study's own-trait prompts with runs: PF 42 (48 less the 6 neutral), GF 4
            assert (rows.n == (42 if b == pf else 4)).all()
            p = rows.loc["predictor"]
            assert all(math.isfinite(p[m]) for m in ("r2", "spearman", "coverage")), p
            assert math.isfinite(rows.loc["group_mean", "r2"]) and 0 <= p.coverage <= 1
    # leave-one-prompt-out within PF (GF's 4 trained prompts leave 3 per fit: too few) and pooled
    lopo = val[val.scheme == "leave_one_prompt_out"]
    assert set(lopo.train_scope) == {pf, "pooled"} and (lopo[lopo.train_scope == pf].n == 42).all()

    # every own-trait prompt is predicted (trained or not), and each prediction traces to its inputs and its model
    preds = wh.query("SELECT * FROM suppression_predictions")
    own = preds[(preds.scope == "pooled")]
    assert len(own[own.prefix_type == "fixed"]) == 42 + 42  # PF: 48 prompts − 6 neutral; GF: 49 − 7 neutral
    models = wh.query("SELECT * FROM predictor_models")
    assert set(preds.model_version) == set(models.model_version)
    inputs = wh.query("SELECT * FROM prediction_inputs")
    merged = preds.merge(inputs, on=["experiment", "prompt_key", "prefix_type", "scope", "model_version"], how="left")
    assert merged.feature.notna().all() and np.isfinite(merged.value).all()
    pooled = models[models.scope == "pooled"].iloc[0]
    assert json.loads(pooled.features) == ["elicitation"] and pooled.n_train == 46
    assert sorted(map(tuple, json.loads(pooled.trained_on))) == sorted(
        map(
            tuple,
            preds[(preds.scope == "pooled") & preds.trained & (preds.prefix_type == pooled.prefix_type)][
                ["experiment", "prompt_key"]
            ].values,
        )
    )
    # the figure was drawn and passed the figure checks
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["n_figures"].value == 1 and meta["figure_problems"].value == 0
    assert isinstance(meta[f"loso_r2_{pf}_to_{gf}_fixed"].value, float)
