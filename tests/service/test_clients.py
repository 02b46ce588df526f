"""The typed clients against real servers: what is retried, cancelling streams, upload sources."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import pytest

from lakehouse.client import RetryPolicy, StorageClient
from lakehouse.client.errors import (
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
    never_sent,
)
from lakehouse.client.storage import UPLOAD_CHUNK, AsyncStorageClient
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.errors import ResourceExhausted, Unavailable
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc
from tests.conftest import MeshFactory
from tests.support.mesh import make_config
from tests.support.servers import free_port

FAST_RETRY = RetryPolicy(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


class ScriptedStorage(pb_grpc.StorageServiceServicer):
    """A storage servicer each test scripts: failures to raise, a download that never ends."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.failures: list[Exception] = []
        self.buckets_created: list[str] = []
        self.big_listing = False
        self.stream_ended = asyncio.Event()
        self.stream_cancelled = False

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    async def ListBuckets(self, request: Any, context: Any) -> pb.ListBucketsResponse:
        self._count("ListBuckets")
        if self.failures:
            raise self.failures.pop(0)
        names = [f"bucket-{i:04d}" for i in range(200)] if self.big_listing else ["ok"]
        return pb.ListBucketsResponse(buckets=[pb.Bucket(name=name) for name in names])

    async def CreateBucket(self, request: Any, context: Any) -> pb.CreateBucketResponse:
        # The write commits, then the reply is lost: exactly when a retry would do harm.
        self._count("CreateBucket")
        self.buckets_created.append(request.name)
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, grpc.StatusCode):
            await context.abort(failure, "Socket closed")  # as a broken transport reports it: no ErrorInfo
        if failure is not None:
            raise failure
        return pb.CreateBucketResponse(bucket=pb.Bucket(name=request.name))

    async def GetObject(self, request: Any, context: Any) -> AsyncIterator[pb.GetObjectResponse]:
        self._count("GetObject")
        if self.failures:
            raise self.failures.pop(0)
        try:
            while True:
                yield pb.GetObjectResponse(chunk=b"x" * 1024)
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            # gRPC cancels the handler when the client cancels (the deadline is a minute away).
            self.stream_cancelled = True
            raise
        finally:
            self.stream_ended.set()


@pytest.fixture
async def scripted(tmp_path):
    servicer = ScriptedStorage()
    binding = ServiceBinding(
        "storage",
        "lakehouse.storage.v1.StorageService",
        lambda s: pb_grpc.add_StorageServiceServicer_to_server(servicer, s),
    )
    server = MeshServer(make_config(tmp_path), [binding], TokenAuthenticator(()))
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    client = AsyncStorageClient(channel, retry=FAST_RETRY, timeout_s=60)
    yield servicer, client, server
    await channel.close()
    await server.stop()


# -- what is retried ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [Unavailable("backend connection lost after commit"), grpc.StatusCode.UNAVAILABLE],
    ids=["unavailable-with-reason", "transport-unavailable"],
)
async def test_writes_are_not_retried_on_unavailable_after_the_server_acted(scripted, failure) -> None:
    servicer, client, _ = scripted
    servicer.failures = [failure, failure]
    with pytest.raises(UnavailableError):
        await client.create_bucket("reports")
    # A retry would have answered ALREADY_EXISTS for a bucket this very call created.
    assert servicer.buckets_created == ["reports"]
    assert servicer.calls["CreateBucket"] == 1


async def test_reads_are_retried_on_unavailable(scripted) -> None:
    servicer, client, _ = scripted
    servicer.failures = [Unavailable("backend down")]
    assert [b.name for b in (await client.list_buckets()).buckets] == ["ok"]
    assert servicer.calls["ListBuckets"] == 2


async def test_writes_are_retried_when_the_request_was_never_sent() -> None:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")  # nothing listens there
    client = AsyncStorageClient(channel, retry=FAST_RETRY, timeout_s=10)
    attempts = 0
    create_bucket = client._stub.CreateBucket

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return create_bucket(*args, **kwargs)

    client._stub.CreateBucket = counting  # type: ignore[method-assign]
    try:
        with pytest.raises(UnavailableError) as err:
            await client.create_bucket("reports")
    finally:
        await channel.close()
    assert never_sent(err.value), err.value.message
    assert attempts == FAST_RETRY.attempts


async def test_resource_exhausted_without_retry_info_is_not_retried(scripted) -> None:
    servicer, client, _ = scripted
    servicer.failures = [ResourceExhausted("bucket is full", reason="BUCKET_QUOTA_EXCEEDED")]
    with pytest.raises(ResourceExhaustedError) as err:
        await client.list_buckets()
    assert err.value.reason == "BUCKET_QUOTA_EXCEEDED"
    assert err.value.retry_delay_s is None
    assert servicer.calls["ListBuckets"] == 1


