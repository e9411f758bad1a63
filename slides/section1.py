"""Section 1 of the slides — predicting inoculation strength: four figures, each a grid of
experiments × prefix types, suppression of the prompt's own trait against one predictor, with an
OLS line and its 95% confidence band; the token-space embeddings; the original's slides 1 and 2 (`trait_slide_figure`), 2 × 8 slides 3a/4a
(`grid_figure`) and 2 × 4 slides 3b/4b (`role_embedding_figure`), each also as its `_filtered` variant
(`own_family_rows`), and the H-table (`h_table_figure`). Data come from SQL on `slides_dataset` and
`heuristic_ranking` only.
"""

from __future__ import annotations

import math
import textwrap

import duckdb
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from inoc.analysis.sigmoid import linear_fit
from inoc.figures import ROLE_COLORS, plt

#: slide name → (x column, x label). Labels of component axes get their explained variance added.
SLIDES = {
    "elicitation": ("elicitation", "elicitation of the trait (pp over no prefix)"),
    "ph": ("ph_combined", "PH: mean logprob gain of the training data"),
    "pca": ("pc1", "token-level PCA PC1"),
    "svd": ("sv1", "token-level TruncatedSVD SV1"),
}

# Own-trait rows (the trait the prompt's group elicits) and neutral prompts' rows for both traits.
QUERY = """
SELECT * FROM slides_dataset
WHERE suppression IS NOT NULL AND (target = 'trait' OR target IS NULL)
"""


def _variance_label(con: duckdb.DuckDBPyConnection, experiment: str, prefix_type: str, method: str) -> str:
    row = con.execute(
        "SELECT explained_variance_ratio FROM pca_variance WHERE experiment = ? AND matrix = ? AND method = ? AND component = 1",
        [experiment, f"{prefix_type}_tokens", method],
    ).fetchone()
    return f" ({100 * row[0]:.1f}%)" if row else ""


def _panels(data: pd.DataFrame, usable) -> tuple[list[tuple[str, str, pd.DataFrame]], list[str]]:
    """(experiment, prefix type, rows) of each panel that has a point, and why each other panel is not drawn."""
    panels, missing = [], []
    for exp in sorted(data.experiment.unique()):
        for prefix_type in ("fixed", "mix"):
            sub = data[(data.experiment == exp) & (data.prefix_type == prefix_type)]
            ok = usable(sub)
            if sub.empty:
                missing.append(f"{exp} · {prefix_type}: no {prefix_type} runs")
            elif not ok.any():
                missing.append(f"{exp} · {prefix_type}: no values")
            else:
                panels.append((exp, prefix_type, sub[ok]))
    return panels, missing


def _missing_note(missing: list[str]) -> str:
    if not missing:
        return ""
    shown = "; ".join(missing[:6]) + (f"; and {len(missing) - 6} more" if len(missing) > 6 else "")
    return f"\nnot drawn — {shown}"


def slide_figure(con: duckdb.DuckDBPyConnection, slide: str) -> plt.Figure | None:
    """Suppression of the prompt's own trait against the slide's predictor, one panel per experiment ×
    prefix type with data (2 per row); None when no experiment has both values for any prompt."""
    column, label = SLIDES[slide]
    data = con.execute(QUERY).df()
    panels, missing = _panels(
        data, lambda sub: np.isfinite(sub[column].to_numpy(float)) & np.isfinite(sub.suppression.to_numpy(float))
    )
    if not panels:
        return None
    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(10.5, 3.6 * rows), squeeze=False)
    roles_seen: dict[str, object] = {}
    for ax, (exp, prefix_type, sub) in zip(axes.flat, panels):
        x, y = sub[column].to_numpy(float), sub.suppression.to_numpy(float)
        xlabel = label
        if slide in ("pca", "svd"):
            xlabel += _variance_label(con, exp, prefix_type, "pca" if slide == "pca" else "truncated_svd")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("suppression of own trait (pp)")
        err = np.vstack([sub.suppression - sub.suppression_ci_lo, sub.suppression_ci_hi - sub.suppression])
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="lightgrey", elinewidth=0.8, zorder=1)
        roles = ["neutral" if pd.isna(t) else r for t, r in zip(sub.target, sub.trait_role)]
        for role in dict.fromkeys(roles):
            sel = np.array([r == role for r in roles])
            roles_seen.setdefault(role, ax.scatter(x[sel], y[sel], color=ROLE_COLORS[role], s=16, zorder=2))
        traits = ", ".join(sorted(sub.trait_name[sub.target == "trait"].unique()))
        if len(x) < 3 or np.ptp(x) == 0:
            ax.set_title(f"{exp} · {prefix_type} ({traits})   n = {len(x)}: no fit")
            continue
        fit = linear_fit(x, y)
        ax.plot(fit.grid, fit.curve, color="black", linewidth=1)
        ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color="black", alpha=0.12, linewidth=0)
        r = "n/a" if math.isnan(fit.r) else f"{fit.r:+.2f}"
        ax.set_title(f"{exp} · {prefix_type} ({traits})   r = {r}, n = {fit.n}")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        f"Suppression of the prompt's own trait vs {label} (95% CI bars; OLS line with 95% band)"
        + _missing_note(missing),
        fontsize=10,
    )
    fig.tight_layout()
    fig.legend(
        list(roles_seen.values()),
        [f"{r} prompt" for r in roles_seen],
        title="prompt role",
        loc="upper left",
        bbox_to_anchor=(1.0, 0.95),
    )
    return fig


