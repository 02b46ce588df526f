"""The query domain's gateways to the catalog and storage services, over their generated stubs."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.client.arrow import schema_ipc, table_ipc
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import NotFoundError
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.common.v1 import arrow_pb2
from lakehouse.server.common.convert import from_timestamp
from lakehouse.server.common.errors import NotFound
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.leases import PolicyAnswer
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.query.gateways import DatasetInfo, NewVersion, VersionInfo
from lakehouse.server.query.policy import AccessPolicy, Redaction, Tombstones, ViewRule

_REDACTIONS = {
    catalog_pb.REDACTION_KIND_NULL: "null",
    catalog_pb.REDACTION_KIND_HASH: "hash",
    catalog_pb.REDACTION_KIND_MASK: "mask",
}


def dataset_info(d: catalog_pb.Dataset) -> DatasetInfo:
    return DatasetInfo(
        name=d.name,
        bucket=d.bucket,
        location=d.location,
        schema=pa.ipc.open_stream(d.schema.arrow_ipc).schema,
        version=d.current_version,
        table_version=d.table_version if d.HasField("table_version") else None,
        row_count=d.row_count,
        description=d.description,
        update_time=from_timestamp(d.update_time, d.HasField("update_time"), "update_time"),
        pii_columns=tuple(c.name for c in d.columns if c.pii),
    )


def version_info(v: catalog_pb.DatasetVersion) -> VersionInfo:
    return VersionInfo(
        version=v.version,
        table_version=v.table_version if v.HasField("table_version") else None,
        operation=catalog_pb.VersionOperation.Name(v.operation).removeprefix("VERSION_OPERATION_"),
        row_count=v.row_count,
        fingerprint=v.schema_fingerprint,
        actor=v.actor,
        create_time=from_timestamp(v.create_time, v.HasField("create_time"), "create_time"),
        source=" ".join(p for p in (v.lineage.source_system, v.lineage.source_reference) if p),
        content_sha256=v.content_sha256,
    )


def view_rule(v: catalog_pb.View) -> ViewRule:
    return ViewRule(
        name=v.name,
        base=v.base_dataset,
        columns=tuple(v.columns),
        row_filter=v.row_filter,
        redactions={
            r.column: Redaction(_REDACTIONS.get(r.kind, "null"), r.keep_prefix, r.keep_suffix) for r in v.redactions
        },
        description=v.description,
    )


def access_policy(p: catalog_pb.AccessPolicy) -> AccessPolicy:
    datasets = {d.name: dataset_info(d) for d in p.datasets}
    bases = {**datasets, **{d.name: dataset_info(d) for d in p.view_bases}}
    return AccessPolicy(
        principal=p.principal,
        role=p.role,
        profile=p.profile,
        restricted=p.restricted,
        datasets=datasets,
        views={v.name: view_rule(v) for v in p.views},
        bases=bases,
        tombstones={t.dataset: Tombstones(t.key_column, tuple(t.key_values)) for t in p.tombstones},
        collections=tuple(p.collections),
        memory_namespaces=tuple(p.memory_namespaces),
    )


class CatalogGateway:
    """`gateways.Catalog` through the catalog service's client, as the calling principal."""

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers

    @property
    def client(self) -> AsyncCatalogClient:
        return self._peers.client(AsyncCatalogClient, "catalog")

    async def list_datasets(self) -> list[DatasetInfo]:
        datasets, token = [], ""
        while True:
            page = await self.client.list_datasets(page_size=1000, page_token=token)
            datasets += [dataset_info(d) for d in page.datasets]
            token = page.next_page_token
            if not token:
                return datasets

    async def access_policy(self, known_revision: int) -> PolicyAnswer[AccessPolicy]:
        response = await self.client.get_access_policy(known_revision)
        policy = None if response.unchanged else access_policy(response.policy)
        return PolicyAnswer(response.revision, policy, response.lease.ToNanoseconds() / 1e9)

    async def clear_tombstones(self, name: str, keys: tuple[str, ...]) -> int:
        response = await self.client.restore_rows(
            name, list(keys), reason="applied by compaction: the rows were deleted", applied=True
        )
        return int(response.restored)

    async def get_dataset(self, name: str) -> DatasetInfo | None:
        try:
            return dataset_info(await self.client.get_dataset(name))
        except NotFoundError as exc:
            if exc.reason == "DATASET_NOT_FOUND":
                return None
            raise

    async def get_version(self, name: str, version: int) -> VersionInfo:
        try:
            return version_info(await self.client.get_version(name, version))
        except NotFoundError as exc:
            raise NotFound(exc.message, reason=exc.reason) from None

    async def version_with_content(self, name: str, content_sha256: str) -> VersionInfo | None:
        found = (await self.client.history(name, page_size=1, content_sha256=content_sha256)).versions
        return version_info(found[0]) if found else None

    async def history(self, name: str, page_size: int, page_token: str) -> tuple[list[VersionInfo], str]:
        response = await self.client.history(name, page_size=page_size, page_token=page_token)
        return [version_info(v) for v in response.versions], response.next_page_token

    async def create_dataset(
        self, name: str, bucket: str, location: str, schema: pa.Schema, description: str, sample: pa.Table | None
    ) -> DatasetInfo:
        response = await self.client.create_dataset(
            name, schema, bucket=bucket, location=location, description=description, sample=sample
        )
        return dataset_info(response.dataset)

    async def register_version(self, version: NewVersion) -> tuple[DatasetInfo, VersionInfo, bool]:
        request = catalog_pb.RegisterDatasetVersionRequest(
            dataset=version.dataset,
            table_version=version.table_version,
            operation=catalog_pb.VersionOperation.Value(f"VERSION_OPERATION_{version.operation}"),
            schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(version.schema)),
            row_count=version.row_count,
            size_bytes=version.size_bytes,
            files=list(version.files),
            lineage=catalog_pb.Lineage(
                source_system=version.source_system,
                source_reference=version.source_reference,
                job_id=version.job_id,
                attributes=dict(version.attributes),
            ),
            content_sha256=version.content_sha256,
            sample=table_ipc(version.sample) if version.sample is not None else None,
            allow_additive_evolution=True,
        )
        response = await self.client.register_version(request)
        return dataset_info(response.dataset), version_info(response.version), response.duplicate


