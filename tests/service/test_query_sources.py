"""IngestDatabase sources as untrusted input: locked-down DuckDB and SQLite files, PostgreSQL host
allowlist, credential scrubbing and error codes, through the real gRPC server.

Real SQLite and DuckDB files in <data_dir>/imports, a real PostgreSQL (the `postgres` fixture) and
a fake TCP "server" that answers garbage, to prove nothing it says reaches the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import duckdb
import grpc
import psycopg
import pytest

from lakehouse.client import token_metadata
from lakehouse.client.errors import (
    InvalidArgumentError,
    LakehouseClientError,
    NotFoundError,
    PermissionDeniedError,
)
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc
from lakehouse.server.common.auth import Principal
from lakehouse.server.common.config import QueryConfig, TokenConfig
from lakehouse.server.common.context import CallContext, reset_call, set_call
from lakehouse.server.query import sources
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.query import collect, error_text, query_client, rows, sample_tables, scalar

ADMIN_TOKEN = "sources-admin-token"
WRITER_TOKEN = "sources-writer-token"
PASSWD = Path("/etc/passwd")


# --- fixtures and helpers -------------------------------------------------------------------------


async def start_query_mesh(
    mesh_factory: MeshFactory, data_dir: Path, backends: Backends = Backends(), *, token: str | None = None, **query
) -> RunningMesh:
    config = make_config(data_dir, backends, flight_port=0)
    if query:
        config = replace(config, query=QueryConfig(**query))
    mesh = await start_mesh(config, None, token)
    mesh_factory.started.append(mesh)
    return mesh


@pytest.fixture
async def smesh(mesh_factory: MeshFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunningMesh:
    """A mesh with an admin and a writer token; the mesh's own clients use the admin token."""
    monkeypatch.setenv("TEST_SOURCES_ADMIN_TOKEN", ADMIN_TOKEN)
    tokens = (
        TokenConfig(principal="ops", role="admin", env="TEST_SOURCES_ADMIN_TOKEN"),
        TokenConfig(principal="loader", role="writer", sha256=hashlib.sha256(WRITER_TOKEN.encode()).hexdigest()),
    )
    return await start_query_mesh(mesh_factory, tmp_path / "data", Backends(tokens=tokens), token=ADMIN_TOKEN)


@pytest.fixture
def imports(smesh: RunningMesh) -> Path:
    """<data_dir>/imports with staff.db (SQLite) and staff.duckdb: 200 workers each."""
    directory = smesh.config.data_dir / "imports"
    directory.mkdir(parents=True, exist_ok=True)
    workers = sample_tables()["workers"].select(["worker_id", "full_name", "hourly_rate"])
    with contextlib.closing(sqlite3.connect(directory / "staff.db")) as conn:
        conn.execute("CREATE TABLE workers (worker_id INTEGER, full_name TEXT, hourly_rate REAL)")
        conn.executemany("INSERT INTO workers VALUES (?, ?, ?)", [tuple(r.values()) for r in workers.to_pylist()])
        conn.commit()
    with duckdb.connect(str(directory / "staff.duckdb")) as con:
        con.register("source", workers)
        con.execute("CREATE TABLE workers AS SELECT * FROM source")
    return directory


