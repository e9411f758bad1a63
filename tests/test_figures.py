"""Figures fit for a slide: the check finds what it must (empty panels, small text, covered data,
scatter colours without a legend), and every shipped figure built from a real import passes it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, instance_for_test, materialize
from PIL import Image

from inoc import figures
from inoc.config import load_experiment
from inoc.experiment_figures import experiment_figures
from inoc.figure_checks import empty_panels, figure_problems
from inoc.figures import plt
from warehouse import Warehouse, replace_rows

REPO = Path(__file__).resolve().parent.parent
IMPORTS = ["reference_gf_llama8b", "reference_pf_qwen7b"]


def _kinds(fig) -> list[str]:
    return sorted(p.kind for p in figure_problems(fig))


def test_the_check_fails_on_a_deliberately_empty_panel():
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    axes[0].plot([0, 1, 2], [1, 3, 2])
    axes[0].set_title("data")
    axes[1].set_title("nothing")
    axes[2].axhline(0, color="black")  # a reference line is not data
    axes[2].text(0.5, 0.5, "0 point(s)", transform=axes[2].transAxes)
    axes[2].set_title("reference line and a note")
    axes[3].bar([0, 1], [np.nan, np.nan])  # bars of missing values draw nothing
    axes[3].set_title("NaN bars")
    assert empty_panels(fig) == ["nothing", "reference line and a note", "NaN bars"]
    assert _kinds(fig) == ["empty_panel"] * 3
    for ax in axes[1:]:
        ax.set_visible(False)  # an omitted panel is not a problem
    assert figure_problems(fig) == []
    plt.close(fig)


def test_the_check_finds_small_text_covered_data_and_unexplained_colours():
    fig, ax = plt.subplots()
    ax.plot(np.arange(10), np.full(10, 5.0), label="a line")
    ax.set_xlabel("x", fontsize=6)
    ax.legend(loc="center")  # right on the line
    assert _kinds(fig) == ["legend_covers_data", "small_text"]
    ax.set_xlabel("x", fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    assert figure_problems(fig) == []
    plt.close(fig)

    fig, (a, b) = plt.subplots(1, 2)
    a.scatter([1, 2, 3], [1, 2, 3], c=["red", "green", "blue"])
    sc = b.scatter([1, 2, 3], [3, 2, 1], c=[0.1, 0.5, 0.9])
    assert _kinds(fig) == ["scatter_without_colour_legend"] * 2
    fig.colorbar(sc, ax=b)
    a.legend(["points"], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    assert figure_problems(fig) == []
    plt.close(fig)


def test_render_makes_a_small_thumbnail_of_the_full_figure():
    fig, ax = plt.subplots(figsize=(12, 6))
    ax.plot(np.arange(100), np.sin(np.arange(100) / 7))
    ax.set_title("a wide figure")
    out = figures.render(fig)
    full, thumb = Image.open(io.BytesIO(out.png)), Image.open(io.BytesIO(out.thumbnail))
    assert full.width > figures.THUMBNAIL_PX and thumb.width == figures.THUMBNAIL_PX
    assert abs(thumb.height / thumb.width - full.height / full.width) < 0.01
    assert len(out.thumbnail) < len(out.png) / 2 and out.problems == []


def test_smoothing_is_a_centred_moving_average():
    y = np.array([0.0, 3.0, 6.0, 3.0, 0.0])
    assert figures.smooth(y, 3).tolist() == pytest.approx([1.5, 3.0, 4.0, 3.0, 1.5])
    assert figures.smooth(y, 1).tolist() == y.tolist()


def test_angle_points_never_go_below_zero_and_empty_pair_types_are_left_out():
    groups = pd.DataFrame(
        {
            "representation": ["raw"] * 3,
            "pair_type": ["within_group", "across_groups", "neutral_pairs"],
            "mean_deg": [12.0, 80.0, np.nan],
            "std_deg": [30.0, 10.0, np.nan],
            "n_pairs": [6, 9, 0],
        }
    )
    fig = figures.angle_bars(groups, "angles")
    ax = fig.axes[0]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["within group", "across groups"]
    lows = [seg[0][1] for c in ax.collections for seg in c.get_segments()]
    assert min(lows) == pytest.approx(0.0) and ax.get_ylim()[0] == 0
    assert figure_problems(fig) == []
    plt.close(fig)
    assert figures.angle_bars(groups.iloc[2:], "angles") is None


@pytest.fixture(scope="module")
def reference_home(tmp_path_factory):
    """Two real imports (the original study's result files) analysed by the real assets, figures included."""
    from inoc.config.records import prompt_record
    from inoc.settings import shared_dir
    from inoc_assets.definitions import build_definitions
    from inoc_assets.resources import ArtifactStoreResource, WarehouseResource

    if shared_dir() is None:
        pytest.skip("reference data not found")
    home = tmp_path_factory.mktemp("figures_home")
    (home / "dagster").mkdir()
    resources = {
        "warehouse": WarehouseResource(database=str(home / "warehouse.duckdb")),
        "artifacts": ArtifactStoreResource(root=str(home / "artifacts")),
    }
    assets = list(build_definitions(REPO / "experiments", IMPORTS).assets)
    slides = {AssetKey(["slides", "slides_dataset"]), AssetKey(["slides", "section1_figures"])}
    # The slides group reads every experiment's tables (and the predictor reads slides_dataset): not in the first run.
    first = [k for a in assets if a.partitions_def is None for k in a.keys if k.path[0] != "slides"]
    wh = Warehouse(home / "warehouse.duckdb")
    with instance_for_test(temp_dir=str(home / "dagster")) as instance:
        result = materialize(assets, selection=first, instance=instance, resources=resources)
        # The prompt rows the partitioned `prompt` asset writes, which the slides dataset joins on.
        with wh.writer() as conn:
            for name in IMPORTS:
                cfg = load_experiment(REPO / "experiments" / f"{name}.yaml")
                replace_rows(
                    conn,
                    "prompts",
                    pd.DataFrame([prompt_record(cfg, k) for k in cfg.prompt_keys]),
                    {"experiment": name},
                )
        result2 = materialize(assets, selection=list(slides), instance=instance, resources=resources)
    events = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for r in (result, result2)
        for e in r.get_asset_materialization_events()
    }
    return home, wh, events


