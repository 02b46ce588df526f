"""The shared runtime through real servers: auth, error mapping, retries, health, sync clients."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lakehouse.client import CatalogClient, RetryPolicy, StorageClient, token_metadata
from lakehouse.client.errors import (
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.client.query import AsyncQueryClient
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import SERVICE_NAMES, TokenConfig
from lakehouse.server.common.errors import FieldViolation, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, make_config, start_mesh

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


async def test_the_mesh_identity_may_append_only_the_chat_session_log(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEST_OPS_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_MESH_TOKEN", "mesh-secret-token")
    config = make_config(tmp_path / "data", Backends(tokens=(TokenConfig(principal="ops", env="TEST_OPS_TOKEN"),)))
    config = replace(config, auth=replace(config.auth, mesh_token_env="TEST_MESH_TOKEN"))
    mesh = await start_mesh(config, ("storage", "catalog", "query"))
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n")
    try:
        as_mesh = AsyncQueryClient(mesh.channel, metadata=token_metadata("mesh-secret-token"), timeout_s=20)
        with pytest.raises(PermissionDeniedError) as refused:
            await as_mesh.ingest_file(csv, "payroll")
        assert refused.value.reason == "ROLE_NOT_ALLOWED"
        assert (await as_mesh.ingest_file(csv, "chat_sessions")).rows_written == 1
    finally:
        await mesh.stop()


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


SERVICE_FULL_NAMES = [f"lakehouse.{name}.v1.{name.capitalize()}Service" for name in SERVICE_NAMES]


async def test_every_service_is_built_and_serving(mesh) -> None:
    health = health_pb2_grpc.HealthStub(mesh.channel)
    for name in SERVICE_FULL_NAMES:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name
    # An erasure's sweep of memory gets a receipt, not UNIMPLEMENTED.
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


async def test_errors_quoting_huge_input_still_fit_the_trailers(scripted) -> None:
    servicer, client = scripted
    name = "Ω\u202e" * 3000  # percent-encoded, each character is 15 bytes of trailer
    servicer.failures = [
        NotFound(
            f"bucket {name!r} does not exist",
            reason="BUCKET_NOT_FOUND",
            metadata={f"k{i}": name for i in range(16)},
            violations=[FieldViolation(f"buckets[{i}]", name) for i in range(30)],
        )
    ]
    with pytest.raises(NotFoundError) as refused:  # not RESOURCE_EXHAUSTED for oversized trailers
        await client.list_buckets()
    assert refused.value.reason == "BUCKET_NOT_FOUND"
    assert refused.value.message.startswith("bucket 'Ω")
    assert refused.value.request_id


async def test_deadlines_are_enforced(scripted) -> None:
    _servicer, client = scripted
    with pytest.raises(DeadlineExceededError):
        await client._unary(client._stub.StatObject, pb.StatObjectRequest(key="k"), timeout_s=0.2)


class GatedStorage(pb_grpc.StorageServiceServicer):
    """ListBuckets waits for `gate`, so calls pile up in the server."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = 0

    async def ListBuckets(self, request: Any, context: Any) -> pb.ListBucketsResponse:
        self.entered += 1
        await self.gate.wait()
        return pb.ListBucketsResponse(buckets=[pb.Bucket(name="ok")])


async def test_calls_over_a_services_limit_are_refused_at_once_with_a_retry_delay(tmp_path) -> None:
    servicer = GatedStorage()
    binding = ServiceBinding(
        "storage",
        "lakehouse.storage.v1.StorageService",
        lambda s: pb_grpc.add_StorageServiceServicer_to_server(servicer, s),
    )
    server = MeshServer(make_config(tmp_path, service_concurrency={"storage": 2}), [binding], TokenAuthenticator(()))
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    client = AsyncStorageClient(channel, retry=RetryPolicy(attempts=1), timeout_s=10)
    try:
        held = [asyncio.create_task(client.list_buckets()) for _ in range(2)]
        while servicer.entered < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(ResourceExhaustedError) as refused:
            await client.list_buckets()
        assert refused.value.reason == "SERVICE_OVERLOADED"
        assert refused.value.retry_delay_s == pytest.approx(0.1)
        assert servicer.entered == 2  # the refused call never reached the servicer
        servicer.gate.set()
        assert [len((await call).buckets) for call in held] == [1, 1]
        assert [b.name for b in (await client.list_buckets()).buckets] == ["ok"]  # room again
    finally:
        await channel.close()
        await server.stop()


def test_concurrency_overrides_name_known_services(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown service 'storag'"):
        make_config(tmp_path, service_concurrency={"storag": 2})


async def test_an_idle_upload_is_ended_and_keeps_nothing(tmp_path) -> None:
    mesh = await start_mesh(make_config(tmp_path / "data", upload_idle_timeout_s=0.3), ("storage",))
    stub = pb_grpc.StorageServiceStub(mesh.channel)
    sent_header = asyncio.Event()

    async def slowloris() -> AsyncIterator[pb.PutObjectRequest]:
        yield pb.PutObjectRequest(header=pb.PutObjectHeader(key="slow.bin"))
        yield pb.PutObjectRequest(chunk=b"a little")
        sent_header.set()
        await asyncio.sleep(30)  # then nothing: the connection stays open, the stream idle
        yield pb.PutObjectRequest(commit=pb.PutObjectCommit())

    try:
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stub.PutObject(slowloris(), timeout=20)
        assert sent_header.is_set()
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "upload_idle_timeout_s" in (ended.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.StatObject(pb.StatObjectRequest(key="slow.bin"), timeout=10)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await mesh.stop()


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
