"""The session log buffer: records become one Parquet append per flush, the buffer is bounded, a
failed append keeps the records for the next flush, and closing flushes what is left."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from lakehouse.server.chat.gateways import SessionRecord
from lakehouse.server.chat.sessions import SCHEMA, SessionLog, SessionLogRefused
from lakehouse.server.common.executor import BlockingExecutor


def record(n: int) -> SessionRecord:
    return SessionRecord(
        time=datetime(2026, 1, 1, tzinfo=UTC),
        request_id=f"r{n}",
        principal="ops",
        method="Answer",
        model="echo",
        provider="fake",
        mode="GENERATED",
        code="OK",
        latency_ms=1.5,
        prompt_tokens=3,
        completion_tokens=None,
        citations=("notes/1", "notes/2"),
        grounded=True,
    )


class Appends:
    def __init__(self, fail: int = 0) -> None:
        self.files: list[bytes] = []
        self.fail = fail

    async def __call__(self, data: bytes) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("query service down")
        self.files.append(data)


@pytest.fixture
def executor() -> Iterator[BlockingExecutor]:
    pool = BlockingExecutor(1)
    yield pool
    pool.shutdown()


async def test_one_flush_is_one_append_of_every_buffered_record(executor: BlockingExecutor) -> None:
    appends = Appends()
    log = SessionLog(appends, executor, flush_s=60, max_buffered=100)
    for n in range(3):
        log.append(record(n))
    await log.flush()
    await log.flush()  # nothing left: no empty append
    assert len(appends.files) == 1
    table = pq.read_table(io.BytesIO(appends.files[0]))
    assert table.schema == SCHEMA
    assert table["request_id"].to_pylist() == ["r0", "r1", "r2"]
    assert table["citations"].to_pylist()[0] == ["notes/1", "notes/2"]
    assert table["completion_tokens"].to_pylist()[0] is None


async def test_the_buffer_is_bounded_and_a_failed_append_keeps_the_records(executor: BlockingExecutor) -> None:
    appends = Appends(fail=1)
    log = SessionLog(appends, executor, flush_s=60, max_buffered=2)
    for n in range(5):
        log.append(record(n))
    with pytest.raises(ConnectionError):
        await log.flush()
    await log.close()
    assert [pq.read_table(io.BytesIO(f))["request_id"].to_pylist() for f in appends.files] == [["r0", "r1"]]
    assert log.written == 2


async def test_with_no_dataset_nothing_is_kept(executor: BlockingExecutor) -> None:
    log = SessionLog(None, executor, flush_s=60, max_buffered=2)
    log.append(record(1))
    log.start()
    await log.close()
    assert not log.enabled and log.written == 0


async def test_a_refused_log_stops_recording_instead_of_retrying_forever(executor: BlockingExecutor) -> None:
    calls = 0

    async def refuse(data: bytes) -> None:
        nonlocal calls
        calls += 1
        raise SessionLogRefused("PERMISSION_DENIED: mesh may not call IngestFile")

    log = SessionLog(refuse, executor, flush_s=0.01, max_buffered=10)
    log.append(record(1))
    log.start()
    for _ in range(100):
        if not log.enabled:
            break
        await asyncio.sleep(0.01)
    log.append(record(2))
    await log.close()
    assert not log.enabled and calls == 1
