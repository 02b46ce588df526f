"""Journals every denied call (PERMISSION_DENIED, UNAUTHENTICATED) in the catalog's audit journal.

Denials are queued without waiting and sent in batches by one background task, as the mesh's own
identity (the caller was refused, so its credentials cannot be used). The queue is bounded: a
flood of refused calls cannot exhaust memory; what overflows is counted and logged instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from datetime import UTC, datetime

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import DeadlineExceededError, LakehouseClientError, UnavailableError
from lakehouse.server.common.audit import Denial
from lakehouse.server.common.peers import PeerChannels

log = logging.getLogger("lakehouse.denials")

MAX_QUEUED = 10_000
BATCH = 1000
RETRY_S = 2.0
_JOURNAL_METHOD = "RecordDenials"  # its own denials are only logged: journaling them could loop
_MAX_TEXT = 1000


class DenialJournal:
    def __init__(self, peers: PeerChannels, mesh_authorization: str, timeout_s: float = 10.0) -> None:
        self._peers = peers
        self._authorization = mesh_authorization
        self._timeout_s = timeout_s
        self._queue: deque[Denial] = deque()
        self._dropped = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncCatalogClient | None = None
        self._journal = True
        self._sending = asyncio.Lock()

    def record(
        self, method: str, principal: str, code: str, reason: str, message: str, request_id: str, peer: str
    ) -> None:
        """Queues one denial; never blocks and never raises."""
        denial = Denial(datetime.now(UTC), method, principal, code, reason, message[:_MAX_TEXT], request_id, peer)
        if not self._journal or method.endswith("/" + _JOURNAL_METHOD):
            self._log(denial)
            return
        if len(self._queue) >= MAX_QUEUED:
            self._dropped += 1
            return
        self._queue.append(denial)
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        self._wake = asyncio.Event()
        if self._queue:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lakehouse-denials")

    async def close(self, flush_s: float = 2.0) -> None:
        """Sends what is queued (within `flush_s`), then stops."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), flush_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            except (UnavailableError, DeadlineExceededError) as exc:  # the catalog is down: try again
                log.warning("could not journal %d denied calls yet: %s", len(self._queue), exc.message)
                await asyncio.sleep(RETRY_S)
                self._wake.set()
            except LakehouseClientError as exc:
                self._give_up(exc)

    async def _drain(self) -> None:
        async with self._sending:  # the background task and close() may both drain
            await self._send_queued()

    async def _send_queued(self) -> None:
        if self._dropped:
            log.warning("%d denied calls were not journaled: the journal queue was full", self._dropped)
            self._dropped = 0
        while self._queue:
            batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
            await self._catalog().record_denials([_denial_pb(d) for d in batch])
            for _ in batch:
                self._queue.popleft()

    def _give_up(self, exc: LakehouseClientError) -> None:
        """The catalog refuses the journal (no shared mesh token, or no catalog at that address):
        say so once, and from then on only log denials."""
        log.error(
            "the catalog refused to journal denied calls (%s: %s); they are logged here instead. Give every "
            "process the same token through [auth] mesh_token_env.",
            exc.code.name,
            exc.message,
        )
        self._journal = False
        while self._queue:
            self._log(self._queue.popleft())

    @staticmethod
    def _log(denial: Denial) -> None:
        log.warning("denied %s to %s: %s", denial.method, denial.principal or "anonymous", denial.reason)

    def _catalog(self) -> AsyncCatalogClient:
        if self._client is None:
            metadata = (("authorization", self._authorization),) if self._authorization else ()
            self._client = AsyncCatalogClient(
                self._peers.channel("catalog"), timeout_s=self._timeout_s, metadata=lambda: metadata
            )
        return self._client


def _denial_pb(denial: Denial) -> catalog_pb.Denial:
    message = catalog_pb.Denial(
        method=denial.method,
        principal=denial.principal,
        code=denial.code,
        reason=denial.reason,
        message=denial.message,
        request_id=denial.request_id,
        peer=denial.peer,
    )
    if denial.time is not None:
        message.time.FromDatetime(denial.time)
    return message
