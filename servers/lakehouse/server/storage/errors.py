"""Errors of the storage service, each with its status code and reason."""

from __future__ import annotations

from lakehouse.server.common.errors import FailedPrecondition, NotFound, ResourceExhausted, invalid_field


class BucketNotFound(NotFound):
    reason = "BUCKET_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"bucket {name!r} does not exist; ListBuckets shows the ones that do")


class ObjectNotFound(NotFound):
    reason = "OBJECT_NOT_FOUND"

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"object {key!r} does not exist in bucket {bucket!r}")


class BucketProtected(FailedPrecondition):
    reason = "BUCKET_PROTECTED"


class BucketNotEmpty(FailedPrecondition):
    reason = "BUCKET_NOT_EMPTY"


class KeyConflict(FailedPrecondition):
    reason = "KEY_CONFLICT"


class QuotaExceeded(ResourceExhausted):
    reason = "BUCKET_QUOTA_EXCEEDED"


class ChecksumMismatch(FailedPrecondition):
    reason = "CHECKSUM_MISMATCH"


class SizeMismatch(FailedPrecondition):
    reason = "SIZE_MISMATCH"


class BucketLocationOverlap(FailedPrecondition):
    reason = "BUCKET_LOCATION_OVERLAP"


class BucketLocationNotAllowed(FailedPrecondition):
    """A bucket made by an older server sits where runtime buckets may no longer go."""

    reason = "BUCKET_LOCATION_NOT_ALLOWED"


def invalid_key(field: str, why: str) -> Exception:
    return invalid_field(field, why, reason="INVALID_OBJECT_KEY")


def invalid_bucket_name(field: str, why: str) -> Exception:
    return invalid_field(field, why, reason="INVALID_BUCKET_NAME")


def invalid_bucket_uri(field: str, why: str) -> Exception:
    return invalid_field(field, why, reason="INVALID_BUCKET_URI")
