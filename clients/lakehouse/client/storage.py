"""Typed async client for the storage service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from typing import BinaryIO

from lakehouse.client._base import BaseAsyncClient
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc

UPLOAD_CHUNK = 1024 * 1024

Source = bytes | BinaryIO | Iterable[bytes] | AsyncIterable[bytes]


class AsyncStorageClient(BaseAsyncClient):
    """Buckets and objects. Every call has a deadline; see `RetryPolicy` for what is retried."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.StorageServiceStub(channel)

    async def list_buckets(self, page_size: int = 0, page_token: str = "") -> pb.ListBucketsResponse:
        return await self._unary(
            self._stub.ListBuckets, pb.ListBucketsRequest(page_size=page_size, page_token=page_token)
        )

    async def create_bucket(self, name: str, uri: str = "", max_bytes: int = 0) -> pb.Bucket:
        response = await self._unary(
            self._stub.CreateBucket,
            pb.CreateBucketRequest(name=name, uri=uri, max_bytes=max_bytes),
            idempotent=False,  # a repeat after success fails with ALREADY_EXISTS
        )
        return response.bucket

    async def delete_bucket(self, name: str, force: bool = False) -> int:
        response = await self._unary(
            self._stub.DeleteBucket, pb.DeleteBucketRequest(name=name, force=force), idempotent=False
        )
        return response.objects_deleted

    async def bucket_health(self, name: str = "") -> pb.GetBucketHealthResponse:
        return await self._unary(self._stub.GetBucketHealth, pb.GetBucketHealthRequest(name=name))

    async def put_object(
        self,
        key: str,
        source: Source,
        *,
        bucket: str = "",
        content_type: str = "",
        metadata: Mapping[str, str] | None = None,
        expected_sha256: str = "",
        timeout_s: float | None = None,
    ) -> pb.ObjectInfo:
        """Uploads `source` (bytes, a binary file, or an iterable of chunks) as one object.

        A file is read in a worker thread, off the event loop; a plain iterable is consumed on the
        loop, so pass an async iterable for a source that blocks. An error the source raises (say
        an OSError) aborts the upload and is raised here as it is. Not retried, except bytes or a
        seekable file whose refusal gRPC lost (see `_client_stream`).
        """
        header = pb.PutObjectHeader(
            bucket=bucket,
            key=key,
            content_type=content_type,
            metadata=dict(metadata or {}),
            expected_sha256=expected_sha256,
        )
        if isinstance(source, bytes):
            header.expected_size_bytes = len(source)

        # A seekable file can be read again from where it stood, so it can be sent again too.
        start = source.tell() if _seekable(source) else None  # type: ignore[union-attr]

        async def requests() -> AsyncIterator[pb.PutObjectRequest]:
            if start is not None:
                source.seek(start)  # type: ignore[union-attr]
            yield pb.PutObjectRequest(header=header)
            async for chunk in _chunks(source):
                yield pb.PutObjectRequest(chunk=chunk)
            yield pb.PutObjectRequest(commit=pb.PutObjectCommit())

        replayable = isinstance(source, bytes) or start is not None
        response = await self._client_stream(self._stub.PutObject, requests, timeout_s=timeout_s, replayable=replayable)
        return response.object

    async def get_object(
        self, key: str, *, bucket: str = "", offset: int = 0, length: int = 0, timeout_s: float | None = None
    ) -> AsyncGenerator[pb.GetObjectResponse, None]:
        """Streams the object: the first message carries its metadata, every message a chunk.

        Stopping early cancels the download once this generator is closed: wrap it in
        `contextlib.aclosing` (or call `aclose()`) to have that happen at once.
        """
        request = pb.GetObjectRequest(bucket=bucket, key=key, offset=offset, length=length)
        # aclosing: closing this generator must close the inner one too, which cancels the call.
        async with aclosing(self._server_stream(self._stub.GetObject, request, timeout_s=timeout_s)) as messages:
            async for message in messages:
                yield message

    async def read_object(self, key: str, *, bucket: str = "", offset: int = 0, length: int = 0) -> bytes:
        """The whole object (or range) in memory; use `get_object` for large ones."""
        async with aclosing(self.get_object(key, bucket=bucket, offset=offset, length=length)) as messages:
            parts = [m.chunk async for m in messages]
        return b"".join(parts)

    async def stat_object(self, key: str, *, bucket: str = "") -> pb.ObjectInfo:
        response = await self._unary(self._stub.StatObject, pb.StatObjectRequest(bucket=bucket, key=key))
        return response.object

    async def list_objects(
        self, *, bucket: str = "", prefix: str = "", page_size: int = 0, page_token: str = ""
    ) -> pb.ListObjectsResponse:
        request = pb.ListObjectsRequest(bucket=bucket, prefix=prefix, page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListObjects, request)

    async def delete_object(self, key: str, *, bucket: str = "", allow_missing: bool = False) -> bool:
        response = await self._unary(
            self._stub.DeleteObject,
            pb.DeleteObjectRequest(bucket=bucket, key=key, allow_missing=allow_missing),
            idempotent=False,  # a repeat after success fails with NOT_FOUND or reports deleted=False
        )
        return response.deleted


def _seekable(source: Source) -> bool:
    seekable = getattr(source, "seekable", None)
    return bool(seekable and seekable())


async def _chunks(source: Source) -> AsyncIterator[bytes]:
    if isinstance(source, bytes):
        for start in range(0, len(source), UPLOAD_CHUNK):
            yield source[start : start + UPLOAD_CHUNK]
    elif hasattr(source, "read"):
        # File reads block (a slow disk, a network mount): keep them off the event loop.
        while chunk := await asyncio.to_thread(source.read, UPLOAD_CHUNK):  # type: ignore[union-attr]
            yield chunk
    elif isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    else:
        for chunk in source:
            yield chunk
