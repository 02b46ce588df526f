"""Where runtime buckets may live.

A bucket's root is what its objects are read from, written to and, on DeleteBucket(force),
wiped. A root that reaches outside the directories set aside for buckets, or that shares files
with another bucket or with the server's own state, would let a caller read, overwrite or delete
what is not theirs. Buckets declared in lakehouse.toml are the operator's choice and are not
held to these rules when created, but no bucket is ever wiped through a root that breaks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from lakehouse.server.common.config import Config
from lakehouse.server.storage.backends import Location, parse_location
from lakehouse.server.storage.errors import invalid_bucket_uri


def buckets_dir(config: Config) -> Path:
    """<data_dir>/buckets: where runtime buckets go when CreateBucket names no location."""
    return config.data_dir / "buckets"


def allowed_roots(config: Config) -> list[Path]:
    """Directories a runtime local bucket must sit strictly inside."""
    return [buckets_dir(config), *(Path(root).resolve() for root in config.storage.bucket_roots)]


def runtime_location(uri: str, name: str, config: Config) -> Location:
    """Parses a CreateBucket `uri`; raises INVALID_ARGUMENT/INVALID_BUCKET_URI naming `uri`.

    Stricter than configuration: relative and "~" paths depend on where and as whom the server
    runs, and an S3 bucket without a prefix would hand out the whole S3 bucket.
    """
    if not uri:
        return parse_location("", buckets_dir(config) / name)
    if "\x00" in uri:
        raise invalid_bucket_uri("uri", "must not contain NUL characters")
    parsed = urlparse(uri)
    path = parsed.path if parsed.scheme == "file" else uri
    if parsed.scheme in ("", "file") and not path.startswith("/"):
        raise invalid_bucket_uri("uri", "a local bucket needs an absolute path (no relative or '~' paths)")
    location = parse_location(uri, buckets_dir(config) / name)
    if location.backend == "s3":
        _check_s3_prefix(location)
    return location


def placement_problem(location: Location, others: Mapping[str, Location], config: Config) -> str | None:
    """Why `location` may not hold a bucket next to `others`, or None when it may."""
    for name, other in sorted(others.items()):
        if _nested(location, other):
            return f"{location.uri} overlaps bucket {name!r} at {other.uri}"
    if location.backend != "local":
        return None
    root = Path(location.root)
    data_dir = config.data_dir
    if _paths_nested(root, data_dir) and not _strictly_inside(root, buckets_dir(config)):
        return f"{location.uri} overlaps the server's data directory {data_dir} (only {buckets_dir(config)}/* is free)"
    for path in _state_files(config):
        if _paths_nested(root, path):
            return f"{location.uri} overlaps the server's state file {path}"
    return None


def inside_allowed_roots(location: Location, config: Config) -> bool:
    """True for S3 locations and for local ones strictly inside an allowed root."""
    if location.backend != "local":
        return True
    return any(_strictly_inside(Path(location.root), root) for root in allowed_roots(config))


def _check_s3_prefix(location: Location) -> None:
    bucket, _, prefix = location.root.partition("/")
    if not prefix:
        raise invalid_bucket_uri("uri", f"runtime S3 buckets need a prefix: s3://{bucket}/PREFIX")
    if any(part in ("", ".", "..") for part in prefix.split("/")):
        raise invalid_bucket_uri("uri", "the S3 prefix must not contain empty, '.' or '..' parts")


def _nested(a: Location, b: Location) -> bool:
    if a.backend != b.backend:
        return False
    if a.backend == "local":
        return _paths_nested(Path(a.root), Path(b.root))
    # S3 prefixes nest on '/' boundaries: "b/data" holds "b/data/x" but not "b/data2".
    return a.root == b.root or a.root.startswith(b.root + "/") or b.root.startswith(a.root + "/")


def _paths_nested(a: Path, b: Path) -> bool:
    """Equal, or one inside the other."""
    return a.is_relative_to(b) or b.is_relative_to(a)


def _strictly_inside(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)


def _state_files(config: Config) -> list[Path]:
    """Server state that may live outside the data directory: a SQLite catalog and its journals."""
    try:
        url = make_url(config.catalog_url)
    except ArgumentError:
        return []
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    db = Path(url.database).expanduser().resolve()
    return [db, *(db.with_name(db.name + suffix) for suffix in ("-journal", "-wal", "-shm"))]
