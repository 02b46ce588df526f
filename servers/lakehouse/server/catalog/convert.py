"""Protobuf <-> catalog domain conversions for the servicer."""

from __future__ import annotations

from typing import Any

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.common.v1 import arrow_pb2
from lakehouse.server.catalog.governance import AccessPolicy
from lakehouse.server.catalog.store import (
    DatasetRecord,
    DerivationRecord,
    ErasureRecord,
    EventRecord,
    ProfileRecord,
    RedactionRecord,
    TombstoneRecord,
    VersionRecord,
    ViewRecord,
)
from lakehouse.server.common.convert import to_timestamp

_SOURCES = {"detected": pb.SENSITIVITY_SOURCE_DETECTED, "owner": pb.SENSITIVITY_SOURCE_OWNER}


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


def enum_name(enum: Any, prefix: str, value: int) -> str:
    """The short name of an enum value ("MASK" for REDACTION_KIND_MASK); "" when unset or unknown,
    which the domain refuses naming the field."""
    name = enum.Name(value) if value in enum.values() and value else ""
    return str(name).removeprefix(prefix)


def view_pb(record: ViewRecord) -> pb.View:
    return pb.View(
        name=record.name,
        base_dataset=record.base_dataset,
        columns=list(record.columns),
        row_filter=record.row_filter,
        redactions=[
            pb.ColumnRedaction(
                column=r.column,
                kind=pb.RedactionKind.Value(f"REDACTION_KIND_{r.kind}"),
                keep_prefix=r.keep_prefix,
                keep_suffix=r.keep_suffix,
            )
            for r in record.redactions
        ],
        description=record.description,
        owner=record.owner,
        create_time=to_timestamp(record.create_time),
        update_time=to_timestamp(record.update_time),
    )


def view_record(view: pb.View) -> ViewRecord:
    """A view as the caller sent it; output-only fields are ignored."""
    return ViewRecord(
        name=view.name,
        base_dataset=view.base_dataset,
        columns=tuple(view.columns),
        row_filter=view.row_filter,
        redactions=tuple(
            RedactionRecord(
                column=r.column,
                kind=enum_name(pb.RedactionKind, "REDACTION_KIND_", r.kind),
                keep_prefix=r.keep_prefix,
                keep_suffix=r.keep_suffix,
            )
            for r in view.redactions
        ),
        description=view.description,
    )


def profile_pb(record: ProfileRecord) -> pb.Profile:
    return pb.Profile(
        id=record.id,
        description=record.description,
        datasets=list(record.datasets),
        views=list(record.views),
        collections=list(record.collections),
        memory_namespaces=list(record.memory_namespaces),
        default_chat_model=record.default_chat_model,
        create_time=to_timestamp(record.create_time),
        update_time=to_timestamp(record.update_time),
    )


def profile_record(profile: pb.Profile) -> ProfileRecord:
    return ProfileRecord(
        id=profile.id,
        description=profile.description,
        datasets=tuple(profile.datasets),
        views=tuple(profile.views),
        collections=tuple(profile.collections),
        memory_namespaces=tuple(profile.memory_namespaces),
        default_chat_model=profile.default_chat_model,
    )


def receipt_pb(record: ErasureRecord) -> pb.ErasureReceipt:
    return pb.ErasureReceipt(
        id=record.id,
        dataset=record.dataset,
        mode=pb.ErasureMode.Value(f"ERASURE_MODE_{record.mode}"),
        actor=record.actor,
        reason=record.reason,
        key_column=record.key_column,
        key_count=record.key_count,
        version_before=record.version_before,
        version_after=record.version_after,
        rows_removed=record.rows_removed,
        files_removed=record.files_removed,
        downstream=[
            pb.DownstreamDeletion(kind=d.kind, target=d.target, deleted_count=d.deleted_count)
            for d in record.downstream
        ],
        state=pb.ErasureState.Value(f"ERASURE_STATE_{record.state}"),
        detail=record.detail,
        start_time=to_timestamp(record.start_time),
        complete_time=to_timestamp(record.complete_time),
    )


def tombstone_pb(record: TombstoneRecord) -> pb.Tombstone:
    return pb.Tombstone(
        dataset=record.dataset,
        key_column=record.key_column,
        key_value=record.key_value,
        erasure_id=record.erasure_id,
        create_time=to_timestamp(record.create_time),
    )


def derivation_pb(record: DerivationRecord) -> pb.Derivation:
    return pb.Derivation(
        dataset=record.dataset,
        kind=pb.DerivationKind.Value(f"DERIVATION_KIND_{record.kind}"),
        target=record.target,
        key_column=record.key_column,
        dataset_version=record.dataset_version,
        create_time=to_timestamp(record.create_time),
        update_time=to_timestamp(record.update_time),
    )


def derivation_record(derivation: pb.Derivation) -> DerivationRecord:
    return DerivationRecord(
        dataset=derivation.dataset,
        kind=enum_name(pb.DerivationKind, "DERIVATION_KIND_", derivation.kind),
        target=derivation.target,
        key_column=derivation.key_column,
        dataset_version=derivation.dataset_version,
    )


def policy_pb(policy: AccessPolicy) -> pb.AccessPolicy:
    return pb.AccessPolicy(
        principal=policy.principal,
        role=policy.role,
        profile=policy.profile,
        restricted=policy.restricted,
        datasets=[dataset_pb(d) for d in policy.datasets],
        views=[view_pb(v) for v in policy.views],
        view_bases=[dataset_pb(d) for d in policy.view_bases],
        tombstones=[
            pb.DatasetTombstones(dataset=t.dataset, key_column=t.key_column, key_values=list(t.key_values))
            for t in policy.tombstones
        ],
        collections=list(policy.collections),
        memory_namespaces=list(policy.memory_namespaces),
        default_chat_model=policy.default_chat_model,
    )
