"""Typed async client for the catalog service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from lakehouse.client._base import BaseAsyncClient
from lakehouse.client.arrow import schema_ipc, table_ipc
from lakehouse.common.v1 import arrow_pb2


def _listed(values: Sequence[Any] | None) -> list[Any] | None:
    return None if values is None else list(values)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _masked(message: Message, values: Mapping[str, Any]) -> field_mask_pb2.FieldMask:
    """Sets the fields of `values` that are not None on `message`; the mask names exactly those."""
    paths = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            repeated = getattr(message, name)
            del repeated[:]
            repeated.extend(value)
        else:
            setattr(message, name, value)
        paths.append(name)
    return field_mask_pb2.FieldMask(paths=paths)


def _enum(enum: Any, prefix: str, name: str) -> Any:
    """An enum value by its short name, for example ("mask" -> REDACTION_KIND_MASK)."""
    try:
        return enum.Value(f"{prefix}{name.upper()}")
    except ValueError:
        valid = ", ".join(k.removeprefix(prefix).lower() for k in enum.keys()[1:])
        raise ValueError(f"unknown value {name!r}; choose from {valid}") from None


def redaction(column: str, kind: str, keep_prefix: int = 0, keep_suffix: int = 0) -> pb.ColumnRedaction:
    """A view's redaction of `column`: kind "null", "hash" or "mask" (keeping some characters)."""
    return pb.ColumnRedaction(
        column=column,
        kind=_enum(pb.RedactionKind, "REDACTION_KIND_", kind),
        keep_prefix=keep_prefix,
        keep_suffix=keep_suffix,
    )


