"""The vector service as its callers meet it: embeddings, collections, vectors, multi-collection
search, the playbook (recorded in the mesh's own memory service, looked up through its stub) and
agent profiles, on the embedded Milvus Lite and the real embedding model.

One mesh serves the whole module (starting Milvus Lite and loading the model take seconds); every
test works in collections of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
import pytest_asyncio
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lakehouse.cli.main import cli
from lakehouse.client import AsyncCatalogClient, RetryPolicy, token_metadata
from lakehouse.client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    LakehouseClientError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.client.vector import (
    AsyncVectorClient,
    index_spec,
    metadata_of,
    playbook,
    scalar_field,
    vector_record,
)
from lakehouse.server.common.config import EmbedderConfig, MeshConfig, TokenConfig, VectorConfig
from lakehouse.server.vector.servicer import SERVICE
from lakehouse.vector.v1 import vector_service_pb2 as pb
from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.servers import free_port

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(
    os.environ.get("LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR") or ROOT / "data" / "models" / "all-minilm-l6-v2"
)
MODEL = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TEXTS = 8
MAX_BATCH = 10
MAX_K = 50

ADMIN, WRITER, READER, AGENT = "vec-admin", "vec-writer", "vec-reader", "vec-agent"
PROFILE = "support-bot"
AGENT_COLLECTION = "agent_docs"
AGENT_NAMESPACE = "bot-playbook"
T = TypeVar("T", bound=LakehouseClientError)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha(ADMIN)),
    TokenConfig(principal="loader", role="writer", sha256=_sha(WRITER)),
    TokenConfig(principal="analyst", role="reader", sha256=_sha(READER)),
    TokenConfig(principal="bot", role="agent", profile=PROFILE, sha256=_sha(AGENT)),
)


# -- the shared mesh -------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningMesh]:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    config = make_config(tmp_path_factory.mktemp("vector") / "data", Backends(tokens=TOKENS))
    config = replace(config, vector=vector_config())
    running = await start_mesh(config, None, ADMIN)
    yield running
    await running.stop()


def vector_config() -> VectorConfig:
    return VectorConfig(
        max_batch=MAX_BATCH,
        max_k=MAX_K,
        embedder=EmbedderConfig(model_dir=str(MODEL_DIR), max_texts=MAX_TEXTS),
    )


def vectors_as(mesh: RunningMesh, token: str) -> AsyncVectorClient:
    return AsyncVectorClient(
        mesh.channel,
        timeout_s=60,
        retry=RetryPolicy(attempts=2, initial_backoff_s=0.05),
        metadata=token_metadata(token),
    )


@pytest.fixture
def admin(mesh: RunningMesh) -> AsyncVectorClient:
    return vectors_as(mesh, ADMIN)


@pytest.fixture
def memory(mesh: RunningMesh) -> AsyncMemoryClient:
    """The mesh's memory service, where the playbook's answers are recorded."""
    return AsyncMemoryClient(mesh.channel, timeout_s=60, metadata=token_metadata(ADMIN))


async def refused(call: Awaitable[Any], error: type[T], reason: str, field: str | None = None) -> T:
    with pytest.raises(error) as caught:
        await call
    assert caught.value.reason == reason, caught.value
    if field is not None:
        assert field in [v.field for v in caught.value.violations], caught.value.violations
    return caught.value


def unit(*values: float) -> list[float]:
    v = np.asarray(values, dtype=np.float64)
    return (v / np.linalg.norm(v)).tolist()


def plane(x: float, y: float) -> list[float]:
    """A unit vector of the model's dimension in the plane of its first two axes, so cosine
    distances between them are known exactly."""
    return unit(x, y, *([0.0] * (DIMENSION - 2)))


E0 = plane(1, 0)


async def embedded(v: AsyncVectorClient, text: str) -> list[float]:
    return list((await v.embed([text])).embeddings[0].values)


def ids(response: pb.SearchResponse) -> list[tuple[str, str]]:
    return [(h.collection, h.id) for h in response.hits]


# -- embeddings ------------------------------------------------------------------------------------


async def test_embedder_info_names_the_model_and_the_provider_running_it(admin: AsyncVectorClient) -> None:
    info = await admin.get_embedder_info()
    assert (info.model, info.dimension, info.max_tokens) == (MODEL, DIMENSION, 256)
    assert "CPUExecutionProvider" in info.execution_providers
    on_gpu = "CUDAExecutionProvider" in info.execution_providers  # fp16 there by default
    assert info.precision == (pb.EMBEDDER_PRECISION_FP16 if on_gpu else pb.EMBEDDER_PRECISION_FP32)
    assert len(info.model_sha256) == 64 and info.source
    assert info.max_batch_size == 64 and info.max_batch_wait.ToNanoseconds() == 2_000_000
    assert info.cache.capacity == 10_000


async def test_embed_returns_unit_vectors_in_order_and_counts_cache_hits(admin: AsyncVectorClient) -> None:
    texts = ["The cat sits on the mat.", "Quarterly revenue grew by twelve percent.", ""]
    response = await admin.embed(texts)
    assert (response.model, response.dimension, len(response.embeddings)) == (MODEL, DIMENSION, 3)
    for e in response.embeddings:
        assert len(e.values) == DIMENSION and math.isclose(np.linalg.norm(e.values), 1.0, rel_tol=1e-4)
        assert not e.truncated
    assert response.embeddings[0].token_count > response.embeddings[2].token_count
    before = (await admin.get_embedder_info()).cache
    again = await admin.embed(texts[:1])
    assert list(again.embeddings[0].values) == list(response.embeddings[0].values)
    assert (await admin.get_embedder_info()).cache.hits == before.hits + 1


async def test_embed_refuses_no_texts_and_too_many(admin: AsyncVectorClient) -> None:
    await refused(admin.embed([]), InvalidArgumentError, "EMPTY_INPUT", "texts")
    await refused(admin.embed(["x"] * (MAX_TEXTS + 1)), InvalidArgumentError, "BATCH_TOO_LARGE", "texts")


# -- collections -----------------------------------------------------------------------------------


async def test_a_collection_takes_the_embedders_dimension_and_model_by_default(admin: AsyncVectorClient) -> None:
    created = await admin.create_collection("defaults", description="help articles")
    assert (created.dimension, created.embedder_model) == (DIMENSION, MODEL)
    assert (created.metric, created.index.type) == (pb.DISTANCE_METRIC_COSINE, pb.INDEX_TYPE_AUTOINDEX)
    assert created.HasField("create_time") and created.description == "help articles"
    got = await admin.get_collection("defaults")
    assert (got.name, got.dimension, got.row_count, got.index_state) == ("defaults", DIMENSION, 0, pb.INDEX_STATE_READY)

    explicit = await admin.create_collection(
        "explicit_hnsw",
        dimension=8,
        metric="l2",
        index=index_spec("hnsw"),
        fields=[scalar_field("year", "int64", nullable=False), scalar_field("client", max_length=32)],
    )
    assert (explicit.dimension, explicit.embedder_model, explicit.metric) == (8, "", pb.DISTANCE_METRIC_L2)
    assert (explicit.index.hnsw.m, explicit.index.hnsw.ef_construction) == (16, 200)
    assert [(f.name, f.type, f.nullable, f.max_length) for f in explicit.fields] == [
        ("year", pb.FIELD_TYPE_INT64, False, 65535),
        ("client", pb.FIELD_TYPE_STRING, True, 32),
    ]
    ivf = await admin.create_collection("explicit_ivf", dimension=4, index=index_spec("ivf_flat", nlist=8))
    assert ivf.index.type == pb.INDEX_TYPE_IVF_FLAT and ivf.index.ivf_flat.nlist == 8
    await refused(admin.create_collection("defaults"), AlreadyExistsError, "COLLECTION_EXISTS")


@pytest.mark.parametrize(
    ("changes", "error", "reason", "field"),
    [
        ({"name": "Bad-Name"}, InvalidArgumentError, "INVALID_COLLECTION_NAME", "collection.name"),
        ({"name": "9lives"}, InvalidArgumentError, "INVALID_COLLECTION_NAME", "collection.name"),
        ({"dimension": -1}, InvalidArgumentError, "INVALID_DIMENSION", "collection.dimension"),
        ({"dimension": 32769}, InvalidArgumentError, "INVALID_DIMENSION", "collection.dimension"),
        (
            {"index": pb.IndexSpec(type=pb.INDEX_TYPE_HNSW, ivf_flat=pb.IvfFlatParams(nlist=8))},
            InvalidArgumentError,
            "INVALID_INDEX_PARAMS",
            "collection.index.ivf_flat",
        ),
        (
            {"index": pb.IndexSpec(type=pb.INDEX_TYPE_FLAT, hnsw=pb.HnswParams(m=8))},
            InvalidArgumentError,
            "INVALID_INDEX_PARAMS",
            "collection.index.hnsw",
        ),
        ({"index": index_spec("hnsw", m=1)}, InvalidArgumentError, "INVALID_INDEX_PARAMS", "collection.index.hnsw.m"),
        (
            {"index": index_spec("ivf_flat", nlist=70000)},
            InvalidArgumentError,
            "INVALID_INDEX_PARAMS",
            "collection.index.ivf_flat.nlist",
        ),
        (
            {"fields": [scalar_field("year", "int64"), scalar_field("text")]},
            InvalidArgumentError,
            "RESERVED_FIELD",
            "collection.fields[1].name",
        ),
        (
            {"fields": [scalar_field("source_key")]},
            InvalidArgumentError,
            "RESERVED_FIELD",
            "collection.fields[0].name",
        ),
        ({"index": index_spec("gpu_cagra")}, FailedPreconditionError, "INDEX_TYPE_UNSUPPORTED", None),
    ],
)
async def test_create_collection_refuses_bad_settings(
    admin: AsyncVectorClient, changes: dict[str, Any], error: type[LakehouseClientError], reason: str, field: str | None
) -> None:
    request: dict[str, Any] = {"name": "refused_one", "dimension": 8, **changes}
    name = request.pop("name")
    await refused(admin.create_collection(name, **request), error, reason, field)
    await refused(admin.get_collection(name), NotFoundError, "COLLECTION_NOT_FOUND")


async def test_collections_are_listed_in_name_order_page_by_page_and_deleted(admin: AsyncVectorClient) -> None:
    for name in ("list_c", "list_a", "list_b"):
        await admin.create_collection(name, dimension=4)
    listed = [c.name for c in await admin.all_collections()]
    assert listed == sorted(listed) and {"list_a", "list_b", "list_c"} <= set(listed)
    pages, token = [], ""
    while True:
        page = await admin.list_collections(page_size=2, page_token=token)
        assert len(page.collections) <= 2
        pages += [c.name for c in page.collections]
        token = page.next_page_token
        if not token:
            break
    assert pages == listed
    await refused(admin.list_collections(page_token="garbage"), InvalidArgumentError, "INVALID_PAGE_TOKEN")

    await admin.delete_collection("list_b")
    await refused(admin.get_collection("list_b"), NotFoundError, "COLLECTION_NOT_FOUND")
    await refused(admin.delete_collection("list_b"), NotFoundError, "COLLECTION_NOT_FOUND")
    assert "list_b" not in [c.name for c in await admin.all_collections()]


# -- vectors ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def typed(mesh: RunningMesh) -> str:
    """A COSINE collection of dimension 4 with a required INT64 and an optional STRING field."""
    v = vectors_as(mesh, ADMIN)
    await v.create_collection(
        "typed", dimension=4, fields=[scalar_field("year", "int64", nullable=False), scalar_field("client")]
    )
    return "typed"


GOOD = vector_record("ok", [1, 0, 0, 0], metadata={"year": 2024})


@pytest.mark.parametrize(
    ("bad", "reason", "field"),
    [
        (vector_record("", [1, 0, 0, 0], metadata={"year": 1}), "MISSING_ID", "records[1].id"),
        (vector_record("ok", [0, 1, 0, 0], metadata={"year": 1}), "DUPLICATE_ID", "records[1].id"),
        (vector_record("b", metadata={"year": 1}), "MISSING_VECTOR", "records[1].vector"),
        (vector_record("b", [1, 0, 0], metadata={"year": 1}), "DIMENSION_MISMATCH", "records[1].vector"),
        (vector_record("b", [1, math.nan, 0, 0], metadata={"year": 1}), "NON_FINITE_VALUE", "records[1].vector"),
        (vector_record("b", [math.inf, 0, 0, 0], metadata={"year": 1}), "NON_FINITE_VALUE", "records[1].vector"),
        (vector_record("b", [0, 0, 0, 0], metadata={"year": 1}), "ZERO_NORM_VECTOR", "records[1].vector"),
        (vector_record("b", [1, 0, 0, 0], metadata={"client": "acme"}), "MISSING_FIELD", "records[1].metadata.year"),
        (
            vector_record("b", [1, 0, 0, 0], metadata={"year": "2024"}),
            "FIELD_TYPE_MISMATCH",
            "records[1].metadata.year",
        ),
        (
            vector_record("b", [1, 0, 0, 0], metadata={"year": 1, "client": 7}),
            "FIELD_TYPE_MISMATCH",
            "records[1].metadata.client",
        ),
        (
            vector_record("b", [1, 0, 0, 0], metadata={"year": 1, "source_key": "7"}),
            "RESERVED_FIELD",
            "records[1].metadata.source_key",
        ),
    ],
)
async def test_a_batch_with_one_bad_record_writes_nothing_and_names_the_record(
    admin: AsyncVectorClient, typed: str, bad: pb.VectorRecord, reason: str, field: str
) -> None:
    await refused(admin.upsert_vectors(typed, [GOOD, bad]), InvalidArgumentError, reason, field)
    assert await admin.get_vectors(typed, ["ok", "b"]) == []


async def test_upsert_limits_and_the_embedder_of_the_collection(admin: AsyncVectorClient, typed: str) -> None:
    too_many = [vector_record(f"r{i}", [1, 0, 0, i], metadata={"year": i}) for i in range(MAX_BATCH + 1)]
    await refused(admin.upsert_vectors(typed, too_many), InvalidArgumentError, "BATCH_TOO_LARGE", "records")
    # Texts cannot be embedded into vectors of dimension 4: that is another model's space.
    error = await refused(
        admin.upsert_vectors(typed, [vector_record("t", text="hello", metadata={"year": 1})]),
        FailedPreconditionError,
        "EMBEDDER_MISMATCH",
    )
    assert MODEL in error.message
    await refused(admin.upsert_vectors("no_such", [GOOD]), NotFoundError, "COLLECTION_NOT_FOUND")
    assert (await admin.get_collection(typed)).row_count == 0


async def test_vectors_are_written_read_and_deleted(admin: AsyncVectorClient) -> None:
    await admin.create_collection("rw", dimension=4, fields=[scalar_field("year", "int64")])
    written = await admin.upsert_vectors(
        "rw",
        [
            vector_record("a", [1, 0, 0, 0], text="first", metadata={"year": 2023, "client": "acme"}),
            vector_record("b", [0, 1, 0, 0], text="second", metadata={"year": 2024}),
            vector_record("c", [0, 0, 1, 0], metadata={"year": None}),
        ],
    )
    assert (written.upserted_count, written.embedded_count) == (3, 0)
    described = await admin.get_collection("rw")
    # The flush waits for upserts to pause ([vector] flush_idle_ms); until then the rows are unsealed.
    assert (described.row_count, described.index_state) == (3, pb.INDEX_STATE_BUILDING)
    while described.index_state != pb.INDEX_STATE_READY:
        await asyncio.sleep(0.1)
        described = await admin.get_collection("rw")
    assert described.indexed_rows == 3

    records = await admin.get_vectors("rw", ["c", "missing", "a"], include_vectors=True)
    assert [r.id for r in records] == ["c", "a"]
    assert list(records[1].vector.values) == [1, 0, 0, 0] and records[1].text == "first"
    assert metadata_of(records[1]) == {"year": 2023, "client": "acme"} and metadata_of(records[0]) == {}
    plain = await admin.get_vectors("rw", ["a"], output_fields=["year"])
    assert not plain[0].HasField("vector") and metadata_of(plain[0]) == {"year": 2023}
    await refused(
        admin.get_vectors("rw", ["a"], output_fields=["year", "nope"]),
        InvalidArgumentError,
        "UNKNOWN_FIELD",
        "output_fields[1]",
    )
    await refused(
        admin.get_vectors("rw", [str(i) for i in range(MAX_BATCH + 1)]),
        InvalidArgumentError,
        "BATCH_TOO_LARGE",
        "ids",
    )

    # Upsert replaces by id.
    await admin.upsert_vectors("rw", [vector_record("a", [0, 0, 0, 1], text="replaced")])
    again = await admin.get_vectors("rw", ["a"], include_vectors=True)
    assert (list(again[0].vector.values), again[0].text) == ([0, 0, 0, 1], "replaced")
    assert "year" not in metadata_of(again[0])

    await refused(admin.delete_vectors("rw"), InvalidArgumentError, "MISSING_SELECTOR")
    await refused(admin.delete_vectors("rw", ids=["a"], filter="year > 1"), InvalidArgumentError, "MISSING_SELECTOR")
    await refused(admin.delete_vectors("rw", filter="year >>> 1"), InvalidArgumentError, "INVALID_FILTER", "filter")
    assert await admin.delete_vectors("rw", ids=["a", "missing"]) == 1
    assert await admin.delete_vectors("rw", filter="year == 2024") == 1
    assert [r.id for r in await admin.get_vectors("rw", ["a", "b", "c"])] == ["c"]
    await refused(admin.delete_vectors("no_such", ids=["a"]), NotFoundError, "COLLECTION_NOT_FOUND")


# -- search ----------------------------------------------------------------------------------------

ARTICLES = {
    "password": "To reset your password, open the account settings and choose reset password.",
    "refunds": "Refunds are paid back to the original card within five business days.",
    "hours": "Our office is open Monday to Friday from nine in the morning to five in the evening.",
    "shipping": "Shipping to Canada usually takes about a week.",
    "ratelimit": "The API allows one hundred requests per minute per key.",
}
POSTS = {
    "p1": "I could not log in, so I reset my password from the settings page.",
    "p2": "The parcel to Toronto arrived after eight days.",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def texts(mesh: RunningMesh) -> tuple[str, str]:
    """Two collections written as texts and embedded by the server: help articles and forum posts."""
    v = vectors_as(mesh, ADMIN)
    await v.create_collection("articles")
    await v.create_collection("posts")
    done = await v.upsert_vectors(
        "articles", [vector_record(k, text=t, metadata={"kind": "article"}) for k, t in ARTICLES.items()]
    )
    assert (done.upserted_count, done.embedded_count) == (5, 5)
    await v.upsert_vectors("posts", [vector_record(k, text=t, metadata={"kind": "post"}) for k, t in POSTS.items()])
    return "articles", "posts"


async def test_texts_upserted_are_found_by_meaning_in_several_collections(
    admin: AsyncVectorClient, texts: tuple[str, str]
) -> None:
    found = await admin.search(list(texts), text="how do I change my password?", k=3)
    assert found.model == MODEL
    assert ids(found)[:2] == [("articles", "password"), ("posts", "p1")]
    assert found.hits[0].text == ARTICLES["password"] and metadata_of(found.hits[0]) == {"kind": "article"}
    distances = [h.distance for h in found.hits]
    assert distances == sorted(distances) and len(found.hits) == 3

    # The same query as a vector gives the same hits and no model.
    vector = await embedded(admin, "how do I change my password?")
    by_vector = await admin.search(list(texts), vector=vector, k=3)
    assert ids(by_vector) == ids(found) and by_vector.model == ""
    assert [h.distance for h in by_vector.hits] == pytest.approx(distances, abs=1e-5)
    # Consistency levels all answer; output fields narrow the metadata.
    strong = await admin.search("articles", text="parcel delivery time", k=1, consistency="strong", output_fields=["x"])
    assert ids(strong) == [("articles", "shipping")] and metadata_of(strong.hits[0]) == {}


async def test_merged_hits_are_ordered_by_distance_with_their_collection(admin: AsyncVectorClient) -> None:
    await admin.create_collection("merge_a", dimension=2, metric="l2")
    await admin.create_collection("merge_b", dimension=2, metric="l2")
    await admin.upsert_vectors("merge_a", [vector_record(f"a{i}", [float(i), 0]) for i in (1, 3, 5, 7)])
    await admin.upsert_vectors("merge_b", [vector_record(f"b{i}", [float(i), 0]) for i in (2, 4, 6)])

    found = await admin.search(["merge_a", "merge_b"], vector=[0, 0], k=5)
    assert ids(found) == [("merge_a", "a1"), ("merge_b", "b2"), ("merge_a", "a3"), ("merge_b", "b4"), ("merge_a", "a5")]
    assert [h.distance for h in found.hits] == [1, 4, 9, 16, 25]  # squared L2

    # Two candidates per collection, then the best four of the four.
    few = await admin.search(["merge_a", "merge_b"], vector=[0, 0], k=4, per_collection_k=2)
    assert ids(few) == [("merge_a", "a1"), ("merge_b", "b2"), ("merge_a", "a3"), ("merge_b", "b4")]
    default_k = await admin.search(["merge_b", "merge_a"], vector=[0, 0])
    assert len(default_k.hits) == 7  # k defaults to 10; there are 7 vectors

    # Excluded ids never come back, and k is still filled from the rest.
    excluded = await admin.search(["merge_a", "merge_b"], vector=[0, 0], k=3, exclude_ids=["a1", "b2"])
    assert ids(excluded) == [("merge_a", "a3"), ("merge_b", "b4"), ("merge_a", "a5")]
    near = await admin.search(["merge_a", "merge_b"], vector=[0, 0], k=10, max_distance=9)
    assert [h.id for h in near.hits] == ["a1", "b2", "a3"]


async def test_one_failing_collection_fails_the_whole_search(admin: AsyncVectorClient) -> None:
    await admin.create_collection("years_int", dimension=2, fields=[scalar_field("year", "int64")])
    await admin.create_collection("years_text", dimension=2, fields=[scalar_field("year", "string")])
    await admin.upsert_vectors("years_int", [vector_record("i", [1, 0], metadata={"year": 2024})])
    await admin.upsert_vectors("years_text", [vector_record("t", [1, 0], metadata={"year": "2024"})])

    # `year >= 2023` compares a string with a number in one collection: no partial results.
    error = await refused(
        admin.search(["years_int", "years_text"], vector=[1, 0], filter="year >= 2023"),
        InvalidArgumentError,
        "INVALID_FILTER",
        "filter",
    )
    assert "string" in error.message
    # The other collection keeps working on its own.
    alone = await admin.search("years_int", vector=[1, 0], filter="year >= 2023")
    assert ids(alone) == [("years_int", "i")]
    await refused(admin.search(["years_int", "no_such"], vector=[1, 0]), NotFoundError, "COLLECTION_NOT_FOUND")


async def test_search_refuses_what_cannot_be_answered(admin: AsyncVectorClient, texts: tuple[str, str]) -> None:
    await admin.create_collection("search_l2", dimension=4, metric="l2")
    await admin.create_collection("search_cos4", dimension=4)
    await admin.create_collection("search_cos8", dimension=8)
    await refused(admin.search([], text="x"), InvalidArgumentError, "MISSING_COLLECTIONS", "collections")
    await refused(admin.search("articles", text=" "), InvalidArgumentError, "MISSING_QUERY")
    await refused(admin.search("articles", text="x", k=MAX_K + 1), InvalidArgumentError, "K_TOO_LARGE", "k")
    await refused(
        admin.search("articles", text="x", per_collection_k=MAX_K + 1),
        InvalidArgumentError,
        "K_TOO_LARGE",
        "per_collection_k",
    )
    await refused(
        admin.search(["search_l2", "search_cos4"], vector=[1, 0, 0, 0]), InvalidArgumentError, "METRIC_MISMATCH"
    )
    await refused(
        admin.search(["search_cos4", "search_cos8"], vector=[1, 0, 0, 0]), InvalidArgumentError, "DIMENSION_MISMATCH"
    )
    await refused(admin.search("search_cos4", vector=[1, 0, 0]), InvalidArgumentError, "DIMENSION_MISMATCH", "vector")
    await refused(admin.search("search_cos4", text="hello"), FailedPreconditionError, "EMBEDDER_MISMATCH")
    await refused(admin.search("no_such", text="hello"), NotFoundError, "COLLECTION_NOT_FOUND")
    await refused(
        admin.search("articles", text="x", filter="kind === 'x'"), InvalidArgumentError, "INVALID_FILTER", "filter"
    )


# -- the playbook ----------------------------------------------------------------------------------

QUERY = "Which meeting rooms are free on Friday afternoon?"
CLOSE_QUERY = "Which meeting rooms are available on Friday afternoon?"
DISTANT_QUERY = "How do I bake sourdough bread at home?"


def cosine_distance(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(1.0 - x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def query_vector(mesh: RunningMesh) -> list[float]:
    """QUERY as the model embeds it: the playbook compares recorded queries with it."""
    return await embedded(vectors_as(mesh, ADMIN), QUERY)


def around(query: list[float], x: float, y: float) -> list[float]:
    """A unit vector in the plane of `query` and an axis orthogonal to it, so its cosine distance
    to `query` is known exactly (1 - x for a unit (x, y))."""
    u = np.asarray(query, dtype=np.float64)
    u /= np.linalg.norm(u)
    w = np.asarray(plane(0, 1), dtype=np.float64)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    return (x * u + y * w).tolist()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def exact(mesh: RunningMesh, query_vector: list[float]) -> str:
    """COSINE vectors of the model's dimension whose distances to QUERY are 0, 0.2, 0.3 and 1."""
    v = vectors_as(mesh, ADMIN)
    await v.create_collection("exact", dimension=DIMENSION)
    await v.upsert_vectors(
        "exact",
        [
            vector_record("same", around(query_vector, 1, 0), text="same"),
            vector_record("near", around(query_vector, 0.8, 0.6), text="near"),
            vector_record("mid", around(query_vector, 0.7, math.sqrt(0.51)), text="mid"),
            vector_record("far", around(query_vector, 0, 1), text="far"),
        ],
    )
    return "exact"


