"""The suppression predictor: a small scikit-learn model with jackknife+ intervals.

Kinds:
- ``ridge`` (default): standardized features (StandardScaler's arithmetic) → RidgeCV (alpha by efficient
  leave-one-out over `ALPHAS`). With fewer than `SELECT_BELOW` training prompts each fit first chooses the
  subset of the given features with the smallest leave-one-out squared error (RidgeCV's efficient LOO at its
  best alpha): with five or six prompts, two collinear features extrapolate wildly where one does not. The
  choice is made again inside every refit, so the intervals and the validation stay out of sample.
- ``group_mean``: the baseline of SPEC's "predicting the group mean": the mean suppression of the
  training prompts of the same (experiment, prompt group); where the group has none, of the same
  prompt family; where the family is new too (another study's prompts), of all training prompts.

Predictions and interval bounds are clipped to `BOUNDS` (a suppression is a difference of two 0–100
scores). A feature outside the range of the training prompts is clamped to that range before predicting
(a linear trend seen over a narrow range is not extended far beyond it), and `Predictor.predict` flags the
row `extrapolated` when a feature the model uses was clamped: its prediction rests on the other features.

Intervals (both kinds): jackknife+ (Barber et al. 2021) on the leave-one-out refits. With n training
prompts, `mu_i` the model fit without prompt i and `R_i = |y_i − mu_i(x_i)|`, the interval at x is
[the ⌊α(n+1)⌋-th smallest mu_i(x) − R_i, the ⌈(1−α)(n+1)⌉-th smallest mu_i(x) + R_i], α = 1 − coverage.
Each refit re-selects its alpha (nested), so the residuals are honest out-of-sample errors. When
n < 1/α − 1 (fewer than 9 prompts at 90 %; at least `MIN_TRAIN` = 4 are required) the rank exceeds n; the interval then spans all n
leave-one-out intervals (`Predictor.rank_clamped` is True) and its finite-sample level is below
`coverage` — finite rather than infinite, so a ranking can still use it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

KINDS = ("ridge", "group_mean")
DEFAULT_KIND = "ridge"
#: The fewest training prompts a fit accepts: below this the leave-one-out residuals say nothing.
#: 4 because the smallest reference study (German/Flattering) trained 4 own-trait prompts.
MIN_TRAIN = 4
ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 25))
TARGET = "suppression"
#: Below this many training prompts, ridge picks its feature subset by leave-one-out error (nested in every refit).
SELECT_BELOW = 20
#: A suppression (pp) is a difference of two 0–100 scores.
BOUNDS = (-100.0, 100.0)
#: How a fitted model predicts (selection, clamping, clipping); part of `model_version`, so a change of method
#: with the same data is a new version (the history keeps each version's predictions once).
METHOD = 2


@dataclass
class _Fitted:
    """One fit on a set of rows: predicts a 1-D array for a feature matrix (+ the rows, for group_mean)."""

    kind: str
    model: object = None
    means: dict = field(default_factory=dict)
    columns: tuple[int, ...] = ()  # ridge: the feature columns it chose

    def predict(self, X: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        if self.kind == "ridge":
            # RidgeCV.predict's arithmetic without its input validation (called n × rows times)
            X = X[:, list(self.columns)]
            return (X - self.means["center"]) / self.means["scale"] @ self.model.coef_ + self.model.intercept_
        g, f, overall = self.means["group"], self.means["family"], self.means["all"]
        out = []
        for e, grp, fam in zip(rows["experiment"], rows["prompt_group"], rows["prompt_family"]):
            v = g.get((e, grp))
            out.append(v if v is not None else f.get(fam, overall))
        return np.asarray(out, float)


def _ridge(X: np.ndarray, y: np.ndarray, columns: tuple[int, ...]) -> tuple[_Fitted, float]:
    """Ridge on ``columns`` and its leave-one-out mean squared error at the chosen alpha."""
    Xc = X[:, list(columns)]
    # StandardScaler's arithmetic (ddof 0, a constant column scaled by 1), without a Pipeline's per-call
    # overhead: validation refits this n² times.
    center, scale = Xc.mean(axis=0), Xc.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    model = RidgeCV(alphas=ALPHAS, store_cv_results=True).fit((Xc - center) / scale, y)
    loo_mse = float(model.cv_results_.mean(axis=0).min())
    return _Fitted("ridge", model, {"center": center, "scale": scale}, columns), loo_mse


def _fit_once(kind: str, X: np.ndarray, y: np.ndarray, rows: pd.DataFrame) -> _Fitted:
    if kind == "ridge":
        k = X.shape[1]
        subsets = [tuple(range(k))]
        if len(y) < SELECT_BELOW and k > 1:
            subsets = [tuple(c) for r in range(1, k + 1) for c in itertools.combinations(range(k), r)]
        fits = [_ridge(X, y, c) for c in subsets]
        return min(fits, key=lambda f: f[1])[0]  # ties: the fewer features (listed first)
    groups: dict = {}
    families: dict = {}
    for e, grp, fam, v in zip(rows["experiment"], rows["prompt_group"], rows["prompt_family"], y):
        groups.setdefault((e, grp), []).append(v)
        families.setdefault(fam, []).append(v)
    mean = lambda vs: float(np.mean(vs))  # noqa: E731
    return _Fitted(
        kind,
        means={
            "group": {k: mean(v) for k, v in groups.items()},
            "family": {k: mean(v) for k, v in families.items()},
            "all": mean(y),
        },
    )


@dataclass
class Predictor:
    """A fitted predictor of one target (one prefix type's own-trait suppression)."""

    kind: str
    features: list[str]
    coverage: float
    hyper_parameters: dict
    trained_on: list[tuple[str, str]]
    version: str
    rank_clamped: bool
    full: _Fitted
    loo: list[_Fitted]
    loo_residuals: np.ndarray
    loo_predictions: np.ndarray
    train_range: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))  # per feature: min, max over the fit

    @property
    def n_train(self) -> int:
        return len(self.trained_on)

    @property
    def used_features(self) -> list[str]:
        """The features the full fit uses (ridge may choose a subset; group_mean uses none)."""
        return [self.features[i] for i in self.full.columns] if self.kind == "ridge" else []

    def coefficients(self) -> dict[str, float]:
        """Ridge coefficients per used feature in units of the target per training-set SD of the feature (empty for group_mean)."""
        if self.kind != "ridge":
            return {}
        return dict(zip(self.used_features, map(float, self.full.model.coef_)))

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """`prediction, lo, hi, extrapolated` for each row (index aligned); NaN where a feature is NaN. Values are
        clipped to `BOUNDS`; `extrapolated`: a used feature lies outside the training prompts' range."""
        _check_columns(rows, self.features, self.kind, "rows to predict")
        X = rows[self.features].to_numpy(float) if self.features else np.zeros((len(rows), 0))
        ok = np.isfinite(X).all(axis=1)
        out = pd.DataFrame({"prediction": np.nan, "lo": np.nan, "hi": np.nan, "extrapolated": False}, index=rows.index)
        if not ok.any():
            return out
        Xo, ro = X[ok], rows[ok]
        outside = np.zeros(len(Xo), bool)
        if self.kind == "ridge" and len(self.train_range[0]):
            # Clamp each feature to its training range: a linear trend seen over a narrow range is not
            # extended far beyond it (six prompts' PH spanning 0.02–0.05 would otherwise "predict" 500 pp
            # for a prompt at −0.2). The row is flagged instead.
            lo_x, hi_x = self.train_range
            used = list(self.full.columns)
            outside = ((Xo[:, used] < lo_x[used]) | (Xo[:, used] > hi_x[used])).any(axis=1)
            Xo = np.clip(Xo, lo_x, hi_x)
        pred = self.full.predict(Xo, ro)
        mu = np.column_stack([m.predict(Xo, ro) for m in self.loo])  # rows × n
        lo, hi = _jackknife_plus(mu, self.loo_residuals, self.coverage)
        out.loc[ok, "prediction"], out.loc[ok, "lo"], out.loc[ok, "hi"] = (np.clip(v, *BOUNDS) for v in (pred, lo, hi))
        out.loc[ok, "extrapolated"] = outside
        return out


