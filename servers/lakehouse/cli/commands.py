"""Client commands: buckets, objects, datasets, events, whoami, health."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import grpc
import pyarrow as pa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.cli import output
from lakehouse.client._base import open_channel, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.errors import LakehouseClientError
from lakehouse.client.query import AsyncQueryClient
from lakehouse.client.storage import AsyncStorageClient
from lakehouse.server.common.config import SERVICE_NAMES, ConfigError, load_config

DEFAULT_ADDRESS = "127.0.0.1:50051"
# Rows read from a --schema-from file for PII detection; the rest of the file is never read.
SAMPLE_ROWS = 1000


@dataclass(frozen=True)
class Clients:
    """What a client command gets: one client per service over one channel."""

    storage: AsyncStorageClient
    catalog: AsyncCatalogClient
    channel: grpc.aio.Channel
    query: AsyncQueryClient
    token: str | None = None
    """--token as given (None: $LAKEHOUSE_TOKEN), for clients made later such as Flight."""


@asynccontextmanager
async def connect(address: str, token: str | None, timeout_s: float) -> AsyncIterator[Clients]:
    channel = open_channel(address)
    metadata = token_metadata(token)
    try:
        yield Clients(
            storage=AsyncStorageClient(channel, timeout_s=timeout_s, metadata=metadata),
            catalog=AsyncCatalogClient(channel, timeout_s=timeout_s, metadata=metadata),
            channel=channel,
            query=AsyncQueryClient(channel, timeout_s=timeout_s, metadata=metadata),
            token=token,
        )
    finally:
        await channel.close()


def default_address() -> str:
    """Where client commands connect unless told: the environment, then the config file."""
    if os.environ.get("LAKEHOUSE_ADDRESS"):
        return os.environ["LAKEHOUSE_ADDRESS"]
    path = Path(os.environ.get("LAKEHOUSE_CONFIG", "lakehouse.toml"))
    if not path.exists():
        return DEFAULT_ADDRESS
    try:
        server = load_config(path).server
    except ConfigError:
        return DEFAULT_ADDRESS  # `lakehouse serve` reports a broken file; a client just uses the default
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    return f"{host}:{server.port}"


def client_command(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Adds --address/--token/--timeout and runs the coroutine with connected clients."""

    @click.option(
        "--address",
        default=default_address,
        show_default="$LAKEHOUSE_ADDRESS, else [server] of ./lakehouse.toml ($LAKEHOUSE_CONFIG), else 127.0.0.1:50051",
        help="Server HOST:PORT.",
    )
    @click.option("--token", default=None, help="Bearer token (default: $LAKEHOUSE_TOKEN).")
    @click.option("--timeout", "timeout_s", default=30.0, show_default=True, help="Deadline of each call in seconds.")
    @functools.wraps(fn)
    def wrapper(address: str, token: str | None, timeout_s: float, **kwargs: Any) -> None:
        async def run() -> None:
            async with connect(address, token, timeout_s) as clients:
                await fn(clients, **kwargs)

        try:
            asyncio.run(run())
        except LakehouseClientError as exc:
            output.fail(exc)
        except OSError as exc:  # a local file: unreadable upload, unwritable download target, ...
            raise click.ClickException(str(exc)) from None

    return wrapper


# -- buckets -------------------------------------------------------------------------------------


@click.group()
def buckets() -> None:
    """Buckets of the storage service."""


@buckets.command("list")
@client_command
async def buckets_list(c: Clients) -> None:
    """List buckets."""
    response = await c.storage.list_buckets(page_size=1000)
    rows = [
        (
            b.name,
            b.uri,
            output.size(b.max_bytes) if b.max_bytes else "-",
            "yes" if b.is_default else "",
            "config" if b.from_config else "runtime",
        )
        for b in response.buckets
    ]
    output.table("buckets", ["name", "uri", "cap", "default", "declared in"], rows)


