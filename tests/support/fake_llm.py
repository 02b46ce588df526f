"""A fake LLM provider speaking the real wire protocols over HTTP on loopback.

OpenAI-compatible `/v1/chat/completions` (JSON, and SSE with `data: [DONE]` and a usage chunk),
`/v1/models`; Ollama `/api/chat` (JSON, and NDJSON ending with `done: true`), `/api/tags`.
It runs a stdlib ThreadingHTTPServer (HTTP/1.1, keep-alive, chunked streams) in a thread.

What it answers is chosen by the model name, so tests running at once never disturb each other:

- "echo" (the default): "echo: <last user message>"; `max_tokens` below the word count truncates
  the reply with finish reason "length".
- "cite": cites the first two numbered sources it finds in the prompt ("[1] ... [2]").
- "cite-unknown": cites [1] and [99]; "cite-none": cites nothing.
- "slow": waits `slow_s` before answering (counting a client that goes away meanwhile); "slow-stream": one word every 0.05 s, 400 words.
- "malformed": 200 with a body that is not JSON (a stream: one good line, then garbage).
- "interrupt" (streams): two words, then the connection is cut; "stream-error": one word, then
  an error event (the way providers report a failure mid-stream).
- "missing": 404; "bad-request": 400; "server-error": 500; "rate-limited": 429 with
  Retry-After `retry_after`; "overloaded": 503; "flaky": 503 for the first `flaky_failures`
  requests, then an echo; "leak-key": 400 whose message repeats the Authorization header.

With `api_key` set, a request without "Authorization: Bearer <api_key>" gets 401 (whose message,
like some real providers', repeats the key it was given).
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = (
    "echo",
    "cite",
    "cite-unknown",
    "cite-none",
    "slow",
    "slow-stream",
    "malformed",
    "interrupt",
    "flaky",
    "rate-limited",
    "overloaded",
)
_SOURCE = re.compile(r"^\[(\d+)\]", re.MULTILINE)


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    path: str
    body: dict[str, Any]
    authorization: str


class FakeLLM:
    """The server; `with FakeLLM() as fake:` starts and stops it."""

    def __init__(self, *, api_key: str = "", retry_after: str = "0", flaky_failures: int = 2, slow_s: float = 5.0):
        self.api_key = api_key
        self.retry_after = retry_after
        self.flaky_failures = flaky_failures
        self.slow_s = slow_s
        self.seen: list[Seen] = []
        self.counts: Counter[str] = Counter()
        """Chat requests received per model."""
        self.disconnects = 0
        """Replies the client went away from before they were finished."""
        self._lock = threading.Lock()
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, seen: Seen) -> int:
        with self._lock:
            self.seen.append(seen)
            model = str(seen.body.get("model", ""))
            self.counts[model] += 1
            return self.counts[model]

    def went_away(self) -> None:
        with self._lock:
            self.disconnects += 1

    def chat_requests(self, model: str | None = None) -> list[Seen]:
        return (
            [s for s in self.seen if s.path.endswith("/chat") or s.path.endswith("/completions")]
            if model is None
            else [s for s in self.seen if s.body.get("model") == model]
        )


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 resets connections under 64 concurrent clients


class _Handler(BaseHTTPRequestHandler):
    owner: FakeLLM
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- routing -------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._authorized():
            return
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        elif self.path == "/api/tags":
            self._json(200, {"models": [{"name": m, "model": m} for m in MODELS]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(400, "request body is not JSON")
            return
        if self.path not in ("/v1/chat/completions", "/api/chat"):
            self._json(404, {"error": "not found"})
            return
        nth = self.owner.record(Seen(self.path, body, self.headers.get("Authorization", "")))
        if not self._authorized():
            return
        model = str(body.get("model", ""))
        if self._failure(model, nth):
            return
        if model == "slow" and not self._wait_unless_gone(self.owner.slow_s):
            self.owner.went_away()
            self.close_connection = True
            return
        words = _reply(model, body)
        max_tokens = body.get("max_tokens", (body.get("options") or {}).get("num_predict"))
        finish = "stop"
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            words, finish = words[:max_tokens], "length"
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        reply = Reply(words, finish, prompt_tokens)
        if body.get("stream", self.path == "/api/chat"):  # Ollama streams unless told not to
            self._stream(model, reply)
        else:
            self._whole(model, reply)

    def _wait_unless_gone(self, seconds: float) -> bool:
        """Waits `seconds`; False as soon as the client closes the connection (a cancelled call)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                return False
        return True

    def _failure(self, model: str, nth: int) -> bool:
        owner = self.owner
        if model == "missing":
            self._error(404, f"model '{model}' not found")
        elif model == "bad-request":
            self._error(400, "messages: this request is not valid")
        elif model == "server-error":
            self._error(500, "internal server error")
        elif model == "rate-limited":
            self._error(429, "rate limit reached", {"Retry-After": owner.retry_after})
        elif model == "overloaded" or (model == "flaky" and nth <= owner.flaky_failures):
            self._error(503, "overloaded, try again")
        elif model == "leak-key":
            self._error(400, f"bad request made with header {self.headers.get('Authorization', '')}")
        else:
            return False
        return True

    def _authorized(self) -> bool:
        key = self.owner.api_key
        given = self.headers.get("Authorization", "")
        if key and given != f"Bearer {key}":
            self._error(401, f"Incorrect API key provided: {given.removeprefix('Bearer ')}")
            return False
        return True

    # -- replies -------------------------------------------------------------------------------

    def _whole(self, model: str, reply: Reply) -> None:
        if model == "malformed":
            self._send(200, b'{"choices": [', "application/json")
            return
        text = " ".join(reply.words)
        if self.path == "/api/chat":
            self._json(
                200,
                {
                    "model": model,
                    "message": {"role": "assistant", "content": text},
                    "done": True,
                    "done_reason": reply.finish,
                    "prompt_eval_count": reply.prompt_tokens,
                    "eval_count": len(reply.words),
                },
            )
            return
        self._json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reply.finish}
                ],
                "usage": {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": len(reply.words),
                    "total_tokens": reply.prompt_tokens + len(reply.words),
                },
            },
        )

    def _stream(self, model: str, reply: Reply) -> None:
        ollama = self.path == "/api/chat"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = [w if i == 0 else " " + w for i, w in enumerate(reply.words)]
        try:
            for i, piece in enumerate(pieces):
                if model == "interrupt" and i == 2:
                    self.close_connection = True
                    self.connection.shutdown(2)  # cut: no final chunk, no done line
                    return
                if model == "stream-error" and i == 1:
                    error = {"error": "model ran out of memory"} if ollama else {"error": {"message": "out of memory"}}
                    line = json.dumps(error).encode()
                    self._chunk(line + b"\n" if ollama else b"data: " + line + b"\n\n")
                    self._chunk(b"")
                    return
                if model == "malformed" and i == 1:
                    self._chunk(b"data: {broken\n\n" if not ollama else b"{broken\n")
                    self._chunk(b"")
                    return
                self._chunk(_delta_line(ollama, model, piece))
                if model == "slow-stream":
                    time.sleep(0.05)
            self._chunk(_final_lines(ollama, model, reply))
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.owner.went_away()
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        if self.path == "/api/chat":
            self._json(status, {"error": message}, headers)
        else:
            self._json(status, {"error": {"message": message, "type": "fake_error"}}, headers)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@dataclass(frozen=True)
