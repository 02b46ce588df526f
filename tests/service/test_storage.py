"""Storage service through its real gRPC server, on local disk and on S3 (moto on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from lakehouse.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
    from_rpc_error,
)
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, eventually


@pytest.fixture
async def storage_mesh(mesh_factory: MeshFactory, bucket_backend: Backends):
    return await mesh_factory(bucket_backend, services=("storage",))


async def test_put_get_stat_list_delete_round_trip(storage_mesh) -> None:
    s = storage_mesh.storage
    data = bytes(range(256)) * 20_000  # 5 MiB: several chunks each way
    info = await s.put_object(
        "raw/2026/blob.bin", data, content_type="application/octet-stream", metadata={"source": "test"}
    )
    assert info.size_bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()

    assert await s.read_object("raw/2026/blob.bin") == data
    stat = await s.stat_object("raw/2026/blob.bin")
    assert (stat.content_type, dict(stat.metadata), stat.sha256) == (
        "application/octet-stream",
        {"source": "test"},
        info.sha256,
    )

    await s.put_object("raw/2026/a.csv", b"id\n1\n")
    await s.put_object("other.txt", b"x")
    listed = await s.list_objects(prefix="raw/")
    assert [o.key for o in listed.objects] == ["raw/2026/a.csv", "raw/2026/blob.bin"]

    assert await s.delete_object("raw/2026/a.csv") is True
    with pytest.raises(NotFoundError) as err:
        await s.stat_object("raw/2026/a.csv")
    assert err.value.reason == "OBJECT_NOT_FOUND"
    assert await s.delete_object("raw/2026/a.csv", allow_missing=True) is False


async def test_byte_ranges_and_bad_ranges(storage_mesh) -> None:
    s = storage_mesh.storage
    await s.put_object("r.txt", b"0123456789")
    assert await s.read_object("r.txt", offset=3, length=4) == b"3456"
    assert await s.read_object("r.txt", offset=8) == b"89"
    assert await s.read_object("r.txt", offset=10) == b""
    with pytest.raises(OutOfRangeError) as err:
        await s.read_object("r.txt", offset=11)
    assert err.value.reason == "INVALID_RANGE"


async def test_overwrite_replaces_content_and_metadata(storage_mesh) -> None:
    s = storage_mesh.storage
    await s.put_object("k", b"first", metadata={"v": "1"})
    await s.put_object("k", b"second!", metadata={"v": "2"})
    assert await s.read_object("k") == b"second!"
    assert dict((await s.stat_object("k")).metadata) == {"v": "2"}


async def test_listing_pages_through_every_key_once(storage_mesh) -> None:
    s = storage_mesh.storage
    keys = [f"p/{i:03d}" for i in range(25)]
    await asyncio.gather(*(s.put_object(k, k.encode()) for k in keys))
    seen, token = [], ""
    while True:
        page = await s.list_objects(prefix="p/", page_size=10, page_token=token)
        seen += [o.key for o in page.objects]
        token = page.next_page_token
        if not token:
            break
    assert seen == keys


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "must not be empty"),
        ("a" * 1025, "at most 1024 bytes"),
        ("é" * 513, "at most 1024 bytes"),
        ("bad\x00key", "control characters"),
        ("tab\tkey", "control characters"),
        ("/etc/passwd", "must not start with '/'"),
        ("../escape", "'.' or '..'"),
        ("a/../../b", "'.' or '..'"),
        ("a/./b", "'.' or '..'"),
        ("a//b", "empty path segments"),
        ("_lakehouse/meta/x", "reserved"),
    ],
)
async def test_bad_keys_are_refused_naming_the_field_and_nothing_is_written(storage_mesh, key: str, why: str) -> None:
    s = storage_mesh.storage
    with pytest.raises(InvalidArgumentError) as err:
        await s.put_object(key, b"payload")
    assert err.value.reason == "INVALID_OBJECT_KEY"
    assert err.value.violations[0].field == "header.key"
    assert why in err.value.violations[0].description
    with pytest.raises(InvalidArgumentError) as err:
        await s.stat_object(key)
    assert err.value.violations[0].field == "key"
    assert (await s.list_objects()).objects == []


async def test_key_of_exactly_1024_bytes_is_accepted(storage_mesh) -> None:
    key = "/".join(["a" * 200] * 5) + "/" + "b" * 19
    assert len(key.encode()) == 1024
    await storage_mesh.storage.put_object(key, b"ok")
    assert await storage_mesh.storage.read_object(key) == b"ok"
    assert (await storage_mesh.storage.stat_object(key)).sha256 == hashlib.sha256(b"ok").hexdigest()


async def test_local_bucket_refuses_path_parts_longer_than_the_disk_allows(mesh_factory: MeshFactory) -> None:
    mesh = await mesh_factory(services=("storage",))
    with pytest.raises(InvalidArgumentError) as err:
        await mesh.storage.put_object("k/" + "a" * 256, b"x")
    assert err.value.violations[0].field == "header.key"
    assert "255 bytes" in err.value.violations[0].description


async def test_checksum_mismatch_keeps_nothing_and_previous_version_survives(storage_mesh) -> None:
    s = storage_mesh.storage
    await s.put_object("doc", b"original")
    with pytest.raises(FailedPreconditionError) as err:
        await s.put_object("doc", b"tampered", expected_sha256="0" * 64)
    assert err.value.reason == "CHECKSUM_MISMATCH"
    assert await s.read_object("doc") == b"original"
    assert [o.key for o in (await s.list_objects()).objects] == ["doc"]


async def test_missing_header_is_invalid_argument(storage_mesh) -> None:
    stub = pb_grpc.StorageServiceStub(storage_mesh.channel)

    async def chunks_only() -> AsyncIterator[pb.PutObjectRequest]:
        yield pb.PutObjectRequest(chunk=b"no header")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PutObject(chunks_only())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "header" in err.value.details()


async def test_stream_without_commit_or_with_trailing_messages_stores_nothing(storage_mesh) -> None:
    stub = pb_grpc.StorageServiceStub(storage_mesh.channel)

    async def messages(*parts: pb.PutObjectRequest) -> AsyncIterator[pb.PutObjectRequest]:
        for part in parts:
            yield part

    header = pb.PutObjectRequest(header=pb.PutObjectHeader(key="k"))
    chunk = pb.PutObjectRequest(chunk=b"data")
    commit = pb.PutObjectRequest(commit=pb.PutObjectCommit())
    for parts, reason in (
        ((header, chunk), "MISSING_COMMIT"),
        ((header, commit, chunk), "UNEXPECTED_MESSAGE"),
        ((header, header, commit), "UNEXPECTED_MESSAGE"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PutObject(messages(*parts))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert from_rpc_error(err.value).reason == reason
    assert (await storage_mesh.storage.list_objects()).objects == []
    bad_sum = pb.PutObjectRequest(commit=pb.PutObjectCommit(sha256="f" * 64))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PutObject(messages(header, chunk, bad_sum))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await storage_mesh.storage.list_objects()).objects == []


async def test_cancelled_upload_leaves_nothing_visible(storage_mesh, tmp_path: Path) -> None:
    stub = pb_grpc.StorageServiceStub(storage_mesh.channel)
    sent = asyncio.Event()

    async def stalled() -> AsyncIterator[pb.PutObjectRequest]:
        yield pb.PutObjectRequest(header=pb.PutObjectHeader(key="partial.bin"))
        yield pb.PutObjectRequest(chunk=b"x" * 1_000_000)
        sent.set()
        await asyncio.sleep(3600)  # the client gives up before finishing

    call = stub.PutObject(stalled())
    await sent.wait()
    await asyncio.sleep(0.3)  # let the server receive the chunk
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    spool = tmp_path / "data" / "buckets" / "default" / "_lakehouse" / "tmp"
    assert await eventually(lambda: not spool.exists() or list(spool.iterdir()) == [])
    assert (await storage_mesh.storage.list_objects()).objects == []
    with pytest.raises(NotFoundError):
        await storage_mesh.storage.stat_object("partial.bin")


async def test_bucket_size_cap_is_enforced_while_streaming(mesh_factory: MeshFactory, bucket_backend: Backends) -> None:
    capped = Backends(**{**bucket_backend.__dict__, "bucket_max_bytes": 3_000_000})
    mesh = await mesh_factory(capped, services=("storage",))
    s = mesh.storage
    await s.put_object("a", b"a" * 2_000_000)
    with pytest.raises(ResourceExhaustedError) as err:
        await s.put_object("b", b"b" * 2_000_000)
    assert err.value.reason == "BUCKET_QUOTA_EXCEEDED"
    assert [o.key for o in (await s.list_objects()).objects] == ["a"]
    # Replacing an object counts its new size only.
    await s.put_object("a", b"c" * 2_900_000)


async def test_runtime_buckets_persist_and_protect_the_default(
    storage_mesh, mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    s = storage_mesh.storage
    created = await s.create_bucket("scratch", uri=str(tmp_path / "scratch-dir"))
    assert created.backend == pb.BUCKET_BACKEND_LOCAL and not created.from_config
    await s.put_object("f", b"1", bucket="scratch")
    names = [b.name for b in (await s.list_buckets()).buckets]
    assert names == ["default", "scratch"]

    mesh = await mesh_factory.restart(storage_mesh)
    s = mesh.storage
    assert [b.name for b in (await s.list_buckets()).buckets] == ["default", "scratch"]
    assert await s.read_object("f", bucket="scratch") == b"1"

    with pytest.raises(FailedPreconditionError) as err:
        await s.delete_bucket("default")
    assert err.value.reason == "BUCKET_PROTECTED"
    with pytest.raises(FailedPreconditionError) as err:
        await s.delete_bucket("scratch")
    assert err.value.reason == "BUCKET_NOT_EMPTY"
    assert await s.delete_bucket("scratch", force=True) == 1
    with pytest.raises(NotFoundError) as err:
        await s.read_object("f", bucket="scratch")
    assert err.value.reason == "BUCKET_NOT_FOUND"


@pytest.mark.parametrize("name", ["ab", "Upper", "has_underscore", "1starts-with-digit", "x" * 64])
async def test_bad_bucket_names_are_refused(storage_mesh, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await storage_mesh.storage.create_bucket(name)
    assert err.value.reason == "INVALID_BUCKET_NAME"
    assert err.value.violations[0].field == "name"


async def test_bad_bucket_uri_is_refused(storage_mesh) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await storage_mesh.storage.create_bucket("weird", uri="ftp://host/path")
    assert err.value.reason == "INVALID_BUCKET_URI"


async def test_bucket_health_reports_usage(storage_mesh) -> None:
    s = storage_mesh.storage
    await s.put_object("a", b"12345")
    health = await s.bucket_health()
    assert (health.reachable, health.writable, health.object_count, health.used_bytes) == (True, True, 1, 5)


async def test_s3_bucket_created_at_runtime(mesh_factory: MeshFactory, s3) -> None:
    mesh = await mesh_factory(Backends(s3_endpoint=s3.endpoint_url), services=("storage",))
    s = mesh.storage
    bucket = await s.create_bucket("remote", uri="s3://runtime-made/prefix")
    assert bucket.backend == pb.BUCKET_BACKEND_S3
    await s.put_object("x/y.txt", b"over s3", bucket="remote")
    assert await s.read_object("x/y.txt", bucket="remote") == b"over s3"
    assert (await s.bucket_health("remote")).writable


async def test_local_disk_key_clashes_are_a_precondition_not_an_internal_error(mesh_factory: MeshFactory) -> None:
    mesh = await mesh_factory(services=("storage",))
    s = mesh.storage
    await s.put_object("reports/2026", b"a file")
    with pytest.raises(FailedPreconditionError) as err:
        await s.put_object("reports/2026/jan.csv", b"x")
    assert err.value.reason == "KEY_CONFLICT"
    await s.put_object("archive/2025/dec.csv", b"y")
    with pytest.raises(FailedPreconditionError) as err:
        await s.put_object("archive/2025", b"z")
    assert err.value.reason == "KEY_CONFLICT"
    assert sorted(o.key for o in (await s.list_objects()).objects) == ["archive/2025/dec.csv", "reports/2026"]
    assert await s.read_object("reports/2026") == b"a file"
