"""Vector backend search latency against raw pymilvus on the same server, in the same run.

For Milvus Lite (the backend's own child process) and a Milvus 2.3 standalone server (the test
suite's launcher), with N random unit vectors of D dimensions in an HNSW (M=16,
efConstruction=200) COSINE collection, k=10, ef=64, Bounded consistency:

1. one query at a time, interleaved: MilvusBackend.search (thread pool, asyncio) vs MilvusClient.search
   (baseline) and AsyncMilvusClient.search, p50/p95 per query;
2. 8 queries in flight: backend (8 coroutines) vs raw client (8 threads), queries per second;
3. what the service adds per request today: describe_collection and spec().

Prints numbers and ratios; asserts nothing.

Run: .venv/bin/python bench/vector_backend_bench.py [--rows 10000] [--dim 384] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import AsyncMilvusClient, MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lakehouse.server.common.config import VectorConfig
from lakehouse.server.vector.backend import SOURCE_FIELDS, MilvusBackend
from lakehouse.server.vector.gateways import CollectionSpec, IndexSpec, Record
from tests.support.milvus import milvus_standalone

K = 10
EF = 64
CONCURRENCY = 8
OUTPUT = ["text", *SOURCE_FIELDS, "$meta"]  # what the backend asks for when no fields are named


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


async def timed_each(fn: Callable[[np.ndarray], Awaitable[Any]], queries: np.ndarray) -> list[float]:
    out = []
    for q in queries:
        began = time.perf_counter()
        await fn(q)
        out.append(time.perf_counter() - began)
    return out


def raw_search(client: MilvusClient, name: str, q: np.ndarray) -> Any:
    return client.search(
        name,
        data=[q.tolist()],
        limit=K,
        output_fields=OUTPUT,
        search_params={"metric_type": "COSINE", "params": {"ef": EF}},
        anns_field="vector",
        consistency_level="Bounded",
    )


async def bench(label: str, backend: MilvusBackend, uri: str, rows: int, dim: int, n_queries: int) -> None:
    rng = np.random.default_rng(7)
    data = rng.standard_normal((rows, dim), dtype=np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = data[rng.choice(rows, n_queries, replace=False)] + rng.normal(0, 0.05, (n_queries, dim)).astype(
        np.float32
    )
    name = f"bench_{int(time.time())}"
    spec = CollectionSpec(name, dim, "COSINE", IndexSpec("HNSW", {"M": 16, "efConstruction": 200}))

    began = time.perf_counter()
    await backend.create_collection(spec)
    created = time.perf_counter() - began
    began = time.perf_counter()
    for start in range(0, rows, 1000):
        await backend.upsert(
            name, [Record(f"v{i}", data[i], f"text {i}") for i in range(start, min(rows, start + 1000))]
        )
    upserted = time.perf_counter() - began
    began = time.perf_counter()
    await backend.flush(name)
    flushed = time.perf_counter() - began
    began = time.perf_counter()
    while (
        info := await backend.describe_collection(name)
    ).index_state != "READY" and time.perf_counter() - began < 120:
        await asyncio.sleep(0.5)
    indexed = time.perf_counter() - began
    print(f"\n== {label} ({backend.server_version}) {rows} x {dim}")
    print(
        f"create {ms(created)}  upsert {rows / upserted:,.0f} rows/s  flush {ms(flushed)}  "
        f"index ready after {ms(indexed)}  rows {info.row_count}"
    )

    raw = MilvusClient(uri=uri, dedicated=True)
    aio = AsyncMilvusClient(uri=uri)
    try:
        for q in queries[:20]:  # warm-up
            raw_search(raw, name, q)
            await backend.search(name, q, K, params={"ef": EF})

        async def raw_one(q: np.ndarray) -> Any:
            return raw_search(raw, name, q)

        async def aio_one(q: np.ndarray) -> Any:
            return await aio.search(
                name,
                data=[q.tolist()],
                limit=K,
                output_fields=OUTPUT,
                search_params={"metric_type": "COSINE", "params": {"ef": EF}},
                anns_field="vector",
                consistency_level="Bounded",
            )

        async def backend_one(q: np.ndarray) -> Any:
            return await backend.search(name, q, K, params={"ef": EF})

        await timed_each(aio_one, queries[:20])
        # Interleaved, each query through all three in turn, so drift on the server (background
        # index merges) and on the machine lands on every path alike.
        base: list[float] = []
        ours: list[float] = []
        async_raw: list[float] = []
        paths = [(raw_one, base), (backend_one, ours), (aio_one, async_raw)]
        for i, q in enumerate(queries):
            for fn, out in paths[i % 3 :] + paths[: i % 3]:
                out.extend(await timed_each(fn, q[None, :]))
        print("one query at a time           p50        p95     ratio p50 vs raw")
        for what, values in (("raw MilvusClient", base), ("AsyncMilvusClient", async_raw), ("MilvusBackend", ours)):
            ratio = statistics.median(values) / statistics.median(base)
            print(f"  {what:<24} {ms(pct(values, 50))} {ms(pct(values, 95))}   {ratio:5.2f}x")

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            began = time.perf_counter()
            list(pool.map(lambda q: raw_search(raw, name, q), queries))
            raw_qps = len(queries) / (time.perf_counter() - began)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def limited(q: np.ndarray) -> Any:
            async with gate:
                return await backend.search(name, q, K, params={"ef": EF})

        began = time.perf_counter()
        await asyncio.gather(*(limited(q) for q in queries))
        ours_qps = len(queries) / (time.perf_counter() - began)
        print(
            f"{CONCURRENCY} in flight: raw threads {raw_qps:,.0f} q/s, backend {ours_qps:,.0f} q/s "
            f"({ours_qps / raw_qps:.2f}x)"
        )

        describe = await timed_each(lambda _q: backend.describe_collection(name), queries[:50])
        spec_cost = await timed_each(lambda _q: backend.spec(name), queries[:50])
        print(f"describe_collection p50 {ms(pct(describe, 50))}, spec() p50 {ms(pct(spec_cost, 50))}")
    finally:
        raw.close()
        await aio.close()
        await backend.drop_collection(name)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="vector-bench-") as tmp:
        began = time.perf_counter()
        lite = MilvusBackend(VectorConfig(), Path(tmp) / "lite")
        await lite.start()
        print(f"Milvus Lite child started in {ms(time.perf_counter() - began)} (backend.start)")
        try:
            assert lite.embedded is not None
            await bench("Milvus Lite", lite, lite.embedded.uri, args.rows, args.dim, args.queries)
        finally:
            await lite.close()

        began = time.perf_counter()
        with milvus_standalone(Path(tmp) / "server") as server:
            print(f"\nMilvus standalone started in {ms(time.perf_counter() - began)} ({server.version})")
            backend = MilvusBackend(VectorConfig(uri=server.uri), Path(tmp) / "server-backend")
            await backend.start()
            try:
                await bench("Milvus 2.3 server", backend, server.uri, args.rows, args.dim, args.queries)
            finally:
                await backend.close()


if __name__ == "__main__":
    asyncio.run(main())
