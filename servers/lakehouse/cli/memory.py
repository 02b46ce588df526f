"""Memory commands: agent memory traces (`lakehouse memory ...`) and the playbook (`lakehouse playbook ...`)."""

from __future__ import annotations

import click

from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.client._base import token_metadata
from lakehouse.client.memory import AsyncMemoryClient, trace_filter
from lakehouse.memory.v1 import memory_service_pb2 as pb


def memory_client(c: Clients) -> AsyncMemoryClient:
    """The memory service's client over the command's channel, with its --token and --timeout."""
    timeout_s = click.get_current_context().params.get("timeout_s", 30.0)
    return AsyncMemoryClient(c.channel, timeout_s=timeout_s, metadata=token_metadata(c.token))


def _pairs(_ctx: click.Context, _param: click.Parameter, items: tuple[str, ...]) -> dict[str, str]:
    """--meta KEY=VALUE, repeatable."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        found[key] = value
    return found


def _clip(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state(t: pb.Trace) -> str:
    if t.retired:
        return "retired"
    return "superseded" if t.revised_by_id else "active"


def _print_trace(t: pb.Trace, title: str = "") -> None:
    output.fields(
        title or f"trace {t.id}",
        [
            ("namespace", t.namespace),
            ("content", t.content),
            ("version", t.version),
            ("state", _state(t) + (f" ({t.retire_reason})" if t.retired else "")),
            ("replays", t.replay_count),
            ("tags", ", ".join(t.tags) or "-"),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(t.metadata.items())) or "-"),
            ("revises", t.revises_id or "-"),
            ("revised by", t.revised_by_id or "-"),
            ("idempotency key", t.idempotency_key or "-"),
            ("created", output.when(t.create_time)),
            ("updated", output.when(t.update_time)),
        ],
    )


def _trace_rows(traces: list[pb.Trace]) -> list[tuple[object, ...]]:
    return [(t.id, t.version, _state(t), t.replay_count, ", ".join(t.tags) or "-", _clip(t.content)) for t in traces]


TRACE_COLUMNS = ["id", "version", "state", "replays", "tags", "content"]

# -- lakehouse memory ------------------------------------------------------------------------------


@click.group()
def memory() -> None:
    """Agent memory traces: remember, revise, retire, search and forget."""


@memory.command("add")
@click.argument("namespace")
@click.argument("content")
@click.option("--tag", "tags", multiple=True, help="Tag; repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Metadata KEY=VALUE; repeatable.")
@click.option("--key", "idempotency_key", default="", help="Idempotency key: a repeat replays the trace.")
@click.option("--idempotent", is_flag=True, help="Adding the same content again replays the trace.")
@client_command
async def memory_add(
    c: Clients,
    namespace: str,
    content: str,
    tags: tuple[str, ...],
    metadata: dict[str, str],
    idempotency_key: str,
    idempotent: bool,
) -> None:
    """Remember CONTENT in NAMESPACE."""
    added = await memory_client(c).add_trace(
        namespace, content, metadata=metadata, tags=tags, idempotency_key=idempotency_key, idempotent=idempotent
    )
    _print_trace(added.trace, f"{'replayed' if added.replayed else 'added'} trace {added.trace.id}")


@memory.command("get")
@click.argument("namespace")
@click.argument("trace_id")
@client_command
async def memory_get(c: Clients, namespace: str, trace_id: str) -> None:
    """Show one trace."""
    _print_trace(await memory_client(c).get_trace(namespace, trace_id))


@memory.command("list")
@click.argument("namespace")
@click.option("--tag", "tags", multiple=True, help="Only traces with this tag; repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Only traces with KEY=VALUE; repeatable.")
@click.option("--retired", "include_retired", is_flag=True, help="Include retired traces.")
@click.option("--superseded", "include_superseded", is_flag=True, help="Include revised (superseded) traces.")
@click.option("--limit", type=int, default=50, show_default=True)
@client_command
async def memory_list(
    c: Clients,
    namespace: str,
    tags: tuple[str, ...],
    metadata: dict[str, str],
    include_retired: bool,
    include_superseded: bool,
    limit: int,
) -> None:
    """List a namespace's traces, newest first."""
    found = await memory_client(c).list_traces(
        namespace,
        filter=trace_filter(tags=tags, metadata=metadata),
        include_retired=include_retired,
        include_superseded=include_superseded,
        page_size=limit,
    )
    output.table(f"traces in {namespace}", TRACE_COLUMNS, _trace_rows(list(found.traces)))


@memory.command("update")
@click.argument("namespace")
@click.argument("trace_id")
@click.option("--content", default=None, help="New content (re-embedded).")
@click.option("--tag", "tags", multiple=True, help="Replace the tags; repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Replace the metadata; repeatable.")
@click.option("--expect-version", "expected_version", type=int, default=None, help="Fail unless at this version.")
@client_command
async def memory_update(
    c: Clients,
    namespace: str,
    trace_id: str,
    content: str | None,
    tags: tuple[str, ...],
    metadata: dict[str, str],
    expected_version: int | None,
) -> None:
    """Change a trace in place (a new version; the old content is not kept)."""
    updated = await memory_client(c).update_trace(
        namespace,
        trace_id,
        content=content,
        tags=tags or None,
        metadata=metadata or None,
        expected_version=expected_version,
    )
    _print_trace(updated, f"updated trace {updated.id} to version {updated.version}")


