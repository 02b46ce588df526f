"""Storage domain: buckets and objects on pyarrow filesystems. Blocking; callers use an executor.

Objects become visible atomically: uploads are spooled to a local file first, checked (quota,
size, checksum), then published in one step (a rename on local disk, a single PUT or completed
multipart upload on S3). Each object's SHA-256, content type and user metadata live in a small
JSON sidecar under the reserved "_lakehouse/meta/" prefix of its bucket, so a bucket stays
self-describing on any backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyarrow import fs as pafs

from lakehouse.server.common.config import Config
from lakehouse.server.common.errors import AlreadyExists, OutOfRange, Unavailable, invalid_field
from lakehouse.server.common.paging import Page, page_of
from lakehouse.server.storage.backends import Location, open_filesystem, parse_location
from lakehouse.server.storage.errors import (
    BucketNotEmpty,
    BucketNotFound,
    BucketProtected,
    ChecksumMismatch,
    KeyConflict,
    ObjectNotFound,
    QuotaExceeded,
    SizeMismatch,
)
from lakehouse.server.storage.keys import (
    RESERVED_PREFIX,
    check_bucket_name,
    check_key,
    check_local_segments,
    check_prefix,
)

META_PREFIX = RESERVED_PREFIX + "meta/"
TMP_PREFIX = RESERVED_PREFIX + "tmp/"
MAX_METADATA_ENTRIES = 64
MAX_METADATA_BYTES = 1024


@dataclass(frozen=True)
class BucketInfo:
    name: str
    location: Location
    max_bytes: int
    is_default: bool
    from_config: bool
    create_time: datetime | None = None


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size_bytes: int
    sha256: str = ""
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    update_time: datetime | None = None


@dataclass(frozen=True)
class BucketHealth:
    bucket: BucketInfo
    reachable: bool
    writable: bool
    used_bytes: int
    object_count: int
    detail: str


@dataclass(frozen=True)
class PutRequest:
    bucket: str
    key: str
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    expected_size_bytes: int | None = None
    expected_sha256: str = ""


class _Bucket:
    """A bucket with its open filesystem."""

    def __init__(self, info: BucketInfo, filesystem: pafs.FileSystem) -> None:
        self.info = info
        self.fs = filesystem

    @property
    def local_root(self) -> Path | None:
        return Path(self.info.location.root) if self.info.location.backend == "local" else None


class StorageService:
    """Buckets declared in config plus runtime ones (kept in <data_dir>/storage/buckets.json)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._state_dir = config.data_dir / "storage"
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._registry_path = self._state_dir / "buckets.json"
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        for name, bucket in config.storage.buckets.items():
            location = parse_location(bucket.uri, config.data_dir / "buckets" / name, f"storage.buckets.{name}.uri")
            info = BucketInfo(name, location, bucket.max_bytes, name == config.storage.default_bucket, True)
            self._buckets[name] = self._open(info)
        for info in self._load_runtime_buckets():
            self._buckets.setdefault(info.name, self._open(info))

    # -- buckets -------------------------------------------------------------------------------

    def list_buckets(self, page: Page) -> tuple[list[BucketInfo], str]:
        names = sorted(n for n in self._buckets if page.after is None or n > page.after)
        return page_of([self._buckets[n].info for n in names[: page.size + 1]], page, lambda b: b.name)

    def create_bucket(self, name: str, uri: str, max_bytes: int) -> BucketInfo:
        check_bucket_name(name)
        if max_bytes < 0:
            raise invalid_field("max_bytes", "must not be negative", reason="INVALID_MAX_BYTES")
        location = parse_location(uri, self._config.data_dir / "buckets" / name)
        info = BucketInfo(name, location, max_bytes, False, False, datetime.now(UTC))
        with self._lock:
            if name in self._buckets:
                raise AlreadyExists(f"bucket {name!r} already exists", reason="BUCKET_ALREADY_EXISTS")
            self._buckets[name] = self._open(info)
            self._save_runtime_buckets()
        return info

    def delete_bucket(self, name: str, force: bool) -> int:
        bucket = self._bucket(name)
        if bucket.info.from_config:
            why = "it is the default bucket" if bucket.info.is_default else "it is declared in lakehouse.toml"
            raise BucketProtected(f"bucket {name!r} cannot be deleted: {why}")
        count = sum(1 for _ in self._iter_files(bucket, ""))
        if count and not force:
            raise BucketNotEmpty(f"bucket {name!r} holds {count} objects; pass force to delete them too")
        with self._lock:
            # A SubTreeFileSystem cannot empty its own root; empty it through the base filesystem.
            bucket.fs.base_fs.delete_dir_contents(bucket.fs.base_path.rstrip("/"), missing_dir_ok=True)
            del self._buckets[name]
            self._save_runtime_buckets()
        return count

    def bucket_health(self, name: str) -> BucketHealth:
        bucket = self._bucket(name or self._config.storage.default_bucket)
        try:
            files = list(self._iter_files(bucket, ""))
        except OSError as exc:
            return BucketHealth(bucket.info, False, False, 0, 0, f"listing failed: {exc}")
        probe = f"{TMP_PREFIX}health-{uuid.uuid4().hex}"
        try:
            with bucket.fs.open_output_stream(probe) as out:
                out.write(b"ok")
            bucket.fs.delete_file(probe)
            writable, detail = True, ""
        except OSError as exc:
            writable, detail = False, f"write probe failed: {exc}"
        return BucketHealth(bucket.info, True, writable, sum(f.size for f in files), len(files), detail)

    # -- objects -------------------------------------------------------------------------------

    def begin_put(self, request: PutRequest) -> PutSession:
        """Validates the header and opens a spool; nothing is visible until `commit`."""
        check_key(request.key, "header.key")
        _check_metadata(request.metadata)
        bucket = self._bucket(request.bucket or self._config.storage.default_bucket)
        if bucket.local_root is not None:
            check_local_segments(request.key, "header.key")
            _check_no_directory_clash(bucket.local_root, request.key)  # again at commit: uploads race
        budget = None
        if bucket.info.max_bytes:
            used = self._used_bytes(bucket, exclude_key=request.key)
            budget = bucket.info.max_bytes - used
        spool_dir = self._spool_dir(bucket)
        return PutSession(self, bucket, request, spool_dir, budget)

    def open_read(
        self, bucket_name: str, key: str, offset: int, length: int, chunk_size: int
    ) -> tuple[ObjectInfo, Iterator[tuple[int, bytes]]]:
        """Object info and a generator of (offset, chunk) over the byte range."""
        info = self.stat(bucket_name, key)
        if offset < 0 or length < 0:
            raise OutOfRange("offset and length must not be negative", reason="INVALID_RANGE")
        if offset > info.size_bytes:
            raise OutOfRange(
                f"offset {offset} is past the end of the object ({info.size_bytes} bytes)", reason="INVALID_RANGE"
            )
        end = info.size_bytes if length == 0 else min(info.size_bytes, offset + length)
        bucket = self._bucket(info.bucket)
        return info, _read_range(bucket.fs, key, offset, end, chunk_size)

    def stat(self, bucket_name: str, key: str) -> ObjectInfo:
        check_key(key)
        bucket = self._bucket(bucket_name or self._config.storage.default_bucket)
        file_info = bucket.fs.get_file_info(key)
        if file_info.type != pafs.FileType.File:
            raise ObjectNotFound(bucket.info.name, key)
        return self._describe(bucket, file_info)

    def list_objects(self, bucket_name: str, prefix: str, page: Page) -> tuple[list[ObjectInfo], str]:
        check_prefix(prefix)
        bucket = self._bucket(bucket_name or self._config.storage.default_bucket)
        infos = sorted(
            (f for f in self._iter_files(bucket, prefix) if page.after is None or f.path > page.after),
            key=lambda f: f.path,
        )
        chosen, token = page_of(infos[: page.size + 1], page, lambda f: f.path)
        return [self._describe(bucket, f) for f in chosen], token

    def delete_object(self, bucket_name: str, key: str, allow_missing: bool) -> bool:
        check_key(key)
        bucket = self._bucket(bucket_name or self._config.storage.default_bucket)
        if bucket.fs.get_file_info(key).type != pafs.FileType.File:
            if allow_missing:
                return False
            raise ObjectNotFound(bucket.info.name, key)
        bucket.fs.delete_file(key)
        _delete_quietly(bucket.fs, _sidecar_path(key))
        return True

    # -- internals -----------------------------------------------------------------------------

    def _bucket(self, name: str) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise BucketNotFound(name)
        return bucket

    def _open(self, info: BucketInfo) -> _Bucket:
        try:
            return _Bucket(info, open_filesystem(info.location, self._config.storage.s3))
        except OSError as exc:
            raise Unavailable(f"bucket {info.name!r} at {info.location.uri} is unreachable: {exc}") from exc

    def _spool_dir(self, bucket: _Bucket) -> Path:
        # On local disk the spool sits inside the bucket so publishing is a same-filesystem rename.
        root = bucket.local_root / TMP_PREFIX if bucket.local_root else self._state_dir / "spool"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _iter_files(self, bucket: _Bucket, prefix: str) -> Iterator[pafs.FileInfo]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        for info in bucket.fs.get_file_info(selector):
            if (
                info.type == pafs.FileType.File
                and info.path.startswith(prefix)
                and not info.path.startswith(RESERVED_PREFIX)
            ):
                yield info

    def _used_bytes(self, bucket: _Bucket, exclude_key: str = "") -> int:
        return sum(f.size for f in self._iter_files(bucket, "") if f.path != exclude_key)

    def _describe(self, bucket: _Bucket, info: pafs.FileInfo) -> ObjectInfo:
        sidecar = _read_sidecar(bucket.fs, info.path)
        fresh = sidecar.get("size_bytes") == info.size
        mtime = info.mtime.astimezone(UTC) if info.mtime else None
        return ObjectInfo(
            bucket=bucket.info.name,
            key=info.path,
            size_bytes=info.size,
            sha256=sidecar.get("sha256", "") if fresh else "",
            content_type=sidecar.get("content_type", "") if fresh else "",
            metadata=sidecar.get("metadata", {}) if fresh else {},
            update_time=mtime,
        )

    def _publish(self, bucket: _Bucket, spool: Path, request: PutRequest, sha256: str, size: int) -> ObjectInfo:
        sidecar = {
            "sha256": sha256,
            "size_bytes": size,
            "content_type": request.content_type,
            "metadata": dict(request.metadata),
        }
        if bucket.local_root is not None:
            _check_no_directory_clash(bucket.local_root, request.key)
        _write_bytes(bucket.fs, _sidecar_path(request.key), json.dumps(sidecar).encode())
        if bucket.local_root is not None:
            target = bucket.local_root / request.key
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spool, target)
        else:
            with spool.open("rb") as src, bucket.fs.open_output_stream(request.key) as out:
                shutil.copyfileobj(src, out, 8 * 1024 * 1024)
        return self.stat(bucket.info.name, request.key)

    def _load_runtime_buckets(self) -> list[BucketInfo]:
        if not self._registry_path.exists():
            return []
        entries = json.loads(self._registry_path.read_text())
        return [
            BucketInfo(
                e["name"],
                Location(e["backend"], e["root"]),
                e["max_bytes"],
                False,
                False,
                datetime.fromisoformat(e["create_time"]),
            )
            for e in entries
        ]

    def _save_runtime_buckets(self) -> None:
        entries = [
            {
                "name": b.info.name,
                "backend": b.info.location.backend,
                "root": b.info.location.root,
                "max_bytes": b.info.max_bytes,
                "create_time": b.info.create_time.isoformat() if b.info.create_time else None,
            }
            for b in self._buckets.values()
            if not b.info.from_config
        ]
        tmp = self._registry_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=2))
        os.replace(tmp, self._registry_path)


