"""Catalog persistence with SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL by URL.

Every mutation and its audit event commit in one transaction, so the journal never disagrees
with the state it describes. The journal table refuses UPDATE and DELETE at the database level.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from lakehouse.server.catalog.errors import CatalogDatabaseError, ConcurrentChange
from lakehouse.server.common import database, metrics
from lakehouse.server.common.context import current_call
from lakehouse.server.common.errors import Unavailable

log = logging.getLogger("lakehouse.catalog")
metadata = sa.MetaData()
# Key of the PostgreSQL advisory lock that serializes schema creation across replicas.
SCHEMA_LOCK_KEY = 0x6C616B65686F7573  # "lakehous"

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("bucket", sa.String(63), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("schema_ipc", sa.LargeBinary, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("columns_json", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("owner", sa.String(256), nullable=False, default=""),
    sa.Column("current_version", sa.BigInteger, nullable=False),
    sa.Column("table_version", sa.BigInteger, nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
)

dataset_tags = sa.Table(
    "dataset_tags",
    metadata,
    sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(256), primary_key=True),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("table_version", sa.BigInteger, nullable=True),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("files_json", sa.Text, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("lineage_json", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False, default=""),
    sa.Index("ix_dataset_versions_content", "dataset_id", "content_sha256"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("time_us", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("entity_type", sa.String(64), nullable=False),
    sa.Column("entity", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("before_json", sa.Text, nullable=False),
    sa.Column("after_json", sa.Text, nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Index("ix_events_entity", "entity_type", "entity"),
    sa.Index("ix_events_time", "time_us"),
)

# -- governance: datasets are referred to by name (ids are derived from names anyway) ---------------

views = sa.Table(
    "views",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("base_dataset", sa.String(128), nullable=False, index=True),
    sa.Column("columns_json", sa.Text, nullable=False),
    sa.Column("row_filter", sa.Text, nullable=False),
    sa.Column("redactions_json", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("owner", sa.String(256), nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.String(63), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("default_chat_model", sa.String(256), nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
)

# One row per binding; `kind` is the Profile field it belongs to ("datasets", "views", ...).
profile_bindings = sa.Table(
    "profile_bindings",
    metadata,
    sa.Column("profile_id", sa.String(63), sa.ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Index("ix_profile_bindings_target", "kind", "name"),
)

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("dataset", sa.String(128), primary_key=True),
    sa.Column("key_value", sa.String(256), primary_key=True),
    sa.Column("key_column", sa.String(256), nullable=False),
    sa.Column("erasure_id", sa.String(36), nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
)

erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("dataset", sa.String(128), nullable=False, index=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("key_column", sa.String(256), nullable=False),
    sa.Column("key_count", sa.BigInteger, nullable=False),
    sa.Column("version_before", sa.BigInteger, nullable=False),
    sa.Column("version_after", sa.BigInteger, nullable=False),
    sa.Column("rows_removed", sa.BigInteger, nullable=False),
    sa.Column("files_removed", sa.BigInteger, nullable=False),
    sa.Column("downstream_json", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("start_time_us", sa.BigInteger, nullable=False),
    sa.Column("complete_time_us", sa.BigInteger, nullable=True),
)

derivations = sa.Table(
    "derivations",
    metadata,
    sa.Column("dataset", sa.String(128), primary_key=True),
    sa.Column("target", sa.String(256), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key_column", sa.String(256), nullable=False),
    sa.Column("dataset_version", sa.BigInteger, nullable=False),
    sa.Column("create_time_us", sa.BigInteger, nullable=False),
    sa.Column("update_time_us", sa.BigInteger, nullable=False),
)

# One row: the access-policy revision, bumped in the transaction of every change that can alter
# a policy, so callers holding the current revision are answered with a single-row read.
policy_revision = sa.Table(
    "policy_revision",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)

_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'the audit journal is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION lakehouse_events_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'the audit journal is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS events_append_only ON events",
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION lakehouse_events_append_only()",
    ],
}


def to_us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, UTC)


@dataclass(frozen=True)
class ColumnRecord:
    name: str
    arrow_type: str
    nullable: bool
    pii: tuple[str, ...] = ()
    source: str = "detected"
    """"detected" or "owner" (an owner's override that detection no longer changes)."""


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    name: str
    bucket: str
    location: str
    schema_ipc: bytes
    fingerprint: str
    columns: tuple[ColumnRecord, ...]
    description: str
    owner: str
    tags: tuple[str, ...]
    current_version: int
    row_count: int
    size_bytes: int
    create_time: datetime
    update_time: datetime
    table_version: int | None = None
    """Delta version holding the current version's data; None until data is first committed."""

    def summary(self) -> dict[str, Any]:
        """What the audit journal keeps of a dataset (no schema bytes)."""
        return {
            "id": self.id,
            "name": self.name,
            "bucket": self.bucket,
            "location": self.location,
            "fingerprint": self.fingerprint,
            "description": self.description,
            "owner": self.owner,
            "tags": list(self.tags),
            "current_version": self.current_version,
            "table_version": self.table_version,
            "row_count": self.row_count,
            "pii": {c.name: list(c.pii) for c in self.columns if c.pii},
        }


@dataclass(frozen=True)
class LineageRecord:
    source_system: str = ""
    source_reference: str = ""
    job_id: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionRecord:
    version: int
    operation: str
    row_count: int
    size_bytes: int
    files: tuple[str, ...]
    actor: str
    create_time: datetime
    lineage: LineageRecord
    fingerprint: str
    content_sha256: str = ""
    table_version: int | None = None


@dataclass(frozen=True)
class EventRecord:
    sequence: int
    time: datetime
    actor: str
    entity_type: str
    entity: str
    action: str
    before_json: str
    after_json: str
    request_id: str


# Times of a record built from a request, before the store gives it real ones.
UNSTORED = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class RedactionRecord:
    column: str
    kind: str
    """"NULL", "HASH" or "MASK"."""
    keep_prefix: int = 0
    keep_suffix: int = 0


@dataclass(frozen=True)
class ViewRecord:
    name: str
    base_dataset: str
    columns: tuple[str, ...]
    row_filter: str
    redactions: tuple[RedactionRecord, ...] = ()
    description: str = ""
    owner: str = ""
    create_time: datetime = UNSTORED
    update_time: datetime = UNSTORED

    def summary(self) -> dict[str, Any]:
        """What the audit journal keeps of a view: its whole definition."""
        return {
            "name": self.name,
            "base_dataset": self.base_dataset,
            "columns": list(self.columns),
            "row_filter": self.row_filter,
            "redactions": [r.__dict__ for r in self.redactions],
            "description": self.description,
            "owner": self.owner,
        }


# Profile fields that hold bindings, in the order the contract lists them.
BINDING_KINDS = ("datasets", "views", "collections", "memory_namespaces")


@dataclass(frozen=True)
class ProfileRecord:
    id: str
    description: str
    datasets: tuple[str, ...]
    views: tuple[str, ...]
    collections: tuple[str, ...]
    memory_namespaces: tuple[str, ...]
    default_chat_model: str
    create_time: datetime = UNSTORED
    update_time: datetime = UNSTORED

    def bindings(self) -> dict[str, tuple[str, ...]]:
        return {kind: getattr(self, kind) for kind in BINDING_KINDS}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "description": self.description, "default_chat_model": self.default_chat_model} | {
            kind: list(names) for kind, names in self.bindings().items()
        }


