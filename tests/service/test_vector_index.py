"""IndexDataset, GetIndexStatus and EvaluateRecall against a real mesh: the sample notes read through
the query service, embedded by the ONNX model, stored in Milvus Lite; incremental re-runs, views
and erasure reaching the vectors, chunking, cancellation, recall, and state across a restart.

One mesh serves most of the module (its embedder's cache makes the notes cheap to embed again);
each test ingests the notes under a dataset of its own and writes collections of its own. Tests
that need other settings (tokens, small batches, a restart) start a mesh of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import pytest_asyncio

from lakehouse.catalog.v1 import catalog_service_pb2 as cpb
from lakehouse.cli import sample
from lakehouse.client import RetryPolicy, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient, redaction
from lakehouse.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from lakehouse.client.vector import AsyncVectorClient, index_spec, metadata_of
from lakehouse.common.v1 import refs_pb2
from lakehouse.server.common.config import Config, TokenConfig
from lakehouse.vector.v1 import vector_service_pb2 as pb
from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.query import SAMPLE_ROWS, query_client, sample_file, sample_tables

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(
    os.environ.get("LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR") or ROOT / "data" / "models" / "all-minilm-l6-v2"
)
ADMIN = "index-admin-token"
AGENT = "index-agent-token"
PROFILE = "notes-bot"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha(ADMIN)),
    TokenConfig(principal="bot", role="agent", profile=PROFILE, sha256=_sha(AGENT)),
)


def vector_config(data_dir: Path, backends: Backends = Backends(), *, index_batch_rows: int = 256) -> Config:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    config = make_config(data_dir, backends)
    embedder = replace(config.vector.embedder, model_dir=str(MODEL_DIR))
    return replace(config, vector=replace(config.vector, embedder=embedder, index_batch_rows=index_batch_rows))


class Mesh:
    """A running mesh with clients for one token; `notes` is the test's own copy of the notes."""

    def __init__(self, running: RunningMesh, token: str = "", notes: str = "notes") -> None:
        self.running = running
        self.notes = notes
        metadata = token_metadata(token)
        retry = RetryPolicy(attempts=2, initial_backoff_s=0.05)
        self.vector = AsyncVectorClient(running.channel, timeout_s=120, retry=retry, metadata=metadata)
        self.catalog = AsyncCatalogClient(running.channel, timeout_s=60, retry=retry, metadata=metadata)
        self.query = query_client(running, token, timeout_s=60)

    async def index(self, collection: str, dataset: str = "", **kw: Any) -> pb.IndexSummary:
        kw.setdefault("id_column", "note_id")
        kw.setdefault("text_columns", ["text"])
        return await self.vector.index_dataset(collection, dataset or self.notes, **kw)

    async def status(self, collection: str) -> pb.GetIndexStatusResponse:
        return await self.vector.get_index_status(collection)

    async def ids(self, collection: str, ids: list[str]) -> set[str]:
        return {r.id for r in await self.vector.get_vectors(collection, ids)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningMesh]:
    running = await start_mesh(vector_config(tmp_path_factory.mktemp("index") / "data"))
    yield running
    await running.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def mesh(shared: RunningMesh, request: pytest.FixtureRequest, tmp_path: Path) -> Mesh:
    """The shared mesh, with the sample notes (200 rows) ingested as a dataset of this test's own."""
    name = "notes_" + hashlib.sha256(request.node.name.encode()).hexdigest()[:8]
    await query_client(shared).ingest_file(sample_file(tmp_path / "files", "notes", "csv"), name)
    return Mesh(shared, notes=name)


@contextlib.asynccontextmanager
async def own_mesh(data_dir: Path, *, tokens: tuple[TokenConfig, ...] = (), **settings: Any) -> AsyncIterator[Mesh]:
    """A mesh of the test's own with the notes ingested as "notes", stopped at the end."""
    running = await start_mesh(vector_config(data_dir / "data", Backends(tokens=tokens), **settings), None, ADMIN)
    try:
        mesh = Mesh(running, ADMIN if tokens else "")
        await mesh.query.ingest_file(sample_file(data_dir / "files", "notes", "csv"), "notes")
        yield mesh
    finally:
        await running.stop()