@memory.command("revise")
@click.argument("namespace")
@click.argument("trace_id")
@click.argument("content")
@click.option("--tag", "tags", multiple=True, help="Tag added to the inherited ones; repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Metadata set over the inherited; repeatable.")
@client_command
async def memory_revise(
    c: Clients, namespace: str, trace_id: str, content: str, tags: tuple[str, ...], metadata: dict[str, str]
) -> None:
    """Revise a trace: a new trace linked to TRACE_ID, which keeps its content."""
    revised = await memory_client(c).revise_trace(namespace, trace_id, content, metadata=metadata, tags=tags)
    _print_trace(revised.trace, f"trace {revised.trace.id} revises {trace_id}")


@memory.command("retire")
@click.argument("namespace")
@click.argument("trace_id")
@click.option("--reason", required=True, help="Why the trace is retired.")
@client_command
async def memory_retire(c: Clients, namespace: str, trace_id: str, reason: str) -> None:
    """Hide a trace from search (it stays readable)."""
    retired = await memory_client(c).retire_trace(namespace, trace_id, reason)
    output.console.print(f"retired trace {retired.id}: {retired.retire_reason}")


@memory.command("history")
@click.argument("namespace")
@click.argument("trace_id")
@click.option("--depth", "max_depth", type=int, default=0, help="Most traces to show (default 100).")
@client_command
async def memory_history(c: Clients, namespace: str, trace_id: str, max_depth: int) -> None:
    """Walk a trace's revision chain back to its start."""
    found = await memory_client(c).get_trace_history(namespace, trace_id, max_depth=max_depth)
    title = f"history of {trace_id}" + (" (truncated)" if found.truncated else "")
    output.table(title, TRACE_COLUMNS, _trace_rows(list(found.traces)))


@memory.command("search")
@click.argument("query")
@click.option("--namespace", "namespaces", multiple=True, help="Namespace to search; repeatable (default: all).")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Hits to return.")
@click.option("--tag", "tags", multiple=True, help="Only traces with this tag; repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Only traces with KEY=VALUE; repeatable.")
@click.option("--retired", "include_retired", is_flag=True, help="Include retired traces.")
@click.option("--superseded", "include_superseded", is_flag=True, help="Include revised (superseded) traces.")
@click.option("--max-distance", type=float, default=None, help="Drop hits farther than this.")
@client_command
async def memory_search(
    c: Clients,
    query: str,
    namespaces: tuple[str, ...],
    k: int,
    tags: tuple[str, ...],
    metadata: dict[str, str],
    include_retired: bool,
    include_superseded: bool,
    max_distance: float | None,
) -> None:
    """Find traces by the meaning of QUERY."""
    hits = await memory_client(c).search_traces(
        query,
        namespaces=namespaces,
        k=k,
        filter=trace_filter(tags=tags, metadata=metadata),
        include_retired=include_retired,
        include_superseded=include_superseded,
        max_distance=max_distance,
    )
    rows = [
        (
            rank,
            f"{h.distance:.4f}",
            h.trace.namespace,
            h.trace.id,
            h.trace.version,
            _state(h.trace),
            h.trace.replay_count,
            _clip(h.trace.content),
        )
        for rank, h in enumerate(hits, 1)
    ]
    columns = ["#", "distance", "namespace", "id", "version", "state", "replays", "content"]
    output.table(f"memories for {query!r}", columns, rows)


@memory.command("forget")
@click.argument("namespace")
@click.argument("trace_ids", nargs=-1)
@click.option("--tag", "tags", multiple=True, help="Forget the traces with this tag (instead of ids); repeatable.")
@click.option("--meta", "metadata", multiple=True, callback=_pairs, help="Forget the traces with KEY=VALUE.")
@click.option("--reason", required=True, help="Why; kept in the receipt.")
@click.option("--dry-run", is_flag=True, help="Count what would be forgotten; delete nothing.")
@client_command
async def memory_forget(
    c: Clients,
    namespace: str,
    trace_ids: tuple[str, ...],
    tags: tuple[str, ...],
    metadata: dict[str, str],
    reason: str,
    dry_run: bool,
) -> None:
    """Hard-delete traces (by id, or by --tag/--meta) with their revision chains and vectors."""
    if bool(trace_ids) == bool(tags or metadata):
        raise click.UsageError("give trace ids, or --tag/--meta, not both")
    client = memory_client(c)
    if trace_ids:
        receipt = await client.forget_traces(namespace, trace_ids, reason=reason, dry_run=dry_run)
    else:
        where = trace_filter(tags=tags, metadata=metadata)
        receipt = await client.forget_matching(namespace, where, reason=reason, dry_run=dry_run)
    _print_receipt(receipt)