async def test_the_playbook_boosts_recorded_answers_by_their_score(
    admin: AsyncVectorClient, exact: str, memory: AsyncMemoryClient, query_vector: list[float]
) -> None:
    plain = await admin.search(exact, vector=query_vector)
    assert [(h.id, round(h.distance, 5)) for h in plain.hits] == [("same", 0), ("near", 0.2), ("mid", 0.3), ("far", 1)]
    assert not any(h.HasField("playbook") for h in plain.hits)
    close = cosine_distance(query_vector, await embedded(admin, CLOSE_QUERY))
    distant = cosine_distance(query_vector, await embedded(admin, DISTANT_QUERY))
    assert 0.01 < close < 0.5 < distant

    # Recorded for this very query (distance 0) with score 0.5: 1 * (1 - 0.5 * 0.5) = 0.75. Recorded
    # in the default namespace with no role: what a search with the playbook's defaults looks up.
    far = (await memory.record_playbook("playbook", QUERY, exact, "far", 0.5)).entry
    # Recorded for a close query (within the 0.5 boost threshold) with score 1: 0.3 * 0.5 = 0.15,
    # which moves it ahead of "near".
    mid = (await memory.record_playbook("playbook", CLOSE_QUERY, exact, "mid", 1.0)).entry
    # An entry more than 0.5 away from the query does nothing.
    await memory.record_playbook("playbook", DISTANT_QUERY, exact, "near", 1.0)

    boosted = await admin.search(exact, vector=query_vector, playbook=playbook())
    assert [h.id for h in boosted.hits] == ["same", "mid", "near", "far"]
    assert [h.distance for h in boosted.hits] == pytest.approx([0, 0.15, 0.2, 0.75], abs=1e-5)
    got = {h.id: h for h in boosted.hits}
    effect = got["far"].playbook
    assert (effect.action, effect.entry_id, effect.recorded_query) == (pb.PLAYBOOK_ACTION_BOOSTED, far.id, QUERY)
    assert (effect.score, effect.distance_before) == (pytest.approx(0.5), pytest.approx(1.0, abs=1e-5))
    assert effect.query_distance == pytest.approx(0, abs=1e-5)
    assert (got["mid"].playbook.entry_id, got["mid"].playbook.action) == (mid.id, pb.PLAYBOOK_ACTION_BOOSTED)
    assert got["mid"].playbook.query_distance == pytest.approx(close, abs=1e-4)
    assert got["mid"].playbook.distance_before == pytest.approx(0.3, abs=1e-5)
    assert not got["same"].HasField("playbook") and not got["near"].HasField("playbook")

    # max_distance applies after the boost: 0.75 passes a 0.8 limit that 1.0 would not.
    limited = await admin.search(exact, vector=query_vector, playbook=playbook(), max_distance=0.8)
    assert [h.id for h in limited.hits] == ["same", "mid", "near", "far"]
    # A boost threshold below the close query's distance leaves the entry of "mid" out.
    tight = await admin.search(exact, vector=query_vector, playbook=playbook(boost_threshold=close - 0.005))
    assert {h.id: round(h.distance, 4) for h in tight.hits} == {"same": 0, "near": 0.2, "mid": 0.3, "far": 0.75}


