"""The heuristic registry: every per-prompt heuristic of inoc, declared once (docs/methods.md#heuristic-registry).

Each `Heuristic` names its warehouse key (the `prompt_heuristics.heuristic` value; `{trait}` stands for
the lower-case trait name), the paper's id where it is one (H1 … HB6), a one-line definition, its
inputs, and how it is computed (`kind` + `fn`):

| kind | fn | computed by |
|---|---|---|
| `w_row` | fn(w) → float, one W row | `inoc.heuristics.compute` on W_fixed and W_mix rows |
| `w_pair` | fn(w_fixed, w_mix) → float | `inoc.heuristics.compute`, prompts in both |
| `token` | fn(Δ) → float, Δ = N examples × T token diffs | `inoc.heuristics.compute` per prompt and prefix type |
| `combine` | fn(get) → float, get(key, prefix_type) reads another heuristic of the same prompt | `inoc.heuristics.compute` |
| `trait_set` | fn(W, keys, neutral) → coords; the entry's `component` picks one column | `inoc.heuristics.compute` per trait |
| `produced` | the producer function (documentation) | its own module (PPD, elicitation, embeddings, self-perplexity) |
| `slides` | a SQL expression over `slides_dataset` columns | `slides.dataset` (cross-experiment: H7's z-scores, H9) |

The prompt tables, figures, the slides dataset, the performance table and the warehouse table
`heuristic_registry` all read this list. Adding a heuristic is one `register(...)` call with its function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from inoc.analysis import token_heuristics as tok
from inoc.analysis.heuristics import lls_metrics, perplexity_heuristic, pointwise_perplexity_drift
from inoc.analysis.trait_svd import oriented_trait_svd, zsum

Kind = Literal["w_row", "w_pair", "token", "combine", "trait_set", "produced", "slides"]

#: Inputs a heuristic can need (`Heuristic.inputs`); `inoc.heuristics.compute` names the missing one.
INPUTS = {
    "w_point_fixed": "point-wise W_fixed (lp_train_inoc − lp_train_default)",
    "w_point_mix": "point-wise W_mix (lp_train_mix − lp_train_default)",
    "w_token_fixed": "token-wise log-probs of the training completions under the fixed prompt",
    "w_token_mix": "token-wise log-probs of the training completions under the mix prompts",
    "ctrl_completions": "log-probs of the control completions (ctrl_default, ctrl_inoc)",
    "trait_completions": "log-probs of single-trait completion sets (<trait>_default, <trait>_inoc)",
    "elicitation": "elicitation scores of the prompt and the neutral baseline",
    "embeddings": "embeddings of the prompt and its rephrasings (text heuristics)",
    "rephrasings": "the prompt's rephrasing pool",
    "self_perplexity": "the base model's log-probs of the prompt text (text heuristics)",
    "slides": "other slides_dataset columns of every experiment",
}


@dataclass(frozen=True)
class Heuristic:
    key: str  # prompt_heuristics.heuristic (`{trait}` → lower-case trait name) or slides_dataset column
    name: str
    definition: str
    inputs: tuple[str, ...]
    kind: Kind
    fn: Any = None  # see the module table; for `slides` the SQL expression (str)
    id: str | None = None  # the paper's id (H1 … HB6)
    prefix_types: tuple[str | None, ...] = ("fixed", "mix")  # (None,) = one value per prompt
    per_trait: bool = False
    component: int = 0  # trait_set: which coordinate column (0-based)
    trait_set: str = ""  # trait_set: the decomposition ("point" or "token") whose coordinates it reads
    slide_column: str | None = None  # its slides_dataset column (None: not in the slides dataset)
    slide_prefix: Literal["row", "fixed", "none"] = "row"  # which prefix type's value a slides row takes
    performance_label: str | None = None  # its row label in heuristic_performance (None: not ranked)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [i for i in self.inputs if i not in INPUTS]
        if unknown:
            raise ValueError(f"heuristic {self.key!r}: unknown input(s) {unknown}; expected some of {sorted(INPUTS)}")

    def name_for(self, trait: str | None) -> str:
        """The warehouse key of this heuristic for one trait (per-trait heuristics) or as is."""
        if self.per_trait:
            if not trait:
                raise ValueError(f"heuristic {self.key!r} is per trait: name the trait")
            return self.key.replace(
                "{trait}", trait if self.extra.get("trait_case") == "as_configured" else trait.lower()
            )
        return self.key


REGISTRY: dict[str, Heuristic] = {}


def register(h: Heuristic) -> Heuristic:
    """Add one heuristic; its key must be new."""
    if h.key in REGISTRY:
        raise ValueError(f"heuristic {h.key!r} is registered twice")
    if h.kind != "produced" and h.kind != "slides" and not callable(h.fn):
        raise ValueError(f"heuristic {h.key!r}: kind {h.kind!r} needs a function")
    if h.kind == "slides" and (not isinstance(h.fn, str) or set(h.extra.get("uses", {})) != {"fixed", "mix"}):
        raise ValueError(
            f"heuristic {h.key!r}: a slides heuristic needs a SQL expression and extra['uses'] "
            "(the slides_dataset columns it reads on fixed and on mix rows)"
        )
    REGISTRY[h.key] = h
    return h


def of_kind(*kinds: str) -> list[Heuristic]:
    return [h for h in REGISTRY.values() if h.kind in kinds]


# --- W rows: the LLS metrics (docs/methods.md#lls-metrics) ------------------------------------------


def _lls(field_name: str) -> Callable[[np.ndarray], float]:
    def fn(w: np.ndarray) -> float:
        return float(getattr(lls_metrics(w), field_name))

    fn.__name__ = f"lls_{field_name}"
    return fn


register(
    Heuristic(
        "ph",
        "Perplexity heuristic (PH)",
        "mean_k w[k], W = lp_inoc − lp_default over the training completions",
        ("w_point_fixed", "w_point_mix"),
        "w_row",
        _lls("ph"),
        id="H2",
        slide_column="ph_prefix",
        performance_label="ph_prefix",
    )
)
register(
    Heuristic("gamma", "γ", "fraction of examples with w > 0", ("w_point_fixed", "w_point_mix"), "w_row", _lls("gamma"))
)
register(Heuristic("sigma", "σ", "std(w), ddof 1", ("w_point_fixed", "w_point_mix"), "w_row", _lls("sigma")))
register(
    Heuristic("snr", "SNR", "mean(w)/std(w); NaN when σ ≤ 1e-9", ("w_point_fixed", "w_point_mix"), "w_row", _lls("snr"))
)
register(
    Heuristic("snr_abs", "SNR_abs", "|mean(w)|/std(w)", ("w_point_fixed", "w_point_mix"), "w_row", _lls("snr_abs"))
)
register(Heuristic("mald", "MALD", "mean |w|", ("w_point_fixed", "w_point_mix"), "w_row", _lls("mald")))

# --- produced elsewhere ----------------------------------------------------------------------------

register(
    Heuristic(
        "ppd",
        "Point-wise perplexity drift (PPD)",
        "mean_i |lp_ctrl_inoc[i] − lp_ctrl_default[i]| on the control completions",
        ("ctrl_completions",),
        "produced",
        pointwise_perplexity_drift,
        prefix_types=("fixed",),
    )
)
register(
    Heuristic(
        "ph_{trait}",
        "Trait PH",
        "PH on the trait's single-trait completion set",
        ("trait_completions",),
        "produced",
        perplexity_heuristic,
        prefix_types=("fixed",),
        per_trait=True,
    )
)
register(
    Heuristic(
        "ppd_{trait}",
        "Trait PPD",
        "PPD on the trait's single-trait completion set",
        ("trait_completions",),
        "produced",
        pointwise_perplexity_drift,
        prefix_types=("fixed",),
        per_trait=True,
    )
)
register(
    Heuristic(
        "elicitation_{trait}",
        "Elicitation",
        "trait score (pp) under the prompt minus the neutral baseline's",
        ("elicitation",),
        "produced",
        None,
        id="H1",
        prefix_types=(None,),
        per_trait=True,
        extra={"trait_case": "as_configured"},
    )
)


def _text(key: str, name: str, definition: str, inputs: tuple[str, ...], **kw: Any) -> None:
    register(
        Heuristic(
            key,
            name,
            definition,
            inputs,
            "produced",
            None,
            prefix_types=(None,),
            slide_column=key,
            slide_prefix="none",
            **kw,
        )
    )


_text(
    "emb_cos_mean", "Rephrasing cos mean", "mean cos(rephrasing, prompt) over the pool", ("embeddings", "rephrasings")
)
_text(
    "emb_cos_std",
    "Rephrasing cos std",
    "std cos(rephrasing, prompt) over the pool (ddof 0)",
    ("embeddings", "rephrasings"),
    id="H6",
    performance_label="H6 Emb rephrase std",
)
_text("emb_cos_min", "Rephrasing cos min", "min cos(rephrasing, prompt) over the pool", ("embeddings", "rephrasings"))
_text(
    "emb_eff_rank",
    "Rephrasing effective rank",
    "exp(entropy(σ/Σσ)) of the centred rephrasing-embedding matrix",
    ("embeddings", "rephrasings"),
)
_text(
    "emb_l2_neutral",
    "Embedding distance to neutral",
    "‖p − centroid(neutral prompts)‖₂ of unit embeddings",
    ("embeddings",),
    id="H5",
    performance_label="H5 Emb dist neutral",
)
_text(
    "emb_cos_negative", "Embedding cos to negative", "cos(p, centroid of the negative-group prompts)", ("embeddings",)
)
_text(
    "emb_cos_positive", "Embedding cos to positive", "cos(p, centroid of the positive-group prompts)", ("embeddings",)
)
_text(
    "self_ppl_raw", "Self-perplexity (raw)", "base model NLL per token of the prompt text alone", ("self_perplexity",)
)
_text(
    "self_ppl_context",
    "Self-perplexity (in context)",
    "base model NLL per token of the prompt as a system prompt",
    ("self_perplexity",),
)

# --- fixed vs mix, point-wise (docs/methods.md#heuristic-registry; std ddof 0, jointly finite entries) ---


def _pair(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    def wrapped(wf: np.ndarray, wm: np.ndarray) -> float:
        ok = np.isfinite(wf) & np.isfinite(wm)
        if ok.sum() < 2:
            return math.nan
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(fn(wf[ok].astype(np.float64), wm[ok].astype(np.float64)))

    wrapped.__name__ = fn.__name__
    return wrapped


def _div(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


def _snr(w: np.ndarray) -> float:
    return _div(w.mean(), w.std())


_PAIRS: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], float]]] = {
    "lp_spread_mean": ("mean(D), D = W_mix − W_fixed", lambda f, m: (m - f).mean()),
    "lp_spread_std": ("std(D)", lambda f, m: (m - f).std()),
    "w_std_diff": ("std(D)", lambda f, m: (m - f).std()),
    "w_cos": ("cos(W_fixed, W_mix)", lambda f, m: _div(f @ m, np.linalg.norm(f) * np.linalg.norm(m))),
    "w_cor": (
        "pearson(W_fixed, W_mix)",
        lambda f, m: _div(((f - f.mean()) * (m - m.mean())).mean(), f.std() * m.std()),
    ),
    "w_sign_agree": ("mean(sign W_fixed == sign W_mix)", lambda f, m: (np.sign(f) == np.sign(m)).mean()),
    "w_std_ratio": ("std(W_mix)/std(W_fixed)", lambda f, m: _div(m.std(), f.std())),
    "w_l2": ("‖D‖₂", lambda f, m: np.linalg.norm(m - f)),
    "w_proj": ("(W_fixed·W_mix)/(W_fixed·W_fixed)", lambda f, m: _div(f @ m, f @ f)),
    "ph_mix_all": ("mean(W_mix)", lambda f, m: m.mean()),
    "ph_ratio": ("mean(W_mix)/mean(W_fixed)", lambda f, m: _div(m.mean(), f.mean())),
    "ph_drop": ("mean(W_fixed) − mean(W_mix)", lambda f, m: f.mean() - m.mean()),
    "snr_all": ("mean(W_fixed)/std(W_fixed)", lambda f, m: _snr(f)),
    "snr_mix": ("mean(W_mix)/std(W_mix)", lambda f, m: _snr(m)),
    "snr_drop": ("snr_all − snr_mix", lambda f, m: _snr(f) - _snr(m)),
    "snr_ratio_mix_over_fixed": ("snr_mix/snr_all", lambda f, m: _div(_snr(m), _snr(f))),
    "snr_ratio_fixed_over_mix": ("snr_all/snr_mix", lambda f, m: _div(_snr(f), _snr(m))),
}
for _key, (_definition, _fn) in _PAIRS.items():
    _fn.__name__ = _key
    register(
        Heuristic(_key, _key, _definition, ("w_point_fixed", "w_point_mix"), "w_pair", _pair(_fn), prefix_types=(None,))
    )

# --- token level (docs/methods.md#token-heuristics) -------------------------------------------------

_TOK = ("w_token_fixed", "w_token_mix")
for _id, _fn, _name in (
    ("H11", tok.h11_mean_abs_diff, "Mean |token diff|"),
    ("H12", tok.h12_abs_minus_signed, "Mean |Δ| − mean Δ"),
    ("H13", tok.h13_mean_sq_diff, "Mean squared token diff"),
    ("H14", tok.h14_mean_signed_tok_diff, "Mean signed token diff"),
    ("HA2", tok.ha2_filter, "Filtered token diff"),
    ("HA3", tok.ha3_topk, "Top-25 % token diff"),
    ("HA4", tok.ha4_grad_mag, "Gradient magnitude"),
    ("HA5", tok.ha5_filter_grad, "Filtered gradient magnitude"),
):
    register(
        Heuristic(
            _fn.__name__,
            _name,
            (_fn.__doc__ or "").split("\n")[0].split(": ", 1)[-1],
            _TOK,
            "token",
            _fn,
            id=_id,
            slide_column=_fn.__name__,
            performance_label=None if _id == "H12" else f"{_id} {_name}",
        )
    )
for _id, _fn, _name in (
    ("HB1", tok.hb1_pc1_var_frac, "Token SVD PC1 variance fraction"),
    ("HB2", tok.hb2_sim_loss_decay, "Simulated loss decay"),
    ("HB3", tok.hb3_persistent_loss_frac, "Persistent-loss fraction"),
    ("HB5", tok.hb5_effective_rank, "Token SVD effective rank"),
    ("HB6", tok.hb6_sim_residual, "Simulated residual loss"),
):
    register(
        Heuristic(
            _fn.__name__,
            _name,
            (_fn.__doc__ or "").split("\n")[0].split(": ", 1)[-1],
            ("w_token_fixed",),
            "token",
            _fn,
            id=_id,
            prefix_types=("fixed",),
            slide_column=_fn.__name__,
            slide_prefix="fixed",
            performance_label=f"{_id} {_name}",
        )
    )


def hb4_strength_x_coherence(get: Callable[[str, str | None], float]) -> float:
    """HB4: PH of W_fixed × HB1."""
    return get("ph", "fixed") * get("hb1_pc1_var_frac", "fixed")


register(
    Heuristic(
        "hb4_strength_x_coherence",
        "Strength × coherence",
        "PH (fixed) × HB1",
        ("w_point_fixed", "w_token_fixed"),
        "combine",
        hb4_strength_x_coherence,
        id="HB4",
        prefix_types=("fixed",),
        slide_column="hb4_strength_x_coherence",
        slide_prefix="fixed",
        performance_label="HB4 Strength x coherence",
    )
)

# --- trait-resolved SVDs (docs/methods.md#trait-svd) ------------------------------------------------


def h3_point_svd(W: np.ndarray, keys: list[str], neutral: list[bool]) -> np.ndarray:
    """H3: TruncatedSVD(2) of point-wise W_fixed over the trait's family + neutral prompts, oriented."""
    return oriented_trait_svd(W, keys, neutral, min(2, *W.shape)).coords


