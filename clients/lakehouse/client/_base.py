"""What every typed client shares: channels, credentials, deadlines, bounded retries, error mapping."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from lakehouse.client.errors import from_rpc_error, is_retryable

T = TypeVar("T")
Metadata = Sequence[tuple[str, str]]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries inside the call's deadline.

    Retried: UNAVAILABLE (for calls that are not idempotent, only when the request was never sent)
    and RESOURCE_EXHAUSTED that carries RetryInfo. Nothing else.
    """

    attempts: int = 4
    """Attempts in all, the first one included."""
    initial_backoff_s: float = 0.1
    """First wait; later waits grow exponentially with jitter (RetryInfo from the server wins)."""
    max_backoff_s: float = 2.0
    """Longest single wait."""


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to HOST:PORT with the mesh's message size limits."""
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.aio.insecure_channel(address, options=options)


def token_metadata(token: str | None) -> Callable[[], Metadata]:
    """Metadata provider that sends `token` (or LAKEHOUSE_TOKEN) as a bearer token."""
    token = token if token is not None else os.environ.get("LAKEHOUSE_TOKEN", "")
    pairs: Metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return lambda: pairs


class BaseAsyncClient:
    """Calls stubs with a deadline, credentials and retries; raises `LakehouseClientError`s."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        metadata: Callable[[], Metadata] | None = None,
        owns_channel: bool = False,
    ) -> None:
        self._channel = channel
        self._timeout_s = timeout_s
        self._retry = retry
        self._metadata = metadata or token_metadata(None)
        self._owns_channel = owns_channel

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(
        self,
        rpc: Callable[..., Awaitable[T]],
        request: Any,
        *,
        timeout_s: float | None = None,
        idempotent: bool = True,
    ) -> T:
        """One unary call with retries on retryable codes until attempts or the deadline run out.

        Args:
            rpc: The stub method.
            request: The request message.
            timeout_s: Deadline of the whole call, retries included (default: the client's).
            idempotent: Whether running the call twice has the effect of running it once. When
                False, UNAVAILABLE is retried only if gRPC never sent the request: the server
                may have committed the change before the connection broke.
        """
        deadline = time.monotonic() + (timeout_s or self._timeout_s)
        async for attempt in self._retrying(deadline, idempotent=idempotent):
            with attempt:
                return await self._call_once(rpc, request, deadline)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _call_once(self, rpc: Callable[..., Awaitable[T]], request: Any, deadline: float) -> T:
        try:
            return await rpc(request, timeout=max(deadline - time.monotonic(), 0.001), metadata=tuple(self._metadata()))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def _retrying(self, deadline: float, *, idempotent: bool) -> AsyncRetrying:
        policy = self._retry
        backoff = wait_exponential_jitter(
            multiplier=policy.initial_backoff_s, max=policy.max_backoff_s, jitter=policy.initial_backoff_s
        )

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            delay = getattr(error, "retry_delay_s", None)
            chosen = delay if delay is not None else backoff(state)
            return max(0.0, min(chosen, deadline - time.monotonic()))

        return AsyncRetrying(
            retry=retry_if_exception(lambda error: is_retryable(error, idempotent=idempotent)),
            stop=stop_after_attempt(policy.attempts) | stop_after_delay(max(deadline - time.monotonic(), 0.0)),
            wait=wait,
            reraise=True,
        )

    async def _server_stream(
        self,
        rpc: Callable[..., Any],
        request: Any,
        *,
        timeout_s: float | None = None,
        idempotent: bool = True,
    ) -> AsyncGenerator[Any, None]:
        """A server-streaming call; retried only while nothing has been received yet.

        `idempotent` as for `_unary`: pass False for a stream that changes something (an ingest).
        Closing the generator early (`break` then `aclose()`, or leaving an `aclosing` block)
        cancels the call, so the server stops sending at once instead of at the deadline.
        """
        deadline = time.monotonic() + (timeout_s or self._timeout_s)
        call: Any = None
        try:
            async for attempt in self._retrying(deadline, idempotent=idempotent):
                with attempt:
                    call = rpc(
                        request, timeout=max(deadline - time.monotonic(), 0.001), metadata=tuple(self._metadata())
                    )
                    try:
                        first = await call.read()
                    except grpc.RpcError as exc:
                        raise from_rpc_error(exc) from None
            message = first
            try:
                # read() and async iteration may not be mixed on one call; read() was used above.
                while message is not grpc.aio.EOF:
                    yield message
                    message = await call.read()
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from None
        finally:
            if call is not None:
                call.cancel()  # no-op once the call has finished

    async def _client_stream(
        self,
        rpc: Callable[..., Any],
        requests: Callable[[], AsyncIterator[Any]],
        *,
        timeout_s: float | None = None,
        replayable: bool = False,
    ) -> Any:
        """A client-streaming call; `requests` makes the request stream (again, when `replayable`).

        Sent again only when `replayable` and gRPC lost the server's answer: when a server ends the call before the
        client has sent everything (a refused token, an oversized upload), grpc.aio may report
        INTERNAL "Internal error from Core" instead of the server's status (grpc/grpc#36066). The
        upload rpcs change nothing until their final `commit` message, so a call the server ended
        early did nothing and sending it again yields the real status.

        When the request stream itself raises (say an OSError reading the file being uploaded),
        gRPC only cancels the call; that original error is raised here instead of the cancellation.
        """
        timeout = timeout_s or self._timeout_s
        source_errors: list[Exception] = []

        async def guarded() -> AsyncIterator[Any]:
            try:
                async for request in requests():
                    yield request
            except Exception as exc:
                source_errors.append(exc)
                raise

        try:
            for attempt in range(_LOST_STATUS_ATTEMPTS):
                try:
                    return await rpc(guarded(), timeout=timeout, metadata=tuple(self._metadata()))
                except grpc.RpcError as exc:
                    if not replayable or source_errors or not _status_lost(exc) or attempt + 2 > _LOST_STATUS_ATTEMPTS:
                        raise
            raise AssertionError("unreachable")
        except grpc.RpcError as exc:
            if source_errors:
                raise source_errors[0] from None
            raise from_rpc_error(exc) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if source_errors and not (task is not None and task.cancelling()):
                raise source_errors[0] from None
            raise  # the caller itself was cancelled


_LOST_STATUS_ATTEMPTS = 3


def _status_lost(error: grpc.RpcError) -> bool:
    """True when grpc.aio replaced the server's status after a failed write (grpc/grpc#36066)."""
    code = error.code() if hasattr(error, "code") else None
    debug = error.debug_error_string() if hasattr(error, "debug_error_string") else ""
    return code == grpc.StatusCode.INTERNAL and "SendMessageOperation" in debug