async def test_the_playbook_is_not_consulted_when_off(
    admin: AsyncVectorClient, exact: str, memory: AsyncMemoryClient, query_vector: list[float]
) -> None:
    await memory.record_playbook("pb-off", QUERY, exact, "far", 1.0)
    found = await admin.search(exact, vector=query_vector)
    assert not any(h.HasField("playbook") for h in found.hits)
    assert {h.id: round(h.distance, 4) for h in found.hits}["far"] == 1
    on = await admin.search(exact, vector=query_vector, playbook=playbook("pb-off"))
    assert {h.id: round(h.distance, 4) for h in on.hits}["far"] == 0.5


async def test_a_close_paraphrase_injects_the_recorded_answer(
    admin: AsyncVectorClient, texts: tuple[str, str], memory: AsyncMemoryClient
) -> None:
    recorded = "how can I reach customer support?"
    paraphrase = "how do I contact customer support?"
    unrelated = "what will the weather be like in Paris tomorrow?"
    vectors = {t: await embedded(admin, t) for t in (recorded, paraphrase, unrelated)}
    close = cosine_distance(vectors[recorded], vectors[paraphrase])
    assert close <= 0.2 and cosine_distance(vectors[recorded], vectors[unrelated]) > 0.5
    # The answer that worked is the shipping article, far from the question in meaning.
    entry = (await memory.record_playbook("pb-inject", recorded, "articles", "shipping", 0.9, role="agent")).entry
    plain = await admin.search(list(texts), text=paraphrase, k=2)
    assert ("articles", "shipping") not in ids(plain)
    options = playbook("pb-inject", role="agent")

    found = await admin.search(list(texts), text=paraphrase, k=2, playbook=options)
    first = found.hits[0]
    assert (first.collection, first.id, first.text) == ("articles", "shipping", ARTICLES["shipping"])
    assert first.distance == pytest.approx(close, abs=1e-4)
    assert metadata_of(first) == {"kind": "article"}
    effect = first.playbook
    assert (effect.action, effect.entry_id, effect.recorded_query) == (pb.PLAYBOOK_ACTION_INJECTED, entry.id, recorded)
    assert (effect.distance_before, effect.score) == (0, pytest.approx(0.9))
    assert len(found.hits) == 2 and ids(found)[1] == ids(plain)[0]

    # An unrelated question gets nothing from the playbook.
    other = await admin.search(list(texts), text=unrelated, k=2, playbook=options)
    assert not any(h.HasField("playbook") for h in other.hits)
    # Exclusions hold for injections too.
    excluded = await admin.search(list(texts), text=paraphrase, k=2, playbook=options, exclude_ids=["shipping"])
    assert ("articles", "shipping") not in ids(excluded)
    # A filter holds for injections too: what the search filters out is never injected.
    filtered = await admin.search(list(texts), text=paraphrase, k=2, playbook=options, filter='kind == "post"')
    assert ("articles", "shipping") not in ids(filtered) and all(h.collection == "posts" for h in filtered.hits)
    kept = await admin.search(list(texts), text=paraphrase, k=2, playbook=options, filter='kind == "article"')
    assert ids(kept)[0] == ("articles", "shipping") and kept.hits[0].playbook.action == pb.PLAYBOOK_ACTION_INJECTED
    # An answer in a collection that is not searched is not injected.
    posts_only = await admin.search("posts", text=paraphrase, k=2, playbook=options)
    assert not any(h.HasField("playbook") for h in posts_only.hits)
    # A tighter inject threshold than the paraphrase's distance injects nothing.
    tight = await admin.search(
        list(texts), text=paraphrase, k=2, playbook=playbook("pb-inject", role="agent", inject_threshold=close / 2)
    )
    assert ids(tight) == ids(plain)


