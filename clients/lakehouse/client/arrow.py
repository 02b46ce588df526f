"""Arrow payloads as the contracts carry them: IPC stream bytes inside common.v1 messages."""

from __future__ import annotations

import pyarrow as pa

from lakehouse.common.v1 import arrow_pb2


def schema_ipc(schema: pa.Schema) -> bytes:
    """A schema as an Arrow IPC stream with no batches."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def arrow_schema(schema: pa.Schema) -> arrow_pb2.ArrowSchema:
    return arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(schema))


def table_ipc(table: pa.Table) -> arrow_pb2.ArrowTable:
    """A table as one Arrow IPC stream, with its row count."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return arrow_pb2.ArrowTable(arrow_ipc=sink.getvalue().to_pybytes(), row_count=table.num_rows)
