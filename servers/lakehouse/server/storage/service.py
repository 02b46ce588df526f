"""Storage domain: buckets and objects on pyarrow filesystems. Blocking; callers use an executor.

Objects become visible atomically: uploads are spooled to a local file first, checked (quota,
size, checksum), then published in one step (a rename on local disk, a single PUT or completed
multipart upload on S3). Each object's SHA-256, content type and user metadata live in a small
JSON sidecar under the reserved "_lakehouse/meta/" prefix of its bucket, so a bucket stays
self-describing on any backend. (pyarrow can set only standard headers such as Content-Type on
an S3 object, not user metadata, so the sidecar is needed on S3 too.)

A sidecar is trusted only while it names the object it was written for: the object's size and
modification time (nanoseconds on local disk, seconds on S3), recorded right after the object is
written. Publishing one key is serialized by a per-key lock and deletes the old sidecar before
writing the object, so a crash or failure in between leaves an object without metadata, never
an object described by another version's sidecar.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyarrow import fs as pafs

from lakehouse.server.common.config import Config
from lakehouse.server.common.errors import (
    AlreadyExists,
    LakehouseError,
    OutOfRange,
    Unavailable,
    invalid_field,
)
from lakehouse.server.common.paging import Page, page_of
from lakehouse.server.storage.backends import Location, open_filesystem, parse_location
from lakehouse.server.storage.errors import (
    BucketLocationNotAllowed,
    BucketLocationOverlap,
    BucketNotEmpty,
    BucketNotFound,
    BucketProtected,
    ChecksumMismatch,
    KeyConflict,
    ObjectNotFound,
    SizeMismatch,
    invalid_bucket_uri,
)
from lakehouse.server.storage.keys import (
    RESERVED_PREFIX,
    check_bucket_name,
    check_key,
    check_local_segments,
    check_prefix,
    fits_local_disk,
)
from lakehouse.server.storage.locations import (
    allowed_roots,
    inside_allowed_roots,
    placement_problem,
    runtime_location,
)
from lakehouse.server.storage.quota import BucketUsage

META_PREFIX = RESERVED_PREFIX + "meta/"
TMP_PREFIX = RESERVED_PREFIX + "tmp/"
MAX_METADATA_ENTRIES = 64
MAX_METADATA_BYTES = 1024
KEY_LOCK_STRIPES = 256


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
    """A bucket with its open filesystem, its size cap and its directory lock."""

    def __init__(self, info: BucketInfo, filesystem: pafs.FileSystem) -> None:
        self.info = info
        self.fs = filesystem
        self.usage = BucketUsage(info.name, info.max_bytes, self.used_bytes)
        # Local disk: creating a key's parent directories and removing emptied ones must not
        # interleave, or a rename lands in a directory that was just removed.
        self.tree_lock = threading.Lock()

    @property
    def local_root(self) -> Path | None:
        return Path(self.info.location.root) if self.info.location.backend == "local" else None

    def holds(self, key: str) -> bool:
        """False for keys (or prefixes) this bucket's backend could never store."""
        return self.local_root is None or fits_local_disk(key)

    def used_bytes(self) -> int:
        return sum(f.size for f in _iter_objects(self, ""))


