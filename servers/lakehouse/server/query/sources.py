"""Staging of ingest sources: files through DuckDB's readers, databases through ADBC or DuckDB.

Blocking; the ingest domain runs these in its executor. Credentials of a source never leave
this module: lineage gets a redacted reference and driver errors are scrubbed of them.

Database sources are untrusted input from any writer, so:
- DuckDB files open read-only with external access, extensions and configuration changes off,
  and a caller's query must pass the SQL sandbox (one SELECT over the file's own tables).
- SQLite files open read-only (`mode=ro`); a caller's query is first compiled by SQLite with an
  authorizer that allows reading only (no ATTACH, PRAGMA or writes), then run through ADBC.
- PostgreSQL hosts must match [query] database_hosts (loopback when empty) unless the caller is
  an admin; connection failures get fixed messages, never what the other end answered.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

import duckdb
import pyarrow as pa

from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import (
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    invalid_field,
)
from lakehouse.server.common.names import MAX_SHORT_TEXT, check_text
from lakehouse.server.common.redact import MASK, redact_uri
from lakehouse.server.query import ingest, sandbox
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
DEFAULT_BATCH_ROWS = 65_536
MIN_WORD_SECRET = 4
"""A password this long is also scrubbed where it stands as a word of its own."""
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
PG_PORT = 5432
CONNECT_TIMEOUT_S = 10
PG_PARAMETERS = frozenset(
    {"sslmode", "connect_timeout", "application_name", "client_encoding", "target_session_attrs", "dbname", "user"}
)
"""libpq URI parameters a caller may set; the rest (host, hostaddr, service, passfile, sslkey,
sslrootcert, ...) could reach other hosts or read server files."""


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
    is_query: bool = False
    """`sql` is the caller's own query (checked before it runs), not one built from a table name."""
    endpoints: tuple[str, ...] = ()
    """host:port of each PostgreSQL server the URI names, for messages that must not echo the server."""
    user: str = ""
    database: str = ""
    batch_rows: int = DEFAULT_BATCH_ROWS

    def scrub(self, message: str) -> str:
        """Removes credentials: the whole target, URI userinfo, `password=...` and the password as a whole word."""
        message = redact_uri(message.replace(self.target, self.redacted_reference)) if self.target else message
        for secret in {self.secret, quote(self.secret, safe="")} if len(self.secret) >= MIN_WORD_SECRET else ():
            message = re.sub(rf"(?<![\w%]){re.escape(secret)}(?![\w%])", MASK, message)
        return message

    @property
    def where(self) -> str:
        return ", ".join(self.endpoints) or "the source"


