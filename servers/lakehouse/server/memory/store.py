"""Memory persistence with SQLAlchemy Core: the catalog's database (SQLite WAL by default, PostgreSQL
by URL), in tables of its own.

Times are integer microseconds since the epoch, so ordering and paging compare plain integers on
both databases. Tags and metadata live in side tables so exact filters run in SQL. A trace row
carries `indexed`: false from the moment its content is written until its vector is known to be in
the namespace's collection, which is how a crash between the two is found and repaired on start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from lakehouse.server.common import database
from lakehouse.server.common.errors import Code, LakehouseError, Unavailable

metadata = sa.MetaData()

namespaces = sa.Table(
    "memory_namespaces",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("collection", sa.String(128), nullable=False),
    sa.Column("create_us", sa.BigInteger, nullable=False),
)

traces = sa.Table(
    "memory_traces",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), sa.ForeignKey("memory_namespaces.name"), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("replay_count", sa.BigInteger, nullable=False),
    sa.Column("retired", sa.Boolean, nullable=False),
    sa.Column("retire_reason", sa.Text, nullable=False),
    sa.Column("retire_us", sa.BigInteger),
    sa.Column("revises_id", sa.String(32), nullable=False),
    sa.Column("revised_by_id", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(512), nullable=False),
    # The explicit key, or "sha256:<content digest>" for an idempotent add without one; NULL otherwise.
    sa.Column("dedupe_key", sa.String(512)),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("create_us", sa.BigInteger, nullable=False),
    sa.Column("update_us", sa.BigInteger, nullable=False),
    sa.Column("indexed", sa.Boolean, nullable=False),
    sa.UniqueConstraint("namespace", "dedupe_key", name="uq_memory_traces_dedupe"),
    sa.Index("ix_memory_traces_listing", "namespace", "create_us", "id"),
    sa.Index("ix_memory_traces_unindexed", "indexed"),
)

trace_tags = sa.Table(
    "memory_trace_tags",
    metadata,
    sa.Column("trace_id", sa.String(32), sa.ForeignKey("memory_traces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("tag", sa.String(256), primary_key=True),
    sa.Index("ix_memory_trace_tags_tag", "tag"),
)

trace_metadata = sa.Table(
    "memory_trace_metadata",
    metadata,
    sa.Column("trace_id", sa.String(32), sa.ForeignKey("memory_traces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_memory_trace_metadata_key", "key"),
)

# Vectors whose trace was forgotten but which may still be in Milvus; cleared once deleted there.
orphan_vectors = sa.Table(
    "memory_orphan_vectors",
    metadata,
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
)

forget_receipts = sa.Table(
    "memory_forget_receipts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("receipt", sa.Text, nullable=False),
    sa.Column("create_us", sa.BigInteger, nullable=False),
)

playbook = sa.Table(
    "memory_playbook",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("namespace", sa.String(64), nullable=False),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("answer_collection", sa.String(128), nullable=False),
    sa.Column("answer_id", sa.String(512), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("role", sa.String(256), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("vector", sa.LargeBinary, nullable=False),
    sa.Column("create_us", sa.BigInteger, nullable=False),
    sa.Column("update_us", sa.BigInteger, nullable=False),
    sa.Index("ix_memory_playbook_listing", "namespace", "update_us", "id"),
)

SCHEMA_LOCK_KEY = 0x6D656D6F7279  # "memory": replicas creating tables at once take turns


def now_us() -> int:
    return time.time_ns() // 1000


# -- rows ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceRow:
    id: str
    namespace: str
    content: str
    metadata: Mapping[str, str]
    tags: tuple[str, ...]
    version: int
    replay_count: int
    retired: bool
    retire_reason: str
    retire_us: int | None
    revises_id: str
    revised_by_id: str
    idempotency_key: str
    content_sha256: str
    create_us: int
    update_us: int
    indexed: bool = False


@dataclass(frozen=True)
class PlaybookRow:
    id: str
    namespace: str
    query: str
    answer_collection: str
    answer_id: str
    score: float
    role: str
    tags: tuple[str, ...]
    model: str
    vector: np.ndarray = field(repr=False)
    create_us: int
    update_us: int


@dataclass(frozen=True)
class Filter:
    """Exact conditions on traces (TraceFilter)."""

    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_after_us: int | None = None
    created_before_us: int | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.tags or self.metadata or self.created_after_us is not None or self.created_before_us is not None
        )


@dataclass(frozen=True)
class Visibility:
    """Which traces a listing or search shows besides active chain heads."""

    include_retired: bool = False
    include_superseded: bool = False


def _trace(row: Any) -> TraceRow:
    return TraceRow(
        id=row.id,
        namespace=row.namespace,
        content=row.content,
        metadata=json.loads(row.metadata),
        tags=tuple(json.loads(row.tags)),
        version=row.version,
        replay_count=row.replay_count,
        retired=bool(row.retired),
        retire_reason=row.retire_reason,
        retire_us=row.retire_us,
        revises_id=row.revises_id,
        revised_by_id=row.revised_by_id,
        idempotency_key=row.idempotency_key,
        content_sha256=row.content_sha256,
        create_us=row.create_us,
        update_us=row.update_us,
        indexed=bool(row.indexed),
    )


def _playbook(row: Any) -> PlaybookRow:
    return PlaybookRow(
        id=row.id,
        namespace=row.namespace,
        query=row.query,
        answer_collection=row.answer_collection,
        answer_id=row.answer_id,
        score=row.score,
        role=row.role,
        tags=tuple(json.loads(row.tags)),
        model=row.model,
        vector=np.frombuffer(row.vector, dtype=np.float32),
        create_us=row.create_us,
        update_us=row.update_us,
    )


# -- engine ----------------------------------------------------------------------------------------

_READ_ONLY = database.READ_ONLY


def create_memory_engine(url: str) -> Engine:
    """Memory's engine (see common.database.create_engine)."""
    return database.create_engine(url, max_overflow=10)