class Reply:
    words: list[str]
    finish: str
    prompt_tokens: int


def _last_user(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def _reply(model: str, body: dict[str, Any]) -> list[str]:
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    if model == "cite":
        numbers = _SOURCE.findall(prompt)[:2]
        cited = " and ".join(f"[{n}]" for n in numbers)
        return f"The sources say so {cited}.".split()
    if model == "cite-unknown":
        return ["See", "[1]", "and", "[99]."]
    if model == "cite-none":
        return ["I", "cannot", "tell", "from", "these", "sources."]
    if model == "slow-stream":
        return [f"w{i}" for i in range(400)]
    return ["echo:", *_last_user(body).split()]


def _delta_line(ollama: bool, model: str, piece: str) -> bytes:
    if ollama:
        return (
            json.dumps({"model": model, "message": {"role": "assistant", "content": piece}, "done": False}).encode()
            + b"\n"
        )
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _final_lines(ollama: bool, model: str, reply: Reply) -> bytes:
    if ollama:
        done = {
            "model": model,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reply.finish,
            "prompt_eval_count": reply.prompt_tokens,
            "eval_count": len(reply.words),
        }
        return json.dumps(done).encode() + b"\n"
    finish = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish}],
    }
    usage = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": len(reply.words),
            "total_tokens": reply.prompt_tokens + len(reply.words),
        },
    }
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in (finish, usage)) + b"data: [DONE]\n\n"


def main() -> None:
    """Runs the fake on its own (the chat benchmark starts it as a separate process)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="a fake LLM provider on 127.0.0.1")
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    fake = FakeLLM(api_key=args.api_key).start()
    print(fake.url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    fake.stop()


if __name__ == "__main__":
    main()
