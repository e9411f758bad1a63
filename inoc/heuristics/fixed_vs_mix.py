"""Exp 20 per trait: the fixed-vs-mix gap heuristics on each trait's prompt subset (docs/methods.md#exp20-per-trait).

For every trait, the subset is the prompts of the trait's family or the neutral family (`trait_set`)
that have W_fixed and W_mix rows and both a fixed and a mix run scored on that trait — the original's
rule, which on the German/Flattering import gives its 4-prompt subsets (German: answer_german,
think_german_neg, birds_sing, coffee_is_hot). On each subset: the rank-1 PCA and TruncatedSVD fits on
W_fixed (their PC1 variance is golden G8), the ten heuristics on raw W and on the reconstructions, the
two outcomes Y of the original's figure rows and Pearson r of every heuristic with each Y.

Y (the trait's scores at the final step, default condition, as paired in the `suppression` table):
`fixed_minus_mix` = fixed-run score − mix-run score; `control_minus_mix` = trained control − mix-run score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from inoc.analysis.heuristics import fixed_vs_mix_fit
from inoc.analysis.performance import pearson
from inoc.config import ExperimentConfig
from inoc.heuristics.compute import trait_set

GAP_TARGETS = ("fixed_minus_mix", "control_minus_mix")
RANK1_COLUMNS = ["experiment", "trait", "method", "n_prompts", "prompt_keys", "pc1_variance"]
GAP_COLUMNS = ["experiment", "trait", "variant", "prompt_key", "heuristic", "value", *GAP_TARGETS]
CORRELATION_COLUMNS = ["experiment", "trait", "variant", "heuristic", "target", "r", "p", "n"]
METHODS = {"pca": "pca", "svd": "truncated_svd"}  # fixed_vs_mix_fit's key → pca_variance's method name


class Matrix(Protocol):  # inoc.tables.prompt_tables.WMatrix
    name: str
    keys: list[str]
    W: np.ndarray


def gap_outcomes(suppression: pd.DataFrame, trait: str) -> pd.DataFrame:
    """Per prompt with a fixed and a mix row for `trait`: the two Y of §8.6, indexed by prompt_key."""
    s = suppression[suppression.trait == trait]
    f = s[s.prefix_type == "fixed"].set_index("prompt_key")
    m = s[s.prefix_type == "mix"].set_index("prompt_key")
    both = f.index.intersection(m.index)
    out = pd.DataFrame(
        {
            "fixed_minus_mix": f.run_score.loc[both].astype(float) - m.run_score.loc[both].astype(float),
            "control_minus_mix": m.control_score.loc[both].astype(float) - m.run_score.loc[both].astype(float),
        },
        index=pd.Index(both, name="prompt_key"),
    )
    return out[np.isfinite(out.fixed_minus_mix) & np.isfinite(out.control_minus_mix)]


def gap_tables(
    cfg: ExperimentConfig, matrices: Sequence[Matrix], suppression: pd.DataFrame, *, min_finite: int = 20
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(`fixed_vs_mix_rank1`, `fixed_vs_mix_gap`, `fixed_vs_mix_gap_correlations`) rows of one experiment.

    A trait whose subset has no prompt is left out of all three; a subset too small for a fit (PCA needs
    2 prompts) has NaN pc1_variance and NaN rank-1 heuristics; r is NaN below 3 prompts or for a constant X.
    """
    by = {m.name: m for m in matrices}
    rank1, gap, corr = [], [], []
    if "fixed" in by and "mix" in by and len(suppression):
        f, m = by["fixed"], by["mix"]
        in_both = [k for k in f.keys if k in m.keys]
        for trait in (t for t in cfg.traits if t.role in ("positive", "negative")):
            ys = gap_outcomes(suppression, trait.name)
            keys = [k for k in trait_set(cfg, trait.role, in_both)[0] if k in ys.index]
            if not keys:
                continue
            fit = fixed_vs_mix_fit(
                f.W[[f.keys.index(k) for k in keys]], m.W[[m.keys.index(k) for k in keys]], keys, min_finite=min_finite
            )
            for method, value in fit.pc1_variance.items():
                rank1.append((cfg.name, trait.name, METHODS[method], len(fit.fitted), ",".join(fit.fitted), value))
            long = fit.table.drop(columns=["n"]).melt(
                id_vars=["variant", "prompt_key"], var_name="heuristic", value_name="value"
            )
            long = long.join(ys, on="prompt_key").assign(experiment=cfg.name, trait=trait.name)
            gap.append(long[GAP_COLUMNS])
            for (variant, heuristic), g in long.groupby(["variant", "heuristic"], sort=False):
                for target in GAP_TARGETS:
                    res = pearson(g.value.to_numpy(float), g[target].to_numpy(float))
                    corr.append((cfg.name, trait.name, variant, heuristic, target, res.r, res.p, res.n))
    gap_frame = pd.concat(gap, ignore_index=True) if gap else pd.DataFrame(columns=GAP_COLUMNS)
    return (
        pd.DataFrame(rank1, columns=RANK1_COLUMNS),
        gap_frame,
        pd.DataFrame(corr, columns=CORRELATION_COLUMNS),
    )
