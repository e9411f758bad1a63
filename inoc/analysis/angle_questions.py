"""Exp 19's two questions about the angles between prompts (docs/methods.md#angle-questions).

Q1: do the signed top-2 PCA / TruncatedSVD coordinates of the W rows predict each trait's suppression?
Q2: does a prompt's direction predict its cross-trait suppression (a negative-trait prompt's
suppression of the positive trait, and vice versa; neutral prompts excluded)? Predictors:
`angle_from_pca_axis` = degrees(arctan2(|PC2|, |PC1|)), `angle_from_svd_axis` the same on SV1/SV2, and
`angle_to_centroid_<rep>` = the angle between the prompt and the centroid of the other trait's prompts
in the PCA-2D, SVD-2D and raw-W representations.

Also per prompt (step 6): the mean angle to all negative-role and to all positive-role prompts, itself
excluded (`prompt_group_angles`), in each representation. W is as the angle analysis uses it (the
caller sets non-finite entries to 0); PCA is centred and unscaled, TruncatedSVD uncentred, with
sklearn's signs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from inoc.analysis._checks import as_matrix, check_keys
from inoc.analysis.geometry import pairwise_angles, pca, prompt_group_angles, truncated_svd
from inoc.analysis.matrices import clean_nonfinite
from inoc.analysis.performance import pearson

#: Angles below this norm have no direction (as `pairwise_angles`).
MIN_NORM = 1e-10
REPRESENTATIONS = ("raw", "pca2", "svd2")
Q2_PREDICTORS = ("angle_from_pca_axis", "angle_from_svd_axis", *(f"angle_to_centroid_{r}" for r in REPRESENTATIONS))
Q1_PREDICTORS = ("pca_dim1", "pca_dim2", "svd_dim1", "svd_dim2")
OTHER = {"negative": "positive", "positive": "negative"}
PREDICTOR_COLUMNS = ["prompt_key", "role", "predictor", "value"]
QUESTION_COLUMNS = ["question", "predictor", "outcome", "r", "p", "n"]


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < MIN_NORM or nb < MIN_NORM:
        return np.nan
    return float(np.degrees(np.arccos(np.clip(float(a @ b) / (na * nb), -1.0, 1.0))))


def angle_predictors(W: ArrayLike, keys: Sequence[str], roles: Mapping[str, str]) -> pd.DataFrame:
    """Tidy per-prompt predictors of Q1 (`pca_dim1` … `svd_dim2`) and Q2, and the mean angles to each role.

    W: finite, rows = prompts in `keys` order; roles: prompt → negative | positive | neutral. Needs
    ≥ 2 prompts and ≥ 2 columns (two components).
    """
    X = as_matrix(W, "W").astype(np.float64)
    keys = check_keys(keys, X.shape[0])
    if min(X.shape) < 2:
        raise ValueError(f"W: the angle questions need ≥ 2 prompts and ≥ 2 columns, got {X.shape}")
    reps = {"raw": X, "pca2": pca(X, 2).coords, "svd2": truncated_svd(X, 2).coords}
    role = np.array([roles[k] for k in keys])
    rows: list[tuple[str, str, str, float]] = []
    for rep, Y in reps.items():
        means = prompt_group_angles(pairwise_angles(Y), keys, roles).set_index("prompt_key")
        for k in keys:
            for target in ("negative", "positive"):
                rows.append(
                    (k, roles[k], f"mean_angle_to_{target}_{rep}", float(means.loc[k, f"mean_angle_to_{target}"]))
                )
        centroids = {r: Y[role == r].mean(axis=0) if (role == r).any() else None for r in OTHER}
        for i, k in enumerate(keys):
            other = OTHER.get(roles[k])
            c = centroids.get(other) if other else None
            rows.append((k, roles[k], f"angle_to_centroid_{rep}", _angle(Y[i], c) if c is not None else np.nan))
    for method, rep in (("pca", "pca2"), ("svd", "svd2")):
        C = reps[rep]
        for i, k in enumerate(keys):
            rows.append((k, roles[k], f"{method}_dim1", float(C[i, 0])))
            rows.append((k, roles[k], f"{method}_dim2", float(C[i, 1])))
            rows.append(
                (k, roles[k], f"angle_from_{method}_axis", float(np.degrees(np.arctan2(abs(C[i, 1]), abs(C[i, 0])))))
            )
    return pd.DataFrame(rows, columns=PREDICTOR_COLUMNS)


def _pearson(x: pd.Series | None, y: pd.Series):
    joined = pd.concat([x, y], axis=1, join="inner") if x is not None else pd.DataFrame()
    if joined.empty:
        return pearson([np.nan], [np.nan])  # n = 0: r NaN
    return pearson(joined.iloc[:, 0].to_numpy(float), joined.iloc[:, 1].to_numpy(float))


def angle_question_rows(predictors: pd.DataFrame, suppression: pd.DataFrame) -> pd.DataFrame:
    """Pearson r of Q1 and Q2 for one matrix.

    predictors: `angle_predictors` rows; suppression: per prompt the `suppression` of each trait role,
    columns `prompt_key, trait_role, suppression` (one prefix type: the runs the matrix stands for).
    Q1: every prompt, `pca_dim1` … `svd_dim2` against the negative- and the positive-trait suppression.
    Q2: the negative- and positive-role prompts, the five Q2 predictors against cross-trait suppression.
    """
    wide = predictors.pivot_table(index="prompt_key", columns="predictor", values="value", dropna=False)
    role = predictors.drop_duplicates("prompt_key").set_index("prompt_key").role
    supp = suppression.pivot_table(index="prompt_key", columns="trait_role", values="suppression")
    rows = []
    for outcome_role in ("negative", "positive"):
        y = supp[outcome_role] if outcome_role in supp else pd.Series(dtype=float)
        for x in Q1_PREDICTORS:
            res = _pearson(wide.get(x), y)
            rows.append(("q1", x, f"{outcome_role}_trait_suppression", res.r, res.p, res.n))
    cross = pd.Series(
        {
            k: supp.loc[k, OTHER[r]] if k in supp.index and OTHER[r] in supp else np.nan
            for k, r in role.items()
            if r in OTHER
        },
        dtype=float,
    )
    for x in Q2_PREDICTORS:
        res = _pearson(wide.get(x), cross)
        rows.append(("q2", x, "cross_trait_suppression", res.r, res.p, res.n))
    return pd.DataFrame(rows, columns=QUESTION_COLUMNS)


def angle_question_tables(
    experiment: str, roles: Mapping[str, str], matrices: Sequence, suppression: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`prompt_angle_predictors` and `angle_questions` rows for every W matrix (`.name`, `.keys`, `.W`).

    A matrix stands for its prefix type's runs (fixed, fixed_tokens → fixed; mix, mix_tokens → mix);
    prompts of a role outside negative/positive/neutral are left out, as in `angle_groups`; a matrix whose
    prefix type has no suppression rows gets predictors but no `angle_questions` rows. Non-finite
    W entries are set to 0, as the original's angle analysis did.
    """
    pred_frames, q_frames = [], []
    for m in matrices:
        keep = [i for i, k in enumerate(m.keys) if roles.get(k) in ("negative", "positive", "neutral")]
        if len(keep) < 2 or m.W.shape[1] < 2:
            continue
        keys = [m.keys[i] for i in keep]
        X = clean_nonfinite(m.W[keep], "zero")
        pred = angle_predictors(X, keys, roles)
        prefix = m.name.removesuffix("_tokens")
        supp = suppression[suppression.prefix_type == prefix] if len(suppression) else suppression
        supp = (
            supp[["prompt_key", "trait_role", "suppression"]]
            if len(supp)
            else pd.DataFrame(columns=["prompt_key", "trait_role", "suppression"])
        )
        pred_frames.append(pred.assign(experiment=experiment, matrix=m.name))
        if len(supp):  # no runs of this prefix type: the predictors stand, the questions have no outcome
            q_frames.append(angle_question_rows(pred, supp).assign(experiment=experiment, matrix=m.name))
    pcols = ["experiment", "matrix", *PREDICTOR_COLUMNS]
    qcols = ["experiment", "matrix", *QUESTION_COLUMNS]
    return (
        pd.concat(pred_frames, ignore_index=True)[pcols] if pred_frames else pd.DataFrame(columns=pcols),
        pd.concat(q_frames, ignore_index=True)[qcols] if q_frames else pd.DataFrame(columns=qcols),
    )