def h4_token_svd(W: np.ndarray, keys: list[str], neutral: list[bool]) -> np.ndarray:
    """H4: TruncatedSVD(min(3, N − 1)) of token-wise W_fixed over family + neutral prompts, oriented; + z-sum."""
    coords = oriented_trait_svd(W, keys, neutral, min(3, W.shape[0] - 1, W.shape[1])).coords
    # Always pc1, pc2, pc3, zsum: with fewer components (N ≤ 3) the missing ones are NaN, not shifted.
    padded = np.full((coords.shape[0], 3), np.nan)
    padded[:, : coords.shape[1]] = coords
    return np.column_stack([padded, zsum(padded)])


for _c in range(2):
    register(
        Heuristic(
            f"pc{_c + 1}_trait_svd_{{trait}}",
            f"Datapoint SVD PC{_c + 1} (trait)",
            f"component {_c + 1} of the oriented TruncatedSVD of point-wise W_fixed over the trait's family + neutral prompts",
            ("w_point_fixed",),
            "trait_set",
            h3_point_svd,
            id="H3" if _c == 0 else None,
            prefix_types=(None,),
            per_trait=True,
            component=_c,
            trait_set="point",
            slide_column=f"pc{_c + 1}_trait_svd",
            slide_prefix="none",
            performance_label="H3 Datapoint SVD PC1" if _c == 0 else None,
        )
    )
