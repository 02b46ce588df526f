"""The query journey from outside: sample data, `lakehouse ingest`, SQL through the CLI and
`buf curl`, time travel, and a pull with a plain pyarrow Flight client that knows nothing of the
project. Real processes throughout."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from tests.e2e.harness import Cli, ServerProcess, buf_curl, buf_error

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def loaded(cli: Cli, workdir: Path) -> Path:
    """Sample data written and ingested once for the module."""
    assert cli("sample", "--rows", "300", "-o", "sample").code == 0
    result = cli("ingest", "sample/workers.csv", "--dataset", "workers")
    assert result.code == 0, str(result)
    assert "created workers" in result.stdout and "300 rows" in result.stdout
    assert "personal data detected in: full_name, email, phone, hourly_rate" in result.stdout
    assert cli("ingest", "sample/notes.csv", "--dataset", "notes").code == 0
    return workdir / "sample"


def test_sql_prints_a_readable_table(cli: Cli, loaded: Path) -> None:
    result = cli("sql", "SELECT count(*) AS n, min(worker_id) AS first FROM workers")
    assert result.code == 0, str(result)
    assert "│ 300 │" in result.stdout.replace(" 300 ", " 300 ") and "first" in result.stdout


def test_multiline_notes_survive_ingest(cli: Cli, loaded: Path) -> None:
    source = pacsv.read_csv(loaded / "notes.csv", parse_options=pacsv.ParseOptions(newlines_in_values=True))
    multiline = [t for t in source.column("text").to_pylist() if "\n" in t]
    assert multiline, "the sample should hold multi-line notes"
    result = cli(
        "sql",
        "SELECT count(*) AS n FROM notes WHERE text LIKE ?",
        "--param",
        json.dumps(multiline[0][:40] + "%"),
        "--format",
        "json",
    )
    assert result.code == 0, str(result)
    assert json.loads(result.stdout.splitlines()[0])["n"] >= 1


def test_query_through_buf_curl(mesh: ServerProcess, loaded: Path) -> None:
    result = buf_curl(
        mesh.address, method="lakehouse.query.v1.QueryService/Query", data={"sql": "SELECT count(*) AS n FROM workers"}
    )
    assert result.code == 0, str(result)
    answer = json.loads(result.stdout)
    table = pa.ipc.open_stream(base64.b64decode(answer["result"]["arrowIpc"])).read_all()
    assert table.to_pylist() == [{"n": 300}]
    assert answer["versionsRead"] == {"workers": "2"}


def test_forbidden_sql_through_buf_curl_and_cli(mesh: ServerProcess, cli: Cli, loaded: Path) -> None:
    result = buf_curl(
        mesh.address,
        method="lakehouse.query.v1.QueryService/Query",
        data={"sql": "SELECT * FROM read_text('/etc/passwd')"},
    )
    assert buf_error(result)["code"] == "permission_denied"
    refused = cli("sql", "COPY workers TO '/tmp/stolen.csv'")
    assert refused.code == 1 and "STATEMENT_NOT_ALLOWED" in refused.stderr
    assert not Path("/tmp/stolen.csv").exists()


def test_time_travel_after_an_append(cli: Cli, loaded: Path, workdir: Path) -> None:
    extra = workdir / "more_workers.csv"
    rows = pacsv.read_csv(loaded / "workers.csv").slice(0, 10)
    pacsv.write_csv(rows.set_column(0, "worker_id", pa.array(range(10_001, 10_011), pa.int64())), extra)
    assert cli("ingest", str(extra), "--dataset", "workers", "--mode", "append").code == 0
    now = cli("sql", "SELECT count(*) AS n FROM workers", "--format", "json")
    before = cli("sql", "SELECT count(*) AS n FROM workers", "--as-of", "workers=2", "--format", "json")
    assert json.loads(now.stdout)["n"] == 310
    assert json.loads(before.stdout)["n"] == 300


def test_plain_flight_client_pulls_a_dataset(mesh: ServerProcess, loaded: Path) -> None:
    client = flight.FlightClient(mesh.flight)
    names = [info.descriptor.path[0].decode() for info in client.list_flights()]
    assert {"workers", "notes"} <= set(names)
    info = client.get_flight_info(flight.FlightDescriptor.for_path("workers"))
    table = client.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows >= 300 and "email" in table.column_names
    old = client.get_flight_info(flight.FlightDescriptor.for_path("workers@2"))
    assert client.do_get(old.endpoints[0].ticket).read_all().num_rows == 300


def test_pull_writes_parquet(cli: Cli, loaded: Path, workdir: Path) -> None:
    target = workdir / "pulled.parquet"
    result = cli("pull", "workers", "--version", "2", "-o", str(target))
    assert result.code == 0, str(result)
    assert pq.read_table(target).num_rows == 300
    bad = cli("pull", "ghost", "-o", str(workdir / "ghost.parquet"))
    assert bad.code == 1 and "TABLE_NOT_FOUND" in bad.stderr
    assert not (workdir / "ghost.parquet").exists()


def test_malformed_csv_is_refused_with_its_line_and_nothing_is_written(
    cli: Cli, workdir: Path, mesh: ServerProcess
) -> None:
    bad = workdir / "bad.csv"
    bad.write_text("id,amount\n" + "".join(f"{i},{i}.5\n" for i in range(5000)) + "x,not-a-number,extra\n")
    result = cli("ingest", str(bad), "--dataset", "broken")
    assert result.code == 1
    assert "MALFORMED_INPUT" in result.stderr and "line 5002" in result.stderr.lower()
    assert "broken" not in cli("tables").stdout
    assert not list((mesh.data_dir / "buckets" / "default" / "_lakehouse" / "datasets").glob("broken-*"))
