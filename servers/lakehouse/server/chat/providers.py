"""LLM providers over HTTP: one pooled `httpx.AsyncClient` per provider, bounded retries with
`tenacity`, and one table from upstream failures to the mesh's error codes.

A wire protocol is one small subclass of `HttpProvider` (request body, reply, stream lines, model
list); `OllamaProvider` and `OpenAIProvider` are the two this release speaks. API keys are read
from the environment once, sent only in the Authorization header, and scrubbed from every text
that could reach an error or a log line (provider error bodies sometimes echo the key back).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from lakehouse.server.chat.gateways import ChatCall, Completion, Delta, FinishReason, ProviderStatus, StreamEvent, Usage
from lakehouse.server.common import metrics
from lakehouse.server.common.config import ChatConfig, ProviderConfig
from lakehouse.server.common.errors import (
    Code,
    FailedPrecondition,
    InvalidArgument,
    LakehouseError,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger("lakehouse.chat")

MAX_ERROR_CHARS = 300
"""Most characters of a provider's error body quoted in an error message."""
CONNECT_TIMEOUT_S = 10.0
_FINISH: dict[str, FinishReason] = {"stop": "STOP", "length": "LENGTH", "content_filter": "CONTENT_FILTER"}


class _Retryable(Exception):
    """An attempt that may be tried again (connection error, 429, 503), carrying the error to raise
    when no attempt is left."""

    def __init__(self, error: LakehouseError) -> None:
        super().__init__(error.message)
        self.error = error


class StreamErrorEvent(Exception):
    """The provider reported an error inside a stream it had already started (an error event)."""


