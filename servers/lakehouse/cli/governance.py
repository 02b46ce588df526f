"""Governance commands: views, profiles, erasure, tombstones, receipts and derivations."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from lakehouse.catalog.v1 import catalog_service_pb2 as catalog_pb
from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.client.catalog import redaction


def _names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str] | None:
    """A comma-separated list ("a,b,c"); None when the option was not given, [] for ""."""
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _redactions(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> list[Any]:
    """--redact COLUMN=null|hash|mask[:PREFIX:SUFFIX], as ColumnRedaction messages."""
    found = []
    for item in items:
        column, sep, how = item.partition("=")
        kind, *keep = how.split(":")
        if not sep or not column or len(keep) not in (0, 2) or not all(k.isdigit() for k in keep):
            raise click.BadParameter(f"expected COLUMN=null, COLUMN=hash or COLUMN=mask:PREFIX:SUFFIX, got {item!r}")
        try:
            found.append(redaction(column, kind, *(int(k) for k in keep)))
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: {exc}") from None
    return found


def _short(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


async def _every(list_page: Callable[..., Awaitable[Any]], field: str, **filters: Any) -> list[Any]:
    """Every item of a paged List call."""
    items: list[Any] = []
    token = ""
    while True:
        page = await list_page(page_size=1000, page_token=token, **filters)
        items += list(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items


# -- views ---------------------------------------------------------------------------------------


@click.group()
def views() -> None:
    """AI-safe views: a column whitelist, a row filter and redactions over one dataset."""


def _print_view(v: catalog_pb.View) -> None:
    redacted = [
        f"{r.column}={_short(catalog_pb.RedactionKind, r.kind, 'REDACTION_KIND_')}"
        + (f":{r.keep_prefix}:{r.keep_suffix}" if r.kind == catalog_pb.REDACTION_KIND_MASK else "")
        for r in v.redactions
    ]
    output.fields(
        f"view {v.name}",
        [
            ("dataset", v.base_dataset),
            ("columns", ", ".join(v.columns)),
            ("row filter", v.row_filter or "-"),
            ("redactions", ", ".join(redacted) or "-"),
            ("owner", v.owner or "-"),
            ("description", v.description or "-"),
            ("updated", output.when(v.update_time)),
        ],
    )


@views.command("create")
@click.argument("name")
@click.option("--dataset", required=True, help="The base dataset.")
@click.option("--columns", required=True, callback=_names, help="Columns the view exposes, comma-separated.")
@click.option("--filter", "row_filter", default="", help="One boolean SQL expression over the dataset's columns.")
@click.option(
    "--redact", "redactions", multiple=True, callback=_redactions, help="COLUMN=null|hash|mask:PREFIX:SUFFIX."
)
@click.option("--description", default="")
@client_command
async def views_create(
    c: Clients,
    name: str,
    dataset: str,
    columns: list[str],
    row_filter: str,
    redactions: list[Any],
    description: str,
) -> None:
    """Create view NAME over a dataset."""
    _print_view(
        await c.catalog.create_view(
            name, dataset, columns, row_filter=row_filter, redactions=redactions, description=description
        )
    )


@views.command("get")
@click.argument("name")
@client_command
async def views_get(c: Clients, name: str) -> None:
    """Show a view's definition."""
    _print_view(await c.catalog.get_view(name))


@views.command("list")
@click.option("--dataset", default="", help="Only views over this dataset.")
@client_command
async def views_list(c: Clients, dataset: str) -> None:
    """List views."""
    found = await _every(c.catalog.list_views, "views", base_dataset=dataset)
    rows = [(v.name, v.base_dataset, len(v.columns), v.row_filter or "-", len(v.redactions)) for v in found]
    output.table("views", ["name", "dataset", "columns", "row filter", "redactions"], rows)


@views.command("update")
@click.argument("name")
@click.option("--columns", default=None, callback=_names, help="Replace the columns, comma-separated.")
@click.option("--filter", "row_filter", default=None, help="Replace the row filter ('' keeps every row).")
@click.option("--redact", "redactions", multiple=True, callback=_redactions, help="Replace the redactions.")
@click.option("--clear-redactions", is_flag=True)
@click.option("--description", default=None)
@client_command
async def views_update(
    c: Clients,
    name: str,
    columns: list[str] | None,
    row_filter: str | None,
    redactions: list[Any],
    clear_redactions: bool,
    description: str | None,
) -> None:
    """Change a view's columns, row filter, redactions or description."""
    view = await c.catalog.update_view(
        name,
        columns=columns,
        row_filter=row_filter,
        redactions=[] if clear_redactions else (redactions or None),
        description=description,
    )
    _print_view(view)