def notes() -> list[dict[str, Any]]:
    return sample_tables()["notes"].to_pylist()


def unique_note() -> dict[str, Any]:
    """A note whose text no other note has, so a search for it has one right answer."""
    counts: dict[str, int] = {}
    for note in notes():
        counts[note["text"]] = counts.get(note["text"], 0) + 1
    return next(n for n in notes()[40:] if counts[n["text"]] == 1)


async def current_version(mesh: Mesh, dataset: str) -> int:
    tables = await mesh.query.list_tables()
    return next(t.version for t in tables if t.name == dataset)


async def settled(
    mesh: Mesh, collection: str, done: Callable[[pb.GetIndexStatusResponse], bool], timeout_s: float = 10.0
) -> pb.GetIndexStatusResponse:
    """GetIndexStatus polled until `done(status)` holds (for effects of a cancelled call)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        status = await mesh.status(collection)
        if done(status) or asyncio.get_running_loop().time() > deadline:
            return status
        await asyncio.sleep(0.05)


# -- indexing --------------------------------------------------------------------------------------


async def test_indexed_notes_are_found_by_their_text_and_a_rerun_embeds_nothing(mesh: Mesh) -> None:
    summary = await mesh.index("search_idx", metadata_columns=["author", "worker_id"])
    version = await current_version(mesh, mesh.notes)
    assert (summary.collection, summary.dataset, summary.dataset_version) == ("search_idx", mesh.notes, version)
    assert (summary.rows_read, summary.rows_embedded, summary.rows_unchanged, summary.rows_removed) == (
        SAMPLE_ROWS,
        SAMPLE_ROWS,
        0,
        0,
    )
    assert summary.vectors_upserted == SAMPLE_ROWS and summary.elapsed.ToNanoseconds() > 0

    note = unique_note()
    hits = (await mesh.vector.search("search_idx", text=note["text"], k=3)).hits
    assert hits[0].id == str(note["note_id"]) and hits[0].distance == pytest.approx(0.0, abs=1e-4)
    assert hits[0].text == note["text"]
    assert metadata_of(hits[0]) == {
        "source_dataset": mesh.notes,
        "source_version": version,
        "source_key": str(note["note_id"]),
        "chunk_index": 0,
        "content_sha256": _sha(note["text"]),
        "author": note["author"],
        "worker_id": note["worker_id"],
    }
    collection = await mesh.vector.get_collection("search_idx")
    assert (collection.source_dataset, collection.row_count, collection.dimension) == (mesh.notes, SAMPLE_ROWS, 384)
    assert {f.name: f.type for f in collection.fields} == {
        "author": pb.FIELD_TYPE_STRING,
        "worker_id": pb.FIELD_TYPE_INT64,
    }

    again = await mesh.index("search_idx", metadata_columns=["author", "worker_id"])
    assert (again.rows_read, again.rows_embedded, again.rows_unchanged, again.vectors_upserted) == (
        SAMPLE_ROWS,
        0,
        SAMPLE_ROWS,
        0,
    )
    status = await mesh.status("search_idx")
    assert (status.dataset, status.id_column, list(status.text_columns)) == (mesh.notes, "note_id", ["text"])
    assert status.state == pb.INDEX_RUN_STATE_IDLE and not status.HasField("progress")
    assert (status.rows_embedded, status.covered_version, status.current_version, status.stale) == (
        SAMPLE_ROWS,
        version,
        version,
        False,
    )
    assert status.HasField("last_indexed_time") and status.last_error == ""
    derivations = (await mesh.catalog.list_derivations(dataset=mesh.notes)).derivations
    assert [(d.target, d.key_column, d.dataset_version) for d in derivations] == [("search_idx", "note_id", version)]


async def test_appended_rows_make_the_index_stale_and_only_they_are_embedded(mesh: Mesh, tmp_path: Path) -> None:
    first = await mesh.index("append_idx")
    extra = sample.generate(SAMPLE_ROWS + 50)["notes"].slice(SAMPLE_ROWS)
    path = sample.write({"notes": extra}, tmp_path / "more", "csv")["notes"]
    await mesh.query.ingest_file(path, mesh.notes, mode="append")

    stale = await mesh.status("append_idx")
    assert stale.stale and stale.covered_version == first.dataset_version
    assert stale.current_version > first.dataset_version

    summary = await mesh.index("append_idx")
    assert (summary.rows_read, summary.rows_embedded, summary.rows_unchanged, summary.rows_removed) == (
        SAMPLE_ROWS + 50,
        50,
        SAMPLE_ROWS,
        0,
    )
    fresh = await mesh.status("append_idx")
    assert not fresh.stale and fresh.covered_version == fresh.current_version == summary.dataset_version
    assert fresh.rows_embedded == SAMPLE_ROWS + 50
    assert await mesh.ids("append_idx", ["201", "250"]) == {"201", "250"}


async def test_a_changed_text_is_embedded_again_and_a_deleted_row_loses_its_vectors(mesh: Mesh, tmp_path: Path) -> None:
    await mesh.index("change_idx")
    table = sample_tables()["notes"]
    texts = table.column("text").to_pylist()
    texts[0] = "Prefers night shifts near the harbour; certified crane operator."
    changed = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)).slice(0, SAMPLE_ROWS - 1)
    path = sample.write({"notes": changed}, tmp_path / "changed", "csv")["notes"]
    await mesh.query.ingest_file(path, mesh.notes, mode="overwrite")

    summary = await mesh.index("change_idx")
    assert (summary.rows_read, summary.rows_embedded, summary.rows_unchanged, summary.rows_removed) == (
        SAMPLE_ROWS - 1,
        1,
        SAMPLE_ROWS - 2,
        1,
    )
    assert await mesh.ids("change_idx", ["1", str(SAMPLE_ROWS)]) == {"1"}
    [record] = await mesh.vector.get_vectors("change_idx", ["1"])
    assert record.text == texts[0] and metadata_of(record)["content_sha256"] == _sha(texts[0])
    assert (await mesh.vector.get_collection("change_idx")).row_count == SAMPLE_ROWS - 1


async def test_chunked_rows_get_one_vector_per_chunk_and_unchunking_replaces_them(mesh: Mesh) -> None:
    summary = await mesh.index("chunk_idx", max_tokens=16, overlap_tokens=4)
    assert summary.rows_embedded == SAMPLE_ROWS and summary.vectors_upserted > SAMPLE_ROWS
    longest = max(notes(), key=lambda n: len(n["text"]))
    key = str(longest["note_id"])
    chunks = await mesh.vector.get_vectors("chunk_idx", [f"{key}#{i}" for i in range(40)])
    assert len(chunks) >= 3 and key not in await mesh.ids("chunk_idx", [key])
    for i, chunk in enumerate(chunks):
        fields = metadata_of(chunk)
        assert chunk.id == f"{key}#{i}" and fields["chunk_index"] == i and fields["source_key"] == key
        assert fields["content_sha256"] == _sha(longest["text"]) and chunk.text in longest["text"]
    assert chunks[0].text != longest["text"] and longest["text"].startswith(chunks[0].text)

    again = await mesh.index("chunk_idx", max_tokens=16, overlap_tokens=4)
    assert (again.rows_embedded, again.rows_unchanged, again.vectors_upserted) == (0, SAMPLE_ROWS, 0)

    whole = await mesh.index("chunk_idx")  # chunking changed: every row again, one vector each
    assert (whole.rows_embedded, whole.vectors_upserted) == (SAMPLE_ROWS, SAMPLE_ROWS)
    assert await mesh.ids("chunk_idx", [key, f"{key}#0", f"{key}#1"]) == {key}
    assert (await mesh.vector.get_collection("chunk_idx")).row_count == SAMPLE_ROWS


async def test_requests_that_cannot_run_are_refused_before_anything_is_written(mesh: Mesh, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as bad:
        await mesh.index("refused_idx", max_tokens=8, overlap_tokens=8)
    assert bad.value.reason == "INVALID_CHUNKING" and bad.value.violations[0].field == "chunking"

    with pytest.raises(NotFoundError) as missing:
        await mesh.index("refused_idx", text_columns=["text", "body"])
    assert missing.value.reason == "COLUMN_NOT_FOUND"
    assert [v.field for v in missing.value.violations] == ["text_columns[1]"]

    with pytest.raises(NotFoundError) as no_dataset:
        await mesh.index("refused_idx", dataset="nope")
    assert no_dataset.value.reason == "DATASET_NOT_FOUND"
    with pytest.raises(NotFoundError) as no_version:
        await mesh.index("refused_idx", version=99)
    assert no_version.value.reason == "VERSION_NOT_FOUND"

    with pytest.raises(InvalidArgumentError) as duplicate:
        await mesh.index("refused_idx", id_column="worker_id")
    assert duplicate.value.reason == "DUPLICATE_ROW_KEY"
    with pytest.raises(NotFoundError):  # nothing was created for a run that never started writing
        await mesh.vector.get_collection("refused_idx")

    await mesh.index("refused_idx")
    workers = mesh.notes.replace("notes", "workers")
    await mesh.query.ingest_file(sample_file(tmp_path / "files", "workers", "csv"), workers)
    with pytest.raises(FailedPreconditionError) as other_dataset:
        await mesh.index("refused_idx", dataset=workers, id_column="worker_id", text_columns=["full_name"])
    assert other_dataset.value.reason == "COLLECTION_SOURCE_MISMATCH"
    with pytest.raises(FailedPreconditionError) as other_key:
        await mesh.index("refused_idx", id_column="worker_id")
    assert other_key.value.reason == "COLLECTION_SOURCE_MISMATCH"
    assert (await mesh.status("refused_idx")).state == pb.INDEX_RUN_STATE_IDLE  # refusals are not failed runs

    await mesh.vector.create_collection("refused_plain")
    with pytest.raises(FailedPreconditionError) as plain:
        await mesh.status("refused_plain")
    assert plain.value.reason == "NOT_INDEXED"
    with pytest.raises(NotFoundError) as gone:
        await mesh.status("nowhere")
    assert gone.value.reason == "COLLECTION_NOT_FOUND"


# -- governance ------------------------------------------------------------------------------------


async def test_soft_erased_rows_are_not_indexed_and_are_removed_by_a_rerun(mesh: Mesh) -> None:
    await mesh.catalog.erase_rows(mesh.notes, "note_id", ["5"], mode="soft", reason="asked")
    summary = await mesh.index("soft_idx")
    assert summary.rows_read == SAMPLE_ROWS - 1 and await mesh.ids("soft_idx", ["4", "5"]) == {"4"}

    # Rows erased after they were indexed are hidden from search at once, before any re-run.
    text = next(n["text"] for n in notes() if n["note_id"] == 6)
    before = await mesh.vector.search("soft_idx", text=text, k=3, filter="source_key in ['6', '7']")
    assert "6" in {h.id for h in before.hits}
    await mesh.catalog.erase_rows(mesh.notes, "note_id", ["6"], mode="soft", reason="asked too")
    after = await mesh.vector.search("soft_idx", text=text, k=3, filter="source_key in ['6', '7']")
    assert {h.id for h in after.hits} == {"7"}
    again = await mesh.index("soft_idx")
    assert (again.rows_read, again.rows_embedded, again.rows_removed) == (SAMPLE_ROWS - 2, 0, 1)
    assert await mesh.ids("soft_idx", ["6", "7"]) == {"7"}


async def test_a_hard_erasure_deletes_the_rows_vectors_and_the_receipt_says_how_many(mesh: Mesh) -> None:
    await mesh.index("hard_idx", max_tokens=16, overlap_tokens=4)
    expected = len(await mesh.vector.get_vectors("hard_idx", [f"{k}#{i}" for k in (7, 8) for i in range(40)]))
    indexed = (await mesh.status("hard_idx")).covered_version

    receipt = await mesh.catalog.erase_rows(mesh.notes, "note_id", ["7", "8"], mode="hard", reason="gdpr request")
    assert receipt.state == cpb.ERASURE_STATE_COMPLETE, receipt.detail
    assert [(d.kind, d.target, d.deleted_count) for d in receipt.downstream] == [
        ("vector_collection", "hard_idx", expected)
    ]
    assert not await mesh.ids("hard_idx", ["7#0", "8#0"]) and await mesh.ids("hard_idx", ["9#0"])

    status = await mesh.status("hard_idx")
    assert status.stale and status.current_version == receipt.version_after > indexed
    summary = await mesh.index("hard_idx", max_tokens=16, overlap_tokens=4)
    assert (summary.rows_read, summary.rows_embedded, summary.rows_removed) == (SAMPLE_ROWS - 2, 0, 0)

    # A deleted collection is no longer a derivation: later erasures do not look for it.
    assert [d.target for d in (await mesh.catalog.list_derivations(dataset=mesh.notes)).derivations] == ["hard_idx"]
    await mesh.vector.delete_collection("hard_idx")
    assert not (await mesh.catalog.list_derivations(dataset=mesh.notes)).derivations
    again = await mesh.catalog.erase_rows(mesh.notes, "note_id", ["9"], mode="hard", reason="gdpr request")
    assert again.state == cpb.ERASURE_STATE_COMPLETE and not again.downstream


async def test_a_view_is_indexed_as_it_shows_and_an_agent_searches_only_redacted_text(tmp_path: Path) -> None:
    async with own_mesh(tmp_path, tokens=TOKENS) as admin:
        await admin.catalog.create_view(
            "notes_safe",
            "notes",
            ["note_id", "author", "text"],
            row_filter="note_id <= 100",
            redactions=[redaction("text", "mask", keep_prefix=12)],
        )
        summary = await admin.index("notes_safe_idx", dataset="notes_safe")
        assert (summary.dataset, summary.rows_read) == ("notes_safe", 100)

        raw = {str(n["note_id"]): n["text"] for n in notes()}
        stored = await admin.vector.get_vectors("notes_safe_idx", [str(i) for i in range(1, 201)])
        assert len(stored) == 100
        for record in stored:
            text = raw[record.id]
            assert record.text == text[:12] + "*" * (len(text) - 12) != text
            assert metadata_of(record)["source_dataset"] == "notes"  # what an erasure of the base matches
        derivations = (await admin.catalog.list_derivations(dataset="notes")).derivations
        assert [(d.dataset, d.target) for d in derivations] == [("notes", "notes_safe_idx")]

        await admin.catalog.create_profile(PROFILE, views=["notes_safe"], collections=["notes_safe_idx"])
        agent = Mesh(admin.running, AGENT)
        hits = (await agent.vector.search("notes_safe_idx", text=raw["3"], k=5)).hits
        assert hits and all(h.text.endswith("*") and h.text not in raw.values() for h in hits)
        # Agents read; writing a collection is for writers and admins, who index the view instead.
        with pytest.raises(PermissionDeniedError) as refused:
            await agent.index("agent_idx", dataset="notes_safe")
        assert refused.value.reason == "ROLE_NOT_ALLOWED"


# -- runs ------------------------------------------------------------------------------------------


async def test_a_cancelled_run_is_reported_failed_and_a_rerun_continues_from_it(tmp_path: Path) -> None:
    async with own_mesh(tmp_path, index_batch_rows=10) as mesh:
        request = pb.IndexDatasetRequest(
            source=refs_pb2.DatasetRef(dataset="notes"),
            id_column="note_id",
            text_columns=["text"],
            collection="notes_idx",
        )
        events = mesh.vector.index_dataset_events(request)
        async for event in events:
            if event.progress.stage == "embedding" and event.progress.rows_done >= 30:
                break
        with pytest.raises(FailedPreconditionError) as busy:
            await mesh.index("notes_idx")
        assert busy.value.reason == "INDEX_RUNNING"
        with pytest.raises(FailedPreconditionError) as undeletable:
            await mesh.vector.delete_collection("notes_idx")
        assert undeletable.value.reason == "INDEX_RUNNING"
        live = await mesh.status("notes_idx")
        assert live.state == pb.INDEX_RUN_STATE_RUNNING and live.progress.stage == "embedding"
        assert live.progress.rows_done >= 30 and live.progress.rows_total == SAMPLE_ROWS

        await events.aclose()  # type: ignore[attr-defined]
        failed = await settled(mesh, "notes_idx", lambda s: s.state == pb.INDEX_RUN_STATE_FAILED)
        assert failed.state == pb.INDEX_RUN_STATE_FAILED and "cancelled" in failed.last_error

        summary = await mesh.index("notes_idx")
        assert summary.rows_unchanged >= 30 and summary.rows_embedded + summary.rows_unchanged == SAMPLE_ROWS
        assert (await mesh.status("notes_idx")).state == pb.INDEX_RUN_STATE_IDLE


async def test_index_state_survives_a_restart(tmp_path: Path) -> None:
    async with own_mesh(tmp_path) as mesh:
        first = await mesh.index("notes_idx")
        before = await mesh.status("notes_idx")
        config, port = mesh.running.config, mesh.running.server.port
    # The same data served again on the same port, as after a restart.
    again = await start_mesh(replace(config, server=replace(config.server, port=port)))
    try:
        mesh = Mesh(again)
        after = await mesh.status("notes_idx")
        assert after == before and after.covered_version == first.dataset_version
        summary = await mesh.index("notes_idx")
        assert (summary.rows_embedded, summary.rows_unchanged) == (0, SAMPLE_ROWS)
    finally:
        await again.stop()


# -- recall ----------------------------------------------------------------------------------------


async def test_recall_of_a_flat_collection_is_exact(mesh: Mesh) -> None:
    await mesh.vector.create_collection("flat_idx", index=index_spec("flat"))
    await mesh.index("flat_idx", metadata_columns=["author"])
    assert (await mesh.vector.get_collection("flat_idx")).source_dataset == mesh.notes
    # "author" is not a declared field of this collection: it is kept (and compared) all the same.
    again = await mesh.index("flat_idx", metadata_columns=["author"])
    assert (again.rows_embedded, again.rows_unchanged) == (0, SAMPLE_ROWS)

    report = await mesh.vector.evaluate_recall("flat_idx", sample_size=50, k=10, seed=7)
    assert report.recall_at_k == 1.0 and (report.k, report.sample_size, report.seed) == (10, 50, 7)
    assert report.index_type == pb.INDEX_TYPE_FLAT
    assert 0 < report.latency_p50.ToNanoseconds() <= report.latency_p95.ToNanoseconds()
    capped = await mesh.vector.evaluate_recall("flat_idx", sample_size=5000, k=5, seed=7)
    assert capped.sample_size == SAMPLE_ROWS and capped.recall_at_k == 1.0

    with pytest.raises(InvalidArgumentError) as k_too_large:
        await mesh.vector.evaluate_recall("flat_idx", k=5000)
    assert k_too_large.value.reason == "K_TOO_LARGE"
    with pytest.raises(InvalidArgumentError) as too_many:
        await mesh.vector.evaluate_recall("flat_idx", sample_size=20_000)
    assert too_many.value.reason == "SAMPLE_TOO_LARGE"
    await mesh.vector.create_collection("flat_empty")
    with pytest.raises(FailedPreconditionError) as empty:
        await mesh.vector.evaluate_recall("flat_empty")
    assert empty.value.reason == "COLLECTION_EMPTY"
    with pytest.raises(NotFoundError) as missing:
        await mesh.vector.evaluate_recall("nowhere")
    assert missing.value.reason == "COLLECTION_NOT_FOUND"
