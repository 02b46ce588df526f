"""The chat domain's gateways to the vector, query and catalog services, over their typed clients.

Retrieval, row reads and policies go out with the caller's credentials (PeerChannels forwards
them), so the caller's profile, views and tombstones apply to every passage and row an answer
cites. Only the session log is written as the mesh's own identity: the caller may be a reader or
an agent, who may not write datasets.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import grpc
import pyarrow as pa

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import LakehouseClientError
from lakehouse.client.query import AsyncQueryClient
from lakehouse.client.vector import AsyncVectorClient, metadata_of
from lakehouse.query.v1 import query_service_pb2 as query_pb
from lakehouse.query.v1 import query_service_pb2_grpc as query_grpc
from lakehouse.server.chat.gateways import ChatPolicy, Passage, SourceRow
from lakehouse.server.chat.sessions import SessionLogRefused
from lakehouse.server.common.errors import Code, FieldViolation, LakehouseError, Unavailable
from lakehouse.server.common.leases import LeasedPolicies, PolicyAnswer
from lakehouse.server.common.peers import PeerChannels

log = logging.getLogger("lakehouse.chat")

UPLOAD_CHUNK = 1024 * 1024
_REFUSALS = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
)
"""Answers to a session-log append that no retry changes."""


@contextlib.asynccontextmanager
async def peer_errors(service: str, unavailable_reason: str) -> AsyncIterator[None]:
    """A peer's failure as a domain error keeping its code and reason; a peer that cannot be
    reached is UNAVAILABLE with `unavailable_reason`."""
    try:
        yield
    except LakehouseClientError as exc:
        if exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED) and exc.reason in (
            "",
            "PEER_UNAVAILABLE",
            "NOT_IMPLEMENTED",
        ):
            raise Unavailable(
                f"the {service} service cannot be reached: {exc.message}",
                reason=unavailable_reason,
                retry_after_s=exc.retry_delay_s or 1.0,
            ) from None
        error = LakehouseError(exc.message, reason=exc.reason or exc.code.name, retry_after_s=exc.retry_delay_s)
        error.code = Code[exc.code.name] if exc.code.name in Code.__members__ else Code.INTERNAL
        error.violations = tuple(FieldViolation(v.field, v.description) for v in exc.violations)
        error.metadata = {k: v for k, v in exc.metadata.items() if k != "request_id"}
        raise error from None


class VectorRetriever:
    """`gateways.Retriever` through the vector service's Search, as the caller."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    @property
    def client(self) -> AsyncVectorClient:
        return self._peers.client(AsyncVectorClient, "vector")

    async def search(self, collections: Sequence[str], text: str, k: int) -> list[Passage]:
        async with peer_errors("vector", "VECTOR_SERVICE_UNAVAILABLE"):
            response = await self.client.search(list(collections), text=text, k=k)
        return [Passage(h.collection, h.id, h.text, h.distance, metadata_of(h)) for h in response.hits]