class StorageService:
    """Buckets declared in config plus runtime ones (kept in <data_dir>/storage/buckets.json)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._state_dir = config.data_dir / "storage"
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._registry_path = self._state_dir / "buckets.json"
        self._lock = threading.Lock()
        self._key_locks = [threading.Lock() for _ in range(KEY_LOCK_STRIPES)]
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
        location = runtime_location(uri, name, self._config)
        info = BucketInfo(name, location, max_bytes, False, False, datetime.now(UTC))
        with self._lock:
            if name in self._buckets:
                raise AlreadyExists(f"bucket {name!r} already exists", reason="BUCKET_ALREADY_EXISTS")
            self._check_placement(name, location)
            self._buckets[name] = self._open(info)
            self._save_runtime_buckets()
        return info

    def delete_bucket(self, name: str, force: bool) -> int:
        bucket = self._bucket(name)
        if bucket.info.from_config:
            why = "it is the default bucket" if bucket.info.is_default else "it is declared in lakehouse.toml"
            raise BucketProtected(f"bucket {name!r} cannot be deleted: {why}")
        count = sum(1 for _ in _iter_objects(bucket, ""))
        if count and not force:
            raise BucketNotEmpty(f"bucket {name!r} holds {count} objects; pass force to delete them too")
        with self._lock:
            if self._buckets.get(name) is not bucket:  # a concurrent DeleteBucket got there first
                raise BucketNotFound(name)
            refusal = self._wipe_refusal(bucket)
            if refusal is not None and count:
                raise refusal
            if refusal is None:  # otherwise the bucket is empty: forget it and leave its directory alone
                _wipe(bucket)
            del self._buckets[name]
            self._save_runtime_buckets()
        return count

    def bucket_health(self, name: str) -> BucketHealth:
        bucket = self._bucket(name or self._config.storage.default_bucket)
        try:
            files = list(_iter_objects(bucket, ""))
        except OSError as exc:
            return BucketHealth(bucket.info, False, False, 0, 0, f"listing failed: {exc}")
        probe = f"{TMP_PREFIX}health-{uuid.uuid4().hex}"
        try:
            if bucket.local_root is not None:  # a fresh bucket has no spool directory yet
                bucket.fs.create_dir(TMP_PREFIX.rstrip("/"), recursive=True)
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
        credit = (_stored_size(bucket, request.key) or 0) if bucket.usage.max_bytes else 0
        return PutSession(self, bucket, request, self._spool_dir(bucket), credit)

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
        file_info = bucket.fs.get_file_info(key) if bucket.holds(key) else None
        if file_info is None or file_info.type != pafs.FileType.File:
            raise ObjectNotFound(bucket.info.name, key)
        return _describe(bucket, file_info)

    def list_objects(self, bucket_name: str, prefix: str, page: Page) -> tuple[list[ObjectInfo], str]:
        check_prefix(prefix)
        bucket = self._bucket(bucket_name or self._config.storage.default_bucket)
        if not bucket.holds(prefix):
            return [], ""
        # Still lists the whole directory subtree below the prefix for every page (pyarrow has no
        # "start after"; with an empty prefix that is the whole bucket), but keeps only one page
        # of it in memory and sorted.
        candidates = (f for f in _iter_objects(bucket, prefix) if page.after is None or f.path > page.after)
        rows = heapq.nsmallest(page.size + 1, candidates, key=lambda f: f.path)
        chosen, token = page_of(rows, page, lambda f: f.path)
        return [_describe(bucket, f) for f in chosen], token

    def delete_object(self, bucket_name: str, key: str, allow_missing: bool) -> bool:
        check_key(key)
        bucket = self._bucket(bucket_name or self._config.storage.default_bucket)
        with self._key_lock(bucket, key):
            size = _stored_size(bucket, key) if bucket.holds(key) else None
            if size is None:
                if allow_missing:
                    return False
                raise ObjectNotFound(bucket.info.name, key)
            with bucket.usage.removing(size):
                _remove_object(bucket, key)
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

    def _others(self, name: str) -> dict[str, Location]:
        return {n: b.info.location for n, b in self._buckets.items() if n != name}

    def _check_placement(self, name: str, location: Location) -> None:
        problem = placement_problem(location, self._others(name), self._config)
        if problem:
            raise BucketLocationOverlap(f"bucket {name!r} cannot be created: {problem}; choose a location of its own")
        if not inside_allowed_roots(location, self._config):
            roots = ", ".join(f"{root}/" for root in allowed_roots(self._config))
            why = f"a local bucket must be inside {roots} ([storage] bucket_roots in lakehouse.toml adds more)"
            raise invalid_bucket_uri("uri", why)

    def _wipe_refusal(self, bucket: _Bucket) -> LakehouseError | None:
        """Why DeleteBucket must not empty `bucket`'s root (made by an older, laxer server), if it must not."""
        name, location = bucket.info.name, bucket.info.location
        by_hand = f"an operator can remove its entry from {self._registry_path} while the server is stopped"
        problem = placement_problem(location, self._others(name), self._config)
        if problem:
            return BucketLocationOverlap(f"bucket {name!r} is not wiped because {problem}; {by_hand}")
        root = bucket.local_root
        outside = not inside_allowed_roots(location, self._config) or (root is not None and root.resolve() != root)
        if outside or (root is None and "/" not in location.root):
            return BucketLocationNotAllowed(
                f"bucket {name!r} at {location.uri} is outside the places runtime buckets may use, so its "
                f"objects are not deleted for you; delete them first, or {by_hand}"
            )
        return None

    def _key_lock(self, bucket: _Bucket, key: str) -> threading.Lock:
        return self._key_locks[hash((bucket.info.name, key)) % KEY_LOCK_STRIPES]

    def _spool_dir(self, bucket: _Bucket) -> Path:
        # On local disk the spool sits inside the bucket so publishing is a same-filesystem rename.
        root = bucket.local_root / TMP_PREFIX if bucket.local_root else self._state_dir / "spool"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _publish(
        self, bucket: _Bucket, spool: Path, request: PutRequest, sha256: str, settle: Callable[[int], None]
    ) -> ObjectInfo:
        """Makes the spool the object at `request.key`; `settle(delta)` books its size against the cap."""
        key = request.key
        with self._key_lock(bucket, key):
            old = bucket.fs.get_file_info(key)
            old_size = old.size if old.type == pafs.FileType.File else 0
            delta = spool.stat().st_size - old_size
            settle(delta)
            try:
                _delete_quietly(bucket.fs, _sidecar_path(key))
                _write_object(bucket, spool, key, old)
            except BaseException:
                bucket.usage.undo(delta)
                raise
            written = bucket.fs.get_file_info(key)
            sidecar = {
                "sha256": sha256,
                "size_bytes": written.size,
                "content_type": request.content_type,
                "metadata": dict(request.metadata),
                "identity": _identity(bucket, written),
            }
            _write_sidecar(bucket, key, sidecar)
            return _object_info(bucket, written, sidecar)

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
    """One upload in progress: chunks go to a spool file, checked and reserved as they arrive.

    `write`, `commit` and `abort` run in executor threads and may overlap when a call is cancelled;
    a lock makes each one whole, so `abort` waits for a commit still publishing.
    """

    def __init__(
        self, service: StorageService, bucket: _Bucket, request: PutRequest, spool_dir: Path, credit: int
    ) -> None:
        self._service = service
        self._bucket = bucket
        self._request = request
        self._credit = credit  # size of the object this upload replaces: its bytes are freed by it
        self._lock = threading.Lock()
        self._reserved = 0
        self._over = False
        fd, path = tempfile.mkstemp(dir=spool_dir, prefix="upload-")
        self._spool = Path(path)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._check_open()
            expected = self._request.expected_size_bytes
            if expected is not None and self.size + len(chunk) > expected:
                raise SizeMismatch(f"upload exceeds expected_size_bytes={expected}")
            self._bucket.usage.reserve(len(chunk), self._credit)
            self._reserved += len(chunk)
            self.size += len(chunk)
            self._hash.update(chunk)
            self._file.write(chunk)

    def commit(self, final_sha256: str = "") -> ObjectInfo:
        """Checks size and checksums, then publishes the spool as the object."""
        with self._lock:
            self._check_open()
            self._over = True
            self._file.close()
            digest = self._check_content(final_sha256)
            return self._service._publish(self._bucket, self._spool, self._request, digest, self._settle)

    def abort(self) -> None:
        """Discards the spool and any reservation; safe after a commit, twice, or during a commit."""
        with self._lock:
            self._over = True
            if not self._file.closed:
                self._file.close()
            self._spool.unlink(missing_ok=True)
            self._bucket.usage.release(self._reserved)
            self._reserved = 0

    def _check_content(self, final_sha256: str) -> str:
        """The content's SHA-256, once size and checksums match what the caller announced."""
        request = self._request
        if request.expected_size_bytes is not None and self.size != request.expected_size_bytes:
            raise SizeMismatch(f"received {self.size} bytes, expected_size_bytes={request.expected_size_bytes}")
        digest = self._hash.hexdigest()
        for name, expected in (("header.expected_sha256", request.expected_sha256), ("commit.sha256", final_sha256)):
            if expected and digest != expected.lower():
                raise ChecksumMismatch(f"content SHA-256 is {digest}, {name} was {expected}")
        return digest

    def _settle(self, delta: int) -> None:
        self._bucket.usage.settle(self._reserved, delta)
        self._reserved = 0

    def _check_open(self) -> None:
        if self._over:
            raise RuntimeError("this upload is already committed or aborted")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise invalid_field("header.metadata", f"at most {MAX_METADATA_ENTRIES} entries", reason="INVALID_METADATA")
    for key, value in metadata.items():
        if not key or len(key.encode()) > MAX_METADATA_BYTES or len(value.encode()) > MAX_METADATA_BYTES:
            why = f"keys must be 1 to {MAX_METADATA_BYTES} bytes, values at most {MAX_METADATA_BYTES}"
            raise invalid_field("header.metadata", why, reason="INVALID_METADATA")