async def test_recorded_answers_never_cross_roles(
    admin: AsyncVectorClient,
    texts: tuple[str, str],
    exact: str,
    memory: AsyncMemoryClient,
    query_vector: list[float],
) -> None:
    question = "how long does shipping to Canada take?"
    await memory.record_playbook("pb-roles", question, "articles", "hours", 1.0, role="billing")
    await memory.record_playbook("pb-roles", QUERY, exact, "far", 1.0, role="billing")
    for role in ("", "support"):
        found = await admin.search(list(texts), text=question, k=2, playbook=playbook("pb-roles", role=role))
        assert not any(h.HasField("playbook") for h in found.hits), role
        boosted = await admin.search(exact, vector=query_vector, playbook=playbook("pb-roles", role=role))
        assert not any(h.HasField("playbook") for h in boosted.hits), role
    billing = await admin.search(list(texts), text=question, k=2, playbook=playbook("pb-roles", role="billing"))
    assert billing.hits[0].id == "hours" and billing.hits[0].playbook.action == pb.PLAYBOOK_ACTION_INJECTED
    boosted = await admin.search(exact, vector=query_vector, playbook=playbook("pb-roles", role="billing"))
    assert {h.id: h.distance for h in boosted.hits}["far"] == pytest.approx(0.5, abs=1e-5)