for _c in range(3):
    register(
        Heuristic(
            f"pc{_c + 1}_tok_{{trait}}",
            f"Token SVD PC{_c + 1} (trait)",
            f"component {_c + 1} of the oriented TruncatedSVD of token-wise W_fixed over the trait's family + neutral prompts",
            ("w_token_fixed",),
            "trait_set",
            h4_token_svd,
            id="H4" if _c == 0 else None,
            prefix_types=(None,),
            per_trait=True,
            component=_c,
            trait_set="token",
            slide_column=f"pc{_c + 1}_tok",
            slide_prefix="none",
            performance_label="H4 Token SVD PC1" if _c == 0 else None,
        )
    )
register(
    Heuristic(
        "tok_svd_zsum_{trait}",
        "Token SVD z-sum (trait)",
        "z(pc1_tok) + z(pc2_tok) + z(pc3_tok) over the prompts of the set (ddof 0)",
        ("w_token_fixed",),
        "trait_set",
        h4_token_svd,
        prefix_types=(None,),
        per_trait=True,
        component=3,
        trait_set="token",
        slide_column="tok_svd_zsum",
        slide_prefix="none",
    )
)

# --- cross-experiment, on slides_dataset (docs/methods.md#slides-heuristics) ------------------------


def _z(col: str) -> str:
    # pandas' z-score: NaN counts as missing (DuckDB's avg would return NaN), std ddof 1.
    x = f"(CASE WHEN isnan({col}) THEN NULL ELSE {col} END)"
    return f"({x} - avg({x}) OVER ()) / stddev_samp({x}) OVER ()"


