"""The mesh as six processes, configured the way the Kubernetes `prod` overlay configures pods:
one `lakehouse serve --service X` per service on its own loopback port, peers by address
(LAKEHOUSE_MESH__<PEER>), tokens on, the catalog (and memory) in PostgreSQL, the default bucket
on an S3 server (moto), vectors in a real Milvus 2.3 server.

The user journey runs through the typed clients (generated stubs underneath), a raw generated
stub, `buf curl` and Arrow Flight: ingest -> query -> pull -> index -> search -> remember ->
answer -> erase. Midway the vector and the memory processes are killed with SIGKILL and started
again; the journey goes on through the clients' retries and nothing acknowledged before a kill
is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pytest

from lakehouse.client import AsyncCatalogClient, AsyncChatClient, AsyncQueryClient, RetryPolicy, open_channel
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.common.v1 import refs_pb2
from lakehouse.memory.v1 import memory_service_pb2 as memory_pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as memory_grpc
from lakehouse.query.v1 import flight_pb2
from tests.conftest import fresh_postgres_url, fresh_s3_bucket
from tests.e2e.harness import REPO, ServerProcess, buf_curl, start_server, write_config
from tests.support.milvus import MilvusServerInfo
from tests.support.servers import PostgresInfo, S3Info, free_port, s3_env

SERVICES = ("storage", "catalog", "query", "vector", "memory", "chat")
MODEL_DIR = REPO / "data" / "models" / "all-minilm-l6-v2"
ADMIN_TOKEN = secrets.token_urlsafe(24)
MESH_TOKEN = secrets.token_urlsafe(24)
NOTES = {
    "n1": "Maria renewed her forklift certification last spring.",
    "n2": "The Tulsa warehouse needs two night-shift pickers in March.",
    "n3": "Omar prefers day shifts and speaks Arabic and French.",
    "n4": "Forklift training is booked for the new hires on Friday.",
    "n5": "Invoices from Acme are paid within thirty days.",
}
# Enough retries to ride out a service's restart (a few seconds of UNAVAILABLE).
RETRY = RetryPolicy(attempts=120, initial_backoff_s=0.2, max_backoff_s=1.0)


@dataclass
class Mesh:
    processes: dict[str, ServerProcess]
    config: Path
    env: dict[str, str]
    workdir: Path

    def address(self, service: str) -> str:
        return self.processes[service].address

    def restart(self, service: str) -> ServerProcess:
        """Starts `service` again on its port and returns without waiting for it."""
        old = self.processes[service]
        old.kill()
        self.processes[service] = start_server(
            old.workdir,
            data_dir=old.data_dir,
            config=self.config,
            services=(service,),
            env=self.env,
            port=old.port,
            wait=False,
        )
        return self.processes[service]


def _config(postgres_url: str, bucket_uri: str, s3: S3Info, milvus_uri: str) -> str:
    digest = hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()
    return f"""\
[server]
grace_period_s = 5

[auth]
mesh_token_env = "LAKEHOUSE_E2E_MESH_TOKEN"

[[auth.tokens]]
principal = "ops"
role = "admin"
sha256 = "{digest}"

[catalog]
url = "{postgres_url}"

[storage.buckets.default]
uri = "{bucket_uri}"

[storage.s3]
endpoint = "{s3.endpoint_url}"

[vector]
uri = "{milvus_uri}"
consistency = "Strong"

