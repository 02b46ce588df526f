"""Memory domain: namespaced, versioned traces found by meaning, and the playbook. No grpc here.

Each namespace is backed by one vector collection (`collection_name`), written through the vector
service. Adding a trace writes its row first (durable when the call returns), then its vector; the
row carries `indexed` until the vector is confirmed, so a crash between the two leaves a row that
the start-up repair (and Reindex) re-embeds. A vector that fails to write undoes the row, so the
caller's retry starts clean. Search asks the vector service for the nearest ids and reads the
traces themselves from the database, so retirement, revisions, filters and forgetting apply at
once, without rewriting vectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np

from lakehouse.server.common.config import MemoryConfig
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    LakehouseError,
    NotFound,
    PermissionDenied,
    Unavailable,
    invalid_field,
)
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.leases import LeasedPolicies
from lakehouse.server.common.paging import Page, encode_token
from lakehouse.server.common.roles import require_admin
from lakehouse.server.memory.errors import Aborted
from lakehouse.server.memory.gateways import AnswerCollections, MemoryPolicy, Policies, VectorHit, Vectors
from lakehouse.server.memory.playbook import PlaybookIndex
from lakehouse.server.memory.store import (
    DuplicateKey,
    Filter,
    MemoryStore,
    PlaybookRow,
    TraceRow,
    Visibility,
    now_us,
)

log = logging.getLogger("lakehouse.memory")
P = ParamSpec("P")
T = TypeVar("T")

NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
DEFAULT_LIST = 50
MAX_LIST = 1000
DEFAULT_K = 10
MAX_K = 1000
MAX_BACKEND_K = 1024
"""The most candidates one vector search returns (the vector service's max_k default)."""
DEFAULT_DEPTH = 100
MAX_IDS = 1000
MAX_BATCH = 1000
MAX_LABEL = 256
MAX_LABELS = 64
MAX_KEY = 512
DEFAULT_LOOKUP_DISTANCE = 0.5
REINDEX_BATCH = 256
HEAL_ATTEMPTS = 30
HEAL_RETRY_S = 2.0
FAILPOINT_ENV = "LAKEHOUSE_MEMORY_FAILPOINT"
"""Test-only: "after_trace_row" makes the process exit right after an AddTrace row is committed and
before its vector is written, so the crash-repair path can be exercised against a real process."""


def collection_name(namespace: str) -> str:
    """The vector collection of a namespace: readable, a valid collection name ('-' is not), and
    distinct for every namespace (the digest tells "a-b" from "a_b")."""
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:8]
    return f"memory_{namespace.replace('-', '_')}_{digest}"


def playbook_entry_id(namespace: str, query: str, collection: str, answer_id: str) -> str:
    key = "\x00".join((namespace, query, collection, answer_id))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def content_digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


# -- requests and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTrace:
    namespace: str
    content: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    idempotency_key: str = ""
    idempotent: bool = False


@dataclass(frozen=True)
class TraceChange:
    namespace: str
    id: str
    paths: Sequence[str]
    content: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Sequence[str] = ()
    expected_version: int | None = None


@dataclass(frozen=True)
class TraceQuery:
    namespaces: Sequence[str]
    query: str
    k: int = 0
    filter: Filter = field(default_factory=Filter)
    visibility: Visibility = field(default_factory=Visibility)
    max_distance: float | None = None


@dataclass(frozen=True)
class Selector:
    """ForgetTraces' selector: exactly one of ids, filter, source rows."""

    kind: Literal["ids", "filter", "source_rows", ""]
    namespace: str = ""
    ids: Sequence[str] = ()
    filter: Filter = field(default_factory=Filter)
    dataset: str = ""
    keys: Sequence[str] = ()
    namespaces: Sequence[str] = ()


@dataclass(frozen=True)
class NamespaceCount:
    namespace: str
    traces_deleted: int
    vectors_deleted: int


@dataclass(frozen=True)
class ForgetReceipt:
    id: str
    actor: str
    reason: str
    erasure_id: str
    dry_run: bool
    traces_matched: int
    traces_not_found: int
    traces_deleted: int
    vectors_deleted: int
    namespaces: tuple[NamespaceCount, ...]
    start_us: int
    complete_us: int

    def summary(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "reason": self.reason,
            "erasure_id": self.erasure_id,
            "dry_run": self.dry_run,
            "traces_matched": self.traces_matched,
            "traces_not_found": self.traces_not_found,
            "traces_deleted": self.traces_deleted,
            "vectors_deleted": self.vectors_deleted,
            "namespaces": [vars(n) for n in self.namespaces],
            "start_us": self.start_us,
            "complete_us": self.complete_us,
        }


@dataclass(frozen=True)
class ReindexProgress:
    namespace: str
    traces_done: int
    traces_total: int
    elapsed_s: float


@dataclass(frozen=True)
class ReindexSummary:
    namespaces: tuple[str, ...]
    traces_scanned: int
    vectors_written: int
    orphan_vectors_removed: int
    collections_created: int
    elapsed_s: float


@dataclass(frozen=True)
class PlaybookIn:
    namespace: str
    query: str
    answer_collection: str
    answer_id: str
    score: float
    role: str = ""
    tags: Sequence[str] = ()


