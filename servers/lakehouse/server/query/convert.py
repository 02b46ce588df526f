"""Protobuf <-> domain conversions shared by the gRPC servicer and the Flight server."""

from __future__ import annotations

from typing import Any

from lakehouse.client.arrow import arrow_schema
from lakehouse.client.query import parameters as client_parameters
from lakehouse.common.v1 import progress_pb2
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.server.common.convert import seconds, to_timestamp
from lakehouse.server.common.errors import invalid_field
from lakehouse.server.query.ingest import FileOptions
from lakehouse.server.query.ingestion import ProgressEvent, Summary
from lakehouse.server.query.service import Statement, Table, as_positional_or_named

MODES = {
    pb.INGEST_MODE_UNSPECIFIED: "CREATE",
    pb.INGEST_MODE_CREATE: "CREATE",
    pb.INGEST_MODE_APPEND: "APPEND",
    pb.INGEST_MODE_OVERWRITE: "OVERWRITE",
}
FORMATS = {
    pb.FILE_FORMAT_CSV: "csv",
    pb.FILE_FORMAT_TSV: "tsv",
    pb.FILE_FORMAT_JSON: "json",
    pb.FILE_FORMAT_NDJSON: "ndjson",
    pb.FILE_FORMAT_PARQUET: "parquet",
}
DRIVERS = {
    pb.DATABASE_DRIVER_POSTGRESQL: "postgresql",
    pb.DATABASE_DRIVER_SQLITE: "sqlite",
    pb.DATABASE_DRIVER_DUCKDB: "duckdb",
}


def parameters(values: Any) -> list[Any] | dict[str, Any] | None:
    """QueryParameter messages as DuckDB parameters."""
    pairs = []
    for i, p in enumerate(values):
        kind = p.WhichOneof("value")
        if kind is None:
            raise invalid_field(f"parameters[{i}]", "has no value", reason="INVALID_PARAMETER")
        pairs.append((p.name, None if kind == "null_value" else getattr(p, kind)))
    return as_positional_or_named(pairs)


def statement_pb(statement: Statement) -> flight_pb2.SqlStatement:
    return flight_pb2.SqlStatement(
        sql=statement.sql, parameters=client_parameters(statement.params), as_of=dict(statement.as_of or {})
    )


def file_options(options: pb.FileOptions) -> FileOptions:
    csv = options.csv
    return FileOptions(
        format=FORMATS.get(options.format, ""),
        delimiter=csv.delimiter,
        quote=csv.quote,
        escape=csv.escape,
        header=csv.header if csv.HasField("header") else None,
        null_strings=tuple(csv.null_strings),
        column_types=dict(options.column_types),
        skip_bad_rows=options.bad_rows == pb.BAD_ROW_HANDLING_SKIP,
    )


def summary_pb(summary: Summary) -> pb.IngestSummary:
    return pb.IngestSummary(
        dataset=summary.dataset,
        version=summary.version,
        created=summary.created,
        duplicate=summary.duplicate,
        rows_written=summary.rows_written,
        rows_skipped=summary.rows_skipped,
        bytes_read=summary.bytes_read,
        content_sha256=summary.content_sha256,
        schema=arrow_schema(summary.schema),
        pii_columns=list(summary.pii_columns),
        warnings=list(summary.warnings),
        elapsed=seconds(summary.elapsed_s),
    )


def progress_pb(event: ProgressEvent) -> progress_pb2.Progress:
    return progress_pb2.Progress(
        stage=event.stage, rows_done=event.rows, bytes_done=event.bytes, bytes_total=event.bytes_total
    )


def compact_pb(dataset: str, before: int, after: int, metrics: dict[str, int], elapsed_s: float) -> pb.CompactResponse:
    return pb.CompactResponse(
        dataset=dataset,
        version_before=before,
        version_after=after,
        files_removed=metrics["files_removed"],
        files_added=metrics["files_added"],
        rows_erased=metrics.get("rows_erased", 0),
        tombstones_cleared=metrics.get("tombstones_cleared", 0),
        elapsed=seconds(elapsed_s),
    )


def vacuum_pb(dataset: str, files: list[str], dry_run: bool) -> pb.VacuumResponse:
    return pb.VacuumResponse(dataset=dataset, files_deleted=files, dry_run=dry_run)


def table_pb(table: Table) -> pb.Table:
    base = table.base
    return pb.Table(
        name=table.name,
        kind=pb.TABLE_KIND_VIEW if table.view else pb.TABLE_KIND_DATASET,
        schema=arrow_schema(table.schema),
        version=base.version,
        row_count=None if table.view else base.row_count,
        base_dataset=base.name if table.view else "",
        description=table.view.description if table.view else base.description,
        update_time=to_timestamp(base.update_time),
    )
