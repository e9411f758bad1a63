"""Per-prompt heuristic and geometry tables, built from the warehouse's tidy rows.

The math lives in `inoc.analysis`; this module only assembles W matrices from `logprob_vectors` /
`logprob_tokens` rows (prompts in config group order) and lays the results out as the warehouse's
tidy tables: `prompt_heuristics`, `pca_variance`, `prompt_coords`, `prompt_angles`, `angle_groups`.
It works the same on imported and computed logprobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from inoc.analysis.geometry import ROLES, angle_group_stats, angle_matrices, pca, token_decompositions, truncated_svd
from inoc.analysis.heuristics import fixed_vs_mix_table, perplexity_heuristic, pointwise_perplexity_drift
from inoc.analysis.matrices import clean_nonfinite, token_weight_matrix, weight_matrix
from inoc.analysis.performance import pearson
from inoc.config import ExperimentConfig
from inoc.heuristics.compute import availability_rows, catalogue_rows, present_inputs
from inoc.heuristics.registry import of_kind

#: Components kept in the point-wise (48 × 1000) and token-level decompositions: 5 each, as the original's
#: slides dataset (PCA(5), TruncatedSVD(5) of token W); Exp 13's figures read PC1–PC4 of both levels.
POINT_COMPONENTS = 5
TOKEN_COMPONENTS = 5
REPRESENTATIONS = {"raw": "raw", "pca": "pca2", "svd": "svd2"}


class TokenSource(Protocol):
    def prompt_keys(self, vector: str) -> set[str]: ...

    def lists(self, prompt_key: str | None, vector: str) -> list[np.ndarray]: ...


@dataclass
class WMatrix:
    name: str  # fixed | mix | fixed_tokens | mix_tokens
    keys: list[str]
    W: np.ndarray


def _ordered(cfg: ExperimentConfig, present: set[str]) -> list[str]:
    return [k for k in cfg.prompt_keys if k in present]


def point_matrices(cfg: ExperimentConfig, vectors: pd.DataFrame) -> list[WMatrix]:
    """W_fixed (lp_train_inoc − lp_train_default) and W_mix (lp_train_mix − lp_train_default)."""
    if vectors.empty:
        return []
    base = vectors[vectors.prompt_key.isna() & (vectors.vector == "train_default")].sort_values("example_idx")
    if base.empty:
        return []
    default = base.lp.to_numpy(float)
    out = []
    for name, vector in (("fixed", "train_inoc"), ("mix", "train_mix")):
        rows = vectors[vectors.vector == vector]
        keys = _ordered(cfg, set(rows.prompt_key.dropna()))
        if len(keys) < 2:
            continue
        wide = rows.pivot(index="prompt_key", columns="example_idx", values="lp").loc[keys]
        out.append(WMatrix(name, keys, weight_matrix(wide.to_numpy(float), default)))
    return out


class FrameTokens:
    """`logprob_tokens` rows held in a DataFrame, as a token source for `token_matrices`."""

    def __init__(self, tokens: pd.DataFrame):
        self.tokens = tokens

    def prompt_keys(self, vector: str) -> set[str]:
        return set(self.tokens.prompt_key[self.tokens.vector == vector].dropna())

    def lists(self, prompt_key: str | None, vector: str) -> list[np.ndarray]:
        t = self.tokens
        rows = t[(t.prompt_key.isna() if prompt_key is None else t.prompt_key == prompt_key) & (t.vector == vector)]
        rows = rows.sort_values(["example_idx", "token_idx"])
        return [g.lp.to_numpy(float) for _, g in rows.groupby("example_idx", sort=True)]


def token_matrices(cfg: ExperimentConfig, tokens: "pd.DataFrame | TokenSource") -> list[WMatrix]:
    """Token-level W: per-token lp differences of every sampled completion, concatenated per prompt.

    `tokens` is a DataFrame of `logprob_tokens` rows or any source with `prompt_keys(vector)` and
    `lists(prompt_key, vector)` (per-example lp arrays): the warehouse's Parquet partitions are read one
    (prompt, vector) at a time, so the full token table never exists as one frame.
    """
    source = FrameTokens(tokens) if isinstance(tokens, pd.DataFrame) else tokens
    default = source.lists(None, "train_default")
    if not default:
        return []
    out = []
    for name, vector in (("fixed_tokens", "train_inoc"), ("mix_tokens", "train_mix")):
        keys = _ordered(cfg, source.prompt_keys(vector))
        if len(keys) < 2:
            continue
        per_prompt = [source.lists(k, vector) for k in keys]
        out.append(WMatrix(name, keys, token_weight_matrix(default, per_prompt, align="pad")))
        del per_prompt
    return out


def decomposition_tables(experiment: str, matrices: list[WMatrix]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`pca_variance` and `prompt_coords` rows for every matrix (PCA and TruncatedSVD)."""
    var_rows, coord_rows = [], []
    for m in matrices:
        X = clean_nonfinite(m.W, "zero")
        if m.name.endswith("_tokens"):
            k = min(TOKEN_COMPONENTS, *X.shape)
            decs = token_decompositions(X, k)
            decs = {"pca": decs["pca"], "truncated_svd": decs["svd"]}
        else:
            k = min(POINT_COMPONENTS, *X.shape)
            decs = {"pca": pca(X, k), "truncated_svd": truncated_svd(X, k)}
        for method, dec in decs.items():
            for c, ratio in enumerate(dec.explained_variance_ratio, start=1):
                var_rows.append((experiment, m.name, method, c, float(ratio)))
            for i, key in enumerate(m.keys):
                for c in range(dec.coords.shape[1]):
                    coord_rows.append((experiment, m.name, method, key, c + 1, float(dec.coords[i, c])))
    pca_variance = pd.DataFrame(
        var_rows, columns=["experiment", "matrix", "method", "component", "explained_variance_ratio"]
    )
    prompt_coords = pd.DataFrame(
        coord_rows, columns=["experiment", "matrix", "method", "prompt_key", "component", "value"]
    )
    return pca_variance, prompt_coords


