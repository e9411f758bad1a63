"""The tests' OpenAI-protocol server: the product's local server (``inoc.rehearsal.openai_server``)
with scripted replies, fault injection, latency and request statistics.

It serves scripted replies over real HTTP on 127.0.0.1, so the real ``openai`` client (and with it
the judge's retry, timeout and concurrency code) is exercised end to end, with fault injection:
valid logprob distributions, any token text, HTTP errors with headers (429 + Retry-After), bodies
that are not JSON, bodies cut short, and requests that hang. It records every request (start/end
times, parsed body) and the largest number of requests in flight at once.

    server = FakeOpenAIServer(Script({"a": [Reply.error(429, headers={"retry-after": "0.1"}),
                                            Reply.logprobs([("70", -0.1), ("80", -2.4)])]}))
    with server:
        judge = OpenAILogprobJudge(LLMJudgeSettings(base_url=server.base_url), api_key="sk-test")

``POST /v1/embeddings`` answers through a second responder (``embeddings=``), by default
``Embeddings()`` (``inoc.rehearsal.openai_server``): one deterministic vector per input, or the
vector a test assigned to that text; it takes the same fault replies as the chat endpoint.

    server = FakeOpenAIServer(embeddings=Embeddings({"a prompt": [1.0, 0.0, 0.0]}, dim=3))

Run alone (``python tests/fakes/openai_server.py --latency 0.05``, the repository on PYTHONPATH; the
judge benchmark does) it prints ``PORT <n>`` and serves a fixed distribution until killed;
``GET /stats`` returns its counters as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inoc.rehearsal.openai_server import (
    Embeddings,
    OpenAICompatibleServer,
    OpenAIRequestHandler,
    RequestInfo,
    Responder,
)
from inoc.rehearsal.openai_server import Reply as _Reply
from inoc.rehearsal.openai_server import hashed_embedding as fake_embedding

__all__ = ["Embeddings", "FakeOpenAIServer", "Reply", "RequestInfo", "Responder", "Script", "fake_embedding"]


@dataclass(frozen=True)
class Reply(_Reply):
    """A reply, plus the faults only tests need: a body cut short and a request that hangs."""

    seconds: float = 0.0

    @classmethod
    def truncated(cls, body: bytes = b'{"id": "chatcmpl-cut", "object": "chat.comp', missing: int = 200) -> Reply:
        """A 200 whose Content-Length promises ``missing`` more bytes than are sent before closing."""
        return cls("truncated", body=body, seconds=float(missing))

    @classmethod
    def hang(cls, seconds: float) -> Reply:
        """Send nothing for ``seconds`` (longer than the client's timeout), then drop the connection."""
        return cls("hang", seconds=seconds)


class Script:
    """Replies chosen by a key found in the last user message (``key_pattern``'s first group).

    ``replies[key]`` is a reply or a list of replies consumed in order (the last one repeats);
    requests with no key or an unknown key get ``default`` (a reply, or a function of the request).
    ``key_pattern=None`` uses one global sequence: ``replies[""]``.
    """

    def __init__(
        self,
        replies: Mapping[str, _Reply | Sequence[_Reply]] | None = None,
        default: _Reply | Responder | None = None,
        key_pattern: str | None = r"ITEM:(\S+)",
    ) -> None:
        self._replies = {k: [v] if isinstance(v, _Reply) else list(v) for k, v in (replies or {}).items()}
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

    def __call__(self, info: RequestInfo) -> _Reply:
        key = self.key_of(info)
        with self._lock:
            seq = self._replies.get(key) if key is not None else None
            if seq is None:
                return self._default(info) if callable(self._default) else self._default
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            return seq[min(n, len(seq) - 1)]


class _FaultHandler(OpenAIRequestHandler):
    server: Any

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stats"):
            self.send_json(200, json.dumps(self.server.owner.stats()).encode())
        else:
            super().do_GET()

    def send_reply(self, info: RequestInfo, reply: _Reply) -> None:
        if reply.kind == "truncated":
            assert isinstance(reply, Reply)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body) + int(reply.seconds)))
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
            self.drop_connection()
        elif reply.kind == "hang":
            assert isinstance(reply, Reply)
            self.server.owner.stopping.wait(reply.seconds)
            self.drop_connection()
        else:
            super().send_reply(info, reply)


class FakeOpenAIServer(OpenAICompatibleServer):
    """The local server with a ``Script()`` by default, ``latency_s`` before every reply, every
    request recorded in ``requests`` and the most requests in flight at once in ``max_in_flight``."""

    handler_class = _FaultHandler

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency_s: float = 0.0,
        port: int = 0,
        embeddings: Responder | None = None,
    ) -> None:
        super().__init__(responder or Script(), embeddings=embeddings, port=port)
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self.requests: list[RequestInfo] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, path: str, body: dict[str, Any] | None, authorization: str | None) -> RequestInfo:
        with self._lock:
            info = super().begin(path, body, authorization)
            self.requests.append(info)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return info

    def answer(self, info: RequestInfo, responder: Responder) -> _Reply:
        if self.latency_s:
            self.stopping.wait(self.latency_s)
        return super().answer(info, responder)

    def end(self, info: RequestInfo) -> None:
        with self._lock:
            super().end(info)
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