@views.command("delete")
@click.argument("name")
@client_command
async def views_delete(c: Clients, name: str) -> None:
    """Delete a view (refused while a profile binds it)."""
    output.console.print(f"deleted view {(await c.catalog.delete_view(name)).name}")


# -- profiles ------------------------------------------------------------------------------------


@click.group()
def profiles() -> None:
    """Model profiles: what agent tokens bound to them may read."""


def _print_profile(p: catalog_pb.Profile) -> None:
    output.fields(
        f"profile {p.id}",
        [
            ("datasets", ", ".join(p.datasets) or "-"),
            ("views", ", ".join(p.views) or "-"),
            ("collections", ", ".join(p.collections) or "-"),
            ("memory namespaces", ", ".join(p.memory_namespaces) or "-"),
            ("chat model", p.default_chat_model or "-"),
            ("description", p.description or "-"),
            ("updated", output.when(p.update_time)),
        ],
    )


def _binding_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for name, dest, what in reversed(
        (
            ("--datasets", "datasets", "Datasets it may read in full"),
            ("--views", "views", "Views it may read"),
            ("--collections", "collections", "Vector collections it may search"),
            ("--namespaces", "memory_namespaces", "Memory namespaces it may use"),
        )
    ):
        fn = click.option(name, dest, default=None, callback=_names, help=f"{what}, comma-separated.")(fn)
    fn = click.option("--chat-model", "default_chat_model", default=None, help="Chat model when the agent names none.")(
        fn
    )
    return click.option("--description", default=None)(fn)


@profiles.command("create")
@click.argument("profile_id", metavar="ID")
@_binding_options
@client_command
async def profiles_create(c: Clients, profile_id: str, **fields: Any) -> None:
    """Create profile ID; every binding must exist."""
    given = {key: value for key, value in fields.items() if value is not None}
    _print_profile(await c.catalog.create_profile(profile_id, **given))


@profiles.command("get")
@click.argument("profile_id", metavar="ID")
@client_command
async def profiles_get(c: Clients, profile_id: str) -> None:
    """Show a profile."""
    _print_profile(await c.catalog.get_profile(profile_id))


@profiles.command("list")
@client_command
async def profiles_list(c: Clients) -> None:
    """List profiles."""
    found = await _every(c.catalog.list_profiles, "profiles")
    rows = [
        (p.id, len(p.datasets), len(p.views), len(p.collections), len(p.memory_namespaces), p.default_chat_model or "-")
        for p in found
    ]
    output.table("profiles", ["id", "datasets", "views", "collections", "namespaces", "chat model"], rows)


@profiles.command("update")
@click.argument("profile_id", metavar="ID")
@_binding_options
@client_command
async def profiles_update(c: Clients, profile_id: str, **fields: Any) -> None:
    """Change a profile; a list given replaces the old one ("" empties it)."""
    _print_profile(await c.catalog.update_profile(profile_id, **fields))


@profiles.command("delete")
@click.argument("profile_id", metavar="ID")
@client_command
async def profiles_delete(c: Clients, profile_id: str) -> None:
    """Delete a profile (refused while a configured token is bound to it)."""
    output.console.print(f"deleted profile {(await c.catalog.delete_profile(profile_id)).id}")


# -- erasure -------------------------------------------------------------------------------------


def _keys(keys: list[str] | None, keys_file: Path | None) -> list[str]:
    """--keys and the lines of --keys-file together; one of them is required."""
    found = list(keys or [])
    if keys_file is not None:
        found += [line.strip() for line in keys_file.read_text().splitlines() if line.strip()]
    if not found:
        raise click.UsageError("give the row keys with --keys or --keys-file")
    return found


_KEYS_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _print_receipt(r: catalog_pb.ErasureReceipt) -> None:
    output.fields(
        "erasure receipt",
        [
            ("id", r.id),
            ("dataset", r.dataset),
            ("mode", _short(catalog_pb.ErasureMode, r.mode, "ERASURE_MODE_")),
            ("state", _short(catalog_pb.ErasureState, r.state, "ERASURE_STATE_")),
            ("actor", r.actor),
            ("reason", r.reason),
            ("key column", r.key_column),
            ("keys", r.key_count),
            ("rows removed", r.rows_removed),
            ("files removed", r.files_removed),
            ("version", f"{r.version_before} -> {r.version_after}"),
            ("detail", r.detail or "-"),
            ("started", output.when(r.start_time)),
            ("completed", output.when(r.complete_time)),
        ],
    )
    if r.downstream:
        output.table(
            "downstream", ["kind", "target", "deleted"], [(d.kind, d.target, d.deleted_count) for d in r.downstream]
        )


