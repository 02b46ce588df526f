"""StorageService glue: protobuf <-> domain, blocking work in the executor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from lakehouse.server.common.app import ServiceBinding
from lakehouse.server.common.config import Config
from lakehouse.server.common.convert import to_timestamp
from lakehouse.server.common.errors import invalid_field
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_request
from lakehouse.server.storage import service as domain
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc

DEFAULT_CHUNK = 1024 * 1024
MAX_CHUNK = 4 * 1024 * 1024
_BACKENDS = {"local": pb.BUCKET_BACKEND_LOCAL, "s3": pb.BUCKET_BACKEND_S3}


def bucket_pb(info: domain.BucketInfo) -> pb.Bucket:
    return pb.Bucket(
        name=info.name,
        uri=info.location.uri,
        backend=_BACKENDS[info.location.backend],
        max_bytes=info.max_bytes,
        is_default=info.is_default,
        from_config=info.from_config,
        create_time=to_timestamp(info.create_time),
    )


def object_pb(info: domain.ObjectInfo) -> pb.ObjectInfo:
    return pb.ObjectInfo(
        bucket=info.bucket,
        key=info.key,
        size_bytes=info.size_bytes,
        sha256=info.sha256,
        content_type=info.content_type,
        metadata=dict(info.metadata),
        update_time=to_timestamp(info.update_time),
    )


class StorageServicer(pb_grpc.StorageServiceServicer):
    def __init__(self, service: domain.StorageService, executor: BlockingExecutor) -> None:
        self._svc = service
        self._run = executor.run

    async def ListBuckets(self, request: pb.ListBucketsRequest, context: Any) -> pb.ListBucketsResponse:
        page = page_request(request.page_size, request.page_token)
        buckets, token = await self._run(self._svc.list_buckets, page)
        return pb.ListBucketsResponse(buckets=[bucket_pb(b) for b in buckets], next_page_token=token)

    async def CreateBucket(self, request: pb.CreateBucketRequest, context: Any) -> pb.CreateBucketResponse:
        info = await self._run(self._svc.create_bucket, request.name, request.uri, request.max_bytes)
        return pb.CreateBucketResponse(bucket=bucket_pb(info))

    async def DeleteBucket(self, request: pb.DeleteBucketRequest, context: Any) -> pb.DeleteBucketResponse:
        count = await self._run(self._svc.delete_bucket, request.name, request.force)
        return pb.DeleteBucketResponse(objects_deleted=count)

    async def GetBucketHealth(self, request: pb.GetBucketHealthRequest, context: Any) -> pb.GetBucketHealthResponse:
        health = await self._run(self._svc.bucket_health, request.name)
        return pb.GetBucketHealthResponse(
            bucket=bucket_pb(health.bucket),
            reachable=health.reachable,
            writable=health.writable,
            used_bytes=health.used_bytes,
            object_count=health.object_count,
            detail=health.detail,
        )

    async def PutObject(
        self, request_iterator: AsyncIterator[pb.PutObjectRequest], context: Any
    ) -> pb.PutObjectResponse:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "header":
            raise invalid_field("header", "the first message must carry the header", reason="MISSING_HEADER")
        header = first.header
        put = domain.PutRequest(
            bucket=header.bucket,
            key=header.key,
            content_type=header.content_type,
            metadata=dict(header.metadata),
            expected_size_bytes=header.expected_size_bytes if header.HasField("expected_size_bytes") else None,
            expected_sha256=header.expected_sha256,
        )
        session = await self._run(self._svc.begin_put, put)
        try:
            commit = await self._receive_chunks(request_iterator, session)
            # A caller that goes away mid-commit must not cut a publish in half: shielded, the
            # commit finishes or fails as a whole whatever happens to this call.
            info = await asyncio.shield(self._run(session.commit, commit.sha256))
        finally:
            # File I/O, and it waits for a commit still running: off the event loop, and shielded
            # so that a second cancellation cannot skip it.
            await asyncio.shield(self._run(session.abort))
        return pb.PutObjectResponse(object=object_pb(info))

    async def _receive_chunks(
        self, request_iterator: AsyncIterator[pb.PutObjectRequest], session: domain.PutSession
    ) -> pb.PutObjectCommit:
        """Writes chunks to the spool until the commit message; anything else is refused.

        A cancelled client looks to the server like a stream that simply ended, so only an
        explicit commit makes an upload visible.
        """
        async for message in request_iterator:
            part = message.WhichOneof("part")
            if part == "chunk":
                await self._run(session.write, message.chunk)
            elif part == "commit":
                if await anext(aiter(request_iterator), None) is not None:
                    raise invalid_field("commit", "must be the last message of the stream", reason="UNEXPECTED_MESSAGE")
                return message.commit
            else:
                raise invalid_field("header", "only the first message may carry a header", reason="UNEXPECTED_MESSAGE")
        raise invalid_field(
            "commit", "the stream ended without a commit message; nothing was stored", reason="MISSING_COMMIT"
        )

    async def GetObject(self, request: pb.GetObjectRequest, context: Any) -> AsyncIterator[pb.GetObjectResponse]:
        if request.chunk_size < 0:
            raise invalid_field("chunk_size", "must not be negative", reason="INVALID_CHUNK_SIZE")
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK)
        info, chunks = await self._run(
            self._svc.open_read, request.bucket, request.key, request.offset, request.length, chunk
        )
        first: pb.GetObjectResponse | None = pb.GetObjectResponse(object=object_pb(info), offset=request.offset)
        while (item := await self._run(next, chunks, None)) is not None:
            offset, data = item
            if first is not None:
                first.chunk, first.offset = data, offset
                yield first
                first = None
            else:
                yield pb.GetObjectResponse(chunk=data, offset=offset)
        if first is not None:  # empty object or empty range: still report the metadata
            yield first

    async def StatObject(self, request: pb.StatObjectRequest, context: Any) -> pb.StatObjectResponse:
        info = await self._run(self._svc.stat, request.bucket, request.key)
        return pb.StatObjectResponse(object=object_pb(info))

    async def ListObjects(self, request: pb.ListObjectsRequest, context: Any) -> pb.ListObjectsResponse:
        page = page_request(request.page_size, request.page_token, default=1000, maximum=10000)
        objects, token = await self._run(self._svc.list_objects, request.bucket, request.prefix, page)
        return pb.ListObjectsResponse(objects=[object_pb(o) for o in objects], next_page_token=token)

    async def DeleteObject(self, request: pb.DeleteObjectRequest, context: Any) -> pb.DeleteObjectResponse:
        deleted = await self._run(self._svc.delete_object, request.bucket, request.key, request.allow_missing)
        return pb.DeleteObjectResponse(deleted=deleted)


def build(config: Config, executor: BlockingExecutor) -> ServiceBinding:
    """The storage service ready to host."""
    servicer = StorageServicer(domain.StorageService(config), executor)
    return ServiceBinding(
        name="storage",
        full_name=pb.DESCRIPTOR.services_by_name["StorageService"].full_name,
        register=lambda server: pb_grpc.add_StorageServiceServicer_to_server(servicer, server),
    )