@dataclass(frozen=True)
class TombstoneRecord:
    dataset: str
    key_column: str
    key_value: str
    erasure_id: str
    create_time: datetime


@dataclass(frozen=True)
class DownstreamRecord:
    kind: str
    """"vector_collection" or "memory_namespace"."""
    target: str
    deleted_count: int


@dataclass(frozen=True)
class ErasureRecord:
    """An erasure receipt. Key values are never part of it, only their count."""

    id: str
    dataset: str
    mode: str
    """"SOFT" or "HARD"."""
    actor: str
    reason: str
    key_column: str
    key_count: int
    version_before: int
    version_after: int
    state: str
    """"RUNNING", "COMPLETE" or "FAILED"."""
    start_time: datetime
    rows_removed: int = 0
    files_removed: int = 0
    downstream: tuple[DownstreamRecord, ...] = ()
    detail: str = ""
    complete_time: datetime | None = None
    sequence: int = 0
    """Insertion order, for newest-first paging; 0 until stored."""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "mode": self.mode,
            "reason": self.reason,
            "key_column": self.key_column,
            "key_count": self.key_count,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "rows_removed": self.rows_removed,
            "files_removed": self.files_removed,
            "downstream": [d.__dict__ for d in self.downstream],
            "state": self.state,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DerivationRecord:
    dataset: str
    kind: str
    """"VECTOR_COLLECTION" or "MEMORY_NAMESPACE"."""
    target: str
    key_column: str
    dataset_version: int
    create_time: datetime = UNSTORED
    update_time: datetime = UNSTORED

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_time")}