def _ranks(n: int, coverage: float) -> tuple[int, int, bool]:
    """1-based ranks of the jackknife+ lower and upper quantiles, clamped to 1…n, and whether they were."""
    alpha = 1.0 - coverage
    lo, hi = math.floor(alpha * (n + 1)), math.ceil((1 - alpha) * (n + 1) - 1e-9)
    return max(lo, 1), min(hi, n), lo < 1 or hi > n


def _jackknife_plus(mu: np.ndarray, residuals: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    n = mu.shape[1]
    k_lo, k_hi, _ = _ranks(n, coverage)
    lower = np.sort(mu - residuals[None, :], axis=1)[:, k_lo - 1]
    upper = np.sort(mu + residuals[None, :], axis=1)[:, k_hi - 1]
    return lower, upper


def _check_columns(rows: pd.DataFrame, features: Sequence[str], kind: str, what: str) -> None:
    need = [*features, *(["experiment", "prompt_group", "prompt_family"] if kind == "group_mean" else [])]
    missing = [c for c in need if c not in rows.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {missing}; expected the feature columns {list(features)}"
            + (" and experiment, prompt_group, prompt_family (group_mean)" if kind == "group_mean" else "")
        )


def _version(kind: str, hyper: dict, features: Sequence[str], train: pd.DataFrame, X: np.ndarray, y: np.ndarray) -> str:
    """sha256 (16 hex) of the kind, hyper-parameters, features and the exact training rows (ids, inputs, target)."""
    rows = [
        [str(e), str(k), str(g), str(f), [float(v).hex() for v in x], float(t).hex()]
        for e, k, g, f, x, t in zip(
            train["experiment"],
            train["prompt_key"],
            train.get("prompt_group", [""] * len(train)),
            train.get("prompt_family", [""] * len(train)),
            X,
            y,
        )
    ]
    blob = json.dumps({"kind": kind, "hyper": hyper, "features": list(features), "rows": sorted(rows)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fit(train: pd.DataFrame, features: Sequence[str], *, kind: str = DEFAULT_KIND, coverage: float = 0.9) -> Predictor:
    """Fit on the rows of `train` with a finite suppression and finite features (others are ignored:
    a candidate without a run can be passed along). ValueError when a column is missing or fewer than
    `MIN_TRAIN` rows are usable."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage {coverage!r}: expected a level strictly between 0 and 1 (e.g. 0.9)")
    features = list(features)
    if kind == "ridge" and not features:
        raise ValueError("ridge needs at least one feature; got none")
    _check_columns(train, [*features, TARGET, "experiment", "prompt_key"], kind, "training rows")
    X = train[features].to_numpy(float) if features else np.zeros((len(train), 0))
    y = train[TARGET].to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    if ok.sum() < MIN_TRAIN:
        nan_counts = {f: int((~np.isfinite(train[f].to_numpy(float))).sum()) for f in features}
        raise ValueError(
            f"too few training rows: {int(ok.sum())} of {len(train)} have a finite {TARGET} and finite {features} "
            f"({int(np.isfinite(y).sum())} with a {TARGET}; NaN per feature {nan_counts}); need at least {MIN_TRAIN}"
        )
    rows, X, y = train[ok], X[ok], y[ok]
    keys = list(zip(rows["experiment"].astype(str), rows["prompt_key"].astype(str)))
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(
            f"training rows repeat (experiment, prompt_key) {dup[:5]}; expected one row per prompt (one prefix type)"
        )
    n = len(y)
    hyper = {"coverage": coverage, "interval": "jackknife+", "min_train": MIN_TRAIN, "method": METHOD}
    if kind == "ridge":
        hyper |= {
            "alphas": list(ALPHAS),
            "scaler": "StandardScaler",
            "alpha_selection": "RidgeCV efficient LOO (nested per refit)",
            "feature_selection": f"below {SELECT_BELOW} prompts: the subset with the smallest LOO MSE (nested per refit)",
            "bounds": list(BOUNDS),
        }
    else:
        hyper |= {"fallback": "group → family → all training prompts"}
    full = _fit_once(kind, X, y, rows)
    if kind == "ridge":
        hyper["alpha"] = float(full.model.alpha_)
        hyper["chosen_features"] = [features[i] for i in full.columns]
    loo, pred_loo = [], np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        m = _fit_once(kind, X[keep], y[keep], rows[keep])
        loo.append(m)
        pred_loo[i] = m.predict(X[i : i + 1], rows.iloc[i : i + 1])[0]
    _, _, clamped = _ranks(n, coverage)
    return Predictor(
        kind=kind,
        features=features,
        coverage=coverage,
        hyper_parameters=hyper,
        trained_on=keys,
        version=_version(kind, hyper, features, rows, X, y),
        rank_clamped=clamped,
        full=full,
        loo=loo,
        loo_residuals=np.abs(y - pred_loo),
        loo_predictions=pred_loo,
        train_range=(X.min(axis=0), X.max(axis=0)),
    )
