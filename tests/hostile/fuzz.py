"""Hypothesis strategies that build any request message of the contracts from its descriptor.

Values lean on what breaks servers: empty and huge strings, NUL, path traversal, SQL and filter
fragments, right-to-left and combining marks, extreme integers, NaN and infinities, unknown enum
numbers, empty and oversized repeated fields, and at most one member of each oneof.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor as d
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "../../../etc/passwd",
    "..",
    "/",
    "%2e%2e%2f",
    "' OR 1=1 --",
    "'; DROP TABLE datasets; --",
    "id in [1,2] or 1==1",
    "read_csv('/etc/passwd')",
    "ATTACH '/tmp/x.db' AS x",
    "\u202e\u0301\u200b",
    "💥" * 64,
    "Ω" * 300,
    "x" * 5000,
    "*",
    "{{7*7}}",
    "null",
    "main.workers",
    "__lakehouse_salt",
)
_INT_BOUNDS = {
    d.FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    d.FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    d.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    d.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    d.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
MAX_DEPTH = 3


def _integers(field: d.FieldDescriptor) -> st.SearchStrategy[int]:
    low, high = _INT_BOUNDS[field.type]
    edges = [v for v in (low, high, -1, 0, 1, 2, 1000, 10**9) if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=64), st.from_regex(r"[a-z][a-z0-9_]{0,20}"))


def _scalar(field: d.FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_BOUNDS:
        return _integers(field)
    if t in (d.FieldDescriptor.TYPE_DOUBLE, d.FieldDescriptor.TYPE_FLOAT):
        width = 32 if t == d.FieldDescriptor.TYPE_FLOAT else 64
        return st.one_of(
            st.sampled_from([0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308 if width == 64 else 3e38]),
            st.floats(width=width),
        )
    if t == d.FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == d.FieldDescriptor.TYPE_STRING:
        return _strings()
    if t == d.FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.just(b""), st.binary(max_size=256), st.just(b"\xff" * 4096))
    if t == d.FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 1000))
    raise AssertionError(f"unhandled field type {t} of {field.full_name}")


def _value(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == d.FieldDescriptor.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    return _scalar(field)


def _repeated(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[list[Any]]:
    item = _value(field, depth)
    oversized = st.lists(item, min_size=2000, max_size=2000) if field.type != d.FieldDescriptor.TYPE_MESSAGE else None
    small = st.lists(item, max_size=4)
    return st.one_of(small, oversized) if oversized is not None and depth == 0 else small


@st.composite
def _build(draw: st.DrawFn, message: d.Descriptor, depth: int) -> Message:
    cls = GetMessageClass(message)
    out = cls()
    if depth > MAX_DEPTH:
        return out
    chosen_oneof = {o.name: draw(st.sampled_from([None, *[f.name for f in o.fields]])) for o in message.oneofs}
    for field in message.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_") and chosen_oneof[oneof.name] != field.name:
            continue
        if not draw(st.booleans()):
            continue  # unset, as most fields of most requests are
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            entries = draw(st.dictionaries(_scalar(key_field), _value(value_field, depth), max_size=3))
            target = getattr(out, field.name)
            for key, value in entries.items():
                if value_field.type == d.FieldDescriptor.TYPE_MESSAGE:
                    target[key].CopyFrom(value)
                else:
                    target[key] = value
        elif field.is_repeated:
            getattr(out, field.name).extend(draw(_repeated(field, depth)))
        elif field.type == d.FieldDescriptor.TYPE_MESSAGE:
            getattr(out, field.name).CopyFrom(draw(messages(field.message_type, depth + 1)))
        else:
            setattr(out, field.name, draw(_scalar(field)))
    return out


def messages(message: d.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any instance of `message`, nasty values included."""
    return _build(message, depth)