@pytest.fixture
def pg_source(postgres) -> dict:
    """A fresh database with a placements table, readable by a role with a password of its own."""
    suffix = uuid.uuid4().hex[:10]
    database, role, password = f"src_{suffix}", f"importer_{suffix}", f"Pw/{suffix}@s3cr3t"
    with psycopg.connect(postgres.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    conninfo = postgres.conninfo.replace(f"dbname={postgres.database}", f"dbname={database}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE placements (placement_id bigint PRIMARY KEY, role text, hours double precision)")
        conn.execute("INSERT INTO placements SELECT g, 'role ' || g, g * 1.5 FROM generate_series(1, 50) g")
        conn.execute(f'GRANT SELECT ON placements TO "{role}"')
    userinfo = f"{role}:{quote(password, safe='')}"
    return {
        "userinfo": userinfo,
        "port": postgres.port,
        "path": f"/{database}",
        "uri": f"postgresql://{userinfo}@{postgres.host}:{postgres.port}/{database}",
        "password": password,
        "encoded": quote(password, safe=""),
    }


async def ingest_database(mesh: RunningMesh, request: pb.IngestDatabaseRequest, token: str = WRITER_TOKEN):
    stub = pb_grpc.QueryServiceStub(mesh.channel)
    call = stub.IngestDatabase(request, timeout=60, metadata=tuple(token_metadata(token)()))
    return await collect(call)


async def refused(mesh: RunningMesh, request: pb.IngestDatabaseRequest, token: str = WRITER_TOKEN):
    with pytest.raises(LakehouseClientError) as err:
        await ingest_database(mesh, request, token)
    return err.value


async def assert_nothing_ingested(mesh: RunningMesh) -> None:
    """No dataset exists, and no file under the data directory holds a line of /etc/passwd."""
    assert [t.name for t in await query_client(mesh, ADMIN_TOKEN).list_tables()] == []
    secret = PASSWD.read_bytes().splitlines()[0]
    for path in mesh.config.data_dir.rglob("*"):
        if path.is_file() and path.suffix not in (".db", ".duckdb"):
            assert secret not in path.read_bytes(), path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- DuckDB files ---------------------------------------------------------------------------------


async def test_duckdb_source_cannot_read_write_attach_or_install(smesh, imports, tmp_path) -> None:
    source = f"duckdb:///{imports / 'staff.duckdb'}"
    written, attached = tmp_path / "x.csv", tmp_path / "a.duckdb"
    exploits = {
        f"SELECT * FROM read_text('{PASSWD}')": ("TABLE_FUNCTION_NOT_ALLOWED",),
        f"SELECT content FROM read_text('{PASSWD}')": ("TABLE_FUNCTION_NOT_ALLOWED",),
        f"SELECT * FROM '{PASSWD}'": ("SOURCE_TABLE_NOT_FOUND", "QUALIFIED_NAME_NOT_ALLOWED"),
        f"SELECT * FROM read_csv('{PASSWD}', sep=':')": ("TABLE_FUNCTION_NOT_ALLOWED",),
        f"SELECT (SELECT string_agg(content) FROM read_text('{PASSWD}')) AS x": ("TABLE_FUNCTION_NOT_ALLOWED",),
        f"COPY (SELECT 'owned' AS x) TO '{written}'": ("STATEMENT_NOT_ALLOWED",),
        f"SELECT 1 AS x; COPY (SELECT 'owned' AS x) TO '{written}'": ("INVALID_SOURCE_QUERY",),
        f"ATTACH '{attached}'": ("STATEMENT_NOT_ALLOWED",),
        "INSTALL httpfs": ("STATEMENT_NOT_ALLOWED",),
        "LOAD httpfs": ("STATEMENT_NOT_ALLOWED",),
        "SET enable_external_access = true": ("STATEMENT_NOT_ALLOWED",),
        "SELECT current_setting('enable_external_access') AS x": ("FUNCTION_NOT_ALLOWED",),
        "SELECT * FROM duckdb_settings()": ("TABLE_FUNCTION_NOT_ALLOWED",),
        "DESCRIBE workers": ("STATEMENT_NOT_ALLOWED",),
    }
    for query, reasons in exploits.items():
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="stolen", uri=source, query=query))
        assert error.reason in reasons, (query, error)
        assert error.code in (
            grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        )
    assert not written.exists() and not attached.exists()
    await assert_nothing_ingested(smesh)


async def test_a_duckdb_file_whose_view_reads_server_files_is_refused_by_the_locked_connection(smesh, imports) -> None:
    """A view defined inside the file bypasses the query check; the connection itself has no file access."""
    with duckdb.connect(str(imports / "views.duckdb")) as con:
        con.execute(f"CREATE VIEW leak AS SELECT content FROM read_text('{PASSWD}')")
    source = f"duckdb:///{imports / 'views.duckdb'}"
    for request in (
        pb.IngestDatabaseRequest(dataset="stolen", uri=source, table="leak"),
        pb.IngestDatabaseRequest(dataset="stolen", uri=source, query="SELECT * FROM leak"),
    ):
        error = await refused(smesh, request)
        assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "STATEMENT_NOT_ALLOWED"), error
    await assert_nothing_ingested(smesh)


async def test_duckdb_source_leaves_the_file_unchanged(smesh, imports) -> None:
    path = imports / "staff.duckdb"
    before = path.read_bytes()
    for query in ("DROP TABLE workers", "DELETE FROM workers", "CREATE TABLE t AS SELECT 1 AS x", "CHECKPOINT"):
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=f"duckdb:///{path}", query=query))
        assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "STATEMENT_NOT_ALLOWED"), query
    assert path.read_bytes() == before
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM workers").fetchone() == (200,)


