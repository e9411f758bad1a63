"""A local HTTP server that speaks the OpenAI chat-completions and embeddings protocols.

The rehearsal's stand-in API (``standin_api``) runs on it: the study's own ``openai`` clients —
judges, rephrasing generator, off-policy datagen, embedder — talk to it over real HTTP on
127.0.0.1, so their request building, retries and reply parsing run as they will against the
real service. What it answers is decided by a *responder*, a function from the request
(``RequestInfo``) to a ``Reply``:

* ``POST …/chat/completions`` → ``responder``: ``Reply.logprobs`` (a first token with its top
  logprobs, what the judges ask for) or ``Reply.message`` (an assistant message);
* ``POST …/embeddings`` → ``embeddings``, by default ``Embeddings()``: one deterministic unit vector
  per input (``hashed_embedding``), honouring ``dimensions`` and ``encoding_format`` (``float``, or
  ``base64`` of little-endian float32 — the openai client's default);
* ``Reply.error`` / ``Reply.raw``: an HTTP status with an OpenAI-style error body, or exact bytes.

A responder that raises is answered with a 500 that names the exception. The tests' fake server
(``tests/fakes/openai_server.py``) builds on this one, adding scripted replies, fault injection
(hangs, truncated bodies), latency and request statistics.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import itertools
import json
import random
import socket
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class Reply:
    """One reply. Build with the class-method constructors."""

    kind: str
    top_logprobs: tuple[tuple[str, float], ...] = ()
    content: str | None = None
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    usage: tuple[int, int] | None = None
    vectors: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def logprobs(cls, top: Sequence[tuple[str, float]], usage: tuple[int, int] | None = None) -> Self:
        """A chat completion whose first token has these top logprobs (the first entry is the token)."""
        return cls("logprobs", top_logprobs=tuple((t, float(lp)) for t, lp in top), usage=usage)

    @classmethod
    def message(cls, content: str, usage: tuple[int, int] | None = None) -> Self:
        """A chat completion with this assistant message and no logprobs (rephrasing generation)."""
        return cls("message", content=content, usage=usage)

    @classmethod
    def embeddings(cls, vectors: Sequence[Sequence[float]], usage: tuple[int, int] | None = None) -> Self:
        """An embeddings response: one vector per input, in input order."""
        return cls("embeddings", vectors=tuple(tuple(float(x) for x in v) for v in vectors), usage=usage)

    @classmethod
    def error(cls, status: int, message: str = "scripted error", headers: Mapping[str, str] | None = None) -> Self:
        """An HTTP error with an OpenAI-style JSON error body."""
        body = json.dumps({"error": {"message": message, "type": "fake_error", "code": None}}).encode()
        return cls("raw", status=status, body=body, headers=tuple((headers or {}).items()))

    @classmethod
    def raw(cls, body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Self:
        """Exactly these bytes as a JSON response body (e.g. malformed JSON)."""
        return cls("raw", status=status, body=body, headers=tuple((headers or {}).items()))


@dataclass
class RequestInfo:
    """One request as the server saw it (``ended`` and ``reply_kind`` are set once it is answered)."""

    index: int
    started: float
    path: str
    body: dict[str, Any] | None
    authorization: str | None
    ended: float | None = None
    reply_kind: str | None = None

    @property
    def user_content(self) -> str:
        messages = (self.body or {}).get("messages") or []
        users = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""

    @property
    def inputs(self) -> list[str]:
        """The texts of an embeddings request (a single string counts as a list of one)."""
        raw = (self.body or {}).get("input")
        return [raw] if isinstance(raw, str) else [str(x) for x in raw] if isinstance(raw, list) else []


Responder = Callable[[RequestInfo], Reply]


def hashed_embedding(text: str, dim: int = 64) -> list[float]:
    """A deterministic unit vector for ``text``: standard normals seeded by sha256(text), normalised."""
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


class Embeddings:
    """The default embeddings responder: the vector assigned to a text in ``vectors``, else
    ``hashed_embedding(text, dimensions or dim)``. Records every text it embedded in ``texts``."""

    def __init__(self, vectors: Mapping[str, Sequence[float]] | None = None, dim: int = 64) -> None:
        self.vectors = {k: [float(x) for x in v] for k, v in (vectors or {}).items()}
        self.dim = dim
        self.texts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, info: RequestInfo) -> Reply:
        texts = info.inputs
        if not texts or any(not t for t in texts):
            return Reply.error(400, "'input' must be a non-empty string or a list of non-empty strings")
        dim = int((info.body or {}).get("dimensions") or self.dim)
        with self._lock:
            self.texts.extend(texts)
        return Reply.embeddings([self.vectors.get(t) or hashed_embedding(t, dim) for t in texts])


def _embeddings_json(info: RequestInfo, reply: Reply) -> bytes:
    body = info.body or {}
    as_base64 = body.get("encoding_format") == "base64"

    def encode(v: Sequence[float]) -> Any:
        return base64.b64encode(array("f", v).tobytes()).decode("ascii") if as_base64 else list(v)

    tokens = sum(max(1, len(t) // 4) for t in info.inputs)
    if reply.usage is not None:
        tokens = reply.usage[0]
    payload = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(reply.vectors)],
        "model": body.get("model", "fake"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json.dumps(payload).encode("utf-8")


def _completion_json(info: RequestInfo, reply: Reply) -> bytes:
    body = info.body or {}
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []) if isinstance(m, dict))
    if reply.kind == "logprobs":
        k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        top = list(reply.top_logprobs[:k]) if k else []
        first_token, first_lp = reply.top_logprobs[0] if reply.top_logprobs else ("", 0.0)
        content = first_token
        logprobs: Any = {
            "content": [
                {
                    "token": first_token,
                    "logprob": first_lp,
                    "bytes": list(first_token.encode("utf-8")),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in top],
                }
            ],
            "refusal": None,
        }
        finish = "length"
        completion_tokens = 1
    else:
        content = reply.content or ""
        logprobs = None
        finish = "stop"
        completion_tokens = max(1, len(content) // 4)
    prompt_tokens = max(1, prompt_chars // 4)
    if reply.usage is not None:
        prompt_tokens, completion_tokens = reply.usage
    payload = {
        "id": f"chatcmpl-fake-{info.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": logprobs,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return json.dumps(payload).encode("utf-8")


class OpenAIRequestHandler(http.server.BaseHTTPRequestHandler):
    """Routes a POST to its responder and writes the reply; ``send_reply`` is the one place a reply
    kind becomes bytes on the wire (a subclass adds kinds there)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body would wait for
    # the client's delayed ACK (~40 ms per request), which is an artefact, not latency we simulate.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access logs
        return

    def send_json(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_json(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        info = owner.begin(self.path, body, self.headers.get("Authorization"))
        try:
            path = self.path.rstrip("/")
            if path.endswith("/chat/completions"):
                responder = owner.responder
            elif path.endswith("/embeddings"):
                responder = owner.embeddings
            else:
                self.send_json(404, b'{"error": {"message": "unknown path", "type": "invalid_request_error"}}')
                return
            reply = owner.answer(info, responder)
            info.reply_kind = reply.kind if reply.kind != "raw" else f"raw_{reply.status}"
            self.send_reply(info, reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            owner.end(info)

    def send_reply(self, info: RequestInfo, reply: Reply) -> None:
        if reply.kind in ("logprobs", "message"):
            self.send_json(200, _completion_json(info, reply))
        elif reply.kind == "embeddings":
            self.send_json(200, _embeddings_json(info, reply))
        elif reply.kind == "raw":
            self.send_json(reply.status, reply.body, reply.headers)
        else:
            raise ValueError(f"unknown reply kind {reply.kind!r}")

    def drop_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    owner: "OpenAICompatibleServer"


class OpenAICompatibleServer:
    """The server on 127.0.0.1 (ephemeral port by default) in a background thread. ``responder``
    answers ``/chat/completions``, ``embeddings`` answers ``/embeddings``."""

    handler_class: ClassVar[type[OpenAIRequestHandler]] = OpenAIRequestHandler

    def __init__(self, responder: Responder, *, embeddings: Responder | None = None, port: int = 0) -> None:
        self.responder: Responder = responder
        self.embeddings: Responder = embeddings or Embeddings()
        self._port = port
        self._counter = itertools.count()
        self.stopping = threading.Event()  # set by stop(): a reply that waits (a subclass's latency, a hang) wakes up
        self._httpd: _HTTPServer | None = None

    def start(self) -> Self:
        self._httpd = _HTTPServer(("127.0.0.1", self._port), self.handler_class)
        self._httpd.owner = self
        thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-server", daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- one request: begin → answer → end (a subclass records or delays here) ------------------
    def begin(self, path: str, body: dict[str, Any] | None, authorization: str | None) -> RequestInfo:
        return RequestInfo(next(self._counter), time.monotonic(), path, body, authorization)

    def answer(self, info: RequestInfo, responder: Responder) -> Reply:
        try:
            return responder(info)
        except Exception as exc:  # a bug in a responder: answer 500 and say why
            return Reply.error(500, f"fake server responder failed: {type(exc).__name__}: {exc}")

    def end(self, info: RequestInfo) -> None:
        info.ended = time.monotonic()
