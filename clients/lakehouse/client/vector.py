"""Typed async client for the vector service: the calls the rest of the mesh makes today."""

from __future__ import annotations

from collections.abc import Sequence

from lakehouse.client._base import BaseAsyncClient
from lakehouse.vector.v1 import vector_service_pb2 as pb
from lakehouse.vector.v1 import vector_service_pb2_grpc as pb_grpc


class AsyncVectorClient(BaseAsyncClient):
    """Collections and vectors."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.VectorServiceStub(channel)

    async def get_collection(self, name: str) -> pb.Collection:
        return (await self._unary(self._stub.GetCollection, pb.GetCollectionRequest(name=name))).collection

    async def delete_vectors(self, collection: str, *, ids: Sequence[str] = (), filter: str = "") -> int:
        """Deletes vectors by id or by a filter expression (give one); returns how many went."""
        request = pb.DeleteVectorsRequest(collection=collection, ids=list(ids), filter=filter)
        # Idempotent: deleting what is already gone deletes nothing more.
        return (await self._unary(self._stub.DeleteVectors, request)).deleted_count