def test_every_shipped_figure_of_a_real_import_passes_the_check(reference_home):
    from slides.section1 import EMBEDDINGS, SLIDES, embedding_figure, original_layout_figures, slide_figure

    _, wh, _ = reference_home
    built: dict[str, plt.Figure] = {}
    for name in IMPORTS:
        cfg = load_experiment(REPO / "experiments" / f"{name}.yaml")
        out = experiment_figures(wh.query, cfg, name)
        built.update({f"{name}/{k}": v for k, v in out.figures.items()})
        supp = wh.query("SELECT * FROM suppression WHERE experiment = ?", [name])
        built[f"{name}/suppression"] = figures.suppression_bars(supp, f"{name}: suppression")
    with wh.reader() as con:
        for slide in SLIDES:
            built[f"slides/{slide}"] = slide_figure(con, slide)
        for slide in EMBEDDINGS:
            built[f"slides/{slide}_2d"] = embedding_figure(con, slide, 2)
        built.update({f"slides/{k}": v for k, v in original_layout_figures(con).items()})
    drawn = {k: v for k, v in built.items() if v is not None}
    # The imports have data for these: a regression that stops drawing them must fail here.
    for must in (
        "reference_pf_qwen7b/training_curves",
        "reference_pf_qwen7b/loss_curves",
        "reference_gf_llama8b/lls_grid",
        "reference_gf_llama8b/angle_bars",
        "reference_gf_llama8b/fixed_vs_mix_grid",
        "slides/elicitation",
        "slides/ph",
        *(
            f"slides/{s}{v}"
            for s in ("slide1_elicitation", "slide2_ph", "pca_grid", "pca_scatter")
            for v in ("", "_filtered")
        ),
        "reference_gf_llama8b/exp20_fixed_vs_mix_german",
        "reference_gf_llama8b/exp20_fixed_vs_mix_flattering",
        "reference_gf_llama8b/exp19_q1_point",
        "reference_gf_llama8b/exp19_q2_point",
        "reference_pf_qwen7b/exp19_q1_tokens",
        "reference_pf_qwen7b/exp19_q2_tokens",
    ):
        assert must in drawn, f"{must} was not drawn"
    problems = {k: [str(p) for p in figure_problems(fig)] for k, fig in drawn.items()}
    for fig in drawn.values():
        plt.close(fig)
    assert {k: v for k, v in problems.items() if v} == {}


