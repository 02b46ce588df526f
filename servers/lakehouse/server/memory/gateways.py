"""What the memory domain needs from its peers, as protocols: the vector service (collections,
vectors, embeddings) and the catalog (the caller's access policy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lakehouse.server.common.leases import PolicyAnswer


@dataclass(frozen=True)
class MemoryPolicy:
    """The part of the caller's access policy the memory service enforces."""

    principal: str
    profile: str
    restricted: bool
    """True for agent principals: only `memory_namespaces` (and `collections` as playbook answers)."""
    memory_namespaces: frozenset[str] = frozenset()
    collections: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VectorHit:
    collection: str
    id: str
    distance: float


@dataclass(frozen=True)
class Embedding:
    vectors: np.ndarray
    """One float32 row per text."""
    model: str


class Vectors(Protocol):
    """The vector service, called as the mesh itself (memory collections are the memory service's)."""

    async def collection_exists(self, name: str) -> bool: ...

    async def create_collection(self, name: str, description: str) -> None:
        """Creates a collection of the embedder's dimension; an existing one is left as it is."""
        ...

    async def drop_collection(self, name: str) -> None: ...

    async def upsert_texts(self, collection: str, records: Sequence[tuple[str, str]]) -> int:
        """Embeds and writes (id, text) records; returns how many were written."""
        ...

    async def delete(self, collection: str, ids: Sequence[str]) -> int: ...

    async def existing_ids(self, collection: str, ids: Sequence[str]) -> set[str]: ...

    async def search(
        self, collections: Sequence[str], text: str, k: int, max_distance: float | None, id_filter: Sequence[str] | None
    ) -> list[VectorHit]: ...

    async def embed(self, texts: Sequence[str]) -> Embedding: ...

    async def dimension(self) -> tuple[int, str]:
        """The embedder's dimension and model."""
        ...


class Policies(Protocol):
    async def access_policy(self, known_revision: int) -> PolicyAnswer[MemoryPolicy]:
        """The caller's policy, unless `known_revision` is current."""
        ...


class AnswerCollections(Protocol):
    async def exists(self, name: str) -> bool:
        """Whether a vector collection exists (a playbook answer's collection)."""
        ...