async def test_a_memory_service_that_cannot_answer_fails_only_playbook_searches(
    tmp_path: Path, admin: AsyncVectorClient, exact: str, query_vector: list[float]
) -> None:
    # A vector service whose [mesh] memory address answers UNIMPLEMENTED for everything (a gRPC
    # server with no services), then nothing at all (the server gone).
    empty = grpc.aio.server()
    port = empty.add_insecure_port("127.0.0.1:0")
    await empty.start()
    config = make_config(tmp_path / "data", Backends())
    config = replace(config, mesh=MeshConfig(memory=f"127.0.0.1:{port}"), vector=vector_config())
    lone = await start_mesh(config, ("storage", "catalog", "query", "vector"))
    try:
        v = vectors_as(lone, "")
        await v.create_collection("exact", dimension=DIMENSION)
        await v.upsert_vectors("exact", [vector_record("same", query_vector)])
        for failure in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE):
            if failure == grpc.StatusCode.UNAVAILABLE:
                await empty.stop(0)
            error = await refused(
                v.search(exact, vector=query_vector, playbook=playbook()), UnavailableError, "MEMORY_UNAVAILABLE"
            )
            assert failure.name in error.message and error.retry_delay_s is not None
            assert len((await v.search(exact, vector=query_vector)).hits) == 1
    finally:
        await lone.stop()
        await empty.stop(0)
    await refused(
        admin.search(exact, vector=query_vector, playbook=playbook(boost_threshold=-1)),
        InvalidArgumentError,
        "INVALID_THRESHOLD",
        "playbook.boost_threshold",
    )


