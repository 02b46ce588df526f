"""Blocking clients: the async clients run on a private event-loop thread.

    with StorageClient("127.0.0.1:50051") as storage:
        storage.put_object("raw/a.csv", b"id\\n1\\n")

Coroutine methods become blocking calls; async-generator methods become plain iterators.
Errors are the same `LakehouseClientError` classes the async clients raise.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

from lakehouse.client._base import BaseAsyncClient, RetryPolicy, open_channel, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.chat import AsyncChatClient
from lakehouse.client.storage import AsyncStorageClient

C = TypeVar("C", bound=BaseAsyncClient)
T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lakehouse-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """`agen` as a blocking iterator; leaving the loop early (break, error, GC) closes `agen`."""
        try:
            while True:
                try:
                    yield self.run(agen.__anext__())  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            # Closing runs agen's cleanup (for a server stream: cancelling the call) on the loop.
            # After close() the loop is gone and the channel with it; nothing is left to clean.
            if self.loop.is_running():
                self.run(agen.aclose())  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class SyncClient(Generic[C]):
    """Wraps an async client class; every public method is exposed as a blocking one."""

    _client_class: type[BaseAsyncClient]

    def __init__(
        self, address: str, *, token: str | None = None, timeout_s: float = 30.0, retry: RetryPolicy = RetryPolicy()
    ) -> None:
        self._loop = _LoopThread()

        async def make() -> BaseAsyncClient:
            return self._client_class(
                open_channel(address),
                timeout_s=timeout_s,
                retry=retry,
                metadata=token_metadata(token),
                owns_channel=True,
            )

        self._async = self._loop.run(make())

    def __getattr__(self, name: str) -> Callable[..., Any]:
        attr = getattr(self._async, name)
        if name.startswith("_") or not callable(attr):
            return attr
        if inspect.isasyncgenfunction(attr):
            return lambda *args, **kwargs: self._loop.iterate(attr(*args, **kwargs))
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: self._loop.run(attr(*args, **kwargs))
        return attr

    def close(self) -> None:
        self._loop.run(self._async.close())
        self._loop.stop()

    def __enter__(self) -> SyncClient[C]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StorageClient(SyncClient[AsyncStorageClient]):
    """Blocking storage client; methods as on `AsyncStorageClient`."""

    _client_class = AsyncStorageClient


class CatalogClient(SyncClient[AsyncCatalogClient]):
    """Blocking catalog client; methods as on `AsyncCatalogClient`."""

    _client_class = AsyncCatalogClient


class ChatClient(SyncClient[AsyncChatClient]):
    """Blocking chat client; methods as on `AsyncChatClient` (`chat_stream` yields as it arrives)."""

    _client_class = AsyncChatClient
