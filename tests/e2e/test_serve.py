"""`lakehouse serve` as a separate process, seen from outside: reflection and calls through
`buf curl`, generated stubs, the CLI, restarts, SIGTERM drains, tokens and split deployments."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as catalog_grpc
from lakehouse.chat.v1 import chat_service_pb2
from lakehouse.memory.v1 import memory_service_pb2
from lakehouse.query.v1 import query_service_pb2
from lakehouse.storage.v1 import storage_service_pb2 as storage_pb
from lakehouse.storage.v1 import storage_service_pb2_grpc as storage_grpc
from lakehouse.vector.v1 import vector_service_pb2
from tests.e2e.arrowdata import create_dataset
from tests.e2e.harness import (
    ServerProcess,
    buf_curl,
    buf_error,
    buf_error_info,
    clean_env,
    lakehouse_command,
    run_cli,
    running,
    start_server,
    status_details,
    write_config,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

SERVICES = {
    "lakehouse.storage.v1.StorageService",
    "lakehouse.catalog.v1.CatalogService",
    "lakehouse.query.v1.QueryService",
    "lakehouse.vector.v1.VectorService",
    "lakehouse.memory.v1.MemoryService",
    "lakehouse.chat.v1.ChatService",
}
HEALTH = "grpc.health.v1.Health"
MEMORY = memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"]
STORAGE = storage_pb.DESCRIPTOR.services_by_name["StorageService"]
QUERY = query_service_pb2.DESCRIPTOR.services_by_name["QueryService"]
CATALOG = catalog_pb.DESCRIPTOR.services_by_name["CatalogService"]
VECTOR = vector_service_pb2.DESCRIPTOR.services_by_name["VectorService"]
CHAT = chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"]


def health_check(address: str, service: str = "", metadata: tuple[tuple[str, str], ...] = ()) -> int:
    with grpc.insecure_channel(address) as channel:
        return (
            health_pb2_grpc.HealthStub(channel)
            .Check(health_pb2.HealthCheckRequest(service=service), timeout=5, metadata=metadata)
            .status
        )


def whoami(address: str, token: str | None) -> catalog_pb.WhoAmIResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    with grpc.insecure_channel(address) as channel:
        return catalog_grpc.CatalogServiceStub(channel).WhoAmI(
            catalog_pb.WhoAmIRequest(), timeout=10, metadata=metadata
        )


def listed_services(address: str) -> set[str]:
    result = buf_curl(address, "--list-services")
    assert result.code == 0, str(result)
    return set(result.stdout.split())


# -- reflection and health through buf curl ------------------------------------------------------


def test_reflection_lists_every_service_and_health(mesh: ServerProcess) -> None:
    services = listed_services(mesh.address)
    assert services >= {*SERVICES, HEALTH}


def test_reflection_lists_methods(mesh: ServerProcess) -> None:
    result = buf_curl(mesh.address, "--list-methods")
    assert result.code == 0, str(result)
    methods = set(result.stdout.split())
    assert "lakehouse.catalog.v1.CatalogService/GetDataset" in methods
    assert "lakehouse.storage.v1.StorageService/PutObject" in methods
    assert "lakehouse.query.v1.QueryService/Query" in methods
    assert "grpc.health.v1.Health/Check" in methods


def test_health_of_a_service_through_buf_curl(mesh: ServerProcess) -> None:
    result = buf_curl(
        mesh.address, method="grpc.health.v1.Health/Check", data={"service": "lakehouse.catalog.v1.CatalogService"}
    )
    assert result.code == 0, str(result)
    assert '"status": "SERVING"' in result.stdout


def test_overall_health_through_generated_stub(mesh: ServerProcess) -> None:
    assert health_check(mesh.address) == health_pb2.HealthCheckResponse.SERVING
    for service in SERVICES:
        assert health_check(mesh.address, service) == health_pb2.HealthCheckResponse.SERVING, service


# -- a catalog round trip: stubs in, buf curl out -------------------------------------------------


def test_dataset_created_with_stubs_is_read_back_through_buf_curl(mesh: ServerProcess) -> None:
    created = create_dataset(mesh.address, "workers")
    assert created.created
    assert uuid.UUID(created.dataset.id).version == 5

    result = buf_curl(
        mesh.address, method="lakehouse.catalog.v1.CatalogService/GetDataset", data={"dataset": "workers"}
    )
    assert result.code == 0, str(result)
    dataset = json.loads(result.stdout)["dataset"]
    assert dataset["name"] == "workers"
    assert dataset["id"] == created.dataset.id
    columns = {c["name"]: c for c in dataset["columns"]}
    assert set(columns) == {"id", "email"}
    assert columns["email"]["pii"] == ["PII_KIND_EMAIL"]
    assert columns["email"]["sensitivitySource"] == "SENSITIVITY_SOURCE_DETECTED"
    assert "pii" not in columns["id"]  # proto3 JSON leaves out an empty list


def test_missing_dataset_through_buf_curl_is_not_found_with_error_info(mesh: ServerProcess) -> None:
    result = buf_curl(
        mesh.address, method="lakehouse.catalog.v1.CatalogService/GetDataset", data={"dataset": "no_such_dataset"}
    )
    error = buf_error(result)
    assert error["code"] == "not_found"
    assert "no_such_dataset" in str(error["message"])
    info = buf_error_info(error)
    assert info.reason == "DATASET_NOT_FOUND"
    assert info.domain == "catalog.lakehouse"
    assert info.metadata["request_id"]


# -- every RPC answers -------------------------------------------------------------------------


def _unimplemented_through_reflection(address: str) -> tuple[set[str], int]:
    """What an outside client sees: every lakehouse method listed by reflection, called with `{}`
    through buf curl; returns the ones answering UNIMPLEMENTED and the number listed."""
    listing = buf_curl(address, "--list-methods")
    assert listing.code == 0, str(listing)
    methods = [m for m in listing.stdout.split() if m.startswith("lakehouse.")]

    def probe(method: str) -> str | None:
        result = buf_curl(address, method=method, data={}, timeout_s=10)
        return method if '"unimplemented"' in result.stderr.lower() else None

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = {m for m in pool.map(probe, methods) if m}
    return found, len(methods)


def test_every_rpc_of_the_six_services_answers(mesh: ServerProcess) -> None:
    unimplemented, total = _unimplemented_through_reflection(mesh.address)
    built = {f"{s.full_name}/{m.name}" for s in (STORAGE, CATALOG, QUERY, VECTOR, MEMORY, CHAT) for m in s.methods}
    assert total == len(built)
    assert not unimplemented, f"these should answer: {sorted(unimplemented)}"
    # The probe sends `{}` to every RPC; the server must still be healthy afterwards.
    assert health_check(mesh.address) == health_pb2.HealthCheckResponse.SERVING


# -- restart ----------------------------------------------------------------------------------


def test_restart_on_the_same_data_dir_loses_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "lakehouse.toml", "[server]\ngrace_period_s = 5\n")
    payload = tmp_path / "report.bin"
    payload.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    sha = hashlib.sha256(payload.read_bytes()).hexdigest()

    first = start_server(tmp_path, config=config)
    try:
        put = run_cli("objects", "put", str(payload), "reports/report.bin", cwd=tmp_path, address=first.address)
        assert put.code == 0, str(put)
        created_id = create_dataset(first.address, "people").dataset.id
    except BaseException:
        first.kill()
        raise
    assert first.stop() == 0, first.stderr

    with running(tmp_path, config=config, data_dir=first.data_dir, port=first.port) as again:
        stat = run_cli("objects", "stat", "reports/report.bin", cwd=tmp_path, address=again.address)
        assert stat.code == 0, str(stat)
        assert sha in stat.stdout and f"{1024 * 1024} bytes" in stat.stdout

        out = tmp_path / "copy.bin"
        get = run_cli("objects", "get", "reports/report.bin", "-o", str(out), cwd=tmp_path, address=again.address)
        assert get.code == 0, str(get)
        assert out.read_bytes() == payload.read_bytes()

        shown = run_cli("datasets", "get", "people", cwd=tmp_path, address=again.address)
        assert shown.code == 0, str(shown)
        assert created_id in shown.stdout
        assert re.search(r"email\s.*\semail", shown.stdout), shown.stdout  # the PII tag survived too

        events = run_cli("events", cwd=tmp_path, address=again.address)
        assert events.code == 0, str(events)
        assert re.search(r"dataset:people\s.*\screate", events.stdout), events.stdout


# -- SIGTERM drain ----------------------------------------------------------------------------


def test_sigterm_drains_an_in_flight_upload_then_exits_zero(tmp_path: Path) -> None:
    config = write_config(tmp_path / "lakehouse.toml", "[server]\ngrace_period_s = 5\n")
    server = start_server(tmp_path, config=config)
    chunks = [bytes([i]) * 64 * 1024 for i in range(12)]
    first_chunk_sent = threading.Event()
    sigterm_at: list[float] = []
    sent_after_sigterm: list[int] = []

    def upload() -> Iterator[storage_pb.PutObjectRequest]:
        yield storage_pb.PutObjectRequest(
            header=storage_pb.PutObjectHeader(key="slow/upload.bin", content_type="application/octet-stream")
        )
        for i, chunk in enumerate(chunks):
            if sigterm_at:
                sent_after_sigterm.append(i)
            yield storage_pb.PutObjectRequest(chunk=chunk)
            first_chunk_sent.set()
            time.sleep(0.1)  # ~1.2 s of upload in all: most of it after SIGTERM
        yield storage_pb.PutObjectRequest(commit=storage_pb.PutObjectCommit())

    channel = grpc.insecure_channel(server.address)
    try:
        future = storage_grpc.StorageServiceStub(channel).PutObject.future(upload(), timeout=30)
        assert first_chunk_sent.wait(10), f"the upload never started:\n{server.stderr}"
        sigterm_at.append(time.monotonic())
        server.terminate()

        # Probes see the drain: NOT_SERVING, or the port no longer takes new calls (refused, or
        # cancelled when a connection raced the listener closing).
        seen: object = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                seen = health_pb2.HealthCheckResponse.ServingStatus.Name(server.health(timeout_s=0.5))
            except grpc.RpcError as exc:
                seen = exc.code()
            if seen != "SERVING":
                break
            time.sleep(0.02)
        refused = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert seen == "NOT_SERVING" or seen in refused, f"still {seen} after SIGTERM"

        response = future.result(timeout=15)
    except BaseException:
        server.kill()
        raise
    finally:
        channel.close()
    data = b"".join(chunks)
    assert sent_after_sigterm, "the upload finished before SIGTERM: nothing was drained"
    assert response.object.key == "slow/upload.bin"
    assert response.object.size_bytes == len(data)
    assert response.object.sha256 == hashlib.sha256(data).hexdigest()
    assert server.stop() == 0, server.stderr


# -- authentication ---------------------------------------------------------------------------

TOKEN = "e2e-" + uuid.uuid4().hex
ROTATED_TOKEN = "e2e-rotated-" + uuid.uuid4().hex
WRONG_TOKEN = "e2e-wrong-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def auth_mesh(workdir: Path) -> Iterator[ServerProcess]:
    """A server with two tokens for `ops`: one from $E2E_TOKEN, one stored as its SHA-256."""
    config = write_config(
        workdir / "auth" / "lakehouse.toml",
        f"""\
