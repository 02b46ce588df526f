"""Pods as processes: the image's entrypoint and health check, an overlay's ConfigMap as rendered,
the environment its Deployment gives the container with the Secret's values filled in. Prod pods
run on real PostgreSQL and S3 (moto), the dev pod on its volume alone, so the wiring of config,
Secret, peers and probes is proven end to end without a cluster."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import grpc
import psycopg
import pyarrow.parquet as pq
import pytest
from pymilvus import MilvusClient

from lakehouse.storage.v1 import storage_service_pb2, storage_service_pb2_grpc
from tests.conftest import fresh_postgres_url
from tests.deploy.manifests import (
    DEPLOY,
    ROOT,
    SERVICES,
    config_text,
    containers,
    named,
    render,
)
from tests.support.milvus import MilvusServerInfo
from tests.support.servers import PostgresInfo, S3Info, free_port

READY_TIMEOUT_S = 60.0


@pytest.fixture
def secret(postgres: PostgresInfo, s3: S3Info) -> dict[str, str]:
    """What `kubectl create secret generic lakehouse-secrets --from-env-file=secret.env` would hold."""
    boto3.client("s3", **s3.client_kwargs()).create_bucket(Bucket="lakehouse-tables")  # prod's default bucket
    return {
        "LAKEHOUSE_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "LAKEHOUSE_MESH_TOKEN": secrets.token_urlsafe(32),
        "LAKEHOUSE_HASH_SALT": secrets.token_urlsafe(32),
        "LAKEHOUSE_CATALOG__URL": fresh_postgres_url(postgres),
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "MILVUS_TOKEN": "root:Milvus",
    }


class Pod:
    """One container of a rendered Deployment, run as a local process."""

    def __init__(
        self,
        overlay: str,
        deployment: str,
        secret: dict[str, str],
        workdir: Path,
        extra: dict[str, str],
        port: int | None = None,
    ) -> None:
        objects = render(f"overlays/{overlay}")
        (container,) = containers(named(objects, "Deployment", deployment))
        config = workdir / "etc" / "lakehouse.toml"
        config.parent.mkdir(parents=True)
        config.write_text(config_text(objects))
        self.port = port or free_port()
        self.workdir = workdir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
        for entry in container["env"]:
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] not in secret:
                assert ref.get("optional"), f"the Secret lacks {ref['key']}, which {deployment} requires"
                continue  # as the kubelet does: an optional key that is missing leaves the variable unset
            env[entry["name"]] = secret[ref["key"]] if ref else entry["value"]
        env |= {
            # What the image sets (deploy/Dockerfile ENV) ...
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "LAKEHOUSE_CONFIG": str(config),
            # ... and what differs between a pod and this machine: ports and the data volume;
            # drain_delay_s would only slow the test down.
            "LAKEHOUSE_SERVER__PORT": str(self.port),
            "LAKEHOUSE_SERVER__FLIGHT_PORT": str(free_port()),
            "LAKEHOUSE_SERVER__DATA_DIR": str(workdir / "data"),
            "LAKEHOUSE_SERVER__DRAIN_DELAY_S": "0",
            **extra,
        }
        # Every pod has 9464 to itself; processes on one machine do not.
        self.metrics_port = free_port()
        env["LAKEHOUSE_OBSERVABILITY__METRICS_PORT"] = str(self.metrics_port)
        self.env = env
        self.readiness = container["readinessProbe"]["grpc"]["service"]
        self._log = workdir / "pod.log"
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(
                ["sh", str(DEPLOY / "image" / "lakehouse-serve")],
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def probe(self, service: str) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK script, as `docker` runs it inside the container."""
        return subprocess.run(
            [sys.executable, str(DEPLOY / "image" / "lakehouse-healthcheck"), service],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the pod exited with {self.proc.returncode}:\n{self.log}"
            if self.probe(self.readiness).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.readiness} not SERVING after {READY_TIMEOUT_S:.0f}s:\n{self.log}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(f"the pod ignored SIGTERM:\n{self.log}") from None