register(
    Heuristic(
        "h7_zsum",
        "Z-score composite",
        "z(H1) + z(H4) + z(H5), minus z(H6) on mix rows; z over all slides rows (ddof 1)",
        ("elicitation", "w_token_fixed", "embeddings", "slides"),
        "slides",
        f"{_z('elicitation')} + {_z('pc1_tok')} + {_z('emb_l2_neutral')}"
        f" - CASE WHEN prefix_type = 'mix' THEN {_z('emb_cos_std')} ELSE 0 END",
        id="H7",
        slide_column="h7_zsum",
        performance_label="H7 Z-score composite",
        extra={
            "uses": {
                "fixed": ["elicitation", "pc1_tok", "emb_l2_neutral"],
                "mix": ["elicitation", "pc1_tok", "emb_l2_neutral", "emb_cos_std"],
            }
        },
    )
)
register(
    Heuristic(
        "h9a_emb_cos_cross",
        "Embedding cos to the other trait",
        "cos to the positive-group centroid on negative rows, to the negative-group centroid on positive rows",
        ("embeddings", "slides"),
        "slides",
        "CASE trait_role WHEN 'negative' THEN emb_cos_positive WHEN 'positive' THEN emb_cos_negative END",
        id="H9a",
        slide_column="h9a_emb_cos_cross",
        performance_label="H9a Emb cos cross",
        extra={
            "uses": {"fixed": ["emb_cos_positive", "emb_cos_negative"], "mix": ["emb_cos_positive", "emb_cos_negative"]}
        },
    )
)
register(
    Heuristic(
        "h9b_svd_cross_proj",
        "SVD cross projection",
        "+SV2 of the token-wise TruncatedSVD of W_fixed on negative rows, −SV2 on positive rows",
        ("w_token_fixed", "slides"),
        "slides",
        "CASE trait_role WHEN 'negative' THEN sv2_fixed WHEN 'positive' THEN -sv2_fixed END",
        id="H9b",
        slide_column="h9b_svd_cross_proj",
        performance_label="H9b SVD cross proj",
        extra={"uses": {"fixed": ["sv2_fixed"], "mix": ["sv2_fixed"]}},
    )
)

