"""What a principal may read, as the query service enforces it: datasets and AI-safe views by
name, soft tombstones everywhere, redaction inside views.

The catalog decides (GetAccessPolicy); this module turns its answer into the SQL that DuckDB runs.
Every name the caller may read becomes a temporary view. A dataset's view hides tombstoned rows;
an AI-safe view reads its base through an internal name (which user SQL can never reference: the
sandbox allows only readable names), keeps whitelisted columns, applies the row filter to the base
columns and redacts. The hash salt is read from a registered one-row table, never written into
SQL text, so EXPLAIN cannot show it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from lakehouse.server.common.errors import invalid_field
from lakehouse.server.query.gateways import DatasetInfo

SALT_TABLE = "__lakehouse_salt"
_INTERNAL_PREFIX = "__lakehouse_"


@dataclass(frozen=True)
class Redaction:
    kind: str  # "null", "hash" or "mask"
    keep_prefix: int = 0
    keep_suffix: int = 0


@dataclass(frozen=True)
class ViewRule:
    """An AI-safe view as the catalog defines it."""

    name: str
    base: str
    columns: tuple[str, ...]
    row_filter: str = ""
    redactions: Mapping[str, Redaction] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Tombstones:
    """Soft tombstones of one dataset: the rows whose key column holds one of `keys` are hidden."""

    key_column: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class AccessPolicy:
    principal: str
    role: str
    profile: str
    restricted: bool
    datasets: Mapping[str, DatasetInfo]
    """Readable by name, in full."""
    views: Mapping[str, ViewRule]
    bases: Mapping[str, DatasetInfo]
    """Every dataset the readable names read: `datasets` and the bases of `views`."""
    tombstones: Mapping[str, Tombstones]
    collections: tuple[str, ...] = ()
    memory_namespaces: tuple[str, ...] = ()

    @functools.cached_property
    def readable(self) -> frozenset[str]:
        """Every name the principal may query (computed once: each statement's check hashes it)."""
        return frozenset(self.datasets) | frozenset(self.views)

    def base_of(self, name: str) -> DatasetInfo:
        """The dataset a readable name reads."""
        view = self.views.get(name)
        return self.bases[view.base] if view else self.datasets[name]


def internal_name(kind: str, name: str) -> str:
    """A relation name only the service uses: the sandbox refuses it in user SQL."""
    return f"{_INTERNAL_PREFIX}{kind}_{name}"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_schema(rule: ViewRule, base: pa.Schema) -> pa.Schema:
    """The columns a view shows: whitelisted ones, hashed and masked ones as text."""
    fields = []
    for column in rule.columns:
        base_field = base.field(column)
        redaction = rule.redactions.get(column)
        if redaction is not None and redaction.kind in ("hash", "mask"):
            fields.append(pa.field(column, pa.string()))
        else:
            fields.append(base_field.with_nullable(True) if redaction else base_field)
    return pa.schema(fields)


def without_tombstones(source: str, tombstones: Tombstones | None, keys_relation: str) -> str:
    """SQL selecting every row of `source` except the tombstoned ones; the keys are read from
    `keys_relation` (a one-column table `k`, typed like the key column)."""
    if tombstones is None or not tombstones.keys:
        return f"SELECT * FROM {source}"
    key = ident(tombstones.key_column)
    # NOT IN over a subquery is null-sensitive: rows with a null key are never tombstoned.
    return f"SELECT * FROM {source} WHERE {key} IS NULL OR {key} NOT IN (SELECT k FROM {keys_relation})"


def view_sql(rule: ViewRule, rows: str) -> str:
    """SQL of an AI-safe view over `rows` (a relation with the base's columns)."""
    projections = ", ".join(_projection(column, rule.redactions.get(column)) for column in rule.columns)
    where = f" WHERE ({rule.row_filter})" if rule.row_filter else ""
    return f"SELECT {projections} FROM {rows}{where}"


def _projection(column: str, redaction: Redaction | None) -> str:
    name = ident(column)
    if redaction is None:
        return name
    text = f"CAST({name} AS VARCHAR)"
    if redaction.kind == "null":
        return f"CASE WHEN false THEN {name} END AS {name}"  # keeps the column's type
    if redaction.kind == "hash":
        return f"sha256((SELECT s FROM {SALT_TABLE}) || {text}) AS {name}"
    keep, tail = int(redaction.keep_prefix), int(redaction.keep_suffix)
    # Values no longer than what would be kept are masked whole: keeping them would show them.
    return (
        f"CASE WHEN {text} IS NULL THEN NULL WHEN length({text}) <= {keep + tail} THEN repeat('*', length({text})) "
        f"ELSE left({text}, {keep}) || repeat('*', length({text}) - {keep + tail}) || right({text}, {tail}) END "
        f"AS {name}"
    )


@dataclass(frozen=True)
class KeyMatch:
    """Rows whose key column holds one of `values` (typed like the column)."""

    column: str
    values: tuple[int, ...] | tuple[str, ...]

    def predicate(self) -> str:
        """As a Delta (DataFusion SQL) predicate; values are literals, never text spliced in raw."""
        if self.values and isinstance(self.values[0], int):
            literals = ", ".join(str(int(v)) for v in self.values)
        else:
            literals = ", ".join("'" + str(v).replace("'", "''") + "'" for v in self.values)
        return f"{ident(self.column)} IN ({literals})"


def key_match(column: str, schema: pa.Schema, keys: Sequence[str], strict: bool) -> KeyMatch | None:
    """Key values given as text, matched against an integer or text column. Text that cannot be
    of the column's type matches nothing: refused when `strict`, else dropped. None when no value
    is left."""
    if column not in schema.names:
        raise invalid_field(
            "key_column",
            f"{column!r} is not a column; columns: {', '.join(schema.names)}",
            reason="UNKNOWN_COLUMN",
        )
    key_type = schema.field(column).type
    if pa.types.is_integer(key_type):
        values = _integers(keys, key_type, strict)
        return KeyMatch(column, tuple(values)) if values else None
    if pa.types.is_string(key_type) or pa.types.is_large_string(key_type) or pa.types.is_string_view(key_type):
        return KeyMatch(column, tuple(keys)) if keys else None
    raise invalid_field(
        "key_column",
        f"rows can be keyed by an integer or text column only; {column!r} is {key_type}",
        reason="UNSUPPORTED_KEY_TYPE",
    )


def _integers(keys: Sequence[str], key_type: pa.DataType, strict: bool) -> list[int]:
    low, high = _integer_range(key_type)
    values = []
    for index, key in enumerate(keys):
        try:
            value = int(key.strip())
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            if strict:
                raise invalid_field(
                    f"key_values[{index}]", f"{key!r} is not a {key_type} value", reason="INVALID_KEY_VALUE"
                )
            continue
        values.append(value)
    return values


def _integer_range(key_type: pa.DataType) -> tuple[int, int]:
    bits = key_type.bit_width
    if pa.types.is_signed_integer(key_type):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def tombstone_keys(tombstones: Tombstones, schema: pa.Schema) -> pa.Table:
    """The tombstoned keys as a one-column table `k` typed like the key column, so the comparison
    in SQL is exact."""
    key_type = schema.field(tombstones.key_column).type
    match = key_match(tombstones.key_column, schema, tombstones.keys, strict=False)
    return pa.table({"k": pa.array(list(match.values) if match else [], key_type)})