@buckets.command("create")
@click.argument("name")
@click.option("--uri", default="", help="s3://bucket/prefix, file:///dir or a path (default: under the data dir).")
@click.option("--max-bytes", default=0, help="Size cap in bytes (0: none).")
@client_command
async def buckets_create(c: Clients, name: str, uri: str, max_bytes: int) -> None:
    """Create a bucket."""
    bucket = await c.storage.create_bucket(name, uri, max_bytes)
    output.console.print(f"created bucket {bucket.name} at {bucket.uri}")


@buckets.command("delete")
@click.argument("name")
@click.option("--force", is_flag=True, help="Delete the bucket's objects too.")
@client_command
async def buckets_delete(c: Clients, name: str, force: bool) -> None:
    """Delete a runtime bucket."""
    count = await c.storage.delete_bucket(name, force)
    output.console.print(f"deleted bucket {name} ({count} objects)")


@buckets.command("health")
@click.argument("name", default="")
@client_command
async def buckets_health(c: Clients, name: str) -> None:
    """Check a bucket is reachable and writable."""
    h = await c.storage.bucket_health(name)
    output.fields(
        f"bucket {h.bucket.name}",
        [
            ("uri", h.bucket.uri),
            ("reachable", h.reachable),
            ("writable", h.writable),
            ("objects", h.object_count),
            ("used", output.size(h.used_bytes)),
            ("detail", h.detail or "-"),
        ],
    )
    if not (h.reachable and h.writable):
        sys.exit(1)


# -- objects -------------------------------------------------------------------------------------


@click.group()
def objects() -> None:
    """Objects in buckets."""