def database_source(
    uri: str,
    driver: str,
    table: str,
    query: str,
    readable_dirs: list[Path],
    hosts: Sequence[str] = (),
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> DatabaseSource:
    """Checks an IngestDatabase request: driver, allowed hosts or file locations, table or query.

    `hosts` is [query] database_hosts: the PostgreSQL hosts (or host:port, glob patterns) a
    non-admin caller may reach; empty allows loopback only.
    """
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
        return _postgresql_source(uri, parts, sql, f"{reference} {_what(table)}", bool(query), hosts)
    path = _local_file(uri, parts.path, readable_dirs)
    return DatabaseSource(
        driver, str(path), sql, f"{driver}://{path} {_what(table)}", is_query=bool(query), batch_rows=batch_rows
    )


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


# --- PostgreSQL: which hosts ------------------------------------------------------------------------


def _postgresql_source(
    uri: str, parts: SplitResult, sql: str, reference: str, is_query: bool, hosts: Sequence[str]
) -> DatabaseSource:
    params = parse_qsl(parts.query, keep_blank_values=True)
    refused = sorted({key for key, _ in params if key not in PG_PARAMETERS})
    if refused:
        raise invalid_field(
            "uri",
            f"connection parameter {', '.join(refused)} is not allowed; allowed: {', '.join(sorted(PG_PARAMETERS))}",
            reason="INVALID_SOURCE_URI",
        )
    endpoints = _endpoints(parts.netloc.rpartition("@")[2])
    if current_principal().role != "admin":
        for host, port in endpoints:
            if not _host_allowed(host, port, hosts):
                shown = _endpoint(host, port)
                allowed = ", ".join(hosts) if hosts else "loopback only (localhost, 127.0.0.1, ::1)"
                raise SourceHostNotAllowed(
                    f"PostgreSQL host {shown} is not allowed (allowed: {allowed}); an admin can add it "
                    "to [query] database_hosts",
                    metadata={"host": shown, "setting": "query.database_hosts"},
                )
    libpq = uri.replace(parts.scheme + "://", "postgresql://", 1)
    if not any(key == "connect_timeout" for key, _ in params):
        libpq += ("&" if parts.query else ("" if libpq.endswith("?") else "?")) + f"connect_timeout={CONNECT_TIMEOUT_S}"
    return DatabaseSource(
        "postgresql",
        libpq,
        sql,
        reference,
        unquote(parts.password or ""),
        is_query=is_query,
        endpoints=tuple(_endpoint(h, p) for h, p in endpoints),
        user=unquote(parts.username or ""),
        database=unquote(parts.path.lstrip("/")),
    )


def _endpoints(netloc: str) -> list[tuple[str, int]]:
    """(host, port) for each of libpq's comma-separated hosts; "" is the local socket."""
    found = []
    for item in netloc.split(","):
        host, port = _split_host(unquote(item))
        if port is not None and not port.isdigit():
            raise invalid_field("uri", f"not a port number: {port}", reason="INVALID_SOURCE_URI")
        found.append((host.lower(), int(port) if port else PG_PORT))
    return found


def _split_host(text: str) -> tuple[str, str | None]:
    """ "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def _host_allowed(host: str, port: int, hosts: Sequence[str]) -> bool:
    if not hosts:
        return host in LOOPBACK or not host  # no host: libpq's local Unix socket
    for pattern in hosts:
        want_host, want_port = _split_host(pattern.strip().lower())
        if fnmatchcase(host or "localhost", want_host) and (not want_port or want_port == str(port)):
            return True
    return False


def _endpoint(host: str, port: int) -> str:
    host = host or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- staging --------------------------------------------------------------------------------------


def stage_database(
    source: DatabaseSource, target: pa.Schema | None, stage_path: Path, progress: ingest.Progress
) -> Stage:
    """Streams the source's rows into a stage, batch by batch: PostgreSQL and SQLite through ADBC,
    DuckDB files through a read-only, locked-down DuckDB connection."""
    if source.driver == "duckdb":
        return _stage_duckdb(source, target, stage_path, progress)
    if source.driver == "sqlite":
        _check_sqlite(source)
    try:
        conn = _connect(source)
    except LakehouseError:
        raise
    except Exception as exc:
        raise _connect_error(source, exc) from None
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(source.sql)
            reader = cursor.fetch_record_batch()
            _check_columns(reader.schema)
            return ingest.stage_batches(iter(reader), reader.schema, target, stage_path, progress)
    except LakehouseError:
        raise
    except Exception as exc:  # driver errors: classify, and never echo credentials
        raise _source_error(source, exc) from None


def _connect(source: DatabaseSource) -> Any:
    if source.driver == "postgresql":
        import adbc_driver_postgresql.dbapi as postgresql

        return postgresql.connect(source.target)
    import adbc_driver_sqlite.dbapi as sqlite

    return sqlite.connect(_sqlite_read_only_uri(source.target))


def _check_columns(schema: pa.Schema) -> None:
    if len(schema) == 0:
        raise InvalidSource("the source query returns no columns: select at least one column")
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for name in schema.names:
        if name.lower() in seen and name not in duplicates:
            duplicates.append(name)
        seen.setdefault(name.lower(), name)
    if duplicates:
        raise InvalidSource(
            f"the source returns more than one column named {', '.join(duplicates)} "
            "(names are compared ignoring case); give each column its own alias",
            metadata={"columns": ",".join(duplicates)},
        )


# --- SQLite: read-only, one SELECT ------------------------------------------------------------------


def _sqlite_read_only_uri(path: str) -> str:
    return f"file:{quote(path)}?mode=ro"


# Actions a read-only SELECT compiles to; anything else (ATTACH, PRAGMA, writes, ...) is refused.
_SQLITE_ALLOWED = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_SQLITE_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
_SQLITE_ACTIONS = {  # authorizer action codes, named for the refusal message
    getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ")
    for name in (
        *("SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_PRAGMA", "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE"),
        *("SQLITE_CREATE_TABLE", "SQLITE_CREATE_VIEW", "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_VIEW"),
        *("SQLITE_CREATE_INDEX", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_TABLE"),
        *("SQLITE_DROP_VIEW", "SQLITE_ALTER_TABLE", "SQLITE_ANALYZE", "SQLITE_REINDEX", "SQLITE_TRANSACTION"),
        *("SQLITE_SAVEPOINT", "SQLITE_FUNCTION"),
    )
}


# Some statements (VACUUM INTO, for one) compile without any authorizer call, so the statement must
# also open like a query; WITH ... INSERT/UPDATE/DELETE is then refused by the authorizer.
_SQLITE_READ_STATEMENT = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(?:select|with|values)\b", re.I | re.S)


def _check_sqlite(source: DatabaseSource) -> None:
    """Compiles the statement (EXPLAIN: nothing runs) in SQLite's own read-only mode, with an
    authorizer that allows only reading; the exact text then runs through ADBC, read-only too."""
    denied: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action in _SQLITE_ALLOWED and not (
            action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SQLITE_DENIED_FUNCTIONS
        ):
            return sqlite3.SQLITE_OK
        denied.append(_SQLITE_ACTIONS.get(action, f"action {action}") + (f" {arg2 or arg1}" if arg2 or arg1 else ""))
        return sqlite3.SQLITE_DENY

    try:
        conn = sqlite3.connect(_sqlite_read_only_uri(source.target), uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise invalid_field("uri", f"cannot open the SQLite file: {exc}", reason="INVALID_SOURCE_URI") from None
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchall()  # is it a database at all
        conn.set_authorizer(authorize)
        conn.execute("EXPLAIN " + source.sql).fetchall()
    except sqlite3.ProgrammingError as exc:  # more than one statement
        raise InvalidSource(f"the source query must be one SELECT statement: {exc}") from None
    except sqlite3.DatabaseError as exc:
        if denied:
            raise SourceStatementNotAllowed(
                f"only one read-only SELECT may run on a SQLite source; refused: {denied[0]}",
                metadata={"statement": denied[0]},
            ) from None
        message = str(exc)
        if "file is not a database" in message:
            raise invalid_field("uri", "not a SQLite database file", reason="INVALID_SOURCE_URI") from None
        if _NO_TABLE.search(message.lower()):
            raise SourceTableNotFound(f"the source has no such table: {message}") from None
        raise InvalidSource(f"the source rejected the query: {message}") from None
    finally:
        conn.close()

    if not _SQLITE_READ_STATEMENT.match(source.sql):
        raise SourceStatementNotAllowed(
            "only one read-only SELECT (or WITH ... SELECT, VALUES) may run on a SQLite source",
            metadata={"statement": source.sql.split(None, 1)[0].upper() if source.sql.split() else ""},
        )


# --- DuckDB: a read-only, locked-down connection ------------------------------------------------------

# No files besides the database itself, no network, no extensions, no changing any of that.
DUCKDB_SOURCE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}
_DUCKDB_NAMES = """
SELECT table_name FROM duckdb_tables()
 WHERE database_name = current_database() AND schema_name = current_schema()
UNION ALL
SELECT view_name FROM duckdb_views()
 WHERE NOT internal AND database_name = current_database() AND schema_name = current_schema()
"""


def _stage_duckdb(
    source: DatabaseSource, target: pa.Schema | None, stage_path: Path, progress: ingest.Progress
) -> Stage:
    try:
        con = duckdb.connect(source.target, read_only=True, config=dict(DUCKDB_SOURCE_CONFIG))
    except duckdb.Error as exc:
        raise _duckdb_open_error(exc) from None
    try:
        sql = source.sql
        if source.is_query:
            visible = [str(row[0]) for row in con.execute(_DUCKDB_NAMES).fetchall()]
            sql = _checked_duckdb_query(sql, visible)
        relation = con.sql(sql)
        if relation is None:  # not a query: the checks above should have refused it
            raise SourceStatementNotAllowed("the source query must be a SELECT")
        reader: pa.RecordBatchReader = relation.to_arrow_reader(source.batch_rows)
        _check_columns(reader.schema)
        return ingest.stage_batches(iter(reader), reader.schema, target, stage_path, progress)
    except LakehouseError:
        raise
    except duckdb.Error as exc:
        raise _duckdb_error(exc) from None
    finally:
        con.close()


def _checked_duckdb_query(sql: str, visible: list[str]) -> str:
    """The sandbox's check: one SELECT that reads the file's own tables and nothing else."""
    try:
        checked = sandbox.check_statement(sql, visible)
    except NotFound as exc:
        raise SourceTableNotFound(f"the source has no such table: {exc.message}", metadata=exc.metadata) from None
    except PermissionDenied as exc:
        raise PermissionDenied(
            f"the source query is refused: {exc.message}", reason=exc.reason, metadata=exc.metadata
        ) from None
    except InvalidArgument as exc:
        raise InvalidSource(f"the source query is not valid: {exc.message}") from None
    if checked.kind != "SELECT":
        raise SourceStatementNotAllowed(
            f"the source query must be a SELECT, not {checked.kind}", metadata={"statement": checked.kind}
        )
    return checked.sql


def _duckdb_open_error(exc: duckdb.Error) -> LakehouseError:
    message = _first_lines(str(exc))
    if isinstance(exc, duckdb.IOException) and "lock" in message.lower():
        return SourceUnavailable(f"the DuckDB file is in use: {message}", retry_after_s=1.0)
    return invalid_field("uri", f"cannot open the file as a DuckDB database: {message}", reason="INVALID_SOURCE_URI")


def _duckdb_error(exc: duckdb.Error) -> LakehouseError:
    message = _first_lines(str(exc))
    if isinstance(exc, duckdb.CatalogException) and _NO_TABLE.search(message.lower()):
        return SourceTableNotFound(f"the source has no such table: {message}")
    if isinstance(exc, duckdb.PermissionException):
        return SourceStatementNotAllowed(
            f"the source query needs file, network or extension access, which is off for DuckDB sources: {message}"
        )
    if isinstance(exc, duckdb.ProgrammingError | duckdb.DataError | duckdb.ConversionException):
        return InvalidSource(f"the source rejected the query: {message}")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return SourceUnavailable(f"the source ran out of memory: {message}", retry_after_s=5.0)
    return SourceUnavailable(f"cannot read from the source: {message}", retry_after_s=1.0)


# --- errors -------------------------------------------------------------------------------------------


class SourceHostNotAllowed(PermissionDenied):
    reason = "SOURCE_HOST_NOT_ALLOWED"


class SourceStatementNotAllowed(PermissionDenied):
    reason = "STATEMENT_NOT_ALLOWED"


_AUTH_FAILED = re.compile(
    r"password authentication failed|authentication failed|no password supplied|role \".*\" does not exist"
)
_NO_DATABASE = re.compile(r"database \".*\" does not exist")
_NO_TABLE = re.compile(r"relation \".*\" does not exist|no such table|table with name .* does not exist")


def _connect_error(source: DatabaseSource, exc: Exception) -> LakehouseError:
    """A failed connection: fixed messages only, so a probe learns nothing of what answered."""
    lowered = str(exc).lower()
    if _AUTH_FAILED.search(lowered):
        return SourceAuthFailed(f"{source.where} refused the credentials of user {source.user!r}")
    if _NO_DATABASE.search(lowered):
        return invalid_field(
            "uri", f"database {source.database!r} does not exist at {source.where}", reason="INVALID_SOURCE_URI"
        )
    return SourceUnavailable(f"cannot connect to {source.where}", retry_after_s=1.0)


def _source_error(source: DatabaseSource, exc: Exception) -> LakehouseError:
    message = _first_lines(source.scrub(str(exc)))
    lowered = message.lower()
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    if _AUTH_FAILED.search(lowered):
        return SourceAuthFailed(f"the source refused the credentials: {message}")
    if _NO_TABLE.search(lowered) or sqlstate == "42P01":
        return SourceTableNotFound(f"the source has no such table: {message}")
    if sqlstate.startswith("08"):
        return SourceUnavailable(f"lost the connection to {source.where}", retry_after_s=1.0)
    if sqlstate.startswith(("42", "22")) or type(exc).__name__ in (
        "ProgrammingError",
        "NotSupportedError",
        "DataError",
    ):
        return InvalidSource(f"the source rejected the query: {message}")
    return SourceUnavailable(f"cannot read from the source: {message}", retry_after_s=1.0)


def _first_lines(message: str, limit: int = 6) -> str:
    return "\n".join([line for line in message.splitlines() if line.strip()][:limit])
