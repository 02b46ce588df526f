"""Bucket backends through pyarrow.fs: a local directory or an S3 bucket/prefix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyarrow import fs as pafs

from lakehouse.server.common.config import S3Config
from lakehouse.server.storage.errors import invalid_bucket_uri


@dataclass(frozen=True)
class Location:
    """Where a bucket lives, parsed from its URI."""

    backend: str
    """"local" or "s3"."""
    root: str
    """Absolute directory (local) or "bucket/prefix" (s3)."""

    @property
    def uri(self) -> str:
        return f"file://{self.root}" if self.backend == "local" else f"s3://{self.root}"


def parse_location(uri: str, default_dir: Path, field: str = "uri") -> Location:
    """Parses "s3://bucket/prefix", "file:///abs" or a plain path; empty means `default_dir`."""
    if not uri:
        return Location("local", str(default_dir.resolve()))
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise invalid_bucket_uri(field, "s3:// URIs need a bucket name: s3://bucket[/prefix]")
        return Location("s3", f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"))
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise invalid_bucket_uri(field, "file:// URIs must be absolute paths on this host (file:///path)")
        return Location("local", str(Path(parsed.path).resolve()))
    if parsed.scheme:
        raise invalid_bucket_uri(field, f"unsupported scheme {parsed.scheme!r}: use s3://, file:// or a path")
    return Location("local", str(Path(uri).expanduser().resolve()))


def s3_filesystem(config: S3Config) -> pafs.S3FileSystem:
    """An S3 filesystem for the configured endpoint; credentials come from the AWS_* environment."""
    kwargs: dict[str, object] = {
        "region": config.region,
        "connect_timeout": config.connect_timeout_s,
        "request_timeout": config.request_timeout_s,
        "allow_bucket_creation": True,
    }
    if config.endpoint:
        endpoint = urlparse(config.endpoint)
        kwargs["endpoint_override"] = endpoint.netloc or config.endpoint
        kwargs["scheme"] = endpoint.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


def open_filesystem(location: Location, s3: S3Config) -> pafs.FileSystem:
    """A filesystem rooted at the bucket: every path handed to it is a key."""
    if location.backend == "local":
        Path(location.root).mkdir(parents=True, exist_ok=True)
        return pafs.SubTreeFileSystem(location.root, pafs.LocalFileSystem())
    base = s3_filesystem(s3)
    bucket = location.root.split("/", 1)[0]
    if base.get_file_info(bucket).type == pafs.FileType.NotFound:
        base.create_dir(bucket)
    return pafs.SubTreeFileSystem(location.root, base)