class StorageGateway:
    """`gateways.Storage` through the storage service's client."""

    def __init__(self, peers: PeerChannels, executor: BlockingExecutor) -> None:
        self._peers = peers
        self._executor = executor
        self._uris: dict[str, str] = {}

    @property
    def client(self) -> AsyncStorageClient:
        return self._peers.client(AsyncStorageClient, "storage")

    async def bucket_uri(self, bucket: str) -> str:
        if bucket not in self._uris:  # a bucket's location never changes while it exists
            token = ""
            while True:
                page = await self.client.list_buckets(page_size=1000, page_token=token)
                self._uris.update({b.name: b.uri for b in page.buckets})
                token = page.next_page_token
                if not token:
                    break
        if bucket not in self._uris:
            raise NotFound(f"bucket {bucket!r} does not exist", reason="BUCKET_NOT_FOUND")
        return self._uris[bucket]

    async def download(
        self, bucket: str, key: str, target: Path, progress: Callable[[int, int], None]
    ) -> tuple[int, str]:
        digest, size, total = hashlib.sha256(), 0, 0
        sink = await asyncio.to_thread(target.open, "wb")
        try:
            async for message in self.client.get_object(key, bucket=bucket, timeout_s=24 * 3600):
                if message.HasField("object"):
                    total = message.object.size_bytes
                await self._executor.run(sink.write, message.chunk)
                digest.update(message.chunk)
                size += len(message.chunk)
                progress(size, total)
        finally:
            await asyncio.to_thread(sink.close)
        return size, digest.hexdigest()