class PutSession:
    """One upload in progress: chunks go to a spool file, checked as they arrive."""

    def __init__(
        self, service: StorageService, bucket: _Bucket, request: PutRequest, spool_dir: Path, budget: int | None
    ) -> None:
        self._service = service
        self._bucket = bucket
        self._request = request
        self._budget = budget
        fd, path = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
        self._spool = Path(path)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._budget is not None and self.size > self._budget:
            cap = self._bucket.info.max_bytes
            raise QuotaExceeded(
                f"bucket {self._bucket.info.name!r} is capped at {cap} bytes and this upload would exceed it; "
                "delete objects or raise max_bytes"
            )
        expected = self._request.expected_size_bytes
        if expected is not None and self.size > expected:
            raise SizeMismatch(f"upload exceeds expected_size_bytes={expected}")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self, final_sha256: str = "") -> ObjectInfo:
        """Checks size and checksums, then publishes the spool as the object."""
        self._file.close()
        request = self._request
        if request.expected_size_bytes is not None and self.size != request.expected_size_bytes:
            raise SizeMismatch(f"received {self.size} bytes, expected_size_bytes={request.expected_size_bytes}")
        digest = self._hash.hexdigest()
        for name, expected in (("header.expected_sha256", request.expected_sha256), ("commit.sha256", final_sha256)):
            if expected and digest != expected.lower():
                raise ChecksumMismatch(f"content SHA-256 is {digest}, {name} was {expected}")
        return self._service._publish(self._bucket, self._spool, request, digest, self.size)

    def abort(self) -> None:
        """Discards the spool; safe to call after a commit or twice."""
        if not self._file.closed:
            self._file.close()
        self._spool.unlink(missing_ok=True)


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise invalid_field("header.metadata", f"at most {MAX_METADATA_ENTRIES} entries", reason="INVALID_METADATA")
    for key, value in metadata.items():
        if not key or len(key.encode()) > MAX_METADATA_BYTES or len(value.encode()) > MAX_METADATA_BYTES:
            why = f"keys must be 1 to {MAX_METADATA_BYTES} bytes, values at most {MAX_METADATA_BYTES}"
            raise invalid_field("header.metadata", why, reason="INVALID_METADATA")


