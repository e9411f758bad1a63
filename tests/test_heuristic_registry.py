"""The heuristic registry: its consumers, the catalogue on the toy study's prompts, H3 on the real GF data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.decomposition import TruncatedSVD

from inoc.config import load_experiment
from inoc.heuristics.compute import trait_set
from inoc.heuristics.ranking import TARGETS, ranked_heuristics, ranking_table
from inoc.heuristics.registry import INPUTS, REGISTRY, SQL_COLUMNS, Heuristic, lls_names, register, slide_entries
from inoc.tables.prompt_tables import catalogue_tables, heuristics_table, point_matrices, token_matrices

REPO = Path(__file__).resolve().parent.parent


def test_every_entry_is_declared_completely_and_paper_ids_are_unique():
    ids = [h.id for h in REGISTRY.values() if h.id]
    assert len(ids) == len(set(ids)), ids
    for want in (
        "H1",
        "H2",
        "H3",
        "H4",
        "H5",
        "H6",
        "H7",
        "H9a",
        "H9b",
        "H11",
        "H13",
        "H14",
        "HA2",
        "HB1",
        "HB4",
        "HB6",
    ):
        assert want in ids
    for h in REGISTRY.values():
        assert h.name and h.definition and h.inputs and set(h.inputs) <= set(INPUTS)
    with pytest.raises(ValueError, match="registered twice"):
        register(Heuristic("ph", "x", "x", ("w_point_fixed",), "w_row", lambda w: 0.0))
    with pytest.raises(ValueError, match="unknown input"):
        Heuristic("x_new", "x", "x", ("w_nonsense",), "w_row", lambda w: 0.0)


def test_dataset_sql_heuristic_columns_are_the_registry_sql_columns():
    """dataset.sql's own heuristic columns are exactly the registry's SQL_COLUMNS; every other registry
    slide column is generated (none is written by hand in the SQL)."""
    sql = (REPO / "slides" / "dataset.sql").read_text()
    aliases = set(re.findall(r"AS (\w+)\s*,?\s*$", sql, re.M)) | set(re.findall(r"\bc\.(pc\d|sv\d)\b", sql))
    for col in SQL_COLUMNS:
        assert col in aliases, col
    for h in slide_entries():
        assert not re.search(rf"\b{h.slide_column}\b", sql), f"{h.slide_column} is generated, not hand-written"


# --- the catalogue on the toy study's prompts (synthetic log-probs, deterministic) --------------------


@pytest.fixture(scope="module")
def toy():
    cfg = load_experiment(REPO / "experiments" / "toy.yaml")
    rng = np.random.default_rng(7)
    K, keys = 40, cfg.prompt_keys
    vec, tok = [], []
    base_tokens = [rng.normal(-1.0, 0.5, size=int(rng.integers(3, 15))) for _ in range(K)]
    for k in range(K):
        vec.append((None, "train_default", k, float(base_tokens[k].mean())))
        vec.append((None, "ctrl_default", k, float(rng.normal(-1, 0.3))))
        tok += [(None, "train_default", k, t, float(v)) for t, v in enumerate(base_tokens[k])]
    for i, key in enumerate(keys):
        for vector, shift in (("train_inoc", 0.05 * i), ("train_mix", 0.02 * i)):
            for k in range(K):
                lps = base_tokens[k] + shift + rng.normal(0, 0.3, base_tokens[k].size)
                if vector == "train_mix" and k == 3:
                    lps = lps[:-1]  # a shorter completion: its last position is not valid
                vec.append((key, vector, k, float(lps.mean())))
                tok += [(key, vector, k, t, float(v)) for t, v in enumerate(lps)]
        for k in range(K):
            vec.append((key, "ctrl_inoc", k, float(rng.normal(-1, 0.3))))
    vectors = pd.DataFrame(vec, columns=["prompt_key", "vector", "example_idx", "lp"])
    tokens = pd.DataFrame(tok, columns=["prompt_key", "vector", "example_idx", "token_idx", "lp"])
    matrices = point_matrices(cfg, vectors) + token_matrices(cfg, tokens)
    elicitation = pd.DataFrame(
        [(k, t.name, float(rng.normal(10, 5))) for k in ["neutral", *keys] for t in cfg.traits],
        columns=["prompt_key", "trait", "relative_pp"],
    )
    heur = heuristics_table(cfg, vectors, matrices, elicitation)
    rows, avail = catalogue_tables(cfg, vectors, matrices, tokens, heur)
    return cfg, vectors, tokens, matrices, pd.concat([heur, rows], ignore_index=True), avail


def test_toy_every_registry_heuristic_has_a_value_or_a_reason(toy):
    cfg, *_, heur, avail = toy
    finite = {
        (r.prompt_key, r.prefix_type if isinstance(r.prefix_type, str) else None, r.heuristic)
        for r in heur[np.isfinite(heur.value)].itertuples()
    }
    missing = {
        (r.prompt_key, r.prefix_type if isinstance(r.prefix_type, str) else None, r.heuristic): r.reason
        for r in avail.itertuples()
    }
    traits = [t.name for t in cfg.traits if t.role in ("positive", "negative")]
    checked = 0
    for h in REGISTRY.values():
        if h.kind == "slides":
            continue
        for name in [h.name_for(t) for t in traits] if h.per_trait else [h.key]:
            for key in cfg.prompt_keys:
                for prefix in h.prefix_types:
                    cell = (key, prefix, name)
                    assert (cell in finite) != (cell in missing), cell  # exactly one of the two
                    checked += 1
    assert checked > 500
    # Reasons are specific: the absent text heuristics name their input, a prompt outside a trait set its family.
    assert missing[(cfg.prompt_keys[0], None, "emb_l2_neutral")].startswith(
        "input absent in this experiment: embeddings"
    )
    french_key = next(k for k in cfg.prompt_keys if cfg.groups[cfg.group_of(k)].family == "french")
    assert "outside Playful's prompt set" in missing[(french_key, None, "pc1_trait_svd_playful")]
    assert "has 2 prompts, 1 neutral" in missing[(french_key, None, "pc1_trait_svd_french")]
    # Everything the toy's inputs allow is computed: token heuristics and H3/H4 for the Playful set.
    assert {"h11_mean_abs_diff", "hb5_effective_rank", "hb4_strength_x_coherence", "pc1_tok_playful", "w_cor"} <= set(
        heur.heuristic
    )


def _value(heur, key, name, prefix=None):
    sel = heur[(heur.prompt_key == key) & (heur.heuristic == name)]
    sel = sel[sel.prefix_type.isna()] if prefix is None else sel[sel.prefix_type == prefix]
    assert len(sel) == 1, (key, name, prefix, len(sel))
    return float(sel.value.iloc[0])


def test_toy_three_heuristics_equal_independent_numpy(toy):
    cfg, vectors, tokens, matrices, heur, _ = toy
    base = (
        vectors[vectors.prompt_key.isna() & (vectors.vector == "train_default")]
        .sort_values("example_idx")
        .lp.to_numpy()
    )

    def w(key, vector):
        return (
            vectors[(vectors.prompt_key == key) & (vectors.vector == vector)].sort_values("example_idx").lp.to_numpy()
            - base
        )

    # w_cor (G17 column): Pearson r of W_fixed and W_mix rows.
    for key in cfg.prompt_keys:
        assert _value(heur, key, "w_cor") == pytest.approx(
            np.corrcoef(w(key, "train_inoc"), w(key, "train_mix"))[0, 1], abs=1e-12
        )
    # H13 on mix tokens: mean squared per-token difference over the positions both completions have.
    d = tokens[tokens.prompt_key.isna()].set_index(["example_idx", "token_idx"]).lp
    for key in cfg.prompt_keys:
        m = (
            tokens[(tokens.prompt_key == key) & (tokens.vector == "train_mix")]
            .set_index(["example_idx", "token_idx"])
            .lp
        )
        joined = (m - d).dropna()
        assert _value(heur, key, "h13_mean_sq_diff", "mix") == pytest.approx(float((joined**2).mean()), rel=1e-12)
    # H3: sklearn TruncatedSVD of the Playful family + neutral W_fixed rows, each component oriented.
    keys, neutral = trait_set(cfg, "negative", cfg.prompt_keys)
    X = np.stack([w(k, "train_inoc") for k in keys])
    coords = TruncatedSVD(2, random_state=42).fit_transform(X)
    n = np.array(neutral)
    for c in range(2):
        if coords[n, c].mean() > coords[~n, c].mean():
            coords[:, c] *= -1
    for i, key in enumerate(keys):
        assert _value(heur, key, "pc1_trait_svd_playful") == pytest.approx(coords[i, 0], abs=1e-9)
        assert _value(heur, key, "pc2_trait_svd_playful") == pytest.approx(coords[i, 1], abs=1e-9)


def test_toy_lls_rows_are_unchanged_by_the_registry(toy):
    """prompt_heuristics' W-row metrics equal inoc.analysis.heuristics.lls_metrics, as before."""
    from inoc.analysis.heuristics import lls_metrics

    cfg, _, _, matrices, heur, _ = toy
    fixed = next(m for m in matrices if m.name == "fixed")
    assert lls_names() == ("ph", "gamma", "sigma", "snr", "snr_abs", "mald")
    for i, key in enumerate(fixed.keys):
        ref = lls_metrics(fixed.W[i])
        for name in lls_names():
            assert _value(heur, key, name, "fixed") == getattr(ref, name)