def test_figure_materializations_link_files_and_show_small_thumbnails(reference_home):
    home, _, events = reference_home
    seen = 0
    for key in (
        "reference_gf_llama8b/figures",
        "reference_gf_llama8b/prompt_geometry",
        "reference_pf_qwen7b/suppression",
        "slides/section1_figures",
    ):
        meta = events[key]
        assert meta["figure_problems"].value == 0, meta.get("figure_problem_list")
        assert meta["n_figures"].value >= 1
        for label, value in meta.items():
            if not label.endswith("_file"):
                continue
            name = label.removesuffix("_file")
            path = Path(value.value)
            assert path.is_file() and home in path.parents
            md = meta[name].value
            m = re.fullmatch(r"!\[[^\]]*\]\(data:image/png;base64,(?P<b64>[A-Za-z0-9+/=]+)\)", md)
            assert m and len(md) < 120_000, (name, len(md))
            with Image.open(path) as full, Image.open(io.BytesIO(__import__("base64").b64decode(m["b64"]))) as thumb:
                assert thumb.width == min(full.width, figures.THUMBNAIL_PX), (name, thumb.size, full.size)
            seen += 1
    assert seen >= 6
    # Key numbers are plain values the catalog can plot.
    assert isinstance(events["reference_pf_qwen7b/suppression"]["mean_suppression_fixed"].value, float)
    assert isinstance(events["reference_gf_llama8b/prompt_geometry"]["pc1_variance_fixed"].value, float)


def test_exp10_scatter_of_a_real_import_fits_the_negative_trait_side(reference_home):
    """Exp 10 (SPEC-DETAILED §8.12) on the PF import: the 27 Playful-side prompts (v3, v4, neg + v5),
    rows fixed and mix, Y = Playful suppression; the PF perplexity file was never published, so only
    the elicitation column has data and the others are named as not drawn."""
    from scipy import stats

    _, wh, _ = reference_home
    cfg = load_experiment(REPO / "experiments" / "reference_pf_qwen7b.yaml")
    out = experiment_figures(wh.query, cfg, "reference_pf_qwen7b")
    fig = out.figures["exp10_elicitation_vs_suppression"]
    assert figure_problems(fig) == []
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2 and "ph_playful" in fig._suptitle.get_text()
    supp = wh.query(
        "SELECT prompt_key, prefix_type, suppression FROM suppression WHERE experiment = 'reference_pf_qwen7b' "
        "AND trait = 'Playful'"
    )
    elic = wh.query(
        "SELECT prompt_key, value FROM prompt_heuristics WHERE experiment = 'reference_pf_qwen7b' "
        "AND heuristic = 'elicitation_Playful'"
    )
    side = {k for g in ("v3", "v4", "neg", "v5") for k in cfg.groups[g].prompts}
    assert len(side) == 27
    for ax, prefix in zip(panels, ("fixed", "mix")):
        m = supp[(supp.prefix_type == prefix) & supp.prompt_key.isin(side)].merge(elic, on="prompt_key")
        r, _ = stats.pearsonr(m.value, m.suppression)
        assert (
            ax.get_title()
            == f"{prefix}: r = {r:+.2f} (p = {stats.pearsonr(m.value, m.suppression)[1]:.2g}), n = {len(m)}"
        )
    plt.close(fig)


