"""What the query domain needs from peer services, as plain Python (implemented over gRPC stubs
in the servicer module), so the domain stays free of grpc."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from lakehouse.server.common.leases import PolicyAnswer

if TYPE_CHECKING:
    from lakehouse.server.query.policy import AccessPolicy


@dataclass(frozen=True)
class DatasetInfo:
    """What the query service needs to know about a dataset from the catalog."""

    name: str
    bucket: str
    location: str
    schema: pa.Schema
    version: int
    """Current catalog version."""
    table_version: int | None
    """Delta version of the current version; None before the first data commit."""
    row_count: int
    description: str = ""
    update_time: datetime | None = None
    pii_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionInfo:
    """One catalog version of a dataset."""

    version: int
    table_version: int | None
    operation: str
    row_count: int
    fingerprint: str
    actor: str
    create_time: datetime | None
    source: str
    content_sha256: str


@dataclass(frozen=True)
class NewVersion:
    """A Delta commit to register with the catalog."""

    dataset: str
    table_version: int
    operation: str
    schema: pa.Schema
    row_count: int
    size_bytes: int
    files: tuple[str, ...]
    source_system: str
    source_reference: str
    job_id: str
    content_sha256: str
    sample: pa.Table | None
    attributes: Mapping[str, str] = field(default_factory=dict)


class Catalog(Protocol):
    async def list_datasets(self) -> list[DatasetInfo]: ...

    async def access_policy(self, known_revision: int) -> PolicyAnswer[AccessPolicy]:
        """The caller's policy, unless `known_revision` is current."""
        ...

    async def clear_tombstones(self, name: str, keys: tuple[str, ...]) -> int:
        """Lifts tombstones whose rows were deleted physically; returns how many."""
        ...

    async def get_dataset(self, name: str) -> DatasetInfo | None: ...

    async def get_version(self, name: str, version: int) -> VersionInfo: ...

    async def version_with_content(self, name: str, content_sha256: str) -> VersionInfo | None: ...

    async def history(self, name: str, page_size: int, page_token: str) -> tuple[list[VersionInfo], str]: ...

    async def create_dataset(
        self, name: str, bucket: str, location: str, schema: pa.Schema, description: str, sample: pa.Table | None
    ) -> DatasetInfo: ...

    async def register_version(self, version: NewVersion) -> tuple[DatasetInfo, VersionInfo, bool]: ...


class Storage(Protocol):
    async def bucket_uri(self, bucket: str) -> str: ...

    async def download(
        self, bucket: str, key: str, target: Path, progress: Callable[[int, int], None]
    ) -> tuple[int, str]:
        """Copies an object to `target`, reporting (bytes so far, object size); returns (size, sha256)."""
        ...
