"""Query service benchmarks (issue: query service), each a ratio against a baseline measured in
the same run:

1. Flight DoGet of an N-row, 6-column dataset through the service vs a bare pyarrow Flight
   server streaming the same DuckDB reader (target >= 0.85) and vs protobuf row messages
   (target >= 10x).
2. Query latency of `SELECT 42` and of an aggregate over 1M rows, median over gRPC, vs a bare
   unary gRPC round trip plus the direct DuckDB time (target <= 1.5x).
3. CSV ingest of 1M rows vs direct DuckDB CSV -> Parquet (target <= 1.5x).

Run: .venv/bin/python bench/query_bench.py [--rows 10000000] [--csv-rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import grpc
import pyarrow.flight as flight
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port, lakehouse_server, median_s, report

from lakehouse.cli.sample import generate, write
from lakehouse.client import open_channel
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc

SIX_COLUMNS = (
    "SELECT i AS id, i % 1000 AS k, (i * 7919 % 100000) / 100.0 AS x, 'name-' || (i % 5000) AS s, "
    "DATE '2024-01-01' + CAST(i % 365 AS INTEGER) AS d, i % 2 = 0 AS b FROM range({rows}) t(i)"
)


def load(server_flight: str, name: str, rows: int) -> None:
    reader = duckdb.connect().sql(SIX_COLUMNS.format(rows=rows)).to_arrow_reader(65_536)
    with LakehouseFlight(server_flight) as client:
        client.upload(reader, name, mode="create")


def drain(reader) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    rows = size = 0
    for batch in reader:
        chunk = batch.data if hasattr(batch, "data") else batch
        rows += chunk.num_rows
        size += chunk.nbytes
    return rows, size


def best_rate(fn, runs: int = 3) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    best = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        rows, size = fn()
        best = max(best, rows / (time.perf_counter() - start))
    return best, rows, size


def flight_bench(rows: int) -> list[dict[str, object]]:
    with lakehouse_server() as server:
        load(server.flight, "events", rows)
        with LakehouseFlight(server.flight) as client:
            service_rate, _, size = best_rate(lambda: drain(client.dataset_reader("events")))
        table_dir = next((server.data_dir / "buckets" / "default" / "_lakehouse" / "datasets").glob("events-*"))
        bare_rate = _with_baseline(
            "flight",
            table_dir,
            lambda port: best_rate(
                lambda: drain(flight.FlightClient(f"grpc+tcp://127.0.0.1:{port}").do_get(flight.Ticket(b"all")))
            ),
        )
        proto_rows = min(rows, 2_000_000)
        proto_rate = _with_baseline(
            "rows", table_dir, lambda port: best_rate(lambda: _drain_rows(port), runs=1), proto_rows
        )
    return [
        {
            "metric": f"Flight DoGet via service ({rows:,} rows x 6 cols)",
            "value": f"{service_rate / 1e6:.2f} Mrows/s ({size / 1e6:.0f} MB)",
        },
        {"metric": "bare pyarrow Flight, same DuckDB reader", "value": f"{bare_rate / 1e6:.2f} Mrows/s"},
        {"metric": f"protobuf row messages ({proto_rows:,} rows)", "value": f"{proto_rate / 1e6:.3f} Mrows/s"},
        {"metric": "service / bare Flight", "value": f"{service_rate / bare_rate:.2f}", "target": ">= 0.85"},
        {"metric": "service / protobuf rows", "value": f"{service_rate / proto_rate:.1f}x", "target": ">= 10x"},
    ]


def _with_baseline(kind: str, table_dir: Path, measure, *extra: int):  # type: ignore[no-untyped-def]
    port = free_port()
    script = Path(__file__).resolve().parent / "bare_servers.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(table_dir), str(port), *map(str, extra)], start_new_session=True
    )
    try:
        time.sleep(2.0)
        return measure(port)[0]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _drain_rows(port: int) -> tuple[int, int]:
    from bare_servers import row_messages

    page_type = row_messages().RowPage  # type: ignore[attr-defined]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(
            "/bench.Rows/Stream", request_serializer=None, response_deserializer=page_type.FromString
        )
        rows = size = 0
        for page in call(b""):
            rows += len(page.rows)
            size += page.ByteSize()
        return rows, size


def latency_bench() -> list[dict[str, object]]:
    with lakehouse_server() as server:
        load(server.flight, "agg", 1_000_000)
        channel = grpc.insecure_channel(server.address)
        query = pb_grpc.QueryServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        rtt = median_s(lambda: health.Check(health_pb2.HealthCheckRequest()), 300)
        files = sorted(
            str(p)
            for p in next((server.data_dir / "buckets/default/_lakehouse/datasets").glob("agg-*")).rglob("*.parquet")
        )
        direct = duckdb.connect()
        direct.execute(f"CREATE VIEW agg AS SELECT * FROM read_parquet({files!r})")
        rows = []
        for label, sql in (
            ("SELECT 42", "SELECT 42"),
            ("aggregate over 1M rows", "SELECT k, count(*) AS n, avg(x) AS mean FROM agg GROUP BY k"),
        ):
            runs = 200 if label == "SELECT 42" else 30
            service = median_s(lambda sql=sql: query.Query(pb.QueryRequest(sql=sql)), runs)
            duck = median_s(lambda sql=sql: direct.sql(sql).to_arrow_table(), runs)
            rows += [
                {"metric": f"{label}: service median", "value": f"{service * 1e3:.2f} ms"},
                {
                    "metric": f"{label}: bare gRPC RTT + direct DuckDB",
                    "value": f"{(rtt + duck) * 1e3:.2f} ms ({rtt * 1e3:.2f} + {duck * 1e3:.2f})",
                },
                {"metric": f"{label}: ratio", "value": f"{service / (rtt + duck):.2f}", "target": "<= 1.5"},
            ]
        channel.close()
    return rows


def ingest_bench(csv_rows: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-csv-") as tmp:
        tables = generate(csv_rows)
        path = write({"workers": tables["workers"]}, Path(tmp), "csv")["workers"]
        size = path.stat().st_size
        start = time.perf_counter()
        duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{path}')) TO '{tmp}/direct.parquet' (FORMAT parquet)")
        direct = time.perf_counter() - start
        with lakehouse_server() as server:

            async def run() -> tuple[float, float]:
                client = AsyncQueryClient(open_channel(server.address), timeout_s=600)
                start = time.perf_counter()
                summary = await client.ingest_file(path, "workers", mode="create")
                return time.perf_counter() - start, summary.elapsed.ToNanoseconds() / 1e9

            service, server_side = asyncio.run(run())
    return [
        {
            "metric": f"CSV ingest {csv_rows:,} rows ({size / 1e6:.0f} MB) via service",
            "value": f"{service:.2f} s ({csv_rows / service / 1e6:.2f} Mrows/s)",
        },
        {"metric": "  of which the server's ingest path (after upload)", "value": f"{server_side:.2f} s"},
        {"metric": "direct DuckDB CSV -> Parquet", "value": f"{direct:.2f} s ({csv_rows / direct / 1e6:.2f} Mrows/s)"},
        {"metric": "server ingest path / direct", "value": f"{server_side / direct:.2f}", "target": "<= 1.5"},
        {"metric": "end to end incl. upload over gRPC / direct", "value": f"{service / direct:.2f}"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the Flight dataset")
    parser.add_argument("--csv-rows", type=int, default=1_000_000, help="rows of the CSV ingest")
    parser.add_argument("--only", choices=["flight", "latency", "ingest"], default=None)
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    if args.only in (None, "flight"):
        results += flight_bench(args.rows)
    if args.only in (None, "latency"):
        results += latency_bench()
    if args.only in (None, "ingest"):
        results += ingest_bench(args.csv_rows)
    report("query", results)


if __name__ == "__main__":
    main()
