"""Query service through its real gRPC and Arrow Flight servers: ingest, SQL, sandbox, Flight, ADBC.

Real DuckDB and Delta tables on local disk and on S3 (moto), a real PostgreSQL for ADBC, the
deterministic staffing sample (200 workers) as data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import sqlite3
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import boto3
import duckdb
import grpc
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.cli import sample
from lakehouse.client.errors import (
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    LakehouseClientError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    from_rpc_error,
)
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient, file_options
from lakehouse.common.v1 import refs_pb2
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc
from lakehouse.server.common.config import QueryConfig, TokenConfig
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, RunningMesh, eventually, make_config, start_mesh
from tests.support.query import (
    chunks,
    collect,
    commit,
    error_text,
    extra_workers,
    flight_location,
    header,
    in_thread,
    ingest_bytes,
    query_client,
    raw_ingest,
    rows,
    sample_file,
    sample_tables,
    scalar,
    schema_of,
)

WORKER_TYPES = {
    "worker_id": pa.int64(),
    "full_name": pa.string(),
    "email": pa.string(),
    "phone": pa.string(),
    "hourly_rate": pa.float64(),
    "hired_on": pa.date32(),
    "active": pa.bool_(),
}
LONG_SQL = "SELECT sum(hash(range)) FROM range(1000000000000)"  # about an hour on two threads
SLOW_SQL = "SELECT sum(hash(range)) FROM range(1000000000)"  # a few seconds
ADMIN_TOKEN = "query-admin-token"
WRITER_TOKEN = "query-writer-token"
READER_TOKEN = "query-reader-token"


# --- fixtures and helpers -------------------------------------------------------------------------


async def start_query_mesh(
    mesh_factory: MeshFactory,
    data_dir: Path,
    backends: Backends = Backends(),
    *,
    token: str | None = None,
    **query: object,
) -> RunningMesh:
    """A mesh with its own [query] settings and Flight on a free port, stopped after the test."""
    config = make_config(data_dir, backends, flight_port=0)
    if query:
        config = replace(config, query=QueryConfig(**query))  # type: ignore[arg-type]
    mesh = await start_mesh(config, None, token)
    mesh_factory.started.append(mesh)
    return mesh


@pytest.fixture
async def qmesh(mesh_factory: MeshFactory, tmp_path: Path) -> RunningMesh:
    return await start_query_mesh(mesh_factory, tmp_path / "data")


@pytest.fixture
def q(qmesh: RunningMesh) -> AsyncQueryClient:
    return query_client(qmesh)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    return tmp_path / "files"


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def table_root(mesh: RunningMesh, dataset: str) -> Path:
    """The newest table folder of `dataset` (each incarnation of a name gets its own)."""
    root = mesh.config.data_dir / "buckets" / "default" / "_lakehouse" / "datasets"
    found = sorted(root.glob(f"{dataset}-*"), key=lambda p: p.stat().st_mtime) if root.exists() else []
    return found[-1] if found else root / f"{dataset}-missing"


def spooled(mesh: RunningMesh) -> list[Path]:
    spool = mesh.config.data_dir / "query" / "spool"
    return sorted(spool.iterdir()) if spool.exists() else []


def s3_keys(mesh: RunningMesh, bucket_uri: str, dataset: str) -> list[str]:
    bucket, _, prefix = bucket_uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=mesh.config.storage.s3.endpoint, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/_lakehouse/datasets/{dataset}-")
    return [o["Key"] for o in listed.get("Contents", [])]


async def assert_no_dataset(mesh: RunningMesh, q: AsyncQueryClient, dataset: str) -> None:
    """Nothing of `dataset` is visible: not in the catalog, not in SQL, no table directory."""
    with pytest.raises(NotFoundError) as err:
        await mesh.catalog.get_dataset(dataset)
    assert err.value.reason == "DATASET_NOT_FOUND"
    assert dataset not in [t.name for t in await q.list_tables()]
    assert not table_root(mesh, dataset).exists(), sorted(table_root(mesh, dataset).rglob("*"))
    assert await eventually(lambda: not spooled(mesh)), spooled(mesh)


async def ingest_workers(q: AsyncQueryClient, files: Path, name: str = "workers", fmt: str = "csv") -> pb.IngestSummary:
    return await q.ingest_file(sample_file(files, "workers", fmt), name)


def expected_workers() -> list[dict]:
    return sample_tables()["workers"].to_pylist()


def flight_client(mesh: RunningMesh) -> flight.FlightClient:
    return flight.FlightClient(flight_location(mesh))


def bearer(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def read_path(client: flight.FlightClient, path: str, options: flight.FlightCallOptions | None = None) -> pa.Table:
    options = options or flight.FlightCallOptions()
    info = client.get_flight_info(flight.FlightDescriptor.for_path(path), options)
    return client.do_get(info.endpoints[0].ticket, options).read_all()


# --- ingest: formats and type inference -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "ndjson", "parquet"])
async def test_ingest_each_format_lands_rows_with_inferred_types(q, files, fmt) -> None:
    path = sample_file(files, "workers", fmt)
    summary = await q.ingest_file(path, "workers")  # format inferred from the file name
    assert (summary.dataset, summary.created, summary.duplicate) == ("workers", True, False)
    assert summary.rows_written == 200
    assert summary.bytes_read == path.stat().st_size
    assert summary.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    schema = schema_of(summary.schema.arrow_ipc)
    assert {name: schema.field(name).type for name in WORKER_TYPES} == WORKER_TYPES
    got = await rows(q, "SELECT * FROM workers ORDER BY worker_id")
    assert got == expected_workers()


async def test_leading_zero_codes_and_ambiguous_columns_stay_text(qmesh, q) -> None:
    data = (
        b"code,zip,qty,price,day,flag,mixed\n"
        b"00123,02134,5,1.50,2024-01-02,true,12\n"
        b"00007,10001,7,2.25,2024-02-03,false,n/a\n"
    )
    summary = await ingest_bytes(qmesh, "codes", data, "codes.csv")
    schema = schema_of(summary.schema.arrow_ipc)
    assert [(f.name, f.type) for f in schema] == [
        ("code", pa.string()),
        ("zip", pa.string()),
        ("qty", pa.int64()),
        ("price", pa.float64()),
        ("day", pa.date32()),
        ("flag", pa.bool_()),
        ("mixed", pa.string()),
    ]
    got = await rows(q, "SELECT code, zip, mixed FROM codes ORDER BY qty")
    assert got == [
        {"code": "00123", "zip": "02134", "mixed": "12"},
        {"code": "00007", "zip": "10001", "mixed": "n/a"},
    ]


async def test_multiline_quoted_csv_fields_round_trip_byte_exact(qmesh, q, files) -> None:
    notes = sample_tables()["notes"]
    texts = notes.column("text").to_pylist()
    assert any("\n" in t for t in texts) and any('"' in t for t in texts), "the sample lost its hard cases"
    await q.ingest_file(sample_file(files, "notes", "csv"), "notes")
    got = await rows(q, "SELECT note_id, text FROM notes ORDER BY note_id")
    assert [r["text"] for r in got] == texts
    assert [r["note_id"] for r in got] == notes.column("note_id").to_pylist()

    # Hand-written edge cases: CRLF inside a quoted field, doubled quotes, separators, padding, unicode.
    tricky = ["line one\r\nline two", 'she said ""hi"", then left', "a,b;c\td", "  padded  ", "naïve — ✓ 漢字"]
    data = b"id,body\r\n" + b"".join(f'{i},"{t}"\r\n'.encode() for i, t in enumerate(tricky))
    await ingest_bytes(qmesh, "tricky", data, "tricky.csv")
    got = await rows(q, "SELECT body FROM tricky ORDER BY id")
    assert [r["body"] for r in got] == [t.replace('""', '"') for t in tricky]


async def test_column_type_overrides_win_over_inference(q, files) -> None:
    options = file_options(column_types={"worker_id": "VARCHAR", "hourly_rate": "DECIMAL(10,2)", "phone": "VARCHAR"})
    summary = await q.ingest_file(sample_file(files, "workers", "csv"), "workers", options=options)
    schema = schema_of(summary.schema.arrow_ipc)
    assert schema.field("worker_id").type == pa.string()
    assert schema.field("hourly_rate").type == pa.decimal128(10, 2)
    assert schema.field("hired_on").type == pa.date32()  # not listed: still inferred
    got = await rows(
        q, "SELECT worker_id, CAST(hourly_rate AS VARCHAR) AS rate FROM workers ORDER BY worker_id::INT LIMIT 2"
    )
    first = expected_workers()[:2]
    assert [r["worker_id"] for r in got] == [str(w["worker_id"]) for w in first]
    assert [r["rate"] for r in got] == [f"{w['hourly_rate']:.2f}" for w in first]


async def test_explicit_format_beats_the_file_name(qmesh, q) -> None:
    data = b"a\tb\n1\tx\n2\ty\n"
    options = file_options("tsv")
    summary = await ingest_bytes(qmesh, "tabbed", data, "export.txt", options=options)
    assert schema_of(summary.schema.arrow_ipc).names == ["a", "b"]
    assert await rows(q, "SELECT * FROM tabbed ORDER BY a") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    summary = await ingest_bytes(qmesh, "lines", b'{"k": 1}\n{"k": 2}\n', "events.jsonl")
    assert summary.rows_written == 2


async def test_unknown_extension_is_unknown_format_and_writes_nothing(qmesh, q) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "mystery", b"a,b\n1,2\n", "mystery.xlsx")
    assert err.value.reason == "UNKNOWN_FORMAT"
    assert "mystery.xlsx" in err.value.message and "format" in err.value.message
    await assert_no_dataset(qmesh, q, "mystery")


async def test_dataset_names_are_checked_and_keywords_work_when_quoted(qmesh, q) -> None:
    for name in ("Workers", "1st", "my-data", "x" * 129, ""):
        with pytest.raises(InvalidArgumentError) as err:
            await ingest_bytes(qmesh, name, b"a,b\n1,2\n", "pairs.csv")
        assert err.value.reason == "INVALID_DATASET_NAME", name
    assert await eventually(lambda: not spooled(qmesh)), spooled(qmesh)
    await ingest_bytes(qmesh, "order", b"a,b\n1,2\n3,4\n", "order.csv")
    assert await scalar(q, 'SELECT sum(b) FROM "order"') == 6

    def pull() -> int:
        with flight_client(qmesh) as client:
            return read_path(client, "order").num_rows

    assert await in_thread(pull) == 2


async def test_bad_column_type_override_names_the_option(qmesh, q, files) -> None:
    options = file_options(column_types={"hourly_rate": "MONEYZ"})
    with pytest.raises(InvalidArgumentError) as err:
        await q.ingest_file(sample_file(files, "workers", "csv"), "workers", options=options)
    assert err.value.reason == "INVALID_COLUMN_TYPE"
    fields = [v.field for v in err.value.violations]
    assert fields == ["options.column_types['hourly_rate']"], fields
    assert "MONEYZ" in err.value.violations[0].description
    options = file_options(column_types={"x": "INT); DROP TABLE y; --"})
    with pytest.raises(InvalidArgumentError) as err:
        await q.ingest_file(sample_file(files, "workers", "csv"), "workers", options=options)
    assert err.value.reason == "INVALID_COLUMN_TYPE"
    await assert_no_dataset(qmesh, q, "workers")


MALFORMED = b"id,name,score\n1,ana,3.5\n2,bo,4.0\n3,cy,2.5,extra,more\n4,di,1.0\n5,ed,2.0\n"


async def test_malformed_csv_fails_and_writes_nothing(qmesh, q) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "scores", MALFORMED, "scores.csv")
    assert err.value.reason == "MALFORMED_INPUT"
    await assert_no_dataset(qmesh, q, "scores")


async def test_malformed_csv_error_names_the_line_and_not_server_paths(qmesh, q) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "scores", MALFORMED, "scores.csv")
    assert err.value.reason == "MALFORMED_INPUT"
    assert str(qmesh.config.data_dir) not in error_text(err.value)
    assert "spool" not in error_text(err.value)
    assert "line 4" in err.value.message.lower(), err.value.message


async def test_a_malformed_row_after_the_sniffer_sample_is_malformed_input(qmesh, q) -> None:
    good = b"".join(f"{i},n{i},{i}.5\n".encode() for i in range(1, 25000))
    data = b"id,name,score\n" + good + b"25000,x,1.0,extra\n25001,y,2.0\n"
    with pytest.raises(LakehouseClientError) as err:
        await ingest_bytes(qmesh, "scores", data, "scores.csv")
    await assert_no_dataset(qmesh, q, "scores")
    assert (err.value.code, err.value.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_INPUT")
    assert "25001" in err.value.message
    assert str(qmesh.config.data_dir) not in error_text(err.value)


async def test_malformed_append_leaves_the_dataset_as_it_was(qmesh, q) -> None:
    good = b"id,name,score\n1,ana,3.5\n"
    first = await ingest_bytes(qmesh, "scores", good, "scores.csv")
    root = table_root(qmesh, "scores")
    commits = sorted((root / "_delta_log").glob("*.json"))
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "scores", MALFORMED, "more.csv", mode=pb.INGEST_MODE_APPEND)
    assert err.value.reason == "MALFORMED_INPUT"
    assert (await qmesh.catalog.get_dataset("scores")).current_version == first.version
    assert await scalar(q, "SELECT count(*) FROM scores") == 1
    assert len(list(root.rglob("*.parquet"))) == 1
    assert sorted((root / "_delta_log").glob("*.json")) == commits  # no new Delta commit


async def test_skip_mode_counts_bad_rows_and_reports_their_lines(qmesh, q) -> None:
    data = b"id,name,score\n1,ana,3.5\n2,bo,4.0\n3,cy,2.5,extra\n4,di,1.0\n5,ed,2.0,more\n6,fy,1.5\n"
    options = file_options(skip_bad_rows=True)
    summary = await ingest_bytes(qmesh, "scores", data, "scores.csv", options=options)
    assert (summary.rows_written, summary.rows_skipped) == (4, 2)
    assert any("4, 6" in w and "skip" in w.lower() for w in summary.warnings), list(summary.warnings)
    assert await rows(q, "SELECT id FROM scores ORDER BY id") == [{"id": i} for i in (1, 2, 4, 6)]
    assert (await qmesh.catalog.get_dataset("scores")).row_count == 4


async def test_skip_mode_counts_a_row_with_several_errors_once(qmesh, q) -> None:
    options = file_options(skip_bad_rows=True)
    summary = await ingest_bytes(qmesh, "scores", MALFORMED, "scores.csv", options=options)
    assert summary.rows_written == 4
    assert await rows(q, "SELECT id FROM scores ORDER BY id") == [{"id": i} for i in (1, 2, 4, 5)]
    assert summary.rows_skipped == 1, list(summary.warnings)


# --- ingest modes, idempotency, registration ------------------------------------------------------


async def test_create_on_an_existing_dataset_is_refused(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    other = csv_bytes(sample_tables()["workers"].slice(0, 5))
    with pytest.raises(AlreadyExistsError) as err:
        await ingest_bytes(qmesh, "workers", other, "workers_new.csv")
    assert err.value.reason == "DATASET_EXISTS"
    assert "append" in err.value.message
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version
    assert await scalar(q, "SELECT count(*) FROM workers") == 200


async def test_append_adds_a_version_and_overwrite_replaces_rows_and_schema(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    extra = extra_workers()
    appended = await ingest_bytes(qmesh, "workers", csv_bytes(extra), "more.csv", mode=pb.INGEST_MODE_APPEND)
    assert not appended.created and appended.version == first.version + 1
    assert appended.rows_written == extra.num_rows
    assert await scalar(q, "SELECT count(*) FROM workers") == 200 + extra.num_rows

    clients = sample_tables()["clients"]
    replaced = await ingest_bytes(qmesh, "workers", csv_bytes(clients), "clients.csv", mode=pb.INGEST_MODE_OVERWRITE)
    assert replaced.version == appended.version + 1
    assert schema_of(replaced.schema.arrow_ipc).names == clients.schema.names
    assert await rows(q, "SELECT * FROM workers ORDER BY client_id") == clients.to_pylist()
    # Older versions keep their own rows and schema.
    old = await q.query("SELECT count(*) AS n, max(worker_id) AS top FROM workers", as_of={"workers": first.version})
    assert old.table.to_pylist() == [{"n": 200, "top": 200}]
    assert old.versions_read == {"workers": first.version}


@pytest.mark.parametrize("fmt", ["parquet", "ndjson"])
async def test_append_missing_a_column_is_a_schema_mismatch(qmesh, q, files, fmt) -> None:
    first = await ingest_workers(q, files)
    partial = sample_tables()["workers"].slice(0, 5).drop_columns(["email"])
    path = sample.write({"partial": partial}, files / "partial", fmt)["partial"]
    with pytest.raises(FailedPreconditionError) as err:
        await q.ingest_file(path, "workers", mode="append")
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert "email" in err.value.message
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version
    assert await scalar(q, "SELECT count(*) FROM workers") == 200


async def test_csv_append_missing_a_column_is_a_schema_mismatch(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    partial = sample_tables()["workers"].slice(0, 5).drop_columns(["email"])
    with pytest.raises(LakehouseClientError) as err:
        await ingest_bytes(qmesh, "workers", csv_bytes(partial), "partial.csv", mode=pb.INGEST_MODE_APPEND)
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version
    assert (err.value.code, err.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SCHEMA_MISMATCH")
    assert "email" in err.value.message


async def test_append_with_an_incompatible_parquet_type_is_a_schema_mismatch(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    bad = sample_tables()["workers"].slice(0, 5)
    bad = bad.set_column(0, "worker_id", pa.array([f"W-{i}" for i in range(5)]))
    with pytest.raises(FailedPreconditionError) as err:
        await ingest_bytes(qmesh, "workers", parquet_bytes(bad), "bad.parquet", mode=pb.INGEST_MODE_APPEND)
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert "worker_id" in err.value.message
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version


async def test_append_with_an_incompatible_csv_type_is_a_schema_mismatch(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    bad = sample_tables()["workers"].slice(0, 5)
    bad = bad.set_column(0, "worker_id", pa.array([f"W-{i}" for i in range(5)]))
    with pytest.raises(LakehouseClientError) as err:
        await ingest_bytes(qmesh, "workers", csv_bytes(bad), "bad.csv", mode=pb.INGEST_MODE_APPEND)
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version
    assert (err.value.code, err.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SCHEMA_MISMATCH")


async def test_the_same_file_twice_is_a_duplicate(qmesh, q, files) -> None:
    path = sample_file(files, "workers", "csv")
    first = await q.ingest_file(path, "workers", mode="append")
    assert first.created  # append creates a missing dataset
    again = await q.ingest_file(path, "workers", mode="append")
    assert (again.duplicate, again.version, again.rows_written) == (True, first.version, 0)
    assert again.content_sha256 == first.content_sha256
    assert await scalar(q, "SELECT count(*) FROM workers") == 200
    assert (await qmesh.catalog.get_dataset("workers")).current_version == first.version
    # A CREATE of the same content is answered the same way, not with DATASET_EXISTS.
    same = await q.ingest_file(path, "workers")
    assert (same.duplicate, same.version) == (True, first.version)
    # Overwriting with the current content changes nothing; overwriting back to older content is a change.
    other = csv_bytes(extra_workers())
    changed = await ingest_bytes(qmesh, "workers", other, "other.csv", mode=pb.INGEST_MODE_OVERWRITE)
    assert not changed.duplicate and changed.version == first.version + 1
    unchanged = await ingest_bytes(qmesh, "workers", other, "other.csv", mode=pb.INGEST_MODE_OVERWRITE)
    assert (unchanged.duplicate, unchanged.version) == (True, changed.version)
    assert await scalar(q, "SELECT count(*) FROM workers") == 50


async def test_overwrite_back_to_older_content_is_a_new_version(qmesh, q, files) -> None:
    path = sample_file(files, "workers", "csv")
    first = await q.ingest_file(path, "workers")
    changed = await ingest_bytes(
        qmesh, "workers", csv_bytes(extra_workers()), "other.csv", mode=pb.INGEST_MODE_OVERWRITE
    )
    back = await q.ingest_file(path, "workers", mode="overwrite")
    assert await scalar(q, "SELECT count(*) FROM workers") == 200, "the overwrite is not visible"
    assert (await qmesh.catalog.get_dataset("workers")).current_version == back.version
    assert (back.duplicate, back.version, back.rows_written) == (False, changed.version + 1, 200)
    assert first.version < changed.version < back.version


async def test_concurrent_appends_each_get_their_own_version(qmesh, q, files) -> None:
    await ingest_workers(q, files)
    workers = sample_tables()["workers"]
    parts = [csv_bytes(workers.slice(i * 10, 10)) for i in range(4)]
    summaries = await asyncio.gather(
        *(
            ingest_bytes(qmesh, "workers", data, f"part{i}.csv", mode=pb.INGEST_MODE_APPEND)
            for i, data in enumerate(parts)
        )
    )
    assert sorted(s.version for s in summaries) == [3, 4, 5, 6]
    assert await scalar(q, "SELECT count(*) FROM workers") == 240


async def test_ingest_registers_the_version_with_lineage_hash_and_pii(qmesh, q, files) -> None:
    path = sample_file(files, "workers", "csv")
    summary = await q.ingest_file(path, "workers", description="agency staff")
    assert set(summary.pii_columns) >= {"email", "phone", "hourly_rate", "full_name"}
    assert not {"worker_id", "active", "hired_on"} & set(summary.pii_columns)

    dataset = await qmesh.catalog.get_dataset("workers")
    assert (dataset.current_version, dataset.row_count, dataset.description) == (summary.version, 200, "agency staff")
    flagged = {c.name for c in dataset.columns if c.pii}
    assert flagged >= {"email", "phone", "hourly_rate", "full_name"}
    latest = (await qmesh.catalog.history("workers")).versions[0]
    assert latest.version == summary.version
    assert latest.row_count == 200
    assert latest.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (latest.lineage.source_system, latest.lineage.source_reference) == ("upload", "workers.csv")
    assert latest.HasField("table_version")
    assert latest.table_version == DeltaTable(str(table_root(qmesh, "workers"))).version()
    assert dataset.table_version == latest.table_version

    # The query service passes the same history through.
    passed = (await q.history("workers")).versions
    assert passed[0].version == summary.version
    assert (passed[0].row_count, passed[0].content_sha256) == (200, latest.content_sha256)
    assert "upload" in passed[0].source and "workers.csv" in passed[0].source
    assert passed[0].delta_version == latest.table_version
    assert [v.version for v in passed] == sorted((v.version for v in passed), reverse=True)
    page = await q.history("workers", page_size=1)
    assert [v.version for v in page.versions] == [summary.version] and page.next_page_token
    rest = await q.history("workers", page_size=10, page_token=page.next_page_token)
    assert [v.version for v in rest.versions] == [v.version for v in passed[1:]]


# --- the upload protocol --------------------------------------------------------------------------


async def test_upload_without_a_header_is_refused(qmesh) -> None:
    data = b"a,b\n1,2\n"
    with pytest.raises(InvalidArgumentError) as err:
        await raw_ingest(qmesh, [*chunks(data), commit(data)])
    assert err.value.reason == "MISSING_HEADER"
    with pytest.raises(InvalidArgumentError) as err:
        await raw_ingest(qmesh, [])
    assert err.value.reason == "MISSING_HEADER"


async def test_upload_without_a_commit_writes_nothing(qmesh) -> None:
    data = b"a,b\n1,2\n"
    with pytest.raises(InvalidArgumentError) as err:
        await raw_ingest(qmesh, [header("pairs", "pairs.csv"), *chunks(data)])
    assert err.value.reason == "MISSING_COMMIT"
    await assert_no_dataset(qmesh, query_client(qmesh), "pairs")


async def test_upload_with_a_wrong_checksum_writes_nothing(qmesh) -> None:
    data = b"a,b\n1,2\n"
    with pytest.raises(FailedPreconditionError) as err:
        await raw_ingest(qmesh, [header("pairs", "pairs.csv"), *chunks(data), commit(sha256="0" * 64)])
    assert err.value.reason == "CHECKSUM_MISMATCH"
    assert hashlib.sha256(data).hexdigest() in err.value.message
    await assert_no_dataset(qmesh, query_client(qmesh), "pairs")


async def test_messages_after_the_commit_or_a_second_header_are_refused(qmesh) -> None:
    data = b"a,b\n1,2\n"
    with pytest.raises(InvalidArgumentError) as err:
        await raw_ingest(qmesh, [header("pairs", "pairs.csv"), *chunks(data), commit(data), *chunks(data)])
    assert err.value.reason == "UNEXPECTED_MESSAGE"
    with pytest.raises(InvalidArgumentError) as err:
        await raw_ingest(qmesh, [header("pairs", "pairs.csv"), header("pairs", "pairs.csv"), commit(data)])
    assert err.value.reason == "UNEXPECTED_MESSAGE"
    await assert_no_dataset(qmesh, query_client(qmesh), "pairs")


async def test_oversize_uploads_are_refused_and_write_nothing(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", max_upload_mb=1)
    q = query_client(mesh)
    line = b"1,abcdefghijklmnopqrstuvwxyz0123456789\n"
    data = b"id,text\n" + line * (1536 * 1024 // len(line))  # 1.5 MiB
    # Announced in the header: refused before any byte is read.
    with pytest.raises(ResourceExhaustedError) as err:
        await raw_ingest(mesh, [header("big", "big.csv", size_bytes=len(data)), *chunks(data), commit(data)])
    assert err.value.reason == "UPLOAD_TOO_LARGE"
    # Not announced: refused once the stream passes the limit.
    with pytest.raises(ResourceExhaustedError) as err:
        await raw_ingest(mesh, [header("big", "big.csv"), *chunks(data), commit(data)])
    assert err.value.reason == "UPLOAD_TOO_LARGE"
    assert "1 MiB" in err.value.message
    await assert_no_dataset(mesh, q, "big")
    small = await ingest_bytes(mesh, "small", data[: 512 * 1024 - 100].rsplit(b"\n", 1)[0] + b"\n", "small.csv")
    assert small.rows_written > 0


async def test_an_idle_upload_times_out_and_writes_nothing(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", upload_idle_timeout_s=0.3)
    data = b"a,b\n1,2\n"

    async def stalls():
        yield header("pairs", "pairs.csv")
        yield chunks(data)[0]
        await asyncio.sleep(5)
        yield commit(data)

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as err:
        await raw_ingest(mesh, stalls())
    assert err.value.reason == "UPLOAD_IDLE_TIMEOUT"
    assert time.monotonic() - started < 3
    await assert_no_dataset(mesh, query_client(mesh), "pairs")


async def test_a_cancelled_upload_leaves_no_dataset(qmesh) -> None:
    stub = pb_grpc.QueryServiceStub(qmesh.channel)
    data = csv_bytes(sample_tables()["workers"])
    never = asyncio.Event()

    async def hangs():
        yield header("workers", "workers.csv")
        for message in chunks(data, 4096):
            yield message
        await never.wait()

    call = stub.IngestFile(hangs(), timeout=30)
    assert await eventually(lambda: bool(spooled(qmesh)))  # the server is receiving the upload
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await assert_no_dataset(qmesh, query_client(qmesh), "workers")


async def test_a_reader_token_cannot_ingest(mesh_factory, tmp_path, monkeypatch) -> None:
    mesh = await secured_mesh(mesh_factory, tmp_path, monkeypatch)
    data = b"a,b\n1,2\n"
    with pytest.raises(PermissionDeniedError) as err:
        await ingest_bytes(mesh, "pairs", data, "pairs.csv", token=READER_TOKEN)
    assert err.value.reason == "ROLE_NOT_ALLOWED"
    writer = await ingest_bytes(mesh, "pairs", data, "pairs.csv", token=WRITER_TOKEN)
    assert writer.created
    reader = query_client(mesh, READER_TOKEN)
    assert await scalar(reader, "SELECT sum(b) FROM pairs") == 2
    with pytest.raises(PermissionDeniedError) as err:
        await reader.compact("pairs")
    assert err.value.reason == "ROLE_NOT_ALLOWED"


# --- SQL ------------------------------------------------------------------------------------------


async def test_select_by_name_with_positional_and_named_parameters(qmesh, q, files) -> None:
    await ingest_workers(q, files)
    workers = sample_tables()["workers"]
    city = workers.column("city")[0].as_py()
    expected = sum(1 for w in expected_workers() if w["city"] == city and w["hourly_rate"] > 20.0)
    positional = await q.query("SELECT count(*) AS n FROM workers WHERE city = ? AND hourly_rate > ?", [city, 20.0])
    assert positional.table.to_pylist() == [{"n": expected}]
    assert not positional.truncated and positional.ticket == b""
    named = await q.query(
        "SELECT count(*) AS n FROM workers WHERE city = $city AND hourly_rate > $rate", {"city": city, "rate": 20.0}
    )
    assert named.table.to_pylist() == [{"n": expected}]
    typed = await rows(q, "SELECT ?::INT + 1 AS i, ? AS b, ? IS NULL AS n, ? AS s", [41, True, None, "x"])
    assert typed == [{"i": 42, "b": True, "n": True, "s": "x"}]
    with pytest.raises(InvalidArgumentError) as err:
        await q.query("SELECT * FROM workers WHERE worker_id = ?", [])
    assert err.value.reason == "INVALID_PARAMETER"
    stub = pb_grpc.QueryServiceStub(qmesh.channel)
    for parameters in (
        [pb.QueryParameter(name="a", int64_value=1), pb.QueryParameter(int64_value=2)],  # named and positional
        [pb.QueryParameter()],  # no value
    ):
        request = pb.QueryRequest(sql="SELECT $a AS a", parameters=parameters)
        with pytest.raises(grpc.RpcError) as raw:
            await stub.Query(request, timeout=10)
        error = from_rpc_error(raw.value)
        assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PARAMETER")
        assert error.violations and error.violations[0].field.startswith("parameters")


async def test_unknown_tables_and_bad_sql_are_reported(q, files) -> None:
    await ingest_workers(q, files)
    with pytest.raises(NotFoundError) as err:
        await q.query("SELECT * FROM wrokers")
    assert err.value.reason == "TABLE_NOT_FOUND"
    assert "workers" in err.value.message  # lists what may be queried
    with pytest.raises(InvalidArgumentError) as err:
        await q.query("SELEC 1")
    assert err.value.reason == "INVALID_SQL"
    with pytest.raises(InvalidArgumentError) as err:
        await q.query("SELECT CAST(full_name AS INTEGER) FROM workers")
    assert err.value.reason == "QUERY_FAILED"
    for call in (q.history("nope"), q.compact("nope"), q.vacuum("nope")):
        with pytest.raises(NotFoundError) as err:
            await call
        assert err.value.reason == "DATASET_NOT_FOUND"


async def test_time_travel_reads_an_older_version(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    extra = extra_workers()
    second = await ingest_bytes(qmesh, "workers", csv_bytes(extra), "more.csv", mode=pb.INGEST_MODE_APPEND)
    now = await q.query("SELECT count(*) AS n FROM workers")
    assert now.table.to_pylist() == [{"n": 200 + extra.num_rows}]
    assert now.versions_read == {"workers": second.version}
    then = await q.query("SELECT * FROM workers ORDER BY worker_id", as_of={"workers": first.version})
    assert then.table.to_pylist() == expected_workers()
    assert then.versions_read == {"workers": first.version}
    # Repeating with versions_read pins the snapshot even after more commits.
    await ingest_bytes(qmesh, "workers", csv_bytes(extra.slice(0, 1)), "one.csv", mode=pb.INGEST_MODE_APPEND)
    pinned = await q.query("SELECT count(*) AS n FROM workers", as_of=now.versions_read)
    assert pinned.table.to_pylist() == [{"n": 200 + extra.num_rows}]


async def test_as_of_errors(q, files) -> None:
    await ingest_workers(q, files)
    with pytest.raises(InvalidArgumentError) as err:
        await q.query("SELECT count(*) FROM workers", as_of={"clients": 2})
    assert [v.field for v in err.value.violations] == ["as_of"]
    with pytest.raises(NotFoundError) as err:
        await q.query("SELECT count(*) FROM workers", as_of={"workers": 99})
    assert err.value.reason == "VERSION_NOT_FOUND"
    assert "99" in err.value.message


async def test_as_of_version_zero_is_not_found(q, files) -> None:
    await ingest_workers(q, files)
    with pytest.raises(NotFoundError) as err:
        await q.query("SELECT count(*) FROM workers", as_of={"workers": 0})
    assert err.value.reason == "VERSION_NOT_FOUND"


async def test_a_dataset_without_data_reads_as_empty_and_takes_appends(qmesh, q) -> None:
    schema = pa.schema([("id", pa.int64()), ("label", pa.string())])
    await qmesh.catalog.create_dataset("empty", schema)
    result = await q.query("SELECT * FROM empty")
    assert result.table.num_rows == 0 and result.table.schema.names == ["id", "label"]

    def pull() -> pa.Table:
        with flight_client(qmesh) as client:
            return read_path(client, "empty")

    assert (await in_thread(pull)).num_rows == 0
    summary = await ingest_bytes(qmesh, "empty", b"id,label\n1,a\n", "one.csv", mode=pb.INGEST_MODE_APPEND)
    assert (summary.created, summary.rows_written) == (False, 1)
    assert await rows(q, "SELECT * FROM empty") == [{"id": 1, "label": "a"}]


async def test_large_results_are_truncated_with_a_ticket_a_plain_flight_client_follows(qmesh, q, files) -> None:
    await q.ingest_file(sample_file(files, "placements", "parquet"), "placements")
    placements = sample_tables()["placements"]
    sql = "SELECT placement_id, worker_id, hours FROM placements WHERE hours > ? ORDER BY placement_id"
    result = await q.query(sql, [0.0], max_inline_rows=50)
    expected = placements.filter(pc.greater(placements.column("hours"), 0.0)).select(
        ["placement_id", "worker_id", "hours"]
    )
    assert expected.num_rows > 50
    assert result.truncated
    assert result.table.to_pylist() == expected.slice(0, 50).to_pylist()
    assert result.ticket and result.flight_location == flight_location(qmesh)

    def pull() -> pa.Table:
        with flight.FlightClient(result.flight_location) as client:
            return client.do_get(flight.Ticket(result.ticket)).read_all()

    assert (await in_thread(pull)).to_pylist() == expected.to_pylist()

    schema_only = await q.query(sql, [0.0], max_inline_rows=0)
    assert schema_only.truncated and schema_only.table.num_rows == 0
    assert schema_only.table.schema.names == ["placement_id", "worker_id", "hours"]
    everything = await q.query(sql, [0.0], max_inline_rows=expected.num_rows)
    assert not everything.truncated and everything.ticket == b""


async def test_inline_results_stay_under_the_byte_limit(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", max_inline_bytes=4096)
    q = query_client(mesh)
    await q.ingest_file(sample_file(tmp_path / "files", "notes", "parquet"), "notes")
    result = await q.query("SELECT * FROM notes ORDER BY note_id")
    assert result.table.num_rows < 200
    assert result.truncated and result.ticket
    assert result.table.nbytes <= 4096


async def test_a_ticket_keeps_reading_the_version_it_was_issued_for(qmesh, q, files) -> None:
    await ingest_workers(q, files)
    result = await q.query("SELECT worker_id FROM workers ORDER BY worker_id", max_inline_rows=1)
    await ingest_bytes(qmesh, "workers", csv_bytes(extra_workers()), "more.csv", mode=pb.INGEST_MODE_APPEND)

    def pull() -> pa.Table:
        with flight.FlightClient(result.flight_location) as client:
            return client.do_get(flight.Ticket(result.ticket)).read_all()

    assert (await in_thread(pull)).num_rows == 200


async def test_explain_returns_the_plan_and_the_schema(q, files) -> None:
    await ingest_workers(q, files)
    explained = await q.explain("SELECT city, avg(hourly_rate) AS rate FROM workers WHERE active GROUP BY city")
    assert "AGGREGATE" in explained.plan.upper() or "GROUP" in explained.plan.upper(), explained.plan
    schema = schema_of(explained.schema.arrow_ipc)
    assert [(f.name, f.type) for f in schema] == [("city", pa.string()), ("rate", pa.float64())]
    assert dict(explained.versions_read) == {"workers": 2}
    analyzed = await q.explain("SELECT count(*) FROM workers", analyze=True)
    assert analyzed.plan.strip()
    with pytest.raises(PermissionDeniedError):
        await q.explain("SELECT * FROM read_csv('/etc/passwd')")


async def test_list_tables_shows_schemas_versions_and_counts(qmesh, q, files) -> None:
    await ingest_workers(q, files)
    await q.ingest_file(sample_file(files, "clients", "parquet"), "clients", description="customers")
    tables = await q.list_tables()
    assert [t.name for t in tables] == ["clients", "workers"]
    clients, workers = tables
    assert (clients.kind, clients.row_count, clients.version, clients.description) == (
        pb.TABLE_KIND_DATASET,
        10,
        2,
        "customers",
    )
    assert schema_of(clients.schema.arrow_ipc).names == sample_tables()["clients"].schema.names
    assert (workers.row_count, workers.version) == (200, 2)
    assert schema_of(workers.schema.arrow_ipc).field("hired_on").type == pa.date32()
    assert workers.update_time.seconds > 0
    stub = pb_grpc.QueryServiceStub(qmesh.channel)
    page = await stub.ListTables(pb.ListTablesRequest(page_size=1))
    assert [t.name for t in page.tables] == ["clients"] and page.next_page_token
    page = await stub.ListTables(pb.ListTablesRequest(page_size=1, page_token=page.next_page_token))
    assert [t.name for t in page.tables] == ["workers"] and not page.next_page_token


# --- the sandbox ----------------------------------------------------------------------------------


def data_file(mesh: RunningMesh, dataset: str) -> Path:
    found = sorted(table_root(mesh, dataset).rglob("*.parquet"))
    assert found
    return found[0]


@pytest.mark.parametrize(
    ("sql", "reasons"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", {"TABLE_FUNCTION_NOT_ALLOWED"}),
        ("SELECT * FROM read_text('/etc/passwd')", {"TABLE_FUNCTION_NOT_ALLOWED"}),
        ("SELECT * FROM glob('/etc/*')", {"TABLE_FUNCTION_NOT_ALLOWED"}),
        ("SELECT * FROM '/etc/passwd'", {"TABLE_NOT_FOUND", "TABLE_FUNCTION_NOT_ALLOWED"}),
        ("SELECT * FROM workers, read_csv_auto('/etc/hosts')", {"TABLE_FUNCTION_NOT_ALLOWED"}),
        ("COPY workers TO '{tmp}/out.csv'", {"STATEMENT_NOT_ALLOWED"}),
        ("COPY (SELECT 1) TO '{tmp}/out.csv'", {"STATEMENT_NOT_ALLOWED"}),
        ("ATTACH '{tmp}/other.db' AS other", {"STATEMENT_NOT_ALLOWED"}),
        ("INSTALL httpfs", {"STATEMENT_NOT_ALLOWED"}),
        ("LOAD httpfs", {"STATEMENT_NOT_ALLOWED"}),
        ("PRAGMA database_list", {"STATEMENT_NOT_ALLOWED"}),
        ("SET enable_external_access = true", {"STATEMENT_NOT_ALLOWED"}),
        ("RESET threads", {"STATEMENT_NOT_ALLOWED"}),
        ("CREATE TABLE stolen AS SELECT * FROM workers", {"STATEMENT_NOT_ALLOWED"}),
        ("DROP VIEW workers", {"STATEMENT_NOT_ALLOWED"}),
        ("EXPLAIN COPY workers TO '{tmp}/out.csv'", {"STATEMENT_NOT_ALLOWED"}),
        ("SELECT * FROM information_schema.tables", {"QUALIFIED_NAME_NOT_ALLOWED"}),
        ("SELECT * FROM duckdb_settings()", {"TABLE_FUNCTION_NOT_ALLOWED"}),
        ("SELECT current_setting('allowed_directories')", {"FUNCTION_NOT_ALLOWED"}),
        ("SHOW TABLES", {"STATEMENT_NOT_ALLOWED"}),
    ],
)
async def test_the_sandbox_refuses_files_settings_and_side_effects(q, files, tmp_path, sql, reasons) -> None:
    await ingest_workers(q, files)
    sql = sql.format(tmp=tmp_path)
    with pytest.raises((PermissionDeniedError, InvalidArgumentError, NotFoundError)) as err:
        await q.query(sql)
    assert err.value.reason in reasons, (err.value.reason, err.value.message)
    assert len(err.value.message) > 20
    assert "root:" not in error_text(err.value)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.db").exists()
    assert await scalar(q, "SELECT count(*) FROM workers") == 200  # untouched, and still serving


async def test_the_tables_own_parquet_files_are_out_of_reach(qmesh, q, files) -> None:
    await ingest_workers(q, files)
    path = data_file(qmesh, "workers")
    for sql in (
        f"SELECT * FROM read_parquet('{path}')",
        f"SELECT * FROM parquet_scan('{path}')",
        f"SELECT * FROM '{path}'",
        f"SELECT * FROM workers UNION ALL SELECT * FROM read_parquet(['{path}'])",
        f"WITH x AS (SELECT * FROM read_parquet('{path}')) SELECT * FROM x",
        f"SELECT (SELECT count(*) FROM read_parquet('{path}'))",
    ):
        with pytest.raises((PermissionDeniedError, NotFoundError)) as err:
            await q.query(sql)
        assert err.value.reason in {"TABLE_FUNCTION_NOT_ALLOWED", "FUNCTION_NOT_ALLOWED", "TABLE_NOT_FOUND"}, sql


async def test_one_statement_per_call(q, files) -> None:
    await ingest_workers(q, files)
    for sql in ("SELECT 1; SELECT 2", "SELECT count(*) FROM workers; COPY workers TO '/tmp/x.csv'"):
        with pytest.raises(InvalidArgumentError) as err:
            await q.query(sql)
        assert err.value.reason == "MULTIPLE_STATEMENTS"
        assert "2 statements" in err.value.message
    assert await scalar(q, "SELECT 40 + 2; -- a trailing comment") == 42
    with pytest.raises(InvalidArgumentError) as err:
        await q.query("   ")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT


async def test_harmless_read_only_forms_still_run(q, files) -> None:
    await ingest_workers(q, files)
    assert await scalar(q, "SELECT count(*) FROM range(10)") == 10
    assert await scalar(q, "WITH a AS (SELECT * FROM workers WHERE active) SELECT count(*) FROM a") == sum(
        w["active"] for w in expected_workers()
    )
    described = await rows(q, "DESCRIBE workers")
    assert [r["column_name"] for r in described][:3] == ["worker_id", "full_name", "email"]
    assert await scalar(q, "SELECT count(*) FROM (SUMMARIZE workers)") == 9


# --- deadlines --------------------------------------------------------------------------------------


async def test_a_long_statement_hits_its_timeout_and_frees_the_engine(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", concurrent_queries=1)
    q = query_client(mesh)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as err:
        await q.query(LONG_SQL, timeout_s=0.5)
    assert err.value.reason == "QUERY_TIMEOUT"
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert await scalar(q, "SELECT 42", timeout_s=5) == 42  # the one engine slot is free again
    assert time.monotonic() - started < 2


async def test_a_client_deadline_interrupts_the_statement(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", concurrent_queries=1)
    stub = pb_grpc.QueryServiceStub(mesh.channel)
    with pytest.raises(grpc.RpcError) as err:
        await stub.Query(pb.QueryRequest(sql=LONG_SQL), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.monotonic()
    assert await scalar(query_client(mesh), "SELECT 42", timeout_s=5) == 42
    assert time.monotonic() - started < 2


async def test_a_cancelled_call_frees_the_engine(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", concurrent_queries=1)
    stub = pb_grpc.QueryServiceStub(mesh.channel)
    call = stub.Query(pb.QueryRequest(sql=LONG_SQL), timeout=60)
    await asyncio.sleep(0.5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    started = time.monotonic()
    assert await scalar(query_client(mesh), "SELECT 42", timeout_s=5) == 42
    assert time.monotonic() - started < 2


async def test_a_queued_statement_honours_its_time_limit(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", concurrent_queries=1)
    q = query_client(mesh)
    ahead = asyncio.ensure_future(q.query(LONG_SQL, timeout_s=2))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    with pytest.raises((DeadlineExceededError, ResourceExhaustedError)):
        await q.query("SELECT 42", timeout_s=0.3)
    elapsed = time.monotonic() - started
    with pytest.raises(DeadlineExceededError):
        await ahead
    assert elapsed < 1.0


async def test_a_flight_caller_that_gives_up_frees_the_engine(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", concurrent_queries=1)
    command = flight_pb2.FlightCommand(sql=flight_pb2.SqlStatement(sql=SLOW_SQL))

    def pull() -> None:
        with flight_client(mesh) as client:
            info = client.get_flight_info(flight.FlightDescriptor.for_command(command.SerializeToString()))
            with pytest.raises(flight.FlightTimedOutError):
                client.do_get(info.endpoints[0].ticket, flight.FlightCallOptions(timeout=0.3)).read_all()

    await in_thread(pull)
    started = time.monotonic()
    assert await scalar(query_client(mesh), "SELECT 42", timeout_s=1) == 42
    assert time.monotonic() - started < 1.5


# --- Arrow Flight -----------------------------------------------------------------------------------


async def test_flight_lists_and_reads_datasets_by_path_version_and_sql(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    await q.ingest_file(sample_file(files, "clients", "csv"), "clients")
    extra = extra_workers()
    await ingest_bytes(qmesh, "workers", csv_bytes(extra), "more.csv", mode=pb.INGEST_MODE_APPEND)

    def work() -> dict:
        with flight_client(qmesh) as client:
            listed = {info.descriptor.path[0].decode(): info for info in client.list_flights()}
            prefixed = [info.descriptor.path[0] for info in client.list_flights(b"cli")]
            current = read_path(client, "workers")
            old = read_path(client, f"workers@{first.version}")
            info = client.get_flight_info(flight.FlightDescriptor.for_path("workers"))
            command = flight_pb2.FlightCommand(
                sql=flight_pb2.SqlStatement(
                    sql="SELECT worker_id, city FROM workers WHERE worker_id <= ? ORDER BY worker_id",
                    parameters=[pb.QueryParameter(int64_value=5)],
                    as_of={"workers": first.version},
                )
            )
            sql_info = client.get_flight_info(flight.FlightDescriptor.for_command(command.SerializeToString()))
            by_sql = client.do_get(sql_info.endpoints[0].ticket).read_all()
            from_listing = client.do_get(listed["clients"].endpoints[0].ticket).read_all()
            ref = refs_pb2.DatasetRef(dataset="workers", version=first.version)
            ref_info = client.get_flight_info(
                flight.FlightDescriptor.for_command(flight_pb2.FlightCommand(dataset=ref).SerializeToString())
            )
            by_ref = client.do_get(ref_info.endpoints[0].ticket).read_all()
            return {
                "from_listing": from_listing,
                "by_ref": by_ref,
                "listed": listed,
                "prefixed": prefixed,
                "current": current,
                "old": old,
                "info": info,
                "by_sql": by_sql,
            }

    got = await in_thread(work)
    assert sorted(got["listed"]) == ["clients", "workers"]
    assert got["listed"]["workers"].total_records == 200 + extra.num_rows
    assert got["listed"]["clients"].schema.names == sample_tables()["clients"].schema.names
    assert got["prefixed"] == [b"clients"]
    assert got["from_listing"].sort_by("client_id").to_pylist() == sample_tables()["clients"].to_pylist()
    assert got["by_ref"].num_rows == 200
    assert got["current"].num_rows == 200 + extra.num_rows
    assert got["old"].sort_by("worker_id").to_pylist() == expected_workers()
    assert got["info"].schema.names == got["current"].schema.names
    assert got["info"].endpoints[0].locations[0].uri.decode() == flight_location(qmesh)
    assert got["by_sql"].to_pylist() == [
        {"worker_id": w["worker_id"], "city": w["city"]} for w in expected_workers()[:5]
    ]


async def test_flight_errors_carry_the_reason(qmesh, q, files) -> None:
    await ingest_workers(q, files)

    def attempt(work) -> Exception:
        with flight_client(qmesh) as client:
            try:
                work(client)
            except Exception as exc:
                return exc
        raise AssertionError("the call succeeded")

    garbage = await in_thread(attempt, lambda c: c.do_get(flight.Ticket(b"\xff\x00garbage\x13")).read_all())
    assert isinstance(garbage, pa.ArrowException)
    assert "INVALID_TICKET" in str(garbage) or "INVALID" in str(garbage), garbage
    missing = await in_thread(attempt, lambda c: read_path(c, "nope"))
    assert isinstance(missing, pa.ArrowException) and "TABLE_NOT_FOUND" in str(missing), missing
    version = await in_thread(attempt, lambda c: read_path(c, "workers@99"))
    assert "VERSION_NOT_FOUND" in str(version), version
    command = flight_pb2.FlightCommand(sql=flight_pb2.SqlStatement(sql="SELECT * FROM read_csv('/etc/passwd')"))
    forbidden = await in_thread(
        attempt, lambda c: c.get_flight_info(flight.FlightDescriptor.for_command(command.SerializeToString()))
    )
    assert isinstance(forbidden, flight.FlightUnauthorizedError), forbidden
    assert "TABLE_FUNCTION_NOT_ALLOWED" in str(forbidden) and "root:" not in str(forbidden)
    forged = flight_pb2.FlightTicket(sql=flight_pb2.SqlStatement(sql="COPY workers TO '/tmp/forged.csv'"))
    refused = await in_thread(attempt, lambda c: c.do_get(flight.Ticket(forged.SerializeToString())).read_all())
    assert "STATEMENT_NOT_ALLOWED" in str(refused), refused
    assert not Path("/tmp/forged.csv").exists()


async def test_flight_do_put_appends_and_the_client_helper_uploads(qmesh, q, files) -> None:
    first = await ingest_workers(q, files)
    workers = (await q.query("SELECT * FROM workers ORDER BY worker_id LIMIT 10")).table

    def put() -> pb.IngestSummary:
        with flight_client(qmesh) as client:
            writer, metadata = client.do_put(flight.FlightDescriptor.for_path("workers"), workers.schema)
            with writer:
                writer.write_table(workers)
                writer.done_writing()
                answer = metadata.read()
        summary = pb.IngestSummary()
        summary.ParseFromString(answer.to_pybytes())
        return summary

    summary = await in_thread(put)
    assert (summary.dataset, summary.version, summary.rows_written, summary.created) == (
        "workers",
        first.version + 1,
        10,
        False,
    )
    assert await scalar(q, "SELECT count(*) FROM workers") == 210
    history = (await qmesh.catalog.history("workers")).versions[0]
    assert history.lineage.source_system == "flight"

    def helper() -> pb.IngestSummary:
        with LakehouseFlight(flight_location(qmesh)) as client:
            return client.upload(sample_tables()["clients"], "clients", mode="create", description="via flight")

    created = await in_thread(helper)
    assert created.created and created.rows_written == 10
    assert await rows(q, "SELECT * FROM clients ORDER BY client_id") == sample_tables()["clients"].to_pylist()
    assert (await qmesh.catalog.get_dataset("clients")).description == "via flight"

    def overwrite() -> pb.IngestSummary:
        with LakehouseFlight(flight_location(qmesh)) as client:
            return client.upload(sample_tables()["clients"].slice(0, 3), "clients", mode="overwrite")

    replaced = await in_thread(overwrite)
    assert (replaced.version, replaced.rows_written) == (created.version + 1, 3)
    assert await scalar(q, "SELECT count(*) FROM clients") == 3

    def mismatched() -> Exception:
        with LakehouseFlight(flight_location(qmesh)) as client:
            try:
                client.upload(sample_tables()["clients"], "workers", mode="append")
            except pa.ArrowException as exc:
                return exc
        raise AssertionError("the upload succeeded")

    error = await in_thread(mismatched)
    assert "SCHEMA_MISMATCH" in str(error)
    assert await scalar(q, "SELECT count(*) FROM workers") == 210


async def test_flight_actions_compact_and_vacuum(qmesh, q, files) -> None:
    workers = sample_tables()["workers"]
    for i in range(3):
        await ingest_bytes(
            qmesh, "workers", csv_bytes(workers.slice(i * 10, 10)), f"p{i}.csv", mode=pb.INGEST_MODE_APPEND
        )

    def act() -> tuple[list, pb.CompactResponse, pb.VacuumResponse]:
        with flight_client(qmesh) as client:
            actions = sorted(a.type for a in client.list_actions())
            body = pb.CompactRequest(dataset="workers").SerializeToString()
            compacted = pb.CompactResponse()
            compacted.ParseFromString(next(iter(client.do_action(flight.Action("compact", body)))).body.to_pybytes())
            request = pb.VacuumRequest(dataset="workers", dry_run=True)
            request.retention.FromSeconds(0)
            vacuumed = pb.VacuumResponse()
            result = next(iter(client.do_action(flight.Action("vacuum", request.SerializeToString()))))
            vacuumed.ParseFromString(result.body.to_pybytes())
            return actions, compacted, vacuumed

    actions, compacted, vacuumed = await in_thread(act)
    assert actions == ["compact", "vacuum"]
    assert (compacted.files_removed, compacted.files_added) == (3, 1)
    assert compacted.version_after == compacted.version_before + 1
    assert vacuumed.dry_run and len(vacuumed.files_deleted) == 3
    assert await scalar(q, "SELECT count(*) FROM workers") == 30


async def secured_mesh(mesh_factory: MeshFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunningMesh:
    monkeypatch.setenv("TEST_QUERY_ADMIN_TOKEN", ADMIN_TOKEN)
    tokens = (
        TokenConfig(principal="ops", role="admin", env="TEST_QUERY_ADMIN_TOKEN"),
        TokenConfig(principal="loader", role="writer", sha256=hashlib.sha256(WRITER_TOKEN.encode()).hexdigest()),
        TokenConfig(principal="analyst", role="reader", sha256=hashlib.sha256(READER_TOKEN.encode()).hexdigest()),
    )
    return await start_query_mesh(mesh_factory, tmp_path / "data", Backends(tokens=tokens), token=ADMIN_TOKEN)


async def test_flight_uses_the_same_tokens_and_roles(mesh_factory, tmp_path, monkeypatch) -> None:
    mesh = await secured_mesh(mesh_factory, tmp_path, monkeypatch)
    admin = query_client(mesh, ADMIN_TOKEN)
    await admin.ingest_file(sample_file(tmp_path / "files", "workers", "csv"), "workers")
    location = flight_location(mesh)
    table = sample_tables()["workers"].slice(0, 3)

    def anonymous() -> Exception:
        with flight.FlightClient(location) as client:
            try:
                list(client.list_flights())
            except flight.FlightUnauthenticatedError as exc:
                return exc
        raise AssertionError("listed without a token")

    def wrong_token() -> Exception:
        with flight.FlightClient(location) as client:
            try:
                read_path(client, "workers", bearer("guess"))
            except flight.FlightUnauthenticatedError as exc:
                return exc
        raise AssertionError("read with a wrong token")

    def reader() -> tuple[int, Exception, Exception]:
        with LakehouseFlight(location, token=READER_TOKEN) as client:
            count = client.read_dataset("workers").num_rows
            try:
                client.upload(table, "workers")
                raise AssertionError("a reader uploaded")
            except flight.FlightUnauthorizedError as exc:
                put_error = exc
        with flight.FlightClient(location) as client:
            try:
                body = pb.CompactRequest(dataset="workers").SerializeToString()
                list(client.do_action(flight.Action("compact", body), bearer(READER_TOKEN)))
                raise AssertionError("a reader compacted")
            except flight.FlightUnauthorizedError as exc:
                action_error = exc
        return count, put_error, action_error

    def writer() -> pb.IngestSummary:
        with LakehouseFlight(location, token=WRITER_TOKEN) as client:
            return client.upload(table, "workers")

    unauthenticated = str(await in_thread(anonymous))
    assert "MISSING_TOKEN" in unauthenticated or "UNAUTHENTICATED" in unauthenticated, unauthenticated
    assert "guess" not in str(await in_thread(wrong_token))
    count, put_error, action_error = await in_thread(reader)
    assert count == 200
    assert "ROLE_NOT_ALLOWED" in str(put_error) and "ROLE_NOT_ALLOWED" in str(action_error)
    assert (await in_thread(writer)).rows_written == 3
    assert await scalar(admin, "SELECT count(*) FROM workers") == 203


# --- ADBC: databases --------------------------------------------------------------------------------


@pytest.fixture
def pg_source(postgres) -> dict:
    """A fresh database with a placements table, readable by a role with a password of its own."""
    suffix = uuid.uuid4().hex[:10]
    database, role = f"src_{suffix}", f"importer_{suffix}"
    password = f"Pw/{suffix}@s3cr3t"
    with psycopg.connect(postgres.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    conninfo = postgres.conninfo.replace(f"dbname={postgres.database}", f"dbname={database}")
    placements = sample_tables()["placements"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE placements (placement_id bigint PRIMARY KEY, worker_id bigint, role text, "
            "start_date date, end_date date, hours double precision, status text)"
        )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO placements VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        p["placement_id"],
                        p["worker_id"],
                        p["role"],
                        p["start_date"],
                        p["end_date"],
                        p["hours"],
                        p["status"],
                    )
                    for p in placements.to_pylist()
                ],
            )
        conn.execute(f'GRANT SELECT ON placements TO "{role}"')
    uri = f"postgresql://{role}:{quote(password, safe='')}@{postgres.host}:{postgres.port}/{database}"
    return {
        "uri": uri,
        "password": password,
        "encoded": quote(password, safe=""),
        "role": role,
        "database": database,
        "conninfo": conninfo,
    }


async def ingest_database(mesh: RunningMesh, request: pb.IngestDatabaseRequest) -> tuple[list, pb.IngestSummary]:
    stub = pb_grpc.QueryServiceStub(mesh.channel)
    return await collect(stub.IngestDatabase(request, timeout=60))


async def test_postgresql_table_streams_progress_then_summary_and_hides_the_password(
    qmesh, q, pg_source, caplog, monkeypatch
) -> None:
    monkeypatch.setattr(logging.getLogger("lakehouse"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    secrets = (pg_source["password"], pg_source["encoded"])
    request = pb.IngestDatabaseRequest(dataset="placements", uri=pg_source["uri"], table="public.placements")
    progress, summary = await ingest_database(qmesh, request)
    assert progress and progress[-1].rows_done <= 400
    assert (summary.dataset, summary.created, summary.rows_written) == ("placements", True, 400)
    schema = schema_of(summary.schema.arrow_ipc)
    assert (schema.field("placement_id").type, schema.field("start_date").type, schema.field("hours").type) == (
        pa.int64(),
        pa.date32(),
        pa.float64(),
    )
    expected = sample_tables()["placements"]
    got = await rows(q, "SELECT placement_id, hours, end_date FROM placements ORDER BY placement_id")
    assert got == expected.select(["placement_id", "hours", "end_date"]).to_pylist()

    history = await qmesh.catalog.history("placements")
    lineage = history.versions[0].lineage
    assert lineage.source_system == "postgresql"
    assert pg_source["database"] in lineage.source_reference and "placements" in lineage.source_reference
    events = await qmesh.catalog.list_events()
    passed = await q.history("placements")
    assert "IngestDatabase" in caplog.text  # the server's log is being captured
    for secret in secrets:
        for where in (summary, history, passed, events):
            assert secret.encode() not in where.SerializeToString(), type(where).__name__
        assert secret not in caplog.text

    # A query as the source, appended; then the same rows again is recognised as a duplicate.
    query = pb.IngestDatabaseRequest(
        dataset="placements",
        uri=pg_source["uri"],
        query="SELECT * FROM placements WHERE placement_id <= 10",
        mode=pb.INGEST_MODE_APPEND,
    )
    _, appended = await ingest_database(qmesh, query)
    assert (appended.rows_written, appended.version) == (10, summary.version + 1)
    _, again = await ingest_database(qmesh, query)
    assert again.duplicate and again.version == appended.version
    assert await scalar(q, "SELECT count(*) FROM placements") == 410


async def test_postgresql_errors_never_echo_credentials(qmesh, q, pg_source, caplog, monkeypatch) -> None:
    monkeypatch.setattr(logging.getLogger("lakehouse"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-" + uuid.uuid4().hex
    uri = pg_source["uri"].replace(pg_source["encoded"], wrong)
    with pytest.raises(FailedPreconditionError) as err:
        await ingest_database(qmesh, pb.IngestDatabaseRequest(dataset="placements", uri=uri, table="placements"))
    assert err.value.reason == "SOURCE_AUTH_FAILED"
    assert "IngestDatabase" in caplog.text  # the server's log is being captured
    assert wrong not in error_text(err.value) and wrong not in caplog.text
    assert pg_source["role"] in err.value.message or "credentials" in err.value.message

    request = pb.IngestDatabaseRequest(dataset="placements", uri=pg_source["uri"], table="no_such_table")
    with pytest.raises(NotFoundError) as err:
        await ingest_database(qmesh, request)
    assert err.value.reason == "SOURCE_TABLE_NOT_FOUND"
    for secret in (pg_source["password"], pg_source["encoded"]):
        assert secret not in error_text(err.value) and secret not in caplog.text
    await assert_no_dataset(qmesh, q, "placements")


@pytest.mark.parametrize(
    ("column", "value", "sql", "expected"),
    [
        pytest.param(
            "timestamptz", "2024-01-02 03:04:05+00", "SELECT epoch(v)::BIGINT FROM typed", 1704164645, id="timestamptz"
        ),
        pytest.param("jsonb", '{"a": 7}', "SELECT json_extract(v, '$.a')::INT FROM typed", 7, id="jsonb"),
        pytest.param("text[]", "{x,y}", "SELECT len(v) FROM typed", 2, id="text_array"),
        pytest.param("bytea", "\\x0102", "SELECT octet_length(v) FROM typed", 2, id="bytea"),
        pytest.param("smallint", "3", "SELECT v + 1 FROM typed", 4, id="smallint"),
        pytest.param(
            "uuid",
            "0e9c2f6a-5b1d-4c3e-9f00-123456789abc",
            "SELECT CAST(v AS VARCHAR) FROM typed",
            "0e9c2f6a-5b1d-4c3e-9f00-123456789abc",
            id="uuid",
        ),
        pytest.param(
            "numeric(12,2)",
            "12.34",
            "SELECT (sum(v) * 2)::DOUBLE FROM typed",
            24.68,
            id="numeric",
        ),
        pytest.param(
            "interval",
            "1 day 02:00:00",
            "SELECT count(v) FROM typed",
            1,
            id="interval",
        ),
    ],
)
async def test_postgresql_column_types_land_as_usable_columns(
    qmesh, q, pg_source, column, value, sql, expected
) -> None:
    with psycopg.connect(pg_source["conninfo"], autocommit=True) as conn:
        conn.execute(f"CREATE TABLE typed (id int, v {column})")
        conn.execute("INSERT INTO typed VALUES (1, %s)", [value])
        conn.execute(f'GRANT SELECT ON typed TO "{pg_source["role"]}"')
    request = pb.IngestDatabaseRequest(dataset="typed", uri=pg_source["uri"], table="typed")
    try:
        _, summary = await ingest_database(qmesh, request)
    except LakehouseClientError as exc:
        assert (exc.code, exc.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_COLUMN_TYPE"), exc
        assert column.split("(")[0].split("[")[0] in exc.message
        return
    assert summary.rows_written == 1
    assert await scalar(q, sql) == expected


async def test_sqlite_and_duckdb_files_in_the_import_directory(qmesh, q) -> None:
    imports = qmesh.config.data_dir / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    workers = sample_tables()["workers"].select(["worker_id", "full_name", "hourly_rate"])
    with contextlib.closing(sqlite3.connect(imports / "staff.db")) as conn:
        conn.execute("CREATE TABLE workers (worker_id INTEGER, full_name TEXT, hourly_rate REAL)")
        conn.executemany("INSERT INTO workers VALUES (?, ?, ?)", [tuple(r.values()) for r in workers.to_pylist()])
        conn.commit()
    with duckdb.connect(str(imports / "staff.duckdb")) as con:
        con.register("source", workers)
        con.execute("CREATE TABLE workers AS SELECT * FROM source")

    _, from_sqlite = await ingest_database(
        qmesh,
        pb.IngestDatabaseRequest(dataset="sqlite_workers", uri=f"sqlite:///{imports / 'staff.db'}", table="workers"),
    )
    _, from_duckdb = await ingest_database(
        qmesh,
        pb.IngestDatabaseRequest(
            dataset="duckdb_workers", uri=f"duckdb:///{imports / 'staff.duckdb'}", query="SELECT * FROM workers"
        ),
    )
    assert from_sqlite.rows_written == from_duckdb.rows_written == 200
    for name in ("sqlite_workers", "duckdb_workers"):
        got = await rows(q, f"SELECT * FROM {name} ORDER BY worker_id")
        assert got == workers.to_pylist()
    lineage = (await qmesh.catalog.history("sqlite_workers")).versions[0].lineage
    assert lineage.source_system == "sqlite" and "staff.db" in lineage.source_reference

    missing = pb.IngestDatabaseRequest(dataset="x", uri=f"sqlite:///{imports / 'staff.db'}", table="nope")
    with pytest.raises(NotFoundError) as err:
        await ingest_database(qmesh, missing)
    assert err.value.reason == "SOURCE_TABLE_NOT_FOUND"


async def test_database_files_outside_the_import_directories_are_refused(qmesh, q, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with contextlib.closing(sqlite3.connect(elsewhere / "app.db")) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    imports = qmesh.config.data_dir / "imports"
    for uri in (
        f"sqlite:///{elsewhere / 'app.db'}",
        f"sqlite:///{imports}/../catalog.db",  # the catalog's own database, by traversal
        f"duckdb:///{elsewhere / 'app.db'}",
    ):
        request = pb.IngestDatabaseRequest(dataset="stolen", uri=uri, table="t")
        with pytest.raises(PermissionDeniedError) as err:
            await ingest_database(qmesh, request)
        assert err.value.reason == "SOURCE_PATH_NOT_ALLOWED", uri
        assert "import" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_database(qmesh, pb.IngestDatabaseRequest(dataset="stolen", uri="mysql://db/app", table="t"))
    assert err.value.reason == "INVALID_SOURCE_URI"
    await assert_no_dataset(qmesh, q, "stolen")


# --- IngestObject ---------------------------------------------------------------------------------


async def test_ingest_object_streams_progress_and_records_the_object(qmesh, q, files) -> None:
    path = sample_file(files, "workers", "csv")
    data = path.read_bytes()
    await qmesh.storage.put_object("raw/workers.csv", data)
    stub = pb_grpc.QueryServiceStub(qmesh.channel)
    request = pb.IngestObjectRequest(object=refs_pb2.ObjectRef(key="raw/workers.csv"), dataset="workers")
    progress, summary = await collect(stub.IngestObject(request, timeout=30))
    assert progress, "no progress event before the summary"
    assert all(p.bytes_done <= len(data) for p in progress)
    assert (summary.rows_written, summary.bytes_read) == (200, len(data))
    assert summary.content_sha256 == hashlib.sha256(data).hexdigest()
    assert await rows(q, "SELECT * FROM workers ORDER BY worker_id") == expected_workers()
    lineage = (await qmesh.catalog.history("workers")).versions[0].lineage
    assert lineage.source_system == "object"
    assert lineage.source_reference == "default/raw/workers.csv"
    # The same object again, appended, is a duplicate.
    again = await q.ingest_object("raw/workers.csv", "workers", mode="append")
    assert again.duplicate and again.version == summary.version


async def test_ingest_object_progress_reports_the_object_size(qmesh, files) -> None:
    data = sample_file(files, "workers", "csv").read_bytes()
    await qmesh.storage.put_object("raw/workers.csv", data)
    stub = pb_grpc.QueryServiceStub(qmesh.channel)
    request = pb.IngestObjectRequest(object=refs_pb2.ObjectRef(key="raw/workers.csv"), dataset="workers")
    progress, summary = await collect(stub.IngestObject(request, timeout=30))
    assert summary.rows_written == 200
    assert progress and all(p.bytes_total == len(data) for p in progress), list(progress)


async def test_ingest_object_that_does_not_exist_is_not_found(qmesh, q) -> None:
    with pytest.raises(NotFoundError) as err:
        await q.ingest_object("raw/missing.csv", "missing")
    assert err.value.reason == "OBJECT_NOT_FOUND"
    await assert_no_dataset(qmesh, q, "missing")


# --- maintenance ----------------------------------------------------------------------------------


async def test_compact_merges_small_files_into_a_new_version(qmesh, q) -> None:
    workers = sample_tables()["workers"]
    for i in range(4):
        await ingest_bytes(
            qmesh, "workers", csv_bytes(workers.slice(i * 50, 50)), f"p{i}.csv", mode=pb.INGEST_MODE_APPEND
        )
    root = table_root(qmesh, "workers")
    assert len(list(root.rglob("*.parquet"))) == 4
    before = await qmesh.catalog.get_dataset("workers")
    compacted = await q.compact("workers")
    assert (compacted.files_removed, compacted.files_added) == (4, 1)
    assert (compacted.version_before, compacted.version_after) == (before.current_version, before.current_version + 1)
    after = await qmesh.catalog.get_dataset("workers")
    assert (after.current_version, after.row_count) == (compacted.version_after, 200)
    latest = (await q.history("workers")).versions[0]
    assert latest.operation in {"COMPACT", "OPTIMIZE"} and latest.row_count == 200
    assert await rows(q, "SELECT * FROM workers ORDER BY worker_id") == expected_workers()
    nothing = await q.compact("workers")  # one file: nothing to do
    assert nothing.version_after == nothing.version_before == compacted.version_after


async def test_vacuum_dry_run_lists_and_retention_zero_deletes_old_files(qmesh, q) -> None:
    workers = sample_tables()["workers"]
    for i in range(3):
        await ingest_bytes(
            qmesh, "workers", csv_bytes(workers.slice(i * 10, 10)), f"p{i}.csv", mode=pb.INGEST_MODE_APPEND
        )
    await q.compact("workers")
    root = table_root(qmesh, "workers")
    old_files = sorted(p.name for p in root.rglob("*.parquet"))
    assert len(old_files) == 4

    default = await q.vacuum("workers", dry_run=True)  # 7-day default retention keeps everything
    assert list(default.files_deleted) == []
    dry = await q.vacuum("workers", retention_hours=0, dry_run=True)
    assert dry.dry_run and len(dry.files_deleted) == 3
    assert all(not f.startswith("/") and f.endswith(".parquet") for f in dry.files_deleted), list(dry.files_deleted)
    assert sorted(p.name for p in root.rglob("*.parquet")) == old_files  # nothing deleted yet

    done = await q.vacuum("workers", retention_hours=0)
    assert not done.dry_run and sorted(done.files_deleted) == sorted(dry.files_deleted)
    assert len(list(root.rglob("*.parquet"))) == 1
    assert await scalar(q, "SELECT count(*) FROM workers") == 30
    with pytest.raises(InvalidArgumentError) as err:
        await q.vacuum("workers", retention_hours=-1)
    assert err.value.reason == "INVALID_RETENTION"


async def test_time_travel_to_a_vacuumed_version_fails_cleanly(qmesh, q) -> None:
    workers = sample_tables()["workers"]
    first = await ingest_bytes(qmesh, "workers", csv_bytes(workers.slice(0, 10)), "a.csv")
    await ingest_bytes(qmesh, "workers", csv_bytes(workers.slice(10, 10)), "b.csv", mode=pb.INGEST_MODE_OVERWRITE)
    assert await scalar(q, "SELECT count(*) FROM workers", as_of={"workers": first.version}) == 10
    assert len((await q.vacuum("workers", retention_hours=0)).files_deleted) == 1
    assert await scalar(q, "SELECT count(*) FROM workers") == 10
    with pytest.raises(LakehouseClientError) as err:
        await q.query("SELECT count(*) FROM workers", as_of={"workers": first.version})
    assert err.value.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION), err.value
    assert "vacuum" in err.value.message.lower()


async def test_short_vacuum_retention_needs_the_admin_role(mesh_factory, tmp_path, monkeypatch) -> None:
    mesh = await secured_mesh(mesh_factory, tmp_path, monkeypatch)
    writer = query_client(mesh, WRITER_TOKEN)
    await ingest_bytes(mesh, "pairs", b"a,b\n1,2\n", "pairs.csv", token=WRITER_TOKEN)
    with pytest.raises(PermissionDeniedError) as err:
        await writer.vacuum("pairs", retention_hours=0)
    assert err.value.reason == "RETENTION_BELOW_MINIMUM"
    assert (await writer.vacuum("pairs", dry_run=True)).dry_run
    assert (await query_client(mesh, ADMIN_TOKEN).vacuum("pairs", retention_hours=0)).files_deleted == []


# --- S3 and restart -------------------------------------------------------------------------------


async def test_ingest_query_time_travel_and_flight_on_each_bucket_backend(
    mesh_factory, tmp_path, bucket_backend
) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data", bucket_backend)
    q = query_client(mesh)
    files = tmp_path / "files"
    first = await ingest_workers(q, files, fmt="parquet")
    extra = extra_workers()
    second = await ingest_bytes(mesh, "workers", csv_bytes(extra), "more.csv", mode=pb.INGEST_MODE_APPEND)
    assert await scalar(q, "SELECT count(*) FROM workers") == 200 + extra.num_rows
    then = await q.query("SELECT * FROM workers ORDER BY worker_id", as_of={"workers": first.version})
    assert then.table.to_pylist() == expected_workers()
    truncated = await q.query("SELECT worker_id FROM workers ORDER BY worker_id", max_inline_rows=10)
    assert truncated.truncated

    def pull() -> tuple[pa.Table, pa.Table, pa.Table]:
        with flight.FlightClient(flight_location(mesh)) as client:
            full = client.do_get(flight.Ticket(truncated.ticket)).read_all()
            return full, read_path(client, "workers"), read_path(client, f"workers@{first.version}")

    full, current, old = await in_thread(pull)
    assert full.column("worker_id").to_pylist() == sorted(
        [w["worker_id"] for w in expected_workers()] + extra.column("worker_id").to_pylist()
    )
    assert current.num_rows == 200 + extra.num_rows
    assert old.sort_by("worker_id").to_pylist() == expected_workers()

    with pytest.raises(InvalidArgumentError):
        await ingest_bytes(mesh, "scores", MALFORMED, "scores.csv")
    with pytest.raises(NotFoundError):
        await mesh.catalog.get_dataset("scores")
    if bucket_backend.bucket_uri:
        assert s3_keys(mesh, bucket_backend.bucket_uri, "scores") == []
        assert any(k.endswith(".parquet") for k in s3_keys(mesh, bucket_backend.bucket_uri, "workers"))
        assert not table_root(mesh, "workers").exists()
    else:
        assert not table_root(mesh, "scores").exists()
    compacted = await q.compact("workers")
    assert compacted.version_after == second.version + 1
    assert await scalar(q, "SELECT count(*) FROM workers") == 200 + extra.num_rows
    dry = await q.vacuum("workers", retention_hours=0, dry_run=True)
    assert len(dry.files_deleted) == 2
    assert all(f.endswith(".parquet") and "://" not in f and not f.startswith("/") for f in dry.files_deleted), list(
        dry.files_deleted
    )
    done = await q.vacuum("workers", retention_hours=0)
    assert sorted(done.files_deleted) == sorted(dry.files_deleted)
    if bucket_backend.bucket_uri:
        keys = s3_keys(mesh, bucket_backend.bucket_uri, "workers")
    else:
        keys = [str(p) for p in table_root(mesh, "workers").rglob("*")]
    assert len([k for k in keys if k.endswith(".parquet")]) == 1
    assert not any(k.endswith(f) for k in keys for f in done.files_deleted)
    assert await scalar(q, "SELECT count(*) FROM workers") == 200 + extra.num_rows


async def test_everything_is_queryable_after_a_restart(mesh_factory, tmp_path) -> None:
    mesh = await start_query_mesh(mesh_factory, tmp_path / "data")
    q = query_client(mesh)
    files = tmp_path / "files"
    first = await ingest_workers(q, files)
    await q.ingest_file(sample_file(files, "notes", "ndjson"), "notes")
    await ingest_bytes(mesh, "workers", csv_bytes(extra_workers()), "more.csv", mode=pb.INGEST_MODE_APPEND)
    before = await rows(q, "SELECT count(*) AS n, round(sum(hourly_rate), 4) AS s FROM workers")

    again = await mesh_factory.restart(mesh)
    q = query_client(again)
    assert await rows(q, "SELECT count(*) AS n, round(sum(hourly_rate), 4) AS s FROM workers") == before
    assert [t.name for t in await q.list_tables()] == ["notes", "workers"]
    old = await q.query("SELECT * FROM workers ORDER BY worker_id", as_of={"workers": first.version})
    assert old.table.to_pylist() == expected_workers()
    texts = await rows(q, "SELECT text FROM notes ORDER BY note_id")
    assert [r["text"] for r in texts] == sample_tables()["notes"].column("text").to_pylist()

    def pull() -> int:
        with flight_client(again) as client:
            return read_path(client, "workers").num_rows

    assert await in_thread(pull) == before[0]["n"]
    dup = await q.ingest_file(sample_file(files, "workers", "csv"), "workers", mode="append")
    assert dup.duplicate and dup.version == first.version


# -- hardening: tables out of the object API, incarnations, orphan commits, lineage, advertising --


async def test_tables_are_out_of_reach_of_the_object_api(qmesh, q) -> None:
    await ingest_bytes(qmesh, "scores", b"id,score\n1,3.5\n", "scores.csv")
    listed = await qmesh.storage.list_objects()
    assert [o.key for o in listed.objects] == []  # no table file shows up as an object
    table_file = next(table_root(qmesh, "scores").rglob("*.parquet"))
    key = str(table_file.relative_to(qmesh.config.data_dir / "buckets" / "default"))
    with pytest.raises(InvalidArgumentError) as err:
        await qmesh.storage.read_object(key)
    assert err.value.reason == "INVALID_OBJECT_KEY"
    with pytest.raises(InvalidArgumentError):
        await qmesh.storage.delete_object(key)
    assert await scalar(q, "SELECT count(*) FROM scores") == 1


async def test_a_recreated_name_never_time_travels_into_its_predecessor(qmesh, q) -> None:
    await ingest_bytes(qmesh, "pins", b"label\nOLD\n", "old.csv")
    assert (await q.query("SELECT label FROM pins", as_of={"pins": 2})).table.column(0).to_pylist() == ["OLD"]
    await qmesh.catalog.delete_dataset("pins")
    await ingest_bytes(qmesh, "pins", b"label\nNEW\n", "new.csv")
    assert (await q.query("SELECT label FROM pins", as_of={"pins": 2})).table.column(0).to_pylist() == ["NEW"]


async def test_an_unregistered_commit_is_never_carried_into_the_next_version(qmesh, q) -> None:
    await ingest_bytes(qmesh, "ledger", b"id\n1\n2\n", "ledger.csv")
    # A commit that reached Delta but never the catalog (a crash between the two).
    write_deltalake(
        str(table_root(qmesh, "ledger")), pa.table({"id": pa.array([99, 98, 97], pa.int64())}), mode="append"
    )
    assert await scalar(q, "SELECT count(*) FROM ledger") == 2  # invisible: the catalog pins the version
    await ingest_bytes(qmesh, "ledger", b"id\n3\n", "more.csv", mode=pb.INGEST_MODE_APPEND)
    assert (await q.query("SELECT id FROM ledger ORDER BY id")).table.column(0).to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("file_name", ["a" * 2000 + ".csv", "bad\x00name.csv"])
async def test_bad_file_names_are_refused_before_anything_is_written(qmesh, q, file_name: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "named", b"id\n1\n", file_name)
    assert err.value.violations[0].field == "file_name"
    await assert_no_dataset(qmesh, q, "named")


async def test_flight_location_can_be_advertised(mesh_factory: MeshFactory, tmp_path: Path) -> None:
    config = make_config(
        tmp_path / "data", Backends(), flight_port=0, flight_advertise="grpc+tcp://query.lakehouse:50052"
    )
    mesh = await start_mesh(config)
    mesh_factory.started.append(mesh)
    await ingest_bytes(mesh, "many", b"id\n" + b"".join(b"%d\n" % i for i in range(50)), "many.csv")
    result = await query_client(mesh).query("SELECT * FROM many", max_inline_rows=5)
    assert result.truncated and result.flight_location == "grpc+tcp://query.lakehouse:50052"


async def test_an_empty_file_is_refused(qmesh, q) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await ingest_bytes(qmesh, "empty", b"", "empty.csv")
    assert err.value.reason == "EMPTY_INPUT"
    await assert_no_dataset(qmesh, q, "empty")


async def test_the_same_bytes_read_with_other_options_are_new_content(qmesh, q) -> None:
    data = b"zip,city\n02134,Boston\n10001,New York\n"
    first = await ingest_bytes(qmesh, "zips", data, "zips.csv")
    assert first.content_sha256 == hashlib.sha256(data).hexdigest()  # no options: the plain file hash
    again = await ingest_bytes(qmesh, "zips", data, "zips.csv", mode=pb.INGEST_MODE_APPEND)
    assert again.duplicate
    options = pb.FileOptions(column_types={"zip": "VARCHAR", "city": "VARCHAR"})
    reread = await ingest_bytes(qmesh, "zips", data, "zips.csv", mode=pb.INGEST_MODE_OVERWRITE, options=options)
    assert not reread.duplicate and reread.content_sha256 != first.content_sha256
