"""The memory domain's gateways to the vector and catalog services, over their typed clients.

The catalog is asked for the caller's access policy with the caller's credentials. The vector
service is called with the mesh's own identity: memory collections belong to the memory service,
which has already checked the caller's namespace bindings, and an agent may write memory without
being allowed to write vectors. Every call has the mesh deadline and the clients' bounded retries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import (
    DeadlineExceededError,
    LakehouseClientError,
    NotFoundError,
    UnavailableError,
    UnimplementedError,
)
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.server.common.context import current_call
from lakehouse.server.common.errors import Code, FieldViolation, LakehouseError, Unavailable
from lakehouse.server.common.leases import PolicyAnswer
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.common.tracing import inject_current
from lakehouse.server.memory.gateways import Embedding, MemoryPolicy, VectorHit
from lakehouse.vector.v1 import vector_service_pb2 as vector_pb

UPSERT_BATCH = 256
"""Records per UpsertVectors call (each is embedded by the vector service)."""


def memory_policy(p: catalog_pb.AccessPolicy) -> MemoryPolicy:
    return MemoryPolicy(
        principal=p.principal,
        profile=p.profile,
        restricted=p.restricted,
        memory_namespaces=frozenset(p.memory_namespaces),
        collections=frozenset(p.collections),
    )


class CatalogGateway:
    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def access_policy(self, known_revision: int) -> PolicyAnswer[MemoryPolicy]:
        try:
            response = await self._peers.client(AsyncCatalogClient, "catalog").get_access_policy(known_revision)
        except LakehouseClientError as exc:
            raise _peer_error("catalog", exc) from None
        policy = None if response.unchanged else memory_policy(response.policy)
        return PolicyAnswer(response.revision, policy, response.lease.ToNanoseconds() / 1e9)


class VectorGateway:
    """`gateways.Vectors` and `gateways.AnswerCollections` through the vector service's client."""

    def __init__(self, peers: PeerChannels, mesh_authorization: str) -> None:
        self._peers = peers
        self._authorization = mesh_authorization
        self._client: AsyncVectorClient | None = None
        self._dimension: tuple[int, str] | None = None

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        """The request id and trace context of the call being served, with the mesh's credentials."""
        call = current_call()
        pairs = [("x-request-id", call.request_id)] if call is not None else []
        if self._authorization:
            pairs.append(("authorization", self._authorization))
        pairs.extend(inject_current())
        return tuple(pairs)

    @property
    def client(self) -> AsyncVectorClient:
        if self._client is None:
            self._client = AsyncVectorClient(
                self._peers.channel("vector"), timeout_s=self._peers.timeout_s, metadata=self._metadata
            )
        return self._client

    async def collection_exists(self, name: str) -> bool:
        try:
            await self.client.get_collection(name)
        except NotFoundError:
            return False
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        return True

    exists = collection_exists

    async def create_collection(self, name: str, description: str) -> None:
        try:
            await self.client.create_collection(name, description=description)
        except LakehouseClientError as exc:
            if exc.reason == "COLLECTION_EXISTS":
                return
            raise _peer_error("vector", exc) from None

    async def drop_collection(self, name: str) -> None:
        try:
            await self.client.delete_collection(name)
        except NotFoundError:
            return
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None

    async def upsert_texts(self, collection: str, records: Sequence[tuple[str, str]]) -> int:
        written = 0
        try:
            for start in range(0, len(records), UPSERT_BATCH):
                chunk = records[start : start + UPSERT_BATCH]
                done = await self.client.upsert_vectors(
                    collection, [vector_pb.VectorRecord(id=i, text=t) for i, t in chunk]
                )
                written += done.upserted_count
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        return written

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        deleted = 0
        try:
            for start in range(0, len(ids), 1000):
                deleted += await self.client.delete_vectors(collection, ids=list(ids[start : start + 1000]))
        except NotFoundError:
            return deleted
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        return deleted

    async def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        try:
            for start in range(0, len(ids), 1000):
                records = await self.client.get_vectors(collection, list(ids[start : start + 1000]))
                found |= {r.id for r in records}
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        return found

    async def search(
        self, collections: Sequence[str], text: str, k: int, max_distance: float | None, id_filter: Sequence[str] | None
    ) -> list[VectorHit]:
        expression = f"id in {json.dumps(list(id_filter), ensure_ascii=False)}" if id_filter is not None else ""
        try:
            response = await self.client.search(
                list(collections), text=text, k=k, per_collection_k=k, max_distance=max_distance, filter=expression
            )
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        return [VectorHit(h.collection, h.id, h.distance) for h in response.hits]

    async def embed(self, texts: Sequence[str]) -> Embedding:
        try:
            response = await self.client.embed(list(texts))
        except LakehouseClientError as exc:
            raise _peer_error("vector", exc) from None
        vectors = np.asarray([e.values for e in response.embeddings], dtype=np.float32)
        self._dimension = (response.dimension, response.model)
        return Embedding(vectors.reshape(len(texts), response.dimension), response.model)

    async def dimension(self) -> tuple[int, str]:
        if self._dimension is None:
            try:
                info = await self.client.get_embedder_info()
            except LakehouseClientError as exc:
                raise _peer_error("vector", exc) from None
            self._dimension = (info.dimension, info.model)
        return self._dimension


def _peer_error(peer: str, exc: LakehouseClientError) -> LakehouseError:
    """A peer's failure as this service's error: an unreachable peer is UNAVAILABLE
    <PEER>_SERVICE_UNAVAILABLE; anything else keeps the peer's code, reason and field violations."""
    if isinstance(exc, (UnavailableError, DeadlineExceededError, UnimplementedError)):
        return Unavailable(
            f"the {peer} service cannot answer ({exc.code.name}: {exc.message}); retry",
            reason=f"{peer.upper()}_SERVICE_UNAVAILABLE",
            retry_after_s=exc.retry_delay_s or 1.0,
        )
    error = LakehouseError(exc.message, reason=exc.reason or exc.code.name, retry_after_s=exc.retry_delay_s)
    error.code = Code[exc.code.name] if exc.code.name in Code.__members__ else Code.INTERNAL
    error.violations = tuple(FieldViolation(v.field, v.description) for v in exc.violations)
    return error
