"""The vector backend (servers/lakehouse/server/vector/backend.py) against real Milvus.

Every test runs twice: on the embedded Milvus Lite child the backend starts itself (`[vector]
uri` empty), and on a real Milvus 2.3 standalone server (the integration tier; see
tests/support/milvus.py). Both are shared by the session; each test works in collections of its
own. Creating a collection (about 3 s) and flushing (about 3 s) are slow on the server, so most
tests share one populated collection and read their own writes at Session consistency instead
of flushing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lakehouse.server.common.config import VectorConfig
from lakehouse.server.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from lakehouse.server.vector.backend import MilvusBackend
from lakehouse.server.vector.gateways import CollectionSpec, IndexSpec, Record, ScalarFieldSpec
from tests.support.milvus import MilvusServerInfo
from tests.support.servers import free_port

DIM = 8
FIELDS = (
    ScalarFieldSpec("client", "STRING", nullable=True, max_length=64),
    ScalarFieldSpec("year", "INT64", nullable=False),
    ScalarFieldSpec("score", "DOUBLE"),
    ScalarFieldSpec("live", "BOOL"),
)
# Reads see this backend's own writes without a flush.
CONFIG = VectorConfig(consistency="Session", timeout_s=20)


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def started(backend: MilvusBackend) -> MilvusBackend:
    asyncio.run(backend.start())
    return backend


@pytest.fixture(scope="session")
def lite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusBackend]:
    backend = started(MilvusBackend(CONFIG, tmp_path_factory.mktemp("vector-lite")))
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="session")
def server_backend(
    milvus_server: MilvusServerInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MilvusBackend]:
    config = VectorConfig(uri=milvus_server.uri, consistency="Session", timeout_s=20)
    backend = started(MilvusBackend(config, tmp_path_factory.mktemp("vector-server")))
    yield backend
    asyncio.run(backend.close())


@pytest.fixture(scope="session", params=["lite", "server"])
def backend(request: pytest.FixtureRequest) -> MilvusBackend:
    return request.getfixturevalue(f"{request.param}_backend")


DOCS = [
    Record("a", unit(1, 0), "alpha", {"client": "acme", "year": 2021, "score": 0.5, "live": True, "tag": "x"}),
    Record("b", unit(0, 1), "beta", {"client": "globex", "year": 2023, "score": 1.5, "live": False}),
    Record("c", unit(1, 1), "gamma", {"client": None, "year": 2024, "score": 2.5, "live": True, "tag": "y"}),
    Record("d", unit(1, 0.2), "delta", {"client": "acme", "year": 2019, "live": False}),
]


@pytest.fixture(scope="session")
def docs(backend: MilvusBackend) -> Iterator[str]:
    """A COSINE collection holding DOCS; tests add rows of their own next to them."""
    name = unique("docs")

    async def make() -> None:
        await backend.create_collection(CollectionSpec(name, DIM, "COSINE", IndexSpec("AUTOINDEX"), FIELDS))
        await backend.upsert(name, DOCS)

    asyncio.run(make())
    yield name
    asyncio.run(backend.drop_collection(name))


async def test_collection_spec_round_trips(backend: MilvusBackend) -> None:
    name = unique()
    spec = CollectionSpec(
        name,
        DIM,
        "COSINE",
        IndexSpec("HNSW", {"M": 8}),
        FIELDS,
        description="staffing notes",
        embedder_model="all-MiniLM-L6-v2",
        source_dataset="workers",
    )
    created = await backend.create_collection(spec)
    try:
        filled = CollectionSpec(
            name,
            DIM,
            "COSINE",
            IndexSpec("HNSW", {"M": 8, "efConstruction": 200}),
            FIELDS,
            "staffing notes",
            "all-MiniLM-L6-v2",
            "workers",
        )
        assert created.spec == filled
        assert (created.row_count, created.index_state) == (0, "READY")
        assert created.create_time is not None
        assert name in await backend.list_collections()
        with pytest.raises(AlreadyExists) as exists:
            await backend.create_collection(spec)
        assert exists.value.reason == "COLLECTION_EXISTS"

        await backend.upsert(name, DOCS[:3])
        await backend.flush(name)
        described = await backend.describe_collection(name)
        assert described.spec == filled
        assert described.row_count == 3
        assert described.create_time == created.create_time

        await backend.update_collection(name, embedder_model="bge-small")
        assert (await backend.describe_collection(name)).spec.embedder_model == "bge-small"
    finally:
        await backend.drop_collection(name)
    assert name not in await backend.list_collections()
    for call in (backend.describe_collection(name), backend.drop_collection(name)):
        with pytest.raises(NotFound) as missing:
            await call
        assert missing.value.reason == "COLLECTION_NOT_FOUND"


async def test_get_returns_found_records_in_request_order(backend: MilvusBackend, docs: str) -> None:
    records = await backend.get(docs, ["c", "missing", "a"], with_vectors=True, fields=())
    assert [r.id for r in records] == ["c", "a"]
    np.testing.assert_allclose(records[1].vector, DOCS[0].vector, rtol=1e-6)
    assert records[1].text == "alpha"
    assert records[1].metadata == {"client": "acme", "year": 2021, "score": 0.5, "live": True, "tag": "x"}
    # A null declared field and unset IndexDataset fields are left out.
    assert records[0].metadata == {"year": 2024, "score": 2.5, "live": True, "tag": "y"}

    only = await backend.get(docs, ["a"], with_vectors=False, fields=["client", "tag"])
    assert only[0].metadata == {"client": "acme", "tag": "x"}
    assert len(only[0].vector) == 0


async def test_upsert_replaces_by_id_and_keeps_indexdataset_fields(backend: MilvusBackend, docs: str) -> None:
    rid = unique("row")
    source = {"source_dataset": "workers", "source_version": 3, "source_key": "17", "chunk_index": 0}
    await backend.upsert(docs, [Record(rid, unit(0, 0, 1), "first", {"year": 2020, **source})])
    await backend.upsert(docs, [Record(rid, unit(0, 0, 1), "second", {"year": 2022, "content_sha256": "ab", **source})])
    [record] = await backend.get(docs, [rid], with_vectors=False, fields=())
    assert record.text == "second"
    assert record.metadata == {"year": 2022, "content_sha256": "ab", **source}


async def test_concurrent_upserts_all_land(backend: MilvusBackend, docs: str) -> None:
    batch = unique("many")
    groups = [
        [Record(f"{batch}-{g}-{i}", unit(0, 0, 0, 1, g + 1, i + 1), "", {"year": g}) for i in range(50)]
        for g in range(8)
    ]
    assert await asyncio.gather(*(backend.upsert(docs, group) for group in groups)) == [50] * 8
    ids = [r.id for group in groups for r in group]
    assert len(await backend.get(docs, ids, with_vectors=False, fields=("year",))) == len(ids)


async def test_search_reports_normalised_distances_closest_first(backend: MilvusBackend, docs: str) -> None:
    only_docs = 'id in ["a", "b", "c", "d"]'  # other tests add rows to this collection
    hits = await backend.search(docs, DOCS[0].vector, 4, filter=only_docs, consistency="Strong")
    assert [h.id for h in hits][:2] == ["a", "d"]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)  # an exact match under COSINE
    cosine_b = float(np.dot(DOCS[0].vector, DOCS[1].vector))
    assert next(h.distance for h in hits if h.id == "b") == pytest.approx(1 - cosine_b, abs=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert hits[0].text == "alpha"
    assert hits[0].metadata["client"] == "acme"

    narrow = await backend.search(docs, DOCS[0].vector, 2, filter=only_docs, fields=["year"], params={"ef": 16})
    assert [set(h.metadata) for h in narrow] == [{"year"}, {"year"}]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('client == "acme"', {"a", "d"}),
        ("year >= 2023 and live == true", {"c"}),
        ('tag in ["x", "y"]', {"a", "c"}),  # an undeclared key, held in the dynamic field
        ("score > 1.0", {"b", "c"}),
    ],
)
async def test_search_filters(backend: MilvusBackend, docs: str, expression: str, expected: set[str]) -> None:
    hits = await backend.search(docs, DOCS[0].vector, 10, filter=expression, consistency="Strong")
    assert {h.id for h in hits} & {"a", "b", "c", "d"} == expected


async def test_delete_by_ids_and_by_filter_counts_deleted_vectors(backend: MilvusBackend, docs: str) -> None:
    batch = unique("batch")
    ids = [f"{batch}-{i}" for i in range(5)] + ["it's", 'say "hi"', "x'] or id != '"]
    records = [Record(i, unit(1, n), "", {"year": 2000 + n, "batch": batch}) for n, i in enumerate(ids)]
    await backend.upsert(docs, records)
    quoted = await backend.get(docs, ids[5:], with_vectors=False, fields=())
    assert [r.id for r in quoted] == ids[5:]

    assert await backend.delete(docs, ids=[ids[0], ids[1], "never-there"]) == 2
    # Quotes in ids are matched literally, never read as expression syntax.
    assert await backend.delete(docs, ids=["x'] or id != '"]) == 1
    assert await backend.delete(docs, filter=f'batch == "{batch}" and year >= 2003') == 4
    # Session consistency does not cover deletes on Milvus 2.3 (its delete answers carry no
    # timestamp), so the rows left are read at Strong.
    left = await backend.search(docs, unit(1), 20, filter=f'batch == "{batch}"', consistency="Strong")
    assert [h.id for h in left] == [ids[2]]
    assert await backend.delete(docs, filter=f'batch == "{batch}" and year > 3000') == 0
    assert {r.id for r in await backend.get(docs, ["a", "b", "c", "d"], with_vectors=False, fields=())} == {
        "a",
        "b",
        "c",
        "d",
    }


async def test_bad_filter_is_invalid_filter(backend: MilvusBackend, docs: str) -> None:
    bad, mistyped = 'client === "acme"', 'year == "not a number"'
    for expression, call in (
        (bad, backend.search(docs, DOCS[0].vector, 3, filter=bad)),
        (bad, backend.delete(docs, filter=bad)),
        (mistyped, backend.search(docs, DOCS[0].vector, 3, filter=mistyped)),
    ):
        with pytest.raises(InvalidArgument) as refused:
            await call
        assert refused.value.reason == "INVALID_FILTER"
        assert refused.value.violations[0].field == "filter"
        assert expression in refused.value.message


async def test_missing_collection_is_collection_not_found(backend: MilvusBackend) -> None:
    name = unique("missing")
    calls = (
        backend.describe_collection(name),
        backend.upsert(name, DOCS[:1]),
        backend.get(name, ["a"], with_vectors=False, fields=()),
        backend.search(name, DOCS[0].vector, 3),
        backend.delete(name, ids=["a"]),
        backend.delete(name, filter="year > 1"),
        backend.flush(name),
        backend.drop_collection(name),
        backend.sample_vectors(name, 3, 1),
    )
    for call in calls:
        with pytest.raises(NotFound) as missing:
            await call
        assert missing.value.reason == "COLLECTION_NOT_FOUND"


async def test_records_that_do_not_fit_are_invalid_arguments(backend: MilvusBackend, docs: str) -> None:
    cases = [
        (Record("x", np.ones(DIM + 1), "", {"year": 1}), "DIMENSION_MISMATCH", "records[0].vector"),
        (Record("x", unit(1), "", {"client": "acme"}), "MISSING_FIELD", "records[0].metadata.year"),
        (Record("x", unit(1), "", {"year": "2020"}), "FIELD_TYPE_MISMATCH", "records[0].metadata.year"),
        (Record("x", unit(1), "", {"year": 1, "text": "t"}), "RESERVED_FIELD", "records[0].metadata.text"),
    ]
    for record, reason, where in cases:
        with pytest.raises(InvalidArgument) as refused:
            await backend.upsert(docs, [record])
        assert (refused.value.reason, refused.value.violations[0].field) == (reason, where)
    with pytest.raises(InvalidArgument) as refused:
        await backend.search(docs, np.ones(3), 3)
    assert refused.value.reason == "DIMENSION_MISMATCH"


async def test_ip_and_l2_distances(backend: MilvusBackend) -> None:
    q = np.zeros(DIM, dtype=np.float32)
    q[0] = 1.0
    half = np.zeros(DIM, dtype=np.float32)
    half[:2] = 0.5
    for metric, expected in (("IP", {"q": 0.0, "half": 0.5}), ("L2", {"q": 0.0, "half": 0.5})):
        name = unique(metric.lower())
        await backend.create_collection(CollectionSpec(name, DIM, metric, IndexSpec("FLAT")))  # type: ignore[arg-type]
        try:
            await backend.upsert(name, [Record("q", q), Record("half", half)])
            hits = await backend.search(name, q, 2, consistency="Strong")
            assert {h.id: round(h.distance, 5) for h in hits} == expected
            assert hits[0].id == "q"
        finally:
            await backend.drop_collection(name)


async def test_sample_vectors_and_scan(backend: MilvusBackend, docs: str) -> None:
    first = await backend.sample_vectors(docs, 3, seed=7)
    again = await backend.sample_vectors(docs, 3, seed=7)
    assert [r.id for r in first] == [r.id for r in again]
    assert all(len(r.vector) == DIM for r in first)
    scanned: list[Record] = []
    async for batch in backend.scan(docs, fields=("client",), filter="year < 2022", batch_size=1):
        scanned.extend(batch)
    assert {r.id: r.metadata for r in scanned if r.id in {"a", "d"}} == {
        "a": {"client": "acme"},
        "d": {"client": "acme"},
    }


async def test_gpu_cagra_is_refused_without_a_gpu_server(backend: MilvusBackend) -> None:
    if backend.kind == "milvus-lite":
        assert not backend.supports_gpu_index
    name = unique("gpu")
    with pytest.raises(FailedPrecondition) as refused:
        await backend.create_collection(CollectionSpec(name, DIM, "L2", IndexSpec("GPU_CAGRA")))
    assert refused.value.reason == "INDEX_TYPE_UNSUPPORTED"
    assert not backend.supports_gpu_index  # a CPU server said so; Milvus Lite never has one
    assert name not in await backend.list_collections()


async def test_backend_kind_and_health(backend: MilvusBackend) -> None:
    assert await backend.healthy() == (True, "")
    expected = "milvus-lite" if backend.embedded is not None else "milvus"
    assert backend.kind == expected


async def test_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    backend = MilvusBackend(VectorConfig(uri=f"http://127.0.0.1:{free_port()}", timeout_s=1), tmp_path)
    await backend.start()  # a server that is not up yet does not stop the service from starting
    try:
        ok, why = await backend.healthy()
        assert not ok and why
        with pytest.raises(Unavailable) as down:
            await backend.list_collections()
        assert down.value.reason == "BACKEND_UNAVAILABLE"
        assert down.value.retry_after_s
    finally:
        await backend.close()


async def test_killed_milvus_lite_child_is_reported_and_restarted(tmp_path: Path) -> None:
    backend = MilvusBackend(CONFIG, tmp_path)
    await backend.start()
    lite = backend.embedded
    assert lite is not None and lite.pid is not None
    try:
        name = unique()
        await backend.create_collection(CollectionSpec(name, DIM))
        await backend.upsert(name, DOCS[:2])
        await backend.flush(name)

        first_pid = lite.pid
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while lite.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        ok, why = await backend.healthy()
        assert not ok
        assert "exited" in why
        with pytest.raises(Unavailable) as down:
            await backend.list_collections()
        assert down.value.reason == "BACKEND_UNAVAILABLE"
        assert down.value.retry_after_s

        deadline = time.monotonic() + 60
        while (await backend.healthy())[0] is False and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert await backend.healthy() == (True, "")
        assert lite.pid != first_pid
        found = await backend.get(name, ["a", "b"], with_vectors=False, fields=())
        assert [r.id for r in found] == ["a", "b"]  # flushed data survives the crash
    finally:
        pid = lite.pid
        await backend.close()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # close() stopped the child


async def test_bulk_upserts_flushed_once_are_indexed_whole(backend: MilvusBackend) -> None:
    """What the service's deferred flush relies on: upserts sealed by one flush form segments
    large enough to index (a flush per 1,000-row call would leave them all unindexed on a
    server), and indexed_rows says how much of the collection the index covers."""
    name = unique("bulk")
    rng = np.random.default_rng(5)
    await backend.create_collection(CollectionSpec(name, DIM, "COSINE", IndexSpec("HNSW", {"M": 8})))
    try:
        for start in range(0, 3000, 1000):
            vectors = rng.normal(size=(1000, DIM)).astype(np.float32)
            await backend.upsert(name, [Record(f"r{start + i}", v) for i, v in enumerate(vectors)])
        await backend.flush(name)
        deadline = time.monotonic() + 120
        info = await backend.describe_collection(name)
        while (info.index_state != "READY" or info.indexed_rows < 3000) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            info = await backend.describe_collection(name)
        assert (info.row_count, info.indexed_rows, info.index_state) == (3000, 3000, "READY")
    finally:
        await backend.drop_collection(name)