async def test_the_playbook_needs_a_query_in_the_models_space(admin: AsyncVectorClient) -> None:
    await admin.create_collection("small_space", dimension=4)
    await admin.upsert_vectors("small_space", [vector_record("a", [1, 0, 0, 0])])
    error = await refused(
        admin.search("small_space", vector=[1, 0, 0, 0], playbook=playbook()),
        InvalidArgumentError,
        "DIMENSION_MISMATCH",
        "playbook.enabled",
    )
    assert MODEL in error.message


# -- profiles --------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(mesh: RunningMesh) -> AsyncVectorClient:
    """The agent's client; its profile binds one collection and one memory namespace."""
    v = vectors_as(mesh, ADMIN)
    await v.create_collection(AGENT_COLLECTION, dimension=DIMENSION)
    await v.create_collection("agent_secret", dimension=DIMENSION)
    await v.upsert_vectors(AGENT_COLLECTION, [vector_record("ok", E0, text="public")])
    await v.upsert_vectors("agent_secret", [vector_record("s", E0, text="secret")])
    catalog = AsyncCatalogClient(mesh.channel, metadata=token_metadata(ADMIN))
    await catalog.create_profile(PROFILE, collections=[AGENT_COLLECTION], memory_namespaces=[AGENT_NAMESPACE])
    return vectors_as(mesh, AGENT)


