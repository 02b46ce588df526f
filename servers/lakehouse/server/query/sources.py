"""Staging of ingest sources: files through DuckDB's readers, databases through ADBC.

Blocking; the ingest domain runs these in its executor. Credentials of a source never leave
this module: lineage gets a redacted reference and driver errors are scrubbed of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from lakehouse.server.common.errors import LakehouseError, invalid_field
from lakehouse.server.common.names import MAX_SHORT_TEXT, check_text
from lakehouse.server.common.redact import redact_uri
from lakehouse.server.query import ingest
from lakehouse.server.query.errors import (
    InvalidSource,
    SourceAuthFailed,
    SourcePathNotAllowed,
    SourceTableNotFound,
    SourceUnavailable,
)
from lakehouse.server.query.ingest import FileOptions, Stage

_SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite", "duckdb": "duckdb"}
MAX_QUERY_CHARS = 1_000_000


def stage_file(
    path: Path,
    options: FileOptions,
    target: pa.Schema | None,
    stage_path: Path,
    batch_rows: int,
    progress: ingest.Progress,
) -> ingest.CopiedStage | ingest.StreamStage:
    """A local file parsed by DuckDB: written as Parquet in one pass where every column type has a
    DuckDB equivalent, else streamed as Arrow into the commit. Malformed input names DuckDB's line."""
    copied = ingest.copy_file(path, options, target, stage_path.with_suffix(".parts"))
    if copied is not None:
        progress(copied.rows, copied.bytes)
        return copied
    con, reader = ingest.read_file(path, options, target, batch_rows)

    def finish() -> None:
        con.close()

    try:
        return ingest.StreamStage(con, reader, target, progress, finish)
    except BaseException:
        con.close()
        raise


def skipped_rows(stage: ingest.StreamStage) -> ingest.StreamStage:
    """Records rows DuckDB skipped under BAD_ROW_HANDLING_SKIP (call after the commit)."""
    skipped, lines = ingest.rejected_rows(stage.source)
    if skipped:
        more = ", ..." if skipped > len(lines) else ""
        stage.rows_skipped = skipped
        stage.warnings = (
            *stage.warnings,
            f"skipped {skipped} malformed rows (lines {', '.join(map(str, lines))}{more})",
        )
    return stage


@dataclass(frozen=True)
class DatabaseSource:
    """A validated database source: which driver, where, and what to read."""

    driver: str
    target: str
    """What the driver connects to: a libpq URI or a local file path."""
    sql: str
    redacted_reference: str
    secret: str = ""
    """The password inside `target`, scrubbed from any driver message."""

    def scrub(self, message: str) -> str:
        message = message.replace(self.target, self.redacted_reference)
        return message.replace(self.secret, "***") if self.secret else message


def database_source(uri: str, driver: str, table: str, query: str, readable_dirs: list[Path]) -> DatabaseSource:
    """Checks an IngestDatabase request: driver, allowed file locations, table or query."""
    check_text("uri", uri, 4096, required=True)
    parts = urlsplit(uri)
    driver = driver or _SCHEMES.get(parts.scheme.split("+")[0].lower(), "")
    if driver not in ("postgresql", "sqlite", "duckdb"):
        raise invalid_field(
            "uri",
            "use postgresql://..., sqlite:///path/to/file.db or duckdb:///path/to/file.duckdb, or set driver",
            reason="INVALID_SOURCE_URI",
        )
    sql = _source_sql(table, query)
    reference = redact_uri(uri)
    if driver == "postgresql":
        libpq = uri.replace(parts.scheme + "://", "postgresql://", 1)
        return DatabaseSource(driver, libpq, sql, f"{reference} {_what(table)}", unquote(parts.password or ""))
    path = _local_file(uri, parts.path, readable_dirs)
    return DatabaseSource(driver, str(path), sql, f"{driver}://{path} {_what(table)}")


def _what(table: str) -> str:
    return f"table {table}" if table else "query"


def _source_sql(table: str, query: str) -> str:
    if bool(table) == bool(query):
        raise invalid_field("source", "give exactly one of table or query", reason="INVALID_SOURCE_QUERY")
    if query:
        return check_text("query", query, MAX_QUERY_CHARS)
    check_text("table", table, MAX_SHORT_TEXT)
    names = table.split(".")
    if any(not n for n in names) or len(names) > 3:
        raise invalid_field("table", "use name, schema.name or catalog.schema.name", reason="INVALID_SOURCE_QUERY")
    quoted = ".".join('"' + n.replace('"', '""') + '"' for n in names)
    return f"SELECT * FROM {quoted}"


def _local_file(uri: str, path_text: str, readable_dirs: list[Path]) -> Path:
    raw = unquote(path_text) if "://" in uri else uri
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise invalid_field(
            "uri", "give an absolute path, for example sqlite:///srv/imports/app.db", reason="INVALID_SOURCE_URI"
        )
    resolved = path.resolve()
    roots = [d.resolve() for d in readable_dirs]
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise SourcePathNotAllowed(
            f"{resolved} is outside the import directories ({allowed}); copy it there or add its directory to [query] import_dirs"
        )
    if not resolved.is_file():
        raise invalid_field("uri", f"no such file: {resolved}", reason="INVALID_SOURCE_URI")
    return resolved


def stage_database(
    source: DatabaseSource, target: pa.Schema | None, stage_path: Path, progress: ingest.Progress
) -> Stage:
    """Streams the source's rows through ADBC into a stage, batch by batch."""
    try:
        with _connect(source) as conn, conn.cursor() as cursor:
            cursor.execute(source.sql)
            reader = cursor.fetch_record_batch()
            return ingest.stage_batches(iter(reader), reader.schema, target, stage_path, progress)
    except LakehouseError:
        raise
    except Exception as exc:  # driver errors: classify, and never echo credentials
        raise _source_error(source, exc) from None


def _connect(source: DatabaseSource) -> Any:
    if source.driver == "postgresql":
        import adbc_driver_postgresql.dbapi as postgresql

        return postgresql.connect(source.target)
    if source.driver == "sqlite":
        import adbc_driver_sqlite.dbapi as sqlite

        return sqlite.connect(source.target)
    import adbc_driver_duckdb.dbapi as duckdb_adbc

    return duckdb_adbc.connect(source.target)


_AUTH_FAILED = re.compile(
    r"password authentication failed|authentication failed|no password supplied|role \".*\" does not exist"
)
_NO_TABLE = re.compile(r"relation \".*\" does not exist|no such table|table with name .* does not exist")


def _source_error(source: DatabaseSource, exc: Exception) -> LakehouseError:
    message = _first_lines(source.scrub(str(exc)))
    lowered = message.lower()
    if _AUTH_FAILED.search(lowered):
        return SourceAuthFailed(f"the source refused the credentials: {message}")
    if _NO_TABLE.search(lowered):
        return SourceTableNotFound(f"the source has no such table: {message}")
    if type(exc).__name__ in ("ProgrammingError", "NotSupportedError"):
        return InvalidSource(f"the source rejected the query: {message}")
    return SourceUnavailable(f"cannot read from the source: {message}", retry_after_s=1.0)


def _first_lines(message: str, limit: int = 6) -> str:
    return "\n".join([line for line in message.splitlines() if line.strip()][:limit])