class DuplicateKey(LakehouseError):
    """A concurrent add inserted the same idempotency key (or namespace) first; the caller retries
    once, as a replay."""

    code = Code.ABORTED


class MemoryStore:
    """Tables and queries. Every method is blocking: call it through the BlockingExecutor."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        with self._connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            metadata.create_all(conn)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _connect(self, read_only: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.execution_options(**{_READ_ONLY: read_only}).begin():
                yield conn
        except OperationalError as exc:
            raise Unavailable(
                f"memory database unavailable: {exc.orig.__class__.__name__}",
                reason="DATABASE_UNAVAILABLE",
                retry_after_s=1.0,
            ) from None
        except IntegrityError:
            raise DuplicateKey(
                "a concurrent request wrote the same key first; retry", reason="CONCURRENT_CHANGE"
            ) from None
        except DBAPIError as exc:
            raise LakehouseError(f"memory database error: {exc.orig.__class__.__name__}") from None

    # -- namespaces ----------------------------------------------------------------------------

    def namespaces(self) -> dict[str, str]:
        """Every namespace with its collection."""
        with self._connect(read_only=True) as conn:
            return {r.name: r.collection for r in conn.execute(sa.select(namespaces))}

    def collection_of(self, name: str) -> str | None:
        with self._connect(read_only=True) as conn:
            return conn.execute(sa.select(namespaces.c.collection).where(namespaces.c.name == name)).scalar()

    # -- traces --------------------------------------------------------------------------------

    def add(self, row: TraceRow, collection: str, dedupe_key: str | None) -> tuple[TraceRow, bool]:
        """Inserts `row`, or replays the trace holding `dedupe_key` (its replay count incremented).

        Returns the trace and whether it was a replay. The caller compares content hashes.
        """
        with self._connect() as conn:
            if dedupe_key is not None:
                found = conn.execute(
                    sa.select(traces).where(traces.c.namespace == row.namespace, traces.c.dedupe_key == dedupe_key)
                ).first()
                if found is not None:
                    existing = _trace(found)
                    if existing.content_sha256 != row.content_sha256:
                        return existing, True  # the caller refuses the conflicting key
                    conn.execute(
                        traces.update()
                        .where(traces.c.id == existing.id)
                        .values(replay_count=traces.c.replay_count + 1, update_us=row.update_us)
                    )
                    return _trace(conn.execute(sa.select(traces).where(traces.c.id == existing.id)).one()), True
            if conn.execute(sa.select(namespaces.c.name).where(namespaces.c.name == row.namespace)).first() is None:
                conn.execute(
                    namespaces.insert().values(name=row.namespace, collection=collection, create_us=row.create_us)
                )
            self._insert(conn, row, dedupe_key)
            return row, False

    @staticmethod
    def _insert(conn: Connection, row: TraceRow, dedupe_key: str | None) -> None:
        conn.execute(
            traces.insert().values(
                id=row.id,
                namespace=row.namespace,
                content=row.content,
                metadata=json.dumps(dict(row.metadata), sort_keys=True),
                tags=json.dumps(list(row.tags)),
                version=row.version,
                replay_count=row.replay_count,
                retired=row.retired,
                retire_reason=row.retire_reason,
                retire_us=row.retire_us,
                revises_id=row.revises_id,
                revised_by_id=row.revised_by_id,
                idempotency_key=row.idempotency_key,
                dedupe_key=dedupe_key,
                content_sha256=row.content_sha256,
                create_us=row.create_us,
                update_us=row.update_us,
                indexed=False,
            )
        )
        _write_labels(conn, row)

    def get(self, trace_id: str) -> TraceRow | None:
        with self._connect(read_only=True) as conn:
            found = conn.execute(sa.select(traces).where(traces.c.id == trace_id)).first()
            return _trace(found) if found is not None else None

    def get_many(self, ids: Sequence[str]) -> dict[str, TraceRow]:
        out: dict[str, TraceRow] = {}
        with self._connect(read_only=True) as conn:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                out.update({r.id: _trace(r) for r in conn.execute(sa.select(traces).where(traces.c.id.in_(chunk)))})
        return out

    def update(
        self,
        trace_id: str,
        changes: Mapping[str, Any],
        check: Any,
    ) -> TraceRow:
        """Applies `changes` (content, metadata, tags) after `check(current)` accepted the trace;
        bumps the version. A content change marks the vector as missing until it is rewritten."""
        with self._connect() as conn:
            found = conn.execute(sa.select(traces).where(traces.c.id == trace_id)).first()
            current = check(_trace(found) if found is not None else None)
            values: dict[str, Any] = {"version": current.version + 1, "update_us": now_us()}
            if "content" in changes:
                values |= {"content": changes["content"], "content_sha256": changes["content_sha256"], "indexed": False}
            if "metadata" in changes:
                values["metadata"] = json.dumps(dict(changes["metadata"]), sort_keys=True)
            if "tags" in changes:
                values["tags"] = json.dumps(list(changes["tags"]))
            conn.execute(traces.update().where(traces.c.id == trace_id).values(**values))
            after = _trace(conn.execute(sa.select(traces).where(traces.c.id == trace_id)).one())
            if "metadata" in changes or "tags" in changes:
                conn.execute(trace_tags.delete().where(trace_tags.c.trace_id == trace_id))
                conn.execute(trace_metadata.delete().where(trace_metadata.c.trace_id == trace_id))
                _write_labels(conn, after)
            return after

    def revise(self, trace_id: str, build: Any) -> tuple[TraceRow, TraceRow]:
        """Inserts the trace `build` makes from the current predecessor, and links the two."""
        with self._connect() as conn:
            found = conn.execute(sa.select(traces).where(traces.c.id == trace_id)).first()
            row = build(_trace(found) if found is not None else None)
            conn.execute(
                traces.update().where(traces.c.id == trace_id).values(revised_by_id=row.id, update_us=row.create_us)
            )
            self._insert(conn, row, None)
            before = _trace(conn.execute(sa.select(traces).where(traces.c.id == trace_id)).one())
            return row, before

    def retire(self, trace_id: str, reason: str, check: Any) -> TraceRow:
        with self._connect() as conn:
            found = conn.execute(sa.select(traces).where(traces.c.id == trace_id)).first()
            current: TraceRow = check(_trace(found) if found is not None else None)
            if not current.retired:
                stamp = now_us()
                conn.execute(
                    traces.update()
                    .where(traces.c.id == trace_id)
                    .values(retired=True, retire_reason=reason, retire_us=stamp, update_us=stamp)
                )
            return _trace(conn.execute(sa.select(traces).where(traces.c.id == trace_id)).one())

    def history(self, trace_id: str, max_depth: int) -> tuple[list[TraceRow], bool]:
        """The trace, then its predecessors; stops at a repeat (a cycle) or at `max_depth`."""
        out: list[TraceRow] = []
        seen: set[str] = set()
        with self._connect(read_only=True) as conn:
            next_id = trace_id
            while next_id:
                if next_id in seen or len(out) >= max_depth:
                    return out, True
                found = conn.execute(sa.select(traces).where(traces.c.id == next_id)).first()
                if found is None:  # the chain was cut (should not happen: chains are forgotten whole)
                    return out, False
                seen.add(next_id)
                out.append(_trace(found))
                next_id = found.revises_id
        return out, False

    def list_traces(
        self,
        namespace: str,
        limit: int,
        after: tuple[int, str] | None,
        where: Filter,
        visibility: Visibility,
    ) -> list[TraceRow]:
        """Newest first: (create_us, id) descending, continuing after `after`."""
        query = sa.select(traces).where(traces.c.namespace == namespace, *_conditions(where, visibility))
        if after is not None:
            query = query.where(sa.tuple_(traces.c.create_us, traces.c.id) < sa.tuple_(*after))
        query = query.order_by(traces.c.create_us.desc(), traces.c.id.desc()).limit(limit)
        with self._connect(read_only=True) as conn:
            return [_trace(r) for r in conn.execute(query)]

    def matching_ids(self, names: Sequence[str], where: Filter, visibility: Visibility, limit: int) -> list[str]:
        query = (
            sa.select(traces.c.id)
            .where(traces.c.namespace.in_(list(names)), *_conditions(where, visibility))
            .limit(limit)
        )
        with self._connect(read_only=True) as conn:
            return [r.id for r in conn.execute(query)]

    def scan(self, namespace: str, after: str, limit: int) -> list[TraceRow]:
        """The namespace's traces in id order, after `after`."""
        query = (
            sa.select(traces)
            .where(traces.c.namespace == namespace, traces.c.id > after)
            .order_by(traces.c.id)
            .limit(limit)
        )
        with self._connect(read_only=True) as conn:
            return [_trace(r) for r in conn.execute(query)]

    def count(self, namespace: str) -> int:
        with self._connect(read_only=True) as conn:
            query = sa.select(sa.func.count()).select_from(traces).where(traces.c.namespace == namespace)
            return int(conn.execute(query).scalar_one())

    def mark_indexed(self, versions: Iterable[tuple[str, int]]) -> None:
        """Records that these (id, version) vectors are in Milvus; a newer version stays unindexed."""
        pairs = list(versions)
        if not pairs:
            return
        with self._connect() as conn:
            statement = (
                traces.update()
                .where(traces.c.id == sa.bindparam("tid"), traces.c.version == sa.bindparam("tversion"))
                .values(indexed=True)
            )
            conn.execute(statement, [{"tid": i, "tversion": v} for i, v in pairs])

    def mark_unindexed(self, namespace: str) -> int:
        """Every vector of the namespace is missing (its collection was lost)."""
        with self._connect() as conn:
            done = conn.execute(traces.update().where(traces.c.namespace == namespace).values(indexed=False))
            return int(done.rowcount or 0)

    # -- forgetting ----------------------------------------------------------------------------

    def select_for_forget(
        self,
        ids: Sequence[str],
        namespace: str | None,
        where: Filter | None,
        source: tuple[str, Sequence[str], Sequence[str]] | None,
    ) -> tuple[list[TraceRow], int]:
        """The matched traces and how many requested ids were not found in `namespace`."""
        with self._connect(read_only=True) as conn:
            if ids:
                found = [
                    _trace(r)
                    for r in conn.execute(
                        sa.select(traces).where(traces.c.id.in_(list(ids)), traces.c.namespace == namespace)
                    )
                ]
                return found, len(set(ids)) - len(found)
            if where is not None and namespace is not None:
                query = sa.select(traces).where(
                    traces.c.namespace == namespace, *_conditions(where, Visibility(True, True))
                )
                return [_trace(r) for r in conn.execute(query)], 0
            assert source is not None
            dataset, keys, names = source
            key = trace_metadata.alias("k")
            query = (
                sa.select(traces)
                .join(trace_metadata, trace_metadata.c.trace_id == traces.c.id)
                .join(key, key.c.trace_id == traces.c.id)
                .where(
                    trace_metadata.c.key == "source_dataset",
                    trace_metadata.c.value == dataset,
                    key.c.key == "source_key",
                    key.c.value.in_(list(keys)),
                )
            )
            if names:
                query = query.where(traces.c.namespace.in_(list(names)))
            return [_trace(r) for r in conn.execute(query)], 0

    def chains_of(self, matched: Sequence[TraceRow]) -> list[TraceRow]:
        """The matched traces with every trace linked to them by revision, either way."""
        with self._connect(read_only=True) as conn:
            seen = {t.id: t for t in matched}
            frontier = [i for t in matched for i in (t.revises_id, t.revised_by_id) if i]
            while frontier:
                wanted = [i for i in dict.fromkeys(frontier) if i not in seen]
                frontier = []
                if not wanted:
                    break
                for row in conn.execute(sa.select(traces).where(traces.c.id.in_(wanted))):
                    trace = _trace(row)
                    seen[trace.id] = trace
                    frontier += [i for i in (trace.revises_id, trace.revised_by_id) if i and i not in seen]
            return list(seen.values())

    def forget(self, doomed: Sequence[TraceRow], receipt_id: str | None, receipt: Mapping[str, Any] | None) -> None:
        """Deletes the rows and keeps their ids as orphan vectors until Milvus has dropped them;
        stores the receipt when there is one (an add undone for a failed vector has none)."""
        ids = [t.id for t in doomed]
        with self._connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(trace_tags.delete().where(trace_tags.c.trace_id.in_(chunk)))
                conn.execute(trace_metadata.delete().where(trace_metadata.c.trace_id.in_(chunk)))
                conn.execute(traces.delete().where(traces.c.id.in_(chunk)))
            if doomed:
                present = {
                    r.trace_id
                    for r in conn.execute(
                        sa.select(orphan_vectors.c.trace_id).where(orphan_vectors.c.trace_id.in_(ids))
                    )
                }
                rows = [{"trace_id": t.id, "namespace": t.namespace} for t in doomed if t.id not in present]
                if rows:
                    conn.execute(orphan_vectors.insert(), rows)
            if receipt_id is not None:
                conn.execute(
                    forget_receipts.insert().values(id=receipt_id, receipt=json.dumps(receipt), create_us=now_us())
                )

    def orphans(self, namespace: str) -> list[str]:
        with self._connect(read_only=True) as conn:
            query = sa.select(orphan_vectors.c.trace_id).where(orphan_vectors.c.namespace == namespace)
            return [r.trace_id for r in conn.execute(query)]

    def clear_orphans(self, ids: Sequence[str]) -> None:
        with self._connect() as conn:
            for start in range(0, len(ids), 500):
                conn.execute(
                    orphan_vectors.delete().where(orphan_vectors.c.trace_id.in_(list(ids[start : start + 500])))
                )

    # -- playbook ------------------------------------------------------------------------------

    def record_playbook(self, rows: Sequence[PlaybookRow]) -> list[tuple[PlaybookRow, bool]]:
        """Inserts or updates each entry in order (the last of the same id wins); returns each
        entry as stored and whether it was created."""
        out = []
        with self._connect() as conn:
            for row in rows:
                found = conn.execute(sa.select(playbook.c.create_us).where(playbook.c.id == row.id)).first()
                values = {
                    "namespace": row.namespace,
                    "query": row.query,
                    "answer_collection": row.answer_collection,
                    "answer_id": row.answer_id,
                    "score": row.score,
                    "role": row.role,
                    "tags": json.dumps(list(row.tags)),
                    "model": row.model,
                    "vector": np.asarray(row.vector, dtype=np.float32).tobytes(),
                    "update_us": row.update_us,
                }
                if found is None:
                    conn.execute(playbook.insert().values(id=row.id, create_us=row.create_us, **values))
                    out.append((row, True))
                else:
                    conn.execute(playbook.update().where(playbook.c.id == row.id).values(**values))
                    out.append((_replace_create(row, found.create_us), False))
        return out

    def playbook_entries(self) -> list[PlaybookRow]:
        with self._connect(read_only=True) as conn:
            return [_playbook(r) for r in conn.execute(sa.select(playbook))]

    def get_playbook(self, entry_id: str) -> PlaybookRow | None:
        with self._connect(read_only=True) as conn:
            found = conn.execute(sa.select(playbook).where(playbook.c.id == entry_id)).first()
            return _playbook(found) if found is not None else None

    def list_playbook(
        self, namespace: str, limit: int, after: tuple[int, str] | None, role: str | None, collection: str
    ) -> list[PlaybookRow]:
        query = sa.select(playbook).where(playbook.c.namespace == namespace)
        if role is not None:
            query = query.where(playbook.c.role == role)
        if collection:
            query = query.where(playbook.c.answer_collection == collection)
        if after is not None:
            query = query.where(sa.tuple_(playbook.c.update_us, playbook.c.id) < sa.tuple_(*after))
        query = query.order_by(playbook.c.update_us.desc(), playbook.c.id.desc()).limit(limit)
        with self._connect(read_only=True) as conn:
            return [_playbook(r) for r in conn.execute(query)]

    def delete_playbook(self, entry_id: str) -> bool:
        with self._connect() as conn:
            return bool(conn.execute(playbook.delete().where(playbook.c.id == entry_id)).rowcount)