@dataclass(frozen=True)
class Recorded:
    """One RecordPlaybook outcome: the entry, or the error it would have failed with alone."""

    entry: PlaybookRow | None
    created: bool
    error: LakehouseError | None = None


@dataclass(frozen=True)
class PlaybookQuery:
    namespace: str
    text: str | None
    vector: Sequence[float] | None
    max_distance: float | None = None
    role: str = ""
    exclude_answer_ids: Sequence[str] = ()
    answer_collections: Sequence[str] = ()
    k: int = 0


# -- the service -----------------------------------------------------------------------------------


class IndexMarks:
    """Records vectors known to be written, in batches: one transaction per burst of adds rather than
    one per add. A mark lost to a crash only makes the start-up repair rewrite an existing vector."""

    def __init__(self, run: Callable[..., Any], store: MemoryStore, interval_s: float = 0.05) -> None:
        self._run = run
        self._store = store
        self._interval_s = interval_s
        self._pending: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, marks: Sequence[tuple[str, int]]) -> None:
        self._pending += marks
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_soon(), name="lakehouse-memory-marks")

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._interval_s)
        await self.flush()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._run(self._store.mark_indexed, batch)
            except LakehouseError as exc:  # the database is down: the repair will rewrite these vectors
                log.warning("could not record %d written vectors: %s", len(batch), exc.message)
                return

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class VectorWrites:
    """Coalesces concurrent vector writes of a namespace into one UpsertVectors call.

    The vector service flushes Milvus after every upsert call, and one call embeds its texts as
    one batch: adds that arrive while a write to their namespace is in flight wait for it to
    finish and then go together, so concurrent adds share a flush. A lone add goes at once.
    """

    def __init__(self, write: Callable[[str, list[TraceRow]], Awaitable[int]], batch: int = REINDEX_BATCH) -> None:
        self._write = write
        self._batch = batch
        self._pending: dict[str, list[tuple[list[TraceRow], asyncio.Future[int]]]] = {}
        self._draining: set[str] = set()

    async def write(self, namespace: str, rows: Sequence[TraceRow]) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(namespace, []).append((list(rows), done))
        if namespace not in self._draining:
            self._draining.add(namespace)
            asyncio.get_running_loop().create_task(self._drain(namespace), name="lakehouse-memory-vectors")
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            # The caller is undoing its add: let the write in flight land first, so the undo's
            # delete comes after it and no vector outlives its row.
            with contextlib.suppress(BaseException):
                await done
            raise

    async def _drain(self, namespace: str) -> None:
        try:
            while self._pending.get(namespace):
                waiting = self._pending[namespace]
                taken, size = 0, 0
                while taken < len(waiting) and (size == 0 or size + len(waiting[taken][0]) <= self._batch):
                    size += len(waiting[taken][0])
                    taken += 1
                group, self._pending[namespace] = waiting[:taken], waiting[taken:]
                try:
                    await self._write(namespace, [row for rows, _ in group for row in rows])
                except BaseException as exc:
                    for _, done in group:
                        if not done.done():
                            done.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for rows, done in group:
                        if not done.done():
                            done.set_result(len(rows))
        finally:
            # No await since the loop saw the queue empty: nothing can have been queued meanwhile.
            self._draining.discard(namespace)
            if not self._pending.get(namespace):
                self._pending.pop(namespace, None)


