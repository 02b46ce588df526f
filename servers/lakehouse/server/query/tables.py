"""Delta Lake tables in storage buckets, through `deltalake`. Blocking; callers use an executor.

A dataset's table lives at <bucket uri>/<dataset location>. The catalog decides which Delta
version is visible (the one it registered), so a commit that was never registered (a crash
between the two) is never read.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction
from pyarrow import fs as pafs

from lakehouse.server.common.config import S3Config
from lakehouse.server.query.errors import CommitConflict
from lakehouse.server.query.policy import KeyMatch


@dataclass(frozen=True)
class TableLocation:
    """Where one dataset's Delta table lives and how to reach it."""

    uri: str
    """A local absolute path or s3://bucket/prefix/..."""
    storage_options: tuple[tuple[str, str], ...] = ()
    """deltalake storage options (S3 endpoint, region); credentials come from the environment."""

    @property
    def local_path(self) -> Path | None:
        return None if self.uri.startswith("s3://") else Path(self.uri)

    @property
    def options(self) -> dict[str, str]:
        return dict(self.storage_options)


@dataclass(frozen=True)
class Snapshot:
    """One Delta version of a table: its files and totals."""

    version: int
    files: tuple[str, ...]
    """Absolute file URIs."""
    relative_files: tuple[str, ...]
    schema: pa.Schema
    row_count: int
    size_bytes: int


def table_location(bucket_uri: str, dataset_location: str, s3: S3Config) -> TableLocation:
    """The table of a dataset stored at `dataset_location` inside the bucket at `bucket_uri`."""
    parsed = urlparse(bucket_uri)
    if parsed.scheme == "s3":
        return TableLocation(f"{bucket_uri.rstrip('/')}/{dataset_location}", _s3_options(s3))
    root = Path(parsed.path if parsed.scheme == "file" else bucket_uri)
    return TableLocation(str(root / dataset_location))