[vector.embedder]
model_dir = "{MODEL_DIR}"
"""


@pytest.fixture(scope="module")
def mesh(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresInfo, s3: S3Info, milvus_server: MilvusServerInfo
) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("mesh")
    config = write_config(
        workdir / "lakehouse.toml",
        _config(fresh_postgres_url(postgres), fresh_s3_bucket(s3), s3, milvus_server.uri),
    )
    ports = {service: free_port() for service in SERVICES}
    env = {f"LAKEHOUSE_MESH__{s.upper()}": f"127.0.0.1:{p}" for s, p in ports.items()}
    env |= {"LAKEHOUSE_E2E_MESH_TOKEN": MESH_TOKEN, **s3_env(s3)}
    processes = {
        service: start_server(
            workdir / service, config=config, services=(service,), env=env, port=ports[service], wait=False
        )
        for service in SERVICES
    }
    running = Mesh(processes, config, env, workdir)
    try:
        for process in processes.values():
            process.wait_ready(timeout_s=180)  # six interpreters importing at once on two cores
        yield running
    finally:
        for process in running.processes.values():
            process.kill()


def metadata() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {ADMIN_TOKEN}"),)


async def test_the_journey_across_six_processes_survives_a_killed_service(mesh: Mesh, tmp_path: Path) -> None:
    channels = {s: open_channel(mesh.address(s)) for s in SERVICES}
    try:
        await _journey(mesh, channels, tmp_path)
    finally:
        for channel in channels.values():
            await channel.close()


async def _journey(mesh: Mesh, channels: dict[str, grpc.aio.Channel], tmp_path: Path) -> None:
    kwargs = {"timeout_s": 180, "retry": RETRY, "metadata": metadata}
    query = AsyncQueryClient(channels["query"], **kwargs)
    catalog = AsyncCatalogClient(channels["catalog"], **kwargs)
    vectors = AsyncVectorClient(channels["vector"], **kwargs)
    chat = AsyncChatClient(channels["chat"], **kwargs)
    memory = memory_grpc.MemoryServiceStub(channels["memory"])

    # ingest, then read back through SQL and through Arrow Flight
    csv = tmp_path / "notes.csv"
    pacsv.write_csv(pa.table({"note_id": list(NOTES), "text": list(NOTES.values())}), str(csv))
    summary = await query.ingest_file(csv, "notes")
    assert summary.rows_written == len(NOTES)
    counted = await query.query("SELECT count(*) AS n FROM notes")
    assert counted.table.column("n").to_pylist() == [len(NOTES)]
    pulled = await asyncio.to_thread(_flight_pull, mesh.processes["query"].flight, "notes")
    assert sorted(pulled) == sorted(NOTES)

    # index the text column into Milvus, then kill the vector service and start it again
    await vectors.index_dataset("notes_idx", "notes", id_column="note_id", text_columns=["text"])
    assert (await vectors.get_collection("notes_idx")).row_count == len(NOTES)
    mesh.processes["vector"].proc.kill()  # SIGKILL: no drain, no flush
    restarted = mesh.restart("vector")
    collection = await vectors.get_collection("notes_idx")  # retried until the new process answers
    assert collection.row_count == len(NOTES)
    assert restarted.alive()

    # search with buf curl, as an operator would probe it
    found = await asyncio.to_thread(
        buf_curl,
        mesh.address("vector"),
        method="lakehouse.vector.v1.VectorService/Search",
        data={"collections": ["notes_idx"], "text": "who can drive a forklift", "k": 2},
        headers=[f"Authorization: Bearer {ADMIN_TOKEN}"],
    )
    assert found.code == 0, found
    hits = json.loads(found.stdout)["hits"]
    assert {hit["id"] for hit in hits} <= {"n1", "n4"} and hits, hits

    # remember, through the raw generated stub
    added = await memory.AddTrace(
        memory_pb.AddTraceRequest(
            namespace="planner",
            content="Maria is the forklift driver to call first.",
            metadata={"source_dataset": "notes", "source_key": "n1"},
            tags=["staffing"],
        ),
        metadata=metadata(),
        timeout=60,
    )
    # a memory write acknowledged before a SIGKILL is there after the restart
    mesh.processes["memory"].proc.kill()
    mesh.restart("memory").wait_ready(timeout_s=120)
    memory = memory_grpc.MemoryServiceStub(channels["memory"])
    recalled = await memory.SearchTraces(
        memory_pb.SearchTracesRequest(namespaces=["planner"], query="forklift driver", k=3),
        metadata=metadata(),
        timeout=60,
    )
    assert [hit.trace.id for hit in recalled.hits] == [added.trace.id]

    # answer with citations to rows (no model configured: extractive)
    answered = await chat.answer("Who renewed a forklift certification?", ["notes_idx"], k=2)
    assert answered.grounded
    assert any(c.row_key == "n1" and c.source_dataset.dataset == "notes" for c in answered.citations)

    # erase the row: its vector and the trace that points at it go too, with a receipt
    receipt = await catalog.erase_rows("notes", "note_id", ["n1"], mode="hard", reason="data subject request")
    assert receipt.rows_removed == 1
    after = await vectors.search("notes_idx", text="forklift certification", k=5)
    assert "n1" not in {hit.id for hit in after.hits}
    gone = await memory.SearchTraces(
        memory_pb.SearchTracesRequest(namespaces=["planner"], query="forklift driver", k=3),
        metadata=metadata(),
        timeout=60,
    )
    assert list(gone.hits) == []
    remaining = await query.query("SELECT count(*) AS n FROM notes")
    assert remaining.table.column("n").to_pylist() == [len(NOTES) - 1]


def _flight_pull(location: str, dataset: str) -> list[str]:
    client = flight.FlightClient(location)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {ADMIN_TOKEN}".encode())], timeout=60)
    command = flight_pb2.FlightCommand(dataset=refs_pb2.DatasetRef(dataset=dataset))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command.SerializeToString()), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    return table.column("note_id").to_pylist()
