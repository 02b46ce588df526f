"""Typed async client for the catalog service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
from google.protobuf import field_mask_pb2, timestamp_pb2

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from lakehouse.client._base import BaseAsyncClient
from lakehouse.client.arrow import schema_ipc, table_ipc
from lakehouse.common.v1 import arrow_pb2


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


class AsyncCatalogClient(BaseAsyncClient):
    """Datasets, versions, sensitivity and the audit journal."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.CatalogServiceStub(channel)

    async def create_dataset(
        self,
        name: str,
        schema: pa.Schema,
        *,
        bucket: str = "",
        location: str = "",
        description: str = "",
        owner: str = "",
        tags: Sequence[str] = (),
        sample: pa.Table | None = None,
        allow_additive_evolution: bool = False,
    ) -> pb.CreateDatasetResponse:
        dataset = pb.Dataset(
            name=name,
            bucket=bucket,
            location=location,
            schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(schema)),
            description=description,
            owner=owner,
            tags=list(tags),
        )
        request = pb.CreateDatasetRequest(
            dataset=dataset,
            sample=table_ipc(sample) if sample is not None else None,
            allow_additive_evolution=allow_additive_evolution,
        )
        # Idempotent by design: the same name and schema again answers created=False.
        return await self._unary(self._stub.CreateDataset, request)

    async def get_dataset(self, dataset: str) -> pb.Dataset:
        return (await self._unary(self._stub.GetDataset, pb.GetDatasetRequest(dataset=dataset))).dataset

    async def list_datasets(
        self, *, tag: str = "", owner: str = "", name_prefix: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListDatasetsResponse:
        request = pb.ListDatasetsRequest(
            tag=tag, owner=owner, name_prefix=name_prefix, page_size=page_size, page_token=page_token
        )
        return await self._unary(self._stub.ListDatasets, request)

    async def update_dataset(
        self,
        dataset: str,
        *,
        description: str | None = None,
        owner: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> pb.Dataset:
        """Changes only the fields given (sent as the update mask)."""
        changes = pb.Dataset(name=dataset)
        paths = []
        if description is not None:
            changes.description = description
            paths.append("description")
        if owner is not None:
            changes.owner = owner
            paths.append("owner")
        if tags is not None:
            changes.tags[:] = list(tags)
            paths.append("tags")
        request = pb.UpdateDatasetRequest(dataset=changes, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return (await self._unary(self._stub.UpdateDataset, request, idempotent=False)).dataset

    async def delete_dataset(self, dataset: str) -> pb.Dataset:
        request = pb.DeleteDatasetRequest(dataset=dataset)
        # A repeat after success fails with NOT_FOUND.
        return (await self._unary(self._stub.DeleteDataset, request, idempotent=False)).dataset

    async def register_version(self, request: pb.RegisterDatasetVersionRequest) -> pb.RegisterDatasetVersionResponse:
        # A repeat after success fails with TABLE_VERSION_NOT_NEWER.
        return await self._unary(self._stub.RegisterDatasetVersion, request, idempotent=False)

    async def history(
        self, dataset: str, *, page_size: int = 0, page_token: str = "", content_sha256: str = ""
    ) -> pb.GetDatasetHistoryResponse:
        request = pb.GetDatasetHistoryRequest(
            dataset=dataset, page_size=page_size, page_token=page_token, content_sha256=content_sha256
        )
        return await self._unary(self._stub.GetDatasetHistory, request)

    async def get_version(self, dataset: str, version: int) -> pb.DatasetVersion:
        request = pb.GetDatasetVersionRequest(dataset=dataset, version=version)
        return (await self._unary(self._stub.GetDatasetVersion, request)).version

    async def set_column_sensitivity(
        self, dataset: str, column: str, pii: Sequence[str], reason: str = ""
    ) -> pb.Dataset:
        """Sets COLUMN's PII kinds by name ("EMAIL", "SSN", ...); an empty list marks it not sensitive."""
        try:
            kinds = [pb.PiiKind.Value(f"PII_KIND_{kind.upper()}") for kind in pii]
        except ValueError:
            valid = ", ".join(name.removeprefix("PII_KIND_") for name in pb.PiiKind.keys()[1:])
            raise ValueError(f"unknown PII kind in {list(pii)}; choose from {valid}") from None
        request = pb.SetColumnSensitivityRequest(dataset=dataset, column=column, pii=kinds, reason=reason)
        # Idempotent: it sets the column's kinds to this list, whatever they were.
        return (await self._unary(self._stub.SetColumnSensitivity, request)).dataset

    async def list_events(
        self,
        *,
        entity_type: str = "",
        entity: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListEventsResponse:
        request = pb.ListEventsRequest(
            entity_type=entity_type,
            entity=entity,
            start_time=_timestamp(start),
            end_time=_timestamp(end),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._unary(self._stub.ListEvents, request)

    async def whoami(self) -> pb.WhoAmIResponse:
        return await self._unary(self._stub.WhoAmI, pb.WhoAmIRequest())
