"""Computes the registry's per-experiment heuristics and says, for every prompt, which are absent and why.

`catalogue_rows` evaluates the `w_pair`, `token`, `trait_set` and `combine` entries (the `w_row` ones
are `inoc.tables.prompt_tables.heuristics_table`'s; `produced` ones come from their own modules) as
`prompt_heuristics` rows. `availability_rows` then checks every registry heuristic against every
configured prompt (and prefix type, and trait where per trait) and writes one
`heuristic_availability` row with a specific reason wherever no finite value exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from inoc.analysis.token_heuristics import token_delta_matrix
from inoc.config import ExperimentConfig
from inoc.heuristics.registry import INPUTS, REGISTRY, Heuristic, of_kind

COLUMNS = ["experiment", "prompt_key", "prefix_type", "heuristic", "value"]
AVAILABILITY_COLUMNS = ["experiment", "heuristic", "heuristic_id", "prompt_key", "prefix_type", "reason"]
NEUTRAL_FAMILY = "neutral"
_VECTOR = {"fixed": "train_inoc", "mix": "train_mix"}


class TokenSource(Protocol):
    def prompt_keys(self, vector: str) -> set[str]: ...

    def lists(self, prompt_key: str | None, vector: str) -> list[np.ndarray]: ...


class Matrix(Protocol):  # inoc.tables.prompt_tables.WMatrix
    name: str
    keys: list[str]
    W: np.ndarray


def _traits(cfg: ExperimentConfig) -> list:
    return [t for t in cfg.traits if t.role in ("positive", "negative")]


def trait_set(cfg: ExperimentConfig, trait_role: str, keys: Sequence[str]) -> tuple[list[str], list[bool]]:
    """The prompts of `keys` in the trait's families (groups of its role) or the neutral family, with neutral flags."""
    families = {g.family for g in cfg.groups.values() if g.role == trait_role}
    chosen = [k for k in keys if cfg.groups[cfg.group_of(k)].family in families | {NEUTRAL_FAMILY}]
    return chosen, [cfg.groups[cfg.group_of(k)].family == NEUTRAL_FAMILY for k in chosen]


def catalogue_rows(
    cfg: ExperimentConfig, matrices: Sequence[Matrix], tokens: TokenSource | None, existing: pd.DataFrame
) -> pd.DataFrame:
    """`prompt_heuristics` rows of the registry's w_pair, token, trait_set and combine heuristics."""
    rows: list[tuple] = []
    by = {m.name: m for m in matrices}
    # Fixed vs mix, point-wise: prompts present in both.
    if "fixed" in by and "mix" in by:
        f, m = by["fixed"], by["mix"]
        for key in (k for k in f.keys if k in m.keys):
            wf, wm = f.W[f.keys.index(key)], m.W[m.keys.index(key)]
            rows += [(cfg.name, key, None, h.key, h.fn(wf, wm)) for h in of_kind("w_pair")]
    # Token level: one Δ matrix per (prompt, prefix type), read one partition at a time.
    token_hs = of_kind("token")
    if tokens is not None and token_hs:
        default = tokens.lists(None, "train_default")
        if default:
            for prefix, vector in _VECTOR.items():
                hs = [h for h in token_hs if prefix in h.prefix_types]
                present = tokens.prompt_keys(vector)
                for key in (k for k in cfg.prompt_keys if k in present):
                    D = token_delta_matrix(default, tokens.lists(key, vector))
                    rows += [(cfg.name, key, prefix, h.key, h.fn(D)) for h in hs]
                    del D
    # Trait-resolved decompositions: one fit per (decomposition, trait), shared by its components.
    sources = {"point": by.get("fixed"), "token": by.get("fixed_tokens")}
    fits: dict[tuple, np.ndarray | None] = {}
    for h in of_kind("trait_set"):
        mat = sources[h.trait_set]
        if mat is None:
            continue
        for trait in _traits(cfg):
            keys, neutral = trait_set(cfg, trait.role, mat.keys)
            if len(keys) < 3 or all(neutral) or not any(neutral):
                continue  # availability_rows states why
            fit_key = (h.fn, trait.name)
            if fit_key not in fits:
                W = mat.W[[mat.keys.index(k) for k in keys]]
                fits[fit_key] = h.fn(W, keys, neutral)
            coords = fits[fit_key]
            if h.component >= coords.shape[1]:
                continue
            rows += [
                (cfg.name, k, None, h.name_for(trait.name), float(coords[i, h.component])) for i, k in enumerate(keys)
            ]
    # Combinations of other heuristics of the same prompt.
    out = pd.DataFrame(rows, columns=COLUMNS)
    known = pd.concat([existing[COLUMNS], out], ignore_index=True) if len(existing) else out
    lookup = {
        (r.prompt_key, r.prefix_type if isinstance(r.prefix_type, str) else None, r.heuristic): r.value
        for r in known.itertuples()
    }
    combos = []
    for h in of_kind("combine"):
        for key in cfg.prompt_keys:
            for prefix in h.prefix_types:
                value = float(h.fn(lambda name, p, key=key: lookup.get((key, p, name), math.nan)))
                if math.isfinite(value):  # otherwise availability_rows names the missing ingredient
                    combos.append((cfg.name, key, prefix, h.key, value))
    return pd.concat([out, pd.DataFrame(combos, columns=COLUMNS)], ignore_index=True) if combos else out


