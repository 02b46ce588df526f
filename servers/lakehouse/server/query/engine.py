"""The SQL engine: one DuckDB database per process, locked down, and a cursor per statement.

DuckDB's own sandbox (no external access outside the data directories, no extension loading,
no Python replacement scans, configuration locked) is the second line of defence; the first is
`sandbox.check_statement`, which refuses any statement that reads something other than the
tables the caller may see. Blocking throughout: callers run it in an executor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakehouse.server.common.config import QueryConfig
from lakehouse.server.common.errors import PermissionDenied, ResourceExhausted, invalid_field
from lakehouse.server.query.errors import MemoryLimitExceeded, QueryFailed, QueryTimeout, VersionFilesRemoved
from lakehouse.server.query.policy import (
    SALT_TABLE,
    Tombstones,
    ViewRule,
    ident,
    internal_name,
    tombstone_keys,
    view_sql,
    without_tombstones,
)

T = TypeVar("T")


@dataclass(frozen=True)
class TableSource:
    """What a table name reads in one statement: Parquet files, a pyarrow dataset, or nothing;
    minus tombstoned rows; through an AI-safe view when `view` is set."""

    name: str
    schema: pa.Schema
    """The schema of the data read (for a view, of its base dataset)."""
    files: tuple[str, ...] = ()
    dataset: pads.Dataset | None = None
    tombstones: Tombstones | None = None
    view: ViewRule | None = None


class SqlEngine:
    """Owns the DuckDB database; hands out sandboxed cursors, a bounded number at a time."""

    def __init__(self, config: QueryConfig, readable_dirs: Sequence[Path], hash_salt: str) -> None:
        self._db = duckdb.connect(":memory:")
        self._salt = pa.table({"s": [hash_salt]})
        allowed = sorted({str(d.resolve()).rstrip("/") + "/" for d in readable_dirs})
        for statement in (
            f"SET threads = {config.threads}",
            f"SET memory_limit = '{_quote(config.memory_limit)}'",
            "SET allowed_directories = [" + ", ".join(f"'{_quote(d)}'" for d in allowed) + "]",
            "SET enable_external_access = false",
            "SET python_enable_replacements = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET lock_configuration = true",
        ):
            self._db.execute(statement)
        self._slots = threading.BoundedSemaphore(config.concurrent_queries)
        # Flight streams are paced by their readers, so they get slots of their own: a slow or idle
        # reader can never keep SQL over gRPC from running.
        self._stream_slots = threading.BoundedSemaphore(config.concurrent_streams)

    @contextmanager
    def cursor(
        self, sources: Sequence[TableSource], wait_s: float | None = None, stream: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on which every source is a temporary view; waits up to `wait_s` for a slot."""
        slots = self._stream_slots if stream else self._slots
        if not slots.acquire(timeout=wait_s):
            if stream:
                raise ResourceExhausted(
                    "every Flight stream slot is taken; retry shortly", reason="TOO_MANY_STREAMS", retry_after_s=1.0
                )
            raise QueryTimeout(
                f"no engine slot came free within {wait_s:g} s: the server is busy with other statements"
            )
        try:
            cursor = self._db.cursor()
            try:
                try:
                    if any(source.view is not None for source in sources):
                        cursor.register(SALT_TABLE, self._salt)
                    for source in sources:
                        _expose(cursor, source)
                except duckdb.Error as exc:
                    raise translate(exc) from None
                yield cursor
            finally:
                cursor.close()
        finally:
            slots.release()

    def close(self) -> None:
        self._db.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _expose(cursor: duckdb.DuckDBPyConnection, source: TableSource) -> None:
    """Makes `source.name` a temporary view of exactly what the caller may read of it."""
    if source.files:
        files = ", ".join(f"'{_quote(f)}'" for f in source.files)
        # union_by_name: files written before an additive schema change lack the new columns.
        data = f"read_parquet([{files}], union_by_name = true)"
    else:
        data = ident(internal_name("data", source.name))
        cursor.register(internal_name("data", source.name), source.dataset or source.schema.empty_table())
    keys = internal_name("tombstones", source.name)
    if source.tombstones is not None and source.tombstones.keys:
        cursor.register(keys, tombstone_keys(source.tombstones, source.schema))
    rows = without_tombstones(data, source.tombstones, ident(keys))
    sql = view_sql(source.view, f"({rows})") if source.view is not None else rows
    cursor.execute(f"CREATE TEMP VIEW {ident(source.name)} AS {sql}")


def run(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None, batch_rows: int
) -> pa.RecordBatchReader:
    """Starts `sql` and returns a reader of its result; DuckDB errors become domain errors."""
    return _on_relation(cursor, sql, params, lambda relation: relation.to_arrow_reader(batch_rows))


def schema(cursor: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | dict[str, Any] | None) -> pa.Schema:
    """The schema `sql` would return, computed with LIMIT 0."""
    return _on_relation(cursor, sql, params, lambda relation: relation.limit(0).to_arrow_table().schema)


def _on_relation(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[Any] | dict[str, Any] | None,
    use: Callable[[duckdb.DuckDBPyRelation], T],
) -> T:
    try:
        relation = cursor.sql(sql, params=params or None)
        if relation is None:  # not a query: the sandbox should have refused it
            raise PermissionDenied("only read-only queries run here", reason="STATEMENT_NOT_ALLOWED")
        return use(relation)
    except duckdb.Error as exc:
        raise translate(exc) from None


def translate(exc: duckdb.Error) -> Exception:
    """A DuckDB error as the caller should see it; unexpected ones stay as they are (INTERNAL)."""
    message = str(exc)
    if isinstance(exc, duckdb.IOException) and ("No files found" in message or "No such file" in message):
        return VersionFilesRemoved(
            "the files of this version were removed by vacuum, so it can no longer be read; read a newer version"
        )
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeout("the statement was interrupted: its time limit or the call's deadline passed")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return MemoryLimitExceeded(f"{message}; simplify the query or raise [query] memory_limit")
    if isinstance(exc, duckdb.ParserException):
        return invalid_field("sql", message, reason="INVALID_SQL")
    if isinstance(exc, duckdb.PermissionException):
        return PermissionDenied(message, reason="ACCESS_DENIED")
    if isinstance(exc, duckdb.InvalidInputException) and "parameter" in message.lower():
        return invalid_field("parameters", message, reason="INVALID_PARAMETER")
    if isinstance(
        exc,
        (
            duckdb.BinderException,
            duckdb.ConversionException,
            duckdb.InvalidInputException,
            duckdb.OutOfRangeException,
            duckdb.NotImplementedException,
            duckdb.TypeMismatchException,
            duckdb.CatalogException,
            duckdb.DataError,
            duckdb.ProgrammingError,
        ),
    ):
        return QueryFailed(message)
    return exc
