"""The memory store on both databases it supports: SQLite (WAL) and PostgreSQL (a throwaway
cluster), through the same SQLAlchemy Core code the service runs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from lakehouse.server.memory.service import collection_name, content_digest
from lakehouse.server.memory.store import (
    Filter,
    MemoryStore,
    PlaybookRow,
    TraceRow,
    Visibility,
    create_memory_engine,
    now_us,
)


@pytest.fixture
def store(catalog_url: str) -> Iterator[MemoryStore]:
    opened = MemoryStore(create_memory_engine(catalog_url))
    opened.create_schema()
    opened.create_schema()  # a second start finds the tables
    yield opened
    opened.close()


def trace(trace_id: str, content: str, namespace: str = "ns", **changes: object) -> TraceRow:
    stamp = now_us()
    fields: dict[str, object] = {
        "id": trace_id,
        "namespace": namespace,
        "content": content,
        "metadata": {},
        "tags": (),
        "version": 1,
        "replay_count": 0,
        "retired": False,
        "retire_reason": "",
        "retire_us": None,
        "revises_id": "",
        "revised_by_id": "",
        "idempotency_key": "",
        "content_sha256": content_digest(content),
        "create_us": stamp,
        "update_us": stamp,
    } | changes
    return TraceRow(**fields)  # type: ignore[arg-type]


def test_adds_replays_and_filters(store: MemoryStore) -> None:
    first, replayed = store.add(
        trace("a" * 32, "hello", tags=("x",), metadata={"k": "v"}), collection_name("ns"), "key-1"
    )
    assert not replayed
    again, replayed = store.add(trace("b" * 32, "hello"), collection_name("ns"), "key-1")
    assert replayed and again.id == first.id and again.replay_count == 1
    store.add(trace("c" * 32, "other"), collection_name("ns"), None)
    assert store.namespaces() == {"ns": collection_name("ns")}
    tagged = store.list_traces("ns", 10, None, Filter(tags=("x",)), Visibility())
    assert [t.id for t in tagged] == [first.id]
    by_meta = store.matching_ids(["ns"], Filter(metadata={"k": "v"}), Visibility(), 10)
    assert by_meta == [first.id]
    assert {t.id for t in store.scan("ns", "", 10) if not t.indexed} == {"a" * 32, "c" * 32}
    store.mark_indexed([("a" * 32, 1), ("c" * 32, 7)])  # a stale version marks nothing
    assert {t.id for t in store.scan("ns", "", 10) if t.indexed} == {"a" * 32}


def test_forgetting_leaves_orphans_until_cleared_and_keeps_the_receipt(store: MemoryStore) -> None:
    row, _ = store.add(
        trace("d" * 32, "to forget", metadata={"source_dataset": "people", "source_key": "7"}), "c", None
    )
    matched, missing = store.select_for_forget((), None, None, ("people", ["7"], []))
    assert [t.id for t in matched] == [row.id] and missing == 0
    store.forget(matched, "r" * 32, {"reason": "test"})
    assert store.get(row.id) is None and store.orphans("ns") == [row.id]
    store.clear_orphans([row.id])
    assert store.orphans("ns") == []


def test_playbook_entries_persist_with_their_vectors(store: MemoryStore) -> None:
    vector = np.arange(4, dtype=np.float32)
    entry = PlaybookRow("e" * 24, "ns", "q", "kb", "doc", 0.5, "agent", ("t",), "model", vector, now_us(), now_us())
    ((_, created),) = store.record_playbook([entry])
    assert created
    ((_, created),) = store.record_playbook([entry])
    assert not created
    (loaded,) = store.playbook_entries()
    assert loaded.tags == ("t",) and np.array_equal(loaded.vector, vector)
    assert store.delete_playbook(entry.id) and store.get_playbook(entry.id) is None


def test_history_stops_at_a_cycle(store: MemoryStore) -> None:
    # The API only ever makes linear chains; a damaged database must still not loop the walk.
    a, _ = store.add(trace("a" * 32, "first", revises_id="b" * 32), "c", None)
    store.add(trace("b" * 32, "second", revises_id="a" * 32), "c", None)
    walked, truncated = store.history(a.id, 100)
    assert [t.id for t in walked] == ["a" * 32, "b" * 32] and truncated
