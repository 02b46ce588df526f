"""The vector domain's gateways to the catalog, memory and query services, over their generated
stubs. Calls forward the caller's credentials (PeerChannels), so peers see the same principal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.flight as pa_flight

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.client._base import BaseAsyncClient
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import (
    DeadlineExceededError,
    LakehouseClientError,
    UnavailableError,
    UnimplementedError,
)
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient
from lakehouse.memory.v1 import memory_service_pb2 as memory_pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as memory_grpc
from lakehouse.query.v1 import query_service_pb2 as query_pb
from lakehouse.server.common.context import CallContext, current_call
from lakehouse.server.common.errors import (
    Code,
    FieldViolation,
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from lakehouse.server.common.leases import PolicyAnswer
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.vector.gateways import PlaybookMatch, SourceRows, SourceTable
from lakehouse.server.vector.service import VectorPolicy, memory_unavailable

log = logging.getLogger("lakehouse.vector")

PLAYBOOK_MATCHES = 100
"""Most recorded answers one search asks the memory service for."""


def vector_policy(p: catalog_pb.AccessPolicy) -> VectorPolicy:
    return VectorPolicy(
        principal=p.principal,
        profile=p.profile,
        restricted=p.restricted,
        collections=frozenset(p.collections),
        memory_namespaces=frozenset(p.memory_namespaces),
        hidden_keys={t.dataset: frozenset(t.key_values) for t in p.tombstones},
    )


class CatalogGateway:
    """`gateways.Catalog` and the caller's access policy, through the catalog service's client."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    @property
    def client(self) -> AsyncCatalogClient:
        return self._peers.client(AsyncCatalogClient, "catalog")

    async def access_policy(self, known_revision: int) -> PolicyAnswer[VectorPolicy]:
        response = await self.client.get_access_policy(known_revision)
        policy = None if response.unchanged else vector_policy(response.policy)
        return PolicyAnswer(response.revision, policy, response.lease.ToNanoseconds() / 1e9)

    async def register_derivation(self, dataset: str, collection: str, key_column: str, version: int) -> None:
        await self.client.register_derivation(
            dataset, "vector_collection", collection, key_column, dataset_version=version
        )

    async def remove_derivation(self, dataset: str, collection: str) -> None:
        await self.client.delete_derivation(dataset, "vector_collection", collection)