def present_inputs(
    matrices: Sequence[Matrix], vectors: pd.DataFrame, heur: pd.DataFrame, tokens: TokenSource | None
) -> dict[str, set[str] | None]:
    """Input → the prompt keys that have it (None: the input exists without a per-prompt notion)."""
    by = {m.name: set(m.keys) for m in matrices}
    vec = vectors if len(vectors) else pd.DataFrame(columns=["prompt_key", "vector"])
    names = set(heur.heuristic) if len(heur) else set()

    def having(prefix: str) -> set[str]:
        return set(heur.prompt_key[heur.heuristic.str.startswith(prefix)]) if len(heur) else set()

    token_keys = {
        p: (tokens.prompt_keys(v) if tokens is not None and tokens.lists(None, "train_default") else set())
        for p, v in _VECTOR.items()
    }
    return {
        "w_point_fixed": by.get("fixed", set()),
        "w_point_mix": by.get("mix", set()),
        "w_token_fixed": token_keys["fixed"],
        "w_token_mix": token_keys["mix"],
        "ctrl_completions": set(vec.prompt_key[vec.vector == "ctrl_inoc"].dropna()),
        "trait_completions": set(
            vec.prompt_key[vec.vector.str.endswith("_inoc") & ~vec.vector.isin(["train_inoc", "ctrl_inoc"])].dropna()
        ),
        "elicitation": having("elicitation_"),
        "embeddings": having("emb_"),
        "rephrasings": having("emb_cos_mean") if any(n.startswith("emb_") for n in names) else set(),
        "self_perplexity": having("self_ppl_"),
        "slides": None,
    }


def _input_for(h: Heuristic, prefix: str | None) -> list[str]:
    need = [i for i in h.inputs if i != "slides"]
    if prefix == "fixed":
        need = [i for i in need if not i.endswith("_mix")]
    elif prefix == "mix" and h.kind in ("w_row", "token"):
        need = [i for i in need if not i.endswith("_fixed")]
    return need


def availability_rows(cfg: ExperimentConfig, heur: pd.DataFrame, inputs: dict[str, set[str] | None]) -> pd.DataFrame:
    """One row per (registry heuristic, prompt, prefix type[, trait]) without a finite value, with the reason."""
    have = set()
    if len(heur):
        ok = heur[np.isfinite(heur.value.astype(float))]
        have = {
            (r.prompt_key, r.prefix_type if isinstance(r.prefix_type, str) else None, r.heuristic)
            for r in ok.itertuples()
        }
    computed = (
        {
            (r.prompt_key, r.prefix_type if isinstance(r.prefix_type, str) else None, r.heuristic)
            for r in heur.itertuples()
        }
        if len(heur)
        else set()
    )
    rows = []
    for h in REGISTRY.values():
        if h.kind == "slides":
            continue
        traits: Iterable = _traits(cfg) if h.per_trait else [None]
        for trait in traits:
            name = h.name_for(trait.name) if trait is not None else h.key
            for key in cfg.prompt_keys:
                for prefix in h.prefix_types:
                    if (key, prefix, name) in have:
                        continue
                    rows.append(
                        (cfg.name, name, h.id, key, prefix, _reason(cfg, h, key, prefix, trait, name, inputs, computed))
                    )
    return pd.DataFrame(rows, columns=AVAILABILITY_COLUMNS)


def _reason(cfg, h: Heuristic, key: str, prefix, trait, name: str, inputs, computed) -> str:
    if h.key.startswith("elicitation_") and key == "neutral":
        return "the neutral baseline itself: elicitation is measured relative to it"
    if (key, prefix, name) in computed:
        return f"undefined for this prompt (NaN): {h.definition}"
    for i in _input_for(h, prefix):
        keys = inputs.get(i)
        if keys is not None and not keys:
            return f"input absent in this experiment: {INPUTS[i]}"
    if h.kind == "trait_set" and trait is not None:
        family = cfg.groups[cfg.group_of(key)].family
        families = sorted({g.family for g in cfg.groups.values() if g.role == trait.role} | {NEUTRAL_FAMILY})
        if family not in families:
            return f"prompt family {family!r} is outside {trait.name}'s prompt set (families {families})"
    for i in _input_for(h, prefix):
        keys = inputs.get(i)
        if keys is not None and key not in keys:
            return f"input absent for this prompt: {INPUTS[i]}"
    if h.kind == "trait_set" and trait is not None:
        source = inputs.get(h.inputs[0]) or set()
        keys, neutral = trait_set(cfg, trait.role, [k for k in cfg.prompt_keys if k in source])
        return (
            f"{trait.name}'s prompt set (its family + neutral, with {INPUTS[h.inputs[0]]}) has {len(keys)} prompts, "
            f"{sum(neutral)} neutral: the oriented SVD needs ≥ 3 with both neutral and {trait.name} prompts"
        )
    return "not computed for this prompt"
