"""Typed async client for the query service: SQL, ingest, maintenance."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from google.protobuf import duration_pb2

from lakehouse.client._base import BaseAsyncClient
from lakehouse.common.v1 import progress_pb2, refs_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc

UPLOAD_CHUNK = 1024 * 1024
MODES = {"create": pb.INGEST_MODE_CREATE, "append": pb.INGEST_MODE_APPEND, "overwrite": pb.INGEST_MODE_OVERWRITE}
FORMATS = {
    "": pb.FILE_FORMAT_UNSPECIFIED,
    "csv": pb.FILE_FORMAT_CSV,
    "tsv": pb.FILE_FORMAT_TSV,
    "json": pb.FILE_FORMAT_JSON,
    "ndjson": pb.FILE_FORMAT_NDJSON,
    "parquet": pb.FILE_FORMAT_PARQUET,
}
Progress = Callable[[int, int], None]
"""Called with (done, total); total is 0 when unknown."""


@dataclass(frozen=True)
class QueryResult:
    """Inline rows of a statement; when `truncated`, `ticket` fetches everything over Flight."""

    table: pa.Table
    truncated: bool
    ticket: bytes
    flight_location: str
    versions_read: dict[str, int] = field(default_factory=dict)


def parameter(value: Any, name: str = "") -> pb.QueryParameter:
    """A Python value as a statement parameter."""
    if value is None:
        return pb.QueryParameter(name=name, null_value=0)
    if isinstance(value, bool):
        return pb.QueryParameter(name=name, bool_value=value)
    if isinstance(value, int):
        return pb.QueryParameter(name=name, int64_value=value)
    if isinstance(value, float):
        return pb.QueryParameter(name=name, double_value=value)
    if isinstance(value, bytes):
        return pb.QueryParameter(name=name, bytes_value=value)
    return pb.QueryParameter(name=name, string_value=str(value))


def parameters(params: Sequence[Any] | Mapping[str, Any] | None) -> list[pb.QueryParameter]:
    if not params:
        return []
    if isinstance(params, Mapping):
        return [parameter(v, k) for k, v in params.items()]
    return [parameter(v) for v in params]


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def file_options(
    fmt: str = "",
    delimiter: str = "",
    header: bool | None = None,
    column_types: Mapping[str, str] | None = None,
    skip_bad_rows: bool = False,
) -> pb.FileOptions:
    csv = pb.CsvOptions(delimiter=delimiter)
    if header is not None:
        csv.header = header
    return pb.FileOptions(
        format=FORMATS[fmt],
        csv=csv,
        column_types=dict(column_types or {}),
        bad_rows=pb.BAD_ROW_HANDLING_SKIP if skip_bad_rows else pb.BAD_ROW_HANDLING_FAIL,
    )


class AsyncQueryClient(BaseAsyncClient):
    """SQL over datasets, ingest of files, objects and databases, and maintenance."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.QueryServiceStub(channel)

    async def query(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        as_of: Mapping[str, int] | None = None,
        max_inline_rows: int | None = None,
        timeout_s: float | None = None,
    ) -> QueryResult:
        request = pb.QueryRequest(
            sql=sql, parameters=parameters(params), as_of=dict(as_of or {}), timeout=_duration(timeout_s)
        )
        if max_inline_rows is not None:
            request.max_inline_rows = max_inline_rows
        response = await self._unary(self._stub.Query, request, timeout_s=(timeout_s or self._timeout_s) + 5)
        table = pa.ipc.open_stream(response.result.arrow_ipc).read_all()
        return QueryResult(
            table, response.truncated, response.flight_ticket, response.flight_location, dict(response.versions_read)
        )

    async def explain(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *, analyze: bool = False
    ) -> pb.ExplainResponse:
        return await self._unary(
            self._stub.Explain, pb.ExplainRequest(sql=sql, parameters=parameters(params), analyze=analyze)
        )

    async def list_tables(self) -> list[pb.Table]:
        tables, token = [], ""
        while True:
            page = await self._unary(self._stub.ListTables, pb.ListTablesRequest(page_size=1000, page_token=token))
            tables += list(page.tables)
            token = page.next_page_token
            if not token:
                return tables

    async def ingest_file(
        self,
        path: str | os.PathLike[str],
        dataset: str,
        *,
        mode: str = "create",
        options: pb.FileOptions | None = None,
        description: str = "",
        progress: Progress | None = None,
        timeout_s: float = 24 * 3600,
    ) -> pb.IngestSummary:
        """Uploads a local file and ingests it as one new version of `dataset`."""
        path = Path(path)
        size = path.stat().st_size
        header = pb.IngestFileHeader(
            dataset=dataset,
            mode=MODES[mode],
            file_name=path.name,
            options=options,
            size_bytes=size,
            description=description,
        )

        async def requests() -> AsyncIterator[pb.IngestFileRequest]:
            yield pb.IngestFileRequest(header=header)
            sent = 0
            with path.open("rb") as source:
                while chunk := await asyncio.to_thread(source.read, UPLOAD_CHUNK):
                    yield pb.IngestFileRequest(chunk=chunk)
                    sent += len(chunk)
                    if progress:
                        progress(sent, size)
            yield pb.IngestFileRequest(commit=pb.IngestFileCommit())

        response = await self._client_stream(self._stub.IngestFile, requests, timeout_s=timeout_s, replayable=True)
        return response.summary

    async def ingest_object(
        self,
        key: str,
        dataset: str,
        *,
        bucket: str = "",
        mode: str = "create",
        options: pb.FileOptions | None = None,
        progress: Progress | None = None,
    ) -> pb.IngestSummary:
        """Ingests an object already in the storage service; `progress` gets bytes read."""
        request = pb.IngestObjectRequest(
            object=refs_pb2.ObjectRef(bucket=bucket, key=key), dataset=dataset, mode=MODES[mode], options=options
        )
        return await self._follow(
            self._server_stream(self._stub.IngestObject, request, timeout_s=24 * 3600, idempotent=False),
            progress,
            by_bytes=True,
        )

    async def ingest_database(
        self,
        uri: str,
        dataset: str,
        *,
        table: str = "",
        query: str = "",
        mode: str = "create",
        progress: Progress | None = None,
    ) -> pb.IngestSummary:
        """Pulls a table or query result from a database (PostgreSQL, SQLite, DuckDB) through ADBC."""
        request = pb.IngestDatabaseRequest(dataset=dataset, mode=MODES[mode], uri=uri)
        if table:
            request.table = table
        else:
            request.query = query
        return await self._follow(
            self._server_stream(self._stub.IngestDatabase, request, timeout_s=24 * 3600, idempotent=False),
            progress,
            by_bytes=False,
        )

    @staticmethod
    async def _follow(events: AsyncIterator[Any], progress: Progress | None, *, by_bytes: bool) -> pb.IngestSummary:
        async for event in events:
            if event.HasField("summary"):
                return event.summary
            if progress:
                p: progress_pb2.Progress = event.progress
                progress(p.bytes_done if by_bytes else p.rows_done, p.bytes_total if by_bytes else p.rows_total)
        raise ConnectionError("the ingest stream ended without a summary")

    async def compact(
        self, dataset: str, *, target_file_size_bytes: int = 0, apply_tombstones: bool = False
    ) -> pb.CompactResponse:
        """Rewrites small files; with `apply_tombstones` (admins) also deletes soft-erased rows for good."""
        request = pb.CompactRequest(
            dataset=dataset, target_file_size_bytes=target_file_size_bytes, apply_tombstones=apply_tombstones
        )
        return await self._unary(self._stub.Compact, request, idempotent=False)

    async def vacuum(
        self, dataset: str, *, retention_hours: float | None = None, dry_run: bool = False
    ) -> pb.VacuumResponse:
        retention = _duration(retention_hours * 3600) if retention_hours is not None else None
        return await self._unary(
            self._stub.Vacuum, pb.VacuumRequest(dataset=dataset, retention=retention, dry_run=dry_run)
        )

    async def history(self, dataset: str, *, page_size: int = 0, page_token: str = "") -> pb.GetDatasetHistoryResponse:
        request = pb.GetDatasetHistoryRequest(dataset=dataset, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.GetDatasetHistory, request)

    async def delete_rows(
        self, dataset: str, key_column: str, key_values: Sequence[str], *, erasure_id: str = "", dry_run: bool = False
    ) -> pb.DeleteRowsResponse:
        """Deletes the rows whose `key_column` holds one of `key_values` (admins only); with
        `dry_run`, counts them and changes nothing."""
        request = pb.DeleteRowsRequest(
            dataset=dataset, key_column=key_column, key_values=list(key_values), erasure_id=erasure_id, dry_run=dry_run
        )
        # A repeat after a commit would find nothing left and report no rows: retried only when the
        # request was never sent, unless it is a dry run.
        return await self._unary(self._stub.DeleteRows, request, idempotent=dry_run)