def prompt_roles(cfg: ExperimentConfig) -> dict[str, str]:
    return {k: cfg.groups[cfg.group_of(k)].role for k in cfg.prompt_keys}


def angle_tables(cfg: ExperimentConfig, matrices: list[WMatrix]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`prompt_angles` (every ordered pair) and `angle_groups` (pair-type statistics) per matrix."""
    roles = prompt_roles(cfg)
    pair_rows, group_frames = [], []
    for m in matrices:
        X = clean_nonfinite(m.W, "zero")  # the original's angle analysis set non-finite entries to 0
        for rep_key, angles in angle_matrices(X, 2).items():
            rep = REPRESENTATIONS[rep_key]
            n = len(m.keys)
            ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            off = ii != jj
            pair_rows.append(
                pd.DataFrame(
                    {
                        "experiment": cfg.name,
                        "matrix": m.name,
                        "representation": rep,
                        "prompt_a": np.asarray(m.keys)[ii[off]],
                        "prompt_b": np.asarray(m.keys)[jj[off]],
                        "angle_deg": angles[off],
                    }
                )
            )
            keep = [i for i, k in enumerate(m.keys) if roles.get(k) in ROLES]
            if len(keep) >= 2:
                stats = angle_group_stats(angles[np.ix_(keep, keep)], [m.keys[i] for i in keep], roles)
                group_frames.append(
                    stats.rename(columns={"mean": "mean_deg", "std": "std_deg", "n": "n_pairs"}).assign(
                        experiment=cfg.name, matrix=m.name, representation=rep
                    )
                )
    cols = ["experiment", "matrix", "representation", "pair_type", "mean_deg", "std_deg", "n_pairs"]
    pairs = (
        pd.concat(pair_rows, ignore_index=True)
        if pair_rows
        else pd.DataFrame(columns=["experiment", "matrix", "representation", "prompt_a", "prompt_b", "angle_deg"])
    )
    groups = pd.concat(group_frames, ignore_index=True)[cols] if group_frames else pd.DataFrame(columns=cols)
    return pairs, groups


def heuristics_table(
    cfg: ExperimentConfig, vectors: pd.DataFrame, matrices: list[WMatrix], elicitation: pd.DataFrame
) -> pd.DataFrame:
    """Tidy `prompt_heuristics(experiment, prompt_key, prefix_type, heuristic, value)`.

    fixed/mix rows: the registry's W-row metrics of W_fixed / W_mix rows (ph, gamma, sigma, snr, snr_abs, mald);
    fixed rows also PPD from the control completions, and the trait PH/PPD (`ph_<trait>`, `ppd_<trait>`)
    on single-trait completion sets where those were scored. Prefix-independent rows (prefix_type NULL):
    elicitation_<trait> in pp over the no-prefix baseline.
    """
    rows = []
    for m in matrices:
        if m.name not in ("fixed", "mix"):
            continue
        metrics = [h for h in of_kind("w_row") if m.name in h.prefix_types]
        for i, key in enumerate(m.keys):
            rows += [(cfg.name, key, m.name, h.key, float(h.fn(m.W[i]))) for h in metrics]
    ctrl = vectors[vectors.vector == "ctrl_default"].sort_values("example_idx") if not vectors.empty else vectors
    if len(ctrl):
        ctrl_default = ctrl.lp.to_numpy(float)
        inoc = vectors[vectors.vector == "ctrl_inoc"]
        for key in _ordered(cfg, set(inoc.prompt_key.dropna())):
            v = inoc[inoc.prompt_key == key].sort_values("example_idx").lp.to_numpy(float)
            rows.append((cfg.name, key, "fixed", "ppd", pointwise_perplexity_drift(v, ctrl_default)))
    # Trait PH / PPD on single-trait completion sets (docs/methods.md#ph), where they were scored.
    for trait in cfg.traits:
        t = trait.name.lower()
        base = vectors[(vectors.vector == f"{t}_default") & vectors.prompt_key.isna()] if not vectors.empty else vectors
        if base.empty:
            continue
        default = base.sort_values("example_idx").lp.to_numpy(float)
        inoc = vectors[vectors.vector == f"{t}_inoc"]
        for key in _ordered(cfg, set(inoc.prompt_key.dropna())):
            v = inoc[inoc.prompt_key == key].sort_values("example_idx").lp.to_numpy(float)
            rows.append((cfg.name, key, "fixed", f"ph_{t}", perplexity_heuristic(v, default)))
            rows.append((cfg.name, key, "fixed", f"ppd_{t}", pointwise_perplexity_drift(v, default)))
    for rec in elicitation.itertuples():
        if rec.prompt_key != "neutral" and rec.prompt_key in cfg.prompts:
            rows.append((cfg.name, rec.prompt_key, None, f"elicitation_{rec.trait}", float(rec.relative_pp)))
    return pd.DataFrame(rows, columns=["experiment", "prompt_key", "prefix_type", "heuristic", "value"])


def catalogue_tables(
    cfg: ExperimentConfig,
    vectors: pd.DataFrame,
    matrices: list[WMatrix],
    tokens: "pd.DataFrame | TokenSource | None",
    heur: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The registry's catalogue rows (fixed-vs-mix point-wise columns, token heuristics H11–HB6, trait
    SVDs H3/H4) for `prompt_heuristics`, and `heuristic_availability`: every registry heuristic a prompt
    has no finite value for, with the reason. `heur` = the prompt's other rows (heuristics_table + text)."""
    source = FrameTokens(tokens) if isinstance(tokens, pd.DataFrame) else tokens
    rows = catalogue_rows(cfg, matrices, source, heur)
    everything = pd.concat([heur, rows], ignore_index=True) if len(heur) else rows
    avail = availability_rows(cfg, everything, present_inputs(matrices, vectors, everything, source))
    return rows, avail


def fixed_vs_mix_rows(experiment: str, matrices: list[WMatrix]) -> pd.DataFrame:
    """Tidy `fixed_vs_mix_heuristics` rows from W_fixed and W_mix (prompts present in both)."""
    cols = ["experiment", "variant", "prompt_key", "heuristic", "value"]
    by = {m.name: m for m in matrices}
    if "fixed" not in by or "mix" not in by:
        return pd.DataFrame(columns=cols)
    keys = [k for k in by["fixed"].keys if k in by["mix"].keys]
    F = by["fixed"].W[[by["fixed"].keys.index(k) for k in keys]]
    M = by["mix"].W[[by["mix"].keys.index(k) for k in keys]]
    wide = fixed_vs_mix_table(F, M, keys)
    long = wide.drop(columns=["n"]).melt(id_vars=["variant", "prompt_key"], var_name="heuristic", value_name="value")
    return long.assign(experiment=experiment)[cols]


def correlation_rows(experiment: str, coords: pd.DataFrame, heuristics: pd.DataFrame) -> pd.DataFrame:
    """r of components 1-2 of every decomposition with PH (of the same W) and with elicitation."""
    cols = ["experiment", "matrix", "method", "component", "heuristic", "r", "n"]
    rows = []
    for (matrix, method, comp), g in coords[coords.component <= 2].groupby(["matrix", "method", "component"]):
        prefix = matrix.replace("_tokens", "")
        h = heuristics[(heuristics.prefix_type == prefix) & (heuristics.heuristic == "ph")]
        e = heuristics[heuristics.prefix_type.isna() & heuristics.heuristic.str.startswith("elicitation_")]
        targets = {"ph": h} | {name: e[e.heuristic == name] for name in sorted(e.heuristic.unique())}
        for name, frame in targets.items():
            joined = g.merge(frame[["prompt_key", "value"]], on="prompt_key", suffixes=("", "_h"))
            if len(joined) >= 3:
                res = pearson(joined.value, joined.value_h)
                rows.append((experiment, matrix, method, int(comp), name, res.r, res.n))
    return pd.DataFrame(rows, columns=cols)