class MemoryService:
    """Traces and the playbook over a `MemoryStore`, their vectors in the vector service."""

    def __init__(
        self,
        config: MemoryConfig,
        store: MemoryStore,
        executor: BlockingExecutor,
        vectors: Vectors,
        policies: Policies,
        collections: AnswerCollections,
        failpoint: str = "",
    ) -> None:
        self._config = config
        self._store = store
        self._executor = executor
        self._vectors = vectors
        self._policies = LeasedPolicies(policies.access_policy)
        self._collections = collections
        self._failpoint = failpoint
        self._ready: set[str] = set()
        """Collections known to exist."""
        self._answer_collections: dict[str, float] = {}
        """Answer collections seen to exist, with when they were seen."""
        self._marks = IndexMarks(self._run, store)
        self._writes = VectorWrites(self._upsert)
        self.playbook = PlaybookIndex()
        self._reindexing = asyncio.Lock()
        self._healing: set[str] = set()
        self._namespaces: dict[str, str] = {}
        """Namespaces known to exist, with their collections."""
        self._tasks: set[asyncio.Task[None]] = set()

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._executor.run(fn, *args, **kwargs)

    async def open(self) -> None:
        """Creates missing tables and loads the playbook's vectors."""
        await self._run(self._store.create_schema)
        self.playbook.load(await self._run(self._store.playbook_entries))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._marks.close()

    def heal_later(self, namespace: str) -> None:
        """Repairs a namespace's vectors in the background (missing vectors rewritten, orphans
        deleted), retrying while the vector service cannot answer."""
        if namespace in self._healing:
            return
        self._healing.add(namespace)
        task = asyncio.get_running_loop().create_task(self._heal(namespace), name="lakehouse-memory-heal")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heal(self, namespace: str) -> None:
        try:
            for _ in range(HEAL_ATTEMPTS):
                try:
                    async with self._reindexing:
                        async for _event in self._rebuild([namespace], full=False):
                            pass
                    return
                except LakehouseError as exc:
                    log.warning("repairing the vectors of namespace %s failed (%s); retrying", namespace, exc.message)
                    await asyncio.sleep(HEAL_RETRY_S)
            log.error("gave up repairing the vectors of namespace %s: run Reindex", namespace)
        finally:
            self._healing.discard(namespace)

    async def _write_vectors_or_heal(self, namespace: str, rows: Sequence[TraceRow]) -> None:
        """Writes the vectors of rows already committed; a failure is repaired in the background
        (the row is the truth: searches show the previous vector until then)."""
        try:
            await self._write_vectors(namespace, rows)
        except LakehouseError as exc:
            log.warning(
                "could not write %d vectors of namespace %s (%s); repairing later", len(rows), namespace, exc.message
            )
            self.heal_later(namespace)

    # -- the caller's profile -----------------------------------------------------------------

    async def policy(self) -> MemoryPolicy:
        return await self._policies.get()

    async def require_namespace(self, namespace: str, field: str = "namespace") -> None:
        check_namespace(namespace, field)
        policy = await self.policy()
        if policy.restricted and namespace not in policy.memory_namespaces:
            allowed = _listed(policy.memory_namespaces)
            raise PermissionDenied(
                f"{field}: memory namespace {namespace!r} is not bound to profile {policy.profile!r}; "
                f"namespaces you may use: {allowed}",
                reason="NAMESPACE_NOT_ALLOWED",
                metadata={"namespace": namespace[:200], "profile": policy.profile, "allowed": allowed[:900]},
            )

    # -- traces -------------------------------------------------------------------------------

    async def add(self, new: NewTrace) -> tuple[TraceRow, bool]:
        await self.require_namespace(new.namespace)
        content = self._check_content(new.content, "content")
        metadata = check_metadata(new.metadata, "metadata")
        tags = check_tags(new.tags, "tags")
        key = check_label(new.idempotency_key, "idempotency_key", MAX_KEY)
        digest = content_digest(content)
        dedupe = key or (f"sha256:{digest}" if new.idempotent else None)
        stamp = now_us()
        row = TraceRow(
            id=uuid.uuid4().hex,
            namespace=new.namespace,
            content=content,
            metadata=metadata,
            tags=tags,
            version=1,
            replay_count=0,
            retired=False,
            retire_reason="",
            retire_us=None,
            revises_id="",
            revised_by_id="",
            idempotency_key=key,
            content_sha256=digest,
            create_us=stamp,
            update_us=stamp,
        )
        try:
            stored, replayed = await self._run(self._store.add, row, collection_name(new.namespace), dedupe)
        except DuplicateKey:  # a concurrent add with the same key won: this one is its replay
            stored, replayed = await self._run(self._store.add, row, collection_name(new.namespace), dedupe)
        if replayed and stored.content_sha256 != digest:
            raise AlreadyExists(
                f"idempotency_key: {key!r} was used for trace {stored.id} with different content; "
                "use a new key for new content",
                reason="IDEMPOTENCY_KEY_CONFLICT",
                metadata={"trace_id": stored.id},
            )
        if not replayed:
            if self._failpoint == "after_trace_row":
                log.error("failpoint %s: exiting between the trace row and its vector", self._failpoint)
                os._exit(137)
            await self._write_vectors_or_undo(stored)
        return stored, replayed

    async def _write_vectors_or_undo(self, row: TraceRow) -> None:
        try:
            await self._write_vectors(row.namespace, [row])
        except BaseException:
            with contextlib.suppress(Exception):  # if this fails too, the start-up repair finishes it
                await self._run(self._store.forget, [row], None, None)
                await self._vectors.delete(collection_name(row.namespace), [row.id])
                await self._run(self._store.clear_orphans, [row.id])
            raise

    async def _write_vectors(self, namespace: str, rows: Sequence[TraceRow]) -> int:
        return await self._writes.write(namespace, rows)

    async def _upsert(self, namespace: str, rows: Sequence[TraceRow]) -> int:
        collection = collection_name(namespace)
        await self._ensure_collection(namespace)
        records = [(r.id, r.content) for r in rows]
        try:
            written = await self._vectors.upsert_texts(collection, records)
        except LakehouseError as exc:
            if exc.reason != "COLLECTION_NOT_FOUND":
                raise
            self._ready.discard(collection)  # dropped behind our back: recreate it once
            await self._ensure_collection(namespace)
            written = await self._vectors.upsert_texts(collection, records)
        self._marks.add([(r.id, r.version) for r in rows])
        return written

    async def _ensure_collection(self, namespace: str) -> bool:
        """Creates the namespace's collection when missing; True when it had to."""
        collection = collection_name(namespace)
        if collection in self._ready:
            return False
        created = False
        if not await self._vectors.collection_exists(collection):
            await self._vectors.create_collection(collection, f"memory namespace {namespace}")
            created = True
        self._ready.add(collection)
        return created

    async def get(self, namespace: str, trace_id: str) -> TraceRow:
        await self.require_namespace(namespace)
        return _found(await self._run(self._store.get, trace_id), namespace, trace_id)

    async def list_traces(
        self, namespace: str, page: Page, where: Filter, visibility: Visibility
    ) -> tuple[list[TraceRow], str]:
        await self.require_namespace(namespace)
        after = _pair_token(page.after)
        rows = await self._run(self._store.list_traces, namespace, page.size + 1, after, where, visibility)
        token = (
            encode_token(json.dumps([rows[page.size - 1].create_us, rows[page.size - 1].id]))
            if len(rows) > page.size
            else ""
        )
        return rows[: page.size], token

    async def update(self, change: TraceChange) -> TraceRow:
        await self.require_namespace(change.namespace, "trace.namespace")
        paths = list(dict.fromkeys(change.paths))
        unknown = [p for p in paths if p not in ("content", "metadata", "tags")]
        if not paths or unknown:
            raise invalid_field(
                "update_mask",
                f"name the fields to change among content, metadata, tags{f'; unknown: {unknown}' if unknown else ''}",
                reason="INVALID_UPDATE_MASK",
            )
        changes: dict[str, Any] = {}
        if "content" in paths:
            changes["content"] = self._check_content(change.content, "trace.content")
            changes["content_sha256"] = content_digest(changes["content"])
        if "metadata" in paths:
            changes["metadata"] = check_metadata(change.metadata, "trace.metadata")
        if "tags" in paths:
            changes["tags"] = check_tags(change.tags, "trace.tags")

        def check(current: TraceRow | None) -> TraceRow:
            row = _found(current, change.namespace, change.id)
            if change.expected_version is not None and row.version != change.expected_version:
                raise Aborted(
                    f"expected_version: the trace is at version {row.version}, not {change.expected_version}; "
                    "read it again and retry",
                    reason="VERSION_CONFLICT",
                    metadata={"version": str(row.version)},
                )
            if row.retired:
                raise FailedPrecondition(f"trace {row.id} is retired; revise it instead", reason="TRACE_RETIRED")
            _require_head(row)
            return row

        after = await self._run(self._store.update, change.id, changes, check)
        if "content" in changes:
            await self._write_vectors_or_heal(after.namespace, [after])
        return after

    async def revise(
        self, namespace: str, trace_id: str, content: str, metadata: Mapping[str, str], tags: Sequence[str]
    ) -> tuple[TraceRow, TraceRow]:
        await self.require_namespace(namespace)
        text = self._check_content(content, "content")
        extra_metadata = check_metadata(metadata, "metadata")
        extra_tags = check_tags(tags, "tags")
        stamp = now_us()

        def build(current: TraceRow | None) -> TraceRow:
            before = _found(current, namespace, trace_id)
            _require_head(before)
            merged_tags = check_tags([*before.tags, *extra_tags], "tags")
            return TraceRow(
                id=uuid.uuid4().hex,
                namespace=namespace,
                content=text,
                metadata=check_metadata({**before.metadata, **extra_metadata}, "metadata"),
                tags=merged_tags,
                version=1,
                replay_count=0,
                retired=False,
                retire_reason="",
                retire_us=None,
                revises_id=before.id,
                revised_by_id="",
                idempotency_key="",
                content_sha256=content_digest(text),
                create_us=stamp,
                update_us=stamp,
            )

        new, before = await self._run(self._store.revise, trace_id, build)
        await self._write_vectors_or_heal(namespace, [new])
        return new, before

    async def retire(self, namespace: str, trace_id: str, reason: str) -> TraceRow:
        await self.require_namespace(namespace)
        if not reason.strip():
            raise invalid_field("reason", "say why the trace is retired", reason="EMPTY_REASON")
        reason = _text(reason, "reason", 16 * 1024)
        return await self._run(self._store.retire, trace_id, reason, lambda r: _found(r, namespace, trace_id))

    async def history(self, namespace: str, trace_id: str, max_depth: int) -> tuple[list[TraceRow], bool]:
        await self.require_namespace(namespace)
        if max_depth < 0:
            raise invalid_field("max_depth", "must not be negative", reason="INVALID_MAX_DEPTH")
        depth = min(max_depth or DEFAULT_DEPTH, MAX_LIST)
        rows, truncated = await self._run(self._store.history, trace_id, depth)
        if not rows or rows[0].namespace != namespace:
            raise _trace_not_found(trace_id)
        return [r for r in rows if r.namespace == namespace], truncated

    # -- search -------------------------------------------------------------------------------

    async def search(self, query: TraceQuery) -> list[tuple[TraceRow, float]]:
        if not query.query.strip():
            raise invalid_field("query", "give the text to search for", reason="EMPTY_QUERY")
        if query.k < 0 or query.k > MAX_K:
            raise invalid_field("k", f"must be between 0 (meaning {DEFAULT_K}) and {MAX_K}", reason="INVALID_K")
        if query.max_distance is not None and math.isnan(query.max_distance):
            raise invalid_field("max_distance", "must be a number", reason="INVALID_MAX_DISTANCE")
        k = query.k or DEFAULT_K
        names = await self._searched_namespaces(query.namespaces)
        if not names:
            return []
        id_filter: list[str] | None = None
        if not query.filter.empty:
            ids = await self._run(self._store.matching_ids, names, query.filter, query.visibility, MAX_IDS + 1)
            if not ids:
                return []
            if len(ids) <= MAX_IDS:
                id_filter = ids
        limit = min(max(2 * k, k + 10), MAX_BACKEND_K)
        while True:
            hits = await self._search_vectors(names, query.query, limit, query.max_distance, id_filter)
            rows = await self._run(self._store.get_many, [h.id for h in hits])
            kept = [
                (rows[h.id], h.distance)
                for h in hits
                if h.id in rows and rows[h.id].namespace in names and _visible(rows[h.id], query)
            ]
            if len(kept) >= k or len(hits) < limit or limit >= MAX_BACKEND_K:
                return kept[:k]
            limit = min(limit * 4, MAX_BACKEND_K)

    async def _search_vectors(
        self, names: Sequence[str], text: str, k: int, max_distance: float | None, id_filter: Sequence[str] | None
    ) -> list[VectorHit]:
        try:
            return await self._vectors.search([collection_name(n) for n in names], text, k, max_distance, id_filter)
        except LakehouseError as exc:
            if exc.reason != "COLLECTION_NOT_FOUND":
                raise
        # A namespace's collection was lost (dropped, or a Milvus that lost its data): rebuild it
        # from the stored text in the background and say so, instead of a NOT_FOUND the caller
        # cannot act on.
        for name in names:
            self._ready.discard(collection_name(name))
            self.heal_later(name)
        raise Unavailable(
            "the vectors of a searched namespace are being rebuilt from the stored traces; retry shortly",
            reason="VECTORS_REBUILDING",
            retry_after_s=2.0,
        )

    async def _searched_namespaces(self, asked: Sequence[str]) -> list[str]:
        # Namespaces are never deleted, so one seen is known for good; the database is read only
        # for a name not seen yet (another replica may have made it) and for "every namespace".
        if asked and all(n in self._namespaces for n in asked):
            known: Mapping[str, str] = self._namespaces
        else:
            known = await self._run(self._store.namespaces)
            self._namespaces.update(known)
        if not asked:
            policy = await self.policy()
            return sorted(n for n in known if not policy.restricted or n in policy.memory_namespaces)
        names = list(dict.fromkeys(asked))
        for i, name in enumerate(names):
            await self.require_namespace(name, f"namespaces[{i}]")
        missing = [n for n in names if n not in known]
        if missing:
            raise NotFound(
                f"memory namespace {missing[0]!r} does not exist: it is created by its first trace",
                reason="NAMESPACE_NOT_FOUND",
                metadata={"namespace": missing[0][:200]},
            )
        return names

    # -- forgetting ---------------------------------------------------------------------------

    async def forget(self, selector: Selector, reason: str, erasure_id: str, dry_run: bool) -> ForgetReceipt:
        started = now_us()
        if not reason.strip():
            raise invalid_field("reason", "say why the traces are forgotten", reason="EMPTY_REASON")
        reason = _text(reason, "reason", 16 * 1024)
        erasure_id = _text(erasure_id, "erasure_id", MAX_LABEL)
        matched, not_found = await self._select(selector)
        doomed = await self._run(self._store.chains_of, matched) if matched else []
        by_namespace: dict[str, list[TraceRow]] = {}
        for row in doomed:
            by_namespace.setdefault(row.namespace, []).append(row)
        receipt_id = uuid.uuid4().hex
        vectors: dict[str, int] = {}
        if not dry_run:
            receipt = ForgetReceipt(
                receipt_id,
                current_principal().name,
                reason,
                erasure_id,
                False,
                len(matched),
                not_found,
                len(doomed),
                0,
                (),
                started,
                started,
            )
            await self._run(self._store.forget, doomed, receipt_id, receipt.summary())
            for namespace, rows in by_namespace.items():
                vectors[namespace] = await self._delete_vectors(namespace, [r.id for r in rows])
        counts = tuple(
            NamespaceCount(n, len(rows), len(rows) if dry_run else vectors.get(n, 0))
            for n, rows in sorted(by_namespace.items())
        )
        return ForgetReceipt(
            id=receipt_id,
            actor=current_principal().name,
            reason=reason,
            erasure_id=erasure_id,
            dry_run=dry_run,
            traces_matched=len(matched),
            traces_not_found=not_found,
            traces_deleted=len(doomed),
            vectors_deleted=sum(c.vectors_deleted for c in counts),
            namespaces=counts,
            start_us=started,
            complete_us=now_us(),
        )

    async def _delete_vectors(self, namespace: str, ids: Sequence[str]) -> int:
        """Deletes the vectors of forgotten traces; they stay listed as orphans (deleted by the
        repair) until the vector service confirms."""
        try:
            deleted = await self._vectors.delete(collection_name(namespace), ids)
        except LakehouseError as exc:  # the rows are gone; the repair deletes the vectors it left
            log.warning(
                "could not delete %d vectors of namespace %s (%s); repairing later", len(ids), namespace, exc.message
            )
            self.heal_later(namespace)
            return 0
        await self._run(self._store.clear_orphans, ids)
        return deleted

    async def _select(self, selector: Selector) -> tuple[list[TraceRow], int]:
        if selector.kind == "ids":
            await self.require_namespace(selector.namespace, "ids.namespace")
            ids = list(dict.fromkeys(selector.ids))
            if not ids:
                raise invalid_field("ids.ids", "name at least one trace", reason="EMPTY_SELECTION")
            if len(ids) > MAX_IDS:
                raise invalid_field("ids.ids", f"at most {MAX_IDS} ids per call", reason="TOO_MANY_IDS")
            return await self._run(self._store.select_for_forget, ids, selector.namespace, None, None)
        if selector.kind == "filter":
            await self.require_namespace(selector.namespace, "filter.namespace")
            if selector.filter.empty:
                raise invalid_field(
                    "filter.filter",
                    "set at least one condition: an empty filter would forget the whole namespace",
                    reason="EMPTY_FILTER",
                )
            return await self._run(self._store.select_for_forget, (), selector.namespace, selector.filter, None)
        if selector.kind == "source_rows":
            require_admin(current_principal(), "forgetting traces by the dataset rows they reference")
            if not selector.dataset:
                raise invalid_field("source_rows.dataset", "name the dataset", reason="EMPTY_SELECTION")
            if not selector.keys:
                raise invalid_field("source_rows.keys", "give at least one row key", reason="EMPTY_SELECTION")
            for i, name in enumerate(selector.namespaces):
                check_namespace(name, f"source_rows.namespaces[{i}]")
            source = (selector.dataset, list(selector.keys), list(selector.namespaces))
            return await self._run(self._store.select_for_forget, (), None, None, source)
        raise invalid_field("selector", "choose ids, filter or source_rows", reason="EMPTY_SELECTION")

    # -- reindex and repair -------------------------------------------------------------------

    async def reindex(self, asked: Sequence[str], full: bool) -> AsyncIterator[ReindexProgress | ReindexSummary]:
        require_admin(current_principal(), "Reindex")
        for i, name in enumerate(asked):
            check_namespace(name, f"namespaces[{i}]")
        known = await self._run(self._store.namespaces)
        missing = [n for n in asked if n not in known]
        if missing:
            raise NotFound(f"memory namespace {missing[0]!r} does not exist", reason="NAMESPACE_NOT_FOUND")
        if self._reindexing.locked():
            raise Aborted("a reindex is already running; wait for it to finish", reason="REINDEX_ALREADY_RUNNING")
        async with self._reindexing:
            async for event in self._rebuild(sorted(set(asked) or set(known)), full):
                yield event

    async def repair(self) -> ReindexSummary | None:
        """The start-up check: rewrites missing vectors and removes orphans in every namespace."""
        async with self._reindexing:
            summary = None
            async for event in self._rebuild(sorted(await self._run(self._store.namespaces)), full=False):
                if isinstance(event, ReindexSummary):
                    summary = event
            return summary

    async def _rebuild(self, names: Sequence[str], full: bool) -> AsyncIterator[ReindexProgress | ReindexSummary]:
        started = time.monotonic()
        scanned = written = orphans = created = 0
        for namespace in names:
            collection = collection_name(namespace)
            total = await self._run(self._store.count, namespace)
            self._ready.discard(collection)  # asked again: it may have been dropped behind our back
            if full:
                await self._vectors.drop_collection(collection)
            if await self._ensure_collection(namespace):
                created += 1
                await self._run(self._store.mark_unindexed, namespace)
            dangling = await self._run(self._store.orphans, namespace)
            if dangling:
                await self._vectors.delete(collection, dangling)
                await self._run(self._store.clear_orphans, dangling)
                orphans += len(dangling)
            done, after = 0, ""
            while True:
                rows = await self._run(self._store.scan, namespace, after, REINDEX_BATCH)
                if not rows:
                    break
                after = rows[-1].id
                present = await self._vectors.existing_ids(collection, [r.id for r in rows if r.indexed])
                stale = [r for r in rows if not r.indexed or r.id not in present]
                if stale:
                    written += await self._write_vectors(namespace, stale)
                done += len(rows)
                scanned += len(rows)
                yield ReindexProgress(namespace, done, total, time.monotonic() - started)
        await self._marks.flush()
        yield ReindexSummary(tuple(names), scanned, written, orphans, created, time.monotonic() - started)

    # -- playbook -----------------------------------------------------------------------------

    async def record(self, entries: Sequence[PlaybookIn], *, batch: bool) -> list[Recorded]:
        if batch:
            if not entries:
                raise invalid_field("requests", "give at least one entry", reason="EMPTY_BATCH")
            if len(entries) > MAX_BATCH:
                raise invalid_field("requests", f"at most {MAX_BATCH} entries per call", reason="BATCH_TOO_LARGE")
        checked: list[PlaybookIn | LakehouseError] = []
        for asked in entries:
            try:
                checked.append(await self._check_entry(asked))
            except LakehouseError as exc:
                if not batch:
                    raise
                checked.append(exc)
        valid = [e for e in checked if isinstance(e, PlaybookIn)]
        rows: dict[int, PlaybookRow] = {}
        if valid:
            queries = list(dict.fromkeys(e.query for e in valid))
            embedded = await self._vectors.embed(queries)
            vector_of = dict(zip(queries, embedded.vectors, strict=True))
            stamp = now_us()
            for i, item in enumerate(checked):
                if isinstance(item, PlaybookIn):
                    entry = item
                    rows[i] = PlaybookRow(
                        id=playbook_entry_id(entry.namespace, entry.query, entry.answer_collection, entry.answer_id),
                        namespace=entry.namespace,
                        query=entry.query,
                        answer_collection=entry.answer_collection,
                        answer_id=entry.answer_id,
                        score=entry.score,
                        role=entry.role,
                        tags=tuple(entry.tags),
                        model=embedded.model,
                        vector=vector_of[entry.query],
                        # One microsecond apart, so later entries of a batch list as more recent.
                        create_us=stamp + i,
                        update_us=stamp + i,
                    )
        stored = await self._run(self._store.record_playbook, list(rows.values())) if rows else []
        for row, _ in stored:
            self.playbook.put(row)
        outcome = dict(zip(rows, stored, strict=True))
        results = []
        for i, item in enumerate(checked):
            if isinstance(item, LakehouseError):
                results.append(Recorded(None, False, item))
            else:
                row, created = outcome[i]
                results.append(Recorded(row, created))
        return results

    async def _check_entry(self, entry: PlaybookIn) -> PlaybookIn:
        await self.require_namespace(entry.namespace)
        if not entry.query.strip():
            raise invalid_field("query", "give the query the answer worked for", reason="EMPTY_QUERY")
        query = _text(entry.query, "query", 16 * 1024)
        if not entry.answer_id:
            raise invalid_field("answer_id", "name the answer's id in its collection", reason="EMPTY_ANSWER_ID")
        answer_id = _text(entry.answer_id, "answer_id", MAX_KEY)
        if not (math.isfinite(entry.score) and 0.0 <= entry.score <= 1.0):
            raise invalid_field("score", "must be between 0 and 1 inclusive", reason="SCORE_OUT_OF_RANGE")
        role = _text(entry.role, "role", MAX_LABEL)
        tags = check_tags(entry.tags, "tags")
        await self._require_answer_collection(entry.answer_collection)
        return replace(entry, query=query, answer_id=answer_id, role=role, tags=tags)

    async def _require_answer_collection(self, name: str) -> None:
        policy = await self.policy()
        if policy.restricted and name not in policy.collections:
            raise PermissionDenied(
                f"answer_collection: collection {name!r} is not bound to profile {policy.profile!r}",
                reason="COLLECTION_NOT_ALLOWED",
                metadata={"collection": name[:200], "profile": policy.profile},
            )
        seen = self._answer_collections.get(name)
        if seen is not None and time.monotonic() - seen < 30.0:
            return
        if not name or not await self._collections.exists(name):
            raise NotFound(
                f"answer_collection: vector collection {name!r} does not exist",
                reason="COLLECTION_NOT_FOUND",
                violations=[],
                metadata={"collection": name[:200]},
            )
        self._answer_collections[name] = time.monotonic()

    async def lookup(self, query: PlaybookQuery) -> list[tuple[PlaybookRow, float]]:
        await self.require_namespace(query.namespace)
        max_distance = DEFAULT_LOOKUP_DISTANCE if query.max_distance is None else query.max_distance
        if not (math.isfinite(max_distance) and max_distance >= 0):
            raise invalid_field("max_distance", "must be a distance of 0 or more", reason="INVALID_MAX_DISTANCE")
        if query.k < 0 or query.k > MAX_K:
            raise invalid_field("k", f"must be between 0 (meaning {DEFAULT_K}) and {MAX_K}", reason="INVALID_K")
        if query.vector is not None:
            vector = np.asarray(query.vector, dtype=np.float32)
            dimension, model = await self._vectors.dimension()
            if vector.shape != (dimension,):
                raise invalid_field(
                    "query_vector",
                    f"has {vector.shape[0]} values; the playbook holds queries embedded by {model} "
                    f"(dimension {dimension})",
                    reason="DIMENSION_MISMATCH",
                )
            if not np.all(np.isfinite(vector)) or not np.any(vector):
                raise invalid_field("query_vector", "must be finite and not all zeros", reason="INVALID_VECTOR")
        elif query.text is not None and query.text.strip():
            vector = (await self._vectors.embed([query.text])).vectors[0]
        else:
            raise invalid_field("query_text", "give a query text or a query vector", reason="EMPTY_QUERY")
        args = (
            query.namespace,
            query.role,
            vector,
            max_distance,
            query.k or DEFAULT_K,
            frozenset(query.exclude_answer_ids),
            frozenset(query.answer_collections),
        )
        if self.playbook.size(query.namespace, query.role) < 4096:  # a small product: not worth a thread hop
            return self.playbook.lookup(*args)
        return await self._run(self.playbook.lookup, *args)

    async def list_playbook(
        self, namespace: str, page: Page, role: str | None, collection: str, tags: Sequence[str]
    ) -> tuple[list[PlaybookRow], str]:
        await self.require_namespace(namespace)
        wanted = set(check_tags(tags, "tags"))
        after = _pair_token(page.after)
        out: list[PlaybookRow] = []
        while len(out) <= page.size:
            rows = await self._run(self._store.list_playbook, namespace, page.size + 1, after, role, collection)
            out += [r for r in rows if wanted <= set(r.tags)]
            if len(rows) <= page.size:
                break
            after = (rows[-1].update_us, rows[-1].id)
        if len(out) > page.size:
            last = out[page.size - 1]
            return out[: page.size], encode_token(json.dumps([last.update_us, last.id]))
        return out, ""

    async def delete_playbook_entry(self, namespace: str, entry_id: str) -> None:
        await self.require_namespace(namespace)
        row = await self._run(self._store.get_playbook, entry_id)
        if row is None or row.namespace != namespace or not await self._run(self._store.delete_playbook, entry_id):
            raise NotFound(f"playbook entry {entry_id!r} does not exist", reason="PLAYBOOK_ENTRY_NOT_FOUND")
        self.playbook.remove(entry_id)

    # -- checks -------------------------------------------------------------------------------

    def _check_content(self, content: str, field: str) -> str:
        if not content.strip():
            raise invalid_field(field, "give the text to remember", reason="EMPTY_CONTENT")
        if len(content.encode()) > self._config.max_content_bytes:
            raise invalid_field(
                field,
                f"is {len(content.encode())} bytes of UTF-8; at most {self._config.max_content_bytes}",
                reason="CONTENT_TOO_LARGE",
            )
        if "\x00" in content:
            raise invalid_field(field, "must not contain NUL characters", reason="INVALID_CONTENT")
        return content