#: Embedding slides (3b/3c, 4b/4c): prompts placed by their token-level coordinates, coloured by suppression.
EMBEDDINGS = {"pca_embedding": ("pc", "PCA"), "svd_embedding": ("sv", "TruncatedSVD")}


def embedding_figure(con: duckdb.DuckDBPyConnection, slide: str, dims: int = 2) -> plt.Figure | None:
    """Prompts at their token-level coordinates, coloured by suppression, one panel per experiment ×
    prefix type with coordinates; None when no experiment has token-level coordinates."""
    prefix, label = EMBEDDINGS[slide]
    data = con.execute(QUERY).df()
    data = data[data.target == "trait"]
    cols = [f"{prefix}{k}" for k in range(1, dims + 1)]
    panels, missing = _panels(data, lambda sub: sub[cols + ["suppression"]].notna().all(axis=1).to_numpy())
    if not panels:
        return None
    rows = math.ceil(len(panels) / 2)
    fig = plt.figure(figsize=(11, 4.4 * rows))
    method = "pca" if prefix == "pc" else "truncated_svd"
    for i, (exp, prefix_type, sub) in enumerate(panels):
        kw = {"projection": "3d"} if dims == 3 else {}
        ax = fig.add_subplot(rows, 2, i + 1, **kw)
        traits = ", ".join(sorted(sub.trait_name.unique()))
        ax.set_title(f"{exp} · {prefix_type} ({traits})")
        names = [
            f"{label} {k}{_variance_label(con, exp, prefix_type, method) if k == 1 else ''}" for k in range(1, dims + 1)
        ]
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        if dims == 3:
            ax.set_zlabel(names[2])
        pts = [sub[c].to_numpy(float) for c in cols]
        sc = ax.scatter(*pts, c=sub.suppression.to_numpy(float), cmap="viridis", s=22)
        fig.colorbar(sc, ax=ax, label="suppression of own trait (pp)", shrink=0.8, pad=0.12 if dims == 3 else 0.05)
    fig.suptitle(
        f"Prompts in {label} token space ({dims}-D), coloured by suppression of their own trait"
        + _missing_note(missing),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


#: The 2 × 8 slides 3a / 4a (docs/methods.md#slides-grids): rows = experiments, columns = the four X of one
#: token-level decomposition × (fixed, mix); X on a panel is the row's own prefix type's coordinate.
GRIDS = {"pca_grid": ("pc", "PCA"), "svd_grid": ("sv", "TruncatedSVD")}
#: Slides 1 and 2 in the original's layout (docs/methods.md#slides-grids): rows = experiments, columns = fixed | mix,
#: every trait row (red negative, blue positive), each trait its own OLS line.
TRAIT_SLIDES = {
    "slide1_elicitation": ("elicitation", "elicitation of the row's trait (pp over no prefix)"),
    "slide2_ph": ("ph_combined", "PH: mean logprob gain of the training data"),
}
#: Slides 3b / 4b in the original's layout: rows = experiments, columns (fixed, negative), (mix, negative),
#: (fixed, positive), (mix, positive); prompts at (C1, C2) coloured by the column trait's suppression.
ROLE_EMBEDDINGS = {"pca_scatter": ("pc", "PCA"), "svd_scatter": ("sv", "TruncatedSVD")}
#: Name suffix of the original's `_filtered` variants (slides 1, 2, 3a, 4a, 3b, 4b).
FILTERED = "_filtered"
#: Trait-role colours of the original's slides: red = negative ("undesired") rows, blue = positive.
SLIDE_ROLE_COLORS = {"negative": "#d6604d", "positive": "#2166ac"}


def own_family_rows(data: pd.DataFrame) -> pd.DataFrame:
    """The original's `_filtered` selection: each trait row only for prompts of that trait's own family and
    neutral prompts. A family is the trait's own (or neutral) when one of its prompts' runs has `target`
    'trait' (or NULL) for that trait; a prompt without a run is kept by its family, a cross-trait row never."""
    if data.empty:
        return data
    ran = data[data.suppression.notna()]
    own = ran[(ran.target == "trait") | ran.target.isna()]
    families = set(zip(own.experiment, own.trait_name, own.prompt_family))
    keep = [
        (e, t, f) in families and tgt != "cross_trait"
        for e, t, f, tgt in zip(data.experiment, data.trait_name, data.prompt_family, data.target)
    ]
    return data[np.array(keep, dtype=bool)]


def _variant(name: str) -> tuple[str, bool]:
    """(base slide name, filtered?) of a slide name that may end in FILTERED."""
    return (name.removesuffix(FILTERED), True) if name.endswith(FILTERED) else (name, False)


def _grid_x(sub: pd.DataFrame, prefix: str, kind: str) -> np.ndarray:
    a, b = sub[f"{prefix}1"].to_numpy(float), sub[f"{prefix}2"].to_numpy(float)
    return {"1": a, "2": b, "1+2": a + b, "1-2": a - b}[kind]


def _trait_grid(
    data: pd.DataFrame, columns: list[tuple[str, str, str]], x_of, title: str, label_of=None
) -> plt.Figure | None:
    """Rows = experiments, one column per (X kind, prefix type, axis label): suppression of every trait row
    (red negative, blue positive, 95 % CI bars) against X, each trait its own OLS line with a t-based 95 %
    band and r, R², p, n in the panel title. `x_of(rows, kind)` gives X; `label_of(experiment, prefix type,
    kind)` an axis-label suffix. None when no experiment has a row."""
    exps = sorted(data.experiment.unique()) if len(data) else []
    if not exps:
        return None
    width = max(3.0 * len(columns) + 0.6, 8.0)
    fig, axes = plt.subplots(len(exps), len(columns), figsize=(width, 3.3 * len(exps) + 1.0), squeeze=False)
    for i, exp in enumerate(exps):
        for j, (kind, pt, name) in enumerate(columns):
            ax = axes[i, j]
            sub = data[(data.experiment == exp) & (data.prefix_type == pt)]
            if sub.empty:
                ax.set_visible(False)
                continue
            ax.set_xlabel(name + (label_of(exp, pt, kind) if label_of else ""))
            ax.set_ylabel("suppression of the row's trait (pp)")
            lines = []
            for role, color in SLIDE_ROLE_COLORS.items():
                s = sub[sub.trait_role == role]
                if s.empty:
                    continue
                x, y = x_of(s, kind), s.suppression.to_numpy(float)
                err = np.vstack([y - s.suppression_ci_lo.to_numpy(float), s.suppression_ci_hi.to_numpy(float) - y])
                ax.errorbar(x, y, yerr=err, fmt="none", ecolor=color, alpha=0.35, elinewidth=0.8, zorder=1)
                ax.scatter(x, y, color=color, s=14, zorder=2)
                trait = s.trait_name.iloc[0]
                if len(x) >= 3 and np.ptp(x) > 0:
                    fit = linear_fit(x, y)
                    ax.plot(fit.grid, fit.curve, color=color, linewidth=1)
                    ax.fill_between(fit.grid, fit.band_lo, fit.band_hi, color=color, alpha=0.12, linewidth=0)
                    lines.append(f"{trait}: r={fit.r:+.2f} R²={fit.r2:.2f} p={fit.p:.2g} n={fit.n}")
                else:
                    lines.append(f"{trait}: n={len(x)}, no fit")
            ax.set_title(f"{exp} · {pt}\n" + "\n".join(lines), fontsize=8)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=f"{r}-trait rows") for r, c in SLIDE_ROLE_COLORS.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(textwrap.fill(title, int(width * 12)), fontsize=10)  # ~12 characters per inch at 10 pt
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig


