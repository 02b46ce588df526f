"""Memory service benchmarks (issue: memory service), against baselines measured in the same run.

Mem0's `add()` takes 4-20 s because it calls an LLM several times; here adding a memory is a
write: the row in the database (durable when the call returns), then the text embedded on the CPU
and its vector written to Milvus Lite through the vector service. Against `lakehouse serve` as it
comes (SQLite, embedded Milvus Lite, the ONNX model on the CPU):

1. AddTrace median latency, one call at a time, each with new text (no embedding cache hit).
   Target: <= 20 ms. Reported as a ratio to its floor measured in the same run: a bare
   VectorService.Embed of one new text (gRPC + tokenizer + model) plus a bare durable insert of
   one row into SQLite (WAL, synchronous=FULL, one transaction per row, like the service). Also
   shown: a bare VectorService.UpsertVectors of one new text (embedding and Milvus write; the
   vector service flushes later, once upserts pause), the vector half of an add, and the same
   Milvus Lite taking one vector straight from pymilvus, without and with a flush per insert.
2. AddTrace throughput with 32 concurrent clients (traces/s), against Embed throughput (one new
   text per call) with 32 concurrent clients: embedding on the CPU is the ceiling.
3. SearchTraces median latency (k=10, a new query text each time) at 10K traces, and at 100K
   with --sizes 10000 100000 (filling 100K traces through AddTrace takes a while on 2 cores).
   Baseline: VectorService.Search with the same text on the namespace's collection, which is what
   SearchTraces calls before reading the traces from the database.

Run: .venv/bin/python bench/memory_bench.py [--sizes 10000 [100000]] [--adds 300] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from pymilvus import MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import lakehouse_server, report
from vector_bench import lite_uri

from lakehouse.client import open_channel, token_metadata
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.server.memory.service import collection_name
from lakehouse.server.memory.store import create_memory_engine
from lakehouse.vector.v1.vector_service_pb2 import VectorRecord

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "data" / "models" / "all-minilm-l6-v2"
NAMESPACE = "bench"
CONCURRENCY = 32
WORDS = [
    "deploy",
    "key",
    "vault",
    "rotate",
    "printer",
    "floor",
    "coffee",
    "budget",
    "standup",
    "invoice",
    "customer",
    "refund",
    "shipping",
    "courier",
    "warehouse",
    "forklift",
    "night",
    "shift",
    "gateway",
    "backup",
    "restore",
    "alarm",
    "badge",
    "lunch",
    "meeting",
    "room",
]


def sentence(i: int) -> str:
    """A distinct, sentence-like text for trace `i` (distinct texts: no embedding cache hits)."""
    picks = [WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(8)]
    return f"Note {i}: the {picks[0]} near the {picks[1]} needs {picks[2]} and {picks[3]} before {picks[4]} ({i % 97})."


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def timed(calls: int, fn) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for i in range(calls):
        began = time.perf_counter()
        await fn(i)
        samples.append(time.perf_counter() - began)
    return samples


def insert_floor(rows: int) -> float:
    """Median seconds of one durable single-row insert, through the engine the service uses."""
    with tempfile.TemporaryDirectory(prefix="memory-bench-db-") as tmp:
        engine = create_memory_engine(f"sqlite:///{tmp}/floor.db")
        table = sa.Table(
            "t", sa.MetaData(), sa.Column("id", sa.String(32), primary_key=True), sa.Column("content", sa.Text)
        )
        table.metadata.create_all(engine)
        samples = []
        for i in range(rows):
            began = time.perf_counter()
            with engine.begin() as conn:
                conn.execute(table.insert().values(id=f"{i:032d}", content=sentence(i)))
            samples.append(time.perf_counter() - began)
        engine.dispose()
        return statistics.median(samples)


def milvus_floor(uri: str, rows: int) -> tuple[float, float]:
    """Median seconds to insert one vector straight into the service's Milvus Lite, without and
    with a flush after each insert (a scratch collection, dropped)."""
    client = MilvusClient(uri)
    name = "memory_bench_floor"
    client.create_collection(name, dimension=384, metric_type="COSINE", id_type="string", max_length=64)
    rng = np.random.default_rng(7)
    try:
        medians = []
        for flush in (False, True):
            samples = []
            for i in range(rows):
                record = {"id": f"{flush}-{i}", "vector": rng.standard_normal(384).astype(np.float32).tolist()}
                began = time.perf_counter()
                client.insert(name, [record])
                if flush:
                    client.flush(name)
                samples.append(time.perf_counter() - began)
            medians.append(statistics.median(samples))
        return medians[0], medians[1]
    finally:
        client.drop_collection(name)
        client.close()


async def run(address: str, data_dir: Path, sizes: list[int], adds: int, queries: int) -> list[dict[str, object]]:
    channel = open_channel(address)
    memory = AsyncMemoryClient(channel, timeout_s=120, metadata=token_metadata(""))
    vectors = AsyncVectorClient(channel, timeout_s=120, metadata=token_metadata(""))
    rows: list[dict[str, object]] = []
    counter = iter(range(10**9))
    try:
        # Warm up: the model loads, Milvus Lite starts, the namespace's collection is created.
        for _ in range(20):
            await memory.add_trace(NAMESPACE, sentence(next(counter)))
            await vectors.embed([sentence(next(counter)) + " warm"])

        embed = statistics.median(await timed(adds, lambda i: vectors.embed([sentence(next(counter)) + " embed"])))
        upsert = statistics.median(
            await timed(
                adds,
                lambda i: vectors.upsert_vectors(
                    collection_name(NAMESPACE), [VectorRecord(id=f"u{i}", text=sentence(next(counter)) + " upsert")]
                ),
            )
        )
        await vectors.delete_vectors(collection_name(NAMESPACE), ids=[f"u{i}" for i in range(adds)])
        insert_only, insert_flush = await asyncio.to_thread(milvus_floor, lite_uri(data_dir), adds)
        insert = insert_floor(adds)
        add = statistics.median(await timed(adds, lambda i: memory.add_trace(NAMESPACE, sentence(next(counter)))))
        floor = embed + insert
        rows += [
            {"metric": "Embed, one new text (baseline)", "value": ms(embed), "numbers": {"embed_s": embed}},
            {
                "metric": "UpsertVectors, one new text (embed + Milvus write)",
                "value": ms(upsert),
                "numbers": {"upsert_s": upsert},
            },
            {
                "metric": "Milvus Lite insert of one vector, pymilvus (part of the above)",
                "value": f"{ms(insert_only)}; with a flush {ms(insert_flush)}",
                "numbers": {"milvus_insert_s": insert_only, "milvus_insert_flush_s": insert_flush},
            },
            {
                "metric": "SQLite durable insert, one row (baseline)",
                "value": ms(insert),
                "numbers": {"insert_s": insert},
            },
            {
                "metric": "AddTrace median (embedding included, CPU)",
                "value": f"{ms(add)} = {add / floor:.2f}x (Embed + insert)",
                "target": "<= 20 ms",
                "numbers": {"add_s": add, "ratio_to_floor": add / floor},
            },
        ]
        print(f"add median {ms(add)}; embed {ms(embed)}, insert {ms(insert)}, upsert {ms(upsert)}", flush=True)

        embeds = await concurrently(adds * 2, lambda: vectors.embed([sentence(next(counter)) + " concurrent"]))
        done = await concurrently(adds * 2, lambda: memory.add_trace(NAMESPACE, sentence(next(counter))))
        rows += [
            {
                "metric": f"Embed throughput, one new text per call, {CONCURRENCY} clients (baseline)",
                "value": f"{embeds:.0f} texts/s",
                "numbers": {"embeds_per_s": embeds},
            },
            {
                "metric": f"AddTrace throughput, {CONCURRENCY} clients",
                "value": f"{done:.0f} traces/s = {done / embeds:.2f}x Embed",
                "numbers": {"traces_per_s": done, "ratio_to_embed": done / embeds},
            },
        ]
        print(f"add throughput {done:.0f}/s, embed {embeds:.0f}/s", flush=True)

        held = await count(memory)
        for size in sizes:
            if held < size:
                began = time.perf_counter()
                await add_concurrently(memory, counter, size - held)
                print(f"filled to {size} traces in {time.perf_counter() - began:.0f} s", flush=True)
                held = size
            search = statistics.median(
                await timed(
                    queries, lambda i: memory.search_traces(f"who handles {sentence(i)}", namespaces=[NAMESPACE])
                )
            )
            bare = statistics.median(
                await timed(
                    queries,
                    lambda i: vectors.search(collection_name(NAMESPACE), text=f"what about {sentence(i)}", k=10),
                )
            )
            rows += [
                {
                    "metric": f"SearchTraces median at {size:,} traces",
                    "value": f"{ms(search)} = {search / bare:.2f}x vector Search",
                    "numbers": {"size": size, "search_s": search, "ratio_to_vector_search": search / bare},
                },
                {
                    "metric": f"vector Search median at {size:,} (baseline)",
                    "value": ms(bare),
                    "numbers": {"size": size, "vector_search_s": bare},
                },
            ]
            print(f"search at {size}: {ms(search)} (vector search {ms(bare)})", flush=True)
    finally:
        await channel.close()
    return rows


async def add_concurrently(memory: AsyncMemoryClient, counter, total: int) -> float:  # type: ignore[no-untyped-def]
    """Adds `total` traces from CONCURRENCY clients at once; returns traces per second."""
    return await concurrently(total, lambda: memory.add_trace(NAMESPACE, sentence(next(counter))))


async def concurrently(total: int, call) -> float:  # type: ignore[no-untyped-def]
    """Makes `total` calls from CONCURRENCY clients at once; returns calls per second."""
    remaining = iter(range(total))

    async def client() -> None:
        for _ in remaining:
            await call()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - began)


async def count(memory: AsyncMemoryClient) -> int:
    total, token = 0, ""
    while True:
        page = await memory.list_traces(NAMESPACE, page_size=1000, page_token=token)
        total += len(page.traces)
        token = page.next_page_token
        if not token:
            return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000], help="trace counts to search at, ascending")
    parser.add_argument("--adds", type=int, default=300, help="timed single adds (and baseline calls)")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per size")
    args = parser.parse_args()
    if not (MODEL_DIR / "manifest.json").is_file():
        raise SystemExit(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    began = time.perf_counter()
    env = {
        "LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR": str(MODEL_DIR),
    }
    with lakehouse_server(env) as server:
        results = asyncio.run(run(server.address, server.data_dir, sorted(args.sizes), args.adds, args.queries))
    results.append({"metric": "total run time", "value": f"{time.perf_counter() - began:.0f} s"})
    report("memory", results)


if __name__ == "__main__":
    main()
