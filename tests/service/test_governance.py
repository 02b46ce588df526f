"""The catalog's governance plane as a user meets it, on SQLite and on PostgreSQL: AI-safe views,
model profiles, what agents see, access policies and their revision, erasure with receipts,
tombstones, derivations and the journal of denied calls.

Erasure counts and deletes rows through the query service's DeleteRows, so those tests ingest
real data first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.protobuf import json_format, timestamp_pb2

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.catalog.v1 import catalog_service_pb2_grpc as pb_grpc
from lakehouse.client import AsyncCatalogClient, token_metadata
from lakehouse.client.arrow import schema_ipc
from lakehouse.client.catalog import redaction
from lakehouse.client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    LakehouseClientError,
    NotFoundError,
    PermissionDeniedError,
    from_rpc_error,
)
from lakehouse.common.v1 import arrow_pb2
from lakehouse.server.catalog.service import dataset_id
from lakehouse.server.common.config import TokenConfig
from tests.conftest import MeshFactory
from tests.support.mesh import Backends, RunningMesh
from tests.support.query import query_client, sample_file, sample_tables

WORKERS = pa.schema(
    [
        ("worker_id", pa.int64()),
        ("full_name", pa.string()),
        ("email", pa.string()),
        ("city", pa.string()),
        ("hourly_rate", pa.float64()),
        ("active", pa.bool_()),
    ]
)
PAYROLL = pa.schema([("worker_id", pa.int64()), ("salary", pa.float64())])
CLIENTS = pa.schema([("client_id", pa.int64()), ("name", pa.string())])


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha("ops-token")),
    TokenConfig(principal="ana", role="writer", sha256=_sha("ana-token")),
    TokenConfig(principal="bot", role="agent", profile="support", sha256=_sha("bot-token")),
    TokenConfig(principal="ghost", role="agent", profile="missing", sha256=_sha("ghost-token")),
)


async def refused(
    call: Awaitable[Any], error: type[LakehouseClientError], reason: str, field: str | None = None
) -> LakehouseClientError:
    """The error a call failed with, checked for its class, reason and (when given) bad field."""
    with pytest.raises(error) as caught:
        await call
    assert caught.value.reason == reason, caught.value
    if field is not None:
        assert [v.field for v in caught.value.violations] == [field], caught.value
    return caught.value


@pytest.fixture
async def mesh(mesh_factory: MeshFactory, catalog_url: str) -> RunningMesh:
    """Authentication off (the local admin), the workers, payroll and clients datasets registered."""
    mesh = await mesh_factory(Backends(catalog_url=catalog_url))
    for name, schema in (("workers", WORKERS), ("payroll", PAYROLL), ("clients", CLIENTS)):
        await mesh.catalog.create_dataset(name, schema)
    return mesh


@pytest.fixture
async def secured(mesh_factory: MeshFactory, catalog_url: str) -> RunningMesh:
    """Tokens on; the admin's client is `mesh.catalog`. Views over workers and payroll; the
    agent "bot" is bound to profile "support" (clients and the workers view)."""
    mesh = await mesh_factory(Backends(catalog_url=catalog_url, tokens=TOKENS), token="ops-token")
    c = mesh.catalog
    for name, schema in (("workers", WORKERS), ("payroll", PAYROLL), ("clients", CLIENTS)):
        await c.create_dataset(name, schema)
    await c.create_view("workers_safe", "workers", ["worker_id", "city"], row_filter="active")
    await c.create_view("payroll_view", "payroll", ["worker_id"])
    await c.create_profile(
        "support",
        datasets=["clients"],
        views=["workers_safe"],
        memory_namespaces=["support-notes"],
        default_chat_model="ollama/llama3.2",
    )
    return mesh


def client_of(mesh: RunningMesh, token: str) -> AsyncCatalogClient:
    """The catalog client of another principal on the same mesh."""
    return AsyncCatalogClient(mesh.channel, timeout_s=20, metadata=token_metadata(token))


@pytest.fixture
async def ingested(mesh_factory: MeshFactory, catalog_url: str, tmp_path: Path) -> RunningMesh:
    """Authentication off; the 200-row workers sample ingested through the query service."""
    mesh = await mesh_factory(Backends(catalog_url=catalog_url))
    await query_client(mesh).ingest_file(sample_file(tmp_path / "files", "workers", "csv"), "workers")
    return mesh


def emails(*worker_ids: int) -> list[str]:
    by_id = {w["worker_id"]: w["email"] for w in sample_tables()["workers"].to_pylist()}
    return [by_id[i] for i in worker_ids]


# -- views -------------------------------------------------------------------------------------------


async def test_a_view_is_created_read_listed_updated_and_deleted(mesh: RunningMesh) -> None:
    c = mesh.catalog
    created = await c.create_view(
        "workers_safe",
        "workers",
        ["worker_id", "email", "city"],
        row_filter="  city = 'Tulsa' AND active ",
        redactions=[redaction("email", "mask", 2, 4)],
        description="for the staffing bot",
    )
    assert (created.name, created.base_dataset, list(created.columns)) == (
        "workers_safe",
        "workers",
        ["worker_id", "email", "city"],
    )
    assert created.row_filter == "city = 'Tulsa' AND active"
    assert [(r.column, r.kind, r.keep_prefix, r.keep_suffix) for r in created.redactions] == [
        ("email", pb.REDACTION_KIND_MASK, 2, 4)
    ]
    assert (created.owner, created.description) == ("local-admin", "for the staffing bot")
    assert await c.get_view("workers_safe") == created

    await c.create_view("payroll_view", "payroll", ["worker_id"])
    assert [v.name for v in (await c.list_views()).views] == ["payroll_view", "workers_safe"]
    assert [v.name for v in (await c.list_views(base_dataset="payroll")).views] == ["payroll_view"]
    first = await c.list_views(page_size=1)
    rest = await c.list_views(page_token=first.next_page_token)
    assert [v.name for v in [*first.views, *rest.views]] == ["payroll_view", "workers_safe"]

    updated = await c.update_view(
        "workers_safe", columns=["worker_id", "city"], row_filter="", redactions=[], description="wider"
    )
    assert (list(updated.columns), updated.row_filter, list(updated.redactions)) == (["worker_id", "city"], "", [])
    assert updated.description == "wider" and updated.create_time == created.create_time
    assert (await c.delete_view("workers_safe")).name == "workers_safe"
    await refused(c.get_view("workers_safe"), NotFoundError, "VIEW_NOT_FOUND")
    events = (await c.list_events(entity_type="view", entity="workers_safe")).events
    assert [e.action for e in events] == ["create", "update", "delete"]
    assert json.loads(events[0].after_json)["row_filter"] == "city = 'Tulsa' AND active"


async def call(mesh: RunningMesh, method: str, request: Any) -> Any:
    """A catalog RPC through the generated stub, for requests the typed client never builds."""
    try:
        return await getattr(pb_grpc.CatalogServiceStub(mesh.channel), method)(request, timeout=20)
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc) from None


def hashed(column: str, **more: Any) -> pb.ColumnRedaction:
    return pb.ColumnRedaction(column=column, kind=more.pop("kind", pb.REDACTION_KIND_HASH), **more)


@pytest.mark.parametrize(
    ("changes", "error", "reason", "field"),
    [
        ({"name": "Workers-Safe"}, InvalidArgumentError, "INVALID_VIEW_NAME", "view.name"),
        ({"base_dataset": ""}, InvalidArgumentError, "MISSING_DATASET", "view.base_dataset"),
        ({"base_dataset": "nope"}, NotFoundError, "DATASET_NOT_FOUND", None),
        ({"columns": []}, InvalidArgumentError, "MISSING_COLUMNS", "view.columns"),
        ({"columns": ["worker_id", "salary"]}, InvalidArgumentError, "UNKNOWN_COLUMN", "view.columns[1]"),
        ({"columns": ["worker_id", "email", "worker_id"]}, InvalidArgumentError, "DUPLICATE_COLUMN", "view.columns[2]"),
        (
            {"redactions": [hashed("hourly_rate")]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[0].column",
        ),
        (
            {"redactions": [hashed("email", kind=pb.REDACTION_KIND_UNSPECIFIED)]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[0].kind",
        ),
        (
            {"redactions": [hashed("email"), hashed("email", kind=pb.REDACTION_KIND_NULL)]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[1].column",
        ),
        (
            {"redactions": [hashed("email", keep_prefix=2)]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[0].keep_prefix",
        ),
        (
            {"redactions": [hashed("email", kind=pb.REDACTION_KIND_MASK, keep_suffix=65)]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[0].keep_suffix",
        ),
        (
            {"redactions": [hashed("email", kind=pb.REDACTION_KIND_MASK, keep_prefix=-1)]},
            InvalidArgumentError,
            "INVALID_REDACTION",
            "view.redactions[0].keep_prefix",
        ),
        ({"row_filter": "salary > 0"}, InvalidArgumentError, "INVALID_ROW_FILTER", "view.row_filter"),
        ({"row_filter": "hourly_rate"}, InvalidArgumentError, "INVALID_ROW_FILTER", "view.row_filter"),
    ],
)
async def test_a_view_that_breaks_a_rule_is_refused_naming_the_field(
    mesh: RunningMesh, changes: dict[str, Any], error: type[LakehouseClientError], reason: str, field: str | None
) -> None:
    view: dict[str, Any] = {
        "name": "workers_safe",
        "base_dataset": "workers",
        "columns": ["worker_id", "email", "city"],
    }
    view |= changes
    await refused(
        mesh.catalog.create_view(view.pop("name"), view.pop("base_dataset"), view.pop("columns"), **view),
        error,
        reason,
        field,
    )
    assert (await mesh.catalog.list_views()).views == []


@pytest.mark.parametrize(
    "injection",
    [
        "active) UNION SELECT 1 FROM payroll WHERE (true",
        "active) OR (true",
        "active --",
        "true; DELETE FROM workers",
        "worker_id IN (SELECT worker_id FROM payroll)",
        "read_parquet('/etc/passwd') IS NOT NULL",
        "current_setting('allowed_directories') = ''",
    ],
)
async def test_row_filters_that_try_to_reach_beyond_the_row_are_refused(mesh: RunningMesh, injection: str) -> None:
    await refused(
        mesh.catalog.create_view("sneaky", "workers", ["worker_id"], row_filter=injection),
        InvalidArgumentError,
        "INVALID_ROW_FILTER",
        "view.row_filter",
    )
    assert (await mesh.catalog.list_views()).views == []


async def test_an_unknown_column_is_named_with_the_base_columns(mesh: RunningMesh) -> None:
    error = await refused(
        mesh.catalog.create_view("v", "workers", ["worker_id", "salary"]), InvalidArgumentError, "UNKNOWN_COLUMN"
    )
    assert "'salary'" in error.message
    assert "worker_id, full_name, email, city, hourly_rate, active" in error.message


async def test_views_and_datasets_share_one_namespace(mesh: RunningMesh) -> None:
    c = mesh.catalog
    error = await refused(
        c.create_view("workers", "workers", ["worker_id"]), AlreadyExistsError, "DATASET_ALREADY_EXISTS"
    )
    assert "share one namespace" in error.message
    await c.create_view("safe", "workers", ["worker_id"])
    await refused(c.create_view("safe", "payroll", ["worker_id"]), AlreadyExistsError, "VIEW_ALREADY_EXISTS")
    error = await refused(c.create_dataset("safe", CLIENTS), AlreadyExistsError, "VIEW_ALREADY_EXISTS")
    assert "a view named 'safe'" in error.message


async def test_view_updates_follow_the_mask_and_the_same_rules(mesh: RunningMesh) -> None:
    c = mesh.catalog
    await c.create_view("v", "workers", ["worker_id", "email"], redactions=[redaction("email", "hash")])
    await refused(c.update_view("v"), InvalidArgumentError, "INVALID_UPDATE_MASK", "update_mask")
    moved = pb.UpdateViewRequest(view=pb.View(name="v", base_dataset="payroll"))
    moved.update_mask.paths.append("base_dataset")
    await refused(call(mesh, "UpdateView", moved), InvalidArgumentError, "INVALID_UPDATE_MASK", "update_mask")
    await refused(
        c.update_view("v", row_filter="x) OR (1=1"), InvalidArgumentError, "INVALID_ROW_FILTER", "view.row_filter"
    )
    # Narrowing the columns may not leave a redaction pointing outside them.
    await refused(c.update_view("v", columns=["worker_id"]), InvalidArgumentError, "INVALID_REDACTION")
    await refused(c.update_view("gone", description="x"), NotFoundError, "VIEW_NOT_FOUND")
    assert list((await c.get_view("v")).columns) == ["worker_id", "email"]


async def test_what_views_and_profiles_depend_on_cannot_be_deleted(mesh: RunningMesh) -> None:
    c = mesh.catalog
    await c.create_view("workers_safe", "workers", ["worker_id"])
    await c.create_profile("support", datasets=["payroll"], views=["workers_safe"])
    error = await refused(c.delete_dataset("workers"), FailedPreconditionError, "DATASET_IN_USE")
    assert "view workers_safe" in error.message
    error = await refused(c.delete_dataset("payroll"), FailedPreconditionError, "DATASET_IN_USE")
    assert "profile support" in error.message
    error = await refused(c.delete_view("workers_safe"), FailedPreconditionError, "VIEW_IN_USE")
    assert "support" in error.message

    await c.update_profile("support", datasets=[], views=[])
    await c.delete_view("workers_safe")
    assert (await c.delete_dataset("workers")).name == "workers"
    assert (await c.delete_dataset("payroll")).name == "payroll"


async def test_a_base_dataset_keeps_the_columns_its_views_read(mesh: RunningMesh) -> None:
    c = mesh.catalog
    await c.create_view("v", "payroll", ["worker_id", "salary"])
    narrower = pa.schema([("worker_id", pa.int64())])
    overwrite = pb.RegisterDatasetVersionRequest(
        dataset="payroll",
        table_version=1,
        operation=pb.VERSION_OPERATION_OVERWRITE,
        schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(narrower)),
    )
    error = await refused(c.register_version(overwrite), FailedPreconditionError, "SCHEMA_MISMATCH")
    assert "views v read 'payroll'" in error.message
    wider = pa.schema([*PAYROLL, ("bonus", pa.float64())])
    overwrite.schema.arrow_ipc = schema_ipc(wider)
    assert (await c.register_version(overwrite)).dataset.current_version == 2


# -- profiles ----------------------------------------------------------------------------------------


async def test_a_profile_is_created_read_listed_updated_and_deleted(mesh: RunningMesh) -> None:
    c = mesh.catalog
    await c.create_view("workers_safe", "workers", ["worker_id"])
    created = await c.create_profile(
        "staffing-bot",
        description="answers staffing questions",
        datasets=["clients", "payroll", "clients"],
        views=["workers_safe"],
        memory_namespaces=["bot_notes", "team-notes"],
        default_chat_model="ollama/llama3.2",
    )
    assert list(created.datasets) == ["clients", "payroll"]
    assert (list(created.views), list(created.memory_namespaces)) == (["workers_safe"], ["bot_notes", "team-notes"])
    assert created.default_chat_model == "ollama/llama3.2" and created.create_time.seconds > 0
    assert await c.get_profile("staffing-bot") == created
    await c.create_profile("analyst")
    assert [p.id for p in (await c.list_profiles()).profiles] == ["analyst", "staffing-bot"]

    updated = await c.update_profile("staffing-bot", datasets=["payroll"], description="narrower")
    assert (list(updated.datasets), updated.description, list(updated.views)) == (
        ["payroll"],
        "narrower",
        ["workers_safe"],
    )
    assert (await c.delete_profile("staffing-bot")).id == "staffing-bot"
    await refused(c.get_profile("staffing-bot"), NotFoundError, "PROFILE_NOT_FOUND")
    events = (await c.list_events(entity_type="profile", entity="staffing-bot")).events
    assert [e.action for e in events] == ["create", "update", "delete"]


@pytest.mark.parametrize(
    ("fields", "error", "reason", "field"),
    [
        ({"profile_id": "Staffing_Bot"}, InvalidArgumentError, "INVALID_PROFILE_ID", "profile.id"),
        ({"datasets": ["clients", "nope"]}, NotFoundError, "BINDING_NOT_FOUND", "profile.datasets[1]"),
        # A view is not a dataset, nor a dataset a view.
        ({"datasets": ["workers_safe"]}, NotFoundError, "BINDING_NOT_FOUND", "profile.datasets[0]"),
        ({"views": ["workers_safe", "missing_view"]}, NotFoundError, "BINDING_NOT_FOUND", "profile.views[1]"),
        ({"views": ["workers"]}, NotFoundError, "BINDING_NOT_FOUND", "profile.views[0]"),
        (
            {"memory_namespaces": ["ok", "Not OK"]},
            InvalidArgumentError,
            "INVALID_NAMESPACE",
            "profile.memory_namespaces[1]",
        ),
        ({"default_chat_model": "m" * 201}, InvalidArgumentError, "VALUE_TOO_LONG", "profile.default_chat_model"),
        ({"collections": ["bad name"]}, InvalidArgumentError, "INVALID_COLLECTION", "profile.collections[0]"),
        # The vector service answers that the collection does not exist.
        ({"collections": ["workers_vec"]}, NotFoundError, "BINDING_NOT_FOUND", "profile.collections[0]"),
    ],
)
async def test_every_binding_must_resolve_when_a_profile_is_saved(
    mesh: RunningMesh, fields: dict[str, Any], error: type[LakehouseClientError], reason: str, field: str
) -> None:
    c = mesh.catalog
    await c.create_view("workers_safe", "workers", ["worker_id"])
    fields = dict(fields)  # the parameters are shared by both catalog backends
    profile_id = fields.pop("profile_id", "support")
    await refused(c.create_profile(profile_id, **fields), error, reason, field)
    assert (await c.list_profiles()).profiles == []
    await c.create_profile("support")
    if profile_id == "support":
        await refused(c.update_profile("support", **fields), error, reason, field)


async def test_a_missing_binding_is_named(mesh: RunningMesh) -> None:
    error = await refused(
        mesh.catalog.create_profile("support", views=["nope_view"]), NotFoundError, "BINDING_NOT_FOUND"
    )
    assert "view 'nope_view'" in error.message and "does not exist" in error.message


async def test_profile_ids_are_unique_and_updates_name_their_fields(mesh: RunningMesh) -> None:
    c = mesh.catalog
    await c.create_profile("support")
    await refused(c.create_profile("support"), AlreadyExistsError, "PROFILE_ALREADY_EXISTS")
    await refused(c.update_profile("support"), InvalidArgumentError, "INVALID_UPDATE_MASK", "update_mask")
    await refused(c.update_profile("gone", description="x"), NotFoundError, "PROFILE_NOT_FOUND")
    await refused(c.delete_profile("gone"), NotFoundError, "PROFILE_NOT_FOUND")


async def test_a_profile_bound_to_a_configured_token_cannot_be_deleted(secured: RunningMesh) -> None:
    error = await refused(secured.catalog.delete_profile("support"), FailedPreconditionError, "PROFILE_IN_USE")
    assert "[auth]" in error.message
    await refused(client_of(secured, "ana-token").create_profile("x"), PermissionDeniedError, "ROLE_NOT_ALLOWED")


# -- what agents see ---------------------------------------------------------------------------------


async def test_an_agent_sees_only_what_its_profile_binds(secured: RunningMesh) -> None:
    bot = client_of(secured, "bot-token")
    assert [d.name for d in (await bot.list_datasets()).datasets] == ["clients"]
    assert (await bot.get_dataset("clients")).name == "clients"
    assert [v.version for v in (await bot.history("clients")).versions] == [1]
    assert (await bot.get_version("clients", 1)).version == 1
    for call in (
        bot.get_dataset("workers"),
        bot.get_dataset(dataset_id("workers")),
        bot.get_dataset("no_such_table"),
        bot.history("workers"),
        bot.get_version("payroll", 1),
    ):
        error = await refused(call, PermissionDeniedError, "TABLE_NOT_ALLOWED")
        assert "you may read: clients" in error.message
    assert [v.name for v in (await bot.list_views()).views] == ["workers_safe"]
    assert (await bot.get_view("workers_safe")).row_filter == "active"
    await refused(bot.get_view("payroll_view"), PermissionDeniedError, "TABLE_NOT_ALLOWED")
    assert [p.id for p in (await bot.list_profiles()).profiles] == ["support"]
    assert list((await bot.get_profile("support")).views) == ["workers_safe"]
    await secured.catalog.create_profile("other")
    await refused(bot.get_profile("other"), PermissionDeniedError, "PROFILE_NOT_ALLOWED")
    # Admins see everything.
    assert len((await secured.catalog.list_datasets()).datasets) == 3


async def test_an_agent_whose_profile_does_not_exist_sees_nothing(secured: RunningMesh) -> None:
    ghost = client_of(secured, "ghost-token")
    assert (await ghost.list_datasets()).datasets == []
    assert (await ghost.list_views()).views == []
    assert (await ghost.list_profiles()).profiles == []
    await refused(ghost.get_profile("missing"), NotFoundError, "PROFILE_NOT_FOUND")
    error = await refused(ghost.get_dataset("clients"), PermissionDeniedError, "TABLE_NOT_ALLOWED")
    assert "you may read: nothing" in error.message
    policy = (await ghost.get_access_policy()).policy
    assert (policy.restricted, policy.profile, list(policy.datasets), list(policy.views)) == (True, "missing", [], [])


# -- access policy -----------------------------------------------------------------------------------


async def test_the_access_policy_of_an_admin_and_of_an_agent(secured: RunningMesh) -> None:
    admin = (await secured.catalog.get_access_policy()).policy
    assert (admin.principal, admin.role, admin.profile, admin.restricted) == ("ops", "admin", "", False)
    assert [d.name for d in admin.datasets] == ["clients", "payroll", "workers"]
    assert [v.name for v in admin.views] == ["payroll_view", "workers_safe"]
    assert (list(admin.view_bases), list(admin.tombstones)) == ([], [])

    answer = await client_of(secured, "bot-token").get_access_policy()
    bot = answer.policy
    assert (bot.principal, bot.role, bot.profile, bot.restricted) == ("bot", "agent", "support", True)
    assert [d.name for d in bot.datasets] == ["clients"]
    assert [(v.name, list(v.columns), v.row_filter) for v in bot.views] == [
        ("workers_safe", ["worker_id", "city"], "active")
    ]
    assert [d.name for d in bot.view_bases] == ["workers"]
    assert bot.view_bases[0].schema.arrow_ipc == schema_ipc(WORKERS)
    assert (list(bot.memory_namespaces), bot.default_chat_model) == (["support-notes"], "ollama/llama3.2")
    assert answer.revision >= 1 and not answer.unchanged


async def test_the_policy_revision_moves_with_every_policy_change_and_nothing_else(secured: RunningMesh) -> None:
    c = secured.catalog

    async def revision() -> int:
        return (await c.get_access_policy()).revision

    async def moved(change: Awaitable[Any]) -> None:
        before = await revision()
        await change
        assert await revision() > before

    held = await revision()
    assert held >= 1
    again = await c.get_access_policy(held)
    assert again.unchanged and not again.HasField("policy") and again.revision == held
    # Reads, refusals and journaled denials change nothing.
    await c.list_views()
    await refused(c.create_view("bad", "workers", ["nope"]), InvalidArgumentError, "UNKNOWN_COLUMN")
    await c.record_denials([pb.Denial(method="/lakehouse.query.v1.QueryService/Query", code="PERMISSION_DENIED")])
    assert (await c.get_access_policy(held)).unchanged

    await moved(c.create_view("more", "payroll", ["salary"]))
    await moved(c.update_view("more", row_filter="salary > 0"))
    await moved(c.update_profile("support", views=["workers_safe", "more"]))
    await moved(c.update_dataset("clients", description="customers"))
    await moved(c.register_version(version_of("clients", 0)))
    await moved(c.create_profile("fresh"))
    await moved(c.delete_profile("fresh"))


def version_of(dataset: str, table_version: int, schema: pa.Schema = CLIENTS) -> pb.RegisterDatasetVersionRequest:
    return pb.RegisterDatasetVersionRequest(
        dataset=dataset,
        table_version=table_version,
        operation=pb.VERSION_OPERATION_APPEND,
        schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(schema)),
        row_count=10,
    )


# -- denials -----------------------------------------------------------------------------------------


async def test_denied_calls_are_journaled_as_denial_events(secured: RunningMesh) -> None:
    c = secured.catalog
    when = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    denials = [
        pb.Denial(
            time=when,
            method="/lakehouse.query.v1.QueryService/Query",
            principal="bot",
            code="PERMISSION_DENIED",
            reason="TABLE_NOT_ALLOWED",
            message="x" * 5000,
            request_id="req-1",
            peer="ipv4:127.0.0.1:5000",
        ),
        pb.Denial(
            method="/lakehouse.catalog.v1.CatalogService/ListEvents", code="UNAUTHENTICATED", reason="MISSING_TOKEN"
        ),
    ]
    assert await c.record_denials(denials) == 2
    events = (await c.list_events(entity_type="denial")).events
    assert [(e.entity, e.action, e.actor) for e in events] == [
        ("/lakehouse.query.v1.QueryService/Query", "permission_denied", "bot"),
        ("/lakehouse.catalog.v1.CatalogService/ListEvents", "unauthenticated", "anonymous"),
    ]
    first = json.loads(events[0].after_json)
    assert set(first) == {"code", "reason", "message", "peer"}
    assert (first["code"], first["reason"], first["peer"]) == (
        "PERMISSION_DENIED",
        "TABLE_NOT_ALLOWED",
        "ipv4:127.0.0.1:5000",
    )
    assert len(first["message"]) <= 1000
    assert (events[0].request_id, events[0].time.seconds) == ("req-1", 1_700_000_000)

    await refused(
        c.record_denials([pb.Denial(code="NOT_FOUND")]), InvalidArgumentError, "INVALID_DENIAL", "denials[0].code"
    )
    await refused(
        c.record_denials([pb.Denial(code="UNAUTHENTICATED")] * 1001),
        InvalidArgumentError,
        "TOO_MANY_DENIALS",
        "denials",
    )
    await refused(client_of(secured, "ana-token").record_denials(denials), PermissionDeniedError, "ROLE_NOT_ALLOWED")


# -- derivations -------------------------------------------------------------------------------------


async def test_derivations_are_upserted_and_listed(mesh: RunningMesh) -> None:
    c = mesh.catalog
    first = await c.register_derivation("workers", "vector_collection", "workers_vec", "worker_id", dataset_version=1)
    assert (first.kind, first.create_time) == (pb.DERIVATION_KIND_VECTOR_COLLECTION, first.update_time)
    again = await c.register_derivation("workers", "vector_collection", "workers_vec", "worker_id", dataset_version=3)
    assert (again.dataset_version, again.create_time) == (3, first.create_time)
    await c.register_derivation("workers", "memory_namespace", "bot_notes", "email")
    await c.register_derivation("clients", "vector_collection", "clients_vec", "client_id")
    listed = (await c.list_derivations()).derivations
    assert [(d.dataset, d.target) for d in listed] == [
        ("clients", "clients_vec"),
        ("workers", "bot_notes"),
        ("workers", "workers_vec"),
    ]
    page = await c.list_derivations(dataset="workers", page_size=1)
    rest = await c.list_derivations(dataset="workers", page_token=page.next_page_token)
    assert [d.target for d in [*page.derivations, *rest.derivations]] == ["bot_notes", "workers_vec"]
    actions = [e.action for e in (await c.list_events(entity_type="derivation")).events]
    assert actions == ["create", "update", "create", "create"]
    assert await c.delete_derivation("workers", "vector_collection", "workers_vec")
    assert not await c.delete_derivation("workers", "vector_collection", "workers_vec")
    assert [d.target for d in (await c.list_derivations(dataset="workers")).derivations] == ["bot_notes"]
    assert (await c.list_events(entity_type="derivation")).events[-1].action == "delete"


@pytest.mark.parametrize(
    ("args", "error", "reason", "field"),
    [
        (("workers", "unspecified", "v", "worker_id"), InvalidArgumentError, "INVALID_DERIVATION", "derivation.kind"),
        (
            ("workers", "vector_collection", "", "worker_id"),
            InvalidArgumentError,
            "INVALID_DERIVATION",
            "derivation.target",
        ),
        (
            ("workers", "memory_namespace", "n", "salary"),
            InvalidArgumentError,
            "INVALID_DERIVATION",
            "derivation.key_column",
        ),
        (("nope", "memory_namespace", "n", "id"), NotFoundError, "DATASET_NOT_FOUND", None),
    ],
)
async def test_a_derivation_must_name_a_kind_a_target_and_a_column_of_its_dataset(
    mesh: RunningMesh,
    args: tuple[str, str, str, str],
    error: type[LakehouseClientError],
    reason: str,
    field: str | None,
) -> None:
    await refused(mesh.catalog.register_derivation(*args), error, reason, field)


# -- erasure -----------------------------------------------------------------------------------------


async def test_a_soft_erasure_records_tombstones_and_a_receipt_that_survive_a_restart(
    ingested: RunningMesh, mesh_factory: MeshFactory
) -> None:
    c = ingested.catalog
    version = (await c.get_dataset("workers")).current_version
    revision = (await c.get_access_policy()).revision
    receipt = await c.erase_rows("workers", "worker_id", ["3", "1", "2", "3"], mode="soft", reason="GDPR request 17")
    assert (receipt.dataset, receipt.mode, receipt.state, receipt.actor) == (
        "workers",
        pb.ERASURE_MODE_SOFT,
        pb.ERASURE_STATE_COMPLETE,
        "local-admin",
    )
    assert (receipt.key_column, receipt.key_count, receipt.rows_removed, receipt.files_removed) == (
        "worker_id",
        3,
        3,
        0,
    )
    assert (receipt.version_before, receipt.version_after) == (version, version)
    assert receipt.reason == "GDPR request 17" and receipt.HasField("complete_time")
    assert (await c.get_access_policy(revision)).revision > revision

    tombstones = (await c.list_tombstones("workers")).tombstones
    assert [(t.key_value, t.key_column, t.erasure_id) for t in tombstones] == [
        (k, "worker_id", receipt.id) for k in ("1", "2", "3")
    ]
    hidden = (await c.get_access_policy()).policy.tombstones
    assert [(t.dataset, t.key_column, list(t.key_values)) for t in hidden] == [
        ("workers", "worker_id", ["1", "2", "3"])
    ]

    mesh = await mesh_factory.restart(ingested)
    assert await mesh.catalog.get_erasure(receipt.id) == receipt
    assert [r.id for r in (await mesh.catalog.list_erasures(dataset="workers")).receipts] == [receipt.id]
    assert len((await mesh.catalog.list_tombstones("workers")).tombstones) == 3


async def test_erasure_requests_are_checked_before_anything_happens(ingested: RunningMesh) -> None:
    c = ingested.catalog
    version = (await c.get_dataset("workers")).current_version
    cases = [
        (c.erase_rows("nope", "worker_id", ["1"], mode="soft", reason="r"), NotFoundError, "DATASET_NOT_FOUND", None),
        (
            c.erase_rows("workers", "salary", ["1"], mode="soft", reason="r"),
            InvalidArgumentError,
            "UNKNOWN_COLUMN",
            "key_column",
        ),
        (
            c.erase_rows("workers", "worker_id", [], mode="soft", reason="r"),
            InvalidArgumentError,
            "EMPTY_KEYS",
            "key_values",
        ),
        (
            c.erase_rows("workers", "worker_id", ["1", ""], mode="soft", reason="r"),
            InvalidArgumentError,
            "EMPTY_KEY",
            "key_values[1]",
        ),
        (
            c.erase_rows("workers", "worker_id", [str(i) for i in range(10_001)], mode="soft", reason="r"),
            InvalidArgumentError,
            "TOO_MANY_KEYS",
            "key_values",
        ),
        (
            c.erase_rows("workers", "worker_id", ["1"], mode="unspecified", reason="r"),
            InvalidArgumentError,
            "INVALID_ERASURE_MODE",
            "mode",
        ),
        (
            c.erase_rows("workers", "worker_id", ["1"], mode="hard", reason=" "),
            InvalidArgumentError,
            "EMPTY_REASON",
            "reason",
        ),
        (c.get_erasure("no-such-receipt"), NotFoundError, "ERASURE_NOT_FOUND", None),
        (c.list_tombstones("nope"), NotFoundError, "DATASET_NOT_FOUND", None),
    ]
    for call, error, reason, field in cases:
        await refused(call, error, reason, field)
    assert (await c.list_erasures()).receipts == []
    assert (await c.get_dataset("workers")).current_version == version


async def test_all_tombstones_of_a_dataset_share_one_key_column(ingested: RunningMesh) -> None:
    c = ingested.catalog
    await c.erase_rows("workers", "worker_id", ["1"], mode="soft", reason="asked")
    error = await refused(
        c.erase_rows("workers", "email", emails(2), mode="soft", reason="asked"),
        FailedPreconditionError,
        "TOMBSTONE_KEY_MISMATCH",
    )
    assert "'worker_id'" in error.message and "'email'" in error.message
    again = await c.erase_rows("workers", "worker_id", ["1", "4"], mode="soft", reason="asked again")
    assert again.key_count == 2
    assert [t.key_value for t in (await c.list_tombstones("workers")).tombstones] == ["1", "4"]


async def test_restored_rows_lose_their_tombstones_and_the_journal_says_restore_or_apply(ingested: RunningMesh) -> None:
    c = ingested.catalog
    await c.erase_rows("workers", "worker_id", ["1", "2", "3", "4"], mode="soft", reason="asked")
    revision = (await c.get_access_policy()).revision
    assert (await c.restore_rows("workers", ["1", "99"], reason="mistake")).restored == 1
    assert (await c.get_access_policy(revision)).revision > revision
    assert (await c.restore_rows("workers", ["1"], reason="again")).restored == 0
    assert (await c.restore_rows("workers", ["2", "3"], reason="compacted", applied=True)).restored == 2
    assert [t.key_value for t in (await c.list_tombstones("workers")).tombstones] == ["4"]
    events = (await c.list_events(entity_type="tombstone", entity="workers")).events
    assert [(e.action, json.loads(e.after_json)["lifted"]) for e in events] == [
        ("restore", 1),
        ("restore", 0),
        ("apply", 2),
    ]
    await refused(c.restore_rows("workers", [], reason="r"), InvalidArgumentError, "EMPTY_KEYS", "key_values")
    await refused(c.restore_rows("nope", ["1"], reason="r"), NotFoundError, "DATASET_NOT_FOUND")
    # Once every tombstone is gone, another key column may be used.
    await c.restore_rows("workers", ["4"], reason="done")
    assert (await c.erase_rows("workers", "email", emails(5), mode="soft", reason="asked")).key_column == "email"


async def test_key_values_never_reach_receipts_or_the_journal(ingested: RunningMesh) -> None:
    c = ingested.catalog
    secret = emails(7, 8)
    receipt = await c.erase_rows("workers", "email", secret, mode="soft", reason="right to erasure")
    await c.restore_rows("workers", secret[:1], reason="mistake")
    hard = await c.erase_rows("workers", "email", secret[1:], mode="hard", reason="right to erasure")
    texts = [json_format.MessageToJson(await c.get_erasure(r.id)) for r in (receipt, hard)]
    texts += [json_format.MessageToJson(await c.list_erasures())]
    texts += [e.before_json + e.after_json for e in (await c.list_events(page_size=1000)).events]
    for text in texts:
        for key in secret:
            assert key not in text


async def test_paging_through_tombstones_and_receipts(ingested: RunningMesh) -> None:
    c = ingested.catalog
    first = await c.erase_rows("workers", "worker_id", ["10", "11", "12"], mode="soft", reason="one")
    second = await c.erase_rows("workers", "worker_id", ["13"], mode="soft", reason="two")
    page = await c.list_tombstones("workers", page_size=2)
    rest = await c.list_tombstones("workers", page_token=page.next_page_token)
    assert [t.key_value for t in [*page.tombstones, *rest.tombstones]] == ["10", "11", "12", "13"]
    newest = await c.list_erasures(page_size=1)
    older = await c.list_erasures(page_token=newest.next_page_token)
    assert [r.id for r in [*newest.receipts, *older.receipts]] == [second.id, first.id]
    assert (await c.list_erasures(dataset="others")).receipts == []


async def test_a_hard_erasure_deletes_the_rows_and_lifts_their_tombstones(ingested: RunningMesh) -> None:
    c = ingested.catalog
    await c.erase_rows("workers", "worker_id", ["1", "2", "5"], mode="soft", reason="first hide")
    before = (await c.get_dataset("workers")).current_version
    receipt = await c.erase_rows("workers", "worker_id", ["1", "2"], mode="hard", reason="erase for good")
    assert (receipt.mode, receipt.state, receipt.detail) == (pb.ERASURE_MODE_HARD, pb.ERASURE_STATE_COMPLETE, "")
    assert (receipt.version_before, receipt.rows_removed, list(receipt.downstream)) == (before, 2, [])
    assert receipt.version_after > receipt.version_before and receipt.HasField("complete_time")
    assert (await c.get_dataset("workers")).row_count == 198
    assert [t.key_value for t in (await c.list_tombstones("workers")).tombstones] == ["5"]
    actions = [e.action for e in (await c.list_events(entity_type="erasure", entity=receipt.id)).events]
    assert actions == ["erase", "delete_rows", "complete"]


async def test_a_hard_erasure_that_cannot_reach_a_derived_collection_says_so(ingested: RunningMesh) -> None:
    c = ingested.catalog
    await c.register_derivation("workers", "vector_collection", "workers_vec", "worker_id")
    error = await refused(
        c.erase_rows("workers", "email", emails(3), mode="hard", reason="asked"),
        FailedPreconditionError,
        "DERIVATION_KEY_MISMATCH",
    )
    assert "workers_vec" in error.message
    receipt = await c.erase_rows("workers", "worker_id", ["3"], mode="hard", reason="asked")
    # The rows are gone; the derived collection does not exist, so its vectors could not be deleted.
    assert (receipt.state, receipt.rows_removed, list(receipt.downstream)) == (pb.ERASURE_STATE_FAILED, 1, [])
    assert receipt.detail.startswith("vector_collection workers_vec failed: NOT_FOUND COLLECTION_NOT_FOUND")
    assert not receipt.HasField("complete_time")
    assert await c.get_erasure(receipt.id) == receipt


async def test_deleting_a_dataset_drops_its_tombstones_and_derivations_but_keeps_receipts(
    ingested: RunningMesh,
) -> None:
    c = ingested.catalog
    receipt = await c.erase_rows("workers", "worker_id", ["1"], mode="soft", reason="asked")
    await c.register_derivation("workers", "memory_namespace", "notes", "worker_id")
    await c.delete_dataset("workers")
    await c.create_dataset("workers", WORKERS)
    assert (await c.list_tombstones("workers")).tombstones == []
    assert (await c.list_derivations(dataset="workers")).derivations == []
    assert (await c.get_erasure(receipt.id)).dataset == "workers"
