"""The deterministic staffing-agency sample data behind the README demo, tests and benchmarks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lakehouse.cli import sample
from lakehouse.cli.sample import FORMATS, SCHEMAS, SKILLS, TABLES, generate, sample_command, write

PHONE = re.compile(r"^\+1 [2-9]\d{2}-555-01\d{2}$")
EMAIL = re.compile(r"^[a-z]+\.[a-z]+\d+@example\.(com|org|net)$")

# sha256 of each table as canonical JSON rows (seed 7, rows 50). A change here changes the README
# demo, the tests that use sample data and the benchmarks' inputs: update it only on purpose.
GOLDEN_DIGESTS = {
    "workers": "5830c0107f6a729d030cd4781bbaa4d7079132945993bcce896e128683a11acc",
    "clients": "3ba642c8531bf069b2fb2c2ba0a18b18f978af6ba78852d6ae302906597541f0",
    "placements": "b2b000dac7050210c34672017c9fae7bd2db61a800614629ceb541b475d6bf45",
    "notes": "b086061fceaf9db3cdf63f954b9e715022afef02492db7fd659eca50e1f74d74",
}


@pytest.fixture(scope="module")
def small() -> dict[str, pa.Table]:
    return generate(50, seed=7)


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return generate(5000, seed=7)


def _digest(table: pa.Table) -> str:
    canonical = json.dumps(table.to_pylist(), default=str, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _row(table: pa.Table, index: int) -> dict[str, Any]:
    return table.slice(index, 1).to_pylist()[0]


def _query(sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect() as con:
        return con.execute(sql).fetchall()


# ---- shape and determinism ------------------------------------------------------------------------


def test_sizes_and_schemas(small: dict[str, pa.Table]) -> None:
    assert tuple(small) == TABLES
    assert {name: t.num_rows for name, t in small.items()} == {
        "workers": 50,
        "clients": 2,
        "placements": 100,
        "notes": 50,
    }
    for name, table in small.items():
        assert table.schema.equals(SCHEMAS[name]), name


def test_one_worker_still_has_a_client() -> None:
    assert {name: t.num_rows for name, t in generate(1).items()} == {
        "workers": 1,
        "clients": 1,
        "placements": 2,
        "notes": 1,
    }


def test_same_rows_and_seed_give_equal_tables() -> None:
    first, second = generate(777, seed=3), generate(777, seed=3)
    for name in TABLES:
        assert first[name].equals(second[name]), name


def test_chunk_size_does_not_change_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = generate(300)
    monkeypatch.setattr(sample, "CHUNK_ROWS", 7)
    chunked = generate(300)
    assert chunked["notes"].to_batches()[0].num_rows == 7
    for name in TABLES:
        assert whole[name].equals(chunked[name]), name


def test_golden_values_for_seed_7_rows_50(small: dict[str, pa.Table]) -> None:
    assert _row(small["workers"], 0) == {
        "worker_id": 1,
        "full_name": "Andre Silva",
        "email": "andre.silva1@example.com",
        "phone": "+1 615-555-0189",
        "city": "Tulsa",
        "skills": "cdl,bilingual",
        "hourly_rate": 39.09,
        "hired_on": dt.date(2017, 10, 19),
        "active": True,
    }
    assert _row(small["clients"], 0)["name"] == "Riverside Security Services 1"
    placement = _row(small["placements"], 0)
    assert (placement["worker_id"], placement["role"], placement["bill_rate"]) == (16, "Carpenter", 48.52)
    assert (placement["start_date"], placement["end_date"]) == (dt.date(2023, 11, 15), dt.date(2024, 3, 1))
    note = _row(small["notes"], 1)
    assert note["written_on"] == dt.datetime(2023, 6, 30, 12, 42, 57, tzinfo=dt.UTC)
    assert note["text"] == (
        "Had one no-call no-show; spoke with Tyler and it has not happened again. "
        "Has CNA and 3 years of experience in front desk reception."
    )
    assert _row(small["notes"], 10)["text"].startswith("Reliable on short notice; speaks Tagalog and Polish.\nHas ")
    assert {name: _digest(t) for name, t in small.items()} == GOLDEN_DIGESTS


def test_different_seeds_differ(small: dict[str, pa.Table]) -> None:
    other = generate(50, seed=8)
    for name in TABLES:
        assert not small[name].equals(other[name]), name
    assert small["notes"]["text"] != other["notes"]["text"]


def test_invalid_rows_rejected() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(0)


# ---- relationships and constraints -----------------------------------------------------------------


def test_ids_are_dense_from_one(tables: dict[str, pa.Table]) -> None:
    for name, column in [("workers", "worker_id"), ("clients", "client_id"), ("placements", "placement_id")]:
        ids = tables[name][column].to_pylist()
        assert ids == list(range(1, len(ids) + 1)), name
    assert tables["notes"]["note_id"].to_pylist() == list(range(1, 5001))


def test_foreign_keys_resolve(tables: dict[str, pa.Table]) -> None:
    workers, clients = tables["workers"]["worker_id"], tables["clients"]["client_id"]
    for table, column, target in [
        ("placements", "worker_id", workers),
        ("placements", "client_id", clients),
        ("notes", "worker_id", workers),
    ]:
        assert pc.all(pc.is_in(tables[table][column], value_set=target.combine_chunks())).as_py(), (table, column)
    # Each side of the relationship is exercised: most workers and all clients are referenced.
    assert len(pc.unique(tables["placements"]["worker_id"])) > 0.8 * 5000
    assert len(pc.unique(tables["placements"]["client_id"])) == tables["clients"].num_rows


def test_placement_dates_and_status(tables: dict[str, pa.Table]) -> None:
    placements = tables["placements"]
    start, end, status = placements["start_date"], placements["end_date"], placements["status"]
    assert pc.all(pc.fill_null(pc.greater_equal(end, start), True)).as_py()
    ongoing = pc.is_null(end)
    assert 0.17 < pc.mean(pc.cast(ongoing, pa.int8())).as_py() < 0.23
    assert pc.all(pc.equal(pc.equal(status, "active"), ongoing)).as_py()
    assert set(pc.unique(status).to_pylist()) == {"active", "completed", "cancelled"}
    assert pc.min(placements["hours"]).as_py() >= 1.0


def test_bill_rate_exceeds_the_workers_rate(tables: dict[str, pa.Table]) -> None:
    placements, workers = tables["placements"], tables["workers"]
    indices = pc.subtract(placements["worker_id"], 1)
    rate = pc.take(workers["hourly_rate"], indices)
    assert pc.all(pc.greater(placements["bill_rate"], rate)).as_py()
    assert pc.all(pc.less_equal(placements["bill_rate"], pc.add(pc.multiply(rate, 1.75), 0.005))).as_py()


def test_worker_columns(tables: dict[str, pa.Table]) -> None:
    workers = tables["workers"]
    emails = workers["email"].to_pylist()
    assert len(set(emails)) == len(emails)
    assert all(EMAIL.match(e) for e in emails), [e for e in emails if not EMAIL.match(e)][:3]
    assert all(PHONE.match(p) for p in workers["phone"].to_pylist())
    rates = workers["hourly_rate"].to_pylist()
    assert all(15 <= r <= 65 and round(r, 2) == r for r in rates)
    assert min(workers["hired_on"].to_pylist()) >= dt.date(2015, 1, 1)
    assert max(workers["hired_on"].to_pylist()) < dt.date(2024, 1, 1)
    assert 0.80 < pc.mean(pc.cast(workers["active"], pa.int8())).as_py() < 0.90


def test_skills_come_from_the_vocabulary(tables: dict[str, pa.Table]) -> None:
    vocabulary = {entry[0] for entry in SKILLS}
    lists = [s.split(",") for s in tables["workers"]["skills"].to_pylist()]
    assert all(1 <= len(skills) <= 4 and len(set(skills)) == len(skills) for skills in lists)
    assert {skill for skills in lists for skill in skills} == vocabulary


def test_note_text_ratios(tables: dict[str, pa.Table]) -> None:
    texts = tables["notes"]["text"].to_pylist()
    newline = sum("\n" in t for t in texts) / len(texts)
    quote = sum('"' in t for t in texts) / len(texts)
    comma = sum("," in t for t in texts) / len(texts)
    assert 0.03 < newline < 0.07
    assert 0.03 < quote < 0.07
    assert comma > 0.3
    assert all(t and t[0].isupper() and t.rstrip().endswith((".", '"')) for t in texts)
    assert all("{" not in t and "  " not in t for t in texts)


def test_notes_talk_about_the_worker(tables: dict[str, pa.Table]) -> None:
    """A note that names someone names its own worker: what semantic search over notes relies on."""
    workers = tables["workers"]
    notes = tables["notes"]
    full_names = pc.take(workers["full_name"], pc.subtract(notes["worker_id"], 1)).to_pylist()
    named = 0
    for text, full_name in zip(notes["text"].to_pylist(), full_names, strict=True):
        first = full_name.split(" ")[0]
        others = set(sample.FIRST_NAMES) - {first}
        assert not any(re.search(rf"\b{name}\b", text) for name in others), (text, full_name)
        named += first in text
    assert named > 0.3 * notes.num_rows


# ---- writing ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_paths(tables: dict[str, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write(tables, tmp_path_factory.mktemp("csv"), "csv")


def test_write_names_files_by_table(csv_paths: dict[str, Path]) -> None:
    assert {name: p.name for name, p in csv_paths.items()} == {name: f"{name}.csv" for name in TABLES}
    assert csv_paths["notes"].read_text().startswith('"note_id","worker_id","written_on","author","text"\n')


def test_csv_reads_back_with_duckdb_autodetect(tables: dict[str, pa.Table], csv_paths: dict[str, Path]) -> None:
    for name in TABLES:
        count = _query(f"SELECT count(*) FROM read_csv('{csv_paths[name]}')")[0]
        assert count == (tables[name].num_rows,), name
    texts = _query(f"SELECT text FROM read_csv('{csv_paths['notes']}') ORDER BY note_id")
    assert [t for (t,) in texts] == tables["notes"]["text"].to_pylist()
    assert any("\n" in t for (t,) in texts)


def test_csv_keeps_types_and_nulls(tables: dict[str, pa.Table], csv_paths: dict[str, Path]) -> None:
    query = f"SELECT start_date, end_date, bill_rate FROM read_csv('{csv_paths['placements']}') ORDER BY placement_id"
    back = _query(query)
    original = tables["placements"].select(["start_date", "end_date", "bill_rate"]).to_pylist()
    assert back == [tuple(row.values()) for row in original]


def test_parquet_round_trip(tables: dict[str, pa.Table], tmp_path: Path) -> None:
    paths = write(tables, tmp_path, "parquet")
    for name in TABLES:
        assert pq.read_table(paths[name]).equals(tables[name]), name


@pytest.mark.parametrize("fmt", ["tsv", "ndjson"])
def test_other_text_formats_read_back(small: dict[str, pa.Table], tmp_path: Path, fmt: str) -> None:
    paths = write(small, tmp_path, fmt)
    reader = "read_json" if fmt == "ndjson" else "read_csv"
    for name in TABLES:
        assert paths[name].name == f"{name}.{fmt}"
        count = _query(f"SELECT count(*) FROM {reader}('{paths[name]}')")[0]
        assert count == (small[name].num_rows,), name
    texts = _query(f"SELECT text FROM {reader}('{paths['notes']}') ORDER BY note_id")
    assert [t for (t,) in texts] == small["notes"]["text"].to_pylist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_bytes_are_reproducible(small: dict[str, pa.Table], tmp_path: Path, fmt: str) -> None:
    first = write(small, tmp_path / "a", fmt)
    second = write(generate(50, seed=7), tmp_path / "b", fmt)
    for name in TABLES:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_write_rejects_unknown_format(small: dict[str, pa.Table], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        write(small, tmp_path, "xlsx")


# ---- CLI and scale ------------------------------------------------------------------------------------


def test_sample_command_writes_files_and_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(sample_command, ["--rows", "40", "--format", "parquet", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{name}.parquet" for name in TABLES)
    for name in TABLES:
        assert name in result.output
    assert pq.read_table(out / "placements.parquet").num_rows == 80


def test_sample_command_rejects_zero_rows(tmp_path: Path) -> None:
    result = CliRunner().invoke(sample_command, ["--rows", "0", "-o", str(tmp_path)])
    assert result.exit_code == 2


def test_two_hundred_thousand_workers() -> None:
    big = generate(200_000, seed=11)
    assert {name: t.num_rows for name, t in big.items()} == {
        "workers": 200_000,
        "clients": 10_000,
        "placements": 400_000,
        "notes": 200_000,
    }
    assert len(big["placements"]["worker_id"].chunks) > 1
    assert pc.max(big["placements"]["worker_id"]).as_py() <= 200_000
    assert pc.count_distinct(big["workers"]["email"]).as_py() == 200_000
    assert pc.all(pc.is_valid(big["notes"]["text"])).as_py()
