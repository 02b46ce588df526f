"""Baselines for the Flight benchmark, each run as its own process:

- `flight DIR PORT`: a bare pyarrow Flight server streaming DuckDB's Arrow reader over the
  Parquet files under DIR (what the query service does, minus everything else).
- `rows DIR PORT [LIMIT]`: a gRPC server streaming the same rows as typed protobuf row
  messages (bench/rows.proto, pages of 1,000 rows), the way row-oriented APIs ship data.
"""

from __future__ import annotations

import sys
from concurrent import futures
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pyarrow.flight as flight

BATCH_ROWS = 65_536


def _parquet_files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts)


class BareFlight(flight.FlightServerBase):
    def __init__(self, location: str, files: list[str]) -> None:
        super().__init__(location)
        self._files = files

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.RecordBatchStream:
        con = duckdb.connect()
        reader = con.sql(f"SELECT * FROM read_parquet({self._files!r})").to_arrow_reader(BATCH_ROWS)
        return flight.RecordBatchStream(reader)


def row_messages() -> object:
    """bench/rows.proto compiled with grpcio-tools into a temporary module."""
    import importlib.util
    import tempfile

    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix="bench-rows-"))
    here = Path(__file__).resolve().parent
    if protoc.main(["protoc", f"-I{here}", f"--python_out={out}", str(here / "rows.proto")]) != 0:
        raise RuntimeError("protoc failed on bench/rows.proto")
    spec = importlib.util.spec_from_file_location("rows_pb2", out / "rows_pb2.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def serve_rows(files: list[str], port: int) -> None:
    limit = int(sys.argv[4]) if len(sys.argv) > 4 else 1_000_000
    rows_pb2: Any = row_messages()

    def stream(request: bytes, context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
        con = duckdb.connect()
        reader = con.sql(f"SELECT * FROM read_parquet({files!r}) LIMIT {limit}").to_arrow_reader(1000)
        for batch in reader:
            page = rows_pb2.RowPage()
            for r in batch.to_pylist():
                page.rows.add(id=r["id"], k=r["k"], x=r["x"], s=r["s"], d=str(r["d"]), b=r["b"])
            yield page

    handler = grpc.method_handlers_generic_handler(
        "bench.Rows",
        {
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def main() -> None:
    kind, root, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    files = _parquet_files(root)
    if kind == "flight":
        BareFlight(f"grpc+tcp://127.0.0.1:{port}", files).serve()
    else:
        serve_rows(files, port)


if __name__ == "__main__":
    main()
