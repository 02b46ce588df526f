"""The policy plane as SQL and Flight users meet it: an agent token bound to a profile sees only a
redacted, filtered view; nothing in SQL or Flight gets around it; soft and hard erasure remove
rows everywhere, with receipts; denials are journaled. Catalog calls go through the generated
stub, as any client's would."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from lakehouse.catalog.v1 import catalog_service_pb2 as cpb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as cpb_grpc
from lakehouse.client.errors import (
    InvalidArgumentError,
    LakehouseClientError,
    PermissionDeniedError,
    from_rpc_error,
)
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import AsyncQueryClient
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc
from lakehouse.server.common.config import TokenConfig
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.query import flight_location, in_thread, query_client, rows, sample_file, sample_tables, scalar

ADMIN = "gov-admin-token"
WRITER = "gov-writer-token"
READER = "gov-reader-token"
AGENT = "gov-agent-token"
PROFILE = "staffing-bot"
CITY = "Tulsa"
VIEW_COLUMNS = ["worker_id", "full_name", "email", "phone", "city", "hourly_rate"]


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha(ADMIN)),
    TokenConfig(principal="loader", role="writer", sha256=_sha(WRITER)),
    TokenConfig(principal="analyst", role="reader", sha256=_sha(READER)),
    TokenConfig(principal="bot", role="agent", profile=PROFILE, sha256=_sha(AGENT)),
)


class Catalog:
    """The catalog's generated stub with a token, raising the typed client errors."""

    def __init__(self, mesh: RunningMesh, token: str) -> None:
        self._stub = cpb_grpc.CatalogServiceStub(mesh.channel)
        self._metadata = (("authorization", f"Bearer {token}"),)

    async def __call__(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(request, metadata=self._metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None


async def governed_mesh(mesh_factory: MeshFactory, data_dir: Path) -> RunningMesh:
    mesh = await start_mesh(make_config(data_dir, Backends(tokens=TOKENS), flight_port=0), None, ADMIN)
    mesh_factory.started.append(mesh)
    return mesh


def safe_view(**changes: Any) -> cpb.View:
    view = cpb.View(
        name="workers_safe",
        base_dataset="workers",
        columns=VIEW_COLUMNS,
        row_filter=f"city = '{CITY}' AND active",
        redactions=[
            cpb.ColumnRedaction(column="email", kind=cpb.REDACTION_KIND_HASH),
            cpb.ColumnRedaction(column="full_name", kind=cpb.REDACTION_KIND_MASK, keep_prefix=1, keep_suffix=1),
            cpb.ColumnRedaction(column="phone", kind=cpb.REDACTION_KIND_NULL),
        ],
    )
    for key, value in changes.items():
        setattr(view, key, value)
    return view


@pytest.fixture
async def gov(mesh_factory: MeshFactory, tmp_path: Path) -> RunningMesh:
    """Workers ingested, the view created and bound to the agent's profile."""
    mesh = await governed_mesh(mesh_factory, tmp_path / "data")
    await query_client(mesh, ADMIN).ingest_file(sample_file(tmp_path / "files", "workers", "csv"), "workers")
    admin = Catalog(mesh, ADMIN)
    await admin("CreateView", cpb.CreateViewRequest(view=safe_view()))
    await admin("CreateProfile", cpb.CreateProfileRequest(profile=cpb.Profile(id=PROFILE, views=["workers_safe"])))
    return mesh


def salt(mesh: RunningMesh) -> str:
    return (mesh.config.data_dir / "secrets" / "view-hash-salt").read_text().strip()


def masked(text: str, keep: int = 1, tail: int = 1) -> str:
    if len(text) <= keep + tail:
        return "*" * len(text)
    return text[:keep] + "*" * (len(text) - keep - tail) + text[len(text) - tail :]


def expected_view_rows(mesh: RunningMesh, skip: set[int] = frozenset()) -> list[dict]:
    secret = salt(mesh)
    return [
        {
            "worker_id": w["worker_id"],
            "full_name": masked(w["full_name"]),
            "email": hashlib.sha256((secret + w["email"]).encode()).hexdigest(),
            "phone": None,
            "city": w["city"],
            "hourly_rate": w["hourly_rate"],
        }
        for w in sample_tables()["workers"].to_pylist()
        if w["city"] == CITY and w["active"] and w["worker_id"] not in skip
    ]


def tulsa_ids() -> list[int]:
    return [w["worker_id"] for w in sample_tables()["workers"].to_pylist() if w["city"] == CITY and w["active"]]


async def view_rows(client: AsyncQueryClient) -> list[dict]:
    return await rows(client, "SELECT * FROM workers_safe ORDER BY worker_id")


# --- views and profiles ---------------------------------------------------------------------------


async def test_an_agent_sees_its_view_masked_hashed_and_filtered_and_nothing_else(gov) -> None:
    agent = query_client(gov, AGENT)
    assert await view_rows(agent) == expected_view_rows(gov)
    tables = await agent.list_tables()
    assert [(t.name, t.kind, t.base_dataset) for t in tables] == [("workers_safe", pb.TABLE_KIND_VIEW, "workers")]
    assert not tables[0].HasField("row_count")
    with pytest.raises(PermissionDeniedError) as err:
        await agent.query("SELECT count(*) FROM workers")
    assert err.value.reason == "TABLE_NOT_ALLOWED"
    assert "workers" in err.value.message and "workers_safe" in err.value.message
    # The raw dataset is still there for everyone else.
    assert await scalar(query_client(gov, READER), "SELECT count(*) FROM workers") == 200


async def test_hashes_are_stable_across_restarts(gov, mesh_factory) -> None:
    before = await view_rows(query_client(gov, AGENT))
    again = await mesh_factory.restart(gov, ADMIN)
    assert await view_rows(query_client(again, AGENT)) == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM workers",
        'SELECT * FROM "WORKERS"',
        "SELECT * FROM main.workers",
        "SELECT * FROM temp.main.workers_safe",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM duckdb_views()",
        "SELECT * FROM read_parquet('data/buckets/default/_lakehouse/**/*.parquet')",
        "WITH w AS (SELECT * FROM workers) SELECT email FROM w",
        "SELECT s.* FROM workers_safe s JOIN workers w USING (worker_id)",
        "SELECT * FROM workers_safe WHERE worker_id IN (SELECT worker_id FROM workers)",
        "SELECT (SELECT max(email) FROM workers)",
        "SELECT * FROM __lakehouse_data_workers_safe",
        "SELECT * FROM __lakehouse_salt",
        "SELECT * FROM __lakehouse_tombstones_workers_safe",
        "DESCRIBE workers",
        "SHOW TABLES",
        "SELECT current_setting('allowed_directories')",
        "SELECT * FROM query_table('workers')",
        "EXPLAIN SELECT * FROM workers",
        "SELECT * FROM workers_safe UNION ALL SELECT worker_id, full_name, email, phone, city, hourly_rate FROM workers",
    ],
)
async def test_bypass_attempts_are_refused(gov, sql) -> None:
    with pytest.raises(PermissionDeniedError) as err:
        await query_client(gov, AGENT).query(sql)
    assert err.value.reason in (
        "TABLE_NOT_ALLOWED",
        "QUALIFIED_NAME_NOT_ALLOWED",
        "TABLE_FUNCTION_NOT_ALLOWED",
        "FUNCTION_NOT_ALLOWED",
        "STATEMENT_NOT_ALLOWED",
    ), err.value