# --- SQLite files ---------------------------------------------------------------------------------


async def test_sqlite_source_cannot_attach_pragma_or_write(smesh, imports, tmp_path) -> None:
    path = imports / "staff.db"
    before = path.read_bytes()
    anywhere = tmp_path / "anywhere.db"
    exploits = {
        f"ATTACH '{anywhere}' AS e": "STATEMENT_NOT_ALLOWED",
        f"SELECT 1; ATTACH '{anywhere}' AS e": "INVALID_SOURCE_QUERY",
        "PRAGMA writable_schema = 1": "STATEMENT_NOT_ALLOWED",
        "SELECT * FROM pragma_table_info('workers')": "STATEMENT_NOT_ALLOWED",
        f"VACUUM INTO '{anywhere}'": "STATEMENT_NOT_ALLOWED",
        "INSERT INTO workers VALUES (1, 'x', 1.0) RETURNING *": "STATEMENT_NOT_ALLOWED",
        "DELETE FROM workers RETURNING *": "STATEMENT_NOT_ALLOWED",
        "CREATE TABLE t AS SELECT 1": "STATEMENT_NOT_ALLOWED",
        "SELECT load_extension('/tmp/evil')": "STATEMENT_NOT_ALLOWED",
    }
    for query, reason in exploits.items():
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="stolen", uri=f"sqlite:///{path}", query=query))
        assert error.reason == reason, (query, error)
    assert not anywhere.exists()
    assert path.read_bytes() == before
    await assert_nothing_ingested(smesh)


# --- legitimate ingests still work ------------------------------------------------------------------


async def test_table_and_query_ingests_work_for_sqlite_and_duckdb(smesh, imports) -> None:
    q = query_client(smesh, ADMIN_TOKEN)
    expected = sample_tables()["workers"].select(["worker_id", "full_name", "hourly_rate"]).to_pylist()
    for driver, name in (("sqlite", "staff.db"), ("duckdb", "staff.duckdb")):
        uri = f"{driver}:///{imports / name}"
        _, table = await ingest_database(
            smesh, pb.IngestDatabaseRequest(dataset=f"{driver}_t", uri=uri, table="workers")
        )
        query = (
            "WITH cheap AS (SELECT worker_id FROM workers WHERE hourly_rate < 30) "
            "SELECT w.worker_id, upper(w.full_name) AS name FROM workers w JOIN cheap c ON c.worker_id = w.worker_id; "
        )
        _, queried = await ingest_database(smesh, pb.IngestDatabaseRequest(dataset=f"{driver}_q", uri=uri, query=query))
        assert table.rows_written == 200
        assert queried.rows_written == sum(1 for w in expected if w["hourly_rate"] < 30)
        assert await rows(q, f"SELECT * FROM {driver}_t ORDER BY worker_id") == expected
        assert await scalar(q, f"SELECT min(name) = upper(min(name)) FROM {driver}_q")


async def test_postgresql_table_and_query_ingests_work_for_a_writer_on_loopback(smesh, pg_source) -> None:
    q = query_client(smesh, ADMIN_TOKEN)
    for host in ("127.0.0.1", "localhost"):
        uri = f"postgresql://{pg_source['userinfo']}@{host}:{pg_source['port']}{pg_source['path']}"
        _, table = await ingest_database(
            smesh, pb.IngestDatabaseRequest(dataset=f"t_{host.replace('.', '_')}", uri=uri, table="public.placements")
        )
        assert table.rows_written == 50
    _, queried = await ingest_database(
        smesh,
        pb.IngestDatabaseRequest(dataset="q", uri=pg_source["uri"], query="SELECT * FROM placements WHERE hours > 30"),
    )
    assert queried.rows_written == 30
    assert await scalar(q, "SELECT sum(placement_id) FROM t_localhost") == 1275


# --- PostgreSQL hosts ---------------------------------------------------------------------------------