@contextlib.contextmanager
def running(pod: Pod) -> Iterator[Pod]:
    try:
        pod.wait_ready()
        yield pod
    finally:
        if pod.proc.poll() is None:
            pod.proc.kill()
            pod.proc.wait(timeout=10)


@pytest.fixture
def start_pod(secret: dict[str, str], s3: S3Info, tmp_path: Path) -> Iterator[Callable[..., Pod]]:
    """Starts the prod pod of a service, S3 at moto instead of AWS; `peers` replace Service names."""
    with contextlib.ExitStack() as stack:

        def start(service: str, port: int | None = None, peers: dict[str, int] | None = None, **env: str) -> Pod:
            extra = {"LAKEHOUSE_STORAGE__S3__ENDPOINT": s3.endpoint_url, "AWS_EC2_METADATA_DISABLED": "true", **env}
            for peer, peer_port in (peers or {}).items():  # on a cluster: lakehouse-<peer>:50051
                extra[f"LAKEHOUSE_MESH__{peer.upper()}"] = f"127.0.0.1:{peer_port}"
            pod = Pod("prod", f"lakehouse-{service}", secret, tmp_path / service, extra, port)
            return stack.enter_context(running(pod))

        yield start


def test_a_storage_pod_serves_its_s3_bucket_to_the_admin_token_only(
    start_pod: Callable[..., Pod], secret: dict[str, str]
) -> None:
    pod = start_pod("storage")
    with grpc.insecure_channel(f"127.0.0.1:{pod.port}") as channel:
        stub = storage_service_pb2_grpc.StorageServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListBuckets(storage_service_pb2.ListBucketsRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = (("authorization", f"Bearer {secret['LAKEHOUSE_ADMIN_TOKEN']}"),)
        listed = stub.ListBuckets(storage_service_pb2.ListBucketsRequest(), timeout=10, metadata=token)
    assert [(b.name, b.uri) for b in listed.buckets] == [("default", "s3://lakehouse-tables/default")]
    assert secret["LAKEHOUSE_ADMIN_TOKEN"] not in pod.log
    # The port the pod template names "metrics" (0.0.0.0 in the pod, so Prometheus can scrape it).
    with urllib.request.urlopen(f"http://127.0.0.1:{pod.metrics_port}/metrics", timeout=10) as scraped:
        metrics = scraped.read().decode()
    assert 'lakehouse_rpc_requests_total{code="UNAUTHENTICATED",method="ListBuckets",service="storage"}' in metrics
    assert pod.stop() == 0, pod.log


def test_a_catalog_pod_is_ready_on_postgresql_and_drains_on_sigterm(
    start_pod: Callable[..., Pod], secret: dict[str, str]
) -> None:
    pod = start_pod("catalog")
    assert pod.readiness == "lakehouse.catalog.v1.CatalogService"
    assert pod.probe("").returncode == 0, "liveness"
    assert pod.probe("lakehouse.storage.v1.StorageService").returncode == 1, "a service this pod does not host"
    assert pod.stop() == 0, pod.log
    assert secret["LAKEHOUSE_CATALOG__URL"] not in pod.log
    # The catalog went to the database named by the Secret, not to SQLite on the pod's scratch volume.
    url = secret["LAKEHOUSE_CATALOG__URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
    assert tables is not None and tables[0] > 0
    assert not list((pod.workdir / "data").glob("*.db"))


def test_prod_pods_form_a_mesh_over_postgresql_and_s3(
    start_pod: Callable[..., Pod], secret: dict[str, str], tmp_path: Path, s3: S3Info
) -> None:
    """Storage, catalog, query and chat as four pods that find each other through [mesh] and trust
    each other through the shared mesh token: ingest, SQL and a Flight download through the query
    edge, and the chat edge writing its session log into the query pod on its own behalf."""
    ports = {name: free_port() for name in SERVICES}  # vector and memory are named but not started
    flight_port = free_port()
    pods = {
        "storage": start_pod("storage", ports["storage"], peers=ports),
        "catalog": start_pod("catalog", ports["catalog"], peers=ports),
        # Flight tickets name lakehouse-query:50052; a client outside the cluster is given the edge's
        # address instead (README: LAKEHOUSE_SERVER__FLIGHT_ADVERTISE), here loopback.
        "query": start_pod(
            "query",
            ports["query"],
            peers=ports,
            LAKEHOUSE_SERVER__FLIGHT_PORT=str(flight_port),
            LAKEHOUSE_SERVER__FLIGHT_ADVERTISE=f"grpc+tcp://127.0.0.1:{flight_port}",
        ),
        "chat": start_pod("chat", ports["chat"], peers=ports, LAKEHOUSE_CHAT__SESSION_FLUSH_S="0.2"),
    }
    env = {
        **pods["query"].env,
        "LAKEHOUSE_ADDRESS": f"127.0.0.1:{ports['query']}",
        "LAKEHOUSE_TOKEN": secret["LAKEHOUSE_ADMIN_TOKEN"],
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    del env["LAKEHOUSE_CONFIG"]  # the CLI is a client here, not a pod
    csv = tmp_path / "workers.csv"
    csv.write_text("worker_id,name\n1,Ada\n2,Grace\n3,Edsger\n")
    ingested = _cli(env, "ingest", str(csv), "--dataset", "workers")
    assert ingested.returncode == 0, ingested.stderr + pods["query"].log
    counted = _cli(env, "sql", "SELECT count(*) AS n FROM workers")
    assert counted.returncode == 0 and "3" in counted.stdout, counted.stderr
    pulled = _cli(env, "pull", "workers", "-o", str(tmp_path / "workers.parquet"))
    assert pulled.returncode == 0, pulled.stderr
    assert pq.read_table(tmp_path / "workers.parquet").column("name").to_pylist() == ["Ada", "Grace", "Edsger"]
    objects = boto3.client("s3", **s3.client_kwargs()).list_objects_v2(Bucket="lakehouse-tables", Prefix="default/")
    assert any(o["Key"].endswith(".parquet") for o in objects.get("Contents", [])), "the table lives in S3"

    # No provider is configured, so the chat pod refuses the call, and logs it in chat_sessions.
    chatted = _cli({**env, "LAKEHOUSE_ADDRESS": f"127.0.0.1:{ports['chat']}"}, "chat", "hello")
    assert chatted.returncode != 0 and "FAILED_PRECONDITION" in chatted.stderr, chatted.stderr
    assert pods["chat"].stop() == 0, pods["chat"].log  # draining flushes the session log
    logged = _cli(env, "sql", "SELECT method, code FROM chat_sessions")
    assert logged.returncode == 0, logged.stderr + pods["chat"].log
    assert "FAILED_PRECONDITION" in logged.stdout, logged.stdout
    for name in ("query", "catalog", "storage"):
        assert pods[name].stop() == 0, pods[name].log


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["lakehouse", *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_dev_pod_runs_every_service_in_one_process_on_its_volume(tmp_path: Path) -> None:
    secret = {"LAKEHOUSE_ADMIN_TOKEN": secrets.token_urlsafe(32)}
    # The model the image bakes in, here the one `make model` prepared.
    extra = {"LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR": str(ROOT / "data" / "models" / "all-minilm-l6-v2")}
    with running(Pod("dev", "lakehouse", secret, tmp_path, extra)) as pod:
        env = {**pod.env, "LAKEHOUSE_ADDRESS": f"127.0.0.1:{pod.port}", "NO_COLOR": "1", "COLUMNS": "200"}
        refused = _cli(env, "sql", "SELECT 42 AS answer")
        assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr
        env["LAKEHOUSE_TOKEN"] = secret["LAKEHOUSE_ADMIN_TOKEN"]
        answered = _cli(env, "sql", "SELECT 42 AS answer")
        assert answered.returncode == 0 and "42" in answered.stdout, answered.stderr
        # The model (the int8 graph dev asks for) and Milvus Lite start on first use.
        embedded = _cli(env, "embed", "a pod on a laptop")
        assert embedded.returncode == 0, embedded.stderr
        shown = _cli(env, "embedder")
        assert shown.returncode == 0 and "int8" in shown.stdout, shown.stdout + shown.stderr
        created = _cli(env, "collections", "create", "notes")
        assert created.returncode == 0, created.stderr
        for service in ("storage", "catalog", "query", "vector", "memory", "chat"):
            assert pod.probe(f"lakehouse.{service}.v1.{service.capitalize()}Service").returncode == 0, service
        assert pod.stop() == 0, pod.log
    data = tmp_path / "data"  # the PersistentVolume
    assert (data / "catalog.db").is_file(), "the catalog in SQLite"
    assert (data / "buckets" / "default").is_dir(), "the default bucket"
    assert any((data / "vector" / "milvus-lite").iterdir()), "Milvus Lite's files"


def test_prod_vector_and_memory_pods_remember_through_a_milvus_server(
    start_pod: Callable[..., Pod], secret: dict[str, str], milvus_server: MilvusServerInfo
) -> None:
    """The vector pod embeds on the CPU with the configured model and keeps vectors in a Milvus
    server; the memory pod keeps traces in the catalog's PostgreSQL database and searches them
    through the vector pod."""
    ports = {name: free_port() for name in SERVICES}
    start_pod("storage", ports["storage"], peers=ports)
    start_pod("catalog", ports["catalog"], peers=ports)
    start_pod("query", ports["query"], peers=ports)
    vector = start_pod(
        "vector",
        ports["vector"],
        peers=ports,
        # On a cluster: the Milvus Service of the prod config and the model baked into the image.
        LAKEHOUSE_VECTOR__URI=milvus_server.uri,
        LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR=str(ROOT / "data" / "models" / "all-minilm-l6-v2"),
    )
    memory = start_pod("memory", ports["memory"], peers=ports)
    env = {
        **vector.env,
        "LAKEHOUSE_TOKEN": secret["LAKEHOUSE_ADMIN_TOKEN"],
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    del env["LAKEHOUSE_CONFIG"]
    at_vector = {**env, "LAKEHOUSE_ADDRESS": f"127.0.0.1:{ports['vector']}"}
    shown = _cli(at_vector, "embedder")
    assert shown.returncode == 0 and "CPUExecutionProvider" in shown.stdout, shown.stdout + shown.stderr
    name = f"notes_{secrets.token_hex(4)}"  # the Milvus server is shared by the session
    created = _cli(at_vector, "collections", "create", name)
    assert created.returncode == 0, created.stderr + vector.log
    listed = _cli(at_vector, "collections", "list")
    assert listed.returncode == 0 and name in listed.stdout, listed.stderr
    in_milvus = MilvusClient(uri=milvus_server.uri).list_collections()
    assert any(name in physical for physical in in_milvus), in_milvus

    at_memory = {**env, "LAKEHOUSE_ADDRESS": f"127.0.0.1:{ports['memory']}"}
    namespace = f"ops_{secrets.token_hex(4)}"
    added = _cli(at_memory, "memory", "add", namespace, "the forklift battery is charged on Mondays")
    assert added.returncode == 0, added.stderr + memory.log
    # Prod reads with Bounded consistency: a new vector becomes searchable within Milvus's staleness bound.
    deadline = time.monotonic() + 60
    while True:
        found = _cli(at_memory, "memory", "search", "when is the forklift charged", "--namespace", namespace)
        if (found.returncode == 0 and "Mondays" in found.stdout) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert found.returncode == 0 and "Mondays" in found.stdout, found.stdout + found.stderr + memory.log
    assert memory.stop() == 0, memory.log
    assert vector.stop() == 0, vector.log
    url = secret["LAKEHOUSE_CATALOG__URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:  # the memory pod has no database of its own: the catalog's
        tables = [row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables")]
    assert any("trace" in table for table in tables), tables
