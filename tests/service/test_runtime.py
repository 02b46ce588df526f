"""The shared runtime through real servers: auth, error mapping, retries, health, sync clients."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lakehouse.chat.v1 import chat_service_pb2, chat_service_pb2_grpc
from lakehouse.client import CatalogClient, RetryPolicy, StorageClient, token_metadata
from lakehouse.client.errors import (
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import TokenConfig
from lakehouse.server.common.errors import InvalidArgument, ResourceExhausted, Unavailable
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, make_config

TOKEN = "s3cr3t-token-value"
ROTATED = "next-token-value"


@pytest.fixture
async def secured(mesh_factory: MeshFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_OPS_TOKEN", TOKEN)
    tokens = (
        TokenConfig(principal="ops", role="admin", env="TEST_OPS_TOKEN"),
        TokenConfig(principal="ops", role="admin", sha256=hashlib.sha256(ROTATED.encode()).hexdigest()),
        TokenConfig(principal="analyst", role="reader", sha256=hashlib.sha256(b"reader-token").hexdigest()),
    )
    return await mesh_factory(Backends(tokens=tokens), token=TOKEN)


async def test_calls_need_a_known_token(secured) -> None:
    anonymous = AsyncStorageClient(secured.channel, metadata=token_metadata(""))
    with pytest.raises(UnauthenticatedError) as err:
        await anonymous.list_buckets()
    assert err.value.reason == "MISSING_TOKEN"
    wrong = AsyncStorageClient(secured.channel, metadata=token_metadata("guess"))
    with pytest.raises(UnauthenticatedError) as err:
        await wrong.list_buckets()
    assert err.value.reason == "INVALID_TOKEN"
    assert "guess" not in err.value.message
    malformed = AsyncStorageClient(secured.channel, metadata=lambda: (("authorization", f"Basic {TOKEN}"),))
    with pytest.raises(UnauthenticatedError) as err:
        await malformed.list_buckets()
    assert err.value.reason == "MALFORMED_TOKEN"


async def test_rotated_tokens_map_to_the_same_principal(secured) -> None:
    for token in (TOKEN, ROTATED):
        client = AsyncStorageClient(secured.channel, metadata=token_metadata(token))
        assert [b.name for b in (await client.list_buckets()).buckets] == ["default"]
    assert (await secured.catalog.whoami()).principal == "ops"


async def test_health_and_reflection_need_no_token(secured) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="lakehouse.catalog.v1.CatalogService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_mesh_hops_carry_the_callers_credentials(secured) -> None:
    # The catalog checks the bucket by calling the storage service over gRPC with the caller's token.
    created = await secured.catalog.create_dataset("workers", _schema())
    assert created.dataset.owner == "ops"
    with pytest.raises(NotFoundError) as err:
        await secured.catalog.create_dataset("clients", _schema(), bucket="missing")
    assert err.value.reason == "BUCKET_NOT_FOUND"


async def test_tokens_never_reach_the_log(secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="lakehouse")
    await secured.catalog.whoami()
    with pytest.raises(UnauthenticatedError):
        await AsyncStorageClient(secured.channel, metadata=token_metadata("wrong-" + TOKEN)).list_buckets()
    assert "rpc /lakehouse.catalog.v1.CatalogService/WhoAmI code=OK" in caplog.text
    assert TOKEN not in caplog.text


async def test_unbuilt_services_answer_unimplemented_with_the_method_name(mesh) -> None:
    stub = chat_service_pb2_grpc.ChatServiceStub(mesh.channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Chat(chat_service_pb2.ChatRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/lakehouse.chat.v1.ChatService/Chat is not implemented yet" in err.value.details()
    # The memory service is built: an erasure's sweep gets a receipt, not UNIMPLEMENTED.
    receipt = await AsyncMemoryClient(mesh.channel).forget_source_rows("workers", ["1"], reason="erasure")
    assert (receipt.traces_matched, receipt.traces_deleted) == (0, 0)


class FlakyStorage(pb_grpc.StorageServiceServicer):
    """A servicer whose behaviour each test scripts, to drive the interceptor and client."""

    def __init__(self) -> None:
        self.calls = 0
        self.failures: list[Exception] = []

    async def ListBuckets(self, request: Any, context: Any) -> pb.ListBucketsResponse:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return pb.ListBucketsResponse(buckets=[pb.Bucket(name="ok")])

    async def StatObject(self, request: Any, context: Any) -> pb.StatObjectResponse:
        await asyncio.sleep(5)
        return pb.StatObjectResponse()


@pytest.fixture
async def scripted(tmp_path):
    servicer = FlakyStorage()
    binding = ServiceBinding(
        "storage",
        "lakehouse.storage.v1.StorageService",
        lambda s: pb_grpc.add_StorageServiceServicer_to_server(servicer, s),
    )
    server = MeshServer(make_config(tmp_path), [binding], TokenAuthenticator(()))
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    client = AsyncStorageClient(
        channel, retry=RetryPolicy(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05), timeout_s=10
    )
    yield servicer, client
    await channel.close()
    await server.stop()


async def test_unavailable_is_retried_then_succeeds(scripted) -> None:
    servicer, client = scripted
    servicer.failures = [Unavailable("backend down", retry_after_s=0.01), Unavailable("still down")]
    assert [b.name for b in (await client.list_buckets()).buckets] == ["ok"]
    assert servicer.calls == 3


async def test_retries_are_bounded(scripted) -> None:
    servicer, client = scripted
    servicer.failures = [ResourceExhausted("busy", retry_after_s=0.01) for _ in range(5)]
    with pytest.raises(ResourceExhaustedError) as err:
        await client.list_buckets()
    assert err.value.retry_delay_s == pytest.approx(0.01)
    assert servicer.calls == 3


async def test_user_mistakes_are_not_retried(scripted) -> None:
    servicer, client = scripted
    servicer.failures = [InvalidArgument("no", reason="BAD")]
    with pytest.raises(InvalidArgumentError):
        await client.list_buckets()
    assert servicer.calls == 1


async def test_unexpected_errors_become_internal_without_internals(scripted, caplog: pytest.LogCaptureFixture) -> None:
    servicer, client = scripted
    servicer.failures = [RuntimeError("/var/secret/path exploded")]
    with pytest.raises(InternalError) as err:
        await client.list_buckets()
    assert "/var/secret" not in err.value.message
    assert err.value.request_id and err.value.request_id in err.value.message
    assert "/var/secret/path exploded" in caplog.text  # the operator sees it in the log
    assert servicer.calls == 1


async def test_deadlines_are_enforced(scripted) -> None:
    _servicer, client = scripted
    with pytest.raises(DeadlineExceededError):
        await client._unary(client._stub.StatObject, pb.StatObjectRequest(key="k"), timeout_s=0.2)


async def test_drain_sets_health_not_serving(tmp_path) -> None:
    server = MeshServer(make_config(tmp_path, grace_period_s=2.0), [], TokenAuthenticator(()))
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(server.stop())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping
    await channel.close()


async def test_blocking_clients_work_from_plain_code(mesh) -> None:
    def use() -> tuple[bytes, str]:
        with StorageClient(mesh.address) as storage, CatalogClient(mesh.address) as catalog:
            storage.put_object("sync/a.txt", b"from sync code")
            chunks = b"".join(m.chunk for m in storage.get_object("sync/a.txt"))
            try:
                catalog.get_dataset("nope")
            except NotFoundError as exc:
                return chunks, exc.reason
        return chunks, ""

    assert await asyncio.to_thread(use) == (b"from sync code", "DATASET_NOT_FOUND")


def _schema():
    import pyarrow as pa

    return pa.schema([("id", pa.int64())])
