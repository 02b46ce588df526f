"""Helpers for the query service's service tests: clients, raw uploads, sample files, Flight.

Flight calls block and the in-process Flight server runs its handlers on the test's event loop,
so every Flight call from a test goes through `asyncio.to_thread` (see `in_thread`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pyarrow as pa

from lakehouse.cli import sample
from lakehouse.client import RetryPolicy, token_metadata
from lakehouse.client.errors import LakehouseClientError, from_rpc_error
from lakehouse.client.query import AsyncQueryClient
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc
from tests.support.mesh import RunningMesh

T = TypeVar("T")
SAMPLE_ROWS = 200
UPLOAD_CHUNK = 64 * 1024


@functools.cache
def sample_tables() -> dict[str, pa.Table]:
    """The deterministic staffing sample (200 workers), generated once per test session."""
    return sample.generate(SAMPLE_ROWS)


@functools.cache
def extra_workers() -> pa.Table:
    """50 more workers (ids 201-250), drawn from the same generator: rows for appends."""
    return sample.generate(SAMPLE_ROWS + 50)["workers"].slice(SAMPLE_ROWS)


def sample_file(directory: Path, table: str, fmt: str) -> Path:
    """One sample table written as csv, tsv, ndjson, parquet or json (a JSON array of objects)."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = directory / f"{table}.json"
        path.write_text(json.dumps(sample_tables()[table].to_pylist(), default=_json_value))
        return path
    return sample.write({table: sample_tables()[table]}, directory, fmt)[table]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def flight_location(mesh: RunningMesh) -> str:
    """The grpc+tcp:// URI of the mesh's Arrow Flight endpoint."""
    return mesh.server.endpoints["flight"]


def query_client(mesh: RunningMesh, token: str | None = "", *, timeout_s: float = 20.0) -> AsyncQueryClient:
    """A query client on the mesh's channel; `token` "" sends none, None reads LAKEHOUSE_TOKEN."""
    return AsyncQueryClient(
        mesh.channel,
        timeout_s=timeout_s,
        retry=RetryPolicy(attempts=2, initial_backoff_s=0.05),
        metadata=token_metadata(token),
    )


def header(
    dataset: str,
    file_name: str,
    *,
    mode: int = pb.INGEST_MODE_CREATE,
    options: pb.FileOptions | None = None,
    size_bytes: int = 0,
) -> pb.IngestFileRequest:
    return pb.IngestFileRequest(
        header=pb.IngestFileHeader(
            dataset=dataset, mode=mode, file_name=file_name, options=options, size_bytes=size_bytes
        )
    )


def chunks(data: bytes, size: int = UPLOAD_CHUNK) -> list[pb.IngestFileRequest]:
    return [pb.IngestFileRequest(chunk=data[i : i + size]) for i in range(0, len(data), size)]


def commit(data: bytes | None = None, sha256: str | None = None) -> pb.IngestFileRequest:
    """The closing message; with `data`, carries its real SHA-256 unless `sha256` is given."""
    if sha256 is None:
        sha256 = hashlib.sha256(data).hexdigest() if data is not None else ""
    return pb.IngestFileRequest(commit=pb.IngestFileCommit(sha256=sha256))


def upload_messages(
    dataset: str,
    data: bytes,
    file_name: str,
    *,
    mode: int = pb.INGEST_MODE_CREATE,
    options: pb.FileOptions | None = None,
) -> list[pb.IngestFileRequest]:
    """A well-formed IngestFile stream: header, chunks, commit with the right SHA-256."""
    return [header(dataset, file_name, mode=mode, options=options), *chunks(data), commit(data)]


async def raw_ingest(
    mesh: RunningMesh,
    messages: Iterable[pb.IngestFileRequest] | AsyncIterator[pb.IngestFileRequest],
    *,
    token: str = "",
    timeout_s: float = 20.0,
) -> pb.IngestSummary:
    """IngestFile through the generated stub with exactly these messages; errors as client errors."""
    stub = pb_grpc.QueryServiceStub(mesh.channel)

    async def stream() -> AsyncIterator[pb.IngestFileRequest]:
        if isinstance(messages, AsyncIterator):
            async for message in messages:
                yield message
        else:
            for message in messages:
                yield message

    try:
        response = await stub.IngestFile(stream(), timeout=timeout_s, metadata=tuple(token_metadata(token)()))
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None
    return response.summary


async def ingest_bytes(
    mesh: RunningMesh,
    dataset: str,
    data: bytes,
    file_name: str,
    *,
    mode: int = pb.INGEST_MODE_CREATE,
    options: pb.FileOptions | None = None,
    token: str = "",
) -> pb.IngestSummary:
    return await raw_ingest(mesh, upload_messages(dataset, data, file_name, mode=mode, options=options), token=token)


async def collect(
    call: Any,
) -> tuple[list[Any], pb.IngestSummary]:
    """All events of a server-streaming ingest call: (progress events, the summary)."""
    progress, summary = [], None
    try:
        async for event in call:
            if event.HasField("summary"):
                summary = event.summary
            else:
                progress.append(event.progress)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None
    assert summary is not None, "the stream ended without a summary"
    return progress, summary


def schema_of(ipc: bytes) -> pa.Schema:
    return pa.ipc.open_stream(ipc).schema


def in_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Runs blocking Flight client work off the event loop the in-process server needs."""
    return asyncio.ensure_future(asyncio.to_thread(work, *args, **kwargs))


async def rows(
    client: AsyncQueryClient, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    return (await client.query(sql, params, **kw)).table.to_pylist()


async def scalar(client: AsyncQueryClient, sql: str, **kw: Any) -> Any:
    return (await client.query(sql, **kw)).table.column(0)[0].as_py()


def error_text(error: LakehouseClientError) -> str:
    """Everything a caller sees of an error: message, reason, metadata and field violations."""
    parts = [error.message, error.reason, *error.metadata.values()]
    parts += [f"{v.field} {v.description}" for v in error.violations]
    return "\n".join(parts)
