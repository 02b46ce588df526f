"""Query domain: read-only SQL over the datasets' registered Delta versions, maintenance, history.

The catalog decides what is visible and at which Delta version; DuckDB reads exactly those
files. Statements run in a dedicated thread pool, each on its own cursor, and are interrupted
when their time limit or the caller's deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from lakehouse.server.common.config import Config, ConfigError
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import NotFound, PermissionDenied, invalid_field
from lakehouse.server.common.leases import LeasedPolicies
from lakehouse.server.common.roles import require_admin
from lakehouse.server.query import engine, tables
from lakehouse.server.query.engine import SqlEngine, TableSource
from lakehouse.server.query.errors import QueryTimeout
from lakehouse.server.query.gateways import Catalog, DatasetInfo, NewVersion, Storage, VersionInfo
from lakehouse.server.query.policy import AccessPolicy, Tombstones, ViewRule, key_match, view_schema
from lakehouse.server.query.sandbox import CheckedStatement, check_statement

T = TypeVar("T")
Params = list[Any] | dict[str, Any] | None
STREAM_SLOT_WAIT_S = 2.0
MAX_DELETION_KEYS = 10_000


@dataclass(frozen=True)
class Statement:
    """A statement with its parameters and the catalog versions to read."""

    sql: str
    params: Params = None
    as_of: Mapping[str, int] | None = None


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    truncated: bool
    pinned: Statement
    """The same statement with every table's version fixed: what a Flight ticket carries."""
    versions_read: dict[str, int]
    elapsed_s: float


@dataclass(frozen=True)
class ExplainResult:
    plan: str
    schema: pa.Schema
    versions_read: dict[str, int]


@dataclass(frozen=True)
class RowDeletion:
    """Rows to delete by key (a hard erasure)."""

    dataset: str
    key_column: str
    keys: tuple[str, ...]
    erasure_id: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class Deleted:
    version_before: int
    version_after: int
    rows_removed: int
    files_removed: int


@dataclass(frozen=True)
class Table:
    """A name the caller may query."""

    name: str
    kind: str  # "dataset" or "view"
    schema: pa.Schema
    """Columns as the caller sees them."""
    base: DatasetInfo
    """The dataset itself, or the view's base dataset."""
    view: ViewRule | None


@dataclass(frozen=True)
class Resolved:
    """A statement after the sandbox check, with the sources its tables read."""

    checked: CheckedStatement
    sources: tuple[TableSource, ...]
    versions: dict[str, int]


