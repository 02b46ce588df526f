"""CatalogService glue: protobuf <-> domain. Governance RPCs answer UNIMPLEMENTED until they land."""

from __future__ import annotations

import time
from typing import Any

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.common.v1 import arrow_pb2
from lakehouse.server.catalog import service as domain
from lakehouse.server.catalog.store import (
    CatalogStore,
    DatasetRecord,
    EventRecord,
    LineageRecord,
    VersionRecord,
    create_catalog_engine,
)
from lakehouse.server.common.app import ServiceBinding
from lakehouse.server.common.config import Config
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.convert import from_timestamp, to_timestamp
from lakehouse.server.common.errors import NotFound
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_request
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.common.unimplemented import unimplemented_base

SERVICE = pb.DESCRIPTOR.services_by_name["CatalogService"]
_SOURCES = {"detected": pb.SENSITIVITY_SOURCE_DETECTED, "owner": pb.SENSITIVITY_SOURCE_OWNER}

_Base: type = unimplemented_base(
    pb_grpc.CatalogServiceServicer,
    SERVICE,
    "governance (views, profiles, tombstones, erasure, derivations) is not part of this release",
)


def dataset_pb(record: DatasetRecord) -> pb.Dataset:
    return pb.Dataset(
        id=record.id,
        name=record.name,
        bucket=record.bucket,
        location=record.location,
        schema=arrow_pb2.ArrowSchema(arrow_ipc=record.schema_ipc),
        columns=[
            pb.Column(
                name=c.name,
                arrow_type=c.arrow_type,
                nullable=c.nullable,
                pii=[pb.PiiKind.Value(f"PII_KIND_{k}") for k in c.pii],
                sensitivity_source=_SOURCES[c.source],
            )
            for c in record.columns
        ],
        schema_fingerprint=record.fingerprint,
        description=record.description,
        owner=record.owner,
        tags=list(record.tags),
        current_version=record.current_version,
        row_count=record.row_count,
        size_bytes=record.size_bytes,
        create_time=to_timestamp(record.create_time),
        update_time=to_timestamp(record.update_time),
        table_version=record.table_version,
    )


def version_pb(record: VersionRecord) -> pb.DatasetVersion:
    lineage = record.lineage
    return pb.DatasetVersion(
        version=record.version,
        operation=pb.VersionOperation.Value(f"VERSION_OPERATION_{record.operation}"),
        row_count=record.row_count,
        size_bytes=record.size_bytes,
        files=list(record.files),
        actor=record.actor,
        create_time=to_timestamp(record.create_time),
        lineage=pb.Lineage(
            source_system=lineage.source_system,
            source_reference=lineage.source_reference,
            job_id=lineage.job_id,
            attributes=lineage.attributes,
        ),
        schema_fingerprint=record.fingerprint,
        content_sha256=record.content_sha256,
        table_version=record.table_version,
    )


def event_pb(record: EventRecord) -> pb.Event:
    return pb.Event(
        sequence=record.sequence,
        time=to_timestamp(record.time),
        actor=record.actor,
        entity_type=record.entity_type,
        entity=record.entity,
        action=record.action,
        before_json=record.before_json,
        after_json=record.after_json,
        request_id=record.request_id,
    )


def _operation_name(value: int) -> str:
    name = pb.VersionOperation.Name(value) if value in pb.VersionOperation.values() else ""
    return name.removeprefix("VERSION_OPERATION_")