#: H10 (docs/methods.md#h10: `±pc2_tokens_oriented`, + on negative rows, − on positive rows) is registered
#: as unavailable. Its producer is not in the original snapshot and the spec states no orientation rule:
#: `pc2_tokens_oriented` equals ± the token-level StandardScaler-PCA PC2 with a sign the snapshot does not
#: determine. The sign decides the sign of r per experiment and so the pooled r; any rule inoc chose would
#: be a guess presented as the paper's heuristic. H9b is the same cross projection on SV2 (sklearn's sign).
H10_UNAVAILABLE = (
    "unavailable: the original's producer of pc2_tokens_oriented is missing and the spec gives no orientation "
    "rule for PC2 (its sign sets the sign of r per experiment); see H9b for the SV2 cross projection"
)
register(
    Heuristic(
        "h10_tok_svd_cross_proj",
        "Token PCA cross projection",
        "±PC2 of the token-level PCA of W_fixed, oriented (+ on negative rows, − on positive rows); " + H10_UNAVAILABLE,
        ("w_token_fixed", "slides"),
        "slides",
        "CAST(NULL AS DOUBLE)",
        id="H10",
        slide_column="h10_tok_svd_cross_proj",
        performance_label="H10 Tok SVD cross proj",
        extra={"uses": {"fixed": [], "mix": []}, "unavailable": H10_UNAVAILABLE},
    )
)

