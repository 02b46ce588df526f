"""Catalog service through its real gRPC server, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pyarrow as pa
import pytest

from lakehouse.catalog.v1 import catalog_service_pb2 as pb
from lakehouse.client import AsyncCatalogClient, token_metadata
from lakehouse.client.arrow import schema_ipc, table_ipc
from lakehouse.client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.common.v1 import arrow_pb2
from lakehouse.server.catalog.service import DATASET_ID_NAMESPACE
from lakehouse.server.common.config import TokenConfig
from lakehouse.server.common.paging import encode_token
from tests.conftest import MeshFactory
from tests.support.mesh import Backends

WORKERS = pa.schema(
    [("worker_id", pa.int64()), ("email", pa.string()), ("hourly_rate", pa.float64()), ("notes", pa.string())]
)
SAMPLE = pa.table(
    {
        "worker_id": [1, 2, 3],
        "email": ["ana@example.com", "bo@example.org", "cy@example.net"],
        "hourly_rate": [21.5, 30.0, 18.25],
        "notes": ["forklift certified", "night shifts", "speaks Spanish"],
    }
)


@pytest.fixture
async def catalog_mesh(mesh_factory: MeshFactory, catalog_url: str):
    return await mesh_factory(Backends(catalog_url=catalog_url))


def pii_of(dataset: pb.Dataset) -> dict[str, list[str]]:
    return {c.name: [pb.PiiKind.Name(k) for k in c.pii] for c in dataset.columns}


def version_request(
    dataset: str,
    table_version: int,
    rows: int,
    *,
    schema: pa.Schema = WORKERS,
    sha: str = "",
    operation: int = pb.VERSION_OPERATION_APPEND,
    reference: str = "upload://workers.csv",
) -> pb.RegisterDatasetVersionRequest:
    return pb.RegisterDatasetVersionRequest(
        dataset=dataset,
        table_version=table_version,
        operation=operation,
        schema=arrow_pb2.ArrowSchema(arrow_ipc=schema_ipc(schema)),
        row_count=rows,
        size_bytes=rows * 100,
        files=[f"part-{table_version}.parquet"],
        lineage=pb.Lineage(source_system="upload", source_reference=reference, job_id=f"job-{table_version}"),
        content_sha256=sha,
    )


async def test_create_registers_with_stable_id_pii_tags_and_first_version(catalog_mesh) -> None:
    created = await catalog_mesh.catalog.create_dataset(
        "workers", WORKERS, description="staff", owner="ops", tags=["hr", "staffing"], sample=SAMPLE
    )
    d = created.dataset
    assert created.created
    assert d.id == str(uuid.uuid5(DATASET_ID_NAMESPACE, "workers"))
    assert (d.bucket, d.location, d.current_version, list(d.tags)) == (
        "default",
        "datasets/workers",
        1,
        ["hr", "staffing"],
    )
    assert pii_of(d) == {"worker_id": [], "email": ["PII_KIND_EMAIL"], "hourly_rate": ["PII_KIND_SALARY"], "notes": []}
    assert pa.ipc.open_stream(d.schema.arrow_ipc).schema.equals(WORKERS)
    by_id = await catalog_mesh.catalog.get_dataset(d.id)
    assert by_id.name == "workers"


async def test_reregistering_same_schema_is_idempotent(catalog_mesh) -> None:
    first = (await catalog_mesh.catalog.create_dataset("workers", WORKERS)).dataset
    again = await catalog_mesh.catalog.create_dataset("workers", WORKERS, description="ignored")
    assert not again.created
    assert again.dataset.id == first.id
    assert again.dataset.current_version == 1
    assert len((await catalog_mesh.catalog.history("workers")).versions) == 1


async def test_conflicting_schema_fails_with_a_diff_and_changes_nothing(catalog_mesh) -> None:
    await catalog_mesh.catalog.create_dataset("workers", WORKERS)
    changed = pa.schema([("worker_id", pa.string()), ("email", pa.string()), ("shift", pa.string())])
    with pytest.raises(FailedPreconditionError) as err:
        await catalog_mesh.catalog.create_dataset("workers", changed, allow_additive_evolution=True)
    e = err.value
    assert e.reason == "SCHEMA_MISMATCH"
    assert json.loads(e.metadata["added"]) == ["shift: string"]
    assert json.loads(e.metadata["removed"]) == ["hourly_rate: double", "notes: string"]
    assert json.loads(e.metadata["changed"]) == ["worker_id: int64 -> string"]
    d = await catalog_mesh.catalog.get_dataset("workers")
    assert pa.ipc.open_stream(d.schema.arrow_ipc).schema.equals(WORKERS)


async def test_additive_evolution_only_when_allowed(catalog_mesh) -> None:
    await catalog_mesh.catalog.create_dataset("workers", WORKERS)
    wider = WORKERS.append(pa.field("phone", pa.string()))
    with pytest.raises(FailedPreconditionError) as err:
        await catalog_mesh.catalog.create_dataset("workers", wider)
    assert "allow_additive_evolution" in err.value.message
    evolved = await catalog_mesh.catalog.create_dataset("workers", wider, allow_additive_evolution=True)
    assert evolved.created and evolved.dataset.current_version == 2
    assert pii_of(evolved.dataset)["phone"] == ["PII_KIND_PHONE"]
    ops = [pb.VersionOperation.Name(v.operation) for v in (await catalog_mesh.catalog.history("workers")).versions]
    assert ops == ["VERSION_OPERATION_SCHEMA_EVOLUTION", "VERSION_OPERATION_CREATE"]


@pytest.mark.parametrize("name", ["Workers", "1workers", "work-ers", "_w", "w" * 129, "", "drop table;", "workers\n"])
async def test_bad_dataset_names_are_refused_naming_the_field(catalog_mesh, name: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.create_dataset(name, WORKERS)
    assert err.value.reason == "INVALID_DATASET_NAME"
    assert err.value.violations[0].field == "dataset.name"
    assert (await catalog_mesh.catalog.list_datasets()).datasets == []


async def test_longest_allowed_name_is_accepted(catalog_mesh) -> None:
    name = "w" + "x" * 127
    assert (await catalog_mesh.catalog.create_dataset(name, WORKERS)).dataset.name == name


async def test_bad_schemas_are_refused(catalog_mesh) -> None:
    stub_request = pb.CreateDatasetRequest(
        dataset=pb.Dataset(name="broken", schema=arrow_pb2.ArrowSchema(arrow_ipc=b"not arrow"))
    )
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog._unary(catalog_mesh.catalog._stub.CreateDataset, stub_request)
    assert (err.value.reason, err.value.violations[0].field) == ("INVALID_SCHEMA", "dataset.schema")
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.create_dataset("dupes", pa.schema([("a", pa.int64()), ("a", pa.string())]))
    assert "duplicate column names: a" in err.value.message


async def test_missing_bucket_is_reported_by_the_storage_service(catalog_mesh) -> None:
    with pytest.raises(NotFoundError) as err:
        await catalog_mesh.catalog.create_dataset("workers", WORKERS, bucket="nope")
    assert err.value.reason == "BUCKET_NOT_FOUND"
    assert "dataset.bucket" in err.value.message


async def test_versions_record_rows_files_lineage_and_refuse_duplicates(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    sha = "ab" * 32
    first = await c.register_version(
        version_request(
            "workers", 0, 3, sha=sha, reference="postgresql://etl:hunter2@db.internal:5432/hr?sslmode=require"
        )
    )
    assert not first.duplicate
    assert (first.version.version, first.version.table_version, first.dataset.row_count) == (2, 0, 3)
    assert "hunter2" not in first.version.lineage.source_reference
    assert first.version.lineage.source_reference.startswith("postgresql://etl:***@db.internal")

    dup = await c.register_version(version_request("workers", 1, 6, sha=sha))
    assert dup.duplicate and dup.version.version == 2
    assert (await c.get_dataset("workers")).row_count == 3

    second = await c.register_version(version_request("workers", 1, 6, sha="cd" * 32))
    assert second.version.version == 3
    with pytest.raises(FailedPreconditionError) as err:
        await c.register_version(version_request("workers", 1, 9, sha="ef" * 32))
    assert err.value.reason == "TABLE_VERSION_NOT_NEWER"

    history = (await c.history("workers")).versions
    assert [(v.version, v.row_count, list(v.files)) for v in history] == [
        (3, 6, ["part-1.parquet"]),
        (2, 3, ["part-0.parquet"]),
        (1, 0, []),
    ]
    assert all(v.actor == "local-admin" for v in history)


async def test_version_with_incompatible_schema_writes_nothing(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    other = pa.schema([("worker_id", pa.string())])
    with pytest.raises(FailedPreconditionError) as err:
        await c.register_version(version_request("workers", 0, 1, schema=other))
    assert err.value.reason == "SCHEMA_MISMATCH"
    assert (await c.get_dataset("workers")).current_version == 1
    overwrite = await c.register_version(
        version_request("workers", 0, 1, schema=other, operation=pb.VERSION_OPERATION_OVERWRITE)
    )
    assert overwrite.dataset.schema_fingerprint != (await c.create_dataset("probe", WORKERS)).dataset.schema_fingerprint


async def test_register_version_validates_operation_and_counts(catalog_mesh) -> None:
    await catalog_mesh.catalog.create_dataset("workers", WORKERS)
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.register_version(
            version_request("workers", 0, 1, operation=pb.VERSION_OPERATION_UNSPECIFIED)
        )
    assert err.value.violations[0].field == "operation"
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.register_version(version_request("workers", 0, -5))
    assert err.value.violations[0].field == "row_count"
    with pytest.raises(NotFoundError):
        await catalog_mesh.catalog.register_version(version_request("ghost", 0, 1))


async def test_list_filters_and_pages(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    for i in range(7):
        await c.create_dataset(
            f"ds_{i}", WORKERS, owner="ana" if i % 2 else "bo", tags=["even"] if i % 2 == 0 else ["odd"]
        )
    await c.create_dataset("other", WORKERS)
    assert [d.name for d in (await c.list_datasets(tag="odd")).datasets] == ["ds_1", "ds_3", "ds_5"]
    assert [d.name for d in (await c.list_datasets(owner="bo", name_prefix="ds_")).datasets] == [
        "ds_0",
        "ds_2",
        "ds_4",
        "ds_6",
    ]
    names, token = [], ""
    while True:
        page = await c.list_datasets(page_size=3, page_token=token)
        names += [d.name for d in page.datasets]
        token = page.next_page_token
        if not token:
            break
    assert names == [f"ds_{i}" for i in range(7)] + ["other"]
    with pytest.raises(InvalidArgumentError) as err:
        await c.list_datasets(page_token="garbage!")
    assert (err.value.reason, err.value.violations[0].field) == ("INVALID_PAGE_TOKEN", "page_token")


async def test_update_respects_the_field_mask(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS, description="before", owner="ops", tags=["a"])
    updated = await c.update_dataset("workers", description="after")
    assert (updated.description, updated.owner, list(updated.tags)) == ("after", "ops", ["a"])
    updated = await c.update_dataset("workers", tags=["z", "b", "z"])
    assert (updated.description, list(updated.tags)) == ("after", ["b", "z"])
    with pytest.raises(InvalidArgumentError) as err:
        await c.update_dataset("workers")
    assert err.value.reason == "INVALID_UPDATE_MASK"
    request = pb.UpdateDatasetRequest(dataset=pb.Dataset(name="workers", bucket="elsewhere"))
    request.update_mask.paths.append("bucket")
    with pytest.raises(InvalidArgumentError) as err:
        await c._unary(c._stub.UpdateDataset, request)
    assert "cannot update bucket" in err.value.message


async def test_owner_overrides_pii_and_detection_keeps_it(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS, sample=SAMPLE)
    d = await c.set_column_sensitivity("workers", "notes", ["person_name"], reason="free text names people")
    d = await c.set_column_sensitivity("workers", "email", [], reason="addresses are synthetic")
    assert pii_of(d)["notes"] == ["PII_KIND_PERSON_NAME"] and pii_of(d)["email"] == []
    assert {c.name: c.sensitivity_source for c in d.columns}["email"] == pb.SENSITIVITY_SOURCE_OWNER
    evolved = await c.create_dataset(
        "workers", WORKERS.append(pa.field("ssn", pa.string())), sample=None, allow_additive_evolution=True
    )
    assert pii_of(evolved.dataset)["email"] == [] and pii_of(evolved.dataset)["ssn"] == ["PII_KIND_SSN"]
    with pytest.raises(NotFoundError) as err:
        await c.set_column_sensitivity("workers", "missing", [])
    assert err.value.reason == "COLUMN_NOT_FOUND"


async def test_delete_removes_dataset_and_history_but_not_the_journal(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    await c.delete_dataset("workers")
    with pytest.raises(NotFoundError) as err:
        await c.get_dataset("workers")
    assert err.value.reason == "DATASET_NOT_FOUND"
    with pytest.raises(NotFoundError):
        await c.delete_dataset("workers")
    actions = [e.action for e in (await c.list_events(entity="workers")).events]
    assert actions == ["create", "delete"]
    assert (await c.create_dataset("workers", WORKERS)).created


async def test_journal_records_every_mutation_with_actor_and_summaries(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    start = datetime.now(UTC) - timedelta(seconds=1)
    await c.create_dataset("workers", WORKERS)
    await c.update_dataset("workers", description="updated")
    await c.register_version(version_request("workers", 0, 3))
    await c.create_dataset("clients", WORKERS)
    events = (await c.list_events(entity_type="dataset", entity="workers")).events
    assert [e.action for e in events] == ["create", "update", "register_version"]
    assert all(e.actor == "local-admin" and e.request_id for e in events)
    update = events[1]
    assert (
        json.loads(update.before_json)["description"] == ""
        and json.loads(update.after_json)["description"] == "updated"
    )
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    all_events = (await c.list_events(start=start, end=datetime.now(UTC) + timedelta(seconds=1))).events
    assert len(all_events) == 4
    assert (await c.list_events(start=datetime.now(UTC) + timedelta(hours=1))).events == []
    page = await c.list_events(page_size=2)
    rest = await c.list_events(page_size=10, page_token=page.next_page_token)
    assert [e.sequence for e in [*page.events, *rest.events]] == [e.sequence for e in all_events]
    with pytest.raises(InvalidArgumentError) as err:
        await c.list_events(start=datetime.now(UTC), end=datetime.now(UTC) - timedelta(days=1))
    assert err.value.reason == "INVALID_TIME_RANGE"


async def test_journal_is_append_only_in_the_database(catalog_mesh) -> None:
    await catalog_mesh.catalog.create_dataset("workers", WORKERS)
    import sqlalchemy as sa

    from lakehouse.server.catalog.store import create_catalog_engine

    engine = create_catalog_engine(catalog_mesh.config.catalog_url)
    try:
        for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


async def test_everything_survives_a_restart(catalog_mesh, mesh_factory: MeshFactory) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS, tags=["hr"], sample=SAMPLE)
    await c.register_version(version_request("workers", 0, 3, sha="ab" * 32))
    before = await c.get_dataset("workers")
    mesh = await mesh_factory.restart(catalog_mesh)
    after = await mesh.catalog.get_dataset("workers")
    assert after == before
    assert len((await mesh.catalog.history("workers")).versions) == 2
    assert len((await mesh.catalog.list_events()).events) == 2
    dup = await mesh.catalog.register_version(version_request("workers", 1, 3, sha="ab" * 32))
    assert dup.duplicate


async def test_whoami_reports_the_local_admin_when_auth_is_off(catalog_mesh) -> None:
    me = await catalog_mesh.catalog.whoami()
    assert (me.principal, me.role, me.auth_enabled) == ("local-admin", "admin", False)


async def test_sample_rows_drive_value_based_detection(catalog_mesh) -> None:
    schema = pa.schema([("contact", pa.string()), ("card", pa.string()), ("misc", pa.string())])
    sample = pa.table(
        {
            "contact": ["a@x.io", "b@y.io"],
            "card": ["4111 1111 1111 1111", "5500 0000 0000 0004"],
            "misc": ["hello", "world"],
        }
    )
    d = (await catalog_mesh.catalog.create_dataset("contacts", schema, sample=sample)).dataset
    assert pii_of(d) == {"contact": ["PII_KIND_EMAIL"], "card": ["PII_KIND_CARD_NUMBER"], "misc": []}
    assert table_ipc(sample).row_count == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"description": "nul\x00byte"}, "dataset.description"),
        ({"owner": "o" * 257}, "dataset.owner"),
        ({"tags": ["ok", "x" * 300]}, "dataset.tags[1]"),
        ({"tags": [""]}, "dataset.tags[0]"),
        ({"tags": [f"t{i}" for i in range(65)]}, "dataset.tags"),
    ],
)
async def test_text_the_database_cannot_store_is_refused_on_every_backend(
    catalog_mesh, change: dict, field: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.create_dataset("workers", WORKERS, **change)
    assert err.value.violations[0].field == field
    await catalog_mesh.catalog.create_dataset("workers", WORKERS)
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.update_dataset("workers", **change)
    assert err.value.violations[0].field == field


@pytest.mark.parametrize("ref", ["bad\x00name", "x" * 5000, "Workers", "not-a-uuid"])
async def test_lookups_of_impossible_names_are_not_found_not_internal(catalog_mesh, ref: str) -> None:
    with pytest.raises(NotFoundError) as err:
        await catalog_mesh.catalog.get_dataset(ref)
    assert err.value.reason == "DATASET_NOT_FOUND"
    with pytest.raises(InvalidArgumentError):
        await catalog_mesh.catalog.list_datasets(owner="nul\x00")


async def test_out_of_range_time_filters_name_the_field(catalog_mesh) -> None:
    request = pb.ListEventsRequest()
    request.start_time.seconds = 2**62
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog._unary(catalog_mesh.catalog._stub.ListEvents, request)
    assert err.value.violations[0].field == "start_time"


async def test_versions_are_found_by_number_and_by_content(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    created = await c.create_dataset("workers", WORKERS)
    assert not created.dataset.HasField("table_version")
    await c.register_version(version_request("workers", 0, 3, sha="ab" * 32))
    await c.register_version(version_request("workers", 4, 5, sha="cd" * 32))
    d = await c.get_dataset("workers")
    assert (d.current_version, d.table_version) == (3, 4)
    v2 = await c.get_version("workers", 2)
    assert (v2.table_version, v2.row_count, v2.content_sha256) == (0, 3, "ab" * 32)
    assert not (await c.get_version("workers", 1)).HasField("table_version")
    with pytest.raises(NotFoundError) as err:
        await c.get_version("workers", 9)
    assert err.value.reason == "VERSION_NOT_FOUND" and "1 to 3" in err.value.message
    found = (await c.history("workers", content_sha256="cd" * 32)).versions
    assert [v.version for v in found] == [3]
    assert (await c.history("workers", content_sha256="ef" * 32)).versions == []


# -- lineage redaction ---------------------------------------------------------------------------


async def test_lineage_secrets_are_redacted_in_history_and_journal(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    request = version_request("workers", 0, 3)
    request.lineage.job_id = "host=db password=hunter2"
    request.lineage.attributes.update(
        {"dsn": "postgresql://bob:hunter2@db/x", "db_password": "plain-secret", "api-token": "tok3n", "team": "hr"}
    )
    await c.register_version(request)
    lineage = (await c.history("workers")).versions[0].lineage
    assert lineage.job_id == "host=db password=***"
    assert dict(lineage.attributes) == {
        "dsn": "postgresql://bob:***@db/x",
        "db_password": "***",
        "api-token": "***",
        "team": "hr",
    }
    journal = " ".join(e.after_json for e in (await c.list_events(entity="workers")).events)
    assert "postgresql://bob:***@db/x" in journal
    for secret in ("hunter2", "plain-secret", "tok3n"):
        assert secret not in journal


def test_database_errors_carry_and_log_no_sql_parameters(catalog_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from lakehouse.server.catalog.errors import CatalogDatabaseError, ConcurrentChange
    from lakehouse.server.catalog.store import (
        CatalogStore,
        DatasetRecord,
        LineageRecord,
        VersionRecord,
        create_catalog_engine,
    )

    now = datetime.now(UTC)
    dataset = DatasetRecord("d", "d", "default", "d", schema_ipc(WORKERS), "f", (), "", "", (), 1, 0, 0, now, now)
    lineage = LineageRecord(job_id="password=hunter2")
    version = VersionRecord(1, "APPEND", 0, 0, (), "a", now, lineage, "f")
    store = CatalogStore(create_catalog_engine(catalog_url))
    catalog_log = logging.getLogger("lakehouse.catalog")
    catalog_log.addHandler(caplog.handler)
    try:
        store.create_schema()
        with store.transaction() as tx:
            tx.insert_dataset(dataset)
        with pytest.raises(ConcurrentChange) as conflict, store.transaction() as tx:
            tx.insert_version("d", version)
            tx.insert_version("d", version)
        with pytest.raises(CatalogDatabaseError) as bug, store.transaction() as tx:
            tx.insert_version("no-such-dataset", version)
    finally:
        catalog_log.removeHandler(caplog.handler)
        store.close()
    for err in (conflict.value, bug.value):
        assert "hunter2" not in str(err)
        assert err.__cause__ is None and err.__suppress_context__
    assert "INSERT INTO dataset_versions" in caplog.text and "hunter2" not in caplog.text


# -- concurrency ---------------------------------------------------------------------------------


async def test_concurrent_creates_of_one_name_answer_once_created_then_idempotently(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    for name in ("race_a", "race_b", "race_c"):
        results = await asyncio.gather(*(c.create_dataset(name, WORKERS) for _ in range(8)), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sum(r.created for r in results) == 1
        assert {r.dataset.id for r in results} == {str(uuid.uuid5(DATASET_ID_NAMESPACE, name))}
        assert len((await c.history(name)).versions) == 1


async def test_concurrent_version_registrations_are_numbered_without_gaps(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("race", WORKERS)
    requests = [version_request("race", tv, tv + 1, sha=f"{tv:02x}" * 32) for tv in range(8)]
    results = await asyncio.gather(*(c.register_version(r) for r in requests), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(e, FailedPreconditionError) and e.reason == "TABLE_VERSION_NOT_NEWER" for e in refused)
    history = list(reversed((await c.history("race")).versions))
    assert [v.version for v in history] == list(range(1, len(history) + 1))
    assert len(history) == 1 + len(results) - len(refused)
    table_versions = [v.table_version for v in history[1:]]
    assert table_versions == sorted(set(table_versions))
    same = [version_request("race", 100 + i, 1, sha="ee" * 32) for i in range(8)]
    results = await asyncio.gather(*(c.register_version(r) for r in same), return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.version.version for r in results}) == 1


async def test_concurrent_updates_are_all_kept(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("race", WORKERS, sample=SAMPLE)
    kinds = {"worker_id": ["SSN"], "email": [], "hourly_rate": ["PHONE"], "notes": ["PERSON_NAME"]}
    changes = [
        c.update_dataset("race", description="described"),
        c.update_dataset("race", tags=["hr", "pii"]),
        c.update_dataset("race", owner="ana"),
        c.register_version(version_request("race", 0, 42)),
        *(c.set_column_sensitivity("race", column, pii) for column, pii in kinds.items()),
    ]
    results = await asyncio.gather(*changes, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    d = await c.get_dataset("race")
    assert (d.description, list(d.tags), d.owner, d.row_count, d.current_version) == (
        "described",
        ["hr", "pii"],
        "ana",
        42,
        2,
    )
    assert pii_of(d) == {name: [f"PII_KIND_{k}" for k in pii] for name, pii in kinds.items()}
    assert all(col.sensitivity_source == pb.SENSITIVITY_SOURCE_OWNER for col in d.columns)
    assert len((await c.list_events(entity="race")).events) == 1 + len(changes)


def test_replicas_creating_the_schema_together_both_succeed(catalog_url: str) -> None:
    from lakehouse.server.catalog.store import CatalogStore, create_catalog_engine

    start = threading.Barrier(2)

    def replica() -> None:
        store = CatalogStore(create_catalog_engine(catalog_url))
        try:
            start.wait()
            store.create_schema()
        finally:
            store.close()

    with ThreadPoolExecutor(2) as pool:
        for outcome in [pool.submit(replica) for _ in range(2)]:
            outcome.result()


# -- paging, ownership, decoding, buckets, error sizes -------------------------------------------


@pytest.mark.parametrize("after", [str(2**63), str(2**70), "-1", " 7", "1_0"])
async def test_page_tokens_outside_int64_are_invalid_not_internal(catalog_mesh, after: str) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    for call in (
        lambda: c.history("workers", page_token=encode_token(after)),
        lambda: c.list_events(page_token=encode_token(after)),
    ):
        with pytest.raises(InvalidArgumentError) as err:
            await call()
        assert (err.value.reason, err.value.violations[0].field) == ("INVALID_PAGE_TOKEN", "page_token")


async def test_only_the_owner_or_an_admin_may_change_owner_tags_or_delete(
    mesh_factory: MeshFactory, catalog_url: str
) -> None:
    tokens = tuple(
        TokenConfig(principal=name, role=role, sha256=hashlib.sha256(f"{name}-token".encode()).hexdigest())
        for name, role in (("ops", "admin"), ("ana", "writer"), ("bo", "writer"))
    )
    mesh = await mesh_factory(Backends(catalog_url=catalog_url, tokens=tokens), token="ana-token")
    ana = mesh.catalog
    bo, ops = (AsyncCatalogClient(mesh.channel, metadata=token_metadata(f"{n}-token")) for n in ("bo", "ops"))
    await ana.create_dataset("workers", WORKERS, tags=["hr"])
    for attempt in (
        lambda: bo.update_dataset("workers", owner="bo"),
        lambda: bo.update_dataset("workers", tags=[]),
        lambda: bo.delete_dataset("workers"),
    ):
        with pytest.raises(PermissionDeniedError) as err:
            await attempt()
        assert err.value.reason == "NOT_DATASET_OWNER"
    d = await bo.get_dataset("workers")
    assert (d.owner, list(d.tags)) == ("ana", ["hr"])
    assert (await bo.update_dataset("workers", description="typo fixed")).description == "typo fixed"
    assert list((await ana.update_dataset("workers", tags=["hr", "pii"])).tags) == ["hr", "pii"]
    assert (await ops.update_dataset("workers", owner="bo")).owner == "bo"
    with pytest.raises(PermissionDeniedError):
        await ana.delete_dataset("workers")
    assert (await bo.delete_dataset("workers")).name == "workers"


async def test_arrow_payloads_are_decoded_off_the_event_loop(catalog_mesh, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse.server.catalog import schema as schemas

    on_loop: list[bool] = []

    def spy(decode):  # type: ignore[no-untyped-def]
        def wrapper(*args):  # type: ignore[no-untyped-def]
            on_loop.append(_event_loop_running())
            return decode(*args)

        return wrapper

    for name in ("decode_schema", "decode_table"):
        monkeypatch.setattr(schemas, name, spy(getattr(schemas, name)))
    await catalog_mesh.catalog.create_dataset("workers", WORKERS, sample=SAMPLE)
    request = version_request("workers", 0, 3)
    request.sample.CopyFrom(table_ipc(SAMPLE))
    await catalog_mesh.catalog.register_version(request)
    assert on_loop == [False] * 4


def _event_loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _CountingStorageClient(AsyncStorageClient):
    calls: ClassVar[list[str]] = []

    async def list_buckets(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append("ListBuckets")
        return await super().list_buckets(*args, **kwargs)

    async def list_objects(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append("ListObjects")
        return await super().list_objects(*args, **kwargs)


@pytest.fixture
def storage_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from lakehouse.server.catalog import servicer

    monkeypatch.setattr(servicer, "AsyncStorageClient", _CountingStorageClient)
    monkeypatch.setattr(_CountingStorageClient, "calls", [])
    return _CountingStorageClient.calls


async def test_bucket_check_lists_buckets_not_objects_and_remembers_the_answer(
    catalog_mesh, storage_calls: list[str]
) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("workers", WORKERS)
    assert storage_calls == ["ListBuckets"]
    await c.create_dataset("clients", WORKERS)
    assert storage_calls == ["ListBuckets"]
    with pytest.raises(NotFoundError):
        await c.create_dataset("late", WORKERS, bucket="late")
    await catalog_mesh.storage.create_bucket("late")
    assert (await c.create_dataset("late", WORKERS, bucket="late")).created


async def test_bucket_check_pages_through_every_bucket(
    catalog_mesh, storage_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse.server.catalog import servicer

    monkeypatch.setattr(servicer, "BUCKET_PAGE_SIZE", 2)
    for i in range(5):
        await catalog_mesh.storage.create_bucket(f"bucket-{i}")
    assert (
        await catalog_mesh.catalog.create_dataset("workers", WORKERS, bucket="bucket-4")
    ).dataset.bucket == "bucket-4"
    with pytest.raises(NotFoundError) as err:
        await catalog_mesh.catalog.create_dataset("others", WORKERS, bucket="bucket-5")
    assert err.value.reason == "BUCKET_NOT_FOUND"
    assert "ListObjects" not in storage_calls and storage_calls.count("ListBuckets") >= 3


async def test_a_mismatch_of_a_wide_schema_names_twenty_columns_and_counts_the_rest(catalog_mesh) -> None:
    c = catalog_mesh.catalog
    await c.create_dataset("wide", pa.schema([(f"column_{i:04d}", pa.int64()) for i in range(2000)]))
    other = pa.schema([(f"renamed_{i:04d}", pa.int64()) for i in range(2000)])
    with pytest.raises(FailedPreconditionError) as err:
        await c.create_dataset("wide", other)
    assert err.value.reason == "SCHEMA_MISMATCH"
    added = json.loads(err.value.metadata["added"])
    assert added == [f"renamed_{i:04d}: int64" for i in range(20)] + ["and 1980 more"]
    assert json.loads(err.value.metadata["removed"])[-1] == "and 1980 more"
    assert "and 1980 more" in err.value.message and len(err.value.message) < 4096


async def test_many_duplicate_column_names_are_summarised(catalog_mesh) -> None:
    names = [f"duplicated_column_{i:04d}" for i in range(1500)]
    with pytest.raises(InvalidArgumentError) as err:
        await catalog_mesh.catalog.create_dataset("dupes", pa.schema([(n, pa.int64()) for n in names * 2]))
    assert err.value.reason == "INVALID_SCHEMA"
    assert f"duplicate column names: {', '.join(names[:20])}, and 1480 more" in err.value.message