async def test_columns_outside_the_whitelist_are_unreachable(gov) -> None:
    agent = query_client(gov, AGENT)
    with pytest.raises(InvalidArgumentError) as err:
        await agent.query("SELECT skills FROM workers_safe")
    assert err.value.reason == "QUERY_FAILED" and "skills" in err.value.message
    described = await rows(agent, "DESCRIBE workers_safe")
    assert [r["column_name"] for r in described] == VIEW_COLUMNS
    plan = (await agent.explain("SELECT * FROM workers_safe")).plan
    assert salt(gov) not in plan


async def test_a_view_change_applies_to_the_very_next_statement(gov) -> None:
    agent = query_client(gov, AGENT)
    assert len(await view_rows(agent)) == len(tulsa_ids())
    admin = Catalog(gov, ADMIN)
    changed = safe_view(row_filter="hourly_rate < 0")
    await admin("UpdateView", cpb.UpdateViewRequest(view=changed, update_mask={"paths": ["row_filter"]}))
    assert await view_rows(agent) == []


async def test_policy_answers_carry_the_configured_lease(gov) -> None:
    answer = await Catalog(gov, AGENT)("GetAccessPolicy", cpb.GetAccessPolicyRequest())
    assert answer.lease.ToMilliseconds() == gov.config.catalog.policy_lease_ms == 20
    assert [v.name for v in answer.policy.views] == ["workers_safe"] and answer.policy.restricted
    again = await Catalog(gov, AGENT)("GetAccessPolicy", cpb.GetAccessPolicyRequest(known_revision=answer.revision))
    assert again.unchanged and not again.HasField("policy")