class _Running:
    """Lets the event loop interrupt a statement running (or waiting to run) in a worker thread."""

    def __init__(self, deadline: float) -> None:
        self.cursor: duckdb.DuckDBPyConnection | None = None
        self.deadline = deadline
        self.stopped = False

    def wait_s(self) -> float:
        """How long the statement may still wait for an engine slot."""
        return max(self.deadline - time.monotonic(), 0.0)

    def started(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor
        if self.stopped:  # given up while it waited for a slot: do not run it at all
            raise QueryTimeout("the statement was stopped before it started")

    def interrupt(self) -> None:
        self.stopped = True
        if self.cursor is not None:
            with contextlib.suppress(duckdb.Error):
                self.cursor.interrupt()


class QueryService:
    def __init__(self, config: Config, catalog: Catalog, storage: Storage, run: Callable[..., Awaitable[Any]]) -> None:
        self._config = config
        self._q = config.query
        self._catalog = catalog
        self._storage = storage
        self._run = run
        readable = [config.data_dir, *_configured_local_buckets(config)]
        self.engine = SqlEngine(self._q, readable, hash_salt(config))
        self._readable = tuple(str(p.resolve()) + "/" for p in readable)
        self._pool = ThreadPoolExecutor(max_workers=self._q.concurrent_queries + 2, thread_name_prefix="lakehouse-sql")
        self._policies = LeasedPolicies(catalog.access_policy)
        self._locks: dict[str, asyncio.Lock] = {}
        self._table_versions: dict[tuple[str, int], int | None] = {}

    def lock(self, name: str) -> asyncio.Lock:
        """Serialises the commits to one dataset in this process (ingests, compaction)."""
        return self._locks.setdefault(name, asyncio.Lock())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.engine.close()

    # -- what the caller may read -------------------------------------------------------------

    async def policy(self) -> AccessPolicy:
        """The caller's access policy. Asked of the catalog for every statement (answered
        "unchanged" almost always), so a view change or an erasure applies to the very next one."""
        return await self._policies.get()

    async def dataset(self, name: str) -> DatasetInfo:
        """A dataset the caller may read in full."""
        policy = await self.policy()
        if name in policy.datasets:
            return policy.datasets[name]
        raise self._unreadable(name, policy)

    async def current_dataset(self, name: str) -> DatasetInfo:
        """A dataset the caller may read, as the catalog has it now: what a commit builds on (a
        policy may be a lease old, and settling on an older version would undo a newer commit)."""
        await self.dataset(name)
        dataset = await self._catalog.get_dataset(name)
        if dataset is None:
            raise NotFound(f"dataset {name!r} does not exist", reason="DATASET_NOT_FOUND")
        return dataset

    def _unreadable(self, name: str, policy: AccessPolicy) -> Exception:
        allowed = ", ".join(sorted(policy.readable)) or "none"
        if name in policy.views:
            return invalid_field("dataset", f"{name!r} is a view, not a dataset", reason="NOT_A_DATASET")
        if policy.restricted:
            return PermissionDenied(
                f"table {name!r} is not bound to profile {policy.profile!r}; tables you can query: {allowed}",
                reason="TABLE_NOT_ALLOWED",
                metadata={"table": name, "profile": policy.profile, "allowed": allowed[:900]},
            )
        return NotFound(
            f"dataset {name!r} does not exist; ListTables shows what you can read", reason="DATASET_NOT_FOUND"
        )

    async def readable_tables(self) -> list[Table]:
        """Every name the caller may query, with the columns it sees, in name order."""
        policy = await self.policy()
        tables = [Table(name, "dataset", d.schema, d, None) for name, d in policy.datasets.items()]
        for name, rule in policy.views.items():
            base = policy.bases[rule.base]
            tables.append(Table(name, "view", view_schema(rule, base.schema), base, rule))
        return sorted(tables, key=lambda t: t.name)

    # -- statements ----------------------------------------------------------------------------

    async def resolve(self, statement: Statement) -> Resolved:
        """Checks the statement and pins every table it reads to a Delta snapshot."""
        policy = await self.policy()
        try:
            checked = _checked(statement.sql, policy.readable)
        except NotFound as exc:
            if policy.restricted and exc.reason == "TABLE_NOT_FOUND":
                raise self._unreadable(exc.metadata.get("table", ""), policy) from None
            raise
        as_of = dict(statement.as_of or {})
        unknown = sorted(set(as_of) - set(checked.tables))
        if unknown:
            raise invalid_field("as_of", f"the statement does not read {', '.join(unknown)}", reason="INVALID_AS_OF")
        sources, versions = [], {}
        for name in sorted(checked.tables):
            source, version = await self._source(name, policy, as_of.get(name))
            sources.append(source)
            versions[name] = version
        return Resolved(checked, tuple(sources), versions)

    async def _source(self, name: str, policy: AccessPolicy, version: int | None) -> tuple[TableSource, int]:
        dataset = policy.base_of(name)
        source = functools.partial(
            TableSource, name, tombstones=policy.tombstones.get(dataset.name), view=policy.views.get(name)
        )
        if version is None or version == dataset.version:
            version, table_version = dataset.version, dataset.table_version
        else:
            table_version = await self._table_version(dataset, version)
        if table_version is None:
            return source(dataset.schema), version
        location = await self.location(dataset)
        snap = await self._run(tables.snapshot, location, table_version)
        if location.local_path is not None and all(f.startswith(self._readable) for f in snap.files):
            return source(snap.schema, files=snap.files), version
        if not snap.files:
            return source(snap.schema), version
        arrow_dataset = await self._run(tables.pyarrow_dataset, location, table_version)
        return source(snap.schema, dataset=arrow_dataset), version

    async def _table_version(self, dataset: DatasetInfo, version: int) -> int | None:
        name = dataset.name
        if version < 1:
            raise NotFound(f"versions count from 1; {name!r} has no version {version}", reason="VERSION_NOT_FOUND")
        key = (dataset.location, version)  # the location is unique to one incarnation of a name
        if key not in self._table_versions:  # versions never change once registered
            self._table_versions[key] = (await self._catalog.get_version(name, version)).table_version
        return self._table_versions[key]

    async def location(self, dataset: DatasetInfo) -> tables.TableLocation:
        bucket_uri = await self._storage.bucket_uri(dataset.bucket)
        return tables.table_location(bucket_uri, dataset.location, self._config.storage.s3)

    async def query(self, statement: Statement, max_inline_rows: int | None, timeout_s: float | None) -> QueryResult:
        started = time.perf_counter()
        resolved = await self.resolve(statement)
        limit = self._q.max_inline_rows if max_inline_rows is None else max_inline_rows
        if limit < 0:
            raise invalid_field("max_inline_rows", "must not be negative", reason="INVALID_ARGUMENT")

        def job(running: _Running) -> tuple[pa.Table, bool]:
            with self.engine.cursor(resolved.sources, running.wait_s()) as cursor:
                running.started(cursor)
                reader = engine.run(cursor, resolved.checked.sql, statement.params, self._q.batch_rows)
                return _take(reader, limit, self._q.max_inline_bytes)

        table, truncated = await self.execute(job, timeout_s)
        pinned = Statement(resolved.checked.sql, statement.params, resolved.versions)
        return QueryResult(table, truncated, pinned, resolved.versions, time.perf_counter() - started)

    async def explain(self, statement: Statement, analyze: bool, timeout_s: float | None) -> ExplainResult:
        resolved = await self.resolve(statement)
        if resolved.checked.kind == "EXPLAIN":
            raise invalid_field(
                "sql", "pass the statement without EXPLAIN; set analyze for EXPLAIN ANALYZE", reason="INVALID_SQL"
            )
        prefix = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "

        def job(running: _Running) -> tuple[str, pa.Schema]:
            with self.engine.cursor(resolved.sources, running.wait_s()) as cursor:
                running.started(cursor)
                plan = engine.run(
                    cursor, prefix + resolved.checked.sql, statement.params, self._q.batch_rows
                ).read_all()
                schema = engine.run(
                    cursor, f"SELECT * FROM ({resolved.checked.sql}) LIMIT 0", statement.params, 1
                ).schema
                return "\n".join(str(v) for v in plan.column(plan.num_columns - 1).to_pylist()), schema

        plan, schema = await self.execute(job, timeout_s)
        return ExplainResult(plan, schema, resolved.versions)

    async def execute(self, job: Callable[[_Running], T], timeout_s: float | None) -> T:
        """Runs `job` in the SQL pool; past the time limit or on cancellation it is interrupted."""
        limit = timeout_s or self._q.default_timeout_s
        running = _Running(time.monotonic() + limit)
        future = asyncio.get_running_loop().run_in_executor(self._pool, job, running)
        try:
            async with asyncio.timeout(limit):  # cheaper than wait_for: no extra task per statement
                return await asyncio.shield(future)
        except TimeoutError:
            running.interrupt()
            with contextlib.suppress(Exception):
                await future
            raise QueryTimeout(f"the statement ran longer than its {limit:g} s limit and was stopped") from None
        except asyncio.CancelledError:
            running.interrupt()  # the caller went away: free the engine for others
            raise

    def schema_of(self, resolved: Resolved, params: Params) -> pa.Schema:
        """The result schema of a resolved statement, without running it in full (blocking)."""
        with self.engine.cursor(resolved.sources, self._q.default_timeout_s) as cursor:
            return engine.schema(cursor, resolved.checked.sql, params)

    def open_reader(
        self, resolved: Resolved, params: Params
    ) -> tuple[pa.RecordBatchReader, Callable[[], None], Callable[[], None]]:
        """A reader of the full result for Flight (blocking), with functions to close it when done
        and to interrupt it when the caller goes away."""
        context = self.engine.cursor(resolved.sources, STREAM_SLOT_WAIT_S, stream=True)
        cursor = context.__enter__()
        try:
            reader = engine.run(cursor, resolved.checked.sql, params, self._q.batch_rows)
        except BaseException:
            context.__exit__(None, None, None)
            raise

        closed = threading.Lock()

        def close() -> None:
            # Called by the stream's end and by Flight's watchdog; only the first call releases.
            if closed.acquire(blocking=False):
                context.__exit__(None, None, None)

        def interrupt() -> None:
            with contextlib.suppress(duckdb.Error):
                cursor.interrupt()

        return reader, close, interrupt

    # -- catalog passthrough and maintenance ---------------------------------------------------

    async def history(self, name: str, page_size: int, page_token: str) -> tuple[list[VersionInfo], str]:
        await self.dataset(name)
        return await self._catalog.history(name, page_size, page_token)

    async def compact(
        self, name: str, apply_tombstones: bool, target_size: int
    ) -> tuple[DatasetInfo, DatasetInfo, dict[str, int]]:
        if apply_tombstones:
            require_admin(current_principal(), "applying tombstones (Compact with apply_tombstones)")
        if target_size < 0:
            raise invalid_field("target_file_size_bytes", "must not be negative", reason="INVALID_ARGUMENT")
        async with self.lock(name):
            before = await self.current_dataset(name)
            tombstones = (await self.policy()).tombstones.get(name) if apply_tombstones else None
            after, metrics = await self._compact(before, target_size, tombstones)
        if tombstones is not None and tombstones.keys:
            # Only once the rows are gone for good: a crash before this leaves them hidden still.
            metrics["tombstones_cleared"] = await self._catalog.clear_tombstones(name, tombstones.keys)
        return before, after, metrics

    async def _compact(
        self, before: DatasetInfo, target_size: int, tombstones: Tombstones | None
    ) -> tuple[DatasetInfo, dict[str, int]]:
        metrics = {"files_added": 0, "files_removed": 0, "rows_erased": 0, "tombstones_cleared": 0}
        if before.table_version is None:
            return before, metrics
        location = await self.location(before)
        await self._run(tables.settle, location, before.table_version)
        if tombstones is not None and tombstones.keys:
            match = key_match(tombstones.key_column, before.schema, tombstones.keys, strict=False)
            if match:
                deleted = await self._run(tables.delete_rows, location, match)
                metrics["rows_erased"] = deleted["rows_deleted"]
        metrics.update(await self._run(tables.compact, location, target_size or None))
        table_version = await self._run(tables.latest_version, location)
        if table_version == before.table_version:
            return before, metrics
        operation = "DELETE" if metrics["rows_erased"] else "COMPACT"
        after = await self._register(before.name, location, table_version, operation, ("maintenance", "compact"))
        return after, metrics

    async def delete_rows(self, deletion: RowDeletion) -> Deleted:
        """Deletes rows by key as a new version, then vacuums every file the new version does not
        reference, so the deleted rows' bytes leave the bucket. A dry run only counts them."""
        if not deletion.keys:
            raise invalid_field("key_values", "give at least one key value", reason="EMPTY_KEYS")
        if len(deletion.keys) > MAX_DELETION_KEYS:
            raise invalid_field("key_values", f"at most {MAX_DELETION_KEYS} per call", reason="TOO_MANY_KEYS")
        async with self.lock(deletion.dataset):
            before = await self.current_dataset(deletion.dataset)
            match = key_match(deletion.key_column, before.schema, deletion.keys, strict=True)
            if before.table_version is None or match is None:
                return Deleted(before.version, before.version, 0, 0)
            location = await self.location(before)
            matching = await self._run(tables.count_rows, location, before.table_version, match)
            if deletion.dry_run or not matching:
                return Deleted(before.version, before.version, matching, 0)
            await self._run(tables.settle, location, before.table_version)
            deleted = await self._run(tables.delete_rows, location, match)
            table_version = await self._run(tables.latest_version, location)
            after = await self._register(
                before.name, location, table_version, "DELETE", ("erasure", deletion.erasure_id or "delete rows")
            )
            removed = await self._run(tables.vacuum, location, 0, False)
        return Deleted(before.version, after.version, deleted["rows_deleted"], len(removed))

    async def _register(
        self, name: str, location: tables.TableLocation, table_version: int, operation: str, source: tuple[str, str]
    ) -> DatasetInfo:
        snap = await self._run(tables.snapshot, location, table_version)
        after, _version, _dup = await self._catalog.register_version(
            NewVersion(
                name,
                table_version,
                operation,
                snap.schema,
                snap.row_count,
                snap.size_bytes,
                snap.relative_files,
                source[0],
                source[1],
                "",
                "",
                None,
            )
        )
        return after

    async def vacuum(self, name: str, retention_hours: float | None, dry_run: bool) -> list[str]:
        hours = self._q.vacuum_retention_hours if retention_hours is None else retention_hours
        if hours < 0:
            raise invalid_field("retention", "must not be negative", reason="INVALID_RETENTION")
        if hours < self._q.vacuum_minimum_hours and current_principal().role != "admin":
            raise PermissionDenied(
                f"a retention under {self._q.vacuum_minimum_hours:g} h ends time travel and needs the admin role",
                reason="RETENTION_BELOW_MINIMUM",
            )
        dataset = await self.dataset(name)
        if dataset.table_version is None:
            return []
        location = await self.location(dataset)
        removed = await self._run(tables.vacuum, location, hours, dry_run)
        root = location.uri.rstrip("/") + "/"
        return [f.removeprefix(root) for f in removed]


@functools.lru_cache(maxsize=1024)
def _checked(sql: str, visible: frozenset[str]) -> CheckedStatement:
    """The sandbox verdict, remembered: parsing costs about as much as running a small query,
    and agents repeat the same statements. Refusals are not cached (they raise)."""
    return check_statement(sql, visible)


def _take(reader: pa.RecordBatchReader, limit: int, max_bytes: int) -> tuple[pa.Table, bool]:
    """Up to `limit` rows (and `max_bytes`) from the reader, and whether more were left."""
    batches: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in reader:
        room = limit - rows
        if batch.num_rows and size + batch.nbytes > max_bytes:
            room = min(room, _rows_within(batch, max_bytes - size))
        if room <= 0:
            return pa.Table.from_batches(batches, reader.schema), True
        if batch.num_rows > room:
            batches.append(batch.slice(0, room))
            return pa.Table.from_batches(batches, reader.schema), True
        batches.append(batch)
        rows += batch.num_rows
        size += batch.nbytes
    return pa.Table.from_batches(batches, reader.schema), False


def _rows_within(batch: pa.RecordBatch, budget: int) -> int:
    """How many leading rows of `batch` fit in `budget` bytes (rows differ in width: shrink until they fit)."""
    rows = int(budget / (batch.nbytes / batch.num_rows))
    while rows > 0 and batch.slice(0, rows).nbytes > budget:
        rows = int(rows * 0.8)
    return rows


def hash_salt(config: Config) -> str:
    """The salt of hashed view columns: from the configured variable, else made once and kept
    under the data directory (readable by the owner only), so hashes stay stable across restarts."""
    variable = config.governance.hash_salt_env
    if variable:
        value = os.environ.get(variable, "")
        if not value:
            raise ConfigError(f"governance.hash_salt_env: environment variable {variable} is unset or empty")
        return value
    path = config.data_dir / "secrets" / "view-hash-salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(secrets.token_hex(32))
        draft.chmod(0o600)
        try:
            os.link(draft, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def _configured_local_buckets(config: Config) -> list[Path]:
    paths = []
    for bucket in config.storage.buckets.values():
        if bucket.uri and not bucket.uri.startswith("s3://"):
            paths.append(Path(bucket.uri.removeprefix("file://")).expanduser())
    return paths


def as_positional_or_named(values: Sequence[tuple[str, Any]]) -> Params:
    """Statement parameters: all positional (no names) or all named."""
    if not values:
        return None
    named = [name for name, _ in values if name]
    if named and len(named) != len(values):
        raise invalid_field(
            "parameters", "use either names for every parameter or for none", reason="INVALID_PARAMETER"
        )
    return {name: value for name, value in values} if named else [value for _, value in values]
