"""Object key and bucket name rules, checked before any backend is touched."""

from __future__ import annotations

import unicodedata

from lakehouse.server.common.config import BUCKET_NAME
from lakehouse.server.storage.errors import invalid_bucket_name, invalid_key

MAX_KEY_BYTES = 1024
RESERVED_PREFIX = "_lakehouse/"


def check_key(key: str, field: str = "key") -> str:
    """Returns `key` when it is a safe object key; raises INVALID_ARGUMENT naming `field` otherwise."""
    if not key:
        raise invalid_key(field, "must not be empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise invalid_key(field, f"must be at most {MAX_KEY_BYTES} bytes of UTF-8")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key):
        raise invalid_key(field, "must not contain NUL, control characters or lone surrogates")
    if key.startswith("/"):
        raise invalid_key(field, "must not start with '/' (keys are relative to the bucket)")
    segments = key.split("/")
    if any(seg in (".", "..") for seg in segments):
        raise invalid_key(field, "must not contain '.' or '..' path segments")
    if any(seg == "" for seg in segments):
        raise invalid_key(field, "must not contain empty path segments ('//' or a trailing '/')")
    if key.startswith(RESERVED_PREFIX) or key == RESERVED_PREFIX.rstrip("/"):
        raise invalid_key(field, f"the prefix {RESERVED_PREFIX!r} is reserved for the server")
    return key


MAX_LOCAL_SEGMENT_BYTES = 255


def fits_local_disk(key: str) -> bool:
    """Local disks cap each path component (file or directory name) at 255 bytes; S3 does not."""
    return all(len(seg.encode()) <= MAX_LOCAL_SEGMENT_BYTES for seg in key.split("/"))


def check_local_segments(key: str, field: str = "key") -> None:
    """Refuses a key a local-disk bucket cannot store, naming `field`."""
    if not fits_local_disk(key):
        raise invalid_key(
            field, f"on a local-disk bucket each '/'-separated part must be at most {MAX_LOCAL_SEGMENT_BYTES} bytes"
        )


def check_prefix(prefix: str, field: str = "prefix") -> str:
    """A listing prefix: empty, or a key-like string that may end with '/'."""
    if prefix:
        check_key(prefix.rstrip("/") or "/", field)
    return prefix


def check_bucket_name(name: str, field: str = "name") -> str:
    if not BUCKET_NAME.fullmatch(name):
        raise invalid_bucket_name(
            field, "must be 3 to 63 characters: lowercase letters, digits and '-', starting with a letter"
        )
    return name