# --- slides columns and the ranking ------------------------------------------------------------------


def _slides_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    rng = np.random.default_rng(3)
    rows = []
    for exp in ("a", "b"):
        for p in range(6):
            for role, trait in (("positive", "French"), ("negative", "Playful")):
                for prefix in ("fixed", "mix"):
                    elicitation = (
                        math.nan if (exp, p) == ("b", 5) else float(rng.normal())
                    )  # NaN: missing for pandas' z
                    rows.append(
                        (
                            exp,
                            f"p{p}",
                            role,
                            trait,
                            prefix,
                            elicitation,
                            *rng.normal(size=3),
                            float(rng.normal(50, 10)),
                            float(rng.normal(40, 10)),
                            float(rng.normal(5, 3)) if prefix == "mix" else None,
                        )
                    )
    con.execute(
        "CREATE TABLE slides_dataset (experiment VARCHAR, prompt_key VARCHAR, trait_role VARCHAR, trait_name VARCHAR, "
        "prefix_type VARCHAR, elicitation DOUBLE, ph_combined DOUBLE, sv2_fixed DOUBLE, ph_prefix DOUBLE, "
        "suppression DOUBLE, cross_trait_suppression DOUBLE, gap DOUBLE)"
    )
    con.executemany("INSERT INTO slides_dataset VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    ph = []
    for exp in ("a", "b"):
        for p in range(6):
            ph += [
                (exp, f"p{p}", None, "emb_l2_neutral", float(rng.normal())),
                (exp, f"p{p}", None, "emb_cos_std", float(rng.normal())),
                (exp, f"p{p}", None, "emb_cos_positive", float(rng.normal())),
                (exp, f"p{p}", None, "emb_cos_negative", float(rng.normal())),
            ]
            ph += [(exp, f"p{p}", pt, "h11_mean_abs_diff", float(rng.normal())) for pt in ("fixed", "mix")]
            ph.append((exp, f"p{p}", "fixed", "hb1_pc1_var_frac", float(rng.normal())))
            if p < 4:  # playful family + neutral only
                ph.append((exp, f"p{p}", None, "pc1_tok_playful", float(rng.normal())))
    con.execute(
        "CREATE TABLE prompt_heuristics (experiment VARCHAR, prompt_key VARCHAR, prefix_type VARCHAR, heuristic VARCHAR, value DOUBLE)"
    )
    con.executemany("INSERT INTO prompt_heuristics VALUES (?,?,?,?,?)", ph)
    return con


def test_generated_slides_columns_pick_the_right_rows_and_h7_is_the_global_z_sum():
    from slides.dataset import registry_sql

    con = _slides_db()
    before = con.execute("SELECT count(*) FROM slides_dataset").fetchone()[0]
    for statement in registry_sql():
        con.execute(statement)
    sd = con.execute("SELECT * FROM slides_dataset").df()
    ph = con.execute("SELECT * FROM prompt_heuristics").df()
    assert len(sd) == before
    assert {h.slide_column for h in slide_entries()} <= set(sd.columns)
    get = lambda e, p, pt, name: ph[  # noqa: E731
        (ph.experiment == e)
        & (ph.prompt_key == p)
        & (ph.heuristic == name)
        & ((ph.prefix_type == pt) if pt else ph.prefix_type.isna())
    ].value.iloc[0]
    for r in sd.itertuples():
        assert r.h11_mean_abs_diff == get(
            r.experiment, r.prompt_key, r.prefix_type, "h11_mean_abs_diff"
        )  # row's prefix
        assert r.hb1_pc1_var_frac == get(
            r.experiment, r.prompt_key, "fixed", "hb1_pc1_var_frac"
        )  # fixed on mix rows too
        if r.trait_name == "Playful" and int(r.prompt_key[1:]) < 4:
            assert r.pc1_tok == get(r.experiment, r.prompt_key, None, "pc1_tok_playful")
        else:
            assert math.isnan(r.pc1_tok)  # French rows: no pc1_tok_french rows exist
        cross = r.emb_cos_positive if r.trait_role == "negative" else r.emb_cos_negative
        assert r.h9a_emb_cos_cross == cross
        assert r.h9b_svd_cross_proj == (r.sv2_fixed if r.trait_role == "negative" else -r.sv2_fixed)
    # H7: z over all rows (pandas std, ddof 1, NaN skipped); mix rows subtract z(H6).
    z = lambda c: (sd[c] - sd[c].mean()) / sd[c].std()  # noqa: E731
    expect = (
        z("elicitation") + z("pc1_tok") + z("emb_l2_neutral") - np.where(sd.prefix_type == "mix", z("emb_cos_std"), 0.0)
    )
    np.testing.assert_allclose(sd.h7_zsum.to_numpy(float), expect.to_numpy(float), rtol=1e-10, equal_nan=True)
    assert sd.h7_zsum.notna().sum() == sd.pc1_tok.notna().sum() > 0


def test_ranking_uses_all_rows_and_every_target():
    con = _slides_db()
    from slides.dataset import registry_sql

    for statement in registry_sql():
        con.execute(statement)
    sd = con.execute("SELECT * FROM slides_dataset").df()
    table = ranking_table(sd)
    assert set(table.target) == set(TARGETS) and set(table.scope) == {"pooled", "a", "b"}
    assert set(table.heuristic) == set(ranked_heuristics())
    cell = table[
        (table.scope == "pooled") & (table.heuristic == "H1 Elicitation") & (table.target == "Trait sup (all)")
    ].iloc[0]
    ok = sd[sd.elicitation.notna()]
    assert cell.n == len(ok) == len(sd) - 4  # both trait rows of every prompt, fixed and mix; one prompt's X is NaN
    assert cell.r == pytest.approx(stats.pearsonr(ok.elicitation, ok.suppression)[0], abs=1e-12)
    gap = table[
        (table.scope == "a") & (table.heuristic == "H11 Mean |token diff|") & (table.target == "Gap (mix)")
    ].iloc[0]
    a = sd[(sd.experiment == "a") & (sd.prefix_type == "mix")]
    assert gap.n == len(a) and gap.r == pytest.approx(stats.pearsonr(a.h11_mean_abs_diff, a.gap)[0], abs=1e-12)


# --- H3 on the real GF data (golden G16's recipe) -----------------------------------------------------


def test_h3_on_the_german_rows_of_the_gf_reference(shared):
    """SPEC-DETAILED §8.7: 27 German-set prompts, variance 81.0 % / 3.8 %; the values equal an
    independent sklearn TruncatedSVD(random_state=42) with the orientation rule within 1e-5."""
    from inoc.importers.experiment import parse_configured

    cfg = load_experiment(REPO / "experiments" / "reference_gf_llama8b.yaml")
    vectors = parse_configured(cfg, "logprobs").tables["logprob_vectors"]
    matrices = point_matrices(cfg, vectors)
    heur = heuristics_table(cfg, vectors, matrices, pd.DataFrame(columns=["prompt_key", "trait", "relative_pp"]))
    rows, avail = catalogue_tables(cfg, vectors, matrices, None, heur)
    fixed = next(m for m in matrices if m.name == "fixed")
    keys, neutral = trait_set(cfg, "positive", fixed.keys)
    assert len(keys) == 27 and sum(neutral) == 6
    X = fixed.W[[fixed.keys.index(k) for k in keys]]
    svd = TruncatedSVD(2, random_state=42).fit(X)
    assert np.round(100 * svd.explained_variance_ratio_, 1).tolist() == [81.0, 3.8]
    coords = svd.transform(X)
    n = np.array(neutral)
    for c in range(2):
        if coords[n, c].mean() > coords[~n, c].mean():
            coords[:, c] *= -1
    got = rows[rows.heuristic == "pc1_trait_svd_german"].set_index("prompt_key").value.loc[keys].to_numpy()
    assert np.abs(got - coords[:, 0]).max() < 1e-5
    assert got[~n].mean() > got[n].mean()
    # Absent inputs are stated, not dropped: GF has no token-level log-probs and no embeddings here.
    reasons = avail[avail.heuristic == "h11_mean_abs_diff"].reason.unique().tolist()
    assert reasons == [
        f"input absent in this experiment: {INPUTS['w_token_fixed']}",
        f"input absent in this experiment: {INPUTS['w_token_mix']}",
    ]
    assert (avail.prompt_key == "helpful_assistant").any()  # configured, no perplexity data: stated per heuristic


def test_one_entry_and_one_function_add_a_heuristic_everywhere(toy, monkeypatch):
    """The README's example: a new token heuristic reaches prompt_heuristics, availability, the slides
    columns and both performance tables without any other edit."""
    from inoc.heuristics import registry
    from slides.dataset import registry_sql

    def max_abs_token_diff(D: np.ndarray) -> float:
        v = np.abs(D[np.isfinite(D)])
        return float(v.max()) if v.size else math.nan

    monkeypatch.setattr(registry, "REGISTRY", dict(REGISTRY))
    import inoc.heuristics.compute as compute
    import inoc.heuristics.ranking as ranking
    import slides.dataset as dataset

    for module in (compute, ranking, dataset):
        monkeypatch.setattr(module, "REGISTRY", registry.REGISTRY, raising=False)
    registry.register(
        Heuristic(
            "max_abs_tok_diff",
            "Max |token diff|",
            "max |Δ| over valid tokens",
            ("w_token_fixed", "w_token_mix"),
            "token",
            max_abs_token_diff,
            id="HX1",
            slide_column="max_abs_tok_diff",
            performance_label="HX1 Max",
        )
    )
    cfg, vectors, tokens, matrices, heur, _ = toy
    rows, avail = catalogue_tables(cfg, vectors, matrices, tokens, heur)
    new = rows[rows.heuristic == "max_abs_tok_diff"]
    assert len(new) == 2 * len(cfg.prompt_keys) and new.value.gt(0).all()
    assert not (avail.heuristic == "max_abs_tok_diff").any()  # every prompt has it on both prefix types
    assert "max_abs_tok_diff" in registry.performance_columns()
    assert any('AS "max_abs_tok_diff"' in s for s in registry_sql())
    assert "HX1 Max" in ranked_heuristics()


def test_ranking_figure_has_a_panel_per_scope_and_no_figure_problems():
    from inoc import figures
    from inoc.figure_checks import figure_problems
    from slides.dataset import registry_sql

    con = _slides_db()
    for statement in registry_sql():
        con.execute(statement)
    table = ranking_table(con.execute("SELECT * FROM slides_dataset").df())
    cell = table[
        (table.scope == "pooled") & (table.heuristic == "H1 Elicitation") & (table.target == "Trait sup (all)")
    ].iloc[0]
    assert cell.ci_lo < cell.r < cell.ci_hi
    fig = figures.heuristic_ranking_bars(table, "Trait sup (all)", "ranked")
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["pooled", "a", "b"]
    pooled = fig.axes[0]
    drawn = table[(table.scope == "pooled") & (table.target == "Trait sup (all)") & table.r.notna()]
    assert len(pooled.patches) == len(drawn) > 0
    assert "H3 Datapoint SVD PC1" in pooled.get_title()  # no value in this dataset: named, not drawn
    assert figure_problems(fig) == []
    assert figures.heuristic_ranking_bars(table.assign(r=np.nan), "Trait sup (all)", "x") is None


def test_text_heuristics_of_the_registry_are_what_their_producers_write():
    from inoc.heuristics import embeddings as embedding_heuristics
    from inoc.heuristics import self_perplexity

    produced = {
        h.key for h in REGISTRY.values() if h.kind == "produced" and set(h.inputs) & {"embeddings", "self_perplexity"}
    }
    assert produced == set(embedding_heuristics.HEURISTICS) | set(self_perplexity.HEURISTICS.values())


def test_slides_heuristics_state_which_ingredient_is_absent():
    from slides.dataset import registry_sql, write_slides_availability

    con = _slides_db()
    con.execute(
        "CREATE TABLE heuristic_availability (experiment VARCHAR, heuristic VARCHAR, heuristic_id VARCHAR, "
        "prompt_key VARCHAR, prefix_type VARCHAR, reason VARCHAR)"
    )
    for statement in registry_sql():
        con.execute(statement)
    write_slides_availability(con)
    write_slides_availability(con)  # idempotent
    sd = con.execute("SELECT * FROM slides_dataset").df()
    av = con.execute("SELECT * FROM heuristic_availability WHERE heuristic = 'h7_zsum'").df()
    assert len(av) == sd.h7_zsum.isna().sum() > 0
    french = av[av.reason.str.startswith("on the French row")]
    assert len(french) == (sd.trait_name == "French").sum() and french.reason.str.contains("pc1_tok").all()
    nan_elicitation = av[(av.prompt_key == "p5") & av.reason.str.contains("elicitation")]
    assert len(nan_elicitation) == 4 and set(nan_elicitation.experiment) == {"b"}  # both traits, fixed and mix
    assert not con.execute(
        "SELECT count(*) FROM heuristic_availability WHERE heuristic = 'h9b_svd_cross_proj'"
    ).fetchone()[0]


def test_h4_with_three_prompts_has_two_components_and_no_shifted_columns():
    from inoc.heuristics.registry import h4_token_svd

    rng = np.random.default_rng(5)
    W = rng.normal(size=(3, 40))
    W[0] += 2.0
    out = h4_token_svd(W, ["a", "b", "c"], [False, True, True])
    assert out.shape == (3, 4)
    assert np.isfinite(out[:, :2]).all() and np.isnan(out[:, 2]).all() and np.isnan(out[:, 3]).all()
    sk = TruncatedSVD(2, random_state=42).fit_transform(W)
    np.testing.assert_allclose(np.abs(out[:, :2]), np.abs(sk), atol=1e-8)


def test_ranking_carries_the_originals_group_column():
    """SPEC-DETAILED §2.6.8: the original's 23 ranked heuristics fall into its four groups."""
    from inoc.heuristics.ranking import GROUPS, heuristic_group

    ids = {label: hid for label, (hid, _) in ranked_heuristics().items()}
    groups = {hid: heuristic_group(hid) for hid in ids.values()}
    assert set(groups.values()) <= set(GROUPS)
    assert {h for h, g in groups.items() if g == "A: Step-1"} == {"HA2", "HA3", "HA4", "HA5"}
    assert {h for h, g in groups.items() if g == "B: Cumulative"} == {"HB1", "HB2", "HB3", "HB4", "HB5", "HB6"}
    assert {h for h, g in groups.items() if g == "Cross-trait"} <= {"H9a", "H9b", "H10"}
    assert {"H1", "H2", "H3", "H4", "H7", "H11", "H13", "H14"} <= {h for h, g in groups.items() if g == "Existing"}
    assert heuristic_group(None) is None and heuristic_group("HX1") is None  # inoc's own ids: no paper group
    rng = np.random.default_rng(0)
    sd = pd.DataFrame(
        {
            "experiment": "a",
            "prefix_type": ["fixed", "mix"] * 10,
            "suppression": rng.normal(size=20),
            "cross_trait_suppression": rng.normal(size=20),
            "gap": rng.normal(size=20),
            **{col: rng.normal(size=20) for _, col in ranked_heuristics().values()},
        }
    )
    table = ranking_table(sd)
    assert (table.heuristic_group == table.heuristic_id.map(heuristic_group)).all()
    assert table.heuristic_group.notna().all()


def test_h10_is_registered_unavailable_with_its_reason_on_every_slides_row():
    """H10 has no orientation rule in the spec (its producer is missing): every slides row says so in
    heuristic_availability, and the ranking lists it with no r, as the original's 23-row table has it."""
    from inoc.heuristics.registry import H10_UNAVAILABLE
    from slides.dataset import registry_sql, write_slides_availability

    con = _slides_db()
    con.execute(
        "CREATE TABLE heuristic_availability (experiment VARCHAR, heuristic VARCHAR, heuristic_id VARCHAR, "
        "prompt_key VARCHAR, prefix_type VARCHAR, reason VARCHAR)"
    )
    for statement in registry_sql():
        con.execute(statement)
    write_slides_availability(con)
    sd = con.execute("SELECT * FROM slides_dataset").df()
    av = con.execute("SELECT * FROM heuristic_availability WHERE heuristic = 'h10_tok_svd_cross_proj'").df()
    assert sd.h10_tok_svd_cross_proj.isna().all() and len(av) == len(sd)
    assert set(av.reason) == {H10_UNAVAILABLE} and set(av.heuristic_id) == {"H10"}
    table = ranking_table(sd)
    h10 = table[table.heuristic_id == "H10"]
    assert len(h10) == 3 * len(TARGETS) and h10.r.isna().all() and (h10.n == 0).all()
    assert set(h10.heuristic_group) == {"Cross-trait"}
    assert len(ranked_heuristics()) == 23  # H1–H7, H9a, H9b, H10, H11, H13, H14, HA2–HA5, HB1–HB6
