"""The `lakehouse` CLI against a real `lakehouse serve` process: what a user reads and the exit codes."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from lakehouse.cli import output
from lakehouse.client.errors import FieldViolation as ClientFieldViolation
from lakehouse.client.errors import InvalidArgumentError, UnavailableError
from tests.e2e.arrowdata import WORKERS_SAMPLE
from tests.e2e.harness import Cli, ServerProcess, failed, ok, row, run_cli, usage_error
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

SERVICE_LABELS = ("storage", "catalog", "query", "vector", "memory", "chat")


def test_health_lists_every_service(cli: Cli) -> None:
    out = ok(cli("health"))
    assert row(out, "(overall)", "SERVING")
    for label in SERVICE_LABELS:
        assert row(out, label, "SERVING"), out


def test_whoami_without_auth_is_the_local_admin(cli: Cli) -> None:
    out = ok(cli("whoami"))
    assert row(out, "principal", "local-admin")
    assert row(out, "role", "admin")
    assert row(out, "auth", "off")


def test_buckets_list_shows_the_default_bucket(cli: Cli, mesh: ServerProcess) -> None:
    out = ok(cli("buckets", "list"))
    assert row(out, "default", "file://"), out
    assert row(out, "yes", "config"), out
    assert str(mesh.data_dir.resolve()) in out


def test_objects_put_ls_stat_get(cli: Cli, workdir: Path) -> None:
    source = workdir / "orders.csv"
    source.write_text("order_id,total\n1,9.99\n2,19.50\n" * 100)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    size = source.stat().st_size

    put = ok(
        cli("objects", "put", str(source), "exports/orders.csv", "--content-type", "text/csv", "--meta", "team=sales")
    )
    assert "stored default/exports/orders.csv" in put
    assert sha in put

    listing = ok(cli("objects", "ls", "exports/"))
    assert row(listing, "exports/orders.csv", f"{size / 1024:.1f} KiB", "text/csv"), listing

    stat = ok(cli("objects", "stat", "exports/orders.csv"))
    assert row(stat, "key", "exports/orders.csv")
    assert row(stat, "size", f"{size} bytes")
    assert row(stat, "sha256", sha)
    assert row(stat, "content type", "text/csv")
    assert row(stat, "meta team", "sales")

    target = workdir / "downloaded.csv"
    ok(cli("objects", "get", "exports/orders.csv", "-o", str(target)))
    assert target.read_bytes() == source.read_bytes()


def test_datasets_create_list_get_history_and_events(cli: Cli, workdir: Path) -> None:
    csv = workdir / "staff.csv"
    csv.write_text("id,email,city\n1,ann@example.com,Oslo\n2,bob@example.org,Lima\n3,cy@example.net,Pune\n")

    created = ok(
        cli(
            "datasets", "create", "staff", "--schema-from", str(csv), "--tag", "hr", "--description", "people we employ"
        )
    )
    match = re.search(r"registered: staff id ([0-9a-f-]{36}) version 1", created)
    assert match, created
    dataset_id = match[1]
    assert uuid.UUID(dataset_id).version == 5
    assert row(created, "email", "string", "yes", "email"), created
    assert row(created, "id", "int64", "yes", "-"), created

    again = ok(cli("datasets", "create", "staff", "--schema-from", str(csv)))
    assert f"already registered (same schema): staff id {dataset_id} version 1" in again

    listed = ok(cli("datasets", "list", "--tag", "hr"))
    assert row(listed, "staff", "1", "0", "0 B", "local-admin", "hr"), listed

    shown = ok(cli("datasets", "get", "staff"))
    assert row(shown, "id", dataset_id)
    assert row(shown, "tags", "hr")
    assert row(shown, "description", "people we employ")
    assert row(shown, "email", "string", "yes", "email"), shown
    assert row(shown, "city", "string", "yes", "-"), shown

    history = ok(cli("datasets", "history", "staff"))
    assert row(history, "1", "create", "0", "0 B", "local-admin"), history

    events = ok(cli("events", "--entity", "staff"))
    assert row(events, "local-admin", "dataset:staff", "create"), events


def test_failed_get_leaves_an_existing_output_file_alone(cli: Cli, workdir: Path) -> None:
    keep = workdir / "keep.txt"
    keep.write_text("precious\n")
    err = failed(cli("objects", "get", "missing/key.txt", "-o", str(keep)))
    assert "NOT_FOUND" in err and "OBJECT_NOT_FOUND" in err
    assert keep.read_text() == "precious\n"


def test_missing_dataset_prints_code_and_reason(cli: Cli) -> None:
    err = failed(cli("datasets", "get", "nope"))
    assert "NOT_FOUND" in err and "DATASET_NOT_FOUND" in err
    assert "'nope'" in err


def test_bad_object_key_names_the_field(cli: Cli, workdir: Path) -> None:
    source = workdir / "f.txt"
    source.write_text("hello\n")
    err = failed(cli("objects", "put", str(source), "../x"))
    assert "INVALID_ARGUMENT" in err and "INVALID_OBJECT_KEY" in err
    assert "field header.key" in err


def test_closed_port_says_unavailable_and_how_to_start_the_server(workdir: Path) -> None:
    err = failed(run_cli("datasets", "list", "--timeout", "5", cwd=workdir, address=f"127.0.0.1:{free_port()}"))
    assert "UNAVAILABLE" in err
    assert "lakehouse serve" in err


def test_datasets_create_reads_arrow_ipc_file_and_stream_formats(cli: Cli, workdir: Path) -> None:
    as_file, as_stream = workdir / "workers.arrow", workdir / "workers.arrows"
    with pa.ipc.new_file(as_file, WORKERS_SAMPLE.schema) as writer:
        writer.write_table(WORKERS_SAMPLE)
    with pa.ipc.new_stream(as_stream, WORKERS_SAMPLE.schema) as writer:
        writer.write_table(WORKERS_SAMPLE)
    for name, source in (("workers_file", as_file), ("workers_stream", as_stream)):
        created = ok(cli("datasets", "create", name, "--schema-from", str(source)))
        assert f"registered: {name} id" in created, created
        assert row(created, "id", "int64", "yes", "-"), created
        assert row(created, "email", "string", "yes", "email"), created


def test_unreadable_schema_files_are_usage_errors(cli: Cli, workdir: Path) -> None:
    bad_parquet = workdir / "bad.parquet"
    bad_parquet.write_text("id,email\n1,a@example.com\n")
    bad_arrow = workdir / "bad.arrow"
    bad_arrow.write_bytes(b"not arrow at all" * 4)
    bad_csv = workdir / "bad.csv"
    bad_csv.write_text("id,email\n1,a@example.com\n2,b@example.com,extra\n")
    for source, kind in ((bad_parquet, "Parquet"), (bad_arrow, "Arrow IPC"), (bad_csv, "CSV")):
        err = usage_error(cli("datasets", "create", "never_made", "--schema-from", str(source)))
        assert "Invalid value for '--schema-from'" in err, err
        assert f"cannot read {source.name} as {kind}" in err, err
    assert "datasets: none" in ok(cli("datasets", "list", "--prefix", "never_made"))


def test_csv_schema_and_sample_come_from_the_first_rows_only(cli: Cli, workdir: Path) -> None:
    # Over a MiB of good rows, then one broken line: reading the whole file would fail on it.
    csv = workdir / "visits.csv"
    rows = "".join(f"{i},user{i}@example.com,Oslo\n" for i in range(40_000))
    csv.write_text("id,email,city\n" + rows + "this line,has,too,many,fields\n")
    assert csv.stat().st_size > 1024 * 1024
    created = ok(cli("datasets", "create", "visits", "--schema-from", str(csv)))
    assert "registered: visits id" in created, created
    assert row(created, "id", "int64", "yes", "-"), created
    assert row(created, "email", "string", "yes", "email"), created


def test_meta_without_a_value_is_refused(cli: Cli, workdir: Path) -> None:
    source = workdir / "meta.txt"
    source.write_text("hello\n")
    err = usage_error(cli("objects", "put", str(source), "meta/a.txt", "--meta", "team=sales", "--meta", "novalue"))
    assert "Invalid value for '--meta'" in err and "expected KEY=VALUE, got 'novalue'" in err, err
    assert "objects: none" in ok(cli("objects", "ls", "meta/"))


def test_unwritable_download_target_is_a_plain_error(cli: Cli, workdir: Path) -> None:
    err = failed(cli("objects", "get", "exports/anything.csv", "-o", str(workdir / "no" / "such" / "dir.csv")))
    assert "No such file or directory" in err, err


def test_error_printer_shows_server_text_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    # Server text that looks like rich markup must be printed, not interpreted (no MarkupError).
    weird = InvalidArgumentError(
        "bad [/] thing",
        reason="[/bold]ODD_REASON",
        violations=(ClientFieldViolation("header.key", "has [red]markup[/red]"),),
    )
    with pytest.raises(SystemExit) as exit_:
        output.fail(weird)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: INVALID_ARGUMENT [/bold]ODD_REASON" in err
    assert "field header.key: has [red]markup[/red]" in err
    assert "Traceback" not in err

    for error, hint in (
        (UnavailableError("failed to connect to all addresses [x]"), True),
        (UnavailableError("storage backend down", reason="BACKEND_UNAVAILABLE"), False),
    ):
        with pytest.raises(SystemExit):
            output.fail(error)
        err = capsys.readouterr().err
        assert error.message in err
        assert ("lakehouse serve" in err) is hint, err