def check_namespace(namespace: str, field: str = "namespace") -> str:
    if not NAMESPACE.fullmatch(namespace):
        raise invalid_field(
            field,
            "must match ^[a-z][a-z0-9_-]{0,62}$: lowercase letters, digits, '_' and '-', starting with a letter",
            reason="INVALID_NAMESPACE",
        )
    return namespace


def check_label(value: str, field: str, limit: int = MAX_LABEL) -> str:
    if len(value) > limit or "\x00" in value:
        raise invalid_field(field, f"at most {limit} characters, no NUL", reason="INVALID_METADATA")
    return value


def check_metadata(metadata: Mapping[str, str], field: str) -> dict[str, str]:
    if len(metadata) > MAX_LABELS:
        raise invalid_field(field, f"at most {MAX_LABELS} entries", reason="INVALID_METADATA")
    out = {}
    for key, value in metadata.items():
        if not key or len(key) > MAX_LABEL or "\x00" in key:
            raise invalid_field(
                f"{field}.{key[:50]}", f"keys are 1 to {MAX_LABEL} characters", reason="INVALID_METADATA"
            )
        if len(value) > 16 * 1024 or "\x00" in value:
            raise invalid_field(
                f"{field}.{key}", "values are at most 16384 characters, no NUL", reason="INVALID_METADATA"
            )
        out[key] = value
    return out


