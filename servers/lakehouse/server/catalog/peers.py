"""The governance domain's gateways to the query, vector and memory services, over their clients.

Calls forward the caller's credentials (PeerChannels), so an erasure runs as the admin who asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from lakehouse.client.errors import NotFoundError, UnavailableError, UnimplementedError
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.client.query import AsyncQueryClient
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.server.catalog.erasure import RowDeletion
from lakehouse.server.catalog.errors import BindingNotFound, BindingUnverifiable
from lakehouse.server.common.errors import FieldViolation
from lakehouse.server.common.peers import PeerChannels

# Keys per DeleteVectors filter, so one expression stays a modest size.
VECTOR_KEYS_PER_CALL = 1000


def milvus_filter(dataset: str, keys: Sequence[str]) -> str:
    """`source_dataset == "<dataset>" and source_key in [...]` with every value a quoted string.

    JSON string syntax (double quotes, backslash escapes) is what Milvus expressions accept; non-ASCII
    stays as it is, since Milvus does not read \\u escapes.
    """

    def quoted(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return f"source_dataset == {quoted(dataset)} and source_key in [{', '.join(quoted(k) for k in keys)}]"


class VectorCollections:
    """`CollectionDirectory` backed by the vector service's GetCollection."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def require(self, collection: str, field: str) -> None:
        try:
            await self._peers.client(AsyncVectorClient, "vector").get_collection(collection)
        except NotFoundError:
            description = f"vector collection {collection!r} cannot be bound: it does not exist"
            raise BindingNotFound(f"{field}: {description}", violations=[FieldViolation(field, description)]) from None
        except (UnimplementedError, UnavailableError) as exc:
            raise BindingUnverifiable(
                f"{field}: the vector service could not confirm that collection {collection!r} exists "
                f"({exc.code.name}); bind it once the vector service is reachable",
                violations=[FieldViolation(field, "the vector service could not confirm it exists")],
            ) from None


class QueryRows:
    """`TableRows` backed by the query service's DeleteRows."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def delete(
        self, dataset: str, key_column: str, keys: Sequence[str], erasure_id: str, *, dry_run: bool
    ) -> RowDeletion:
        done = await self._peers.client(AsyncQueryClient, "query").delete_rows(
            dataset, key_column, keys, erasure_id=erasure_id, dry_run=dry_run
        )
        return RowDeletion(done.version_before, done.version_after, done.rows_removed, done.files_removed)


class DerivedPeers:
    """`DerivedStores` backed by the vector and memory services."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    async def delete_vectors(self, collection: str, dataset: str, keys: Sequence[str]) -> int:
        client = self._peers.client(AsyncVectorClient, "vector")
        deleted = 0
        for start in range(0, len(keys), VECTOR_KEYS_PER_CALL):
            chunk = keys[start : start + VECTOR_KEYS_PER_CALL]
            deleted += await client.delete_vectors(collection, filter=milvus_filter(dataset, chunk))
        return deleted

    async def forget_traces(
        self, namespace: str, dataset: str, keys: Sequence[str], reason: str, erasure_id: str
    ) -> int | None:
        try:
            receipt = await self._peers.client(AsyncMemoryClient, "memory").forget_source_rows(
                dataset, keys, reason=reason, namespaces=[namespace] if namespace else [], erasure_id=erasure_id
            )
        except UnimplementedError:
            if namespace:  # a registered namespace whose service is gone: the erasure must say so
                raise
            return None
        return receipt.traces_deleted