async def test_an_agent_reaches_only_the_collections_of_its_profile(
    agent: AsyncVectorClient, memory: AsyncMemoryClient
) -> None:
    found = await agent.search(AGENT_COLLECTION, vector=E0)
    assert ids(found) == [(AGENT_COLLECTION, "ok")]
    assert [c.name for c in await agent.all_collections()] == [AGENT_COLLECTION]
    assert (await agent.get_collection(AGENT_COLLECTION)).name == AGENT_COLLECTION

    calls = [
        agent.search([AGENT_COLLECTION, "agent_secret"], vector=E0),
        agent.search("does_not_exist", vector=E0),  # refused the same way: no probing
        agent.get_collection("agent_secret"),
        agent.get_vectors("agent_secret", ["s"]),
        agent.get_index_status("agent_secret"),
        agent.evaluate_recall("agent_secret"),
    ]
    for call in calls:
        error = await refused(call, PermissionDeniedError, "COLLECTION_NOT_ALLOWED")
        assert AGENT_COLLECTION in error.message and "secret" not in error.metadata.get("allowed", "")

    await memory.record_playbook(AGENT_NAMESPACE, "q", AGENT_COLLECTION, "ok", 1.0)
    await refused(
        agent.search(AGENT_COLLECTION, vector=E0, playbook=playbook("someone-elses")),
        PermissionDeniedError,
        "NAMESPACE_NOT_ALLOWED",
    )
    await refused(
        agent.search(AGENT_COLLECTION, vector=E0, playbook=playbook()),  # the default namespace is not bound
        PermissionDeniedError,
        "NAMESPACE_NOT_ALLOWED",
    )
    q = await embedded(agent, "q")
    plain = await agent.search(AGENT_COLLECTION, vector=q)
    allowed = await agent.search(AGENT_COLLECTION, vector=q, playbook=playbook(AGENT_NAMESPACE))
    assert ids(allowed) == [(AGENT_COLLECTION, "ok")]
    # The bound namespace's entry applied: the answer recorded for "q" itself is boosted by half.
    assert allowed.hits[0].playbook.action == pb.PLAYBOOK_ACTION_BOOSTED
    assert allowed.hits[0].distance == pytest.approx(plain.hits[0].distance * 0.5, abs=1e-5)