[server]
grace_period_s = 5
log_level = "DEBUG"

[[auth.tokens]]
principal = "ops"
role = "admin"
env = "E2E_TOKEN"

[[auth.tokens]]
principal = "ops"
role = "admin"
sha256 = "{hashlib.sha256(ROTATED_TOKEN.encode()).hexdigest()}"
""",
    )
    with running(workdir / "auth", config=config, env={"E2E_TOKEN": TOKEN}) as server:
        yield server


def test_call_without_token_is_unauthenticated_missing_token(auth_mesh: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        whoami(auth_mesh.address, None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info, _ = status_details(caught.value)
    assert info is not None and info.reason == "MISSING_TOKEN"

    result = buf_curl(auth_mesh.address, method="lakehouse.catalog.v1.CatalogService/ListDatasets", data={})
    error = buf_error(result)
    assert error["code"] == "unauthenticated"
    assert buf_error_info(error).reason == "MISSING_TOKEN"


def test_call_with_wrong_token_is_unauthenticated_invalid_token(auth_mesh: ServerProcess) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        whoami(auth_mesh.address, WRONG_TOKEN)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info, _ = status_details(caught.value)
    assert info is not None and info.reason == "INVALID_TOKEN"

    cli = run_cli("whoami", "--token", WRONG_TOKEN, cwd=auth_mesh.workdir, address=auth_mesh.address)
    assert cli.code == 1, str(cli)
    assert "UNAUTHENTICATED" in cli.stderr and "INVALID_TOKEN" in cli.stderr


def test_right_token_works_from_flag_env_and_buf_curl(auth_mesh: ServerProcess) -> None:
    reply = whoami(auth_mesh.address, TOKEN)
    assert (reply.principal, reply.role, reply.auth_enabled) == ("ops", "admin", True)

    flag = run_cli("whoami", "--token", TOKEN, cwd=auth_mesh.workdir, address=auth_mesh.address)
    assert flag.code == 0, str(flag)
    assert re.search(r"principal\s*│\s*ops\b", flag.stdout), flag.stdout
    assert re.search(r"role\s*│\s*admin\b", flag.stdout), flag.stdout
    assert re.search(r"auth\s*│\s*on\b", flag.stdout), flag.stdout

    env = run_cli("whoami", cwd=auth_mesh.workdir, address=auth_mesh.address, env={"LAKEHOUSE_TOKEN": TOKEN})
    assert env.code == 0, str(env)
    assert re.search(r"principal\s*│\s*ops\b", env.stdout), env.stdout

    listed = run_cli(
        "datasets", "list", cwd=auth_mesh.workdir, address=auth_mesh.address, env={"LAKEHOUSE_TOKEN": TOKEN}
    )
    assert listed.code == 0, str(listed)

    curl = buf_curl(
        auth_mesh.address,
        method="lakehouse.catalog.v1.CatalogService/WhoAmI",
        data={},
        headers=[f"Authorization: Bearer {TOKEN}"],
    )
    assert curl.code == 0, str(curl)
    assert '"principal": "ops"' in curl.stdout


def test_rotated_token_for_the_same_principal_works(auth_mesh: ServerProcess) -> None:
    reply = whoami(auth_mesh.address, ROTATED_TOKEN)
    assert (reply.principal, reply.role) == ("ops", "admin")
    cli = run_cli("whoami", "--token", ROTATED_TOKEN, cwd=auth_mesh.workdir, address=auth_mesh.address)
    assert cli.code == 0, str(cli)
    assert re.search(r"principal\s*│\s*ops\b", cli.stdout), cli.stdout


def test_health_needs_no_token(auth_mesh: ServerProcess) -> None:
    assert health_check(auth_mesh.address) == health_pb2.HealthCheckResponse.SERVING
    curl = buf_curl(
        auth_mesh.address, method="grpc.health.v1.Health/Check", data={"service": "lakehouse.storage.v1.StorageService"}
    )
    assert curl.code == 0, str(curl)
    assert '"status": "SERVING"' in curl.stdout
    cli = run_cli("health", cwd=auth_mesh.workdir, address=auth_mesh.address)
    assert cli.code == 0, str(cli)
    assert "SERVING" in cli.stdout
    assert buf_curl(auth_mesh.address, "--list-services").code == 0  # reflection stays open too


def test_tokens_never_reach_the_server_log(auth_mesh: ServerProcess) -> None:
    for token in (TOKEN, ROTATED_TOKEN, WRONG_TOKEN, None):
        with contextlib.suppress(grpc.RpcError):
            whoami(auth_mesh.address, token)
    create_dataset(auth_mesh.address, "audited", metadata=[("authorization", f"Bearer {TOKEN}")])
    log = auth_mesh.stderr  # a call's log line is written before its reply is sent
    assert "principal=ops" in log, log  # the calls were logged ...
    for secret in (TOKEN, ROTATED_TOKEN, WRONG_TOKEN):
        assert secret not in log  # ... without the tokens
        assert secret[4:] not in log


# -- refusing to start ------------------------------------------------------------------------


# Configurations `lakehouse serve` must refuse. They start together (each costs an interpreter
# start-up) and each test reads its own outcome.
REFUSED = {
    "public-bind": '[server]\nhost = "0.0.0.0"\n',
    "unknown-key": "[server]\nprot = 50051\n",
    "not-an-int": '[server]\nport = "fifty"\n',
    "negative": "[server]\ngrace_period_s = -1\n",
    "bad-role": '[[auth.tokens]]\nprincipal = "ops"\nrole = "root"\nenv = "X"\n',
    "unset-env": '[[auth.tokens]]\nprincipal = "ops"\nenv = "E2E_UNSET_TOKEN_VARIABLE"\n',
}


@dataclass(frozen=True)
class Refusal:
    config: Path
    code: int
    stderr: str


@pytest.fixture(scope="module")
def refusals(workdir: Path) -> Iterator[dict[str, Refusal | str]]:
    """Starts `lakehouse serve` once per entry of REFUSED; values are the outcomes (or why not)."""
    started: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for name, text in REFUSED.items():
        config = write_config(workdir / "refused" / name / "lakehouse.toml", text)
        args = [
            *lakehouse_command(),
            "serve",
            "--config",
            str(config),
            "--port",
            str(free_port()),
            "--data-dir",
            str(config.parent / "data"),
        ]
        proc = subprocess.Popen(
            args,
            cwd=config.parent,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[name] = (proc, config)
    outcomes: dict[str, Refusal | str] = {}
    try:
        for name, (proc, config) in started.items():
            try:
                _, stderr = proc.communicate(timeout=60)
                outcomes[name] = Refusal(config, proc.returncode, stderr)
            except subprocess.TimeoutExpired:
                proc.kill()
                outcomes[name] = f"lakehouse serve kept running with a config it should refuse:\n{REFUSED[name]}"
        yield outcomes
    finally:
        for proc, _ in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def refused(refusals: dict[str, Refusal | str], name: str) -> Refusal:
    outcome = refusals[name]
    assert isinstance(outcome, Refusal), outcome
    assert outcome.code != 0, outcome.stderr
    assert "Traceback" not in outcome.stderr, outcome.stderr
    return outcome


def test_public_bind_without_tokens_is_refused(refusals: dict[str, Refusal | str]) -> None:
    stderr = refused(refusals, "public-bind").stderr
    assert "[auth]" in stderr and "tokens" in stderr, stderr
    assert "0.0.0.0" in stderr


@pytest.mark.parametrize(
    ("name", "key", "reason"),
    [
        ("unknown-key", "server.prot", "unknown key"),
        ("not-an-int", "server.port", "valid integer"),
        ("negative", "server.grace_period_s", "greater than or equal to 0"),
        ("bad-role", "auth.tokens.0.role", "'admin'"),
    ],
)
def test_bad_config_is_refused_with_file_key_and_reason(
    refusals: dict[str, Refusal | str], name: str, key: str, reason: str
) -> None:
    outcome = refused(refusals, name)
    line = next((ln for ln in outcome.stderr.splitlines() if key in ln), "")
    assert str(outcome.config) in line, outcome.stderr
    assert reason in line, outcome.stderr


def test_token_from_an_unset_variable_is_refused(refusals: dict[str, Refusal | str]) -> None:
    stderr = refused(refusals, "unset-env").stderr
    assert "E2E_UNSET_TOKEN_VARIABLE" in stderr, stderr


# -- one service per process ------------------------------------------------------------------


def test_catalog_and_storage_in_separate_processes(tmp_path: Path) -> None:
    storage_port = free_port()
    # The catalog calls the query service too (erasure); nothing listens there in this test.
    config = write_config(
        tmp_path / "lakehouse.toml",
        f'[server]\ngrace_period_s = 5\n\n[mesh]\nstorage = "127.0.0.1:{storage_port}"\n'
        f'query = "127.0.0.1:{free_port()}"\ntimeout_s = 5\n',
    )
    data_dir = tmp_path / "data"
    with (
        running(
            tmp_path / "storage", config=config, data_dir=data_dir, services=["storage"], port=storage_port, wait=False
        ) as storage,
        running(tmp_path / "catalog", config=config, data_dir=data_dir, services=["catalog"], wait=False) as catalog,
    ):
        storage.wait_ready()
        catalog.wait_ready()
        on_catalog = listed_services(catalog.address)
        assert "lakehouse.catalog.v1.CatalogService" in on_catalog
        assert "lakehouse.storage.v1.StorageService" not in on_catalog
        assert not on_catalog & (SERVICES - {"lakehouse.catalog.v1.CatalogService"})
        on_storage = listed_services(storage.address)
        assert "lakehouse.storage.v1.StorageService" in on_storage
        assert "lakehouse.catalog.v1.CatalogService" not in on_storage

        with pytest.raises(grpc.RpcError) as caught:
            create_dataset(catalog.address, "elsewhere", bucket="nope")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, caught.value.details()
        info, _ = status_details(caught.value)
        assert info is not None and info.reason == "BUCKET_NOT_FOUND"

        created = create_dataset(catalog.address, "workers", bucket="default")
        assert created.created and created.dataset.bucket == "default"
        assert created.dataset.columns[1].pii == [catalog_pb.PII_KIND_EMAIL]

        # The bucket checks reached the storage process over gRPC (its log has one line per call).
        storage_calls = re.findall(r"rpc /lakehouse\.storage\.v1\.StorageService/(\w+) code=(\w+)", storage.stderr)
        assert ("ListBuckets", "OK") in storage_calls, storage.stderr

        # Storage goes away: the catalog says so (retryable, naming the peer) instead of hanging.
        # (A bucket it has not checked yet: known buckets are remembered for a few seconds.)
        assert storage.stop() == 0, storage.stderr
        with pytest.raises(grpc.RpcError) as caught:
            create_dataset(catalog.address, "while_storage_is_down", bucket="not-checked-yet")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert f"127.0.0.1:{storage_port}" in caught.value.details()
        info, _ = status_details(caught.value)
        assert info is not None and info.reason == "PEER_UNAVAILABLE"
        assert health_check(catalog.address) == health_pb2.HealthCheckResponse.SERVING


# -- start-up refusals and log format ----------------------------------------------------------


def test_second_server_on_a_busy_port_is_refused(mesh: ServerProcess, tmp_path: Path) -> None:
    intruder = start_server(tmp_path, port=mesh.port, wait=False)
    try:
        deadline = time.monotonic() + 20
        while intruder.alive() and f"on {mesh.address}" not in intruder.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not intruder.alive(), f"a second server is serving {mesh.address}:\n{intruder.stderr}"
        assert intruder.proc.returncode != 0
        assert "cannot bind" in intruder.stderr and str(mesh.port) in intruder.stderr, intruder.stderr
    finally:
        intruder.kill()
        assert health_check(mesh.address) == health_pb2.HealthCheckResponse.SERVING


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    config = write_config(tmp_path / "lakehouse.toml", '[server]\ngrace_period_s = 5\nlog_format = "json"\n')
    with running(tmp_path, config=config) as server:
        missing = buf_curl(
            server.address, method="lakehouse.catalog.v1.CatalogService/GetDataset", data={"dataset": "absent"}
        )
        assert buf_error(missing)["code"] == "not_found"
    lines = [line for line in server.stderr.splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    assert any("GetDataset code=NOT_FOUND" in e["message"] for e in entries), lines
