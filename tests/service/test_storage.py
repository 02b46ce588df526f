"""Storage service through its real gRPC server, on local disk and on S3 (moto on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from lakehouse.server.storage import service as storage_domain
from lakehouse.storage.v1 import storage_service_pb2 as pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as pb_grpc
from tests.conftest import MeshFactory, fresh_s3_bucket
from tests.support.mesh import Backends, RunningMesh, eventually, make_config, start_mesh


@pytest.fixture
async def storage_mesh(mesh_factory: MeshFactory, bucket_backend: Backends):
    return await mesh_factory(bucket_backend, services=("storage",))


async def mesh_with_bucket_roots(
    mesh_factory: MeshFactory, data_dir: Path, roots: Sequence[Path], backends: Backends = Backends()
) -> RunningMesh:
    """A storage-only mesh whose lakehouse.toml sets `[storage] bucket_roots`."""
    config = make_config(data_dir, backends)
    config = replace(config, storage=replace(config.storage, bucket_roots=tuple(str(r) for r in roots)))
    mesh = await start_mesh(config, ("storage",))
    mesh_factory.started.append(mesh)  # stopped with the others at the end of the test
    return mesh


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
    mesh_factory: MeshFactory, bucket_backend: Backends, tmp_path: Path
) -> None:
    storage_mesh = await mesh_with_bucket_roots(mesh_factory, tmp_path / "data", [tmp_path / "lake"], bucket_backend)
    s = storage_mesh.storage
    created = await s.create_bucket("scratch", uri=str(tmp_path / "lake" / "scratch-dir"))
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


# --- where runtime buckets may live ------------------------------------------------------------


@pytest.mark.parametrize("uri", ["relative/dir", "~/bucket", "file:relative/dir", "./here"])
async def test_runtime_local_bucket_needs_an_absolute_path(storage_mesh, uri: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await storage_mesh.storage.create_bucket("rel", uri=uri)
    assert err.value.reason == "INVALID_BUCKET_URI"
    assert err.value.violations[0].field == "uri"
    assert "absolute path" in err.value.violations[0].description


async def test_runtime_local_bucket_outside_the_bucket_roots_is_refused_and_nothing_is_touched(
    storage_mesh, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret.txt").write_text("do not read")
    for uri in (str(victim), f"file://{victim}"):
        with pytest.raises(InvalidArgumentError) as err:
            await storage_mesh.storage.create_bucket("victim", uri=uri)
        assert err.value.reason == "INVALID_BUCKET_URI"
        assert err.value.violations[0].field == "uri"
        assert "bucket_roots" in err.value.violations[0].description
    assert [b.name for b in (await storage_mesh.storage.list_buckets()).buckets] == ["default"]
    assert sorted(p.name for p in victim.iterdir()) == ["secret.txt"]


async def test_runtime_local_bucket_may_not_overlap_a_bucket_or_the_servers_own_files(
    mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    mesh = await mesh_with_bucket_roots(mesh_factory, data, [tmp_path])  # every path below is inside a root
    s = mesh.storage
    await s.put_object("keep.txt", b"default bucket data")
    await s.create_bucket("first", uri=str(data / "buckets" / "first"))
    overlapping = [
        data / "buckets" / "default",  # an alias of the default bucket
        data / "buckets" / "default" / "inner",
        data / "buckets",  # holds every bucket under it
        data / "buckets" / "first" / "inner",
        data,  # catalog.db, the bucket registry
        data / "storage",
        tmp_path,  # holds the data directory
    ]
    for location in overlapping:
        with pytest.raises(FailedPreconditionError) as err:
            await s.create_bucket("overlap", uri=str(location))
        assert err.value.reason == "BUCKET_LOCATION_OVERLAP", location
    assert [b.name for b in (await s.list_buckets()).buckets] == ["default", "first"]
    assert await s.read_object("keep.txt") == b"default bucket data"
    second = await s.create_bucket("second", uri=str(data / "buckets" / "first-sibling"))
    assert second.uri == f"file://{data / 'buckets' / 'first-sibling'}"


async def test_runtime_local_bucket_may_not_hold_a_sqlite_catalog_kept_elsewhere(
    mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    catalog_dir = tmp_path / "roots" / "catalog"
    mesh = await mesh_with_bucket_roots(
        mesh_factory,
        tmp_path / "data",
        [tmp_path / "roots"],
        Backends(catalog_url=f"sqlite:///{catalog_dir / 'catalog.db'}"),
    )
    with pytest.raises(FailedPreconditionError) as err:
        await mesh.storage.create_bucket("sneaky", uri=str(catalog_dir))
    assert err.value.reason == "BUCKET_LOCATION_OVERLAP"
    assert "catalog.db" in err.value.message


async def test_runtime_s3_bucket_needs_a_prefix_of_its_own(mesh_factory: MeshFactory, s3) -> None:
    default_uri = fresh_s3_bucket(s3)  # s3://<bucket>/lake
    mesh = await mesh_factory(Backends(bucket_uri=default_uri, s3_endpoint=s3.endpoint_url), services=("storage",))
    s = mesh.storage
    s3_bucket = default_uri.removeprefix("s3://").split("/")[0]
    for uri in (f"s3://{s3_bucket}", f"s3://{s3_bucket}/", f"s3://{s3_bucket}/a//b", f"s3://{s3_bucket}/a/../lake"):
        with pytest.raises(InvalidArgumentError) as err:
            await s.create_bucket("whole", uri=uri)
        assert (err.value.reason, err.value.violations[0].field) == ("INVALID_BUCKET_URI", "uri"), uri
    for uri in (default_uri, f"{default_uri}/inner"):
        with pytest.raises(FailedPreconditionError) as err:
            await s.create_bucket("alias", uri=uri)
        assert err.value.reason == "BUCKET_LOCATION_OVERLAP", uri
    await s.create_bucket("next-door", uri=f"{default_uri}2")  # "lake2" is not inside "lake"
    with pytest.raises(FailedPreconditionError) as err:
        await s.create_bucket("around", uri=f"s3://{s3_bucket}/lake2/x")
    assert err.value.reason == "BUCKET_LOCATION_OVERLAP"


def write_legacy_registry(data_dir: Path, roots: dict[str, Path]) -> None:
    """Runtime buckets as an older server, without placement rules, would have recorded them."""
    (data_dir / "storage").mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "name": name,
            "backend": "local",
            "root": str(root),
            "max_bytes": 0,
            "create_time": "2026-01-01T00:00:00+00:00",
        }
        for name, root in roots.items()
    ]
    (data_dir / "storage" / "buckets.json").write_text(json.dumps(entries))


async def test_delete_bucket_never_wipes_a_root_it_shares_or_that_lies_outside_the_bucket_roots(
    mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    empty_outside = tmp_path / "empty-outside"
    empty_outside.mkdir()
    write_legacy_registry(
        data, {"alias": data / "buckets" / "default", "outside": victim, "empty-outside": empty_outside}
    )
    mesh = await mesh_factory(services=("storage",))
    s = mesh.storage
    await s.put_object("keep.txt", b"default bucket data")

    with pytest.raises(FailedPreconditionError) as err:
        await s.delete_bucket("alias", force=True)
    assert err.value.reason == "BUCKET_LOCATION_OVERLAP"
    with pytest.raises(FailedPreconditionError) as err:
        await s.delete_bucket("outside", force=True)
    assert err.value.reason == "BUCKET_LOCATION_NOT_ALLOWED"

    assert await s.delete_bucket("empty-outside") == 0  # nothing to wipe: it is simply forgotten

    assert await s.read_object("keep.txt") == b"default bucket data"
    assert (victim / "precious.txt").read_text() == "keep me"
    assert empty_outside.is_dir()
    assert [b.name for b in (await s.list_buckets()).buckets] == ["alias", "default", "outside"]


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_uploads_cannot_overshoot_the_bucket_cap(
    mesh_factory: MeshFactory, bucket_backend: Backends
) -> None:
    mesh = await mesh_factory(replace(bucket_backend, bucket_max_bytes=3_000_000), services=("storage",))
    stub = pb_grpc.StorageServiceStub(mesh.channel)
    all_sent = asyncio.Event()

    async def upload(key: str, started: asyncio.Event) -> AsyncIterator[pb.PutObjectRequest]:
        yield pb.PutObjectRequest(header=pb.PutObjectHeader(key=key))
        yield pb.PutObjectRequest(chunk=b"x" * 2_000_000)
        started.set()
        await all_sent.wait()  # neither upload commits before both have sent their bytes
        yield pb.PutObjectRequest(commit=pb.PutObjectCommit())

    started = [asyncio.Event(), asyncio.Event()]
    calls = [stub.PutObject(upload(key, ev)) for key, ev in zip(("a", "b"), started, strict=True)]
    await asyncio.gather(*(ev.wait() for ev in started))
    await asyncio.sleep(0.3)  # let the server take in both chunks
    all_sent.set()
    results = await asyncio.gather(*calls, return_exceptions=True)

    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1, results
    assert refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert from_rpc_error(refused[0]).reason == "BUCKET_QUOTA_EXCEEDED"
    listed = (await mesh.storage.list_objects()).objects
    assert len(listed) == 1 and sum(o.size_bytes for o in listed) <= 3_000_000
    # The refused upload's reservation is released: the room left is usable.
    await mesh.storage.put_object("c", b"y" * 1_000_000)


async def test_cap_counts_deletes_and_replacements(mesh_factory: MeshFactory, bucket_backend: Backends) -> None:
    mesh = await mesh_factory(replace(bucket_backend, bucket_max_bytes=1_000), services=("storage",))
    s = mesh.storage
    await s.put_object("a", b"a" * 600)
    with pytest.raises(ResourceExhaustedError):
        await s.put_object("b", b"b" * 600)
    await s.put_object("a", b"a" * 900)  # a replacement frees the bytes of what it replaces
    await s.delete_object("a")
    await s.put_object("b", b"b" * 1_000)
    assert [o.key for o in (await s.list_objects()).objects] == ["b"]


async def test_concurrent_uploads_to_one_key_leave_metadata_that_matches_the_content(storage_mesh) -> None:
    s = storage_mesh.storage
    for round_ in range(3):
        versions = {f"v{i}": bytes([65 + i]) * 50_000 for i in range(8)}  # equal sizes: only content differs
        await asyncio.gather(
            *(
                s.put_object("hot", data, metadata={"version": v}, content_type=f"text/{v}")
                for v, data in versions.items()
            )
        )
        content = await s.read_object("hot")
        stat = await s.stat_object("hot")
        assert stat.sha256 == hashlib.sha256(content).hexdigest(), round_
        assert versions[stat.metadata["version"]] == content
        assert stat.content_type == f"text/{stat.metadata['version']}"
        listed = (await s.list_objects(prefix="hot")).objects
        assert [(o.sha256, dict(o.metadata)) for o in listed] == [(stat.sha256, dict(stat.metadata))]


async def test_object_changed_behind_the_services_back_loses_its_recorded_metadata(
    mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    mesh = await mesh_factory(services=("storage",))
    await mesh.storage.put_object("doc", b"original", metadata={"v": "1"}, content_type="text/plain")
    # Same size, new content: what a publish cut short between the object and its sidecar leaves.
    (tmp_path / "data" / "buckets" / "default" / "doc").write_bytes(b"replaced")

    stat = await mesh.storage.stat_object("doc")
    assert stat.size_bytes == 8
    assert (stat.sha256, stat.content_type, dict(stat.metadata)) == ("", "", {})


async def test_cancelling_during_commit_publishes_whole_or_not_at_all(
    storage_mesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = storage_mesh.storage
    await s.put_object("doc", b"version-1", metadata={"v": "1"})
    publishing, release, published = threading.Event(), threading.Event(), threading.Event()
    original = storage_domain.StorageService._publish

    def slow_publish(self: storage_domain.StorageService, *args: Any) -> storage_domain.ObjectInfo:
        publishing.set()
        release.wait(10)
        try:
            return original(self, *args)
        finally:
            published.set()

    monkeypatch.setattr(storage_domain.StorageService, "_publish", slow_publish)
    stub = pb_grpc.StorageServiceStub(storage_mesh.channel)

    async def messages() -> AsyncIterator[pb.PutObjectRequest]:
        yield pb.PutObjectRequest(header=pb.PutObjectHeader(key="doc", metadata={"v": "2"}))
        yield pb.PutObjectRequest(chunk=b"version-2")
        yield pb.PutObjectRequest(commit=pb.PutObjectCommit())

    call = stub.PutObject(messages())
    assert await asyncio.to_thread(publishing.wait, 10)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.3)  # let the server see the cancellation while the commit is under way
    release.set()
    assert await asyncio.to_thread(published.wait, 10)

    stat = await s.stat_object("doc")
    assert await s.read_object("doc") == b"version-2"
    assert (dict(stat.metadata), stat.sha256) == ({"v": "2"}, hashlib.sha256(b"version-2").hexdigest())
    spools = [tmp_path / "data" / "buckets" / "default" / "_lakehouse" / "tmp", tmp_path / "data" / "storage" / "spool"]
    assert await eventually(lambda: all(not d.exists() or list(d.iterdir()) == [] for d in spools))


# --- local-disk folders, long names and listings -------------------------------------------------


async def test_deleted_objects_leave_no_folders_that_block_later_keys(
    mesh_factory: MeshFactory, tmp_path: Path
) -> None:
    mesh = await mesh_factory(services=("storage",))
    s = mesh.storage
    root = tmp_path / "data" / "buckets" / "default"
    await s.put_object("a/b/c", b"deep")
    await s.put_object("a/other", b"stays")
    await s.delete_object("a/b/c")
    assert not (root / "a" / "b").exists() and (root / "a").is_dir()
    await s.put_object("a/b", b"now an object")
    await s.delete_object("a/b")
    await s.delete_object("a/other")
    assert not (root / "a").exists()
    await s.put_object("a", b"top level")
    assert [o.key for o in (await s.list_objects()).objects] == ["a"]

    (root / "empty" / "tree").mkdir(parents=True)  # folders holding no objects, however they came to be
    await s.put_object("empty", b"fine")
    assert await s.read_object("empty") == b"fine"


async def test_fresh_bucket_is_healthy_and_writable(storage_mesh) -> None:
    health = await storage_mesh.storage.bucket_health()
    assert (health.reachable, health.writable, health.detail) == (True, True, "")
    assert (health.object_count, health.used_bytes) == (0, 0)


async def test_local_bucket_answers_keys_with_overlong_parts_as_missing(mesh_factory: MeshFactory) -> None:
    s = (await mesh_factory(services=("storage",))).storage
    await s.put_object("k/x", b"makes folder k exist")
    for long_key in ("a" * 256, "k/" + "a" * 256):
        with pytest.raises(NotFoundError) as err:
            await s.stat_object(long_key)
        assert err.value.reason == "OBJECT_NOT_FOUND"
        with pytest.raises(NotFoundError):
            await s.read_object(long_key)
        with pytest.raises(NotFoundError):
            await s.delete_object(long_key)
        assert await s.delete_object(long_key, allow_missing=True) is False
        for prefix in (long_key, long_key + "/", long_key + "/x"):
            assert (await s.list_objects(prefix=prefix)).objects == []


@pytest.mark.parametrize("prefix", ["a/b/", "a/b/c", "a/b/c/d/"])
async def test_listing_below_an_object_is_empty(storage_mesh, prefix: str) -> None:
    s = storage_mesh.storage
    await s.put_object("a/b", b"an object, not a folder")
    assert (await s.list_objects(prefix=prefix)).objects == []
    assert [o.key for o in (await s.list_objects(prefix="a/b")).objects] == ["a/b"]


async def test_listing_pages_follow_key_order_across_folders(storage_mesh) -> None:
    s = storage_mesh.storage
    keys = ["a-b", "a.c", "a/b0", "a/c/d", "a0", "b"]
    for key in keys:
        await s.put_object(key, key.encode())
    for prefix, expected in (("", keys), ("a", keys[:5]), ("a/", ["a/b0", "a/c/d"]), ("a/c", ["a/c/d"])):
        seen, token = [], ""
        while True:
            page = await s.list_objects(prefix=prefix, page_size=1, page_token=token)
            seen += [o.key for o in page.objects]
            token = page.next_page_token
            if not token:
                break
        assert seen == expected, prefix
