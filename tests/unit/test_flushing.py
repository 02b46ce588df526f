"""DeferredFlush: one flush per burst of upserts (servers/lakehouse/server/vector/flushing.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lakehouse.server.vector.flushing import DeferredFlush


class Flushes:
    """A flush function that records what it flushed and can be made to fail."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.fail = False

    async def __call__(self, collection: str) -> None:
        if self.fail:
            raise RuntimeError("milvus said no")
        self.done.append(collection)


async def settle(flusher: DeferredFlush, *collections: str) -> None:
    while any(flusher.pending(c) for c in collections):
        await asyncio.sleep(0.005)


async def test_a_burst_of_writes_is_flushed_once_after_it_stops() -> None:
    flushes = Flushes()
    flusher = DeferredFlush(flushes, idle_s=0.05, max_delay_s=60)
    for _ in range(20):
        flusher.written("docs")
        await asyncio.sleep(0.001)
    assert flusher.pending("docs")
    assert flushes.done == []
    await settle(flusher, "docs")
    assert flushes.done == ["docs"]


async def test_collections_flush_independently() -> None:
    flushes = Flushes()
    flusher = DeferredFlush(flushes, idle_s=0.01, max_delay_s=60)
    flusher.written("a")
    flusher.written("b")
    flusher.written("a")
    await settle(flusher, "a", "b")
    assert sorted(flushes.done) == ["a", "b"]


async def test_a_collection_that_never_goes_quiet_is_flushed_by_the_max_delay() -> None:
    flushes = Flushes()
    flusher = DeferredFlush(flushes, idle_s=10, max_delay_s=0.05)
    while not flushes.done:
        flusher.written("busy")
        await asyncio.sleep(0.005)
    assert flushes.done == ["busy"]
    flusher.written("busy")  # writes after that flush wait for a flush of their own
    assert flusher.pending("busy")
    await flusher.close()
    assert flushes.done == ["busy", "busy"]


async def test_close_flushes_what_is_pending_at_once() -> None:
    flushes = Flushes()
    flusher = DeferredFlush(flushes, idle_s=60, max_delay_s=60)
    flusher.written("docs")
    await flusher.close()
    assert flushes.done == ["docs"]
    assert not flusher.pending("docs")


async def test_a_dropped_collection_is_not_flushed() -> None:
    flushes = Flushes()
    flusher = DeferredFlush(flushes, idle_s=0.01, max_delay_s=60)
    flusher.written("gone")
    flusher.forget("gone")
    await asyncio.sleep(0.05)
    await flusher.close()
    assert flushes.done == []


async def test_a_failed_flush_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    flushes = Flushes()
    flushes.fail = True
    flusher = DeferredFlush(flushes, idle_s=0.01, max_delay_s=60)
    with caplog.at_level(logging.WARNING, logger="lakehouse.vector"):
        flusher.written("docs")
        await settle(flusher, "docs")
        await flusher.close()
    assert "flushing collection docs failed" in caplog.text


async def test_a_collection_stays_pending_until_its_flush_returns() -> None:
    release = asyncio.Event()
    flushed: list[str] = []

    async def slow_flush(collection: str) -> None:
        await release.wait()
        flushed.append(collection)

    flusher = DeferredFlush(slow_flush, idle_s=0, max_delay_s=0)
    flusher.written("docs")
    await asyncio.sleep(0.02)  # the flush has started and waits for Milvus
    assert flusher.pending("docs") and flushed == []
    release.set()
    await settle(flusher, "docs")
    assert flushed == ["docs"]