def _replace_create(row: PlaybookRow, create_us: int) -> PlaybookRow:
    return replace(row, create_us=create_us)


def _write_labels(conn: Connection, row: TraceRow) -> None:
    if row.tags:
        conn.execute(trace_tags.insert(), [{"trace_id": row.id, "tag": t} for t in row.tags])
    if row.metadata:
        conn.execute(
            trace_metadata.insert(), [{"trace_id": row.id, "key": k, "value": v} for k, v in row.metadata.items()]
        )


def _conditions(where: Filter, visibility: Visibility) -> list[Any]:
    out: list[Any] = []
    if not visibility.include_retired:
        out.append(traces.c.retired.is_(False))
    if not visibility.include_superseded:
        out.append(traces.c.revised_by_id == "")
    for tag in where.tags:
        out.append(sa.exists().where(trace_tags.c.trace_id == traces.c.id, trace_tags.c.tag == tag))
    for key, value in where.metadata.items():
        out.append(
            sa.exists().where(
                trace_metadata.c.trace_id == traces.c.id, trace_metadata.c.key == key, trace_metadata.c.value == value
            )
        )
    if where.created_after_us is not None:
        out.append(traces.c.create_us >= where.created_after_us)
    if where.created_before_us is not None:
        out.append(traces.c.create_us < where.created_before_us)
    return out