def check_tags(tags: Sequence[str], field: str) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(tags))
    if len(unique) > MAX_LABELS:
        raise invalid_field(field, f"at most {MAX_LABELS} tags", reason="INVALID_METADATA")
    for i, tag in enumerate(unique):
        if not tag or len(tag) > MAX_LABEL or "\x00" in tag:
            raise invalid_field(
                f"{field}[{i}]", f"tags are 1 to {MAX_LABEL} characters, no NUL", reason="INVALID_METADATA"
            )
    return unique


def _text(value: str, field: str, limit: int) -> str:
    if len(value) > limit or "\x00" in value:
        raise invalid_field(field, f"at most {limit} characters, no NUL", reason="INVALID_ARGUMENT")
    return value


def _found(row: TraceRow | None, namespace: str, trace_id: str) -> TraceRow:
    # Another namespace's trace is reported exactly like a missing one: namespaces never learn of each other.
    if row is None or row.namespace != namespace:
        raise _trace_not_found(trace_id)
    return row


def _trace_not_found(trace_id: str) -> NotFound:
    return NotFound(f"trace {trace_id[:100]!r} does not exist in this namespace", reason="TRACE_NOT_FOUND")


def _require_head(row: TraceRow) -> None:
    if row.revised_by_id:
        raise FailedPrecondition(
            f"trace {row.id} was revised by {row.revised_by_id}; change the head of the chain",
            reason="TRACE_SUPERSEDED",
            metadata={"revised_by_id": row.revised_by_id},
        )


def _visible(row: TraceRow, query: TraceQuery) -> bool:
    if row.retired and not query.visibility.include_retired:
        return False
    if row.revised_by_id and not query.visibility.include_superseded:
        return False
    where = query.filter
    if any(t not in row.tags for t in where.tags):
        return False
    if any(row.metadata.get(k) != v for k, v in where.metadata.items()):
        return False
    if where.created_after_us is not None and row.create_us < where.created_after_us:
        return False
    return where.created_before_us is None or row.create_us < where.created_before_us


def _pair_token(after: str | None) -> tuple[int, str] | None:
    if after is None:
        return None
    try:
        stamp, key = json.loads(after)
        if isinstance(stamp, int) and isinstance(key, str):
            return stamp, key
    except (ValueError, TypeError):
        pass
    raise invalid_field("page_token", "not a token this server issued", reason="INVALID_PAGE_TOKEN")


def _listed(names: Sequence[str] | frozenset[str]) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:50]) or "none"