def _print_receipt(r: pb.ForgetReceipt) -> None:
    output.fields(
        f"forget receipt {r.id}" + (" (dry run)" if r.dry_run else ""),
        [
            ("actor", r.actor),
            ("reason", r.reason),
            ("matched", r.traces_matched),
            ("not found", r.traces_not_found),
            ("traces deleted", r.traces_deleted),
            ("vectors deleted", r.vectors_deleted),
            ("namespaces", ", ".join(f"{n.namespace} ({n.traces_deleted})" for n in r.namespaces) or "-"),
            ("completed", output.when(r.complete_time)),
        ],
    )


@memory.command("reindex")
@click.argument("namespaces", nargs=-1)
@click.option(
    "--full", is_flag=True, help="Re-embed every trace (after a model change); default: only what is missing."
)
@client_command
async def memory_reindex(c: Clients, namespaces: tuple[str, ...], full: bool) -> None:
    """Rebuild the vectors of NAMESPACES (default: all) from the stored text (admins only)."""
    summary = await memory_client(c).reindex_summary(namespaces, full=full, timeout_s=3600)
    output.fields(
        "reindexed",
        [
            ("namespaces", ", ".join(summary.namespaces) or "-"),
            ("traces scanned", f"{summary.traces_scanned:,}"),
            ("vectors written", f"{summary.vectors_written:,}"),
            ("orphan vectors removed", f"{summary.orphan_vectors_removed:,}"),
            ("collections created", summary.collections_created),
            ("elapsed", f"{summary.elapsed.ToNanoseconds() / 1e9:.2f} s"),
        ],
    )


# -- lakehouse playbook ----------------------------------------------------------------------------


def _entry_row(e: pb.PlaybookEntry) -> tuple[object, ...]:
    return (e.id, _clip(e.query, 60), f"{e.answer_collection}/{e.answer_id}", f"{e.score:.2f}", e.role or "-")


ENTRY_COLUMNS = ["id", "query", "answer", "score", "role"]


@click.group()
def playbook() -> None:
    """The playbook: answers that worked, boosted in searches with the playbook on."""


@playbook.command("record")
@click.argument("namespace")
@click.argument("query")
@click.argument("answer", metavar="COLLECTION/ID")
@click.option("--score", type=float, required=True, help="How well the answer worked, 0 to 1.")
@click.option("--role", default="", help="Role the answer applies to.")
@click.option("--tag", "tags", multiple=True, help="Tag; repeatable.")
@client_command
async def playbook_record(
    c: Clients, namespace: str, query: str, answer: str, score: float, role: str, tags: tuple[str, ...]
) -> None:
    """Record that ANSWER (COLLECTION/ID) worked for QUERY."""
    collection, sep, answer_id = answer.partition("/")
    if not sep:
        raise click.BadParameter("expected COLLECTION/ID", param_hint="ANSWER")
    recorded = await memory_client(c).record_playbook(
        namespace, query, collection, answer_id, score, role=role, tags=tags
    )
    verb = "recorded" if recorded.created else "updated"
    output.table(f"{verb} playbook entry", ENTRY_COLUMNS, [_entry_row(recorded.entry)])


@playbook.command("lookup")
@click.argument("namespace")
@click.argument("query")
@click.option("--role", default="", help="Role of the asker.")
@click.option("--max-distance", type=float, default=None, help="Farthest recorded query (default 0.5).")
@click.option("-k", "k", type=int, default=10, show_default=True)
@client_command
async def playbook_lookup(
    c: Clients, namespace: str, query: str, role: str, max_distance: float | None, k: int
) -> None:
    """Recorded answers whose query is close to QUERY."""
    matches = await memory_client(c).lookup_playbook(namespace, text=query, role=role, max_distance=max_distance, k=k)
    rows = [(f"{m.distance:.4f}", *_entry_row(m.entry)) for m in matches]
    output.table(f"playbook matches for {query!r}", ["distance", *ENTRY_COLUMNS], rows)


@playbook.command("list")
@click.argument("namespace")
@click.option("--role", default=None, help="Only entries of this role.")
@click.option("--collection", "answer_collection", default="", help="Only answers in this collection.")
@click.option("--limit", type=int, default=50, show_default=True)
@client_command
async def playbook_list(c: Clients, namespace: str, role: str | None, answer_collection: str, limit: int) -> None:
    """List a namespace's playbook entries, most recent first."""
    found = await memory_client(c).list_playbook(
        namespace, role=role, answer_collection=answer_collection, page_size=limit
    )
    output.table(f"playbook of {namespace}", ENTRY_COLUMNS, [_entry_row(e) for e in found.entries])


@playbook.command("delete")
@click.argument("namespace")
@click.argument("entry_id")
@client_command
async def playbook_delete(c: Clients, namespace: str, entry_id: str) -> None:
    """Delete a playbook entry: its answer stops being boosted."""
    await memory_client(c).delete_playbook_entry(namespace, entry_id)
    output.console.print(f"deleted playbook entry {entry_id}")


COMMANDS = (memory, playbook)
