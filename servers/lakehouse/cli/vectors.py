"""Vector commands: collections, search, embed, and the embedder's settings."""

from __future__ import annotations

from typing import Any

import click

from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.client._base import token_metadata
from lakehouse.client.vector import AsyncVectorClient, index_spec, metadata_of, playbook, scalar_field
from lakehouse.vector.v1 import vector_service_pb2 as pb

METRICS = click.Choice(["cosine", "ip", "l2"], case_sensitive=False)
INDEX_TYPES = click.Choice(["autoindex", "flat", "ivf_flat", "hnsw", "gpu_cagra"], case_sensitive=False)
FIELD_TYPES = ("string", "int64", "double", "bool")


def vector_client(c: Clients) -> AsyncVectorClient:
    """The vector service's client over the command's channel, with its --token and --timeout."""
    timeout_s = click.get_current_context().params.get("timeout_s", 30.0)
    return AsyncVectorClient(c.channel, timeout_s=timeout_s, metadata=token_metadata(c.token))


def _short(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _params(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> dict[str, int]:
    """--param NAME=INT, repeatable."""
    found = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.lstrip("-").isdigit():
            raise click.BadParameter(f"expected NAME=INTEGER, got {item!r}")
        found[name] = int(value)
    return found


def _fields(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> list[pb.ScalarField]:
    """--field NAME:TYPE[:required][:MAX_LENGTH], repeatable."""
    found = []
    for item in items:
        name, _, rest = item.partition(":")
        kind, *flags = rest.split(":") if rest else ("string",)
        required = "required" in flags
        lengths = [f for f in flags if f != "required"]
        if not name or kind.lower() not in FIELD_TYPES or len(lengths) > 1 or not all(f.isdigit() for f in lengths):
            raise click.BadParameter(
                f"expected NAME:TYPE[:required][:MAX_LENGTH] with TYPE one of {', '.join(FIELD_TYPES)}, got {item!r}"
            )
        found.append(scalar_field(name, kind, nullable=not required, max_length=int(lengths[0]) if lengths else 0))
    return found


def _print_collection(c: pb.Collection) -> None:
    index = _short(pb.IndexType, c.index.type, "INDEX_TYPE_")
    which = c.index.WhichOneof("params")
    if which:
        params = getattr(c.index, which)
        index += " (" + ", ".join(f"{f.name}={getattr(params, f.name)}" for f in params.DESCRIPTOR.fields) + ")"
    fields = [
        f"{f.name}:{_short(pb.FieldType, f.type, 'FIELD_TYPE_')}" + ("" if f.nullable else ":required")
        for f in c.fields
    ]
    output.fields(
        f"collection {c.name}",
        [
            ("dimension", c.dimension),
            ("metric", _short(pb.DistanceMetric, c.metric, "DISTANCE_METRIC_")),
            ("index", index),
            ("index state", _short(pb.IndexState, c.index_state, "INDEX_STATE_")),
            ("vectors", f"{c.row_count:,}"),
            (
                "indexed",
                f"{c.indexed_rows:,} (the rest are searched by brute force)"
                if c.indexed_rows < c.row_count
                else f"{c.indexed_rows:,}",
            ),
            ("fields", ", ".join(fields) or "-"),
            ("embedder model", c.embedder_model or "-"),
            ("source dataset", c.source_dataset or "-"),
            ("description", c.description or "-"),
            ("created", output.when(c.create_time)),
        ],
    )


# -- collections -----------------------------------------------------------------------------------


@click.group()
def collections() -> None:
    """Vector collections."""


@collections.command("create")
@click.argument("name")
@click.option("--dimension", type=int, default=0, help="Vector dimension; default: the embedder's (384).")
@click.option("--metric", type=METRICS, default="cosine", show_default=True)
@click.option("--index", "index_type", type=INDEX_TYPES, default="autoindex", show_default=True)
@click.option(
    "--param",
    "params",
    multiple=True,
    callback=_params,
    help="Index build parameter NAME=INT (hnsw: m, ef_construction; ivf_flat: nlist; "
    "gpu_cagra: intermediate_graph_degree, graph_degree); repeatable.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    callback=_fields,
    help="Declared scalar field NAME:TYPE[:required][:MAX_LENGTH]; repeatable.",
)
@click.option("--description", default="")
@client_command
async def collections_create(
    c: Clients,
    name: str,
    dimension: int,
    metric: str,
    index_type: str,
    params: dict[str, int],
    fields: list[pb.ScalarField],
    description: str,
) -> None:
    """Create collection NAME."""
    try:
        index = index_spec(index_type, **params)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--param") from None
    created = await vector_client(c).create_collection(
        name, dimension=dimension, metric=metric, index=index, fields=fields, description=description
    )
    _print_collection(created)


@collections.command("get")
@click.argument("name")
@client_command
async def collections_get(c: Clients, name: str) -> None:
    """Show a collection."""
    _print_collection(await vector_client(c).get_collection(name))


@collections.command("list")
@client_command
async def collections_list(c: Clients) -> None:
    """List the collections you may read."""
    found = await vector_client(c).all_collections()
    rows = [
        (
            x.name,
            x.dimension,
            _short(pb.DistanceMetric, x.metric, "DISTANCE_METRIC_"),
            _short(pb.IndexType, x.index.type, "INDEX_TYPE_"),
            f"{x.row_count:,}",
            x.source_dataset or "-",
        )
        for x in found
    ]
    output.table("collections", ["name", "dimension", "metric", "index", "vectors", "source"], rows)


@collections.command("delete")
@click.argument("name")
@click.confirmation_option(prompt="Delete the collection and all its vectors?")
@client_command
async def collections_delete(c: Clients, name: str) -> None:
    """Delete a collection and all its vectors."""
    await vector_client(c).delete_collection(name)
    output.console.print(f"deleted collection {name}")


# -- search and embeddings -------------------------------------------------------------------------


@click.command()
@click.argument("text")
@click.option("--collection", "names", multiple=True, required=True, help="Collection to search; repeatable.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Hits to return.")
@click.option("--filter", "filter_", default="", help="Milvus filter expression, e.g. 'year >= 2023'.")
@click.option("--exclude", multiple=True, help="Id never returned; repeatable.")
@click.option("--max-distance", type=float, default=None, help="Drop hits farther than this.")
@click.option("--playbook", "namespace", default=None, help="Apply the playbook of this memory namespace.")
@click.option("--role", default="", help="Role of the asker for the playbook.")
@click.option("--field", "output_fields", multiple=True, help="Metadata field to show; repeatable (default: all).")
@client_command
async def search(
    c: Clients,
    text: str,
    names: tuple[str, ...],
    k: int,
    filter_: str,
    exclude: tuple[str, ...],
    max_distance: float | None,
    namespace: str | None,
    role: str,
    output_fields: tuple[str, ...],
) -> None:
    """Search collections by the meaning of TEXT."""
    found = await vector_client(c).search(
        list(names),
        text=text,
        k=k,
        filter=filter_,
        exclude_ids=exclude,
        max_distance=max_distance,
        playbook=playbook(namespace, role=role) if namespace is not None else None,
        output_fields=output_fields,
    )
    rows = []
    for rank, hit in enumerate(found.hits, 1):
        effect = ""
        if hit.HasField("playbook"):
            effect = _short(pb.PlaybookAction, hit.playbook.action, "PLAYBOOK_ACTION_")
        fields = metadata_of(hit)
        source = f"{fields.pop('source_dataset', '')}:{fields.pop('source_key', '')}".strip(":") or "-"
        for bookkeeping in _INDEX_BOOKKEEPING:
            fields.pop(bookkeeping, None)
        metadata = ", ".join(f"{key}={value}" for key, value in sorted(fields.items())) or "-"
        rows.append(
            (rank, f"{hit.distance:.4f}", hit.collection, hit.id, _clip(hit.text), source, metadata, effect or "-")
        )
    columns = ["#", "distance", "collection", "id", "text", "source row", "metadata", "playbook"]
    output.table(f"hits for {text!r}", columns, rows)


# Fields IndexDataset keeps for its own bookkeeping; the source row is shown as dataset:key.
_INDEX_BOOKKEEPING = ("source_version", "chunk_index", "content_sha256")


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@click.command()
@click.argument("texts", nargs=-1, required=True)
@click.option("--values", "shown", type=int, default=4, show_default=True, help="Leading values shown per text.")
@client_command
async def embed(c: Clients, texts: tuple[str, ...], shown: int) -> None:
    """Embed TEXTS with the server's model."""
    response = await vector_client(c).embed(list(texts))
    rows = [
        (
            _clip(text, 60),
            e.token_count,
            "yes" if e.truncated else "no",
            ", ".join(f"{v:+.4f}" for v in e.values[:shown]) + (", …" if len(e.values) > shown else ""),
        )
        for text, e in zip(texts, response.embeddings, strict=True)
    ]
    output.table(f"{response.model}, dimension {response.dimension}", ["text", "tokens", "truncated", "values"], rows)


@click.command()
@client_command
async def embedder(c: Clients) -> None:
    """Show the embedding model and what runs it."""
    info = await vector_client(c).get_embedder_info()
    cache = info.cache
    lookups = cache.hits + cache.misses
    output.fields(
        f"embedder {info.model}",
        [
            ("dimension", info.dimension),
            ("max tokens", info.max_tokens),
            ("precision", _short(pb.EmbedderPrecision, info.precision, "EMBEDDER_PRECISION_")),
            ("execution providers", ", ".join(info.execution_providers)),
            ("batching", f"up to {info.max_batch_size} texts, waits {info.max_batch_wait.ToNanoseconds() / 1e6:g} ms"),
            (
                "cache",
                f"{cache.entries:,}/{cache.capacity:,} entries, {cache.hits:,} hits of {lookups:,} lookups"
                if cache.capacity
                else "off",
            ),
            ("model sha256", info.model_sha256),
            ("source", info.source),
        ],
    )


COMMANDS = (collections, search, embed, embedder)