async def test_other_postgresql_hosts_are_refused_for_a_writer_but_not_for_an_admin(smesh, pg_source) -> None:
    other = f"postgresql://{pg_source['userinfo']}@127.0.0.2:{pg_source['port']}{pg_source['path']}"
    error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=other, table="placements"))
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SOURCE_HOST_NOT_ALLOWED")
    assert f"127.0.0.2:{pg_source['port']}" in error.message and "database_hosts" in error.message
    for sneaky in (
        f"{pg_source['uri']}?host=10.1.2.3",
        f"{pg_source['uri']}?hostaddr=10.1.2.3",
        f"{pg_source['uri']}?service=other",
        f"{pg_source['uri']}?sslrootcert=/etc/passwd",
    ):
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=sneaky, table="placements"))
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_URI"), sneaky
    multi = f"postgresql://{pg_source['userinfo']}@127.0.0.1:{pg_source['port']},10.9.9.9{pg_source['path']}"
    error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=multi, table="placements"))
    assert error.reason == "SOURCE_HOST_NOT_ALLOWED" and "10.9.9.9:5432" in error.message

    # An admin may go anywhere: nothing listens on 127.0.0.2, so the fixed connection message comes back.
    error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=other, table="placements"), ADMIN_TOKEN)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "SOURCE_UNAVAILABLE")
    assert error.message == f"cannot connect to 127.0.0.2:{pg_source['port']}"
    for secret in (pg_source["password"], pg_source["encoded"]):
        assert secret not in error_text(error)


def test_listed_hosts_and_patterns_are_allowed_for_a_writer() -> None:
    token = set_call(CallContext("r1", "IngestDatabase", Principal("loader", "writer")))
    try:
        allowed = ("db.internal:6543", "*.warehouse.example", "[fd00::5]:5432")

        def check(uri: str, hosts: tuple[str, ...] = allowed) -> sources.DatabaseSource:
            return sources.database_source(uri, "", "t", "", [], hosts)

        assert check("postgresql://u:p@db.internal:6543/app").endpoints == ("db.internal:6543",)
        assert check("postgresql://u:p@PG1.Warehouse.example/app").endpoints == ("pg1.warehouse.example:5432",)
        assert check("postgresql://u:p@[fd00::5]/app").endpoints == ("[fd00::5]:5432",)
        for uri in (
            "postgresql://u:p@db.internal/app",  # listed with another port
            "postgresql://u:p@127.0.0.1/app",  # loopback is no longer implied once hosts are listed
            "postgresql://u:p@warehouse.example.evil.com/app",
        ):
            with pytest.raises(sources.SourceHostNotAllowed):
                check(uri)
        assert check("postgresql://u:p@[::1]:5432/app", ()).endpoints == ("[::1]:5432",)
        assert check("postgresql://u:p@/app", ()).endpoints == ("localhost:5432",)  # the local socket
        with pytest.raises(sources.SourceHostNotAllowed):
            check("postgresql://u:p@%2Fvar%2Frun%2Fother/app", ())
        source = check("postgresql://u:p@localhost/app", ())
        assert "connect_timeout=" in source.target
    finally:
        reset_call(token)
    # Outside a call (and for admins) every host is allowed.
    assert sources.database_source("postgresql://u:p@10.0.0.1/app", "", "t", "", []).endpoints == ("10.0.0.1:5432",)


async def test_a_garbage_answer_is_not_echoed_and_open_and_closed_ports_look_alike(smesh, pg_source) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nServer: secret-internal-thing\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    open_port = server.sockets[0].getsockname()[1]
    closed_port = free_port()
    try:
        for port in (open_port, closed_port):
            uri = f"postgresql://{pg_source['userinfo']}@127.0.0.1:{port}{pg_source['path']}"
            error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=uri, table="placements"))
            assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "SOURCE_UNAVAILABLE")
            assert error.message == f"cannot connect to 127.0.0.1:{port}"
            text = error_text(error)
            assert "HTTP" not in text and "secret-internal" not in text and "SSL" not in text
    finally:
        server.close()
        await server.wait_closed()


# --- scrubbing ------------------------------------------------------------------------------------


def test_scrub_masks_credentials_but_not_parts_of_other_words() -> None:
    short = sources.database_source("postgresql://importer:p@localhost:5432/app", "", "t", "", [])
    assert short.scrub("[libpq] could not connect: pq error") == "[libpq] could not connect: pq error"
    assert "p@" not in short.scrub("see postgresql://importer:p@localhost:5432/app?x=1 for details")
    assert short.scrub("conninfo host=h password=p user=u") == "conninfo host=h password=*** user=u"
    assert short.scrub("password='p q' user=u") == "password=*** user=u"

    long_secret = "Hunter2/Sesame@9"
    uri = f"postgresql://importer:{quote(long_secret, safe='')}@localhost/app"
    source = sources.database_source(uri, "", "t", "", [])
    for message in (
        f"failed for {uri}",
        f"echo {long_secret} here",
        f"encoded {quote(long_secret, safe='')} here",
        f"mysql://root:{long_secret}@other/db",
    ):
        scrubbed = source.scrub(message)
        assert long_secret not in scrubbed and quote(long_secret, safe="") not in scrubbed, scrubbed
    assert source.scrub("xHunter2/Sesame@9x stays") == "xHunter2/Sesame@9x stays"