class HttpProvider:
    """What every HTTP provider shares; subclasses describe their wire protocol."""

    kind: ClassVar[str]
    chat_path: ClassVar[str]
    models_path: ClassVar[str]

    def __init__(
        self, name: str, config: ProviderConfig, chat: ChatConfig, environ: Mapping[str, str] | None = None
    ) -> None:
        environ = os.environ if environ is None else environ
        self.name = name
        self.base_url = _without_credentials(config.base_url)
        """Shown in listings and errors; user:password in the configured URL is left out."""
        self.default_model = config.default_model
        self.timeout_s = config.timeout_s
        self._key_env = config.api_key_env
        self._key = environ.get(config.api_key_env, "") if config.api_key_env else ""
        self._max_attempts = chat.max_attempts
        self._stream_usage = config.stream_usage
        self._max_backoff_s = chat.max_backoff_s
        self._probed: ProviderStatus | None = None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._client = httpx.AsyncClient(
            base_url=self._root(config.base_url),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(CONNECT_TIMEOUT_S, config.timeout_s)),
            limits=httpx.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
            trust_env=False,  # proxies from the environment would see the key; endpoints are configured here
        )

    @staticmethod
    def _root(base_url: str) -> str:
        return base_url

    async def close(self) -> None:
        await self._client.aclose()

    # -- availability --------------------------------------------------------------------------

    def status(self) -> ProviderStatus:
        """From the configuration, or the last probe when there was one."""
        if self._key_env and not self._key:
            return ProviderStatus("MISCONFIGURED", f"environment variable {self._key_env} is not set")
        return self._probed or ProviderStatus("AVAILABLE")

    async def probe(self, deadline: float | None) -> ProviderStatus:
        """Asks for the model list to check that the endpoint answers and accepts the key."""
        if self.status().availability == "MISCONFIGURED":
            return self.status()
        now = datetime.now(UTC)
        try:
            await self.models(deadline)
            self._probed = ProviderStatus("AVAILABLE", probe_time=now)
        except LakehouseError as exc:
            self._probed = ProviderStatus("UNREACHABLE", exc.message, probe_time=now)
        return self._probed

    def _require_configured(self) -> None:
        status = self.status()
        if status.availability == "MISCONFIGURED":
            raise FailedPrecondition(
                f"provider {self.name!r} is not usable: {status.reason}",
                reason="PROVIDER_MISCONFIGURED",
                metadata={"provider": self.name},
            )

    # -- calls ---------------------------------------------------------------------------------

    async def complete(self, call: ChatCall, deadline: float | None) -> Completion:
        """The whole reply; retried (bounded, inside the deadline) on connection errors, 429 and 503."""
        self._require_configured()
        body = self.body(call, stream=False)
        data = await self._with_retries(lambda: self._post_json(self.chat_path, body, deadline), deadline)
        try:
            return self.parse_reply(data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._bad_response(f"unexpected reply shape ({type(exc).__name__})") from None

    async def stream(self, call: ChatCall, deadline: float | None) -> AsyncIterator[StreamEvent]:
        """Deltas, then one Completion; only opening the stream is retried, never a started reply.

        Closing the iterator (the gRPC call was cancelled) closes the HTTP response, which drops
        the connection, and the provider stops generating.
        """
        self._require_configured()
        body = self.body(call, stream=True)
        response = await self._with_retries(lambda: self._open_stream(body, deadline), deadline)
        started = False
        state: dict[str, Any] = {}
        try:
            lines = response.aiter_lines()
            while True:
                try:
                    async with _until(deadline):
                        line = await anext(lines, None)
                except (httpx.TransportError, TimeoutError) as exc:
                    raise self._interrupted(started, type(exc).__name__) from None
                if line is None:
                    raise self._interrupted(started, "the reply ended without its final message")
                line = line.strip()
                if not line:
                    continue
                try:
                    events = self.parse_stream_line(line, state)
                except StreamErrorEvent as exc:
                    raise self._interrupted(started, f"the provider reported: {self._scrub(str(exc))}") from None
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise self._bad_response(f"unreadable stream line ({type(exc).__name__})") from None
                for event in events:
                    if isinstance(event, Delta):
                        started = True
                    yield event
                    if isinstance(event, Completion):
                        return
        finally:
            await response.aclose()

    async def models(self, deadline: float | None) -> list[str]:
        """Model ids the endpoint offers."""
        self._require_configured()

        async def fetch() -> Any:
            async with self._attempt(deadline):
                response = await self._client.get(self.models_path)
            return self._json_or_raise(response)

        data = await self._with_retries(fetch, deadline)
        try:
            return sorted(self.parse_models(data))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._bad_response(f"unexpected model list shape ({type(exc).__name__})") from None

    # -- wire protocol (subclasses) ------------------------------------------------------------

    def body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def parse_reply(self, data: Any) -> Completion:
        raise NotImplementedError

    def parse_stream_line(self, line: str, state: dict[str, Any]) -> list[StreamEvent]:
        """Events of one stream line; `state` is the stream's own scratch space."""
        raise NotImplementedError

    def parse_models(self, data: Any) -> list[str]:
        raise NotImplementedError

    # -- HTTP and retries ----------------------------------------------------------------------

    async def _post_json(self, path: str, body: dict[str, Any], deadline: float | None) -> Any:
        async with self._attempt(deadline, total=True):
            response = await self._client.post(path, json=body)
        return self._json_or_raise(response)

    async def _open_stream(self, body: dict[str, Any], deadline: float | None) -> httpx.Response:
        async with self._attempt(deadline):
            request = self._client.build_request("POST", self.chat_path, json=body)
            response = await self._client.send(request, stream=True)
        if response.status_code >= 400:
            try:
                async with self._attempt(deadline):
                    await response.aread()
            finally:
                await response.aclose()
            self._raise_http(response)
        return response

    def _json_or_raise(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            self._raise_http(response)
        try:
            return response.json()
        except ValueError:
            raise self._bad_response("the reply is not JSON") from None

    @contextlib.asynccontextmanager
    async def _attempt(self, deadline: float | None, *, total: bool = False) -> AsyncIterator[None]:
        """One HTTP exchange inside the caller's deadline (and, when `total`, the provider's timeout
        for the whole reply); transport failures become domain errors, retryable when safe."""
        budget = _remaining(deadline)
        if total:
            budget = self.timeout_s if budget is None else min(budget, self.timeout_s)
        try:
            async with asyncio.timeout(budget):
                yield
        except TimeoutError:
            raise self._unavailable(f"no reply within {budget:.1f} s") from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the provider: trying again cannot run the request twice.
            raise _Retryable(self._unavailable(f"cannot connect ({type(exc).__name__})")) from None
        except httpx.TimeoutException as exc:
            raise self._unavailable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise self._unavailable(f"the connection failed ({type(exc).__name__})") from None

    async def _with_retries(self, attempt: Any, deadline: float | None) -> Any:
        backoff = wait_exponential_jitter(multiplier=0.1, max=max(self._max_backoff_s, 0.1), jitter=0.1)

        def wait(state: RetryCallState) -> float:
            asked = _retry_delay(state)
            return asked if asked is not None else float(backoff(state))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self._max_attempts:
                return True
            delay = wait(state)
            if _retry_delay(state) is not None and delay > self._max_backoff_s:
                return True  # the provider asks for a longer pause than a caller should wait
            left = _remaining(deadline)
            return left is not None and delay >= left

        def note(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("provider %s: attempt %d failed (%s), trying again", self.name, state.attempt_number, error)

        try:
            async for tried in AsyncRetrying(
                retry=retry_if_exception_type(_Retryable), stop=stop, wait=wait, before_sleep=note, reraise=True
            ):
                with tried:
                    return await attempt()
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    # -- errors --------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """`text` with the API key (if it appears) replaced, cut to a readable length."""
        if self._key and self._key in text:
            text = text.replace(self._key, "[redacted]")
        text = " ".join(text.split())
        return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "…"

    def _detail(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            return self._scrub(response.text)
        error = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(error, dict):
            error = error.get("message", error)
        return self._scrub(str(error))

    def _raise_http(self, response: httpx.Response) -> None:
        """Raises the domain error of a failed upstream reply; 429 and 503 may be tried again."""
        error = self._http_error(response)
        if error.code not in (Code.INVALID_ARGUMENT, Code.NOT_FOUND):  # the provider's trouble, not the caller's
            metrics.backend_error("provider", error.reason)
        if response.status_code in (429, 503):
            raise _Retryable(error)
        raise error

    def _http_error(self, response: httpx.Response) -> LakehouseError:
        """Upstream HTTP failure -> domain error, one table for every provider kind."""
        status = response.status_code
        detail = self._detail(response)
        said = f"provider {self.name!r} answered HTTP {status}: {detail}"
        meta = {"provider": self.name, "http_status": str(status)}
        if status == 429:
            delay = _retry_after(response.headers.get("retry-after"))
            return ResourceExhausted(
                said, reason="PROVIDER_RATE_LIMITED", metadata=meta, retry_after_s=delay if delay is not None else 1.0
            )
        if status in (401, 403):
            return FailedPrecondition(
                f"provider {self.name!r} refused the API key (HTTP {status}); check {self._key_env or 'api_key_env'}: "
                f"{detail}",
                reason="PROVIDER_AUTH_FAILED",
                metadata=meta,
            )
        if status == 404:
            return NotFound(said, reason="MODEL_NOT_FOUND", metadata=meta)
        if status in (400, 413, 422):
            return InvalidArgument(said, reason="PROVIDER_REJECTED_REQUEST", metadata=meta)
        return Unavailable(said, reason="PROVIDER_UNAVAILABLE", metadata=meta, retry_after_s=1.0)

    def _unavailable(self, why: str) -> Unavailable:
        metrics.backend_error("provider", "PROVIDER_UNAVAILABLE")
        return Unavailable(
            f"provider {self.name!r} at {self.base_url}: {why}",
            reason="PROVIDER_UNAVAILABLE",
            metadata={"provider": self.name},
            retry_after_s=1.0,
        )

    def _bad_response(self, why: str) -> Unavailable:
        metrics.backend_error("provider", "PROVIDER_BAD_RESPONSE")
        return Unavailable(
            f"provider {self.name!r} sent a malformed response: {why}",
            reason="PROVIDER_BAD_RESPONSE",
            metadata={"provider": self.name},
        )

    def _interrupted(self, started: bool, why: str) -> Unavailable:
        if not started:
            return self._unavailable(f"the reply stream failed before any text: {why}")
        return Unavailable(
            f"provider {self.name!r}: the reply stream broke off after it started ({why}); it is not retried",
            reason="PROVIDER_STREAM_INTERRUPTED",
            metadata={"provider": self.name},
        )


class OpenAIProvider(HttpProvider):
    """OpenAI-compatible `/v1/chat/completions` with SSE streaming (OpenAI, OpenRouter, vLLM,
    llama.cpp server, LM Studio, LiteLLM). A base URL ending in /v1 is accepted as well."""

    kind = "openai"
    chat_path = "v1/chat/completions"
    models_path = "v1/models"

    @staticmethod
    def _root(base_url: str) -> str:
        # Paths are relative, so "https://api.openai.com" and ".../v1" both work.
        return base_url.removesuffix("/v1") + "/"

    def body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.model,
            "messages": [{"role": m.role, "content": m.content} for m in call.messages],
            "stream": stream,
        }
        if stream and self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        if call.temperature is not None:
            body["temperature"] = call.temperature
        if call.max_tokens is not None:
            body["max_tokens"] = call.max_tokens
        if call.json_mode:
            body["response_format"] = {"type": "json_object"}
        if call.stop:
            body["stop"] = list(call.stop)
        return body

    def parse_reply(self, data: Any) -> Completion:
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        if not isinstance(content, str):
            raise TypeError("content")
        return Completion(content, _FINISH.get(choice.get("finish_reason") or "", ""), _openai_usage(data))

    def parse_stream_line(self, line: str, state: dict[str, Any]) -> list[StreamEvent]:
        if line.startswith(":") or not line.startswith("data:"):
            return []  # SSE comments (keep-alives) and event/id fields
        payload = line[5:].strip()
        if payload == "[DONE]":
            return [Completion("", state.get("finish", ""), state.get("usage"))]
        data = json.loads(payload)
        if not isinstance(data, dict):
            raise TypeError("event")
        if "error" in data:
            error = data["error"]
            raise StreamErrorEvent(error.get("message", error) if isinstance(error, dict) else error)
        events: list[StreamEvent] = []
        for choice in data.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                events.append(Delta(str(text)))
            if choice.get("finish_reason"):
                state["finish"] = _FINISH.get(choice["finish_reason"], "")
        # The usage comes in a last chunk with no choices (stream_options.include_usage).
        state["usage"] = _openai_usage(data) or state.get("usage")
        return events

    def parse_models(self, data: Any) -> list[str]:
        return [str(m["id"]) for m in data["data"]]


class OllamaProvider(HttpProvider):
    """Ollama's `/api/chat` with NDJSON streaming."""

    kind = "ollama"
    chat_path = "/api/chat"
    models_path = "/api/tags"

    def body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if call.temperature is not None:
            options["temperature"] = call.temperature
        if call.max_tokens is not None:
            options["num_predict"] = call.max_tokens
        if call.stop:
            options["stop"] = list(call.stop)
        body: dict[str, Any] = {
            "model": call.model,
            "messages": [{"role": m.role, "content": m.content} for m in call.messages],
            "stream": stream,  # Ollama streams unless told otherwise
        }
        if options:
            body["options"] = options
        if call.json_mode:
            body["format"] = "json"
        return body

    def parse_reply(self, data: Any) -> Completion:
        content = data["message"]["content"]
        if not isinstance(content, str):
            raise TypeError("content")
        return Completion(content, _FINISH.get(data.get("done_reason") or "stop", ""), _ollama_usage(data))

    def parse_stream_line(self, line: str, state: dict[str, Any]) -> list[StreamEvent]:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise TypeError("line")
        if "error" in data:
            raise StreamErrorEvent(data["error"])
        events: list[StreamEvent] = []
        text = (data.get("message") or {}).get("content")
        if text:
            events.append(Delta(str(text)))
        if data.get("done"):
            events.append(Completion("", _FINISH.get(data.get("done_reason") or "stop", ""), _ollama_usage(data)))
        return events

    def parse_models(self, data: Any) -> list[str]:
        return [str(m["name"]) for m in data["models"]]


PROVIDER_KINDS: dict[str, type[HttpProvider]] = {"openai": OpenAIProvider, "ollama": OllamaProvider}
"""Wire protocols by `kind`; another protocol is one more subclass here."""


def make_providers(chat: ChatConfig, environ: Mapping[str, str] | None = None) -> dict[str, HttpProvider]:
    """One provider (with its own connection pool) per configured `[chat.providers.<name>]`."""
    return {name: PROVIDER_KINDS[p.kind](name, p, chat, environ) for name, p in sorted(chat.providers.items())}


# -- helpers ---------------------------------------------------------------------------------------


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


@contextlib.asynccontextmanager
async def _until(deadline: float | None) -> AsyncIterator[None]:
    async with asyncio.timeout(_remaining(deadline)):
        yield


def _retry_delay(state: RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _Retryable) and isinstance(error.error, ResourceExhausted):
        return error.error.retry_after_s
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _openai_usage(data: Mapping[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))


def _ollama_usage(data: Mapping[str, Any]) -> Usage | None:
    if "prompt_eval_count" not in data and "eval_count" not in data:
        return None
    return Usage(_int(data.get("prompt_eval_count")), _int(data.get("eval_count")))
