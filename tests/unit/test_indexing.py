"""Indexing rules that need no server: recall with ties, row keys, request checks, the state file,
and how Flight failures of the query service reach the caller."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from lakehouse.server.common.errors import Code, InvalidArgument, PermissionDenied
from lakehouse.server.vector.gateways import Hit, Record
from lakehouse.server.vector.indexing import (
    Chunking,
    IndexRequest,
    IndexState,
    IndexStates,
    _check_request,
    _collect_keys,
    _ExactSearch,
)
from lakehouse.server.vector.peers import _flight_error


def _records(vectors: dict[str, list[float]]) -> list[Record]:
    return [Record(id, np.asarray(v, dtype=np.float32)) for id, v in vectors.items()]


def _hits(*ids: str) -> list[Hit]:
    return [Hit(id, 0.0, "", {}) for id in ids]


def test_recall_counts_a_tie_at_the_kth_distance_as_found() -> None:
    vectors = {"a": [1, 0], "b": [0.9, 0.1], "b2": [0.9, 0.1], "c": [0, 1]}
    query = np.asarray([[1.0, 0.0]], dtype=np.float32)
    # b and b2 are the same vector: either is a right second neighbour.
    for second in ("b", "b2"):
        exact = _ExactSearch(query, 2, "COSINE", [_hits("a", second)])
        for batch in (_records({k: vectors[k]}) for k in vectors):  # fed one vector at a time
            exact.add(batch)
        assert exact.recall() == 1.0
    missed = _ExactSearch(query, 2, "COSINE", [_hits("a", "c")])
    missed.add(_records(vectors))
    assert missed.recall() == 0.5


def test_recall_with_fewer_vectors_than_k_compares_what_there_is() -> None:
    exact = _ExactSearch(np.asarray([[0.0, 0.0]], dtype=np.float32), 10, "L2", [_hits("x", "y")])
    exact.add(_records({"x": [1, 0], "y": [0, 2]}))
    assert exact.recall() == 1.0


def _keys(values: list[object]) -> set[str]:
    seen: set[str] = set()
    _collect_keys(pa.array(values), seen, "note_id")
    return seen


def test_row_keys_are_text_unique_and_never_quoted_back() -> None:
    assert _keys([1, 22, 333]) == {"1", "22", "333"}
    with pytest.raises(InvalidArgument) as duplicate:
        _keys(["alice@example.com", "alice@example.com"])
    assert duplicate.value.reason == "DUPLICATE_ROW_KEY" and "alice" not in duplicate.value.message
    for bad in ([None, "x"], ["", "x"], ["x" * 300]):
        with pytest.raises(InvalidArgument) as invalid:
            _keys(bad)
        assert invalid.value.reason == "INVALID_ROW_KEY"


def _request(**changes: object) -> IndexRequest:
    fields: dict[str, object] = {
        "dataset": "notes",
        "id_column": "note_id",
        "text_columns": ("text",),
        "collection": "notes_idx",
    }
    fields.update(changes)
    return IndexRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"collection": "9lives"}, "INVALID_COLLECTION_NAME", "collection"),
        ({"text_columns": ()}, "INVALID_ARGUMENT", "text_columns"),
        ({"id_column": ""}, "INVALID_ARGUMENT", "id_column"),
        ({"metadata_columns": ("author", "source_key")}, "RESERVED_FIELD", "metadata_columns[1]"),
    ],
)
def test_requests_are_checked_field_by_field(changes: dict[str, object], reason: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _check_request(_request(**changes))
    assert refused.value.reason == reason and refused.value.violations[0].field == field


def test_chunking_is_on_only_with_a_token_budget() -> None:
    assert not _request().chunked and not _request(chunking=Chunking(0, 0)).chunked
    assert _request(chunking=Chunking(64, 8)).chunked


def test_state_files_are_replaced_whole_and_unreadable_ones_are_ignored(tmp_path: Path) -> None:
    states = IndexStates(tmp_path / "index-state")
    state = IndexState("c", "", "notes", "notes", "note_id", ("text",), ("author",), (64, 8), "m", covered_version=3)
    states.save(state)
    states.save(replace(state, covered_version=4, run="FAILED", last_error="cancelled"))
    assert states.load("c") == replace(state, covered_version=4, run="FAILED", last_error="cancelled")
    assert [p.name for p in (tmp_path / "index-state").iterdir()] == ["c.json"]
    states.path("c").write_text("{not json")
    assert states.load("c") is None and states.load("missing") is None


def test_flight_failures_keep_the_query_services_reason() -> None:
    """Messages as a Flight client reports them: the server's text, then Flight's own details."""
    detail = ". Detail: Unauthorized. gRPC client debug context: PERMISSION_DENIED:... Client context: IOError"
    denied = _flight_error(flight.FlightUnauthorizedError(f"TABLE_NOT_ALLOWED: table 'notes' is not bound{detail}"))
    assert isinstance(denied, PermissionDenied) and denied.reason == "TABLE_NOT_ALLOWED"
    assert denied.message == "table 'notes' is not bound"
    missing = _flight_error(pa.lib.ArrowKeyError("'VERSION_NOT_FOUND: no version 9'. Detail: Python exception"))
    assert (missing.code, missing.reason, missing.message) == (Code.NOT_FOUND, "VERSION_NOT_FOUND", "no version 9")
    timed_out = _flight_error(flight.FlightTimedOutError("QUERY_TIMEOUT: the stream ran past the limit"))
    assert (timed_out.code, timed_out.reason) == (Code.DEADLINE_EXCEEDED, "QUERY_TIMEOUT")
    busy = _flight_error(flight.FlightUnavailableError("TOO_MANY_STREAMS: busy. Detail: Unavailable"))
    assert (busy.code, busy.reason) == (Code.UNAVAILABLE, "QUERY_UNAVAILABLE") and "TOO_MANY_STREAMS" in busy.message