class _PlaybookClient(BaseAsyncClient):
    """The one memory call the vector service makes, with the typed clients' deadline and retries."""

    def __init__(self, channel: grpc.aio.Channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = memory_grpc.MemoryServiceStub(channel)

    async def lookup(self, request: memory_pb.LookupPlaybookRequest) -> memory_pb.LookupPlaybookResponse:
        return await self._unary(self._stub.LookupPlaybook, request)


class MemoryGateway:
    """`gateways.Memory` through the memory service's LookupPlaybook, as the calling principal.

    A memory service that cannot be reached, or is not part of this deployment (UNIMPLEMENTED),
    is MEMORY_UNAVAILABLE: only searches with the playbook on ever ask it.
    """

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def lookup_playbook(
        self, namespace: str, vector: np.ndarray, max_distance: float, role: str
    ) -> list[PlaybookMatch]:
        request = memory_pb.LookupPlaybookRequest(
            namespace=namespace,
            query_vector=memory_pb.Vector(values=np.asarray(vector, dtype=np.float32).tolist()),
            max_distance=max_distance,
            role=role,
            k=PLAYBOOK_MATCHES,
        )
        try:
            response = await self._peers.client(_PlaybookClient, "memory").lookup(request)
        except (UnavailableError, UnimplementedError, DeadlineExceededError) as exc:
            raise memory_unavailable(f"{exc.code.name}: {exc.message}") from None
        return [
            PlaybookMatch(
                entry_id=m.entry.id,
                collection=m.entry.answer_collection,
                answer_id=m.entry.answer_id,
                recorded_query=m.entry.query,
                query_distance=m.distance,
                score=m.entry.score,
                role=m.entry.role,
            )
            for m in response.matches
        ]


# -- query ---------------------------------------------------------------------------------------

T = TypeVar("T")


class QueryGateway:
    """`gateways.Query` through the query service as the caller: the caller's credentials go with
    every call (gRPC and Flight alike), so profiles, views and tombstones apply to what is read.

    Rows come as a Query with no inline rows, whose ticket is then followed over Arrow Flight:
    the result streams in the query service's batches instead of being paged with SQL (paging
    would re-run the statement once per page and needs an order to page by). Flight is blocking,
    so each batch is read in a thread and handed to the event loop one at a time.
    """

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    @property
    def client(self) -> AsyncQueryClient:
        return self._peers.client(AsyncQueryClient, "query")

    async def describe(self, name: str) -> SourceTable:
        table = await self._listed(name)
        if table is None:
            async with _query_errors():
                # The query service says why: TABLE_NOT_ALLOWED (with the tables a profile may
                # read) for an agent, else not found.
                await self.client.query(f"SELECT * FROM {_sql_name(name)} LIMIT 0", max_inline_rows=0)
            raise NotFound(f"dataset {name!r} does not exist", reason="DATASET_NOT_FOUND")
        return SourceTable(
            name=table.name,
            base_dataset=table.base_dataset or table.name,
            is_view=table.kind == query_pb.TABLE_KIND_VIEW,
            version=table.version,
            schema=pa.ipc.open_stream(table.schema.arrow_ipc).schema,
        )

    async def current_version(self, name: str) -> int:
        # No probe here: a status call must not journal a denial for a dataset the caller cannot read.
        table = await self._listed(name)
        if table is None:
            raise NotFound(f"dataset {name!r} does not exist or is not readable", reason="DATASET_NOT_FOUND")
        return table.version

    async def _listed(self, name: str) -> query_pb.Table | None:
        async with _query_errors():
            tables = await self.client.list_tables()
        return next((t for t in tables if t.name == name), None)

    async def read(self, name: str, version: int | None, columns: Sequence[str]) -> SourceRows:
        sql = f"SELECT {', '.join(_sql_name(c) for c in columns)} FROM {_sql_name(name)}"
        async with _query_errors():
            result = await self.client.query(
                sql, as_of={name: version} if version is not None else None, max_inline_rows=0
            )
        read = result.versions_read.get(name, version or 0)
        if not result.truncated:  # nothing beyond the (empty) inline part
            return SourceRows(name, read, _batches_of(result.table))
        call = current_call()
        return SourceRows(name, read, _flight_batches(result.flight_location, result.ticket, _bearer(call)))


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bearer(call: CallContext | None) -> str:
    """The caller's token, as the Flight client sends it again; "" when auth is off."""
    if call is None or not call.authorization:
        return ""
    scheme, _, token = call.authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _batches_of(table: pa.Table) -> AsyncIterator[pa.RecordBatch]:
    for batch in table.to_batches():
        yield batch


async def _flight_batches(location: str, ticket: bytes, token: str) -> AsyncIterator[pa.RecordBatch]:
    """The ticket's batches, each read off the event loop; closing the iterator cancels the stream."""
    flight = await asyncio.to_thread(LakehouseFlight, location, token=token)
    try:
        reader = await _flight_call(flight.read_ticket, ticket)
        while (batch := await _flight_call(_next_batch, reader)) is not None:
            yield batch
    finally:
        await asyncio.to_thread(flight.close)


def _next_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    try:
        return reader.read_next_batch()
    except StopIteration:  # cannot cross into a Future
        return None


async def _flight_call(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except (pa.ArrowException, KeyError) as exc:  # Flight reports NOT_FOUND as KeyError
        raise _flight_error(exc) from None


_FLIGHT_REASON = re.compile(r"([A-Z][A-Z0-9_]+): (.*)", re.DOTALL)


def _flight_error(exc: BaseException) -> LakehouseError:
    """A Flight failure as a domain error, with the reason the query service put in front of its
    message (the query service's own Flight error mapping); Flight's details are left out."""
    text = str(exc).split(". Detail:", 1)[0].strip()
    if isinstance(exc, KeyError) and len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]  # a KeyError's text is the repr of its argument
    match = _FLIGHT_REASON.match(text)
    reason, message = (match.group(1), match.group(2)) if match else ("", text or type(exc).__name__)
    error: LakehouseError
    if isinstance(exc, pa_flight.FlightUnavailableError | pa_flight.FlightCancelledError):
        detail = f"{reason}: {message}" if reason else message
        return Unavailable(
            f"the query service's Flight stream failed: {detail}", reason="QUERY_UNAVAILABLE", retry_after_s=1.0
        )
    if isinstance(exc, pa_flight.FlightUnauthorizedError):
        error = PermissionDenied(message, reason=reason or "PERMISSION_DENIED")
    elif isinstance(exc, pa_flight.FlightUnauthenticatedError):
        error = Unauthenticated(message, reason=reason or "UNAUTHENTICATED")
    elif isinstance(exc, KeyError):
        error = NotFound(message, reason=reason or "NOT_FOUND")
    elif isinstance(exc, pa_flight.FlightTimedOutError):
        error = LakehouseError(message, reason=reason or "QUERY_TIMEOUT")
        error.code = Code.DEADLINE_EXCEEDED
    elif isinstance(exc, pa.ArrowInvalid):
        error = InvalidArgument(message, reason=reason or "INVALID_ARGUMENT")
    else:  # the query service failed while streaming; it logged why
        error = LakehouseError(f"the query service's Flight stream failed: {message}", reason=reason or "INTERNAL")
    return error


@contextlib.asynccontextmanager
async def _query_errors() -> AsyncIterator[None]:
    """Query service failures as domain errors with the service's own reason; a query service
    that cannot be reached is UNAVAILABLE QUERY_UNAVAILABLE."""
    try:
        yield
    except LakehouseClientError as exc:
        if exc.code == grpc.StatusCode.UNAVAILABLE and exc.reason in ("", "PEER_UNAVAILABLE"):
            raise Unavailable(
                f"the query service cannot be reached: {exc.message}",
                reason="QUERY_UNAVAILABLE",
                retry_after_s=exc.retry_delay_s or 1.0,
            ) from None
        if exc.code == grpc.StatusCode.NOT_FOUND and exc.reason == "TABLE_NOT_FOUND":
            raise NotFound(exc.message, reason="DATASET_NOT_FOUND") from None
        error = LakehouseError(exc.message, reason=exc.reason or exc.code.name, retry_after_s=exc.retry_delay_s)
        error.code = Code[exc.code.name] if exc.code.name in Code.__members__ else Code.INTERNAL
        error.violations = tuple(FieldViolation(v.field, v.description) for v in exc.violations)
        error.metadata = {k: v for k, v in exc.metadata.items() if k != "request_id"}
        raise error from None