async def test_an_agent_reads_its_view_over_flight_and_nothing_else(gov) -> None:
    location = flight_location(gov)

    def pull() -> tuple[list[str], pa.Table, list[str]]:
        refused = []
        with LakehouseFlight(location, token=AGENT) as client:
            names = [info.descriptor.path[0].decode() for info in client.list_datasets()]
            table = client.read_dataset("workers_safe")
            forged = flight_pb2.FlightTicket(dataset={"dataset": "workers", "version": 1}).SerializeToString()
            for attempt in (
                lambda: client.read_dataset("workers"),
                lambda: client.query_to_reader("SELECT * FROM workers").read_all(),
                lambda: client.read_ticket(forged).read_all(),
            ):
                try:
                    attempt()
                except flight.FlightUnauthorizedError as exc:
                    refused.append(str(exc))
        return names, table, refused

    names, table, refused = await in_thread(pull)
    assert names == ["workers_safe"]
    assert table.sort_by("worker_id").to_pylist() == expected_view_rows(gov)
    assert len(refused) == 3 and all("TABLE_NOT_ALLOWED" in r for r in refused), refused


# --- roles ----------------------------------------------------------------------------------------


async def test_roles_are_checked_and_denials_are_journaled(gov, tmp_path) -> None:
    reader = query_client(gov, READER)
    with pytest.raises(PermissionDeniedError) as err:
        await reader.ingest_file(sample_file(tmp_path / "more", "clients", "csv"), "clients")
    assert err.value.reason == "ROLE_NOT_ALLOWED"
    agent = Catalog(gov, AGENT)
    with pytest.raises(PermissionDeniedError):
        await agent("CreateView", cpb.CreateViewRequest(view=safe_view(name="mine")))
    with pytest.raises(PermissionDeniedError):
        await Catalog(gov, WRITER)("EraseRows", erase_request([1], cpb.ERASURE_MODE_SOFT))
    with pytest.raises(LakehouseClientError) as err:
        await query_client(gov, "not-a-token").list_tables()
    assert err.value.code.name == "UNAUTHENTICATED"
    admin = Catalog(gov, ADMIN)

    async def denials() -> list[cpb.Event]:
        listed = await admin("ListEvents", cpb.ListEventsRequest(entity_type="denial", page_size=100))
        return list(listed.events)

    found: list[cpb.Event] = []
    for _ in range(100):  # journaled in the background, moments after the refusal
        found = await denials()
        if len(found) >= 4:
            break
        await asyncio.sleep(0.05)
    actors = {(e.actor, e.entity.rsplit("/", 1)[-1]) for e in found}
    assert {("analyst", "IngestFile"), ("bot", "CreateView"), ("loader", "EraseRows")} <= actors, actors
    assert any(e.action == "unauthenticated" for e in found)
    assert all("not-a-token" not in e.after_json for e in found)


# --- erasure --------------------------------------------------------------------------------------


def erase_request(keys: list[int], mode: int, reason: str = "subject request") -> cpb.EraseRowsRequest:
    return cpb.EraseRowsRequest(
        dataset="workers", key_column="worker_id", key_values=[str(k) for k in keys], mode=mode, reason=reason
    )


async def test_a_soft_erased_row_vanishes_from_sql_views_and_flight_and_can_be_restored(gov) -> None:
    gone = tulsa_ids()[0]
    admin, agent = query_client(gov, ADMIN), query_client(gov, AGENT)
    catalog = Catalog(gov, ADMIN)
    receipt = (await catalog("EraseRows", erase_request([gone], cpb.ERASURE_MODE_SOFT))).receipt
    assert receipt.state == cpb.ERASURE_STATE_COMPLETE and receipt.rows_removed == 1
    assert receipt.version_before == receipt.version_after
    assert await scalar(admin, f"SELECT count(*) FROM workers WHERE worker_id = {gone}") == 0
    assert await scalar(admin, "SELECT count(*) FROM workers") == 199
    assert await view_rows(agent) == expected_view_rows(gov, skip={gone})

    def pulled() -> list[int]:
        with LakehouseFlight(flight_location(gov), token=ADMIN) as client:
            return client.read_dataset("workers").column("worker_id").to_pylist()

    assert gone not in await in_thread(pulled)
    # Older versions are hidden too: tombstones apply to every read.
    old = await scalar(admin, f"SELECT count(*) FROM workers WHERE worker_id = {gone}", as_of={"workers": 2})
    assert old == 0
    restored = await catalog(
        "RestoreRows", cpb.RestoreRowsRequest(dataset="workers", key_values=[str(gone)], reason="x")
    )
    assert restored.restored == 1
    assert await scalar(admin, f"SELECT count(*) FROM workers WHERE worker_id = {gone}") == 1


