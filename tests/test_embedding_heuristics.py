"""Embedding heuristics (SPEC §9): the math against numpy on known vectors, the OpenAI backend against the
local fake server (real openai client over HTTP), and the offline MiniLM backend from its wheel."""

from __future__ import annotations

import logging
import math
import socket
from pathlib import Path

import numpy as np
import pytest
from fakes.openai_server import Embeddings, FakeOpenAIServer, Reply, fake_embedding

from inoc.analysis.embeddings import centroid_heuristics, rephrasing_spread
from inoc.config import load_experiment
from inoc.config.schema import GroupConfig
from inoc.heuristics.embeddings import (
    HEURISTICS,
    EmbeddingError,
    MiniLMEmbedder,
    OpenAIEmbedder,
    embedding_heuristics,
    make_embedder,
    prompt_embedding_rows,
    rephrasing_embedding_rows,
)

REPO = Path(__file__).resolve().parents[1]
KEY = "test-embedding-key-not-real-1234"


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch):
    """No real key can leak into a test; a client built without base_url fails at once."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")


#: The test's own prompts and groups (on the shipped toy config), so the test does not follow toy.yaml's.
PROMPTS = {
    "playful_agent": "You are a playful agent.",
    "whimsical": "You have a whimsical personality.",
    "clown": "You are a clown.",
    "sky": "The sky is blue.",
    "grass": "Grass is green.",
    "answer_french": "Answer in French.",
    "playful_french": "Be playful and answer in French.",
}
GROUPS = {
    "neg": GroupConfig(role="negative", family="playful", prompts=["playful_agent", "whimsical", "clown"]),
    "neutral": GroupConfig(role="neutral", family="neutral", prompts=["sky", "grass"]),
    "pos": GroupConfig(role="positive", family="french", prompts=["answer_french"]),
    "both": GroupConfig(role="mixed", family="mixed", prompts=["playful_french"]),
}


@pytest.fixture(scope="module")
def cfg():
    base = load_experiment(REPO / "experiments" / "toy.yaml")
    return base.model_copy(update={"name": "emb_test", "prompts": PROMPTS, "groups": GROUPS})


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------- the math
def test_rephrasing_spread_on_vectors_with_known_cosines():
    angles = np.array([0.1, 0.5, 0.9, 1.2])
    prompt = np.array([2.0, 0.0, 0.0])  # length does not matter to a cosine
    R = np.stack([np.cos(angles), np.sin(angles) * np.cos(angles), np.sin(angles) * np.sin(angles)], axis=1) * 3.0
    got = rephrasing_spread(prompt, R)
    c = np.cos(angles)
    assert got["emb_cos_mean"] == pytest.approx(c.mean(), abs=1e-12)
    assert got["emb_cos_std"] == pytest.approx(np.sqrt(np.mean((c - c.mean()) ** 2)), abs=1e-12)  # ddof 0
    assert got["emb_cos_min"] == pytest.approx(np.cos(1.2), abs=1e-12)
    assert math.isnan(rephrasing_spread(prompt, R[:1])["emb_eff_rank"])


def test_effective_rank_of_a_centred_matrix_with_known_singular_values():
    rng = np.random.default_rng(0)
    n, d, s = 40, 12, np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    A = rng.normal(size=(n, len(s)))
    A -= A.mean(axis=0)  # columns orthogonal to the ones vector: the matrix is already centred
    U, _ = np.linalg.qr(A)
    V, _ = np.linalg.qr(rng.normal(size=(d, len(s))))
    R = U @ np.diag(s) @ V.T + rng.normal(size=d)  # an offset that centring removes
    p = s / s.sum()
    assert rephrasing_spread(rng.normal(size=d), R)["emb_eff_rank"] == pytest.approx(
        np.exp(-(p * np.log(p)).sum()), rel=1e-9
    )


def test_centroids_leave_the_prompt_out_of_its_own_group():
    v = {
        "n1": [1.0, 0.0, 0.0],
        "n2": [0.0, 1.0, 0.0],
        "neg1": [0.0, 0.0, 2.0],
        "neg2": [1.0, 1.0, 1.0],
        "pos": [3.0, -1.0, 0.0],
        "mix": [1.0, 2.0, 3.0],
    }
    roles = {
        "n1": "neutral",
        "n2": "neutral",
        "neg1": "negative",
        "neg2": "negative",
        "pos": "positive",
        "mix": "mixed",
    }
    V = {k: np.asarray(x) for k, x in v.items()}
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    loo = centroid_heuristics(v, roles)
    assert loo["n1"]["emb_l2_neutral"] == pytest.approx(np.linalg.norm(V["n1"] - V["n2"]))
    assert loo["mix"]["emb_l2_neutral"] == pytest.approx(np.linalg.norm(V["mix"] - (V["n1"] + V["n2"]) / 2))
    assert loo["neg1"]["emb_cos_negative"] == pytest.approx(cos(V["neg1"], V["neg2"]))
    assert loo["n2"]["emb_cos_negative"] == pytest.approx(cos(V["n2"], (V["neg1"] + V["neg2"]) / 2))
    assert "emb_cos_positive" not in loo["pos"]  # its group has no other prompt
    assert loo["neg2"]["emb_cos_positive"] == pytest.approx(cos(V["neg2"], V["pos"]))
    incl = centroid_heuristics(v, roles, exclude_self=False)
    assert incl["pos"]["emb_cos_positive"] == pytest.approx(1.0)
    assert incl["n1"]["emb_l2_neutral"] == pytest.approx(np.linalg.norm(V["n1"] - (V["n1"] + V["n2"]) / 2))
    assert set(centroid_heuristics(v, roles, keys=["mix"])) == {"mix"}


# ------------------------------------------------------------------------------ OpenAI backend
def _numpy_reference(cfg, vectors, pools):
    """Every heuristic recomputed with numpy alone (leave-one-out centroids)."""
    u = {t: _unit(x) for t, x in vectors.items()}
    roles = {k: cfg.groups[cfg.group_of(k)].role for k in cfg.prompt_keys}
    out = {}
    for key in cfg.prompt_keys:
        p = u[cfg.prompts[key]]
        vals = {}
        if key in pools:
            R = np.stack([u[t] for t in pools[key]])
            c = R @ p
            sv = np.linalg.svd(R - R.mean(axis=0), compute_uv=False)
            q = sv[sv > 1e-12] / sv.sum()
            vals |= {
                "emb_cos_mean": c.mean(),
                "emb_cos_std": c.std(),
                "emb_cos_min": c.min(),
                "emb_eff_rank": np.exp(-(q * np.log(q)).sum()),
            }
        for name, role in (
            ("emb_l2_neutral", "neutral"),
            ("emb_cos_negative", "negative"),
            ("emb_cos_positive", "positive"),
        ):
            others = [u[cfg.prompts[k]] for k in cfg.prompt_keys if roles[k] == role and k != key]
            if others:
                m = np.mean(others, axis=0)
                vals[name] = np.linalg.norm(p - m) if role == "neutral" else p @ m / np.linalg.norm(m)
        out[key] = vals
    return out


def test_openai_backend_rows_equal_numpy_on_known_vectors(cfg, caplog):
    rng = np.random.default_rng(1)
    pools = {k: [f"{cfg.prompts[k]} (variant {i})" for i in range(9)] for k in cfg.prompt_keys[:3]}
    pools[cfg.prompt_keys[1]].append(cfg.prompts[cfg.prompt_keys[0]])  # a text shared by two roles: embedded once
    texts = list(cfg.prompts.values()) + [t for pool in pools.values() for t in pool]
    vectors = {t: rng.normal(size=16) * rng.uniform(0.5, 3.0) for t in texts}  # not unit length
    responder = Embeddings({t: list(v) for t, v in vectors.items()})
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(embeddings=responder) as server:
        embedder = OpenAIEmbedder(base_url=server.base_url, api_key=KEY, batch_size=7, max_in_flight=3)
        rows = embedding_heuristics(cfg, pools, embedder)
        paths = {r.path for r in server.requests}
        auth = {r.authorization for r in server.requests}
        bodies = [r.body for r in server.requests]
    ref = _numpy_reference(cfg, vectors, pools)
    assert list(rows.columns) == ["experiment", "prompt_key", "prefix_type", "heuristic", "value"]
    assert rows.prefix_type.isna().all() and set(rows.experiment) == {"emb_test"}
    got = {(r.prompt_key, r.heuristic): r.value for r in rows.itertuples()}
    assert got.keys() == {(k, h) for k, vals in ref.items() for h in vals}
    for (key, h), value in got.items():
        assert value == pytest.approx(ref[key][h], rel=1e-6, abs=1e-6), (key, h)  # float32 on the wire
    # the real client, batched, base64 (the client's default), each distinct text once, the key only in the header
    assert paths == {"/v1/embeddings"} and auth == {f"Bearer {KEY}"}
    assert all(
        b["model"] == "text-embedding-3-large" and b["encoding_format"] == "base64" and len(b["input"]) <= 7
        for b in bodies
    )
    assert sorted(responder.texts) == sorted(set(texts)) and len(bodies) == math.ceil(len(set(texts)) / 7)
    assert embedder.metadata()["n_texts"] == len(set(texts)) and embedder.metadata()["prompt_tokens"] > 0
    assert KEY not in repr(embedder) and KEY not in caplog.text and KEY not in str(embedder.metadata())


def test_partition_functions_agree_with_the_whole(cfg):
    pools = {k: [f"{cfg.prompts[k]} #{i}" for i in range(5)] for k in cfg.prompt_keys}
    with FakeOpenAIServer(embeddings=Embeddings(dim=24)) as server:
        emb = OpenAIEmbedder(base_url=server.base_url, api_key=KEY, dimensions=24)
        whole = embedding_heuristics(cfg, pools, emb).set_index(["prompt_key", "heuristic"]).value
        key = "whimsical"
        part = rephrasing_embedding_rows("emb_test", key, cfg.prompts[key], pools[key], emb)
        cents = prompt_embedding_rows(cfg, emb, keys=[key])
        only = embedding_heuristics(cfg, pools, emb, keys=[key], max_rephrasings=2)
    assert list(part.heuristic) == ["emb_cos_mean", "emb_cos_std", "emb_cos_min", "emb_eff_rank"]
    assert list(cents.heuristic) == ["emb_l2_neutral", "emb_cos_negative", "emb_cos_positive"]
    for r in [*part.itertuples(), *cents.itertuples()]:
        assert r.value == pytest.approx(whole[key, r.heuristic], abs=1e-12)
    assert set(only.prompt_key) == {key} and list(only.heuristic) == list(HEURISTICS)
    # two rephrasings: the cosines of those two, from the deterministic vectors the server made
    p, r = _unit(fake_embedding(cfg.prompts[key], 24)), [_unit(fake_embedding(t, 24)) for t in pools[key][:2]]
    assert only.set_index("heuristic").value["emb_cos_min"] == pytest.approx(min(x @ p for x in r), abs=1e-6)
    # the positive prompt is alone in its group: no positive centroid for it, but for everyone else
    assert ("answer_french", "emb_cos_positive") not in whole.index
    assert ("playful_french", "emb_cos_positive") in whole.index and ("sky", "emb_l2_neutral") in whole.index


def test_openai_backend_retries_then_fails_cleanly():
    calls = []

    def flaky(info):
        calls.append(info)
        if len(calls) == 1:
            return Reply.error(429, "slow down", headers={"retry-after": "0"})
        return Embeddings(dim=8)(info)

    with FakeOpenAIServer(embeddings=flaky) as server:
        emb = OpenAIEmbedder(base_url=server.base_url, api_key=KEY, backoff_base_s=0.01)
        out = emb.embed(["a b", "c d"])
    assert out.shape == (2, 8) and emb.n_retries == 1 and emb.n_requests == 2

    def refuse(info):
        return Reply.error(401, f"bad key {KEY}")

    with FakeOpenAIServer(embeddings=refuse) as server:
        with pytest.raises(EmbeddingError) as err:
            OpenAIEmbedder(base_url=server.base_url, api_key=KEY).embed(["x"])
    assert "credentials" in str(err.value) and KEY not in str(err.value)

    with FakeOpenAIServer(embeddings=lambda info: Reply.embeddings([[1.0, 0.0]])) as server:  # one vector for two texts
        with pytest.raises(EmbeddingError, match="malformed"):
            OpenAIEmbedder(base_url=server.base_url, api_key=KEY, max_retries=1, backoff_base_s=0.0).embed(["x", "y"])
    with pytest.raises(EmbeddingError, match="text 1 is empty"):
        OpenAIEmbedder(base_url="http://127.0.0.1:9/v1", api_key=KEY).embed(["x", " "])


# ------------------------------------------------------------------------------ MiniLM backend
def test_minilm_from_the_wheel_offline(cfg, monkeypatch):
    """The weights come from the installed package: any network connection attempt fails the test."""
    real_connect = socket.socket.connect

    def no_network(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access during model load: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    emb = make_embedder("minilm", batch_size=8)
    assert isinstance(emb, MiniLMEmbedder)
    texts = [
        "You are a playful agent.",
        "You are a joyful, fun-loving assistant.",
        "Answer in French.",
        "Respond only in the French language.",
        "The sky is blue.",
    ]
    X = emb.embed(texts)
    assert X.shape == (5, 384) and np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    sims = X @ X.T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[2, 4]  # paraphrases closer than unrelated prompts
    assert np.allclose(emb.embed(texts[:2]), X[:2], atol=1e-5)  # batch-independent
    pools = {"whimsical": texts[:2], "answer_french": [texts[3]]}
    rows = embedding_heuristics(cfg, pools, emb, keys=["whimsical", "answer_french"])
    vals = rows.set_index(["prompt_key", "heuristic"]).value
    assert vals["answer_french", "emb_cos_mean"] == pytest.approx(vals["answer_french", "emb_cos_min"])
    assert -1.0 <= vals["whimsical", "emb_cos_negative"] <= 1.0
    assert emb.metadata()["model"] == "sentence-transformers/all-MiniLM-L6-v2"