def _filter_note(filtered: bool) -> str:
    return "; filtered: each trait's own-family and neutral prompts" if filtered else ""


def grid_figure(con: duckdb.DuckDBPyConnection, slide: str) -> plt.Figure | None:
    """Slide 3a (PCA) / 4a (TruncatedSVD): suppression of every trait row (negative-trait rows red,
    positive-trait rows blue, 95 % CI bars) against C1, C2, C1+C2 and C1−C2 of the token-level
    decomposition, fixed and mix → one row per experiment with coordinates, 8 columns; each trait its
    own OLS line with a t-based 95 % band, its r, R², p and n in the panel title. `<slide>_filtered`: each
    trait row only for its own family's and neutral prompts (`own_family_rows`). None when no experiment
    has token-level coordinates and suppression."""
    base, filtered = _variant(slide)
    prefix, label = GRIDS[base]
    data = con.execute("SELECT * FROM slides_dataset WHERE suppression IS NOT NULL").df()
    data = (
        data[np.isfinite(data[f"{prefix}1"].to_numpy(float)) & np.isfinite(data[f"{prefix}2"].to_numpy(float))]
        if len(data)
        else data
    )
    data = own_family_rows(data) if filtered else data
    present = [pt for pt in ("fixed", "mix") if len(data) and (data.prefix_type == pt).any()]
    c = prefix.upper()
    names = {"1": f"{label} {c}1", "2": f"{label} {c}2", "1+2": f"{c}1 + {c}2", "1-2": f"{c}1 − {c}2"}
    columns = [(k, pt, names[k]) for pt in present for k in ("1", "2", "1+2", "1-2")]
    method = "pca" if prefix == "pc" else "truncated_svd"
    return _trait_grid(
        data,
        columns,
        lambda s, kind: _grid_x(s, prefix, kind),
        f"Suppression vs token-level {label} coordinates (C1, C2, C1+C2, C1−C2), fixed | mix; "
        f"OLS line with 95% band per trait{_filter_note(filtered)}",
        lambda exp, pt, kind: _variance_label(con, exp, pt, method) if kind == "1" else "",
    )