# -- listing -----------------------------------------------------------------------------------


def _iter_objects(bucket: _Bucket, prefix: str) -> Iterator[pafs.FileInfo]:
    """Objects whose key starts with `prefix`, found by listing the prefix's directory subtree."""
    base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    # With no directory to start from, list the whole bucket but skip the reserved prefix's tree.
    infos = _list_tree(bucket.fs, base) if base else _list_top_level(bucket.fs)
    for info in infos:
        if info.type == pafs.FileType.File and info.path.startswith(prefix):
            yield info


def _list_top_level(filesystem: pafs.FileSystem) -> Iterator[pafs.FileInfo]:
    top = filesystem.get_file_info(pafs.FileSelector("", recursive=False, allow_not_found=True))
    for info in top:
        if info.type == pafs.FileType.Directory and info.path != RESERVED_PREFIX.rstrip("/"):
            yield from _list_tree(filesystem, info.path)
        elif info.type == pafs.FileType.File:
            yield info


def _list_tree(filesystem: pafs.FileSystem, base: str) -> list[pafs.FileInfo]:
    try:
        return filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except NotADirectoryError:  # local disk: the "directory" is an object, so nothing is under it
        return []


def _stored_size(bucket: _Bucket, key: str) -> int | None:
    info = bucket.fs.get_file_info(key)
    return info.size if info.type == pafs.FileType.File else None