class QueryRows:
    """`gateways.RowReader`: each passage's source row, read through the query service as the
    caller, from the dataset or view its collection was indexed from (so views and tombstones
    apply), by the id column it was indexed with. A row the caller may not read, or that is gone,
    is left out (None); it never fails the answer."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def rows(self, passages: Sequence[Passage]) -> list[SourceRow | None]:
        sources: dict[str, tuple[str, str]] = {}  # collection -> (dataset or view, id column)
        wanted: dict[tuple[str, str], list[str]] = {}  # (dataset or view, id column) -> keys
        for p in passages:
            if not p.source_dataset or not p.row_key:
                continue
            if p.collection not in sources:
                async with peer_errors("vector", "VECTOR_SERVICE_UNAVAILABLE"):
                    status = await self._peers.client(AsyncVectorClient, "vector").get_index_status(p.collection)
                sources[p.collection] = (status.dataset or p.source_dataset, status.id_column)
            if sources[p.collection][1]:
                wanted.setdefault(sources[p.collection], []).append(p.row_key)
        found: dict[tuple[str, str], SourceRow] = {}
        for (name, column), keys in wanted.items():
            found.update(await self._read(name, column, keys))
        return [found.get((sources[p.collection][0], p.row_key)) if p.collection in sources else None for p in passages]

    async def _read(self, name: str, column: str, keys: list[str]) -> dict[tuple[str, str], SourceRow]:
        marks = ", ".join("?" for _ in keys)
        sql = f"SELECT * FROM {_sql_name(name)} WHERE CAST({_sql_name(column)} AS VARCHAR) IN ({marks})"
        try:
            async with peer_errors("query", "QUERY_SERVICE_UNAVAILABLE"):
                result = await self._peers.client(AsyncQueryClient, "query").query(sql, keys)
        except LakehouseError as exc:
            if exc.code not in (Code.PERMISSION_DENIED, Code.NOT_FOUND, Code.INVALID_ARGUMENT):
                raise
            log.info("source rows of %s left out of an answer: %s %s", name, exc.reason, exc.message)
            return {}
        out = {}
        for i in range(result.table.num_rows):
            row = result.table.slice(i, 1)
            values = row.to_pylist()[0]
            if column in values:
                out[(name, str(values[column]))] = SourceRow(values, _ipc(row))
        return out


class CatalogPolicies:
    """`gateways.Policies`: the caller's access policy under the catalog's lease, and a named
    profile read with the caller's credentials (GetProfile refuses non-admins)."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers
        self._leased: LeasedPolicies[ChatPolicy] = LeasedPolicies(self._fetch)

    @property
    def client(self) -> AsyncCatalogClient:
        return self._peers.client(AsyncCatalogClient, "catalog")

    async def _fetch(self, known_revision: int) -> PolicyAnswer[ChatPolicy]:
        async with peer_errors("catalog", "CATALOG_UNAVAILABLE"):
            response = await self.client.get_access_policy(known_revision)
        policy = None if response.unchanged else _chat_policy(response.policy)
        return PolicyAnswer(response.revision, policy, response.lease.ToNanoseconds() / 1e9)

    async def caller(self) -> ChatPolicy:
        return await self._leased.get()

    async def profile(self, name: str) -> ChatPolicy:
        async with peer_errors("catalog", "CATALOG_UNAVAILABLE"):
            p = await self.client.get_profile(name)
        return ChatPolicy(p.id, True, frozenset(p.collections), p.default_chat_model, frozenset(p.datasets))


def _chat_policy(p: catalog_pb.AccessPolicy) -> ChatPolicy:
    return ChatPolicy(p.profile, p.restricted, frozenset(p.collections), p.default_chat_model)


class SessionWriter:
    """Appends session-log batches (Parquet) to a dataset with IngestFile, as the mesh's identity."""

    def __init__(self, peers: PeerChannels, mesh_authorization: str, dataset: str) -> None:
        self._peers = peers
        self._metadata = (("authorization", mesh_authorization),) if mesh_authorization else ()
        self._dataset = dataset

    async def append(self, parquet: bytes) -> None:
        stub = query_grpc.QueryServiceStub(self._peers.channel("query"))
        header = query_pb.IngestFileHeader(
            dataset=self._dataset,
            mode=query_pb.INGEST_MODE_APPEND,
            file_name="chat_sessions.parquet",
            size_bytes=len(parquet),
            description="One record per Chat, ChatStream and Answer call of the chat service.",
        )

        async def requests() -> AsyncIterator[query_pb.IngestFileRequest]:
            yield query_pb.IngestFileRequest(header=header)
            for start in range(0, len(parquet), UPLOAD_CHUNK):
                yield query_pb.IngestFileRequest(chunk=parquet[start : start + UPLOAD_CHUNK])
            yield query_pb.IngestFileRequest(commit=query_pb.IngestFileCommit())

        try:
            await stub.IngestFile(requests(), timeout=self._peers.timeout_s * 3, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _REFUSALS:
                raise SessionLogRefused(f"{exc.code().name}: {exc.details()}") from None
            raise


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