@click.command()
@click.argument("dataset")
@click.option("--key-column", required=True, help="Column holding the row keys.")
@click.option("--keys", default=None, callback=_names, help="Key values, comma-separated.")
@click.option("--keys-file", type=_KEYS_FILE, default=None, help="A file with one key value per line.")
@click.option("--mode", type=click.Choice(["soft", "hard"]), required=True, help="Hide (soft) or delete (hard).")
@click.option("--reason", required=True, help="Why; kept in the receipt.")
@client_command
async def erase(
    c: Clients, dataset: str, key_column: str, keys: list[str] | None, keys_file: Path | None, mode: str, reason: str
) -> None:
    """Erase rows of DATASET by key and print the receipt (exit 1 when a step failed)."""
    receipt = await c.catalog.erase_rows(dataset, key_column, _keys(keys, keys_file), mode=mode, reason=reason)
    _print_receipt(receipt)
    if receipt.state == catalog_pb.ERASURE_STATE_FAILED:
        sys.exit(1)


@click.command()
@click.argument("dataset")
@click.option("--keys", default=None, callback=_names, help="Key values, comma-separated.")
@click.option("--keys-file", type=_KEYS_FILE, default=None, help="A file with one key value per line.")
@click.option("--reason", required=True, help="Why; kept in the audit journal.")
@client_command
async def restore(c: Clients, dataset: str, keys: list[str] | None, keys_file: Path | None, reason: str) -> None:
    """Lift soft tombstones so the rows are visible again."""
    done = await c.catalog.restore_rows(dataset, _keys(keys, keys_file), reason=reason)
    output.console.print(f"restored {done.restored} rows of {dataset}")


@click.command()
@click.argument("dataset")
@client_command
async def tombstones(c: Clients, dataset: str) -> None:
    """List a dataset's soft tombstones."""
    found = await _every(c.catalog.list_tombstones, "tombstones", dataset=dataset)
    rows = [(t.key_column, t.key_value, t.erasure_id, output.when(t.create_time)) for t in found]
    output.table(f"tombstones of {dataset}", ["key column", "key", "erasure", "time"], rows)


@click.command()
@click.argument("action", type=click.Choice(["list", "get"]), default="list")
@click.argument("erasure_id", metavar="[ID]", default="")
@click.option("--dataset", default="", help="With list: only erasures of this dataset.")
@client_command
async def erasures(c: Clients, action: str, erasure_id: str, dataset: str) -> None:
    """List erasure receipts, newest first, or show one: erasures get ID."""
    if action == "get":
        if not erasure_id:
            raise click.UsageError("erasures get needs the receipt ID")
        _print_receipt(await c.catalog.get_erasure(erasure_id))
        return
    found = await _every(c.catalog.list_erasures, "receipts", dataset=dataset)
    rows = [
        (
            r.id,
            r.dataset,
            _short(catalog_pb.ErasureMode, r.mode, "ERASURE_MODE_"),
            _short(catalog_pb.ErasureState, r.state, "ERASURE_STATE_"),
            r.key_count,
            r.rows_removed,
            r.actor,
            output.when(r.start_time),
        )
        for r in found
    ]
    output.table("erasures", ["id", "dataset", "mode", "state", "keys", "rows", "actor", "started"], rows)


@click.command()
@click.option("--dataset", default="", help="Only derivations of this dataset.")
@client_command
async def derivations(c: Clients, dataset: str) -> None:
    """List the vector collections and memory namespaces derived from datasets."""
    found = await _every(c.catalog.list_derivations, "derivations", dataset=dataset)
    rows = [
        (
            d.dataset,
            _short(catalog_pb.DerivationKind, d.kind, "DERIVATION_KIND_"),
            d.target,
            d.key_column,
            d.dataset_version,
            output.when(d.update_time),
        )
        for d in found
    ]
    output.table("derivations", ["dataset", "kind", "target", "key column", "version", "updated"], rows)


COMMANDS = (views, profiles, erase, restore, tombstones, erasures, derivations)
