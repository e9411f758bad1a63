"""A local HTTP server that speaks the OpenAI chat-completions and embeddings protocols, for tests
and benchmarks.

It serves scripted replies over real HTTP on 127.0.0.1, so the real ``openai`` client (and with it
the judge's retry, timeout and concurrency code) is exercised end to end, with fault injection:
valid logprob distributions, any token text, HTTP errors with headers (429 + Retry-After), bodies
that are not JSON, bodies cut short, and requests that hang. It records every request (start/end
times, parsed body) and the largest number of requests in flight at once.

    server = FakeOpenAIServer(Script({"a": [Reply.status(429, headers={"retry-after": "0.1"}),
                                            Reply.logprobs([("70", -0.1), ("80", -2.4)])]}))
    with server:
        judge = OpenAILogprobJudge(LLMJudgeSettings(base_url=server.base_url), api_key="sk-test")

``POST /v1/embeddings`` answers through a second responder (``embeddings=``), by default
``Embeddings()``: one deterministic vector per input (unit length, seeded by the sha256 of the text,
``dimensions`` long, default 64), or the vector a test assigned to that text. It honours
``encoding_format`` (``float``, or ``base64`` of little-endian float32 — the openai client's default)
and takes the same fault replies (``Reply.error``, ``Reply.hang`` …) as the chat endpoint.

    server = FakeOpenAIServer(embeddings=Embeddings({"a prompt": [1.0, 0.0, 0.0]}, dim=3))

Run alone (``python -m inoc.judges.fake_openai_server --latency 0.05``) it prints ``PORT <n>`` and
serves a fixed distribution until killed; ``GET /stats`` returns its counters as JSON.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import itertools
import json
import re
import socket
import sys
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One scripted reply. Build with the static constructors."""

    kind: str
    top_logprobs: tuple[tuple[str, float], ...] = ()
    content: str | None = None
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    usage: tuple[int, int] | None = None
    vectors: tuple[tuple[float, ...], ...] = ()

    @staticmethod
    def logprobs(top: Sequence[tuple[str, float]], usage: tuple[int, int] | None = None) -> "Reply":
        """A chat completion whose first token has these top logprobs (the first entry is the token)."""
        return Reply("logprobs", top_logprobs=tuple((t, float(lp)) for t, lp in top), usage=usage)

    @staticmethod
    def message(content: str, usage: tuple[int, int] | None = None) -> "Reply":
        """A chat completion with this assistant message and no logprobs (rephrasing generation)."""
        return Reply("message", content=content, usage=usage)

    @staticmethod
    def embeddings(vectors: Sequence[Sequence[float]], usage: tuple[int, int] | None = None) -> "Reply":
        """An embeddings response: one vector per input, in input order."""
        return Reply("embeddings", vectors=tuple(tuple(float(x) for x in v) for v in vectors), usage=usage)

    @staticmethod
    def error(status: int, message: str = "scripted error", headers: Mapping[str, str] | None = None) -> "Reply":
        """An HTTP error with an OpenAI-style JSON error body."""
        body = json.dumps({"error": {"message": message, "type": "fake_error", "code": None}}).encode()
        return Reply("raw", status=status, body=body, headers=tuple((headers or {}).items()))

    @staticmethod
    def raw(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> "Reply":
        """Exactly these bytes as a JSON response body (e.g. malformed JSON)."""
        return Reply("raw", status=status, body=body, headers=tuple((headers or {}).items()))

    @staticmethod
    def truncated(body: bytes = b'{"id": "chatcmpl-cut", "object": "chat.comp', missing: int = 200) -> "Reply":
        """A 200 whose Content-Length promises ``missing`` more bytes than are sent before closing."""
        return Reply("truncated", body=body, seconds=float(missing))

    @staticmethod
    def hang(seconds: float) -> "Reply":
        """Send nothing for ``seconds`` (longer than the client's timeout), then drop the connection."""
        return Reply("hang", seconds=seconds)


@dataclass
class RequestInfo:
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


def fake_embedding(text: str, dim: int = 64) -> list[float]:
    """A deterministic unit vector for ``text``: standard normals seeded by sha256(text), normalised."""
    import random

    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


class Embeddings:
    """The default embeddings responder: the vector assigned to a text in ``vectors``, else
    ``fake_embedding(text, dimensions or dim)``. Records every text it embedded in ``texts``."""

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
        return Reply.embeddings([self.vectors.get(t) or fake_embedding(t, dim) for t in texts])


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


class Script:
    """Replies chosen by a key found in the last user message (``key_pattern``'s first group).

    ``replies[key]`` is a reply or a list of replies consumed in order (the last one repeats);
    requests with no key or an unknown key get ``default`` (a reply, or a function of the request).
    ``key_pattern=None`` uses one global sequence: ``replies[""]``.
    """

    def __init__(
        self,
        replies: Mapping[str, Reply | Sequence[Reply]] | None = None,
        default: Reply | Responder | None = None,
        key_pattern: str | None = r"ITEM:(\S+)",
    ) -> None:
        self._replies = {k: [v] if isinstance(v, Reply) else list(v) for k, v in (replies or {}).items()}
        for key, seq in self._replies.items():
            if not seq:
                raise ValueError(f"Script: no replies for key {key!r}")
        self._default = default if default is not None else Reply.logprobs([("50", 0.0)])
        self._pattern = re.compile(key_pattern) if key_pattern else None
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def key_of(self, info: RequestInfo) -> str | None:
        if self._pattern is None:
            return ""
        match = self._pattern.search(info.user_content)
        return match.group(1) if match else None

    def __call__(self, info: RequestInfo) -> Reply:
        key = self.key_of(info)
        with self._lock:
            seq = self._replies.get(key) if key is not None else None
            if seq is None:
                return self._default(info) if callable(self._default) else self._default
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            return seq[min(n, len(seq) - 1)]


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
                    "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in top
                    ],
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


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body would wait for
    # the client's delayed ACK (~40 ms per request), which is an artefact, not latency we simulate.
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr access logs
        return

    def _send(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self._send(200, json.dumps(self.server.owner.stats()).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        info = owner._begin(self.path, body, self.headers.get("Authorization"))
        try:
            path = self.path.rstrip("/")
            if path.endswith("/chat/completions"):
                responder = owner.responder
            elif path.endswith("/embeddings"):
                responder = owner.embeddings
            else:
                self._send(404, b'{"error": {"message": "unknown path", "type": "invalid_request_error"}}')
                return
            if owner.latency_s:
                owner._stop.wait(owner.latency_s)
            try:
                reply = responder(info)
            except Exception as exc:  # a bug in a test's responder: answer 500 and say why
                reply = Reply.error(500, f"fake server responder failed: {type(exc).__name__}: {exc}")
            info.reply_kind = reply.kind if reply.kind != "raw" else f"raw_{reply.status}"
            if reply.kind in ("logprobs", "message"):
                self._send(200, _completion_json(info, reply))
            elif reply.kind == "embeddings":
                self._send(200, _embeddings_json(info, reply))
            elif reply.kind == "raw":
                self._send(reply.status, reply.body, reply.headers)
            elif reply.kind == "truncated":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body) + int(reply.seconds)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.wfile.flush()
                self._drop()
            elif reply.kind == "hang":
                owner._stop.wait(reply.seconds)
                self._drop()
            else:
                raise ValueError(f"unknown reply kind {reply.kind!r}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            owner._end(info)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True
    owner: "FakeOpenAIServer"


class FakeOpenAIServer:
    """An OpenAI chat-completions and embeddings server on 127.0.0.1 (ephemeral port) in a background
    thread. ``responder`` answers ``/chat/completions``, ``embeddings`` answers ``/embeddings``."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        port: int = 0,
        embeddings: Responder | None = None,
    ) -> None:
        self.responder: Responder = responder or Script()
        self.embeddings: Responder = embeddings or Embeddings()
        self.latency_s = latency_s
        self._port = port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self.requests: list[RequestInfo] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        self._httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
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

    # ---- bookkeeping -------------------------------------------------------------------------
    def _begin(self, path: str, body: dict[str, Any] | None, authorization: str | None) -> RequestInfo:
        with self._lock:
            info = RequestInfo(next(self._counter), time.monotonic(), path, body, authorization)
            self.requests.append(info)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return info

    def _end(self, info: RequestInfo) -> None:
        with self._lock:
            info.ended = time.monotonic()
            self.in_flight -= 1

    @property
    def n_requests(self) -> int:
        with self._lock:
            return len(self.requests)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"requests": len(self.requests), "in_flight": self.in_flight, "max_in_flight": self.max_in_flight}

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(
        Script(default=Reply.logprobs([("70", -0.2), ("80", -1.8), ("60", -3.5), ("hello", -4.0)])),
        latency_s=args.latency,
        port=args.port,
    ).start()
    print(f"PORT {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