@dataclass(frozen=True)
class EventQuery:
    after_sequence: int
    limit: int
    entity_type: str = ""
    entity: str = ""
    start: datetime | None = None
    end: datetime | None = None


_READ_ONLY = database.READ_ONLY


def create_catalog_engine(url: str) -> Engine:
    """The catalog's engine (see common.database.create_engine)."""
    return database.create_engine(url, max_overflow=5)


class CatalogStore:
    """Tables and queries; one `Tx` per unit of work."""

    def __init__(self, engine: Engine, policy_lease_s: float = 0.0) -> None:
        self.engine = engine
        self.policy_lease_s = policy_lease_s
        """How long a service may use an access policy; a change to one answers after this long."""

    def create_schema(self) -> None:
        """Creates missing tables and the journal triggers; replicas may call it at the same time."""
        with self._connect() as conn:
            if conn.dialect.name == "postgresql":
                # Concurrent CREATE TABLEs collide in pg_type; the lock, held until commit, makes
                # a second replica wait and then find the first one's tables.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            metadata.create_all(conn)
            for statement in _APPEND_ONLY.get(conn.dialect.name, []):
                conn.exec_driver_sql(statement)
            if conn.execute(sa.select(policy_revision.c.id)).first() is None:
                # Revisions start at 1: a caller holding none sends 0, which must never match.
                conn.execute(policy_revision.insert().values(id=1, revision=1))

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Tx]:
        """One unit of work; `read_only` ones on SQLite do not wait for the write lock."""
        with self._connect(read_only) as conn:
            yield Tx(conn)

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.execution_options(**{_READ_ONLY: read_only}).begin():
                yield conn
        except OperationalError as exc:
            # The database is down or unreachable; callers retry, nothing was committed.
            metrics.backend_error("database", "DATABASE_UNAVAILABLE")
            raise Unavailable(
                f"catalog database unavailable: {exc.orig.__class__.__name__}",
                reason="DATABASE_UNAVAILABLE",
                retry_after_s=1.0,
            ) from exc
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise _database_bug(exc) from None
            # Lost a race to insert the same key; `from None` keeps the statement out of any traceback.
            raise ConcurrentChange(
                "a concurrent request changed the same dataset first; retry", retry_after_s=0.1
            ) from None
        except DBAPIError as exc:
            raise _database_bug(exc) from None

    def close(self) -> None:
        self.engine.dispose()


