"""Small protobuf <-> Python conversions shared by the servicers."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import duration_pb2, timestamp_pb2

from lakehouse.server.common.errors import invalid_field


def to_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp, or None so the field stays unset."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC))
    return stamp


def from_timestamp(stamp: timestamp_pb2.Timestamp, present: bool, field: str) -> datetime | None:
    """A timezone-aware datetime, or None when the field was not set; out of range names `field`."""
    if not present:
        return None
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise invalid_field(
            field, "outside the range of dates this server handles (years 1 to 9999)", reason="INVALID_TIMESTAMP"
        ) from None


def seconds(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(value * 1e9))
    return out