# -- sidecars ----------------------------------------------------------------------------------


def _identity(bucket: _Bucket, info: pafs.FileInfo) -> list[int]:
    """Size and modification time of one written object, as far as its backend can tell them apart.

    S3 keeps LastModified to the second (and HEAD reports no more), so only seconds count there.
    """
    mtime = info.mtime_ns if info.mtime_ns is not None else -1
    return [info.size, mtime if bucket.local_root is not None else mtime // 1_000_000_000]


def _describe(bucket: _Bucket, info: pafs.FileInfo) -> ObjectInfo:
    sidecar = _read_sidecar(bucket.fs, info.path)
    return _object_info(bucket, info, sidecar if sidecar.get("identity") == _identity(bucket, info) else {})


def _object_info(bucket: _Bucket, info: pafs.FileInfo, sidecar: Mapping) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket.info.name,
        key=info.path,
        size_bytes=info.size,
        sha256=sidecar.get("sha256", ""),
        content_type=sidecar.get("content_type", ""),
        metadata=sidecar.get("metadata", {}),
        update_time=info.mtime.astimezone(UTC) if info.mtime else None,
    )


def _sidecar_path(key: str) -> str:
    # Named by a hash of the key: flat, and never longer than a file name may be, whatever the key.
    return f"{META_PREFIX}{hashlib.sha256(key.encode()).hexdigest()}.json"


