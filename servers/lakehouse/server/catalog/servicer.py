"""CatalogService glue: protobuf <-> domain, a few lines per RPC."""

from __future__ import annotations

import time
from typing import Any

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.server.catalog import service as domain
from lakehouse.server.catalog.convert import (
    dataset_pb,
    derivation_pb,
    derivation_record,
    enum_name,
    event_pb,
    policy_pb,
    profile_pb,
    profile_record,
    receipt_pb,
    tombstone_pb,
    version_pb,
    view_pb,
    view_record,
)
from lakehouse.server.catalog.erasure import ErasureService
from lakehouse.server.catalog.governance import GovernanceService
from lakehouse.server.catalog.peers import DerivedPeers, QueryRows, VectorCollections
from lakehouse.server.catalog.store import CatalogStore, LineageRecord, create_catalog_engine
from lakehouse.server.common.app import ServiceBinding
from lakehouse.server.common.audit import Denial
from lakehouse.server.common.config import Config
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.convert import from_timestamp, seconds
from lakehouse.server.common.errors import NotFound
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_request
from lakehouse.server.common.peers import PeerChannels

SERVICE = pb.DESCRIPTOR.services_by_name["CatalogService"]


class CatalogServicer(pb_grpc.CatalogServiceServicer):
    def __init__(
        self,
        service: domain.CatalogService,
        governance: GovernanceService,
        erasure: ErasureService,
        auth_enabled: bool,
    ) -> None:
        self._svc = service
        self._gov = governance
        self._erasure = erasure
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
            operation=enum_name(pb.VersionOperation, "VERSION_OPERATION_", request.operation),
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

    # -- views ---------------------------------------------------------------------------------

    async def CreateView(self, request: pb.CreateViewRequest, context: Any) -> pb.CreateViewResponse:
        return pb.CreateViewResponse(view=view_pb(await self._gov.create_view(view_record(request.view))))

    async def GetView(self, request: pb.GetViewRequest, context: Any) -> pb.GetViewResponse:
        return pb.GetViewResponse(view=view_pb(await self._gov.get_view(request.name)))

    async def ListViews(self, request: pb.ListViewsRequest, context: Any) -> pb.ListViewsResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._gov.list_views(page, request.base_dataset)
        return pb.ListViewsResponse(views=[view_pb(v) for v in rows], next_page_token=token)

    async def UpdateView(self, request: pb.UpdateViewRequest, context: Any) -> pb.UpdateViewResponse:
        record = await self._gov.update_view(view_record(request.view), list(request.update_mask.paths))
        return pb.UpdateViewResponse(view=view_pb(record))

    async def DeleteView(self, request: pb.DeleteViewRequest, context: Any) -> pb.DeleteViewResponse:
        return pb.DeleteViewResponse(view=view_pb(await self._gov.delete_view(request.name)))

    # -- profiles ------------------------------------------------------------------------------

    async def CreateProfile(self, request: pb.CreateProfileRequest, context: Any) -> pb.CreateProfileResponse:
        record = await self._gov.create_profile(profile_record(request.profile))
        return pb.CreateProfileResponse(profile=profile_pb(record))

    async def GetProfile(self, request: pb.GetProfileRequest, context: Any) -> pb.GetProfileResponse:
        return pb.GetProfileResponse(profile=profile_pb(await self._gov.get_profile(request.id)))

    async def ListProfiles(self, request: pb.ListProfilesRequest, context: Any) -> pb.ListProfilesResponse:
        rows, token = await self._gov.list_profiles(page_request(request.page_size, request.page_token))
        return pb.ListProfilesResponse(profiles=[profile_pb(p) for p in rows], next_page_token=token)

    async def UpdateProfile(self, request: pb.UpdateProfileRequest, context: Any) -> pb.UpdateProfileResponse:
        record = await self._gov.update_profile(profile_record(request.profile), list(request.update_mask.paths))
        return pb.UpdateProfileResponse(profile=profile_pb(record))

    async def DeleteProfile(self, request: pb.DeleteProfileRequest, context: Any) -> pb.DeleteProfileResponse:
        return pb.DeleteProfileResponse(profile=profile_pb(await self._gov.delete_profile(request.id)))

    async def GetAccessPolicy(self, request: pb.GetAccessPolicyRequest, context: Any) -> pb.GetAccessPolicyResponse:
        revision, policy = await self._gov.access_policy(request.known_revision)
        lease = seconds(self._gov.policy_lease_s)
        if policy is None:
            return pb.GetAccessPolicyResponse(revision=revision, unchanged=True, lease=lease)
        return pb.GetAccessPolicyResponse(revision=revision, policy=policy_pb(policy), lease=lease)

    # -- erasure -------------------------------------------------------------------------------

    async def EraseRows(self, request: pb.EraseRowsRequest, context: Any) -> pb.EraseRowsResponse:
        mode = enum_name(pb.ErasureMode, "ERASURE_MODE_", request.mode)
        receipt = await self._erasure.erase(
            request.dataset, request.key_column, list(request.key_values), mode, request.reason
        )
        return pb.EraseRowsResponse(receipt=receipt_pb(receipt))

    async def RestoreRows(self, request: pb.RestoreRowsRequest, context: Any) -> pb.RestoreRowsResponse:
        restored = await self._erasure.restore(
            request.dataset, list(request.key_values), request.reason, request.applied
        )
        return pb.RestoreRowsResponse(restored=restored)

    async def ListTombstones(self, request: pb.ListTombstonesRequest, context: Any) -> pb.ListTombstonesResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._erasure.list_tombstones(request.dataset, page)
        return pb.ListTombstonesResponse(tombstones=[tombstone_pb(t) for t in rows], next_page_token=token)

    async def GetErasureReceipt(
        self, request: pb.GetErasureReceiptRequest, context: Any
    ) -> pb.GetErasureReceiptResponse:
        return pb.GetErasureReceiptResponse(receipt=receipt_pb(await self._erasure.get_receipt(request.id)))

    async def ListErasures(self, request: pb.ListErasuresRequest, context: Any) -> pb.ListErasuresResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._erasure.list_receipts(page, request.dataset)
        return pb.ListErasuresResponse(receipts=[receipt_pb(r) for r in rows], next_page_token=token)

    async def RegisterDerivation(
        self, request: pb.RegisterDerivationRequest, context: Any
    ) -> pb.RegisterDerivationResponse:
        record = await self._erasure.register_derivation(derivation_record(request.derivation))
        return pb.RegisterDerivationResponse(derivation=derivation_pb(record))

    async def DeleteDerivation(self, request: pb.DeleteDerivationRequest, context: Any) -> pb.DeleteDerivationResponse:
        kind = enum_name(pb.DerivationKind, "DERIVATION_KIND_", request.kind)
        removed = await self._erasure.delete_derivation(request.dataset, kind, request.target)
        return pb.DeleteDerivationResponse(removed=removed)

    async def ListDerivations(self, request: pb.ListDerivationsRequest, context: Any) -> pb.ListDerivationsResponse:
        page = page_request(request.page_size, request.page_token)
        rows, token = await self._erasure.list_derivations(page, request.dataset)
        return pb.ListDerivationsResponse(derivations=[derivation_pb(d) for d in rows], next_page_token=token)

    async def RecordDenials(self, request: pb.RecordDenialsRequest, context: Any) -> pb.RecordDenialsResponse:
        denials = [
            Denial(
                time=from_timestamp(d.time, d.HasField("time"), f"denials[{i}].time"),
                method=d.method,
                principal=d.principal,
                code=d.code,
                reason=d.reason,
                message=d.message,
                request_id=d.request_id,
                peer=d.peer,
            )
            for i, d in enumerate(request.denials)
        ]
        return pb.RecordDenialsResponse(recorded=await self._svc.record_denials(denials))

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
    store = CatalogStore(create_catalog_engine(config.catalog_url), config.catalog.policy_lease_ms / 1000)
    store.create_schema()
    service = domain.CatalogService(store, executor.run, StorageBuckets(peers), config.storage.default_bucket)
    token_profiles = frozenset(t.profile for t in config.auth.tokens if t.profile)
    governance = GovernanceService(store, executor.run, VectorCollections(peers), token_profiles)
    erasure = ErasureService(store, executor.run, QueryRows(peers), DerivedPeers(peers))
    servicer = CatalogServicer(service, governance, erasure, auth_enabled)

    async def close() -> None:
        store.close()

    return ServiceBinding(
        name="catalog",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_CatalogServiceServicer_to_server(servicer, server),
        close=close,
    )
