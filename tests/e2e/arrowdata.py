"""Arrow IPC bytes and catalog requests built with the generated stubs, as an outside client would."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import pyarrow as pa

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as catalog_grpc
from lakehouse.common.v1 import arrow_pb2

WORKERS_SCHEMA = pa.schema([("id", pa.int64()), ("email", pa.string())])
WORKERS_SAMPLE = pa.table(
    {"id": [1, 2, 3], "email": ["ann@example.com", "bob@example.org", "cy@example.net"]},
    schema=WORKERS_SCHEMA,
)


def schema_ipc(schema: pa.Schema) -> bytes:
    """An Arrow IPC stream holding only `schema`."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def table_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def create_dataset(
    address: str,
    name: str,
    *,
    bucket: str = "",
    schema: pa.Schema = WORKERS_SCHEMA,
    sample: pa.Table | None = WORKERS_SAMPLE,
    metadata: Sequence[tuple[str, str]] = (),
) -> catalog_pb.CreateDatasetResponse:
    """CreateDataset through the generated stub; raises grpc.RpcError as a caller would see it."""
    request = catalog_pb.CreateDatasetRequest(
        dataset=catalog_pb.Dataset(
            name=name, bucket=bucket, schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(schema))
        ),
    )
    if sample is not None:
        request.sample.CopyFrom(arrow_pb2.ArrowTable(arrow_ipc=table_ipc(sample), row_count=sample.num_rows))
    with grpc.insecure_channel(address) as channel:
        return catalog_grpc.CatalogServiceStub(channel).CreateDataset(request, timeout=20, metadata=tuple(metadata))