def _parse_meta(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
    """--meta KEY=VALUE pairs as a dict; anything else is a usage error, never silently dropped."""
    metadata: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    return metadata


@objects.command("put")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("key")
@click.option("--bucket", default="", help="Bucket (default: the default bucket).")
@click.option("--content-type", default="", help="MIME type, for example text/csv.")
@click.option("--meta", multiple=True, callback=_parse_meta, help="Metadata KEY=VALUE (repeatable).")
@client_command
async def objects_put(c: Clients, file: Path, key: str, bucket: str, content_type: str, meta: dict[str, str]) -> None:
    """Upload FILE as KEY."""
    with file.open("rb") as source:
        info = await c.storage.put_object(
            key, source, bucket=bucket, content_type=content_type, metadata=meta, timeout_s=3600
        )
    output.console.print(f"stored {info.bucket}/{info.key}: {output.size(info.size_bytes)} sha256 {info.sha256}")


@objects.command("get")
@click.argument("key")
@click.option("--bucket", default="")
@click.option(
    "-o", "--output", "target", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@client_command
async def objects_get(c: Clients, key: str, bucket: str, target: Path | None) -> None:
    """Download KEY."""
    if target is None:
        async with aclosing(c.storage.get_object(key, bucket=bucket, timeout_s=3600)) as messages:
            async for message in messages:
                sys.stdout.buffer.write(message.chunk)
        return
    # Download beside the target and rename on success, so a failure never clobbers an existing file.
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as sink:
            async with aclosing(c.storage.get_object(key, bucket=bucket, timeout_s=3600)) as messages:
                async for message in messages:
                    sink.write(message.chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


@objects.command("stat")
@click.argument("key")
@click.option("--bucket", default="")
@client_command
async def objects_stat(c: Clients, key: str, bucket: str) -> None:
    """Show an object's metadata."""
    o = await c.storage.stat_object(key, bucket=bucket)
    pairs = [
        ("bucket", o.bucket),
        ("key", o.key),
        ("size", f"{o.size_bytes} bytes"),
        ("sha256", o.sha256 or "-"),
        ("content type", o.content_type or "-"),
        ("updated", output.when(o.update_time)),
    ]
    pairs += [(f"meta {k}", v) for k, v in sorted(o.metadata.items())]
    output.fields("object", pairs)


@objects.command("ls")
@click.argument("prefix", default="")
@click.option("--bucket", default="")
@client_command
async def objects_ls(c: Clients, prefix: str, bucket: str) -> None:
    """List objects under PREFIX."""
    rows, token = [], ""
    while True:
        page = await c.storage.list_objects(bucket=bucket, prefix=prefix, page_token=token)
        rows += [
            (o.key, output.size(o.size_bytes), o.content_type or "-", output.when(o.update_time)) for o in page.objects
        ]
        token = page.next_page_token
        if not token:
            break
    output.table("objects", ["key", "size", "type", "updated"], rows)


@objects.command("rm")
@click.argument("key")
@click.option("--bucket", default="")
@client_command
async def objects_rm(c: Clients, key: str, bucket: str) -> None:
    """Delete an object."""
    await c.storage.delete_object(key, bucket=bucket)
    output.console.print(f"deleted {key}")


# -- datasets ------------------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Datasets in the catalog."""


def _pii(column: catalog_pb.Column) -> str:
    kinds = [catalog_pb.PiiKind.Name(k).removeprefix("PII_KIND_").lower() for k in column.pii]
    suffix = " (owner)" if column.sensitivity_source == catalog_pb.SENSITIVITY_SOURCE_OWNER else ""
    return ", ".join(kinds) + suffix if kinds else "-"


def _read_schema_and_sample(path: Path) -> tuple[pa.Schema, pa.Table]:
    """Schema and first rows of a Parquet, CSV/TSV or Arrow IPC file (the rows feed PII detection).

    Only the first SAMPLE_ROWS rows are read, so a large file costs no more than a small one; an
    unreadable file is a usage error that says what is wrong with it.
    """
    readers: dict[str, tuple[str, Callable[[Path], tuple[pa.Schema, pa.Table]]]] = {
        ".parquet": ("Parquet", _parquet_sample),
        ".csv": ("CSV", _csv_sample),
        ".tsv": ("TSV", _csv_sample),
        ".arrow": ("Arrow IPC", _ipc_sample),
        ".arrows": ("Arrow IPC", _ipc_sample),
        ".ipc": ("Arrow IPC", _ipc_sample),
    }
    kind, read = readers.get(path.suffix.lower(), ("", None))
    if read is None:
        raise click.BadParameter(
            f"cannot read a schema from {path.name}: use .parquet, .csv, .tsv or .arrow", param_hint="'--schema-from'"
        )
    try:
        return read(path)
    except (pa.ArrowException, OSError) as exc:
        raise click.BadParameter(f"cannot read {path.name} as {kind}: {exc}", param_hint="'--schema-from'") from None


def _first_rows(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> pa.Table:
    taken: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        taken.append(batch)
        count += batch.num_rows
        if count >= SAMPLE_ROWS:
            break
    return pa.Table.from_batches(taken, schema=schema).slice(0, SAMPLE_ROWS)


def _parquet_sample(path: Path) -> tuple[pa.Schema, pa.Table]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        schema = file.schema_arrow
        return schema, _first_rows(schema, file.iter_batches(batch_size=SAMPLE_ROWS))


def _csv_sample(path: Path) -> tuple[pa.Schema, pa.Table]:
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",", newlines_in_values=True)
    # Streaming: types are inferred from the first block (1 MiB) and reading stops after the sample.
    # One thread, so no block is read ahead past what the sample needs.
    read = pacsv.ReadOptions(use_threads=False)
    with pacsv.open_csv(str(path), read_options=read, parse_options=parse) as reader:
        return reader.schema, _first_rows(reader.schema, reader)


def _ipc_sample(path: Path) -> tuple[pa.Schema, pa.Table]:
    """Arrow IPC in the file format (`new_file`, random access) or the stream format (`new_stream`)."""
    with pa.OSFile(str(path)) as source:
        try:
            file = pa.ipc.open_file(source)
        except pa.ArrowInvalid:  # no file-format footer: try the stream format
            source.seek(0)
            with pa.ipc.open_stream(source) as stream:
                return stream.schema, _first_rows(stream.schema, stream)
        batches = (file.get_batch(i) for i in range(file.num_record_batches))
        return file.schema, _first_rows(file.schema, batches)


@datasets.command("create")
@click.argument("name")
@click.option(
    "--schema-from",
    "schema_from",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Parquet/CSV/Arrow file whose schema (and first rows, for PII detection) to register.",
)
@click.option("--bucket", default="")
@click.option("--description", default="")
@click.option("--owner", default="")
@click.option("--tag", "tags", multiple=True)
@click.option("--allow-additive-evolution", is_flag=True, help="Accept new nullable columns on an existing dataset.")
@client_command
async def datasets_create(
    c: Clients,
    name: str,
    schema_from: Path,
    bucket: str,
    description: str,
    owner: str,
    tags: tuple[str, ...],
    allow_additive_evolution: bool,
) -> None:
    """Register a dataset NAME with the schema of a file."""
    schema, sample = _read_schema_and_sample(schema_from)
    response = await c.catalog.create_dataset(
        name,
        schema,
        bucket=bucket,
        description=description,
        owner=owner,
        tags=tags,
        sample=sample,
        allow_additive_evolution=allow_additive_evolution,
    )
    verb = "registered" if response.created else "already registered (same schema)"
    output.console.print(
        f"{verb}: {response.dataset.name} id {response.dataset.id} version {response.dataset.current_version}"
    )
    _print_columns(response.dataset)


def _print_columns(d: catalog_pb.Dataset) -> None:
    output.table(
        f"columns of {d.name}",
        ["column", "type", "nullable", "pii"],
        [(col.name, col.arrow_type, "yes" if col.nullable else "no", _pii(col)) for col in d.columns],
    )


@datasets.command("list")
@click.option("--tag", default="")
@click.option("--owner", default="")
@click.option("--prefix", "name_prefix", default="")
@client_command
async def datasets_list(c: Clients, tag: str, owner: str, name_prefix: str) -> None:
    """List datasets."""
    rows, token = [], ""
    while True:
        page = await c.catalog.list_datasets(tag=tag, owner=owner, name_prefix=name_prefix, page_token=token)
        rows += [
            (
                d.name,
                d.current_version,
                d.row_count,
                output.size(d.size_bytes),
                d.owner or "-",
                ", ".join(d.tags) or "-",
                output.when(d.update_time),
            )
            for d in page.datasets
        ]
        token = page.next_page_token
        if not token:
            break
    output.table("datasets", ["name", "version", "rows", "size", "owner", "tags", "updated"], rows)


@datasets.command("get")
@click.argument("dataset")
@client_command
async def datasets_get(c: Clients, dataset: str) -> None:
    """Show a dataset (by name or id) with its columns and PII tags."""
    d = await c.catalog.get_dataset(dataset)
    output.fields(
        f"dataset {d.name}",
        [
            ("id", d.id),
            ("bucket", d.bucket),
            ("location", d.location),
            ("version", d.current_version),
            ("rows", d.row_count),
            ("size", output.size(d.size_bytes)),
            ("owner", d.owner or "-"),
            ("tags", ", ".join(d.tags) or "-"),
            ("description", d.description or "-"),
            ("fingerprint", d.schema_fingerprint[:16] + "…"),
            ("created", output.when(d.create_time)),
            ("updated", output.when(d.update_time)),
        ],
    )
    _print_columns(d)


@datasets.command("update")
@click.argument("dataset")
@click.option("--description", default=None)
@click.option("--owner", default=None)
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
@click.option("--clear-tags", is_flag=True)
@client_command
async def datasets_update(
    c: Clients, dataset: str, description: str | None, owner: str | None, tags: tuple[str, ...], clear_tags: bool
) -> None:
    """Change a dataset's description, owner or tags."""
    new_tags = [] if clear_tags else (list(tags) if tags else None)
    d = await c.catalog.update_dataset(dataset, description=description, owner=owner, tags=new_tags)
    output.console.print(f"updated {d.name}")


@datasets.command("delete")
@click.argument("dataset")
@click.confirmation_option(prompt="Remove this dataset from the catalog?")
@client_command
async def datasets_delete(c: Clients, dataset: str) -> None:
    """Remove a dataset from the catalog."""
    d = await c.catalog.delete_dataset(dataset)
    output.console.print(f"deleted {d.name}")


@datasets.command("history")
@click.argument("dataset")
@client_command
async def datasets_history(c: Clients, dataset: str) -> None:
    """Show a dataset's versions, newest first."""
    response = await c.catalog.history(dataset, page_size=1000)
    rows = [
        (
            v.version,
            catalog_pb.VersionOperation.Name(v.operation).removeprefix("VERSION_OPERATION_").lower(),
            v.row_count,
            output.size(v.size_bytes),
            v.actor,
            v.lineage.source_system or "-",
            output.when(v.create_time),
        )
        for v in response.versions
    ]
    output.table(f"history of {dataset}", ["version", "operation", "rows", "size", "actor", "source", "time"], rows)


@datasets.command("set-pii")
@click.argument("dataset")
@click.argument("column")
@click.argument("kinds", nargs=-1)
@click.option("--reason", default="", help="Why (kept in the audit journal).")
@client_command
async def datasets_set_pii(c: Clients, dataset: str, column: str, kinds: tuple[str, ...], reason: str) -> None:
    """Override COLUMN's PII kinds (none given: not sensitive). Kinds: email, phone, ssn, ..."""
    try:
        d = await c.catalog.set_column_sensitivity(dataset, column, list(kinds), reason)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="KINDS") from None
    _print_columns(d)


# -- journal, identity, health -------------------------------------------------------------------


@click.command()
@click.option("--entity", default="", help="Only events of this entity (name or id).")
@click.option("--type", "entity_type", default="", help="Only events of this entity type, for example dataset.")
@click.option("--limit", default=50, show_default=True)
@client_command
async def events(c: Clients, entity: str, entity_type: str, limit: int) -> None:
    """Read the catalog's audit journal."""
    response = await c.catalog.list_events(entity=entity, entity_type=entity_type, page_size=limit)
    rows = [
        (e.sequence, output.when(e.time), e.actor, f"{e.entity_type}:{e.entity}", e.action) for e in response.events
    ]
    output.table("events", ["#", "time", "actor", "entity", "action"], rows)


@click.command()
@client_command
async def whoami(c: Clients) -> None:
    """Show who the server thinks you are."""
    me = await c.catalog.whoami()
    output.fields(
        "whoami",
        [
            ("principal", me.principal),
            ("role", me.role),
            ("profile", me.profile or "-"),
            ("auth", "on" if me.auth_enabled else "off (loopback development mode)"),
        ],
    )


@click.command()
@client_command
async def health(c: Clients) -> None:
    """Show grpc.health.v1 status of every service."""
    stub = health_pb2_grpc.HealthStub(c.channel)
    names = {"": "(overall)"} | {f"lakehouse.{s}.v1.{s.capitalize()}Service": s for s in SERVICE_NAMES}
    rows, healthy = [], True
    for full_name, label in names.items():
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=full_name), timeout=5)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        healthy &= status == "SERVING" or (status == "NOT_FOUND" and label != "(overall)")
        rows.append((label, status))
    output.table("health", ["service", "status"], rows)
    if not healthy:
        sys.exit(1)


def register(cli: click.Group) -> None:
    for command in (buckets, objects, datasets, events, whoami, health):
        cli.add_command(command)