def _s3_options(s3: S3Config) -> tuple[tuple[str, str], ...]:
    options = {"AWS_REGION": s3.region, "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    # Delta on S3 needs a lock for concurrent writers; the query service serialises commits to a
    # dataset itself, so plain renames are safe as long as one service instance writes a dataset.
    if s3.endpoint:
        options["AWS_ENDPOINT_URL"] = s3.endpoint
        options["AWS_ALLOW_HTTP"] = "true" if s3.endpoint.startswith("http://") else "false"
    return tuple(sorted(options.items()))


def exists(location: TableLocation) -> bool:
    return bool(DeltaTable.is_deltatable(location.uri, storage_options=location.options))


@functools.lru_cache(maxsize=1024)
def snapshot(location: TableLocation, version: int) -> Snapshot:
    """Files and totals of one version; immutable, so cached."""
    table = DeltaTable(location.uri, version=version, storage_options=location.options)
    actions = pa.table(table.get_add_actions(flatten=True))
    relative = tuple(actions.column("path").to_pylist())
    return Snapshot(
        version=version,
        files=tuple(table.file_uris()),
        relative_files=relative,
        schema=pa.schema(table.schema()),
        row_count=int(pa.compute.sum(actions.column("num_records")).as_py() or 0),
        size_bytes=int(pa.compute.sum(actions.column("size_bytes")).as_py() or 0),
    )


def pyarrow_dataset(location: TableLocation, version: int) -> pads.Dataset:
    """A pyarrow dataset of one version (used for S3, where DuckDB cannot read files itself)."""
    table = DeltaTable(location.uri, version=version, storage_options=location.options)
    return table.to_pyarrow_dataset()


def commit(
    location: TableLocation, data: pa.RecordBatchReader, mode: Literal["append", "overwrite"], replace_schema: bool
) -> int:
    """Writes `data` as one Delta commit (append or overwrite); returns the new version."""
    try:
        write_deltalake(
            location.uri,
            data,
            mode=mode,
            schema_mode="overwrite" if replace_schema else None,
            storage_options=location.options or None,
        )
    except CommitFailedError as exc:
        raise CommitConflict(f"another commit to the table won: {exc}; retrying is safe", retry_after_s=0.1) from exc
    return DeltaTable(location.uri, storage_options=location.options).version()


def latest_version(location: TableLocation) -> int | None:
    try:
        return DeltaTable(location.uri, storage_options=location.options).version()
    except TableNotFoundError:
        return None


def settle(location: TableLocation, registered: int) -> None:
    """Brings the table back to the version the catalog registered, if a commit that was never
    registered (a crash between the two) sits on top, so the next commit does not carry it."""
    table = DeltaTable(location.uri, storage_options=location.options or None)
    if table.version() != registered:
        table.restore(registered)


def compact(location: TableLocation, target_size: int | None) -> dict[str, int]:
    table = DeltaTable(location.uri, storage_options=location.options)
    metrics = table.optimize.compact(target_size=target_size)
    return {
        "files_added": int(metrics.get("numFilesAdded", 0)),
        "files_removed": int(metrics.get("numFilesRemoved", 0)),
    }


def count_rows(location: TableLocation, version: int, match: KeyMatch) -> int:
    """Rows of one version whose key is in `match`."""
    dataset = pyarrow_dataset(location, version)
    return int(dataset.count_rows(filter=pads.field(match.column).isin(list(match.values))))


def delete_rows(location: TableLocation, match: KeyMatch) -> dict[str, int]:
    """Deletes the matching rows in one commit; files holding them are rewritten without them."""
    table = DeltaTable(location.uri, storage_options=location.options or None)
    try:
        metrics = table.delete(match.predicate())
    except CommitFailedError as exc:
        raise CommitConflict(f"another commit to the table won: {exc}; retrying is safe", retry_after_s=0.1) from exc
    return {
        "rows_deleted": int(metrics.get("num_deleted_rows", 0)),
        "files_rewritten": int(metrics.get("num_removed_files", 0)),
    }


def vacuum(location: TableLocation, retention_hours: float, dry_run: bool) -> list[str]:
    table = DeltaTable(location.uri, storage_options=location.options)
    # Whole hours only; round up so a retention never removes more than was asked for.
    hours = math.ceil(retention_hours)
    return table.vacuum(retention_hours=hours, dry_run=dry_run, enforce_retention_duration=False)


def remove(location: TableLocation) -> None:
    """Deletes a table that was never registered (a new dataset whose registration failed)."""
    filesystem, root = _filesystem(location)
    if location.local_path is not None:
        shutil.rmtree(root, ignore_errors=True)
    else:
        filesystem.delete_dir_contents(root, missing_dir_ok=True)


def commit_files(
    location: TableLocation, files: Sequence[Path], schema: pa.Schema, mode: Literal["append", "overwrite"]
) -> int:
    """Moves Parquet files written elsewhere into the table and records them in one Delta commit.

    The files land in a fresh "ingest-<id>/" folder, so they are invisible until the commit and
    easy to remove if it fails.
    """
    folder = f"ingest-{uuid.uuid4().hex}"
    filesystem, root = _filesystem(location)
    placed = [_place(filesystem, root, folder, f) for f in files]
    try:
        if not exists(location):
            DeltaTable.create(location.uri, schema=schema, storage_options=location.options or None)
        table = DeltaTable(location.uri, storage_options=location.options or None)
        table.create_write_transaction([_add_action(filesystem, root, p) for p in placed], mode=mode, schema=schema)
    except CommitFailedError as exc:
        filesystem.delete_dir(f"{root}/{folder}")
        raise CommitConflict(f"another commit to the table won: {exc}; retrying is safe", retry_after_s=0.1) from exc
    except BaseException:
        filesystem.delete_dir(f"{root}/{folder}")
        raise
    return DeltaTable(location.uri, storage_options=location.options or None).version()


def _place(filesystem: pafs.FileSystem, root: str, folder: str, source: Path) -> str:
    relative = f"{folder}/{source.name}"
    filesystem.create_dir(f"{root}/{folder}", recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        shutil.move(source, f"{root}/{relative}")  # a rename when the spool shares the disk
    else:
        pafs.copy_files(str(source), f"{root}/{relative}", destination_filesystem=filesystem)
    return relative


def _add_action(filesystem: pafs.FileSystem, root: str, relative: str) -> AddAction:
    info = filesystem.get_file_info(f"{root}/{relative}")
    with filesystem.open_input_file(f"{root}/{relative}") as handle:
        rows = pq.ParquetFile(handle).metadata.num_rows
    modified = int(info.mtime.timestamp() * 1000) if info.mtime else int(time.time() * 1000)
    return AddAction(relative, info.size, {}, modified, True, json.dumps({"numRecords": rows}))


def _filesystem(location: TableLocation) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the table root's path in it."""
    if location.local_path is not None:
        return pafs.LocalFileSystem(), str(location.local_path)
    options = location.options
    endpoint = urlparse(options.get("AWS_ENDPOINT_URL", ""))
    filesystem = pafs.S3FileSystem(
        region=options.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.netloc or None,
        scheme=endpoint.scheme or "https",
    )
    return filesystem, location.uri.removeprefix("s3://")
