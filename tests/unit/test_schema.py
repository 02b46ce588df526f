from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.client.arrow import schema_ipc
from lakehouse.server.catalog.schema import (
    SchemaDiff,
    decode_schema,
    decode_table,
    diff,
    fingerprint,
    is_additive,
)
from lakehouse.server.common.errors import Code, InvalidArgument

BASE = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])


def schema(*fields: tuple[str, pa.DataType] | pa.Field) -> pa.Schema:
    return pa.schema(list(fields))


def stream_with_rows() -> bytes:
    sink = pa.BufferOutputStream()
    table = pa.table({"id": [1, 2], "name": ["a", "b"]})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# --- decode_schema -----------------------------------------------------------------------


def test_encoded_schema_decodes_to_the_same_schema_with_metadata() -> None:
    original = BASE.with_metadata({"owner": "ops"})

    decoded = decode_schema(schema_ipc(original), "dataset.schema")

    assert decoded.equals(original, check_metadata=True)


def test_a_stream_with_rows_yields_its_schema() -> None:
    assert decode_schema(stream_with_rows(), "schema").names == ["id", "name"]


@pytest.mark.parametrize(
    ("ipc", "why"),
    [
        pytest.param(b"", "an Arrow schema is required", id="empty"),
        pytest.param(b"nope", "not an Arrow IPC stream", id="garbage"),
        pytest.param(b"\xff" * 16, "not an Arrow IPC stream", id="negative-length"),
        pytest.param(b"\x00" * 8, "not an Arrow IPC stream", id="zeros"),
        pytest.param(b'{"fields": []}', "not an Arrow IPC stream", id="json"),
        pytest.param(schema_ipc(pa.schema([])), "the schema has no columns", id="no-columns"),
        pytest.param(
            schema_ipc(schema(("a", pa.int64()), ("a", pa.string()))), "duplicate column names: a", id="duplicate"
        ),
        pytest.param(
            schema_ipc(
                schema(("b", pa.int8()), ("a", pa.int8()), ("b", pa.int8()), ("a", pa.int8()), ("c", pa.int8()))
            ),
            "duplicate column names: a, b",
            id="several-duplicates-sorted",
        ),
    ],
)
def test_bad_schema_bytes_are_invalid_schema_naming_the_field(ipc: bytes, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_schema(ipc, "dataset.schema")

    error = info.value
    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "INVALID_SCHEMA"
    assert error.violations[0].field == "dataset.schema"
    assert why in error.violations[0].description
    assert error.message.startswith("dataset.schema: ")


def test_column_names_that_differ_only_in_case_are_not_duplicates() -> None:
    assert decode_schema(schema_ipc(schema(("a", pa.int64()), ("A", pa.int64()))), "schema").names == ["a", "A"]


# --- decode_table (samples) --------------------------------------------------------------------


def test_empty_sample_is_none_and_rows_round_trip() -> None:
    assert decode_table(b"", "sample") is None
    table = decode_table(stream_with_rows(), "sample")
    assert table is not None
    assert table.to_pydict() == {"id": [1, 2], "name": ["a", "b"]}


def test_garbled_sample_is_invalid_sample_naming_the_field() -> None:
    with pytest.raises(InvalidArgument) as info:
        decode_table(b"nope", "sample")

    assert info.value.reason == "INVALID_SAMPLE"
    assert info.value.violations[0].field == "sample"


# --- fingerprint -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "same",
    [
        pytest.param(BASE, id="itself"),
        pytest.param(BASE.with_metadata({"k": "v"}), id="schema-metadata"),
        pytest.param(BASE.set(0, BASE.field(0).with_metadata({"doc": "key"})), id="field-metadata"),
        pytest.param(BASE.set(0, BASE.field(0).with_nullable(False)), id="nullability"),
        pytest.param(decode_schema(schema_ipc(BASE), "schema"), id="after-round-trip"),
    ],
)
def test_fingerprint_ignores_nullability_and_metadata(same: pa.Schema) -> None:
    assert fingerprint(same) == fingerprint(BASE)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(schema(("id", pa.int32()), ("name", pa.string()), ("amount", pa.float64())), id="type"),
        pytest.param(schema(("key", pa.int64()), ("name", pa.string()), ("amount", pa.float64())), id="name"),
        pytest.param(schema(("name", pa.string()), ("id", pa.int64()), ("amount", pa.float64())), id="order"),
        pytest.param(BASE.append(pa.field("extra", pa.string())), id="added"),
        pytest.param(BASE.remove(2), id="removed"),
        pytest.param(
            schema(("id", pa.int64()), ("name", pa.large_string()), ("amount", pa.float64())), id="large-string"
        ),
        pytest.param(schema(("id", pa.int64()), ("name", pa.string()), ("amount", pa.decimal128(10, 2))), id="decimal"),
    ],
)
def test_fingerprint_changes_with_names_types_and_order(other: pa.Schema) -> None:
    assert fingerprint(other) != fingerprint(BASE)


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    value = fingerprint(BASE)

    assert len(value) == 64
    assert int(value, 16) >= 0
    assert value == fingerprint(BASE)


