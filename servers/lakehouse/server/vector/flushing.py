"""Flushes a collection once a burst of upserts is over, rather than after every call.

Milvus searches unsealed (growing) segments by brute force, so written vectors should be sealed
and indexed soon. But a flush per UpsertVectors call is slow (about a second per call on a Milvus
2.3 server) and seals tiny segments, below the 1,024 rows Milvus needs before it builds an index
on a segment: a bulk load of 100K vectors in 1,000-row calls would end as a hundred unindexed
segments and search three times slower. So each upsert only (re)arms a timer; the flush runs when
the collection has been quiet for `idle_s`, or at the latest `max_delay_s` after the first
unflushed write, and once more for whatever is pending at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("lakehouse.vector")


@dataclass
class _Pending:
    first_write: float
    last_write: float
    task: asyncio.Task[None]


class DeferredFlush:
    """Per collection, one flush after writes stop: see the module docstring."""

    def __init__(self, flush: Callable[[str], Awaitable[None]], *, idle_s: float, max_delay_s: float) -> None:
        self._flush = flush
        self._idle_s = idle_s
        self._max_delay_s = max(max_delay_s, idle_s)
        self._pending: dict[str, _Pending] = {}
        self._flushing: set[asyncio.Task[None]] = set()
        self._running: dict[str, int] = {}
        """Flushes in progress per collection: until one returns, Milvus has not sealed the rows yet."""

    def written(self, collection: str) -> None:
        """Records a write to `collection`; its flush runs once writes pause."""
        now = time.monotonic()
        pending = self._pending.get(collection)
        if pending is not None and not pending.task.done():
            pending.last_write = now
            return
        task = asyncio.create_task(self._flush_when_quiet(collection), name=f"lakehouse-vector-flush-{collection}")
        self._pending[collection] = _Pending(now, now, task)
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    def pending(self, collection: str) -> bool:
        """Whether `collection` has writes not yet flushed (or being flushed)."""
        return collection in self._pending or collection in self._running

    def forget(self, collection: str) -> None:
        """Drops the pending flush of a collection that no longer exists."""
        pending = self._pending.pop(collection, None)
        if pending is not None:
            pending.task.cancel()

    async def _flush_when_quiet(self, collection: str) -> None:
        while True:
            pending = self._pending[collection]
            now = time.monotonic()
            due = min(pending.last_write + self._idle_s, pending.first_write + self._max_delay_s)
            if now >= due:
                break
            await asyncio.sleep(due - now)
        await self._run(collection)

    async def _run(self, collection: str) -> None:
        # Writes landing while the flush runs re-arm a new timer: this one covers only what came before.
        self._pending.pop(collection, None)
        self._running[collection] = self._running.get(collection, 0) + 1
        try:
            await self._flush(collection)
        except Exception as exc:  # the data is written; Milvus seals segments itself in time
            log.warning("flushing collection %s failed (%s); Milvus will seal its segments on its own", collection, exc)
        finally:
            self._running[collection] -= 1
            if not self._running[collection]:
                del self._running[collection]

    async def close(self) -> None:
        """Flushes everything pending now (at shutdown), after any flush already running."""
        waiting = list(self._pending.items())
        for _, pending in waiting:
            pending.task.cancel()
        await asyncio.gather(*self._flushing, return_exceptions=True)
        for collection, _ in waiting:
            await self._run(collection)