def trait_slide_figure(con: duckdb.DuckDBPyConnection, slide: str) -> plt.Figure | None:
    """Slide 1 (X = elicitation of the row's trait) / slide 2 (X = `ph_combined`) in the original's layout:
    a row per experiment, fixed | mix, suppression of every trait row (red negative, blue positive) with an
    OLS line and 95 % band per trait; `<slide>_filtered` keeps each trait's own-family and neutral prompts.
    None when no row has both values."""
    base, filtered = _variant(slide)
    column, label = TRAIT_SLIDES[base]
    data = con.execute("SELECT * FROM slides_dataset WHERE suppression IS NOT NULL").df()
    data = data[np.isfinite(data[column].to_numpy(float))] if len(data) else data
    data = own_family_rows(data) if filtered else data
    present = [pt for pt in ("fixed", "mix") if len(data) and (data.prefix_type == pt).any()]
    return _trait_grid(
        data,
        [(column, pt, label) for pt in present],
        lambda s, kind: s[kind].to_numpy(float),
        f"Suppression of each trait row vs {label} (95% CI bars; OLS line with 95% band per trait)"
        + _filter_note(filtered),
    )


def role_embedding_figure(con: duckdb.DuckDBPyConnection, slide: str) -> plt.Figure | None:
    """Slide 3b (PCA) / 4b (TruncatedSVD) in the original's layout: a row per experiment with token-level
    coordinates, columns (fixed, negative), (mix, negative), (fixed, positive), (mix, positive); each prompt
    at (C1, C2) of the column's prefix type, coloured by the column trait's suppression (RdYlGn, one scale:
    2nd–98th percentile of every suppression shown), prompts without a run as grey ×.
    `<slide>_filtered` keeps each trait's own-family and neutral prompts. None without coordinates."""
    base, filtered = _variant(slide)
    prefix, label = ROLE_EMBEDDINGS[base]
    data = con.execute("SELECT * FROM slides_dataset").df()
    if data.empty:
        return None
    data = data[np.isfinite(data[f"{prefix}1"].to_numpy(float)) & np.isfinite(data[f"{prefix}2"].to_numpy(float))]
    data = own_family_rows(data) if filtered else data
    if data.empty:
        return None
    exps = sorted(data.experiment.unique())
    columns = [(pt, role) for role in ("negative", "positive") for pt in ("fixed", "mix")]
    s = data.suppression.to_numpy(float)
    s = s[np.isfinite(s)]
    vmin, vmax = np.percentile(s, [2, 98]) if s.size else (0.0, 1.0)
    fig, axes = plt.subplots(len(exps), 4, figsize=(15, 3.6 * len(exps) + 0.8), squeeze=False)
    method = "pca" if prefix == "pc" else "truncated_svd"
    c = prefix.upper()
    for i, exp in enumerate(exps):
        for j, (pt, role) in enumerate(columns):
            ax = axes[i, j]
            sub = data[(data.experiment == exp) & (data.prefix_type == pt) & (data.trait_role == role)]
            if sub.empty:
                ax.set_visible(False)
                continue
            x, y, v = (sub[col].to_numpy(float) for col in (f"{prefix}1", f"{prefix}2", "suppression"))
            has = np.isfinite(v)
            if has.any():
                sc = ax.scatter(x[has], y[has], c=v[has], cmap="RdYlGn", vmin=vmin, vmax=vmax, s=24)
                fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.02).set_label("suppression (pp)")
            if (~has).any():
                ax.scatter(x[~has], y[~has], marker="x", color="grey", s=18)
            ax.set_xlabel(f"{label} {c}1{_variance_label(con, exp, pt, method)}")
            ax.set_ylabel(f"{label} {c}2")
            ax.set_title(f"{exp} · {pt} · {sub.trait_name.iloc[0]} ({role})\n(grey ×: no run)", fontsize=8)
    fig.suptitle(
        f"Prompts in token-level {label} space, coloured by the column trait's suppression{_filter_note(filtered)}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def original_layout_figures(con: duckdb.DuckDBPyConnection) -> dict[str, plt.Figure | None]:
    """The original's section-1 slides in its layouts, each plain and `_filtered`: slides 1 and 2
    (`slide1_elicitation`, `slide2_ph`), 3a / 4a (`pca_grid`, `svd_grid`) and 3b / 4b (`pca_scatter`,
    `svd_scatter`); name → figure, None where nothing can be drawn."""
    out: dict[str, plt.Figure | None] = {}
    for names, draw in (
        (TRAIT_SLIDES, trait_slide_figure),
        (GRIDS, grid_figure),
        (ROLE_EMBEDDINGS, role_embedding_figure),
    ):
        for name in names:
            for variant in (name, name + FILTERED):
                out[variant] = draw(con, variant)
    return out


def h_table_figure(con: duckdb.DuckDBPyConnection, scope: str = "pooled") -> plt.Figure | None:
    """The H-table slide: `heuristic_ranking` of one scope as a heat-map — a row per heuristic (with
    the original's Group), a column per target, each cell r with n; ordered by group, then by |r| with
    Trait sup (all). None when the scope has no ranking row with an r."""
    from inoc.heuristics.ranking import GROUPS, TARGETS

    t = con.execute("SELECT * FROM heuristic_ranking WHERE scope = ?", [scope]).df()
    if t.empty or not np.isfinite(t.r.to_numpy(float)).any():
        return None
    group = t.drop_duplicates("heuristic").set_index("heuristic")
    group_col = group["heuristic_group"] if "heuristic_group" in group else pd.Series(None, index=group.index)
    key = t[t.target == "Trait sup (all)"].set_index("heuristic").r.abs()
    order = sorted(
        group.index,
        key=lambda h: (
            GROUPS.index(group_col[h]) if group_col[h] in GROUPS else len(GROUPS),
            -(key.get(h, np.nan) if np.isfinite(key.get(h, np.nan)) else -1),
        ),
    )
    targets = [c for c in TARGETS if c in set(t.target)]
    R = t.pivot_table(index="heuristic", columns="target", values="r", dropna=False).reindex(
        index=order, columns=targets
    )
    N = t.pivot_table(index="heuristic", columns="target", values="n", dropna=False).reindex(
        index=order, columns=targets
    )
    fig, ax = plt.subplots(figsize=(2.0 * len(targets) + 4.5, 0.34 * len(order) + 1.6))
    im = ax.imshow(R.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(order)):
        for j in range(len(targets)):
            r, n = R.iat[i, j], N.iat[i, j]
            ax.text(
                j, i, "n/a" if not np.isfinite(r) else f"{r:+.2f} (n={int(n)})", ha="center", va="center", fontsize=8
            )
    ax.set_xticks(range(len(targets)), targets)
    ax.set_yticks(range(len(order)), [f"{h}  [{group_col[h] or '—'}]" for h in order])
    ax.xaxis.tick_top()
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).set_label("Pearson r")
    ax.set_title(
        f"Heuristic performance ({scope}): Pearson r over all slides rows, grouped as the original", fontsize=10, pad=24
    )
    fig.tight_layout()
    return fig