def test_fingerprint_of_different_schemas_never_collides_through_separators() -> None:
    two_columns = schema(("a", pa.int64()), ("b", pa.int64()))
    one_column = schema(("a\x1fint64\x1eb", pa.int64()))

    assert fingerprint(one_column) != fingerprint(two_columns)


# --- diff -------------------------------------------------------------------------------------------


DIFFS = [
    pytest.param(BASE, SchemaDiff((), (), ()), "", id="identical"),
    pytest.param(
        BASE.set(1, BASE.field(1).with_nullable(False)).with_metadata({"k": "v"}),
        SchemaDiff((), (), ()),
        "",
        id="nullability-and-metadata-only",
    ),
    pytest.param(
        BASE.append(pa.field("note", pa.string())),
        SchemaDiff(("note: string",), (), ()),
        "added: note: string",
        id="appended",
    ),
    pytest.param(
        BASE.remove(2),
        SchemaDiff((), ("amount: double",), ()),
        "removed: amount: double",
        id="removed-last",
    ),
    pytest.param(
        BASE.set(0, pa.field("id", pa.string())),
        SchemaDiff((), (), ("id: int64 -> string",)),
        "changed: id: int64 -> string",
        id="type-changed",
    ),
    pytest.param(
        schema(("name", pa.string()), ("id", pa.int64()), ("amount", pa.float64())),
        SchemaDiff((), (), ("name: position 1 -> 0", "id: position 0 -> 1")),
        "changed: name: position 1 -> 0, id: position 0 -> 1",
        id="swapped",
    ),
    pytest.param(
        schema(("id", pa.int64()), ("amount", pa.float32()), ("email", pa.string())),
        SchemaDiff(("email: string",), ("name: string",), ("amount: double -> float",)),
        "added: email: string; removed: name: string; changed: amount: double -> float",
        id="everything",
    ),
    pytest.param(
        schema(("name", pa.string()), ("amount", pa.float64()), ("id2", pa.int64())),
        SchemaDiff(("id2: int64",), ("id: int64",), ("name: position 1 -> 0", "amount: position 2 -> 1")),
        "added: id2: int64; removed: id: int64; changed: name: position 1 -> 0, amount: position 2 -> 1",
        id="removed-first-shifts-the-rest",
    ),
]


@pytest.mark.parametrize(("proposed", "expected", "summary"), DIFFS)
def test_diff_reports_added_removed_and_changed(proposed: pa.Schema, expected: SchemaDiff, summary: str) -> None:
    change = diff(BASE, proposed)

    assert change == expected
    assert change.is_empty is (expected == SchemaDiff((), (), ()))
    assert change.summary() == summary


# --- is_additive -----------------------------------------------------------------------------------

ADDITIVE = [
    pytest.param(BASE, True, id="unchanged"),
    pytest.param(BASE.append(pa.field("note", pa.string())), True, id="append-nullable"),
    pytest.param(
        BASE.append(pa.field("note", pa.string())).append(pa.field("tags", pa.list_(pa.string()))),
        True,
        id="append-two-nullable",
    ),
    pytest.param(BASE.with_metadata({"k": "v"}), True, id="metadata-only"),
    pytest.param(BASE.append(pa.field("note", pa.string(), nullable=False)), False, id="append-not-null"),
    pytest.param(
        BASE.append(pa.field("a", pa.string())).append(pa.field("b", pa.string(), nullable=False)),
        False,
        id="append-nullable-then-not-null",
    ),
    pytest.param(BASE.insert(0, pa.field("note", pa.string())), False, id="insert-first"),
    pytest.param(BASE.insert(1, pa.field("note", pa.string())), False, id="insert-middle"),
    pytest.param(BASE.remove(2), False, id="remove-last"),
    pytest.param(BASE.remove(2).append(pa.field("note", pa.string())), False, id="replace-last"),
    pytest.param(BASE.set(2, pa.field("amount", pa.float32())), False, id="narrow-type"),
    pytest.param(BASE.set(0, pa.field("id", pa.string())), False, id="change-type"),
    pytest.param(BASE.set(1, pa.field("label", pa.string())), False, id="rename"),
    pytest.param(schema(("name", pa.string()), ("id", pa.int64()), ("amount", pa.float64())), False, id="reorder"),
]


@pytest.mark.parametrize(("proposed", "additive"), ADDITIVE)
def test_only_appending_nullable_columns_is_additive(proposed: pa.Schema, additive: bool) -> None:
    assert is_additive(BASE, proposed) is additive
