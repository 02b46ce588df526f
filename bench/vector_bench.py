"""Vector service benchmarks (issue: vector service), each a ratio against a baseline measured in
the same run, on both backends: the embedded Milvus Lite (`lakehouse serve` as it comes) and a
Milvus 2.3 standalone server (the test suite's launcher, the service pointed at it with
LAKEHOUSE_VECTOR__URI).

One collection per backend: 384 dimensions, COSINE, HNSW (M=16, efConstruction=200), unit vectors
(sentence embeddings by default, see `Vectors` and bench/text_corpus.py) upserted through the
service in calls of 1000 (the service flushes once the upserts pause). It grows through the sizes (10K, then 90K more for 100K), and at each
size:

1. Search through the service (VectorService.Search over gRPC, a query vector, k=10, ef=64) vs
   `pymilvus.MilvusClient.search` straight to the same Milvus and collection (for Milvus Lite, the
   service's own child process), asking for the same output fields the service asks for, at the
   same (Bounded) consistency. One query at a time, each query through every path in rotating
   order; median and p95 per query. The service is called through a blocking gRPC stub (the same
   kind of client pymilvus is) and through AsyncVectorClient; pymilvus also without output
   fields, to show what fetching them costs. Target: service median <= 1.3x direct. Then the
   parts of the difference: a bare gRPC round trip, the catalog's GetAccessPolicy round trip the
   service makes whenever its policy lease has run out, and searches back to back.
2. At the largest size, recall@10 of the HNSW index through the service's EvaluateRecall
   (sample 200, ef=64) with the search p50/p95 it reports. Target on the server: >= 0.95.
3. Upsert throughput (vectors/s, client-side conversion excluded), the segments Milvus holds
   (server only) and search p50/p95: reported.

On Milvus Lite, 100K upserts may not fit the time budget (--lite-budget-s): the rate measured at
10K decides the largest size that fits, and the report says when a size was cut.

Run: .venv/bin/python bench/vector_bench.py [--sizes 10000 100000] [--queries 200] [--only lite|server]
     [--data text|random|low-rank]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import text_corpus
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import lakehouse_server, median_s, report

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as catalog_grpc
from lakehouse.client import open_channel
from lakehouse.client.vector import AsyncVectorClient, index_spec, search_params
from lakehouse.server.vector.backend import SOURCE_FIELDS
from lakehouse.vector.v1 import vector_service_pb2 as pb
from lakehouse.vector.v1 import vector_service_pb2_grpc as pb_grpc
from tests.support.milvus import milvus_standalone

DIM = 384
MODEL_DIR = Path(__file__).resolve().parents[1] / "data" / "models" / "all-minilm-l6-v2"
K = 10
EF = 64
BATCH = 1000
WARMUP = 20
RUN = 10
RECALL_SAMPLE = 200
COLLECTION = "vector_bench"
# What the service asks Milvus for when a search names no output fields (a collection without
# declared fields): the text, the IndexDataset columns and the dynamic field.
SERVICE_OUTPUT = ["text", *SOURCE_FIELDS, "$meta"]
LATENT = 48
NOISE = 0.3
DATA_NAMES = {
    "text": f"sentence embeddings (all-MiniLM-L6-v2 int8) of generated text, {DIM} dimensions",
    "random": f"random unit vectors, {DIM} dimensions",
    "low-rank": f"low-rank unit vectors plus noise, {DIM} dimensions",
}
SEARCH_TARGET = 1.3
RECALL_TARGET = 0.95


class Vectors:
    """Unit vectors to store and to query with, handed out in order. "text": embeddings of
    generated sentences by the prepared model (bench/text_corpus.py), what the service stores.
    "random": isotropic, the hardest case for a graph index (in 384 dimensions every point is
    almost equally far from every other, so the exact top 10 are barely closer than the rest).
    "low-rank": a 48-dimensional Gaussian mapped into 384 dimensions plus isotropic noise (30% of
    the norm)."""

    def __init__(self, kind: str, pool: np.ndarray | None, seed: int = 7) -> None:
        self.kind = kind
        self.rng = np.random.default_rng(seed)
        self.basis = np.random.default_rng(seed + 1).standard_normal((LATENT, DIM), dtype=np.float32)
        self.pool = pool
        self.used = 0

    def __call__(self, n: int) -> np.ndarray:
        if self.pool is not None:
            self.used += n
            if self.used > len(self.pool):
                raise RuntimeError(f"the text corpus holds {len(self.pool):,} vectors, {self.used:,} asked for")
            return self.pool[self.used - n : self.used]
        if self.kind == "random":
            data = self.rng.standard_normal((n, DIM), dtype=np.float32)
        else:
            data = self.rng.standard_normal((n, LATENT), dtype=np.float32) @ self.basis
            data /= np.linalg.norm(data, axis=1, keepdims=True)
            data += self.rng.standard_normal((n, DIM), dtype=np.float32) * np.float32(NOISE / np.sqrt(DIM))
        return data / np.linalg.norm(data, axis=1, keepdims=True)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def lite_uri(data_dir: Path) -> str:
    """The URI of the service's Milvus Lite child, found by its data directory among the running
    processes (the child runs `milvus_lite server --data-dir <data_dir>/vector/milvus-lite --port N`)."""
    wanted = str((data_dir / "vector" / "milvus-lite").resolve())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "--data-dir" in argv and "--port" in argv and argv[argv.index("--data-dir") + 1] == wanted:
            return f"http://127.0.0.1:{argv[argv.index('--port') + 1]}"
    raise RuntimeError(f"no Milvus Lite child serving {wanted}")


@dataclass
class Paths:
    """Per-query latencies of each search path, in seconds."""

    service: list[float] = field(default_factory=list)
    service_async: list[float] = field(default_factory=list)
    direct: list[float] = field(default_factory=list)
    direct_ids: list[float] = field(default_factory=list)


class Bench:
    def __init__(self, label: str, address: str, milvus_uri: Callable[[], str], queries: int, data: Vectors) -> None:
        self.label = label
        self.address = address
        self.milvus_uri = milvus_uri
        self.queries = queries
        self.rows: list[dict[str, object]] = []
        self.vectors = data
        self.loaded = 0
        self.upsert_rate = 0.0
        self.channel = grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
        )
        self.stub = pb_grpc.VectorServiceStub(self.channel)
        self.client = AsyncVectorClient(open_channel(address), timeout_s=900)
        self.direct: MilvusClient | None = None

    def add(self, metric: str, value: str, target: str = "", **numbers: object) -> None:
        row: dict[str, object] = {"metric": f"{self.label} {metric}", "value": value}
        if target:
            row["target"] = target
        if numbers:
            row["numbers"] = numbers
        self.rows.append(row)
        print(f"  {metric}: {value}" + (f"  (target {target})" if target else ""), flush=True)

    async def create(self) -> None:
        began = time.perf_counter()
        await self.client.create_collection(
            COLLECTION, dimension=DIM, metric="cosine", index=index_spec("hnsw", m=16, ef_construction=200)
        )
        print(f"\n== {self.label}: collection created in {ms(time.perf_counter() - began)}", flush=True)
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        self.direct = MilvusClient(uri=self.milvus_uri(), dedicated=True)
        self.add("Milvus version", str(self.direct.get_server_version()))

    async def grow(self, size: int) -> float:
        """Upserts vectors up to `size` through the service; returns vectors/s of the calls."""
        spent = 0.0
        start = self.loaded
        for first in range(start, size, BATCH):
            block = self.vectors(min(BATCH, size - first))
            records = [
                pb.VectorRecord(
                    id=f"v{first + i}", vector=pb.FloatVector(values=row.tolist()), text=f"text {first + i}"
                )
                for i, row in enumerate(block)
            ]
            began = time.perf_counter()
            await self.client.upsert_vectors(COLLECTION, records)
            spent += time.perf_counter() - began
        self.loaded = size
        rate = (size - start) / spent
        began = time.perf_counter()
        state = ""
        while time.perf_counter() - began < 600:
            collection = await self.client.get_collection(COLLECTION)
            state = pb.IndexState.Name(collection.index_state)
            if collection.index_state == pb.INDEX_STATE_READY and collection.row_count >= size:
                break
            await asyncio.sleep(0.5)
        ready = time.perf_counter() - began
        self.add(
            f"{size:,} x {DIM}: upsert via service",
            f"{rate:,.0f} vectors/s ({size - start:,} in {spent:.1f} s, {-(-(size - start) // BATCH)} calls of "
            f"{BATCH}, {spent / -(-(size - start) // BATCH) * 1e3:.0f} ms per call); index {state} after "
            f"{ready:.1f} s more",
            size=size,
            vectors_per_s=rate,
            upsert_s=spent,
            index_ready_s=ready,
        )
        self.segments(size)
        return rate

    def segments(self, size: int) -> None:
        assert self.direct is not None
        try:
            loaded = self.direct.list_loaded_segments(COLLECTION)
        except Exception as e:  # Milvus Lite does not answer this call
            print(f"  (loaded segments unavailable: {type(e).__name__})")
            return
        indexed = [s for s in loaded if s.index_name]
        self.add(
            f"{size:,} x {DIM}: loaded segments",
            f"{len(loaded)} ({len(indexed)} with an index; rows per segment "
            f"{min((s.num_rows for s in loaded), default=0):,}..{max((s.num_rows for s in loaded), default=0):,})",
            segments=len(loaded),
            indexed_segments=len(indexed),
        )

    async def search(self, size: int) -> None:
        assert self.direct is not None
        direct = self.direct
        queries = self.vectors(self.queries + WARMUP)  # new vectors from the stored ones' distribution
        requests = [
            pb.SearchRequest(
                collections=[COLLECTION], vector=pb.FloatVector(values=q.tolist()), k=K, params=pb.SearchParams(ef=EF)
            )
            for q in queries
        ]
        lists = [q.tolist() for q in queries]
        params = {"metric_type": "COSINE", "params": {"ef": EF}}

        def service(i: int) -> Any:
            return self.stub.Search(requests[i], timeout=60)

        async def service_async(i: int) -> Any:
            return await self.client.search(COLLECTION, vector=lists[i], k=K, params=search_params(ef=EF))

        def direct_search(i: int) -> Any:
            return direct.search(
                COLLECTION,
                data=[lists[i]],
                limit=K,
                output_fields=SERVICE_OUTPUT,
                search_params=params,
                anns_field="vector",
                consistency_level="Bounded",
            )

        def direct_ids(i: int) -> Any:
            return direct.search(
                COLLECTION,
                data=[lists[i]],
                limit=K,
                output_fields=[],
                search_params=params,
                anns_field="vector",
                consistency_level="Bounded",
            )

        times = Paths()

        async def timed(kind: str, i: int) -> None:
            began = time.perf_counter()
            if kind == "service_async":
                result = await service_async(i)
            else:
                result = {"service": service, "direct": direct_search, "direct_ids": direct_ids}[kind](i)
            elapsed = time.perf_counter() - began
            if i >= WARMUP:
                getattr(times, kind).append(elapsed)
            hits = len(result.hits) if hasattr(result, "hits") else len(result[0])
            if hits != K:
                raise RuntimeError(f"{kind} returned {hits} hits, not {K}")

        kinds = ["service", "direct", "service_async", "direct_ids"]
        for i in range(len(queries)):
            turn = i % len(kinds)
            for kind in kinds[turn:] + kinds[:turn]:
                await timed(kind, i)
        ratio = statistics.median(times.service) / statistics.median(times.direct)
        for what, values in (
            ("service (blocking stub)", times.service),
            ("service (AsyncVectorClient)", times.service_async),
            ("pymilvus direct, same output fields", times.direct),
            ("pymilvus direct, ids and distances only", times.direct_ids),
        ):
            self.add(
                f"{size:,} x {DIM}: search p50 / p95, {what}",
                f"{ms(pct(values, 50))} / {ms(pct(values, 95))}",
                p50_s=pct(values, 50),
                p95_s=pct(values, 95),
            )
        self.add(
            f"{size:,} x {DIM}: search median, service / direct",
            f"{ratio:.2f}x",
            f"<= {SEARCH_TARGET}",
            ratio=ratio,
            met=ratio <= SEARCH_TARGET,
        )
        async_ratio = statistics.median(times.service_async) / statistics.median(times.direct)
        self.add(
            f"{size:,} x {DIM}: search median, AsyncVectorClient / direct", f"{async_ratio:.2f}x", ratio=async_ratio
        )
        self.overhead(size, len(queries), service, direct_search)

    def overhead(self, size: int, n: int, service: Callable[[int], Any], direct: Callable[[int], Any]) -> None:
        """What the service adds, in parts: a bare gRPC round trip to the server, the catalog's
        GetAccessPolicy round trip (the service asks again once its policy lease, [catalog]
        policy_lease_ms = 20 ms by default, has run out), and searches back to back (each within
        the lease of the one before) against pymilvus back to back, in alternating runs."""
        health = health_pb2_grpc.HealthStub(self.channel)
        catalog = catalog_grpc.CatalogServiceStub(self.channel)
        rtt = median_s(lambda: health.Check(health_pb2.HealthCheckRequest()), 200)
        revision = catalog.GetAccessPolicy(catalog_pb.GetAccessPolicyRequest()).revision
        policy = median_s(
            lambda: catalog.GetAccessPolicy(catalog_pb.GetAccessPolicyRequest(known_revision=revision)), 200
        )
        # Runs of RUN searches on one path, alternating paths; the first search of each run is
        # left out (on the service it follows the other path's run and may find the lease gone).
        runs: dict[str, list[float]] = {"service": [], "direct": []}
        paths = [("service", service), ("direct", direct)]
        for block in range(max(1, self.queries // RUN)):
            for name, fn in paths[block % 2 :] + paths[: block % 2]:
                for j in range(RUN):
                    began = time.perf_counter()
                    fn((block * RUN + j) % n)
                    if j:
                        runs[name].append(time.perf_counter() - began)
        back_service, back_direct = statistics.median(runs["service"]), statistics.median(runs["direct"])
        self.add(
            f"{size:,} x {DIM}: parts: gRPC round trip (Health.Check) / catalog GetAccessPolicy (unchanged)",
            f"{ms(rtt)} / {ms(policy)}",
            rtt_s=rtt,
            policy_s=policy,
        )
        self.add(
            f"{size:,} x {DIM}: back to back (within the policy lease): service / direct median",
            f"{ms(back_service)} / {ms(back_direct)} = {back_service / back_direct:.2f}x",
            service_s=back_service,
            direct_s=back_direct,
            ratio=back_service / back_direct,
        )

    async def recall(self, size: int, target: str) -> None:
        began = time.perf_counter()
        answer = await self.client.evaluate_recall(
            COLLECTION, sample_size=RECALL_SAMPLE, k=K, params=search_params(ef=EF), seed=7, timeout_s=900
        )
        took = time.perf_counter() - began
        recall = answer.recall_at_k
        self.add(
            f"{size:,} x {DIM}: EvaluateRecall recall@{answer.k} (HNSW, ef={EF}, sample {answer.sample_size})",
            f"{recall:.4f}",
            target,
            recall=recall,
            met=recall >= RECALL_TARGET if target else None,
        )
        self.add(
            f"{size:,} x {DIM}: EvaluateRecall search p50 / p95 (as it reports them)",
            f"{ms(answer.latency_p50.ToNanoseconds() / 1e9)} / {ms(answer.latency_p95.ToNanoseconds() / 1e9)}; "
            f"the call took {took:.1f} s",
            p50_s=answer.latency_p50.ToNanoseconds() / 1e9,
            p95_s=answer.latency_p95.ToNanoseconds() / 1e9,
            call_s=took,
        )

    async def close(self) -> None:
        if self.direct is not None:
            self.direct.close()
        await self.client.close()
        self.channel.close()


async def run_backend(
    label: str,
    address: str,
    milvus_uri: Callable[[], str],
    sizes: list[int],
    queries: int,
    data: Vectors,
    budget_s: float | None,
) -> list[dict[str, object]]:
    bench = Bench(label, address, milvus_uri, queries, data)
    try:
        await bench.create()
        done: list[int] = []
        for size in sizes:
            if budget_s is not None and done and (size - bench.loaded) / bench.upsert_rate > budget_s:
                fits = bench.loaded + int(budget_s * bench.upsert_rate) // BATCH * BATCH
                bench.add(
                    f"{size:,} x {DIM}: size cut",
                    f"upserting {size - bench.loaded:,} more at {bench.upsert_rate:,.0f} vectors/s would take "
                    f"{(size - bench.loaded) / bench.upsert_rate:.0f} s, over the {budget_s:.0f} s budget; "
                    f"measuring {fits:,} instead",
                    cut_from=size,
                    cut_to=fits,
                )
                size = fits
                if size <= bench.loaded:
                    break
            bench.upsert_rate = await bench.grow(size)
            await bench.search(size)
            done.append(size)
        if done:
            await bench.recall(done[-1], f">= {RECALL_TARGET}" if label == "server" else "")
    finally:
        await bench.close()
    return bench.rows


@contextmanager
def milvus_server(workdir: Path) -> Iterator[str]:
    began = time.perf_counter()
    with milvus_standalone(workdir) as info:
        print(f"\nMilvus {info.version} standalone started in {time.perf_counter() - began:.1f} s", flush=True)
        yield info.uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="collection sizes, ascending")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per path and size")
    parser.add_argument(
        "--lite-budget-s", type=float, default=300.0, help="most seconds of upserts per size on Milvus Lite"
    )
    parser.add_argument("--only", choices=["lite", "server"], default=None)
    parser.add_argument(
        "--data",
        choices=["text", "random", "low-rank"],
        default="text",
        help="the vectors (see Vectors); results/vector.json for text, results/vector_<data>.json otherwise",
    )
    args = parser.parse_args()
    sizes = sorted(args.sizes)
    began = time.perf_counter()
    pool = None
    if args.data == "text":
        pool = text_corpus.embedded(MODEL_DIR, sizes[-1] + (args.queries + WARMUP) * len(sizes), seed=7)
    results: list[dict[str, object]] = [
        {"metric": "data", "value": DATA_NAMES[args.data], "numbers": {"data": args.data}}
    ]
    if args.only in (None, "lite"):
        with lakehouse_server() as server:
            results += asyncio.run(
                run_backend(
                    "lite",
                    server.address,
                    lambda: lite_uri(server.data_dir),
                    sizes,
                    args.queries,
                    Vectors(args.data, pool),
                    args.lite_budget_s,
                )
            )
    if args.only in (None, "server"):
        with (
            tempfile.TemporaryDirectory(prefix="vector-bench-") as tmp,
            milvus_server(Path(tmp)) as uri,
            lakehouse_server({"LAKEHOUSE_VECTOR__URI": uri}) as server,
        ):
            results += asyncio.run(
                run_backend("server", server.address, lambda: uri, sizes, args.queries, Vectors(args.data, pool), None)
            )
    results.append({"metric": "total run time", "value": f"{time.perf_counter() - began:.0f} s"})
    report("vector" if args.data == "text" else f"vector_{args.data.replace('-', '_')}", results)


if __name__ == "__main__":
    main()