def test_exp13_pca_prompts_of_the_gf_import_reproduce_golden_g2(reference_home):
    """Exp 13's figure (SPEC-DETAILED §8.4) on the GF import: fixed and mix rows, PC1×PC2 and PC3×PC4
    panels; its heat-map r equal golden G2: r(PC1, PH) = +0.97, r(PC1, elicitation German) = +0.887,
    r(PC2, elicitation Flattering) = −0.815 (point-wise W, unscaled PCA)."""
    from inoc.experiment_figures import EXP13_METRICS

    _, wh, _ = reference_home
    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    out = experiment_figures(wh.query, cfg, "reference_gf_llama8b")
    fig = out.figures["exp13_pca_prompts_point"]
    assert figure_problems(fig) == []
    assert "exp13_pca_prompts_tokens" in out.not_drawn  # the GF snapshot has no token-level log-probs
    heat = [ax for ax in fig.axes if ax.images and "Pearson r" in ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in heat] == ["fixed", "mix"]
    R = np.asarray(heat[0].images[0].get_array(), float)
    row = {m: i for i, m in enumerate(EXP13_METRICS)}
    assert R.shape == (len(EXP13_METRICS), 4)
    assert R[row["ph"], 0] == pytest.approx(0.967, abs=0.0005)
    assert R[row["elicitation_pos"], 0] == pytest.approx(0.887, abs=0.0005)
    assert R[row["elicitation_neg"], 1] == pytest.approx(-0.815, abs=0.0005)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(t.startswith("mix: suppression of Flattering") for t in titles) == 2  # PC1×PC2 and PC3×PC4
    plt.close(fig)


def test_slides_grids_and_h_table_of_the_real_imports(reference_home):
    """Slides 3a/4a as the original's 2 × 8 grid (here the imports have token-level W only for PF's fixed
    prompts: one row of 4) with r per trait as linregress on slides_dataset; the H-table shows
    heuristic_ranking's pooled r, grouped."""
    from scipy import stats

    from slides.section1 import GRIDS, grid_figure, h_table_figure

    _, wh, _ = reference_home
    with wh.reader() as con:
        sd = con.execute("SELECT * FROM slides_dataset WHERE suppression IS NOT NULL AND pc1 IS NOT NULL").df()
        grids = {slide: grid_figure(con, slide) for slide in GRIDS}
        table = h_table_figure(con)
        ranking = con.execute("SELECT * FROM heuristic_ranking WHERE scope = 'pooled'").df()
    for slide, fig in grids.items():
        assert fig is not None and figure_problems(fig) == [], slide
        panels = [ax for ax in fig.axes if ax.get_visible()]
        combos = sd.groupby(["experiment", "prefix_type"]).ngroups
        assert len(panels) == 4 * combos
    pf = sd[(sd.experiment == "reference_pf_qwen7b") & (sd.prefix_type == "fixed") & (sd.trait_name == "Playful")]
    first = [ax for ax in grids["pca_grid"].axes if ax.get_visible()][0]
    fit = stats.linregress(pf.pc1, pf.suppression)
    assert f"Playful: r={fit.rvalue:+.2f} R²={fit.rvalue**2:.2f} p={fit.pvalue:.2g} n={len(pf)}" in first.get_title()
    assert table is not None and figure_problems(table) == []
    R = np.asarray(table.axes[0].images[0].get_array(), float)
    labels = [t.get_text().split("  [")[0] for t in table.axes[0].get_yticklabels()]
    got = dict(zip(labels, R[:, 0]))
    want = ranking[ranking.target == "Trait sup (all)"].set_index("heuristic").r
    for label, r in got.items():
        assert (np.isnan(r) and np.isnan(want[label])) or r == pytest.approx(want[label], abs=1e-12), label
    groups = [t.get_text().split("  [")[1].rstrip("]") for t in table.axes[0].get_yticklabels()]
    assert groups == sorted(groups, key=["Existing", "Cross-trait", "A: Step-1", "B: Cumulative"].index)
    for fig in [*grids.values(), table]:
        plt.close(fig)


def _points(ax) -> tuple[np.ndarray, np.ndarray]:
    """The scatter points of a panel (every role's collection)."""
    xy = np.concatenate([np.asarray(c.get_offsets(), float) for c in ax.collections if len(c.get_offsets())])
    return xy[:, 0], xy[:, 1]


