"""Typed async client for the memory service: the calls the rest of the mesh makes today."""

from __future__ import annotations

from collections.abc import Sequence

from lakehouse.client._base import BaseAsyncClient
from lakehouse.memory.v1 import memory_service_pb2 as pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as pb_grpc


class AsyncMemoryClient(BaseAsyncClient):
    """Agent memory traces."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.MemoryServiceStub(channel)

    async def forget_source_rows(
        self,
        dataset: str,
        keys: Sequence[str],
        *,
        reason: str,
        namespaces: Sequence[str] = (),
        erasure_id: str = "",
        dry_run: bool = False,
    ) -> pb.ForgetReceipt:
        """Forgets the traces that reference rows of `dataset` by key (admins only)."""
        request = pb.ForgetTracesRequest(
            source_rows=pb.SourceRows(dataset=dataset, keys=list(keys), namespaces=list(namespaces)),
            reason=reason,
            erasure_id=erasure_id,
            dry_run=dry_run,
        )
        # Idempotent: traces already forgotten are counted as not found, never an error.
        return (await self._unary(self._stub.ForgetTraces, request)).receipt
