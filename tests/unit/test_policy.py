"""The SQL the query service builds for views and tombstones, run on a real DuckDB; key matching
run on a real Delta table; and the role table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.server.common import roles
from lakehouse.server.common.auth import Principal
from lakehouse.server.common.errors import InvalidArgument, PermissionDenied
from lakehouse.server.query.policy import (
    SALT_TABLE,
    Redaction,
    Tombstones,
    ViewRule,
    key_match,
    tombstone_keys,
    view_schema,
    view_sql,
    without_tombstones,
)

PEOPLE = pa.table(
    {
        "id": pa.array([1, 2, 3, None], pa.int64()),
        "name": ["Ann", "Bartholomew", "Zoë Ünal", "Al"],
        "email": ["ann@x.org", "bart@x.org", None, "al@x.org"],
        "age": pa.array([31, 45, 28, 60], pa.int32()),
    }
)


def run(sql: str, tombstones: Tombstones | None = None, salt: str = "pepper") -> list[dict]:
    db = duckdb.connect()
    db.register("people", PEOPLE)
    db.register(SALT_TABLE, pa.table({"s": [salt]}))
    if tombstones is not None:
        db.register("keys", tombstone_keys(tombstones, PEOPLE.schema))
    return db.sql(sql).to_arrow_table().to_pylist()


def rule(**kw: object) -> ViewRule:
    base = {"name": "v", "base": "people", "columns": ("id", "name", "email", "age")}
    return ViewRule(**{**base, **kw})  # type: ignore[arg-type]


def test_mask_keeps_the_ends_and_masks_short_values_whole() -> None:
    got = run(view_sql(rule(columns=("name",), redactions={"name": Redaction("mask", 2, 1)}), "people"))
    assert [r["name"] for r in got] == ["***", "Ba********w", "Zo*****l", "**"]


def test_hash_is_salted_sha256_of_the_text_and_null_stays_null() -> None:
    got = run(view_sql(rule(columns=("email", "age"), redactions={"email": Redaction("hash")}), "people"))
    assert got[0]["email"] == hashlib.sha256(b"pepperann@x.org").hexdigest()
    assert got[2]["email"] is None
    other = run(view_sql(rule(columns=("email",), redactions={"email": Redaction("hash")}), "people"), salt="salt")
    assert other[0]["email"] != got[0]["email"]


def test_null_redaction_keeps_the_column_type() -> None:
    view = rule(columns=("id", "age"), redactions={"age": Redaction("null")})
    db = duckdb.connect()
    db.register("people", PEOPLE)
    table = db.sql(view_sql(view, "people")).to_arrow_table()
    assert table.schema.field("age").type == pa.int32()
    assert table.column("age").null_count == 4
    assert view_schema(view, PEOPLE.schema).field("age").type == pa.int32()


def test_row_filter_reads_base_columns_and_whitelist_drops_the_rest() -> None:
    view = rule(columns=("name",), row_filter="age > 30 AND email IS NOT NULL")
    assert run(view_sql(view, "people")) == [{"name": "Ann"}, {"name": "Bartholomew"}, {"name": "Al"}]


def test_tombstones_hide_their_keys_but_never_rows_with_a_null_key() -> None:
    stones = Tombstones("id", ("2", "not-a-number", "99"))
    got = run(without_tombstones("people", stones, "keys"), stones)
    assert [r["id"] for r in got] == [1, 3, None]
    assert without_tombstones("people", None, "keys") == "SELECT * FROM people"


def test_key_match_types_values_and_escapes_them_for_delta(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as err:
        key_match("id", PEOPLE.schema, ["1", "x"], strict=True)
    assert err.value.reason == "INVALID_KEY_VALUE"
    assert key_match("id", PEOPLE.schema, ["x"], strict=False) is None
    with pytest.raises(InvalidArgument) as err:
        key_match("age", PEOPLE.schema, [str(2**40)], strict=True)  # out of int32 range
    assert err.value.reason == "INVALID_KEY_VALUE"
    with pytest.raises(InvalidArgument) as err:
        key_match("missing", PEOPLE.schema, ["1"], strict=True)
    assert err.value.reason == "UNKNOWN_COLUMN"
    with pytest.raises(InvalidArgument) as err:
        key_match("rate", pa.schema([("rate", pa.float64())]), ["1.5"], strict=True)
    assert err.value.reason == "UNSUPPORTED_KEY_TYPE"
    table = pa.table({"k": ["o'brien", "x') OR ('1'='1", "plain"]})
    write_deltalake(tmp_path / "t", table)
    match = key_match("k", table.schema, ["x') OR ('1'='1"], strict=True)
    assert match is not None
    DeltaTable(tmp_path / "t").delete(match.predicate())
    assert sorted(DeltaTable(tmp_path / "t").to_pyarrow_table().column("k").to_pylist()) == ["o'brien", "plain"]


@pytest.mark.parametrize(
    ("role", "method", "allowed"),
    [
        ("reader", "/lakehouse.query.v1.QueryService/IngestFile", False),
        ("reader", "/lakehouse.query.v1.QueryService/Query", True),
        ("reader", "/lakehouse.catalog.v1.CatalogService/ListTombstones", False),
        ("writer", "/lakehouse.catalog.v1.CatalogService/ListTombstones", True),
        ("writer", "/lakehouse.catalog.v1.CatalogService/CreateView", True),
        ("writer", "/lakehouse.catalog.v1.CatalogService/EraseRows", False),
        ("writer", "/lakehouse.query.v1.QueryService/DeleteRows", False),
        ("agent", "/lakehouse.catalog.v1.CatalogService/CreateView", False),
        ("agent", "/lakehouse.catalog.v1.CatalogService/CreateProfile", False),
        ("agent", "/lakehouse.catalog.v1.CatalogService/ListEvents", False),
        ("agent", "/lakehouse.storage.v1.StorageService/GetObject", False),
        ("agent", "/lakehouse.query.v1.QueryService/Query", True),
        ("agent", "/lakehouse.memory.v1.MemoryService/AddTrace", True),
        ("agent", "/flight/IngestFile", False),
        ("service", "/lakehouse.catalog.v1.CatalogService/RecordDenials", True),
        ("service", "/lakehouse.query.v1.QueryService/Query", False),
        ("service", "/lakehouse.query.v1.QueryService/IngestFile", True),
        ("service", "/lakehouse.query.v1.QueryService/DeleteRows", False),
        # The memory service keeps its vectors with the mesh's identity.
        ("service", "/lakehouse.vector.v1.VectorService/UpsertVectors", True),
        ("service", "/lakehouse.catalog.v1.CatalogService/GetAccessPolicy", True),
        ("service", "/lakehouse.memory.v1.MemoryService/AddTrace", False),
        ("service", "/lakehouse.catalog.v1.CatalogService/EraseRows", False),
        ("agent", "/lakehouse.memory.v1.MemoryService/ForgetTraces", False),
        ("agent", "/lakehouse.memory.v1.MemoryService/Reindex", False),
        ("admin", "/lakehouse.catalog.v1.CatalogService/RecordDenials", True),
        ("writer", "/lakehouse.catalog.v1.CatalogService/RecordDenials", False),
        ("admin", "/lakehouse.catalog.v1.CatalogService/EraseRows", True),
    ],
)
def test_the_role_table(role: str, method: str, allowed: bool) -> None:
    assert roles.may_call(role, method) is allowed
    principal = Principal("someone", role)
    if allowed:
        roles.require(principal, method)
    else:
        with pytest.raises(PermissionDenied) as err:
            roles.require(principal, method)
        assert err.value.reason == "ROLE_NOT_ALLOWED"