def _check_no_directory_clash(root: Path, key: str) -> None:
    """On local disk "a" and "a/b" cannot both be objects (S3 allows it); say so instead of failing."""
    parts = key.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if (root / prefix).is_file():
            raise KeyConflict(
                f"key {key!r} needs {prefix!r} to be a folder, but it is an object in this local-disk bucket"
            )
    if (root / key).is_dir():
        raise KeyConflict(f"key {key!r} is a folder of other objects in this local-disk bucket; choose another key")


def _sidecar_path(key: str) -> str:
    # Named by a hash of the key: flat, and never longer than a file name may be, whatever the key.
    return f"{META_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"


def _read_range(filesystem: pafs.FileSystem, key: str, start: int, end: int, chunk: int) -> Iterator[tuple[int, bytes]]:
    with filesystem.open_input_file(key) as src:
        src.seek(start)
        position = start
        while position < end:
            data = src.read(min(chunk, end - position))
            if not data:
                break
            yield position, data
            position += len(data)


def _read_sidecar(filesystem: pafs.FileSystem, key: str) -> dict:
    try:
        with filesystem.open_input_stream(_sidecar_path(key)) as src:
            return json.loads(src.read())
    except (OSError, ValueError):  # absent or unreadable: the object simply has no recorded metadata
        return {}


def _write_bytes(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    with filesystem.open_output_stream(path) as out:
        out.write(data)


def _delete_quietly(filesystem: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):  # a missing sidecar is fine
        filesystem.delete_file(path)
