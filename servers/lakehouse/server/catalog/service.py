"""Catalog domain: datasets, versions, PII tags, lineage and the audit journal. No grpc here.

Governance (views, profiles, access policies, erasure) lives beside it in governance.py and
erasure.py, on the same store and journal.

Database work is blocking and runs through the injected `run` (a bounded executor); the bucket
check reaches the storage service through the injected `BucketDirectory`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import pyarrow as pa

from lakehouse.client.arrow import schema_ipc
from lakehouse.server.catalog import schema as schemas
from lakehouse.server.catalog.access import require_visible, visibility
from lakehouse.server.catalog.errors import (
    ColumnNotFound,
    ConcurrentChange,
    DatasetNotFound,
    InUse,
    NameTaken,
    NotDatasetOwner,
    SchemaMismatch,
    TableVersionNotNewer,
    VersionNotFound,
)
from lakehouse.server.catalog.pii import PiiKind, detect_pii
from lakehouse.server.catalog.store import (
    CatalogStore,
    ColumnRecord,
    DatasetRecord,
    EventQuery,
    EventRecord,
    LineageRecord,
    Tx,
    VersionRecord,
    unique_tags,
)
from lakehouse.server.common.audit import Denial
from lakehouse.server.common.context import current_call, current_principal
from lakehouse.server.common.errors import invalid_field
from lakehouse.server.common.names import (
    DATASET_NAME,
    MAX_LONG_TEXT,
    MAX_SHORT_TEXT,
    check_dataset_name,
    check_text,
)
from lakehouse.server.common.paging import Page, page_of
from lakehouse.server.common.redact import redact_attributes, redact_uri

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]

# Fixed namespace for dataset ids: the same name gives the same id on every machine and rebuild.
DATASET_ID_NAMESPACE = uuid.UUID("6f1c2b1e-4d0a-5b7e-9a43-1c7e2f0d8b55")
OPERATIONS = ("CREATE", "APPEND", "OVERWRITE", "DELETE", "COMPACT", "SCHEMA_EVOLUTION")
UPDATABLE_DATASET_FIELDS = ("description", "owner", "tags")
# Fields whose change only the owner or an admin may make: they decide who governs the PII tags.
OWNER_ONLY_FIELDS = ("owner", "tags")
INT64_MAX = 2**63 - 1
# Journaled entities whose changes can alter an access policy: they bump its revision.
POLICY_ENTITIES = frozenset({"dataset", "view", "profile", "tombstone"})
# Set by `StoreUnit._write` for the transaction it runs (the executor copies the context, and
# with it this list): `journal` marks it when the transaction bumps the policy revision.
_POLICY_CHANGED: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("policy_changed", default=None)


def dataset_id(name: str) -> str:
    """UUIDv5 of the dataset name."""
    return str(uuid.uuid5(DATASET_ID_NAMESPACE, name))


MAX_TAGS = 64


def check_tags(field: str, tags: Sequence[str]) -> tuple[str, ...]:
    if len(tags) > MAX_TAGS:
        raise invalid_field(field, f"at most {MAX_TAGS} tags", reason="TOO_MANY_TAGS")
    for i, tag in enumerate(tags):
        check_text(f"{field}[{i}]", tag, MAX_SHORT_TEXT, required=True)
    return unique_tags(tags)


def check_lookup(name_or_id: str, field: str) -> str:
    """A dataset reference: a valid name or an id; anything else cannot exist."""
    if not name_or_id:
        raise invalid_field(field, "a dataset name or id is required", reason="MISSING_DATASET")
    if not (DATASET_NAME.fullmatch(name_or_id) or _is_uuid(name_or_id)):
        raise DatasetNotFound(name_or_id[:200])
    return name_or_id


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


class BucketDirectory(Protocol):
    """Confirms a bucket exists (the storage service, reached through its client)."""

    async def require(self, bucket: str, field: str) -> None: ...


@dataclass(frozen=True)
class NewDataset:
    name: str
    schema_ipc: bytes
    bucket: str = ""
    location: str = ""
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    sample_ipc: bytes = b""
    allow_additive_evolution: bool = False


@dataclass(frozen=True)
class NewVersion:
    dataset: str
    table_version: int
    operation: str
    schema_ipc: bytes
    row_count: int
    size_bytes: int
    files: tuple[str, ...] = ()
    lineage: LineageRecord = field(default_factory=LineageRecord)
    content_sha256: str = ""
    sample_ipc: bytes = b""
    allow_additive_evolution: bool = False


class StoreUnit:
    """What every part of the catalog domain holds: the store and the executor that runs its work."""

    def __init__(self, store: CatalogStore, run: Runner) -> None:
        self._store = store
        self._run = run

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs a writing transaction in the executor, once more if it lost a race (see `retried`).

        A write that changed an access policy answers only once the lease of policies given out
        before it has run out: services reuse a policy for its lease without asking, so when this
        call returns none of them still acts on the old one (erasure and revocation apply at once).
        """
        changed: list[bool] = []
        token = _POLICY_CHANGED.set(changed)
        try:
            result: T = await self._run(retried, fn, *args)
        finally:
            _POLICY_CHANGED.reset(token)
        if changed and self._store.policy_lease_s:
            await asyncio.sleep(self._store.policy_lease_s)
        return result

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(tx, *args)` in a read-only transaction; blocking, so run it through `self._run`."""
        with self._store.transaction(read_only=True) as tx:
            return fn(tx, *args)


class CatalogService(StoreUnit):
    def __init__(self, store: CatalogStore, run: Runner, buckets: BucketDirectory, default_bucket: str) -> None:
        super().__init__(store, run)
        self._buckets = buckets
        self._default_bucket = default_bucket

    # -- datasets ------------------------------------------------------------------------------

    async def create_dataset(self, new: NewDataset) -> tuple[DatasetRecord, bool]:
        """Registers a dataset; the same name and schema again is a no-op returning created=False."""
        check_dataset_name(new.name, "dataset.name")
        check_text("dataset.description", new.description, MAX_LONG_TEXT)
        check_text("dataset.owner", new.owner, MAX_SHORT_TEXT)
        check_text("dataset.location", new.location, 1024)
        check_tags("dataset.tags", new.tags)
        schema, sample = await self._run(_decode, new.schema_ipc, "dataset.schema", new.sample_ipc)
        bucket = new.bucket or self._default_bucket
        await self._buckets.require(bucket, "dataset.bucket")
        return await self._write(self._create_dataset, new, schema, sample, bucket)

    def _create_dataset(
        self, new: NewDataset, schema: pa.Schema, sample: pa.Table | None, bucket: str
    ) -> tuple[DatasetRecord, bool]:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            tx.lock_name(new.name)
            existing = tx.dataset(new.name, for_update=True)
            if existing is not None:
                return self._reregister(tx, existing, new, schema, sample, now)
            if tx.view(new.name) is not None:
                raise NameTaken(
                    f"a view named {new.name!r} exists: datasets and views share one namespace (they are SQL "
                    "table names); pick another name",
                    reason="VIEW_ALREADY_EXISTS",
                )
            record = DatasetRecord(
                id=dataset_id(new.name),
                name=new.name,
                bucket=bucket,
                location=new.location or f"datasets/{new.name}",
                schema_ipc=schema_ipc(schema),
                fingerprint=schemas.fingerprint(schema),
                columns=_columns(schema, sample, ()),
                description=new.description,
                owner=new.owner or current_principal().name,
                tags=unique_tags(new.tags),
                current_version=1,
                row_count=0,
                size_bytes=0,
                create_time=now,
                update_time=now,
            )
            tx.insert_dataset(record)
            tx.insert_version(record.id, _version(1, "CREATE", record, now))
            journal(tx, now, "dataset", record.name, "create", None, record.summary())
            return record, True

    def _reregister(
        self,
        tx: Any,
        existing: DatasetRecord,
        new: NewDataset,
        schema: pa.Schema,
        sample: pa.Table | None,
        now: datetime,
    ) -> tuple[DatasetRecord, bool]:
        if schemas.fingerprint(schema) == existing.fingerprint:
            return existing, False
        current = pa.ipc.open_stream(existing.schema_ipc).schema
        _check_evolution(existing.name, current, schema, new.allow_additive_evolution)
        version = existing.current_version + 1
        evolved = replace(
            existing,
            schema_ipc=schema_ipc(schema),
            fingerprint=schemas.fingerprint(schema),
            columns=_columns(schema, sample, existing.columns),
            current_version=version,
            update_time=now,
        )
        tx.update_dataset(evolved)
        tx.insert_version(existing.id, _version(version, "SCHEMA_EVOLUTION", evolved, now))
        journal(tx, now, "dataset", existing.name, "evolve_schema", existing.summary(), evolved.summary())
        return evolved, True

    async def get_dataset(self, name_or_id: str, field: str = "dataset") -> DatasetRecord:
        return await self._run(self._get_dataset, check_lookup(name_or_id, field))

    def _get_dataset(self, name_or_id: str) -> DatasetRecord:
        """The dataset, if the caller may see it (agents: only those their profile binds)."""
        with self._store.transaction(read_only=True) as tx:
            record = tx.dataset(name_or_id)
            require_visible(visibility(tx), "dataset", name_or_id, record.name if record else None)
        if record is None:
            raise DatasetNotFound(name_or_id)
        return record

    async def list_datasets(
        self, page: Page, tag: str, owner: str, name_prefix: str
    ) -> tuple[list[DatasetRecord], str]:
        for name, value in (("tag", tag), ("owner", owner), ("name_prefix", name_prefix)):
            check_text(name, value, MAX_SHORT_TEXT)

        def load() -> list[DatasetRecord]:
            with self._store.transaction(read_only=True) as tx:
                seen = visibility(tx)
                names = seen.datasets if seen is not None else None
                return tx.datasets(page.after, page.size + 1, tag, owner, name_prefix, names)

        return page_of(await self._run(load), page, lambda d: d.name)

    async def update_dataset(self, name_or_id: str, paths: Sequence[str], values: dict[str, Any]) -> DatasetRecord:
        check_update_mask(paths, UPDATABLE_DATASET_FIELDS)
        check_text("dataset.description", values["description"], MAX_LONG_TEXT)
        check_text("dataset.owner", values["owner"], MAX_SHORT_TEXT)
        check_tags("dataset.tags", values["tags"])
        return await self._write(self._update_dataset, check_lookup(name_or_id, "dataset.name"), tuple(paths), values)

    def _update_dataset(self, name_or_id: str, paths: tuple[str, ...], values: dict[str, Any]) -> DatasetRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = tx.dataset(name_or_id, for_update=True)
            if before is None:
                raise DatasetNotFound(name_or_id)
            if set(paths) & set(OWNER_ONLY_FIELDS):
                _require_owner(before, "change its owner or tags")
            changes: dict[str, Any] = {p: unique_tags(values[p]) if p == "tags" else values[p] for p in paths}
            after = replace(before, **changes, update_time=now)
            tx.update_dataset(after)
            journal(tx, now, "dataset", before.name, "update", before.summary(), after.summary())
            return after

    async def delete_dataset(self, name_or_id: str) -> DatasetRecord:
        return await self._write(self._delete_dataset, check_lookup(name_or_id, "dataset"))

    def _delete_dataset(self, name_or_id: str) -> DatasetRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            record = tx.dataset(name_or_id, for_update=True)
            if record is None:
                raise DatasetNotFound(name_or_id)
            _require_owner(record, "delete it")
            _require_unused(tx, record.name)
            tx.delete_dataset(record)
            journal(tx, now, "dataset", record.name, "delete", record.summary(), None)
            return record

    # -- versions ------------------------------------------------------------------------------

    async def register_version(self, new: NewVersion) -> tuple[DatasetRecord, VersionRecord, bool]:
        """Records a table commit; a content hash seen before returns (dataset, earlier version, True)."""
        if new.operation not in OPERATIONS:
            raise invalid_field("operation", f"must be one of {', '.join(OPERATIONS)}", reason="INVALID_OPERATION")
        if new.table_version < 0:
            raise invalid_field("table_version", "must not be negative", reason="INVALID_TABLE_VERSION")
        for name, count in (("row_count", new.row_count), ("size_bytes", new.size_bytes)):
            if count < 0:
                raise invalid_field(name, "must not be negative", reason="INVALID_ARGUMENT")
        if new.content_sha256 and not re.fullmatch(r"[0-9a-f]{64}", new.content_sha256):
            raise invalid_field("content_sha256", "must be a lowercase hex SHA-256", reason="INVALID_CONTENT_HASH")
        check_lookup(new.dataset, "dataset")
        for name, value in (
            ("lineage.source_system", new.lineage.source_system),
            ("lineage.source_reference", new.lineage.source_reference),
            ("lineage.job_id", new.lineage.job_id),
            *((f"lineage.attributes[{k!r}]", f"{k}{v}") for k, v in new.lineage.attributes.items()),
            *((f"files[{i}]", f) for i, f in enumerate(new.files)),
        ):
            check_text(name, value, MAX_LONG_TEXT)
        schema, sample = await self._run(_decode, new.schema_ipc, "schema", new.sample_ipc)
        return await self._write(self._register_version, new, schema, sample)

    def _register_version(
        self, new: NewVersion, schema: pa.Schema, sample: pa.Table | None
    ) -> tuple[DatasetRecord, VersionRecord, bool]:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = tx.dataset(new.dataset, for_update=True)
            if before is None:
                raise DatasetNotFound(new.dataset)
            if new.content_sha256:
                seen = tx.version_with_content(before.id, new.content_sha256)
                # Overwriting back to what an older version held is a real change; only the
                # current content (or any appended content) is a duplicate.
                if seen is not None and (new.operation != "OVERWRITE" or seen.version == before.current_version):
                    return before, seen, True
            last = tx.last_table_version(before.id)
            if last is not None and new.table_version <= last:
                raise TableVersionNotNewer(
                    f"table version {new.table_version} is not newer than {last}, the last one registered for {before.name!r}"
                )
            if schemas.fingerprint(schema) != before.fingerprint:
                _check_new_schema(tx, before, schema, new)
            after = replace(
                before,
                schema_ipc=schema_ipc(schema),
                fingerprint=schemas.fingerprint(schema),
                columns=_columns(schema, sample, before.columns),
                current_version=before.current_version + 1,
                table_version=new.table_version,
                row_count=new.row_count,
                size_bytes=new.size_bytes,
                update_time=now,
            )
            lineage = _redacted(new.lineage)
            version = VersionRecord(
                version=after.current_version,
                operation=new.operation,
                row_count=new.row_count,
                size_bytes=new.size_bytes,
                files=tuple(new.files),
                actor=current_principal().name,
                create_time=now,
                lineage=lineage,
                fingerprint=after.fingerprint,
                content_sha256=new.content_sha256,
                table_version=new.table_version,
            )
            tx.update_dataset(after)
            tx.insert_version(after.id, version)
            journal(
                tx,
                now,
                "dataset",
                after.name,
                "register_version",
                before.summary(),
                after.summary() | {"operation": new.operation, "lineage": lineage.__dict__},
            )
            return after, version, False

    async def history(self, name_or_id: str, page: Page, content_sha256: str = "") -> tuple[list[VersionRecord], str]:
        before = int_token(page.after, "page_token")
        check_lookup(name_or_id, "dataset")
        check_text("content_sha256", content_sha256, 64)

        def load() -> list[VersionRecord]:
            record = self._get_dataset(name_or_id)
            with self._store.transaction(read_only=True) as tx:
                return tx.versions(record.id, before, page.size + 1, content_sha256)

        return page_of(await self._run(load), page, lambda v: str(v.version))

    async def get_version(self, name_or_id: str, number: int) -> VersionRecord:
        check_lookup(name_or_id, "dataset")

        def load() -> VersionRecord:
            record = self._get_dataset(name_or_id)
            with self._store.transaction(read_only=True) as tx:
                found = tx.version(record.id, number)
            if found is None:
                raise VersionNotFound(
                    f"dataset {record.name!r} has no version {number}; its versions are 1 to {record.current_version}"
                )
            return found

        return await self._run(load)

    # -- sensitivity ---------------------------------------------------------------------------

    async def set_column_sensitivity(
        self, name_or_id: str, column: str, pii: Sequence[str], reason: str
    ) -> DatasetRecord:
        unknown = [k for k in pii if k not in PiiKind.__members__]
        if unknown:
            raise invalid_field("pii", f"unknown PII kinds: {', '.join(unknown)}", reason="INVALID_PII_KIND")
        check_lookup(name_or_id, "dataset")
        check_text("column", column, MAX_SHORT_TEXT, required=True)
        check_text("reason", reason, MAX_LONG_TEXT)
        return await self._write(self._set_column_sensitivity, name_or_id, column, tuple(sorted(set(pii))), reason)

    def _set_column_sensitivity(self, name_or_id: str, column: str, pii: tuple[str, ...], reason: str) -> DatasetRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = tx.dataset(name_or_id, for_update=True)
            if before is None:
                raise DatasetNotFound(name_or_id)
            _require_owner(before, "change column sensitivity")
            if column not in {c.name for c in before.columns}:
                raise ColumnNotFound(f"dataset {before.name!r} has no column {column!r}", violations=())
            columns = tuple(replace(c, pii=pii, source="owner") if c.name == column else c for c in before.columns)
            after = replace(before, columns=columns, update_time=now)
            tx.update_dataset(after)
            journal(
                tx,
                now,
                "dataset",
                before.name,
                "set_column_sensitivity",
                before.summary(),
                after.summary() | {"column": column, "reason": reason},
            )
            return after

    # -- journal -------------------------------------------------------------------------------

    async def list_events(
        self, page: Page, entity_type: str, entity: str, start: datetime | None, end: datetime | None
    ) -> tuple[list[EventRecord], str]:
        if start is not None and end is not None and start >= end:
            raise invalid_field("end_time", "must be after start_time", reason="INVALID_TIME_RANGE")
        check_text("entity_type", entity_type, MAX_SHORT_TEXT)
        check_text("entity", entity, MAX_SHORT_TEXT)
        after = int_token(page.after, "page_token") or 0
        query = EventQuery(after, page.size + 1, entity_type, entity, start, end)

        def load() -> list[EventRecord]:
            with self._store.transaction(read_only=True) as tx:
                return tx.events(query)

        return page_of(await self._run(load), page, lambda e: str(e.sequence))

    async def record_denials(self, denials: Sequence[Denial]) -> int:
        """Journals calls the mesh's services denied; they change no policy, so no revision bump."""
        if len(denials) > MAX_DENIALS:
            raise invalid_field("denials", f"at most {MAX_DENIALS} per call", reason="TOO_MANY_DENIALS")
        for i, denial in enumerate(denials):
            if denial.code not in DENIAL_CODES:
                raise invalid_field(
                    f"denials[{i}].code", f"must be one of {', '.join(DENIAL_CODES)}", reason="INVALID_DENIAL"
                )
        return await self._write(self._record_denials, tuple(denials))

    def _record_denials(self, denials: tuple[Denial, ...]) -> int:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            for d in denials:
                details = {
                    "code": d.code,
                    "reason": _clip(d.reason, MAX_SHORT_TEXT),
                    "message": _clip(d.message, MAX_DENIAL_MESSAGE),
                    "peer": _clip(d.peer, MAX_SHORT_TEXT),
                }
                tx.append_event(
                    d.time or now,
                    _clip(d.principal, MAX_SHORT_TEXT) or "anonymous",
                    "denial",
                    _clip(d.method, MAX_SHORT_TEXT),
                    d.code.lower(),
                    None,
                    details,
                    _clip(d.request_id, 128),
                )
        return len(denials)


MAX_DENIALS = 1000
MAX_DENIAL_MESSAGE = 1000
DENIAL_CODES = ("PERMISSION_DENIED", "UNAUTHENTICATED")


def _clip(text: str, limit: int) -> str:
    """Text a journal column can hold: no NUL (PostgreSQL refuses it), at most `limit` characters."""
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_update_mask(paths: Sequence[str], allowed: Sequence[str]) -> None:
    """An update names at least one field, and only fields it may change."""
    if not paths:
        raise invalid_field(
            "update_mask", f"name the fields to change: {', '.join(allowed)}", reason="INVALID_UPDATE_MASK"
        )
    unknown = [p for p in paths if p not in allowed]
    if unknown:
        raise invalid_field(
            "update_mask",
            f"cannot update {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            reason="INVALID_UPDATE_MASK",
        )


def _check_new_schema(tx: Tx, before: DatasetRecord, schema: pa.Schema, new: NewVersion) -> None:
    """Commits other than overwrites evolve a schema additively at most. An overwrite may replace
    it, unless views read the dataset: they name its columns, so those must stay."""
    current = pa.ipc.open_stream(before.schema_ipc).schema
    if new.operation != "OVERWRITE":
        _check_evolution(before.name, current, schema, new.allow_additive_evolution)
        return
    dependents = tx.views_over(before.name)
    if dependents and not schemas.is_additive(current, schema):
        raise _mismatch(
            f"views {', '.join(schemas.capped(dependents))} read {before.name!r}, so an overwrite may only "
            "append nullable columns to its schema",
            current,
            schema,
        )


def _require_unused(tx: Tx, dataset: str) -> None:
    """Views over a dataset and profiles binding it would dangle if it went."""
    views = tx.views_over(dataset)
    profiles = tx.profiles_binding("datasets", dataset)
    if views or profiles:
        named = [f"view {v}" for v in views] + [f"profile {p}" for p in profiles]
        raise InUse(
            f"dataset {dataset!r} is in use by {', '.join(schemas.capped(named))}: delete those views and remove "
            "it from those profiles first",
            reason="DATASET_IN_USE",
            metadata={"views": ",".join(views[:50]), "profiles": ",".join(profiles[:50])},
        )


def _check_evolution(name: str, current: pa.Schema, proposed: pa.Schema, allow_additive: bool) -> None:
    if allow_additive and schemas.is_additive(current, proposed):
        return
    hint = (
        " (only appending nullable columns is allowed with allow_additive_evolution)"
        if allow_additive
        else (
            "; pass allow_additive_evolution to accept new nullable columns"
            if schemas.is_additive(current, proposed)
            else ""
        )
    )
    raise _mismatch(f"schema of {name!r} differs from the registered one", current, proposed, hint)


def _mismatch(what: str, current: pa.Schema, proposed: pa.Schema, hint: str = "") -> SchemaMismatch:
    change = schemas.diff(current, proposed)
    return SchemaMismatch(
        f"{what}: {change.summary()}{hint}",
        metadata={
            "added": json.dumps(schemas.capped(change.added)),
            "removed": json.dumps(schemas.capped(change.removed)),
            "changed": json.dumps(schemas.capped(change.changed)),
        },
    )


def _decode(schema_ipc: bytes, schema_field: str, sample_ipc: bytes) -> tuple[pa.Schema, pa.Table | None]:
    """Parses a request's Arrow schema and optional sample (up to the message size limit)."""
    return schemas.decode_schema(schema_ipc, schema_field), schemas.decode_table(sample_ipc, "sample")


def retried(fn: Callable[..., T], *args: Any) -> T:
    """Calls `fn` once more after it lost a race to insert the same key (two creates of one name).

    The whole transaction rolled back, so the second attempt takes the ordinary path and sees
    the winner's row: the idempotent answer, SCHEMA_MISMATCH, or the next version number.
    """
    try:
        return fn(*args)
    except ConcurrentChange:
        return fn(*args)


def _require_owner(record: DatasetRecord, action: str) -> None:
    principal = current_principal()
    if principal.role != "admin" and principal.name != record.owner:
        raise NotDatasetOwner(f"only the owner of {record.name!r} ({record.owner}) or an admin may {action}")


def _redacted(lineage: LineageRecord) -> LineageRecord:
    """Lineage without credentials, as it is stored, journaled and returned."""
    return LineageRecord(
        source_system=redact_uri(lineage.source_system),
        source_reference=redact_uri(lineage.source_reference),
        job_id=redact_uri(lineage.job_id),
        attributes=redact_attributes(lineage.attributes),
    )


def _columns(schema: pa.Schema, sample: pa.Table | None, previous: Sequence[ColumnRecord]) -> tuple[ColumnRecord, ...]:
    """Columns with detected PII, keeping every owner override of a column that still exists."""
    detected = detect_pii(schema.names, sample)
    overrides = {c.name: c for c in previous if c.source == "owner"}
    out = []
    for f in schema:
        if f.name in overrides:
            out.append(replace(overrides[f.name], arrow_type=str(f.type), nullable=f.nullable))
        else:
            out.append(ColumnRecord(f.name, str(f.type), f.nullable, tuple(sorted(detected[f.name]))))
    return tuple(out)


def _version(number: int, operation: str, record: DatasetRecord, now: datetime) -> VersionRecord:
    return VersionRecord(
        version=number,
        operation=operation,
        row_count=record.row_count,
        size_bytes=record.size_bytes,
        files=(),
        actor=current_principal().name,
        create_time=now,
        lineage=LineageRecord(source_system="catalog"),
        fingerprint=record.fingerprint,
    )


def journal(
    tx: Tx,
    now: datetime,
    entity_type: str,
    entity: str,
    action: str,
    before: Any,
    after: Any,
    *,
    changes_policy: bool | None = None,
) -> None:
    """Appends the audit event of a mutation, in its transaction. A change that can alter an
    access policy (by default: of a dataset, view, profile or tombstones) bumps its revision."""
    call = current_call()
    tx.append_event(
        now, current_principal().name, entity_type, entity, action, before, after, call.request_id if call else ""
    )
    if changes_policy if changes_policy is not None else entity_type in POLICY_ENTITIES:
        tx.bump_policy_revision()
        changed = _POLICY_CHANGED.get()
        if changed is not None:
            changed.append(True)


def int_token(value: str | None, field: str) -> int | None:
    """A numeric cursor; anything outside 0..int64 max is not one this server issued."""
    if value is None:
        return None
    if not re.fullmatch(r"[0-9]{1,19}", value) or int(value) > INT64_MAX:
        raise invalid_field(field, "not a token this server issued", reason="INVALID_PAGE_TOKEN")
    return int(value)