# --- error codes ------------------------------------------------------------------------------------


async def test_user_mistakes_are_invalid_argument_or_not_found_not_unavailable(smesh, imports, pg_source) -> None:
    cases = [
        (
            f"duckdb:///{imports / 'staff.duckdb'}",
            "SELECT nope FROM workers",
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SOURCE_QUERY",
        ),
        (
            f"duckdb:///{imports / 'staff.duckdb'}",
            "SELEC worker_id FROM workers",
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SOURCE_QUERY",
        ),
        (
            f"duckdb:///{imports / 'staff.duckdb'}",
            "SELECT * FROM nope",
            grpc.StatusCode.NOT_FOUND,
            "SOURCE_TABLE_NOT_FOUND",
        ),
        (
            f"duckdb:///{imports / 'staff.duckdb'}",
            "SELECT 'x'::INT AS v",
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SOURCE_QUERY",
        ),
        (f"sqlite:///{imports / 'staff.db'}", "SELEC 1", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_QUERY"),
        (
            f"sqlite:///{imports / 'staff.db'}",
            "SELECT * FROM nope",
            grpc.StatusCode.NOT_FOUND,
            "SOURCE_TABLE_NOT_FOUND",
        ),
        (
            f"sqlite:///{imports / 'staff.db'}",
            "SELECT nope FROM workers",
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_SOURCE_QUERY",
        ),
        (pg_source["uri"], "SELEC 1", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_QUERY"),
        (pg_source["uri"], "SELECT nope FROM placements", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_QUERY"),
        (pg_source["uri"], "SELECT * FROM nope", grpc.StatusCode.NOT_FOUND, "SOURCE_TABLE_NOT_FOUND"),
    ]
    for uri, query, code, reason in cases:
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=uri, query=query))
        assert (error.code, error.reason) == (code, reason), (uri.split(":")[0], query, error)
    await assert_nothing_ingested(smesh)


async def test_sources_without_columns_or_with_duplicate_names_are_refused(smesh, imports, pg_source) -> None:
    error = await refused(
        smesh, pb.IngestDatabaseRequest(dataset="x", uri=pg_source["uri"], query="SELECT FROM placements")
    )
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_QUERY")
    assert "no columns" in error.message
    for uri, query in (
        (pg_source["uri"], "SELECT placement_id AS a, hours AS a FROM placements"),
        (f"sqlite:///{imports / 'staff.db'}", "SELECT worker_id AS a, full_name AS A FROM workers"),
        (f"duckdb:///{imports / 'staff.duckdb'}", "SELECT worker_id AS a, full_name AS a FROM workers"),
    ):
        error = await refused(smesh, pb.IngestDatabaseRequest(dataset="x", uri=uri, query=query))
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SOURCE_QUERY"), uri
        assert "named a" in error.message or "named A" in error.message
    await assert_nothing_ingested(smesh)


async def test_files_that_are_not_databases_are_invalid_uris(smesh, imports) -> None:
    (imports / "notes.txt").write_text("hello\n")
    for driver in ("sqlite", "duckdb"):
        uri = f"{driver}:///{imports / 'notes.txt'}"
        with pytest.raises(InvalidArgumentError) as err:
            await ingest_database(smesh, pb.IngestDatabaseRequest(dataset="x", uri=uri, query="SELECT 1 AS x"))
        assert err.value.reason == "INVALID_SOURCE_URI", driver
    with pytest.raises(NotFoundError):
        await ingest_database(
            smesh, pb.IngestDatabaseRequest(dataset="x", uri=f"sqlite:///{imports / 'staff.db'}", table="nope")
        )
    with pytest.raises(PermissionDeniedError):
        await ingest_database(
            smesh,
            pb.IngestDatabaseRequest(dataset="x", uri=f"duckdb:///{imports / 'staff.duckdb'}", query="PRAGMA version"),
        )