def test_exp20_grids_of_the_gf_import_show_the_tables_fits(reference_home):
    """Exp 20 per trait (SPEC-DETAILED §8.6) on the GF import: 6 rows (raw, PCA rank-1, SVD rank-1 × fixed − mix,
    control − mix) × the ten heuristics over each trait's 4 prompts; every panel's title is its
    fixed_vs_mix_gap_correlations row, its points give that r again, and the title carries golden G8."""
    from scipy import stats

    from inoc.analysis.heuristics import FIXED_VS_MIX_HEURISTICS
    from inoc.gap_and_angle_figures import VARIANTS
    from inoc.heuristics.fixed_vs_mix import GAP_TARGETS

    _, wh, _ = reference_home
    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    out = experiment_figures(wh.query, cfg, "reference_gf_llama8b")
    corr = wh.query("SELECT * FROM fixed_vs_mix_gap_correlations WHERE experiment = 'reference_gf_llama8b'")
    corr = corr.set_index(["trait", "variant", "heuristic", "target"])
    rows = [(v, t) for v in VARIANTS for t in GAP_TARGETS]
    checked = constant = 0
    for trait, golden in (("German", "PCA 90.8%, TruncatedSVD 87.3%"), ("Flattering", "PCA 61.4%, TruncatedSVD 21.5%")):
        fig = out.figures[f"exp20_fixed_vs_mix_{trait.lower()}"]
        assert figure_problems(fig) == []
        assert golden in fig._suptitle.get_text()
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == len(rows) * len(FIXED_VS_MIX_HEURISTICS) == 60
        for k, ax in enumerate(panels):
            (variant, target), heuristic = rows[k // 10], FIXED_VS_MIX_HEURISTICS[k % 10]
            row = corr.loc[(trait, variant, heuristic, target)]
            x, y = _points(ax)
            assert len(x) == row.n == 4
            if np.isfinite(row.r):
                assert ax.get_title() == f"r = {row.r:+.2f} (p = {row.p:.2g}), n = 4"
                assert stats.pearsonr(x, y)[0] == pytest.approx(row.r, abs=1e-9)
                checked += 1
            else:
                assert ax.get_title() == "constant X, n = 4" and np.ptp(x) < 1e-6 * max(1, np.abs(x).max())
                constant += 1
        plt.close(fig)
    # Every correlation row is a panel: the finite ones titled with r, the rest (rank-1 reconstructions) constant.
    assert checked == int(corr.r.notna().sum()) >= 70 and constant == int(corr.r.isna().sum()) == 120 - checked
    # The Flattering raw PH_ratio panel: fixed − mix rises with PH_mix / PH_fixed over its 4 prompts.
    assert corr.loc[("Flattering", "raw", "ph_ratio", "fixed_minus_mix")].r > 0.99


def test_exp19_q1_q2_figures_show_the_angle_questions(reference_home):
    """Exp 19 (SPEC-DETAILED §8.5 step 7): GF point-wise Q1 (fixed, mix × PCA, SVD × 4 columns) and Q2
    (fixed, mix × 5 predictors) with angle_questions' r in every title and again from the drawn points;
    PF token-level Q2 has no other-trait centroid (its token W holds no French prompt), so the three
    centroid columns are left out and named."""
    from scipy import stats

    from inoc.analysis.angle_questions import Q2_PREDICTORS
    from inoc.gap_and_angle_figures import Q1_COLUMNS

    _, wh, _ = reference_home
    q = wh.query("SELECT * FROM angle_questions").set_index(
        ["experiment", "matrix", "question", "predictor", "outcome"]
    )
    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    out = experiment_figures(wh.query, cfg, "reference_gf_llama8b")
    assert "exp19_q1_tokens" in out.not_drawn  # the GF snapshot has no token-level log-probs
    expected = {
        "exp19_q1_point": [
            ("q1", m, f"{method}_dim{d}", f"{role}_trait_suppression")
            for m in ("fixed", "mix")
            for method in ("pca", "svd")
            for d, role in Q1_COLUMNS
        ],
        "exp19_q2_point": [("q2", m, p, "cross_trait_suppression") for m in ("fixed", "mix") for p in Q2_PREDICTORS],
    }
    for name, keys in expected.items():
        fig = out.figures[name]
        assert figure_problems(fig) == []
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == len(keys)
        for ax, (question, matrix, predictor, outcome) in zip(panels, keys):
            row = q.loc[("reference_gf_llama8b", matrix, question, predictor, outcome)]
            assert ax.get_title().endswith(f"r = {row.r:+.2f} (p = {row.p:.2g}), n = {int(row.n)}"), (name, predictor)
            x, y = _points(ax)
            assert len(x) == row.n and stats.pearsonr(x, y)[0] == pytest.approx(row.r, abs=1e-9)
        plt.close(fig)
    # Q1's fixed PCA dim 1 predicts German suppression (r = +0.97 over the 6 prompts with fixed runs).
    assert q.loc[("reference_gf_llama8b", "fixed", "q1", "pca_dim1", "positive_trait_suppression")].r > 0.95
    cfg = load_experiment(REPO / "experiments" / "reference_pf_qwen7b.yaml")
    out = experiment_figures(wh.query, cfg, "reference_pf_qwen7b")
    fig = out.figures["exp19_q2_tokens"]
    assert figure_problems(fig) == [] and len([ax for ax in fig.axes if ax.get_visible()]) == 2
    assert all(f"fixed_tokens angle_to_centroid_{r}" in fig._suptitle.get_text() for r in ("raw", "pca2", "svd2"))
    assert len([ax for ax in out.figures["exp19_q1_tokens"].axes if ax.get_visible()]) == 8  # fixed_tokens × PCA, SVD
    for f in out.figures.values():
        plt.close(f)


def test_token_level_decompositions_keep_five_components_and_exp13_draws_pc3_pc4():
    """Token-level W keeps 5 components (as the original's slides dataset), so Exp 13's token-wise block has
    its PC3 × PC4 panels; their points are the stored PC3/PC4 coordinates, which equal numpy's SVD of the
    standardized, centred W (up to sign)."""
    from inoc.experiment_figures import exp13_figure, exp13_frame
    from inoc.tables.prompt_tables import WMatrix, decomposition_tables

    cfg = load_experiment(REPO / "experiments" / "toy.yaml")
    keys = cfg.prompt_keys
    rng = np.random.default_rng(4)
    W = rng.normal(size=(len(keys), 300)) + rng.normal(size=(len(keys), 1)) * rng.normal(size=300)
    variance, coords = decomposition_tables("toy", [WMatrix("fixed_tokens", keys, W)])
    assert sorted(set(coords[coords.method == "pca"].component)) == [1, 2, 3, 4, 5]
    assert sorted(set(variance[variance.method == "truncated_svd"].component)) == [1, 2, 3, 4, 5]
    Z = (W - W.mean(0)) / W.std(0)
    U, s, _ = np.linalg.svd(Z - Z.mean(0), full_matrices=False)
    pca = coords[coords.method == "pca"].pivot(index="prompt_key", columns="component", values="value").loc[keys]
    for c in (3, 4):
        np.testing.assert_allclose(np.abs(pca[c].to_numpy()), np.abs(U[:, c - 1] * s[c - 1]), atol=1e-8)
    frame = exp13_frame(
        cfg,
        coords[(coords.method == "pca") & (coords.component <= 4)],
        pd.DataFrame(columns=["prompt_key", "prefix_type", "heuristic", "value"]),
        pd.DataFrame(columns=["prompt_key", "prefix_type", "trait", "suppression"]),
        "fixed",
    )
    var = variance[variance.method == "pca"]
    fig = exp13_figure(cfg, "toy", {"fixed": (frame, var)}, "token-wise", (0.0, 50.0))
    pc34 = [ax for ax in fig.axes if ax.get_xlabel().startswith("PC3") and ax.get_ylabel().startswith("PC4")]
    assert len(pc34) == 3  # (E–G): the two traits' suppression and PH
    assert "not drawn" not in fig._suptitle.get_text()
    pct = 100 * var.set_index("component").explained_variance_ratio
    assert pc34[0].get_xlabel() == f"PC3 ({pct[3]:.1f}%)"
    drawn = np.vstack([c.get_offsets() for c in pc34[0].collections])
    np.testing.assert_allclose(
        np.sort(drawn, axis=0), np.sort(frame[["pc3", "pc4"]].to_numpy(float), axis=0), atol=1e-12
    )
    heat = [ax for ax in fig.axes if ax.images and "Pearson r" in ax.get_title()]
    assert [t.get_text() for t in heat[0].get_xticklabels()] == ["PC1", "PC2", "PC3", "PC4"]
    plt.close(fig)


def _toy_slides_con():
    """An in-memory slides_dataset: Playful (negative) and French (positive) prompts of their own families, neutral
    prompts, both trait rows × fixed/mix; `p4` has no run."""
    import duckdb

    rng = np.random.default_rng(8)
    prompts = [(f"p{i}", "playful", "negative") for i in range(1, 5)]
    prompts += [(f"f{i}", "french", "positive") for i in range(1, 5)]
    prompts += [(f"n{i}", "neutral", "neutral") for i in range(1, 4)]
    rows = []
    for key, family, role in prompts:
        for trait, trait_role in (("Playful", "negative"), ("French", "positive")):
            for pt in ("fixed", "mix"):
                ran = key != "p4"
                s = rng.normal(40, 20) if ran else np.nan
                target = None if role == "neutral" or not ran else ("trait" if role == trait_role else "cross_trait")
                rows.append(
                    dict(
                        experiment="e",
                        prompt_key=key,
                        prompt_family=family,
                        trait_name=trait,
                        trait_role=trait_role,
                        prefix_type=pt,
                        suppression=s,
                        suppression_ci_lo=s - 5,
                        suppression_ci_hi=s + 5,
                        target=target,
                        elicitation=rng.normal(10, 5),
                        ph_combined=rng.normal(),
                        pc1=rng.normal(),
                        pc2=rng.normal(),
                        sv1=rng.normal(),
                        sv2=rng.normal(),
                    )
                )
    con = duckdb.connect()
    frame = pd.DataFrame(rows)
    con.execute("CREATE TABLE slides_dataset AS SELECT * FROM frame")
    con.execute(
        "CREATE TABLE pca_variance (experiment VARCHAR, matrix VARCHAR, method VARCHAR, component INTEGER, "
        "explained_variance_ratio DOUBLE)"
    )
    return con, frame


def test_filtered_slides_keep_each_traits_own_family_and_neutral_prompts():
    """The original's `_filtered` slides 1, 2, 3a, 4a, 3b, 4b: each trait row only for its own family's and the
    neutral prompts; the unfiltered ones show every prompt. Panel r and n equal linregress on those rows."""
    from scipy import stats

    from slides.section1 import grid_figure, own_family_rows, role_embedding_figure, trait_slide_figure

    con, frame = _toy_slides_con()
    kept = own_family_rows(frame)
    fam = kept.groupby("trait_name").prompt_family.unique().map(set).to_dict()
    assert fam == {"Playful": {"playful", "neutral"}, "French": {"french", "neutral"}}
    assert set(kept[kept.trait_name == "Playful"].prompt_key) >= {"p4"}  # no run: kept by its family
    assert "cross_trait" not in set(kept.target.dropna())

    def title_of(fig, pt):
        return next(ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title().startswith(f"e · {pt}"))

    for name, rows in (("slide1_elicitation", frame), ("slide1_elicitation_filtered", kept)):
        fig = trait_slide_figure(con, name)
        assert figure_problems(fig) == [], name
        sel = rows[(rows.prefix_type == "mix") & (rows.trait_name == "Playful") & rows.suppression.notna()]
        fit = stats.linregress(sel.elicitation, sel.suppression)
        want = f"Playful: r={fit.rvalue:+.2f} R²={fit.rvalue**2:.2f} p={fit.pvalue:.2g} n={len(sel)}"
        assert want in title_of(fig, "mix"), (name, title_of(fig, "mix"))
        assert len(sel) == (10 if rows is frame else 6)
        plt.close(fig)
    fig = grid_figure(con, "svd_grid_filtered")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 8 and "filtered" in fig._suptitle.get_text()
    sel = kept[(kept.prefix_type == "fixed") & (kept.trait_name == "French") & kept.suppression.notna()]
    fit = stats.linregress(sel.sv1, sel.suppression)
    assert f"French: r={fit.rvalue:+.2f} R²={fit.rvalue**2:.2f} p={fit.pvalue:.2g} n={len(sel)}" in title_of(
        fig, "fixed"
    )
    plt.close(fig)
    for name, n_neg in (("pca_scatter", 11), ("pca_scatter_filtered", 7)):
        fig = role_embedding_figure(con, name)
        assert figure_problems(fig) == [], name
        panel = next(ax for ax in fig.axes if ax.get_title().startswith("e · fixed · Playful (negative)"))
        pts = np.vstack([c.get_offsets() for c in panel.collections])
        assert len(pts) == n_neg  # every playful-side prompt (p4 as a grey ×) and the neutral ones
        plt.close(fig)