class CatalogServicer(_Base):  # type: ignore[misc,valid-type]
    def __init__(self, service: domain.CatalogService, auth_enabled: bool) -> None:
        self._svc = service
        self._auth_enabled = auth_enabled

    async def CreateDataset(self, request: pb.CreateDatasetRequest, context: Any) -> pb.CreateDatasetResponse:
        d = request.dataset
        new = domain.NewDataset(
            name=d.name,
            schema_ipc=d.schema.arrow_ipc,
            bucket=d.bucket,
            location=d.location,
            description=d.description,
            owner=d.owner,
            tags=tuple(d.tags),
            sample_ipc=request.sample.arrow_ipc,
            allow_additive_evolution=request.allow_additive_evolution,
        )
        record, created = await self._svc.create_dataset(new)
        return pb.CreateDatasetResponse(dataset=dataset_pb(record), created=created)

    async def GetDataset(self, request: pb.GetDatasetRequest, context: Any) -> pb.GetDatasetResponse:
        return pb.GetDatasetResponse(dataset=dataset_pb(await self._svc.get_dataset(request.dataset)))

    async def ListDatasets(self, request: pb.ListDatasetsRequest, context: Any) -> pb.ListDatasetsResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._svc.list_datasets(page, request.tag, request.owner, request.name_prefix)
        return pb.ListDatasetsResponse(datasets=[dataset_pb(r) for r in rows], next_page_token=token)

    async def UpdateDataset(self, request: pb.UpdateDatasetRequest, context: Any) -> pb.UpdateDatasetResponse:
        d = request.dataset
        values = {"description": d.description, "owner": d.owner, "tags": tuple(d.tags)}
        record = await self._svc.update_dataset(d.name or d.id, list(request.update_mask.paths), values)
        return pb.UpdateDatasetResponse(dataset=dataset_pb(record))

    async def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Any) -> pb.DeleteDatasetResponse:
        return pb.DeleteDatasetResponse(dataset=dataset_pb(await self._svc.delete_dataset(request.dataset)))

    async def RegisterDatasetVersion(
        self, request: pb.RegisterDatasetVersionRequest, context: Any
    ) -> pb.RegisterDatasetVersionResponse:
        lineage = request.lineage
        new = domain.NewVersion(
            dataset=request.dataset,
            table_version=request.table_version,
            operation=_operation_name(request.operation),
            schema_ipc=request.schema.arrow_ipc,
            row_count=request.row_count,
            size_bytes=request.size_bytes,
            files=tuple(request.files),
            lineage=LineageRecord(
                lineage.source_system, lineage.source_reference, lineage.job_id, dict(lineage.attributes)
            ),
            content_sha256=request.content_sha256,
            sample_ipc=request.sample.arrow_ipc,
            allow_additive_evolution=request.allow_additive_evolution,
        )
        record, version, duplicate = await self._svc.register_version(new)
        return pb.RegisterDatasetVersionResponse(
            dataset=dataset_pb(record), version=version_pb(version), duplicate=duplicate
        )

    async def GetDatasetHistory(
        self, request: pb.GetDatasetHistoryRequest, context: Any
    ) -> pb.GetDatasetHistoryResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._svc.history(request.dataset, page, request.content_sha256)
        return pb.GetDatasetHistoryResponse(versions=[version_pb(v) for v in rows], next_page_token=token)

    async def GetDatasetVersion(
        self, request: pb.GetDatasetVersionRequest, context: Any
    ) -> pb.GetDatasetVersionResponse:
        return pb.GetDatasetVersionResponse(
            version=version_pb(await self._svc.get_version(request.dataset, request.version))
        )

    async def SetColumnSensitivity(
        self, request: pb.SetColumnSensitivityRequest, context: Any
    ) -> pb.SetColumnSensitivityResponse:
        kinds = [
            pb.PiiKind.Name(k).removeprefix("PII_KIND_") if k in pb.PiiKind.values() else str(k) for k in request.pii
        ]
        record = await self._svc.set_column_sensitivity(request.dataset, request.column, kinds, request.reason)
        return pb.SetColumnSensitivityResponse(dataset=dataset_pb(record))

    async def ListEvents(self, request: pb.ListEventsRequest, context: Any) -> pb.ListEventsResponse:
        page = page_request(request.page_size, request.page_token)
        start = from_timestamp(request.start_time, request.HasField("start_time"), "start_time")
        end = from_timestamp(request.end_time, request.HasField("end_time"), "end_time")
        rows, token = await self._svc.list_events(page, request.entity_type, request.entity, start, end)
        return pb.ListEventsResponse(events=[event_pb(e) for e in rows], next_page_token=token)

    async def WhoAmI(self, request: pb.WhoAmIRequest, context: Any) -> pb.WhoAmIResponse:
        principal = current_principal()
        return pb.WhoAmIResponse(
            principal=principal.name, role=principal.role, profile=principal.profile, auth_enabled=self._auth_enabled
        )


BUCKET_PAGE_SIZE = 1000
# How long a bucket seen to exist is trusted without asking again. Misses are never remembered,
# so a bucket created a moment ago is found at once.
BUCKET_CACHE_S = 5.0


class StorageBuckets:
    """`BucketDirectory` backed by the storage service, called through its generated stub.

    It asks ListBuckets, which answers from the storage service's list of buckets; listing the
    bucket's objects would make the storage backend walk the whole bucket.
    """

    def __init__(self, peers: PeerChannels) -> None:
        self._peers = peers
        self._seen_until: dict[str, float] = {}

    async def require(self, bucket: str, field: str) -> None:
        if self._seen_until.get(bucket, float("-inf")) > time.monotonic():
            return
        if not await self._exists(bucket):
            raise NotFound(f"{field}: bucket {bucket!r} does not exist", reason="BUCKET_NOT_FOUND")
        self._seen_until[bucket] = time.monotonic() + BUCKET_CACHE_S

    async def _exists(self, bucket: str) -> bool:
        token = ""
        while True:
            page = await self._peers.client(AsyncStorageClient, "storage").list_buckets(
                page_size=BUCKET_PAGE_SIZE, page_token=token
            )
            names = [b.name for b in page.buckets]
            # Pages come in name order: once past `bucket`, later pages cannot hold it.
            if bucket in names or not page.next_page_token or (names and names[-1] > bucket):
                return bucket in names
            token = page.next_page_token


def build(config: Config, executor: BlockingExecutor, peers: PeerChannels, auth_enabled: bool) -> ServiceBinding:
    """The catalog service ready to host: opens (and if needed creates) its database."""
    store = CatalogStore(create_catalog_engine(config.catalog_url))
    store.create_schema()
    service = domain.CatalogService(store, executor.run, StorageBuckets(peers), config.storage.default_bucket)
    servicer = CatalogServicer(service, auth_enabled)

    async def close() -> None:
        store.close()

    return ServiceBinding(
        name="catalog",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_CatalogServiceServicer_to_server(servicer, server),
        close=close,
    )
