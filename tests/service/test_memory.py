"""The memory service against a real mesh: traces in SQLite, their vectors in Milvus Lite through
the vector service, the real embedding model, profiles from the catalog, and the playbook measured
end to end through the vector service's Search."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from lakehouse.client import RetryPolicy, token_metadata
from lakehouse.client.errors import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    LakehouseClientError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
)
from lakehouse.client.memory import AsyncMemoryClient, playbook_record, trace_filter
from lakehouse.client.vector import AsyncVectorClient, playbook
from lakehouse.server.common.config import EmbedderConfig, MemoryConfig, TokenConfig, VectorConfig
from lakehouse.server.memory.service import collection_name
from lakehouse.vector.v1 import vector_service_pb2 as vector_pb
from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.query import query_client, sample_file

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(
    os.environ.get("LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR") or ROOT / "data" / "models" / "all-minilm-l6-v2"
)
ADMIN, WRITER, READER, AGENT = "mem-admin", "mem-writer", "mem-reader", "mem-agent"
PROFILE = "notes-bot"
AGENT_NAMESPACE = "bot-notes"
KB = "kb"
MAX_CONTENT = 2048
T = TypeVar("T", bound=LakehouseClientError)

DOCS = {
    "hours": "Our store opens at 9am and closes at 6pm on weekdays.",
    "shipping": "Orders ship within two business days by courier.",
    "returns": "You can return any item within 30 days for a full refund.",
}


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha(ADMIN)),
    TokenConfig(principal="loader", role="writer", sha256=_sha(WRITER)),
    TokenConfig(principal="analyst", role="reader", sha256=_sha(READER)),
    TokenConfig(principal="bot", role="agent", profile=PROFILE, sha256=_sha(AGENT)),
)


def mesh_config(data_dir: Path, catalog_url: str = "") -> Any:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    config = make_config(data_dir, Backends(catalog_url=catalog_url, tokens=TOKENS))
    return replace(
        config,
        vector=VectorConfig(embedder=EmbedderConfig(model_dir=str(MODEL_DIR), providers=("CPUExecutionProvider",))),
        memory=MemoryConfig(max_content_bytes=MAX_CONTENT),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningMesh]:
    running = await start_mesh(mesh_config(tmp_path_factory.mktemp("memory") / "data"), None, ADMIN)
    vectors = vectors_as(running, ADMIN)
    await vectors.create_collection(KB)
    await vectors.upsert_vectors(KB, [vector_pb.VectorRecord(id=i, text=t) for i, t in DOCS.items()])
    await running.catalog.create_profile(PROFILE, collections=[KB], memory_namespaces=[AGENT_NAMESPACE])
    yield running
    await running.stop()


def memory_as(mesh: RunningMesh, token: str) -> AsyncMemoryClient:
    retry = RetryPolicy(attempts=2, initial_backoff_s=0.05)
    return AsyncMemoryClient(mesh.channel, timeout_s=60, retry=retry, metadata=token_metadata(token))


def vectors_as(mesh: RunningMesh, token: str) -> AsyncVectorClient:
    retry = RetryPolicy(attempts=2, initial_backoff_s=0.05)
    return AsyncVectorClient(mesh.channel, timeout_s=60, retry=retry, metadata=token_metadata(token))


@pytest.fixture
def admin(mesh: RunningMesh) -> AsyncMemoryClient:
    return memory_as(mesh, ADMIN)


async def refused(call: Awaitable[Any], error: type[T], reason: str, field: str | None = None) -> T:
    with pytest.raises(error) as caught:
        await call
    assert caught.value.reason == reason, caught.value
    if field is not None:
        assert field in [v.field for v in caught.value.violations], caught.value.violations
    return caught.value


async def count(client: AsyncMemoryClient, namespace: str) -> int:
    listed = await client.list_traces(namespace, include_retired=True, include_superseded=True, page_size=1000)
    return len(listed.traces)


# -- traces ----------------------------------------------------------------------------------------


async def test_add_returns_a_versioned_trace_that_reads_back(admin: AsyncMemoryClient) -> None:
    added = await admin.add_trace(
        "notes", "The deploy key lives in the ops vault.", metadata={"source": "chat"}, tags=["ops", "ops", "keys"]
    )
    trace = added.trace
    assert not added.replayed
    assert (trace.version, trace.replay_count, trace.retired) == (1, 0, False)
    assert list(trace.tags) == ["ops", "keys"]
    assert trace.content_sha256 == hashlib.sha256(trace.content.encode()).hexdigest()
    assert trace.create_time.seconds > 0
    got = await admin.get_trace("notes", trace.id)
    assert got == trace


async def test_idempotent_adds_replay_instead_of_duplicating(admin: AsyncMemoryClient) -> None:
    first = await admin.add_trace("idem", "Standup moved to 10:15.", idempotent=True)
    again = await admin.add_trace("idem", "Standup moved to 10:15.", idempotent=True)
    assert again.replayed and again.trace.id == first.trace.id and again.trace.replay_count == 1
    keyed = await admin.add_trace("idem", "Budget approved.", idempotency_key="msg-42")
    replay = await admin.add_trace("idem", "Budget approved.", idempotency_key="msg-42")
    assert replay.replayed and (replay.trace.id, replay.trace.replay_count) == (keyed.trace.id, 1)
    assert replay.trace.idempotency_key == "msg-42"
    await refused(
        admin.add_trace("idem", "Budget rejected.", idempotency_key="msg-42"),
        AlreadyExistsError,
        "IDEMPOTENCY_KEY_CONFLICT",
    )
    plain = await admin.add_trace("idem", "Standup moved to 10:15.")  # not idempotent: a second trace
    assert plain.trace.id != first.trace.id
    assert await count(admin, "idem") == 3


async def test_bad_adds_name_the_field_and_write_nothing(admin: AsyncMemoryClient) -> None:
    await admin.add_trace("strict", "one trace so the namespace exists")
    await refused(admin.add_trace("Bad Name", "x"), InvalidArgumentError, "INVALID_NAMESPACE", "namespace")
    await refused(admin.add_trace("strict", "   "), InvalidArgumentError, "EMPTY_CONTENT", "content")
    await refused(
        admin.add_trace("strict", "x" * (MAX_CONTENT + 1)), InvalidArgumentError, "CONTENT_TOO_LARGE", "content"
    )
    await refused(admin.add_trace("strict", "x", metadata={"": "v"}), InvalidArgumentError, "INVALID_METADATA")
    await refused(admin.add_trace("strict", "x", tags=[""]), InvalidArgumentError, "INVALID_METADATA", "tags[0]")
    assert await count(admin, "strict") == 1


async def test_update_replaces_in_place_and_checks_the_version(admin: AsyncMemoryClient) -> None:
    trace = (await admin.add_trace("edits", "The VPN gateway is vpn1.")).trace
    updated = await admin.update_trace("edits", trace.id, content="The VPN gateway is vpn2.", tags=["net"])
    assert (updated.id, updated.version, updated.content, list(updated.tags)) == (
        trace.id, 2, "The VPN gateway is vpn2.", ["net"]
    )  # fmt: skip
    await refused(
        admin.update_trace("edits", trace.id, content="stale", expected_version=1), AbortedError, "VERSION_CONFLICT"
    )
    await refused(admin.update_trace("edits", trace.id), InvalidArgumentError, "INVALID_UPDATE_MASK", "update_mask")
    hits = await admin.search_traces("which VPN gateway", namespaces=["edits"], k=1)
    assert hits[0].trace.content == "The VPN gateway is vpn2." and hits[0].trace.version == 2


async def test_revisions_form_a_chain_that_history_walks_back(admin: AsyncMemoryClient) -> None:
    first = (await admin.add_trace("chain", "Lunch is at noon.", metadata={"team": "a"}, tags=["food"])).trace
    second = await admin.revise_trace("chain", first.id, "Lunch is at 12:30.", tags=["moved"])
    third = await admin.revise_trace("chain", second.trace.id, "Lunch is at 13:00.", metadata={"team": "b"})
    assert second.trace.revises_id == first.id and second.predecessor.revised_by_id == second.trace.id
    assert list(third.trace.tags) == ["food", "moved"] and dict(third.trace.metadata) == {"team": "b"}
    history = await admin.get_trace_history("chain", third.trace.id)
    assert [t.id for t in history.traces] == [third.trace.id, second.trace.id, first.id]
    assert not history.truncated
    short = await admin.get_trace_history("chain", third.trace.id, max_depth=2)
    assert len(short.traces) == 2 and short.truncated
    await refused(admin.revise_trace("chain", first.id, "again"), FailedPreconditionError, "TRACE_SUPERSEDED")
    await refused(admin.update_trace("chain", first.id, content="x"), FailedPreconditionError, "TRACE_SUPERSEDED")
    heads = await admin.list_traces("chain")
    assert [t.id for t in heads.traces] == [third.trace.id]
    hits = await admin.search_traces("when is lunch", namespaces=["chain"], k=5)
    assert [h.trace.id for h in hits] == [third.trace.id]
    everything = await admin.search_traces("when is lunch", namespaces=["chain"], k=5, include_superseded=True)
    assert {h.trace.id for h in everything} == {first.id, second.trace.id, third.trace.id}


async def test_retired_traces_leave_search_but_stay_readable(admin: AsyncMemoryClient) -> None:
    trace = (await admin.add_trace("retire", "The printer on floor 3 is broken.")).trace
    await admin.add_trace("retire", "The coffee machine was cleaned.")
    await refused(admin.retire_trace("retire", trace.id, " "), InvalidArgumentError, "EMPTY_REASON", "reason")
    retired = await admin.retire_trace("retire", trace.id, "fixed on Monday")
    again = await admin.retire_trace("retire", trace.id, "another reason")
    assert retired.retired and again.retire_reason == "fixed on Monday" and retired.retire_time.seconds > 0
    hits = await admin.search_traces("printer broken", namespaces=["retire"], k=5)
    assert trace.id not in [h.trace.id for h in hits]
    with_retired = await admin.search_traces("printer broken", namespaces=["retire"], k=1, include_retired=True)
    assert with_retired[0].trace.id == trace.id and with_retired[0].trace.retired
    assert (await admin.get_trace("retire", trace.id)).retired
    await refused(admin.update_trace("retire", trace.id, content="x"), FailedPreconditionError, "TRACE_RETIRED")


async def test_listing_pages_newest_first_with_exact_filters(admin: AsyncMemoryClient) -> None:
    ids = [
        (
            await admin.add_trace("listing", f"note {i}", tags=["even"] if i % 2 == 0 else [], metadata={"n": str(i)})
        ).trace.id
        for i in range(5)
    ]
    first = await admin.list_traces("listing", page_size=2)
    second = await admin.list_traces("listing", page_size=2, page_token=first.next_page_token)
    third = await admin.list_traces("listing", page_size=2, page_token=second.next_page_token)
    assert [t.id for page in (first, second, third) for t in page.traces] == ids[::-1]
    assert third.next_page_token == ""
    even = await admin.list_traces("listing", filter=trace_filter(tags=["even"]))
    assert [t.id for t in even.traces] == [ids[4], ids[2], ids[0]]
    three = await admin.list_traces("listing", filter=trace_filter(metadata={"n": "3"}))
    assert [t.id for t in three.traces] == [ids[3]]
    await refused(admin.list_traces("listing", page_token="garbage"), InvalidArgumentError, "INVALID_PAGE_TOKEN")


# -- search ----------------------------------------------------------------------------------------


async def test_search_finds_traces_by_meaning_across_namespaces(admin: AsyncMemoryClient) -> None:
    for namespace, text, tags in (
        ("search-a", "The cat sleeps on the warm windowsill every afternoon.", ["pets"]),
        ("search-a", "Quarterly revenue grew by twelve percent.", ["finance"]),
        ("search-b", "Our dog loves chasing tennis balls in the park.", ["pets"]),
        ("search-b", "The database backup runs nightly at 2am.", ["ops"]),
    ):
        await admin.add_trace(namespace, text, tags=tags, metadata={"ns": namespace})
    hits = await admin.search_traces("where does the kitty nap", namespaces=["search-a", "search-b"], k=2)
    assert hits[0].trace.content.startswith("The cat") and hits[0].trace.namespace == "search-a"
    assert hits[0].distance <= hits[1].distance
    pets = await admin.search_traces(
        "money and earnings", namespaces=["search-a", "search-b"], filter=trace_filter(tags=["pets"])
    )
    assert {h.trace.namespace for h in pets} == {"search-a", "search-b"} and len(pets) == 2
    only_b = await admin.search_traces(
        "animals", namespaces=["search-a", "search-b"], filter=trace_filter(metadata={"ns": "search-b"})
    )
    assert {h.trace.namespace for h in only_b} == {"search-b"}
    close = await admin.search_traces(
        "where does the kitty nap", namespaces=["search-a"], max_distance=hits[0].distance + 1e-4
    )
    assert [h.trace.id for h in close] == [hits[0].trace.id]
    await refused(admin.search_traces(" ", namespaces=["search-a"]), InvalidArgumentError, "EMPTY_QUERY", "query")
    await refused(admin.search_traces("x", namespaces=["search-a"], k=-1), InvalidArgumentError, "INVALID_K", "k")
    await refused(admin.search_traces("x", namespaces=["nowhere"]), NotFoundError, "NAMESPACE_NOT_FOUND")


async def test_namespaces_never_see_each_others_traces(admin: AsyncMemoryClient) -> None:
    mine = (await admin.add_trace("iso-a", "The alarm code is 4411.")).trace
    await admin.add_trace("iso-b", "Unrelated.")
    await refused(admin.get_trace("iso-b", mine.id), NotFoundError, "TRACE_NOT_FOUND")
    await refused(admin.retire_trace("iso-b", mine.id, "x"), NotFoundError, "TRACE_NOT_FOUND")
    await refused(admin.get_trace_history("iso-b", mine.id), NotFoundError, "TRACE_NOT_FOUND")
    receipt = await admin.forget_traces("iso-b", [mine.id], reason="cross-namespace attempt")
    assert (receipt.traces_deleted, receipt.traces_not_found) == (0, 1)
    hits = await admin.search_traces("alarm code", namespaces=["iso-b"], k=5)
    assert mine.id not in [h.trace.id for h in hits]
    assert (await admin.get_trace("iso-a", mine.id)).id == mine.id


async def test_agents_reach_only_the_namespaces_of_their_profile(mesh: RunningMesh, admin: AsyncMemoryClient) -> None:
    agent = memory_as(mesh, AGENT)
    await admin.add_trace("private", "Salary bands for 2027.")
    own = (await agent.add_trace(AGENT_NAMESPACE, "The customer prefers email.")).trace
    assert (await agent.get_trace(AGENT_NAMESPACE, own.id)).id == own.id
    await refused(agent.add_trace("private", "x"), PermissionDeniedError, "NAMESPACE_NOT_ALLOWED")
    await refused(agent.search_traces("salary", namespaces=["private"]), PermissionDeniedError, "NAMESPACE_NOT_ALLOWED")
    everywhere = await agent.search_traces("salary bands", k=50)  # no namespaces: only the bound ones
    assert {h.trace.namespace for h in everywhere} == {AGENT_NAMESPACE}
    await refused(agent.forget_traces(AGENT_NAMESPACE, [own.id], reason="x"), PermissionDeniedError, "ROLE_NOT_ALLOWED")
    # An agent records answers from the collections its profile binds, in its own namespaces.
    assert (await agent.record_playbook(AGENT_NAMESPACE, "contact preference?", KB, "hours", 0.5)).created
    await refused(
        agent.record_playbook(AGENT_NAMESPACE, "q", collection_name("private"), "x", 0.5),
        PermissionDeniedError,
        "COLLECTION_NOT_ALLOWED",
    )
    await refused(
        agent.record_playbook("private", "q", KB, "hours", 0.5), PermissionDeniedError, "NAMESPACE_NOT_ALLOWED"
    )
    # The memory collections are the memory service's: an agent cannot read them through the vector service.
    with pytest.raises(PermissionDeniedError):
        await vectors_as(mesh, AGENT).search(collection_name(AGENT_NAMESPACE), text="customer")


# -- forgetting ------------------------------------------------------------------------------------


async def test_forget_removes_the_whole_chain_and_its_vectors_with_a_receipt(
    mesh: RunningMesh, admin: AsyncMemoryClient
) -> None:
    first = (await admin.add_trace("forget", "Alice's phone number is 555-0100.")).trace
    second = (await admin.revise_trace("forget", first.id, "Alice's phone number is 555-0199.")).trace
    other = (await admin.add_trace("forget", "The wifi password rotates monthly.")).trace
    dry = await admin.forget_traces("forget", [second.id], reason="GDPR request 7", dry_run=True)
    assert dry.dry_run and (dry.traces_matched, dry.traces_deleted) == (1, 2)
    assert (await admin.get_trace("forget", first.id)).id == first.id
    receipt = await admin.forget_traces("forget", [second.id], reason="GDPR request 7")
    assert (receipt.actor, receipt.reason, receipt.traces_matched, receipt.traces_deleted) == (
        "ops",
        "GDPR request 7",
        1,
        2,
    )
    assert receipt.vectors_deleted == 2 and [n.namespace for n in receipt.namespaces] == ["forget"]
    for gone in (first.id, second.id):
        await refused(admin.get_trace("forget", gone), NotFoundError, "TRACE_NOT_FOUND")
    stored = await vectors_as(mesh, ADMIN).get_vectors(collection_name("forget"), [first.id, second.id, other.id])
    assert [r.id for r in stored] == [other.id]
    hits = await admin.search_traces("Alice phone number", namespaces=["forget"], k=5, include_superseded=True)
    assert [h.trace.id for h in hits] == [other.id]
    retry = await admin.forget_traces("forget", [second.id], reason="GDPR request 7")
    assert (retry.traces_deleted, retry.traces_not_found) == (0, 1)


async def test_forget_by_filter_and_by_source_rows(mesh: RunningMesh, admin: AsyncMemoryClient) -> None:
    keep = (await admin.add_trace("sources", "kept", metadata={"source_dataset": "people", "source_key": "2"})).trace
    await admin.add_trace("sources", "row one", metadata={"source_dataset": "people", "source_key": "1"})
    await admin.add_trace("sources-2", "row one too", metadata={"source_dataset": "people", "source_key": "1"})
    await admin.add_trace("sources", "temp", tags=["scratch"])
    await refused(admin.forget_matching("sources", trace_filter(), reason="wipe"), InvalidArgumentError, "EMPTY_FILTER")
    scratch = await admin.forget_matching("sources", trace_filter(tags=["scratch"]), reason="cleanup")
    assert scratch.traces_deleted == 1
    await refused(
        memory_as(mesh, WRITER).forget_source_rows("people", ["1"], reason="erasure"),
        PermissionDeniedError,
        "ADMIN_REQUIRED",
    )
    receipt = await admin.forget_source_rows("people", ["1"], reason="erasure", erasure_id="er-1")
    assert (receipt.traces_deleted, receipt.erasure_id) == (2, "er-1")
    assert {n.namespace for n in receipt.namespaces} == {"sources", "sources-2"}
    left = await admin.list_traces("sources")
    assert [t.id for t in left.traces] == [keep.id]


async def test_a_hard_erasure_of_dataset_rows_forgets_the_traces_that_reference_them(
    mesh: RunningMesh, admin: AsyncMemoryClient, tmp_path: Path
) -> None:
    await query_client(mesh, ADMIN).ingest_file(sample_file(tmp_path, "workers", "csv"), "workers")
    about_3 = (
        await admin.add_trace("hr", "Worker 3 asked for night shifts.", metadata=source_row("workers", "3"))
    ).trace
    about_4 = (
        await admin.add_trace("hr", "Worker 4 is forklift certified.", metadata=source_row("workers", "4"))
    ).trace
    revised = (await admin.revise_trace("hr", about_3.id, "Worker 3 now prefers day shifts.")).trace
    elsewhere = (
        await admin.add_trace("hr-archive", "Worker 3 joined in 2024.", metadata=source_row("workers", "3"))
    ).trace
    receipt = await mesh.catalog.erase_rows("workers", "worker_id", ["3"], mode="hard", reason="erasure request")
    assert [(d.kind, d.target, d.deleted_count) for d in receipt.downstream] == [("memory_namespace", "*", 3)]
    for namespace, gone in (("hr", about_3.id), ("hr", revised.id), ("hr-archive", elsewhere.id)):
        await refused(admin.get_trace(namespace, gone), NotFoundError, "TRACE_NOT_FOUND")
    assert (await admin.get_trace("hr", about_4.id)).id == about_4.id
    # A namespace registered as derived from the dataset is forgotten from first; the sweep of
    # every namespace then finds the rest.
    await mesh.catalog.register_derivation("workers", "memory_namespace", "hr", "worker_id")
    await admin.add_trace("hr-archive", "Worker 4 retired.", metadata=source_row("workers", "4"))
    receipt = await mesh.catalog.erase_rows("workers", "worker_id", ["4"], mode="hard", reason="erasure request")
    assert sorted((d.kind, d.target, d.deleted_count) for d in receipt.downstream) == [
        ("memory_namespace", "*", 1),
        ("memory_namespace", "hr", 1),
    ]


def source_row(dataset: str, key: str) -> dict[str, str]:
    return {"source_dataset": dataset, "source_key": key}


# -- reindex ---------------------------------------------------------------------------------------


async def test_reindex_rebuilds_a_lost_collection_from_the_stored_text(
    mesh: RunningMesh, admin: AsyncMemoryClient
) -> None:
    trace = (await admin.add_trace("rebuild", "The fire exit is behind the kitchen.")).trace
    await vectors_as(mesh, ADMIN).delete_collection(collection_name("rebuild"))
    events = [e async for e in admin.reindex(["rebuild"])]
    summary = events[-1].summary
    assert events[-1].HasField("summary") and events[0].HasField("progress")
    assert (summary.collections_created, summary.traces_scanned, summary.vectors_written) == (1, 1, 1)
    hits = await admin.search_traces("where is the fire exit", namespaces=["rebuild"], k=1)
    assert hits[0].trace.id == trace.id
    again = await admin.reindex_summary(["rebuild"])
    assert (again.collections_created, again.vectors_written) == (0, 0)
    full = await admin.reindex_summary(["rebuild"], full=True)
    assert full.vectors_written == 1
    await refused(memory_as(mesh, WRITER).reindex_summary(["rebuild"]), PermissionDeniedError, "ADMIN_REQUIRED")


async def test_a_search_that_finds_a_collection_lost_rebuilds_it(mesh: RunningMesh, admin: AsyncMemoryClient) -> None:
    trace = (await admin.add_trace("lost", "The spare projector is in room 4B.")).trace
    await vectors_as(mesh, ADMIN).delete_collection(collection_name("lost"))
    once = AsyncMemoryClient(mesh.channel, timeout_s=60, retry=RetryPolicy(attempts=1), metadata=token_metadata(ADMIN))
    await refused(
        once.search_traces("where is the projector", namespaces=["lost"]), UnavailableError, "VECTORS_REBUILDING"
    )
    for _ in range(100):
        with contextlib.suppress(UnavailableError):
            hits = await admin.search_traces("where is the projector", namespaces=["lost"], k=1)
            if hits:
                break
        await asyncio.sleep(0.1)
    assert hits[0].trace.id == trace.id


async def test_concurrent_adds_all_land_with_their_vectors(admin: AsyncMemoryClient) -> None:
    texts = [
        f"Ticket {i}: the {word} in building {i} needs attention."
        for i, word in enumerate(
            ["elevator", "heating", "roof", "lights", "door", "window", "boiler", "carpet", "sink", "fan"] * 2
        )
    ]
    added = await asyncio.gather(*(admin.add_trace("burst", t) for t in texts))
    assert len({a.trace.id for a in added}) == len(texts)
    hits = await admin.search_traces("the boiler in building 6", namespaces=["burst"], k=50)
    assert {h.trace.id for h in hits} == {a.trace.id for a in added}
    assert hits[0].trace.content == texts[6]


# -- the playbook ----------------------------------------------------------------------------------


async def test_recording_validates_and_rerecording_updates(admin: AsyncMemoryClient) -> None:
    first = await admin.record_playbook("pb-basic", "refund policy?", KB, "returns", 0.5, role="agent", tags=["t"])
    again = await admin.record_playbook("pb-basic", "refund policy?", KB, "returns", 0.9, role="agent")
    assert first.created and not again.created and again.entry.id == first.entry.id and again.entry.score == 0.9
    await refused(
        admin.record_playbook("pb-basic", "q", KB, "returns", 1.5), InvalidArgumentError, "SCORE_OUT_OF_RANGE", "score"
    )
    await refused(
        admin.record_playbook("pb-basic", " ", KB, "returns", 0.5), InvalidArgumentError, "EMPTY_QUERY", "query"
    )
    await refused(
        admin.record_playbook("pb-basic", "q", KB, "", 0.5), InvalidArgumentError, "EMPTY_ANSWER_ID", "answer_id"
    )
    await refused(admin.record_playbook("pb-basic", "q", "no_such", "x", 0.5), NotFoundError, "COLLECTION_NOT_FOUND")
    batch = await admin.record_playbook_batch(
        [
            playbook_record("pb-basic", "opening hours?", KB, "hours", 0.7),
            playbook_record("pb-basic", "opening hours?", KB, "hours", -0.1),
            playbook_record("pb-basic", "shipping time?", "no_such", "shipping", 0.7),
            playbook_record("pb-basic", "shipping time?", KB, "shipping", 0.6),
        ]
    )
    assert (batch.recorded_count, batch.failed_count) == (2, 2)
    assert [r.WhichOneof("result") for r in batch.results] == ["entry", "error", "error", "entry"]
    assert (batch.results[1].error.reason, batch.results[1].error.field) == ("SCORE_OUT_OF_RANGE", "score")
    assert batch.results[2].error.reason == "COLLECTION_NOT_FOUND"
    listed = await admin.list_playbook("pb-basic")
    assert [e.answer_id for e in listed.entries] == ["shipping", "hours", "returns"]
    page = await admin.list_playbook("pb-basic", page_size=2)
    rest = await admin.list_playbook("pb-basic", page_size=2, page_token=page.next_page_token)
    assert [e.id for e in [*page.entries, *rest.entries]] == [e.id for e in listed.entries]
    assert rest.next_page_token == ""
    assert [
        e.answer_id for e in (await admin.list_playbook("pb-basic", answer_collection=KB, tags=["t"])).entries
    ] == []
    assert [e.answer_id for e in (await admin.list_playbook("pb-basic", role="agent")).entries] == ["returns"]
    await admin.delete_playbook_entry("pb-basic", first.entry.id)
    assert await admin.lookup_playbook("pb-basic", text="refund policy?", role="agent") == []
    await refused(admin.delete_playbook_entry("pb-basic", first.entry.id), NotFoundError, "PLAYBOOK_ENTRY_NOT_FOUND")


async def test_lookup_gates_roles_and_checks_the_vector(admin: AsyncMemoryClient) -> None:
    await admin.record_playbook("pb-lookup", "How do I get my money back?", KB, "returns", 0.8, role="support")
    matches = await admin.lookup_playbook("pb-lookup", text="How can I get a refund?", role="support")
    assert [m.entry.answer_id for m in matches] == ["returns"] and 0 <= matches[0].distance < 0.5
    assert await admin.lookup_playbook("pb-lookup", text="How can I get a refund?", role="sales") == []
    assert (
        await admin.lookup_playbook(
            "pb-lookup", text="How can I get a refund?", role="support", exclude_answer_ids=["returns"]
        )
        == []
    )
    assert await admin.lookup_playbook("pb-lookup", text="Which planet is largest?", role="support") == []
    await refused(admin.lookup_playbook("pb-lookup", vector=[1.0, 0.0]), InvalidArgumentError, "DIMENSION_MISMATCH")
    await refused(admin.lookup_playbook("pb-lookup", vector=[0.0] * 384), InvalidArgumentError, "INVALID_VECTOR")
    await refused(
        admin.lookup_playbook("pb-lookup", text="x", max_distance=-1), InvalidArgumentError, "INVALID_MAX_DISTANCE"
    )


async def test_the_playbook_lifts_answers_that_worked_in_vector_search(
    mesh: RunningMesh, admin: AsyncMemoryClient
) -> None:
    vectors = vectors_as(mesh, ADMIN)
    question = "When does the shop open in the morning?"
    plain = await vectors.search(KB, text=question, k=3)
    before = {h.id: h.distance for h in plain.hits}
    assert plain.hits[0].id == "hours"
    await admin.record_playbook("pb-e2e", question, KB, "returns", 0.8, role="agent")
    boosted = await vectors.search(KB, text=question, k=3, playbook=playbook(namespace="pb-e2e", role="agent"))
    got = {h.id: h for h in boosted.hits}
    assert got["returns"].playbook.action == vector_pb.PLAYBOOK_ACTION_BOOSTED
    assert got["returns"].distance == pytest.approx(before["returns"] * (1 - 0.5 * 0.8), abs=1e-5)
    assert got["returns"].playbook.distance_before == pytest.approx(before["returns"], abs=1e-5)
    assert not got["hours"].HasField("playbook")

    # A close paraphrase of a recorded query gets the recorded answer injected when it was missing.
    await admin.record_playbook("pb-e2e", "How long does delivery take?", KB, "hours", 1.0, role="agent")
    paraphrase = "How long will delivery take?"
    (match,) = await admin.lookup_playbook("pb-e2e", text=paraphrase, role="agent", answer_collections=[KB])
    assert match.entry.answer_id == "hours" and match.distance < 0.2
    unaided = await vectors.search(KB, text=paraphrase, k=1)
    assert [h.id for h in unaided.hits] == ["shipping"]
    options = playbook(namespace="pb-e2e", role="agent", inject_threshold=0.2)
    found = await vectors.search(KB, text=paraphrase, k=1, playbook=options)
    assert [(h.id, h.playbook.action) for h in found.hits] == [("hours", vector_pb.PLAYBOOK_ACTION_INJECTED)]
    assert found.hits[0].distance == pytest.approx(match.distance, abs=1e-5)
    unrelated = await vectors.search(KB, text="What is the boiling point of water?", k=3, playbook=options)
    assert not any(h.HasField("playbook") for h in unrelated.hits)
    other_role = await vectors.search(KB, text=paraphrase, k=3, playbook=playbook(namespace="pb-e2e", role="billing"))
    assert not any(h.HasField("playbook") for h in other_role.hits)
    await refused(
        memory_as(mesh, AGENT).lookup_playbook("pb-e2e", text=paraphrase),
        PermissionDeniedError,
        "NAMESPACE_NOT_ALLOWED",
    )


# -- restart ---------------------------------------------------------------------------------------


async def test_a_restart_restores_traces_search_and_the_playbook(tmp_path: Path, catalog_url: str) -> None:
    """On both databases: SQLite (the default) and PostgreSQL (the catalog's URL, memory's tables)."""
    config = mesh_config(tmp_path / "data", catalog_url)
    first = await start_mesh(config, None, ADMIN)
    try:
        client = memory_as(first, ADMIN)
        trace = (await client.add_trace("durable", "The spare key is under the blue pot.", idempotent=True)).trace
        await vectors_as(first, ADMIN).create_collection(KB)
        await client.record_playbook("durable", "where is the spare key", KB, "doc-1", 0.6)
    finally:
        await first.stop()
    second = await start_mesh(config, None, ADMIN)
    try:
        client = memory_as(second, ADMIN)
        hits = await client.search_traces("where can I find the spare key", namespaces=["durable"], k=1)
        assert hits[0].trace.id == trace.id
        replay = await client.add_trace("durable", "The spare key is under the blue pot.", idempotent=True)
        assert replay.replayed and replay.trace.replay_count == 1
        (match,) = await client.lookup_playbook("durable", text="where is the spare key")
        assert match.entry.answer_id == "doc-1" and match.distance == pytest.approx(0.0, abs=1e-5)
    finally:
        await second.stop()
