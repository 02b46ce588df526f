"""Data commands: ingest files and databases, run SQL, pull datasets over Arrow Flight."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.client.flight import LakehouseFlight
from lakehouse.client.query import file_options
from lakehouse.query.v1 import query_service_pb2 as pb

MODE = click.Choice(["create", "append", "overwrite"])


def _bar(label: str, total: int | None) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=output.errors,
        transient=True,
    )


def _print_summary(summary: pb.IngestSummary) -> None:
    if summary.duplicate:
        output.console.print(f"{summary.dataset}: this content is already version {summary.version}; nothing written")
        return
    verb = "created" if summary.created else "wrote"
    output.console.print(
        f"{verb} {summary.dataset} version {summary.version}: {summary.rows_written:,} rows in {summary.elapsed.ToNanoseconds() / 1e9:.2f} s"
    )
    if summary.pii_columns:
        output.console.print(f"  personal data detected in: {', '.join(summary.pii_columns)}")
    for warning in summary.warnings:
        output.console.print(f"  note: {warning}")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", required=True, help="Target dataset (its SQL table name).")
@click.option("--mode", type=MODE, default="create", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["", "csv", "tsv", "json", "ndjson", "parquet"]),
    default="",
    help="Default: from the file name.",
)
@click.option("--delimiter", default="", help="CSV field delimiter (default ',').")
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="COLUMN=TYPE",
    help="Force a column's type, e.g. zip=VARCHAR (repeatable).",
)
@click.option("--skip-bad-rows", is_flag=True, help="Skip malformed rows instead of failing.")
@click.option("--description", default="")
@client_command
async def ingest(
    c: Clients,
    file: Path,
    dataset: str,
    mode: str,
    fmt: str,
    delimiter: str,
    types: tuple[str, ...],
    skip_bad_rows: bool,
    description: str,
) -> None:
    """Upload FILE (CSV, TSV, JSON, NDJSON or Parquet) into a dataset as one new version."""
    column_types = dict(_pair(t, "--type") for t in types)
    options = file_options(fmt, delimiter, column_types=column_types, skip_bad_rows=skip_bad_rows)
    with _bar(f"uploading {file.name}", None) as bar:
        task = bar.add_task("upload", total=file.stat().st_size)
        summary = await c.query.ingest_file(
            file,
            dataset,
            mode=mode,
            options=options,
            description=description,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    _print_summary(summary)


@click.command("ingest-db")
@click.argument("uri")
@click.option("--dataset", required=True)
@click.option("--table", default="", help="Source table, e.g. public.placements.")
@click.option("--query", "sql", default="", help="Source query instead of a table.")
@click.option("--mode", type=MODE, default="create", show_default=True)
@client_command
async def ingest_db(c: Clients, uri: str, dataset: str, table: str, sql: str, mode: str) -> None:
    """Pull a table or query result from PostgreSQL, SQLite or DuckDB (URI) into a dataset."""
    with Progress(
        TextColumn("reading rows"), TextColumn("{task.completed:,}"), console=output.errors, transient=True
    ) as bar:
        task = bar.add_task("rows", total=None)
        summary = await c.query.ingest_database(
            uri,
            dataset,
            table=table,
            query=sql,
            mode=mode,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    _print_summary(summary)


@click.command()
@click.argument("statement")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Value for the next ? placeholder (JSON, e.g. 42 or '\"text\"'); repeatable.",
)
@click.option(
    "--as-of",
    "as_of",
    multiple=True,
    metavar="DATASET=VERSION",
    help="Read a dataset at an older version (repeatable).",
)
@click.option("--max-rows", default=100, show_default=True, help="Rows to print.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@client_command
async def sql(
    c: Clients, statement: str, params: tuple[str, ...], as_of: tuple[str, ...], max_rows: int, fmt: str
) -> None:
    """Run one read-only SQL statement over your datasets."""
    versions = {name: int(version) for name, version in (_pair(a, "--as-of") for a in as_of)}
    result = await c.query.query(statement, [_json(p) for p in params], as_of=versions, max_inline_rows=max_rows)
    _print_table(result.table, fmt)
    if result.truncated:
        output.errors.print(
            f"(first {result.table.num_rows} rows; pull everything with: lakehouse pull --sql ... -o out.parquet)"
        )


@click.command()
@click.argument("dataset", required=False)
@click.option("--sql", "statement", default="", help="Pull the result of a statement instead of a dataset.")
@click.option("--version", type=int, default=None, help="Catalog version to read (time travel).")
@click.option(
    "-o",
    "--output",
    "target",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Parquet file to write.",
)
@client_command
async def pull(c: Clients, dataset: str | None, statement: str, version: int | None, target: Path) -> None:
    """Download a dataset (or a query result) over Arrow Flight into a Parquet file."""
    if bool(dataset) == bool(statement):
        raise click.UsageError("give a DATASET or --sql, not both")
    sql_text = statement or f'SELECT * FROM "{dataset}"'
    as_of = {dataset: version} if dataset and version is not None else None
    # Zero inline rows: the answer is just the schema and a ticket for the whole result.
    result = await c.query.query(sql_text, as_of=as_of, max_inline_rows=0)
    partial = target.with_name(f".{target.name}.partial")
    rows = 0
    try:
        with pq.ParquetWriter(partial, result.table.schema) as writer:
            if result.truncated:
                with LakehouseFlight(result.flight_location, token=c.token) as flight:
                    for batch in flight.read_ticket(result.ticket):
                        writer.write_batch(batch)
                        rows += batch.num_rows
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    output.console.print(f"wrote {rows:,} rows to {target} ({output.size(target.stat().st_size)})")


@click.command()
@client_command
async def tables(c: Clients) -> None:
    """List the tables you can query, with versions and row counts."""
    rows = []
    for t in await c.query.list_tables():
        schema = pa.ipc.open_stream(t.schema.arrow_ipc).schema
        count = f"{t.row_count:,}" if t.HasField("row_count") else "-"
        kind = f"view of {t.base_dataset}" if t.kind == pb.TABLE_KIND_VIEW else "dataset"
        rows.append((t.name, kind, t.version, count, len(schema), output.when(t.update_time)))
    output.table("tables", ["name", "kind", "version", "rows", "columns", "updated"], rows)


@click.command()
@click.argument("dataset")
@click.option("--apply-tombstones", is_flag=True, help="Also delete soft-erased rows for good (admins).")
@click.option("--target-mb", type=int, default=0, help="Target file size in MiB; 0 uses the default.")
@client_command
async def compact(c: Clients, dataset: str, apply_tombstones: bool, target_mb: int) -> None:
    """Rewrite a dataset's small files into larger ones as a new version."""
    done = await c.query.compact(
        dataset, target_file_size_bytes=target_mb * 1024 * 1024, apply_tombstones=apply_tombstones
    )
    line = f"{dataset}: version {done.version_before} -> {done.version_after}, "
    line += f"{done.files_removed} files replaced by {done.files_added}"
    if apply_tombstones:
        line += f", {done.rows_erased} rows erased, {done.tombstones_cleared} tombstones cleared"
    output.console.print(line)


@click.command()
@click.argument("dataset")
@click.option("--retention-hours", type=float, default=None, help="Keep files unreferenced for less than this.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted.")
@client_command
async def vacuum(c: Clients, dataset: str, retention_hours: float | None, dry_run: bool) -> None:
    """Delete data files no longer referenced by recent versions (ends time travel to older ones)."""
    done = await c.query.vacuum(dataset, retention_hours=retention_hours, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    output.console.print(f"{dataset}: {verb} {len(done.files_deleted)} files")
    for name in done.files_deleted:
        output.console.print(f"  {name}")


def _pair(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint=option)
    return name, value


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word is a string


def _print_table(table: pa.Table, fmt: str) -> None:
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, sys.stdout.buffer)
    elif fmt == "json":
        for row in table.to_pylist():
            print(json.dumps(row, default=str))
    else:
        output.table(
            f"{table.num_rows} rows",
            table.column_names,
            ([_cell(v) for v in row.values()] for row in table.to_pylist()),
        )


def _cell(value: object) -> str:
    return "NULL" if value is None else str(value)


COMMANDS = (ingest, ingest_db, sql, pull, tables, compact, vacuum)
