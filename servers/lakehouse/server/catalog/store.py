"""Catalog persistence with SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL by URL.

Every mutation and its audit event commit in one transaction, so the journal never disagrees
with the state it describes. The journal table refuses UPDATE and DELETE at the database level.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from lakehouse.server.catalog.errors import CatalogDatabaseError, ConcurrentChange
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


@dataclass(frozen=True)
class EventQuery:
    after_sequence: int
    limit: int
    entity_type: str = ""
    entity: str = ""
    start: datetime | None = None
    end: datetime | None = None


# Execution option marking a transaction that only reads (SQLite then begins it deferred).
_READ_ONLY = "lakehouse_read_only"


def create_catalog_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, full sync, a busy timeout and serialized writers.

    Statement parameters (lineage, descriptions) never appear in SQLAlchemy's errors or logs.
    """
    if not url.startswith("sqlite:///"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True)
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's legacy mode begins transactions only before DML, so reads ran outside
        # them; with the driver in autocommit, the "begin" hook below decides instead.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _switch_to_wal(cursor)
        for pragma in ("synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # A writer takes the write lock before its first read, so read-modify-write
        # transactions run one after another; readers keep WAL snapshots and never wait.
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cursor: Any, attempts: int = 100) -> None:
    """Turns on WAL. On a new file two processes opening it at once can get "database is locked"
    here without SQLite's busy handler waiting (the switch needs an exclusive lock), so retry."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


class CatalogStore:
    """Tables and queries; one `Tx` per unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

    def dataset(self, name_or_id: str, *, for_update: bool = False) -> DatasetRecord | None:
        """The dataset by name or id; `for_update` locks its row until the transaction ends.

        SQLite ignores the lock: there every writing transaction already holds the database's.
        """
        query = sa.select(datasets).where(sa.or_(datasets.c.name == name_or_id, datasets.c.id == name_or_id))
        if for_update:
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().first()
        return self._dataset(row) if row else None

    def datasets(self, after: str | None, limit: int, tag: str, owner: str, name_prefix: str) -> list[DatasetRecord]:
        query = sa.select(datasets).order_by(datasets.c.name).limit(limit)
        if after is not None:
            query = query.where(datasets.c.name > after)
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

    def delete_dataset(self, dataset_id: str) -> None:
        self._conn.execute(dataset_versions.delete().where(dataset_versions.c.dataset_id == dataset_id))
        self._conn.execute(dataset_tags.delete().where(dataset_tags.c.dataset_id == dataset_id))
        self._conn.execute(datasets.delete().where(datasets.c.id == dataset_id))

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