def _read_sidecar(filesystem: pafs.FileSystem, key: str) -> dict:
    try:
        with filesystem.open_input_stream(_sidecar_path(key)) as src:
            return json.loads(src.read())
    except (OSError, ValueError):  # absent or unreadable: the object simply has no recorded metadata
        return {}


def _write_sidecar(bucket: _Bucket, key: str, sidecar: Mapping) -> None:
    path = _sidecar_path(key)
    bucket.fs.create_dir(META_PREFIX.rstrip("/"), recursive=True)
    # A PUT is atomic on S3; on local disk a rename keeps readers from seeing half a file.
    target = f"{path}.{uuid.uuid4().hex}.tmp" if bucket.local_root is not None else path
    with bucket.fs.open_output_stream(target) as out:
        out.write(json.dumps(sidecar).encode())
    if target != path:
        bucket.fs.move(target, path)


def _delete_quietly(filesystem: pafs.FileSystem, path: str) -> None:
    with contextlib.suppress(OSError):  # a missing sidecar is fine
        filesystem.delete_file(path)


# -- objects on the backend --------------------------------------------------------------------


def _write_object(bucket: _Bucket, spool: Path, key: str, old: pafs.FileInfo) -> None:
    root = bucket.local_root
    if root is None:
        with spool.open("rb") as src, bucket.fs.open_output_stream(key) as out:
            shutil.copyfileobj(src, out, 8 * 1024 * 1024)
        return
    # The spool's own mtime may equal the old object's (coarse clocks, or an upload that finished
    # writing earlier); a strictly later one keeps the old sidecar from ever matching this object.
    mtime = max(time.time_ns(), (old.mtime_ns or 0) + 1)
    os.utime(spool, ns=(mtime, mtime))
    with bucket.tree_lock:
        _make_room(root, key)
        os.replace(spool, root / key)


def _remove_object(bucket: _Bucket, key: str) -> None:
    root = bucket.local_root
    if root is None:
        bucket.fs.delete_file(key)
        return
    with bucket.tree_lock:
        bucket.fs.delete_file(key)
        _prune_empty_parents(root, key)


def _check_no_directory_clash(root: Path, key: str) -> None:
    """On local disk "a" and "a/b" cannot both be objects (S3 allows it); say so instead of failing."""
    parts = key.split("/")
    for depth in range(1, len(parts)):
        prefix = "/".join(parts[:depth])
        if (root / prefix).is_file():
            raise KeyConflict(
                f"key {key!r} needs {prefix!r} to be a folder, but it is an object in this local-disk bucket"
            )
    target = root / key
    if target.is_symlink() or (target.is_dir() and _holds_anything_but_folders(target)):
        raise KeyConflict(f"key {key!r} is a folder of other objects in this local-disk bucket; choose another key")


def _make_room(root: Path, key: str) -> None:
    """Clears the way for `key`: folders left empty by deletes give way, objects do not."""
    _check_no_directory_clash(root, key)
    target = root / key
    if target.is_dir():
        for folder, _, _ in os.walk(target, topdown=False):
            os.rmdir(folder)
    target.parent.mkdir(parents=True, exist_ok=True)


def _holds_anything_but_folders(path: Path) -> bool:
    for folder, subfolders, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(folder, sub)) for sub in subfolders):
            return True
    return False


def _prune_empty_parents(root: Path, key: str) -> None:
    """Removes folders a delete left empty, up to the bucket root, so they block no later key."""
    folder = (root / key).parent
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty: another object lives here
            return
        folder = folder.parent


def _wipe(bucket: _Bucket) -> None:
    """Deletes everything under the bucket's root, never following a link out of it."""
    root = bucket.local_root
    if root is None:
        # A SubTreeFileSystem cannot empty its own root; empty it through the base filesystem.
        bucket.fs.base_fs.delete_dir_contents(bucket.fs.base_path.rstrip("/"), missing_dir_ok=True)
        return
    if not root.is_dir():
        return
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


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