class AsyncCatalogClient(BaseAsyncClient):
    """Datasets, versions, sensitivity, the audit journal, and governance: views, profiles,
    access policies, erasure and derivations."""

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
        mask = _masked(changes, {"description": description, "owner": owner, "tags": _listed(tags)})
        request = pb.UpdateDatasetRequest(dataset=changes, update_mask=mask)
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

    # -- views ---------------------------------------------------------------------------------

    async def create_view(
        self,
        name: str,
        base_dataset: str,
        columns: Sequence[str],
        *,
        row_filter: str = "",
        redactions: Sequence[pb.ColumnRedaction] = (),
        description: str = "",
    ) -> pb.View:
        """An AI-safe view over `base_dataset`: `columns` only, rows where `row_filter` holds,
        with `redactions` (see `redaction`) applied."""
        view = pb.View(
            name=name,
            base_dataset=base_dataset,
            columns=list(columns),
            row_filter=row_filter,
            redactions=list(redactions),
            description=description,
        )
        # A repeat after success fails with VIEW_ALREADY_EXISTS.
        return (await self._unary(self._stub.CreateView, pb.CreateViewRequest(view=view), idempotent=False)).view

    async def get_view(self, name: str) -> pb.View:
        return (await self._unary(self._stub.GetView, pb.GetViewRequest(name=name))).view

    async def list_views(
        self, *, base_dataset: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListViewsResponse:
        request = pb.ListViewsRequest(base_dataset=base_dataset, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListViews, request)

    async def update_view(
        self,
        name: str,
        *,
        description: str | None = None,
        columns: Sequence[str] | None = None,
        row_filter: str | None = None,
        redactions: Sequence[pb.ColumnRedaction] | None = None,
    ) -> pb.View:
        """Changes only the fields given (sent as the update mask); `row_filter=""` removes the filter."""
        view = pb.View(name=name)
        values = {
            "description": description,
            "columns": _listed(columns),
            "row_filter": row_filter,
            "redactions": _listed(redactions),
        }
        request = pb.UpdateViewRequest(view=view, update_mask=_masked(view, values))
        # Idempotent: it sets the named fields to these values, whatever they were.
        return (await self._unary(self._stub.UpdateView, request)).view

    async def delete_view(self, name: str) -> pb.View:
        request = pb.DeleteViewRequest(name=name)
        return (await self._unary(self._stub.DeleteView, request, idempotent=False)).view

    # -- profiles ------------------------------------------------------------------------------

    async def create_profile(
        self,
        profile_id: str,
        *,
        description: str = "",
        datasets: Sequence[str] = (),
        views: Sequence[str] = (),
        collections: Sequence[str] = (),
        memory_namespaces: Sequence[str] = (),
        default_chat_model: str = "",
    ) -> pb.Profile:
        """A model profile: what agent tokens bound to it may read. Every binding must exist."""
        profile = pb.Profile(
            id=profile_id,
            description=description,
            datasets=list(datasets),
            views=list(views),
            collections=list(collections),
            memory_namespaces=list(memory_namespaces),
            default_chat_model=default_chat_model,
        )
        request = pb.CreateProfileRequest(profile=profile)
        return (await self._unary(self._stub.CreateProfile, request, idempotent=False)).profile

    async def get_profile(self, profile_id: str) -> pb.Profile:
        return (await self._unary(self._stub.GetProfile, pb.GetProfileRequest(id=profile_id))).profile

    async def list_profiles(self, *, page_size: int = 0, page_token: str = "") -> pb.ListProfilesResponse:
        request = pb.ListProfilesRequest(page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListProfiles, request)

    async def update_profile(
        self,
        profile_id: str,
        *,
        description: str | None = None,
        datasets: Sequence[str] | None = None,
        views: Sequence[str] | None = None,
        collections: Sequence[str] | None = None,
        memory_namespaces: Sequence[str] | None = None,
        default_chat_model: str | None = None,
    ) -> pb.Profile:
        """Changes only the fields given (sent as the update mask); a list given replaces the old one."""
        profile = pb.Profile(id=profile_id)
        values = {
            "description": description,
            "datasets": _listed(datasets),
            "views": _listed(views),
            "collections": _listed(collections),
            "memory_namespaces": _listed(memory_namespaces),
            "default_chat_model": default_chat_model,
        }
        request = pb.UpdateProfileRequest(profile=profile, update_mask=_masked(profile, values))
        return (await self._unary(self._stub.UpdateProfile, request)).profile

    async def delete_profile(self, profile_id: str) -> pb.Profile:
        request = pb.DeleteProfileRequest(id=profile_id)
        return (await self._unary(self._stub.DeleteProfile, request, idempotent=False)).profile

    # -- erasure -------------------------------------------------------------------------------

    async def erase_rows(
        self,
        dataset: str,
        key_column: str,
        key_values: Sequence[str],
        *,
        mode: str,
        reason: str,
        timeout_s: float | None = None,
    ) -> pb.ErasureReceipt:
        """Erases rows by key, "soft" (tombstones) or "hard" (deleted, also downstream); returns
        the receipt, whose `state` says whether every step completed."""
        request = pb.EraseRowsRequest(
            dataset=dataset,
            key_column=key_column,
            key_values=list(key_values),
            mode=_enum(pb.ErasureMode, "ERASURE_MODE_", mode),
            reason=reason,
        )
        # Each call is a new erasure with its own receipt: retried only when never sent.
        response = await self._unary(self._stub.EraseRows, request, timeout_s=timeout_s, idempotent=False)
        return response.receipt

    async def restore_rows(
        self, dataset: str, key_values: Sequence[str], *, reason: str, applied: bool = False
    ) -> pb.RestoreRowsResponse:
        """Lifts soft tombstones (`restored` says how many there were); `applied` is for compaction,
        which deleted the rows for good."""
        request = pb.RestoreRowsRequest(dataset=dataset, key_values=list(key_values), reason=reason, applied=applied)
        return await self._unary(self._stub.RestoreRows, request, idempotent=False)

    async def list_tombstones(
        self, dataset: str, *, page_size: int = 0, page_token: str = ""
    ) -> pb.ListTombstonesResponse:
        request = pb.ListTombstonesRequest(dataset=dataset, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListTombstones, request)

    async def get_erasure(self, erasure_id: str) -> pb.ErasureReceipt:
        request = pb.GetErasureReceiptRequest(id=erasure_id)
        return (await self._unary(self._stub.GetErasureReceipt, request)).receipt

    async def list_erasures(
        self, *, dataset: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListErasuresResponse:
        request = pb.ListErasuresRequest(dataset=dataset, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListErasures, request)

    # -- derivations, policies, denials --------------------------------------------------------

    async def register_derivation(
        self, dataset: str, kind: str, target: str, key_column: str, *, dataset_version: int = 0
    ) -> pb.Derivation:
        """Records that `target` ("vector_collection" or "memory_namespace" `kind`) derives from
        `dataset`, its items keyed by `key_column`; registering it again updates it."""
        derivation = pb.Derivation(
            dataset=dataset,
            kind=_enum(pb.DerivationKind, "DERIVATION_KIND_", kind),
            target=target,
            key_column=key_column,
            dataset_version=dataset_version,
        )
        request = pb.RegisterDerivationRequest(derivation=derivation)
        return (await self._unary(self._stub.RegisterDerivation, request)).derivation

    async def delete_derivation(self, dataset: str, kind: str, target: str) -> bool:
        """Forgets that `target` derives from `dataset`; False when it was not recorded."""
        request = pb.DeleteDerivationRequest(
            dataset=dataset, kind=_enum(pb.DerivationKind, "DERIVATION_KIND_", kind), target=target
        )
        return (await self._unary(self._stub.DeleteDerivation, request)).removed

    async def list_derivations(
        self, *, dataset: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListDerivationsResponse:
        request = pb.ListDerivationsRequest(dataset=dataset, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListDerivations, request)

    async def get_access_policy(self, known_revision: int = 0) -> pb.GetAccessPolicyResponse:
        """The caller's read policy, or `unchanged` when `known_revision` is current."""
        request = pb.GetAccessPolicyRequest(known_revision=known_revision)
        return await self._unary(self._stub.GetAccessPolicy, request)

    async def record_denials(self, denials: Sequence[pb.Denial]) -> int:
        request = pb.RecordDenialsRequest(denials=list(denials))
        # A repeat after success journals the denials twice: retried only when never sent.
        return (await self._unary(self._stub.RecordDenials, request, idempotent=False)).recorded