async def test_a_hard_erased_row_is_in_no_parquet_file_left_in_the_bucket(gov, mesh_factory) -> None:
    gone = tulsa_ids()[:2]
    admin = query_client(gov, ADMIN)
    catalog = Catalog(gov, ADMIN)
    receipt = (await catalog("EraseRows", erase_request(gone, cpb.ERASURE_MODE_HARD))).receipt
    assert receipt.state == cpb.ERASURE_STATE_COMPLETE, receipt.detail
    assert receipt.rows_removed == 2 and receipt.files_removed >= 1
    assert receipt.version_after == receipt.version_before + 1
    assert receipt.key_count == 2 and receipt.actor == "ops"
    assert await scalar(admin, "SELECT count(*) FROM workers") == 198
    root = gov.config.data_dir / "buckets" / "default" / "_lakehouse" / "datasets"
    files = sorted(root.rglob("*.parquet"))
    assert files
    for path in files:
        ids = pq.read_table(path, columns=["worker_id"]).column("worker_id").to_pylist()
        assert not set(gone) & set(ids), path
    again = await mesh_factory.restart(gov, ADMIN)
    stored = await Catalog(again, ADMIN)("GetErasureReceipt", cpb.GetErasureReceiptRequest(id=receipt.id))
    assert stored.receipt == receipt
    events = await Catalog(again, ADMIN)("ListEvents", cpb.ListEventsRequest(entity_type="erasure"))
    journal = json.dumps([[e.before_json, e.after_json] for e in events.events])
    assert events.events and f'"{gone[0]}"' not in journal and f"[{gone[0]}" not in journal
    assert await scalar(query_client(again, ADMIN), "SELECT count(*) FROM workers") == 198


async def test_compaction_applies_soft_tombstones_and_clears_them(gov) -> None:
    gone = tulsa_ids()[:3]
    catalog = Catalog(gov, ADMIN)
    await catalog("EraseRows", erase_request(gone, cpb.ERASURE_MODE_SOFT))
    with pytest.raises(PermissionDeniedError) as err:
        await query_client(gov, WRITER).compact("workers", apply_tombstones=True)
    assert err.value.reason == "ADMIN_REQUIRED"
    done = await query_client(gov, ADMIN).compact("workers", apply_tombstones=True)
    assert done.rows_erased == 3 and done.tombstones_cleared == 3
    assert done.version_after == done.version_before + 1
    listed = await catalog("ListTombstones", cpb.ListTombstonesRequest(dataset="workers"))
    assert list(listed.tombstones) == []
    assert await scalar(query_client(gov, ADMIN), "SELECT count(*) FROM workers") == 197


async def test_delete_rows_checks_its_input(gov) -> None:
    stub = pb_grpc.QueryServiceStub(gov.channel)
    metadata = (("authorization", f"Bearer {ADMIN}"),)

    async def delete(**fields: Any) -> pb.DeleteRowsResponse:
        try:
            return await stub.DeleteRows(pb.DeleteRowsRequest(dataset="workers", **fields), metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    cases = [
        ({"key_column": "nope", "key_values": ["1"]}, "UNKNOWN_COLUMN"),
        ({"key_column": "worker_id", "key_values": []}, "EMPTY_KEYS"),
        ({"key_column": "worker_id", "key_values": ["1", "one"]}, "INVALID_KEY_VALUE"),
        ({"key_column": "hourly_rate", "key_values": ["1.5"]}, "UNSUPPORTED_KEY_TYPE"),
    ]
    for fields, reason in cases:
        with pytest.raises(InvalidArgumentError) as err:
            await delete(**fields)
        assert err.value.reason == reason
    counted = await delete(key_column="worker_id", key_values=["1", "2", "999"], dry_run=True)
    assert counted.rows_removed == 2 and counted.version_after == counted.version_before
    assert await scalar(query_client(gov, ADMIN), "SELECT count(*) FROM workers") == 200
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await stub.DeleteRows(
            pb.DeleteRowsRequest(dataset="workers", key_column="worker_id", key_values=["1"]),
            metadata=(("authorization", f"Bearer {WRITER}"),),
        )
    assert raw.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await stub.DeleteRows(
            pb.DeleteRowsRequest(dataset="nobody", key_column="id", key_values=["1"]), metadata=metadata
        )
    assert raw.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_role_reads_a_view_the_same_way(gov) -> None:
    clients = [query_client(gov, token) for token in (ADMIN, WRITER, READER, AGENT)]
    seen = await asyncio.gather(*(view_rows(c) for c in clients))
    assert all(rows_seen == expected_view_rows(gov) for rows_seen in seen)