async def test_agents_and_readers_cannot_write(mesh: RunningMesh, agent: AsyncVectorClient) -> None:
    reader = vectors_as(mesh, READER)
    writer = vectors_as(mesh, WRITER)
    for client in (agent, reader):
        for call in (
            client.upsert_vectors(AGENT_COLLECTION, [vector_record("x", E0)]),
            client.delete_vectors(AGENT_COLLECTION, ids=["ok"]),
            client.create_collection("agent_made", dimension=DIMENSION),
            client.delete_collection(AGENT_COLLECTION),
        ):
            await refused(call, PermissionDeniedError, "ROLE_NOT_ALLOWED")
    # Readers read every collection; writers write.
    assert {"agent_docs", "agent_secret"} <= {c.name for c in await reader.all_collections()}
    assert ids(await reader.search("agent_secret", vector=E0)) == [("agent_secret", "s")]
    await writer.upsert_vectors("agent_secret", [vector_record("w", plane(0, 1))])
    assert (await writer.get_collection("agent_secret")).row_count == 2


async def test_memory_collections_are_written_only_through_the_memory_service(mesh: RunningMesh) -> None:
    admin, writer = vectors_as(mesh, ADMIN), vectors_as(mesh, WRITER)
    await admin.create_collection("memory_team_0123abcd", dimension=DIMENSION)
    for call, field in (
        (writer.create_collection("memory_mine", dimension=DIMENSION), "collection.name"),
        (writer.upsert_vectors("memory_team_0123abcd", [vector_record("t", E0)]), "collection"),
        (writer.delete_vectors("memory_team_0123abcd", ids=["t"]), "collection"),
        (writer.index_dataset("memory_team_0123abcd", "docs", id_column="id", text_columns=["text"]), "collection"),
        (writer.delete_collection("memory_team_0123abcd"), "name"),
    ):
        error = await refused(call, PermissionDeniedError, "COLLECTION_RESERVED")
        assert error.message.startswith(f"{field}: collections named memory_*"), error.message
    assert (await writer.get_collection("memory_team_0123abcd")).row_count == 0  # reading stays open
    await admin.delete_collection("memory_team_0123abcd")


# -- health, backend outages and the command line --------------------------------------------------


async def test_health_reports_the_vector_service_serving(mesh: RunningMesh, exact: str) -> None:
    stub = health_pb2_grpc.HealthStub(mesh.channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_unreachable_milvus_is_not_serving_and_calls_are_retryable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = make_config(tmp_path_factory.mktemp("down") / "data")
    dead = f"http://127.0.0.1:{free_port()}"
    config = replace(
        config, vector=VectorConfig(uri=dead, timeout_s=1.0, embedder=EmbedderConfig(model_dir=str(MODEL_DIR)))
    )
    down = await start_mesh(config, ("storage", "catalog", "query", "vector"))
    try:
        health = health_pb2_grpc.HealthStub(down.channel)
        statuses: list[int] = []

        async def poll() -> None:
            while True:
                answer = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE.full_name))
                statuses.append(answer.status)
                if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    return
                await asyncio.sleep(0.1)

        await asyncio.wait_for(poll(), 10)
        client = AsyncVectorClient(down.channel, timeout_s=10, retry=RetryPolicy(attempts=1))
        error = await refused(client.get_collection("anything"), UnavailableError, "BACKEND_UNAVAILABLE")
        assert error.retry_delay_s is not None and dead in error.message
        await refused(client.search("anything", vector=[1.0]), UnavailableError, "BACKEND_UNAVAILABLE")
        # The embedder does not need Milvus.
        assert (await client.embed(["still embeds"])).dimension == DIMENSION
        overall = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert overall.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await down.stop()


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


async def test_the_command_line_creates_searches_and_shows(mesh: RunningMesh, texts: tuple[str, str]) -> None:
    common = ("--address", mesh.address, "--token", ADMIN)

    async def run(*args: str) -> str:
        code, out = await asyncio.to_thread(_cli, *args, *common)
        assert code == 0, out
        return out

    created = await run(
        "collections",
        "create",
        "cli_made",
        "--dimension",
        "4",
        "--index",
        "hnsw",
        "--param",
        "m=8",
        "--field",
        "year:int64:required",
    )
    assert "cli_made" in created and "m=8" in created and "year:int64:required" in created
    assert "cli_made" in await run("collections", "list")
    assert "hnsw" in await run("collections", "get", "cli_made")
    hits = await run(
        "search", "resetting a forgotten password", "--collection", "articles", "--collection", "posts", "-k", "2"
    )
    assert "password" in hits and "articles" in hits
    assert "CPUExecutionProvider" in await run("embedder")
    assert "384" in await run("embed", "hello world")
    await run("collections", "delete", "cli_made", "--yes")
    code, out = await asyncio.to_thread(_cli, "collections", "get", "cli_made", *common)
    assert code == 1 and "COLLECTION_NOT_FOUND" in out
