"""Arrow schemas as the catalog sees them: decoding, fingerprints, diffs and additive evolution."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from lakehouse.server.common.errors import invalid_field

# Column lists in errors travel in gRPC trailers, which peers refuse beyond 16 KiB: a wide
# schema's diff is cut to this many entries and characters per list, then "and N more".
MAX_LISTED = 20
MAX_LISTED_CHARS = 1_000
MAX_ENTRY_CHARS = 120


def capped(items: Sequence[str]) -> list[str]:
    """The first entries of `items` (long ones cut short), then "and N more" for the rest."""
    shown: list[str] = []
    for item in items[:MAX_LISTED]:
        if sum(map(len, shown)) >= MAX_LISTED_CHARS:
            break
        shown.append(item if len(item) <= MAX_ENTRY_CHARS else item[: MAX_ENTRY_CHARS - 1] + "…")
    rest = len(items) - len(shown)
    return [*shown, f"and {rest} more"] if rest else shown


@dataclass(frozen=True)
class SchemaDiff:
    """How a proposed schema differs from the current one."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [
            f"{label}: {', '.join(capped(items))}"
            for label, items in (("added", self.added), ("removed", self.removed), ("changed", self.changed))
            if items
        ]
        return "; ".join(parts)


def decode_schema(ipc: bytes, field: str) -> pa.Schema:
    """Reads an Arrow IPC stream holding a schema; a garbled or empty one names `field`."""
    if not ipc:
        raise invalid_field(field, "an Arrow schema is required (Arrow IPC stream bytes)", reason="INVALID_SCHEMA")
    try:
        schema = pa.ipc.open_stream(ipc).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise invalid_field(field, f"not an Arrow IPC stream: {exc}", reason="INVALID_SCHEMA") from None
    if len(schema) == 0:
        raise invalid_field(field, "the schema has no columns", reason="INVALID_SCHEMA")
    duplicates = sorted(name for name, count in Counter(schema.names).items() if count > 1)
    if duplicates:
        raise invalid_field(field, f"duplicate column names: {', '.join(capped(duplicates))}", reason="INVALID_SCHEMA")
    return schema


def decode_table(ipc: bytes, field: str) -> pa.Table | None:
    """Reads an optional Arrow IPC stream of rows (a sample)."""
    if not ipc:
        return None
    try:
        return pa.ipc.open_stream(ipc).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise invalid_field(field, f"not an Arrow IPC stream: {exc}", reason="INVALID_SAMPLE") from None


def fingerprint(schema: pa.Schema) -> str:
    """SHA-256 over the (name, type) pairs in order: metadata and nullability do not count.

    The pairs are JSON-encoded, so no column name can imitate a separator and collide.
    """
    pairs = [[f.name, str(f.type)] for f in schema]
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()


def diff(current: pa.Schema, proposed: pa.Schema) -> SchemaDiff:
    old = {f.name: (i, f.type) for i, f in enumerate(current)}
    new = {f.name: (i, f.type) for i, f in enumerate(proposed)}
    added = tuple(f"{n}: {new[n][1]}" for n in new if n not in old)
    removed = tuple(f"{n}: {old[n][1]}" for n in old if n not in new)
    changed = []
    for name in (n for n in new if n in old):
        (i_old, t_old), (i_new, t_new) = old[name], new[name]
        if t_old != t_new:
            changed.append(f"{name}: {t_old} -> {t_new}")
        elif i_old != i_new:
            changed.append(f"{name}: position {i_old} -> {i_new}")
    return SchemaDiff(added, removed, tuple(changed))


def is_additive(current: pa.Schema, proposed: pa.Schema) -> bool:
    """True when `proposed` keeps every current column in place and only appends nullable ones."""
    if len(proposed) < len(current):
        return False
    keeps = all(proposed.field(i).name == f.name and proposed.field(i).type == f.type for i, f in enumerate(current))
    appended = [proposed.field(i) for i in range(len(current), len(proposed))]
    return keeps and all(f.nullable for f in appended)