class Tx:
    """Reads and writes inside one database transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- datasets ------------------------------------------------------------------------------

    def dataset(self, name_or_id: str, *, for_update: bool = False, for_share: bool = False) -> DatasetRecord | None:
        """The dataset by name or id; `for_update` locks its row until the transaction ends, and
        `for_share` keeps others from changing or deleting it (a view or profile refers to it).

        SQLite ignores the locks: there every writing transaction already holds the database's.
        """
        query = sa.select(datasets).where(sa.or_(datasets.c.name == name_or_id, datasets.c.id == name_or_id))
        if for_update or for_share:
            query = query.with_for_update(read=not for_update)
        row = self._conn.execute(query).mappings().first()
        return self._dataset(row) if row else None

    def datasets(
        self,
        after: str | None,
        limit: int | None,
        tag: str = "",
        owner: str = "",
        name_prefix: str = "",
        names: Collection[str] | None = None,
    ) -> list[DatasetRecord]:
        """Datasets in name order (`limit` None: all); `names`, when given, limits them to those names."""
        query = sa.select(datasets).order_by(datasets.c.name).limit(limit)
        if after is not None:
            query = query.where(datasets.c.name > after)
        if names is not None:
            query = query.where(datasets.c.name.in_(list(names)))
        if owner:
            query = query.where(datasets.c.owner == owner)
        if name_prefix:
            query = query.where(datasets.c.name.startswith(name_prefix, autoescape=True))
        if tag:
            tagged = sa.select(dataset_tags.c.dataset_id).where(dataset_tags.c.tag == tag)
            query = query.where(datasets.c.id.in_(tagged))
        return [self._dataset(row) for row in self._conn.execute(query).mappings()]

    def insert_dataset(self, record: DatasetRecord) -> None:
        self._conn.execute(datasets.insert().values(**self._dataset_row(record)))
        self._write_tags(record)

    def update_dataset(self, record: DatasetRecord) -> None:
        self._conn.execute(datasets.update().where(datasets.c.id == record.id).values(**self._dataset_row(record)))
        self._conn.execute(dataset_tags.delete().where(dataset_tags.c.dataset_id == record.id))
        self._write_tags(record)

    def delete_dataset(self, record: DatasetRecord) -> None:
        """Removes the dataset with its versions, tags, tombstones and derivations (receipts stay)."""
        self._conn.execute(dataset_versions.delete().where(dataset_versions.c.dataset_id == record.id))
        self._conn.execute(dataset_tags.delete().where(dataset_tags.c.dataset_id == record.id))
        self._conn.execute(tombstones.delete().where(tombstones.c.dataset == record.name))
        self._conn.execute(derivations.delete().where(derivations.c.dataset == record.name))
        self._conn.execute(datasets.delete().where(datasets.c.id == record.id))

    def lock_name(self, name: str) -> None:
        """Serialises creations of one table name, which datasets and views share, until commit.

        PostgreSQL takes an advisory lock; SQLite writers already hold the database's lock.
        """
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})

    # -- versions ------------------------------------------------------------------------------

    def insert_version(self, dataset_id: str, version: VersionRecord) -> None:
        self._conn.execute(
            dataset_versions.insert().values(
                dataset_id=dataset_id,
                version=version.version,
                table_version=version.table_version,
                operation=version.operation,
                row_count=version.row_count,
                size_bytes=version.size_bytes,
                files_json=json.dumps(list(version.files)),
                actor=version.actor,
                create_time_us=to_us(version.create_time),
                lineage_json=json.dumps(version.lineage.__dict__),
                fingerprint=version.fingerprint,
                content_sha256=version.content_sha256,
            )
        )

    def versions(
        self, dataset_id: str, before: int | None, limit: int, content_sha256: str = ""
    ) -> list[VersionRecord]:
        query = (
            sa.select(dataset_versions)
            .where(dataset_versions.c.dataset_id == dataset_id)
            .order_by(dataset_versions.c.version.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(dataset_versions.c.version < before)
        if content_sha256:
            query = query.where(dataset_versions.c.content_sha256 == content_sha256)
        return [self._version(row) for row in self._conn.execute(query).mappings()]

    def version(self, dataset_id: str, number: int) -> VersionRecord | None:
        query = sa.select(dataset_versions).where(
            dataset_versions.c.dataset_id == dataset_id, dataset_versions.c.version == number
        )
        row = self._conn.execute(query).mappings().first()
        return self._version(row) if row else None

    def version_with_content(self, dataset_id: str, content_sha256: str) -> VersionRecord | None:
        query = sa.select(dataset_versions).where(
            dataset_versions.c.dataset_id == dataset_id, dataset_versions.c.content_sha256 == content_sha256
        )
        row = self._conn.execute(query.limit(1)).mappings().first()
        return self._version(row) if row else None

    def last_table_version(self, dataset_id: str) -> int | None:
        query = sa.select(sa.func.max(dataset_versions.c.table_version)).where(
            dataset_versions.c.dataset_id == dataset_id
        )
        return self._conn.execute(query).scalar()

    # -- views ---------------------------------------------------------------------------------

    def view(self, name: str, *, for_update: bool = False, for_share: bool = False) -> ViewRecord | None:
        query = sa.select(views).where(views.c.name == name)
        if for_update or for_share:
            query = query.with_for_update(read=not for_update)
        row = self._conn.execute(query).mappings().first()
        return _view(row) if row else None

    def views(
        self, after: str | None, limit: int | None, base_dataset: str = "", names: Collection[str] | None = None
    ) -> list[ViewRecord]:
        """Views in name order (`limit` None: all); `names`, when given, limits them to those names."""
        query = sa.select(views).order_by(views.c.name).limit(limit)
        if after is not None:
            query = query.where(views.c.name > after)
        if base_dataset:
            query = query.where(views.c.base_dataset == base_dataset)
        if names is not None:
            query = query.where(views.c.name.in_(list(names)))
        return [_view(row) for row in self._conn.execute(query).mappings()]

    def views_over(self, dataset: str) -> list[str]:
        """Names of the views whose base is `dataset`."""
        query = sa.select(views.c.name).where(views.c.base_dataset == dataset).order_by(views.c.name)
        return list(self._conn.execute(query).scalars())

    def insert_view(self, record: ViewRecord) -> None:
        self._conn.execute(views.insert().values(**_view_row(record)))

    def update_view(self, record: ViewRecord) -> None:
        self._conn.execute(views.update().where(views.c.name == record.name).values(**_view_row(record)))

    def delete_view(self, name: str) -> None:
        self._conn.execute(views.delete().where(views.c.name == name))

    # -- profiles ------------------------------------------------------------------------------

    def profile(self, profile_id: str, *, for_update: bool = False) -> ProfileRecord | None:
        query = sa.select(profiles).where(profiles.c.id == profile_id)
        if for_update:
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().first()
        return self._profile(row) if row else None

    def profiles(self, after: str | None, limit: int, ids: Collection[str] | None = None) -> list[ProfileRecord]:
        query = sa.select(profiles).order_by(profiles.c.id).limit(limit)
        if after is not None:
            query = query.where(profiles.c.id > after)
        if ids is not None:
            query = query.where(profiles.c.id.in_(list(ids)))
        return [self._profile(row) for row in self._conn.execute(query).mappings()]

    def profiles_binding(self, kind: str, name: str) -> list[str]:
        """Ids of the profiles that bind `name` in their `kind` list."""
        query = (
            sa.select(profile_bindings.c.profile_id)
            .where(profile_bindings.c.kind == kind, profile_bindings.c.name == name)
            .order_by(profile_bindings.c.profile_id)
        )
        return list(self._conn.execute(query).scalars())

    def insert_profile(self, record: ProfileRecord) -> None:
        self._conn.execute(profiles.insert().values(**_profile_row(record)))
        self._write_bindings(record)

    def update_profile(self, record: ProfileRecord) -> None:
        self._conn.execute(profiles.update().where(profiles.c.id == record.id).values(**_profile_row(record)))
        self._conn.execute(profile_bindings.delete().where(profile_bindings.c.profile_id == record.id))
        self._write_bindings(record)

    def delete_profile(self, profile_id: str) -> None:
        self._conn.execute(profile_bindings.delete().where(profile_bindings.c.profile_id == profile_id))
        self._conn.execute(profiles.delete().where(profiles.c.id == profile_id))

    # -- policy revision -----------------------------------------------------------------------

    def policy_revision(self) -> int:
        """The current revision: one primary-key read."""
        return int(
            self._conn.execute(sa.select(policy_revision.c.revision).where(policy_revision.c.id == 1)).scalar_one()
        )

    def bump_policy_revision(self) -> None:
        self._conn.execute(
            policy_revision.update().where(policy_revision.c.id == 1).values(revision=policy_revision.c.revision + 1)
        )

    # -- tombstones ----------------------------------------------------------------------------

    def tombstone_key_column(self, dataset: str) -> str | None:
        """The key column every tombstone of `dataset` matches on; None when it has none."""
        query = sa.select(tombstones.c.key_column).where(tombstones.c.dataset == dataset).limit(1)
        return self._conn.execute(query).scalar()

    def insert_tombstones(
        self, dataset: str, key_column: str, keys: Sequence[str], erasure_id: str, now: datetime
    ) -> int:
        """Adds tombstones for the keys not yet hidden; returns how many were added."""
        existing = set(self._existing_tombstones(dataset, keys))
        fresh = [key for key in keys if key not in existing]
        if fresh:
            self._conn.execute(
                tombstones.insert(),
                [
                    {
                        "dataset": dataset,
                        "key_value": key,
                        "key_column": key_column,
                        "erasure_id": erasure_id,
                        "create_time_us": to_us(now),
                    }
                    for key in fresh
                ],
            )
        return len(fresh)

    def delete_tombstones(self, dataset: str, keys: Sequence[str]) -> int:
        """Lifts the tombstones of `keys`; returns how many there were."""
        removed = 0
        for chunk in _chunks(keys):
            result = self._conn.execute(
                tombstones.delete().where(tombstones.c.dataset == dataset, tombstones.c.key_value.in_(chunk))
            )
            removed += result.rowcount
        return removed

    def tombstones(self, dataset: str, after: str | None, limit: int) -> list[TombstoneRecord]:
        query = (
            sa.select(tombstones).where(tombstones.c.dataset == dataset).order_by(tombstones.c.key_value).limit(limit)
        )
        if after is not None:
            query = query.where(tombstones.c.key_value > after)
        return [
            TombstoneRecord(
                dataset=row["dataset"],
                key_column=row["key_column"],
                key_value=row["key_value"],
                erasure_id=row["erasure_id"],
                create_time=from_us(row["create_time_us"]),
            )
            for row in self._conn.execute(query).mappings()
        ]

    def hidden_keys(self, names: Collection[str] | None) -> dict[str, tuple[str, list[str]]]:
        """Dataset name -> (key column, hidden keys in key order) for the datasets with
        tombstones, all of them or those in `names`."""
        query = sa.select(tombstones.c.dataset, tombstones.c.key_column, tombstones.c.key_value).order_by(
            tombstones.c.dataset, tombstones.c.key_value
        )
        if names is not None:
            query = query.where(tombstones.c.dataset.in_(list(names)))
        hidden: dict[str, tuple[str, list[str]]] = {}
        for dataset, key_column, key_value in self._conn.execute(query):
            hidden.setdefault(dataset, (key_column, []))[1].append(key_value)
        return hidden

    def _existing_tombstones(self, dataset: str, keys: Sequence[str]) -> Iterator[str]:
        for chunk in _chunks(keys):
            query = sa.select(tombstones.c.key_value).where(
                tombstones.c.dataset == dataset, tombstones.c.key_value.in_(chunk)
            )
            yield from self._conn.execute(query).scalars()

    # -- erasure receipts ----------------------------------------------------------------------

    def insert_erasure(self, record: ErasureRecord) -> None:
        self._conn.execute(erasures.insert().values(**_erasure_row(record)))

    def update_erasure(self, record: ErasureRecord) -> None:
        self._conn.execute(erasures.update().where(erasures.c.id == record.id).values(**_erasure_row(record)))

    def erasure(self, erasure_id: str) -> ErasureRecord | None:
        row = self._conn.execute(sa.select(erasures).where(erasures.c.id == erasure_id)).mappings().first()
        return _erasure(row) if row else None

    def erasures(self, before: int | None, limit: int, dataset: str = "") -> list[ErasureRecord]:
        """Receipts newest first, those stored before sequence `before` when given."""
        query = sa.select(erasures).order_by(erasures.c.sequence.desc()).limit(limit)
        if before is not None:
            query = query.where(erasures.c.sequence < before)
        if dataset:
            query = query.where(erasures.c.dataset == dataset)
        return [_erasure(row) for row in self._conn.execute(query).mappings()]

    # -- derivations ---------------------------------------------------------------------------

    def derivation(self, dataset: str, kind: str, target: str) -> DerivationRecord | None:
        query = sa.select(derivations).where(
            derivations.c.dataset == dataset, derivations.c.kind == kind, derivations.c.target == target
        )
        row = self._conn.execute(query).mappings().first()
        return _derivation(row) if row else None

    def upsert_derivation(self, record: DerivationRecord, *, exists: bool) -> None:
        row = _derivation_row(record)
        if exists:
            key = (derivations.c.dataset == record.dataset, derivations.c.kind == record.kind)
            self._conn.execute(derivations.update().where(*key, derivations.c.target == record.target).values(**row))
        else:
            self._conn.execute(derivations.insert().values(**row))

    def delete_derivation(self, dataset: str, kind: str, target: str) -> None:
        self._conn.execute(
            derivations.delete().where(
                derivations.c.dataset == dataset, derivations.c.kind == kind, derivations.c.target == target
            )
        )

    def derivations(
        self, after: tuple[str, str, str] | None, limit: int | None, dataset: str = ""
    ) -> list[DerivationRecord]:
        """Derivations in (dataset, target, kind) order, after that key when given."""
        order = (derivations.c.dataset, derivations.c.target, derivations.c.kind)
        query = sa.select(derivations).order_by(*order).limit(limit)
        if after is not None:
            query = query.where(sa.tuple_(*order) > sa.tuple_(*after))
        if dataset:
            query = query.where(derivations.c.dataset == dataset)
        return [_derivation(row) for row in self._conn.execute(query).mappings()]

    # -- journal -------------------------------------------------------------------------------

    def append_event(
        self,
        time: datetime,
        actor: str,
        entity_type: str,
        entity: str,
        action: str,
        before: Any,
        after: Any,
        request_id: str,
    ) -> None:
        self._conn.execute(
            events.insert().values(
                time_us=to_us(time),
                actor=actor,
                entity_type=entity_type,
                entity=entity,
                action=action,
                before_json=json.dumps(before, sort_keys=True) if before is not None else "",
                after_json=json.dumps(after, sort_keys=True) if after is not None else "",
                request_id=request_id,
            )
        )

    def events(self, query: EventQuery) -> list[EventRecord]:
        select = (
            sa.select(events)
            .where(events.c.sequence > query.after_sequence)
            .order_by(events.c.sequence)
            .limit(query.limit)
        )
        if query.entity_type:
            select = select.where(events.c.entity_type == query.entity_type)
        if query.entity:
            select = select.where(events.c.entity == query.entity)
        if query.start is not None:
            select = select.where(events.c.time_us >= to_us(query.start))
        if query.end is not None:
            select = select.where(events.c.time_us < to_us(query.end))
        return [
            EventRecord(
                sequence=row["sequence"],
                time=from_us(row["time_us"]),
                actor=row["actor"],
                entity_type=row["entity_type"],
                entity=row["entity"],
                action=row["action"],
                before_json=row["before_json"],
                after_json=row["after_json"],
                request_id=row["request_id"],
            )
            for row in self._conn.execute(select).mappings()
        ]

    # -- row mapping ---------------------------------------------------------------------------

    def _write_bindings(self, record: ProfileRecord) -> None:
        rows = [
            {"profile_id": record.id, "kind": kind, "name": name, "position": i}
            for kind, names in record.bindings().items()
            for i, name in enumerate(names)
        ]
        if rows:
            self._conn.execute(profile_bindings.insert(), rows)

    def _profile(self, row: Any) -> ProfileRecord:
        query = (
            sa.select(profile_bindings.c.kind, profile_bindings.c.name)
            .where(profile_bindings.c.profile_id == row["id"])
            .order_by(profile_bindings.c.kind, profile_bindings.c.position)
        )
        bound: dict[str, list[str]] = {kind: [] for kind in BINDING_KINDS}
        for kind, name in self._conn.execute(query):
            bound.setdefault(kind, []).append(name)
        return ProfileRecord(
            id=row["id"],
            description=row["description"],
            default_chat_model=row["default_chat_model"],
            create_time=from_us(row["create_time_us"]),
            update_time=from_us(row["update_time_us"]),
            **{kind: tuple(bound[kind]) for kind in BINDING_KINDS},
        )

    def _write_tags(self, record: DatasetRecord) -> None:
        if record.tags:
            self._conn.execute(dataset_tags.insert(), [{"dataset_id": record.id, "tag": t} for t in record.tags])

    def _dataset(self, row: Any) -> DatasetRecord:
        tags = self._conn.execute(
            sa.select(dataset_tags.c.tag).where(dataset_tags.c.dataset_id == row["id"]).order_by(dataset_tags.c.tag)
        ).scalars()
        columns = tuple(ColumnRecord(**c | {"pii": tuple(c["pii"])}) for c in json.loads(row["columns_json"]))
        return DatasetRecord(
            id=row["id"],
            name=row["name"],
            bucket=row["bucket"],
            location=row["location"],
            schema_ipc=bytes(row["schema_ipc"]),
            fingerprint=row["fingerprint"],
            columns=columns,
            description=row["description"],
            owner=row["owner"],
            tags=tuple(tags),
            current_version=row["current_version"],
            row_count=row["row_count"],
            size_bytes=row["size_bytes"],
            create_time=from_us(row["create_time_us"]),
            update_time=from_us(row["update_time_us"]),
            table_version=row["table_version"],
        )

    @staticmethod
    def _dataset_row(record: DatasetRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": record.name,
            "bucket": record.bucket,
            "location": record.location,
            "schema_ipc": record.schema_ipc,
            "fingerprint": record.fingerprint,
            "columns_json": json.dumps([c.__dict__ | {"pii": list(c.pii)} for c in record.columns]),
            "description": record.description,
            "owner": record.owner,
            "current_version": record.current_version,
            "table_version": record.table_version,
            "row_count": record.row_count,
            "size_bytes": record.size_bytes,
            "create_time_us": to_us(record.create_time),
            "update_time_us": to_us(record.update_time),
        }

    @staticmethod
    def _version(row: Any) -> VersionRecord:
        return VersionRecord(
            version=row["version"],
            operation=row["operation"],
            row_count=row["row_count"],
            size_bytes=row["size_bytes"],
            files=tuple(json.loads(row["files_json"])),
            actor=row["actor"],
            create_time=from_us(row["create_time_us"]),
            lineage=LineageRecord(**json.loads(row["lineage_json"])),
            fingerprint=row["fingerprint"],
            content_sha256=row["content_sha256"],
            table_version=row["table_version"],
        )


def _view(row: Any) -> ViewRecord:
    return ViewRecord(
        name=row["name"],
        base_dataset=row["base_dataset"],
        columns=tuple(json.loads(row["columns_json"])),
        row_filter=row["row_filter"],
        redactions=tuple(RedactionRecord(**r) for r in json.loads(row["redactions_json"])),
        description=row["description"],
        owner=row["owner"],
        create_time=from_us(row["create_time_us"]),
        update_time=from_us(row["update_time_us"]),
    )


def _view_row(record: ViewRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "base_dataset": record.base_dataset,
        "columns_json": json.dumps(list(record.columns)),
        "row_filter": record.row_filter,
        "redactions_json": json.dumps([r.__dict__ for r in record.redactions]),
        "description": record.description,
        "owner": record.owner,
        "create_time_us": to_us(record.create_time),
        "update_time_us": to_us(record.update_time),
    }


def _profile_row(record: ProfileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "description": record.description,
        "default_chat_model": record.default_chat_model,
        "create_time_us": to_us(record.create_time),
        "update_time_us": to_us(record.update_time),
    }


def _erasure(row: Any) -> ErasureRecord:
    complete = row["complete_time_us"]
    return ErasureRecord(
        id=row["id"],
        dataset=row["dataset"],
        mode=row["mode"],
        actor=row["actor"],
        reason=row["reason"],
        key_column=row["key_column"],
        key_count=row["key_count"],
        version_before=row["version_before"],
        version_after=row["version_after"],
        rows_removed=row["rows_removed"],
        files_removed=row["files_removed"],
        downstream=tuple(DownstreamRecord(**d) for d in json.loads(row["downstream_json"])),
        state=row["state"],
        detail=row["detail"],
        start_time=from_us(row["start_time_us"]),
        complete_time=from_us(complete) if complete is not None else None,
        sequence=row["sequence"],
    )


def _erasure_row(record: ErasureRecord) -> dict[str, Any]:
    row = {
        k: v for k, v in record.__dict__.items() if k not in ("downstream", "start_time", "complete_time", "sequence")
    }
    return row | {
        "downstream_json": json.dumps([d.__dict__ for d in record.downstream]),
        "start_time_us": to_us(record.start_time),
        "complete_time_us": to_us(record.complete_time) if record.complete_time else None,
    }


def _derivation(row: Any) -> DerivationRecord:
    return DerivationRecord(
        dataset=row["dataset"],
        kind=row["kind"],
        target=row["target"],
        key_column=row["key_column"],
        dataset_version=row["dataset_version"],
        create_time=from_us(row["create_time_us"]),
        update_time=from_us(row["update_time_us"]),
    )


def _derivation_row(record: DerivationRecord) -> dict[str, Any]:
    return record.summary() | {
        "create_time_us": to_us(record.create_time),
        "update_time_us": to_us(record.update_time),
    }


# Keys per IN list: well under every backend's limit on bound parameters.
_CHUNK = 1000


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _is_unique_violation(exc: IntegrityError) -> bool:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23505" or getattr(orig, "sqlite_errorname", "") in (
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_CONSTRAINT_PRIMARYKEY",
    )


def _database_bug(exc: DBAPIError) -> CatalogDatabaseError:
    """Logs a refused statement by kind, SQL and stack only: driver messages can quote row values."""
    kind = type(exc.orig).__name__
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "sqlite_errorname", "")
    metrics.backend_error("database", kind)
    call = current_call()
    request_id = call.request_id if call else "-"
    log.error(
        "catalog database refused a statement: %s %s\n%s\n%s",
        kind,
        code,
        exc.statement,
        "".join(traceback.format_tb(exc.__traceback__)),
        extra={"request_id": request_id},
    )
    return CatalogDatabaseError(f"catalog database error ({kind}); quote request id {request_id} when reporting it")


def unique_tags(tags: Sequence[str]) -> tuple[str, ...]:
    """Tags de-duplicated and sorted, as stored."""
    return tuple(sorted(set(tags)))