# Columns of slides/dataset.sql itself (hand-written SQL; tests check they exist there).
SQL_COLUMNS = {
    "elicitation": "elicitation_{trait}",
    "ph": "ph_{trait}",
    "ph_combined": "ph",
    "ph_prefix": "ph",
    "pc1": "prompt_coords",
    "pc2": "prompt_coords",
    "sv1": "prompt_coords",
    "sv2": "prompt_coords",
}

#: heuristic_performance's X columns, in table order: the dataset's own ones first, then the catalogue's.
PERFORMANCE_BASE = ("elicitation", "ph_combined", "ph_prefix", "pc1", "pc2", "sv1", "sv2")


def performance_columns() -> list[str]:
    """slides_dataset columns ranked in heuristic_performance."""
    extra = [
        h.slide_column for h in REGISTRY.values() if h.performance_label and h.slide_column not in PERFORMANCE_BASE
    ]
    return [*PERFORMANCE_BASE, *extra]


def slide_entries() -> list[Heuristic]:
    """Registry entries that add a column to slides_dataset beyond dataset.sql's own."""
    return [h for h in REGISTRY.values() if h.slide_column and h.slide_column not in SQL_COLUMNS]


def lls_names() -> tuple[str, ...]:
    """The W-row metrics (prompt_heuristics on fixed and mix rows), in registry order."""
    return tuple(h.key for h in of_kind("w_row"))


def lls_grid() -> list[str]:
    """The LLS figure's panels: the W-row metrics, then PPD (fixed rows of prompt_heuristics)."""
    return [*lls_names(), REGISTRY["ppd"].key]