async def test_message_size_limit_is_not_retried(scripted) -> None:
    servicer, _, server = scripted
    servicer.big_listing = True
    channel = grpc.aio.insecure_channel(server.address, options=[("grpc.max_receive_message_length", 512)])
    client = AsyncStorageClient(channel, retry=FAST_RETRY, timeout_s=10)
    try:
        with pytest.raises(ResourceExhaustedError) as err:
            await client.list_buckets()
    finally:
        await channel.close()
    assert "larger than max" in err.value.message
    assert servicer.calls["ListBuckets"] == 1


async def test_resource_exhausted_with_retry_info_is_retried(scripted) -> None:
    servicer, client, _ = scripted
    servicer.failures = [ResourceExhausted("too many uploads at once", retry_after_s=0.01)]
    assert [b.name for b in (await client.list_buckets()).buckets] == ["ok"]
    assert servicer.calls["ListBuckets"] == 2


async def test_streams_are_retried_before_the_first_message_only_when_idempotent(scripted) -> None:
    servicer, client, _ = scripted
    request = pb.GetObjectRequest(key="endless")
    servicer.failures = [Unavailable("backend down")]
    with pytest.raises(UnavailableError):  # say an ingest: the server may have started it
        async for _ in client._server_stream(client._stub.GetObject, request, idempotent=False):
            pass
    assert servicer.calls["GetObject"] == 1

    servicer.failures = [Unavailable("backend down")]
    async with aclosing(client.get_object("endless")) as messages:
        assert (await anext(messages)).chunk
    assert servicer.calls["GetObject"] == 3


# -- leaving a download early ---------------------------------------------------------------------


def _hold_calls(client: AsyncStorageClient) -> list[Any]:
    """Keeps every GetObject call object alive (as a tracing interceptor might), so that only an
    explicit cancel, not garbage collection, can end the call before its deadline."""
    calls: list[Any] = []
    get_object = client._stub.GetObject

    def holding(*args: Any, **kwargs: Any) -> Any:
        calls.append(get_object(*args, **kwargs))
        return calls[-1]

    client._stub.GetObject = holding  # type: ignore[method-assign]
    return calls


async def test_breaking_out_of_a_download_cancels_the_call(scripted) -> None:
    servicer, client, _ = scripted
    calls = _hold_calls(client)
    async for message in client.get_object("endless"):
        assert message.chunk
        break
    await asyncio.wait_for(servicer.stream_ended.wait(), timeout=10)
    assert servicer.stream_cancelled is True
    assert calls[0].cancelled()


async def test_breaking_out_of_a_blocking_download_cancels_the_call(scripted) -> None:
    servicer, _, server = scripted

    def download_one_chunk() -> bytes:
        with StorageClient(server.address, timeout_s=60) as storage:
            calls = _hold_calls(storage._async)  # type: ignore[arg-type]
            for message in storage.get_object("endless"):
                chunk: bytes = message.chunk
                break
            assert calls[0].cancelled()
            return chunk

    assert await asyncio.to_thread(download_one_chunk) == b"x" * 1024
    await asyncio.wait_for(servicer.stream_ended.wait(), timeout=10)
    assert servicer.stream_cancelled is True


# -- upload sources -------------------------------------------------------------------------------


class BrokenFile:
    """A binary file whose second read fails, like a disk error halfway through."""

    def __init__(self, error: OSError) -> None:
        self.error = error
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise self.error
        return b"a" * size


async def test_a_failing_upload_source_raises_its_own_error(mesh_factory: MeshFactory) -> None:
    mesh = await mesh_factory(services=("storage",))
    error = OSError(5, "Input/output error")
    with pytest.raises(OSError) as err:
        await mesh.storage.put_object("raw/broken.bin", BrokenFile(error))  # type: ignore[arg-type]
    assert err.value is error
    with pytest.raises(NotFoundError):
        await mesh.storage.stat_object("raw/broken.bin")


async def test_a_failing_async_upload_source_raises_its_own_error(mesh_factory: MeshFactory) -> None:
    mesh = await mesh_factory(services=("storage",))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk"
        raise ValueError("source went away")

    with pytest.raises(ValueError, match="source went away"):
        await mesh.storage.put_object("raw/partial.bin", chunks())
    with pytest.raises(NotFoundError):
        await mesh.storage.stat_object("raw/partial.bin")


async def test_file_reads_run_off_the_event_loop(mesh_factory: MeshFactory) -> None:
    mesh = await mesh_factory(services=("storage",))
    payload = bytes(range(256)) * (UPLOAD_CHUNK // 256) * 2 + b"tail"
    loop_thread = threading.get_ident()
    reader_threads: list[int] = []

    class RecordingFile:
        offset = 0

        def read(self, size: int = -1) -> bytes:
            reader_threads.append(threading.get_ident())
            chunk = payload[self.offset : self.offset + size]
            self.offset += len(chunk)
            return chunk

    info = await mesh.storage.put_object("raw/big.bin", RecordingFile())  # type: ignore[arg-type]
    assert info.size_bytes == len(payload)
    assert await mesh.storage.read_object("raw/big.bin") == payload
    assert len(reader_threads) == 4  # three chunks and the empty read at the end
    assert loop_thread not in reader_threads
