"""The session log: one record per Chat, ChatStream and Answer call, appended to a dataset the
query service reads (`chat_sessions` by default), so `SELECT ... FROM chat_sessions` answers who
asked which model what it cost and whether the answer was grounded.

A Delta commit per call would add ~10 ms and a table version to every call, so records are
buffered and appended by one background task at most every `session_flush_s` (one commit per
flush). The buffer is bounded: while the query service is down, records beyond
`session_max_buffered` are counted, logged and dropped rather than exhausting memory. Closing the
service flushes what is buffered (within a grace period). Records carry no prompts, no answers
and no keys: only ids, names, timings, token counts and the citations' collection/id.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.server.chat.gateways import SessionRecord
from lakehouse.server.common.executor import BlockingExecutor

log = logging.getLogger("lakehouse.chat")

RETRY_S = 2.0
SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("principal", pa.string()),
        pa.field("method", pa.string()),
        pa.field("model", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("code", pa.string()),
        pa.field("latency_ms", pa.float64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("citations", pa.list_(pa.string())),
        pa.field("grounded", pa.bool_()),
    ]
)


class SessionLogRefused(Exception):
    """The query service refuses the appends for good (no shared mesh token, a `chat_sessions`
    dataset of another schema): trying again cannot help."""


def to_parquet(records: Sequence[SessionRecord]) -> bytes:
    """Records as one Parquet file in SCHEMA."""
    columns = {name: [getattr(r, name) for r in records] for name in SCHEMA.names}
    columns["citations"] = [list(r.citations) for r in records]
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


class SessionLog:
    """`gateways.SessionSink`: buffers records and appends them in the background."""

    def __init__(
        self,
        write: Callable[[bytes], Awaitable[None]] | None,
        executor: BlockingExecutor,
        flush_s: float,
        max_buffered: int,
    ) -> None:
        self._write = write
        self._executor = executor
        self._flush_s = flush_s
        self._max = max_buffered
        self._buffer: deque[SessionRecord] = deque()
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()
        self.written = 0
        """Records appended so far (for tests and the bench)."""

    @property
    def enabled(self) -> bool:
        return self._write is not None

    def append(self, record: SessionRecord) -> None:
        """Buffers one record; never blocks, never raises."""
        if self._write is None:
            return
        if len(self._buffer) >= self._max:
            self._dropped += 1
            return
        self._buffer.append(record)

    def start(self) -> None:
        if self._write is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lakehouse-chat-sessions")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except SessionLogRefused as exc:
                log.error(
                    "the query service refuses the chat session log (%s); from now on sessions are not recorded. "
                    "Give every process the same token through [auth] mesh_token_env, or choose another "
                    "[chat] session_dataset.",
                    exc,
                )
                self._write = None
                self._buffer.clear()
                return
            except Exception as exc:  # the query service is down: keep the records, try later
                log.warning("could not append %d chat session records yet: %s", len(self._buffer), exc)
                await asyncio.sleep(RETRY_S)

    async def flush(self) -> None:
        """Appends everything buffered now, as one commit."""
        if self._write is None:
            return
        async with self._sending:
            if self._dropped:
                log.warning("%d chat session records were dropped: the session buffer was full", self._dropped)
                self._dropped = 0
            if not self._buffer:
                return
            batch = list(self._buffer)
            data = await self._executor.run(to_parquet, batch)
            await self._write(data)
            for _ in batch:
                self._buffer.popleft()
            self.written += len(batch)

    async def close(self, flush_s: float = 5.0) -> None:
        """Stops the background task, then appends what is buffered (within `flush_s`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await asyncio.wait_for(self.flush(), flush_s)
        except Exception as exc:
            log.warning("%d chat session records were not appended at shutdown: %s", len(self._buffer), exc)
