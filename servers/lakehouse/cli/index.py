"""Indexing commands: embed a dataset into a collection, its index status, and recall of its index."""

from __future__ import annotations

import time

import click
from google.protobuf import duration_pb2
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.cli.vectors import vector_client
from lakehouse.client.vector import search_params
from lakehouse.common.v1 import progress_pb2, refs_pb2
from lakehouse.vector.v1 import vector_service_pb2 as pb

PLAIN_PROGRESS_EVERY_S = 5.0
STAGES = {
    "reading": "reading rows",
    "embedding": "embedding",
    "removing": "removing gone rows",
    "flushing": "flushing",
}


def _seconds(duration: duration_pb2.Duration) -> float:
    return duration.ToNanoseconds() / 1e9


def _print_summary(s: pb.IndexSummary) -> None:
    elapsed = _seconds(s.elapsed)
    rate = f" ({s.rows_embedded / elapsed:,.0f} rows/s embedded)" if s.rows_embedded and elapsed > 0 else ""
    output.console.print(
        f"indexed {s.dataset} version {s.dataset_version} into {s.collection}: {s.rows_read:,} rows read, "
        f"{s.rows_embedded:,} embedded, {s.rows_unchanged:,} unchanged, {s.rows_removed:,} removed "
        f"in {elapsed:.2f} s{rate}"
    )
    output.fields(
        f"index run of {s.collection}",
        [
            ("dataset", s.dataset),
            ("version", s.dataset_version),
            ("rows read", f"{s.rows_read:,}"),
            ("rows embedded", f"{s.rows_embedded:,}"),
            ("rows unchanged", f"{s.rows_unchanged:,}"),
            ("rows removed", f"{s.rows_removed:,}"),
            ("vectors upserted", f"{s.vectors_upserted:,}"),
            ("elapsed", f"{elapsed:.2f} s"),
        ],
    )


class _Reporter:
    """Progress on stderr: a live bar on a terminal, else one line per stage and every few seconds."""

    def __init__(self) -> None:
        self._live = output.errors.is_terminal
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=output.errors,
            transient=True,
        )
        self._task = self._bar.add_task(STAGES["reading"], total=None)
        self._stage = ""
        self._printed = 0.0

    def __enter__(self) -> _Reporter:
        if self._live:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._bar.stop()

    def __call__(self, p: progress_pb2.Progress) -> None:
        stage = STAGES.get(p.stage, p.stage)
        if self._live:
            self._bar.update(self._task, description=stage, completed=p.rows_done, total=p.rows_total or None)
            return
        now = time.monotonic()
        if p.stage != self._stage or now - self._printed >= PLAIN_PROGRESS_EVERY_S:
            self._stage, self._printed = p.stage, now
            total = f" of {p.rows_total:,}" if p.rows_total else ""
            output.errors.print(f"{stage}: {p.rows_done:,}{total} rows", highlight=False, markup=False)


@click.command("index")
@click.argument("dataset")
@click.option("--collection", required=True, help="Collection to write; created when missing.")
@click.option("--id-column", required=True, help="Column holding each row's unique key.")
@click.option(
    "--text-column",
    "text_columns",
    multiple=True,
    required=True,
    help="Column to embed; repeatable (joined with newlines in order).",
)
@click.option(
    "--metadata-column", "metadata_columns", multiple=True, help="Column copied into each vector; repeatable."
)
@click.option("--version", type=int, default=None, help="Dataset version to read (default: the current one).")
@click.option(
    "--max-tokens",
    type=int,
    default=0,
    show_default=True,
    help="Split texts into chunks of this many tokens (0: no splitting).",
)
@click.option("--overlap", type=int, default=0, show_default=True, help="Tokens shared by consecutive chunks.")
@click.option("--full", is_flag=True, help="Re-embed every row instead of only new and changed ones.")
@client_command
async def index(
    c: Clients,
    dataset: str,
    collection: str,
    id_column: str,
    text_columns: tuple[str, ...],
    metadata_columns: tuple[str, ...],
    version: int | None,
    max_tokens: int,
    overlap: int,
    full: bool,
) -> None:
    """Embed the text of DATASET (a dataset or view) into a collection, with progress.

    Re-running embeds only rows that are new or whose text changed, and removes the vectors of
    rows that are gone.
    """
    source = refs_pb2.DatasetRef(dataset=dataset)
    if version is not None:
        source.version = version
    request = pb.IndexDatasetRequest(
        source=source,
        id_column=id_column,
        text_columns=list(text_columns),
        metadata_columns=list(metadata_columns),
        collection=collection,
        incremental=not full,
    )
    if max_tokens or overlap:
        request.chunking.CopyFrom(pb.Chunking(max_tokens=max_tokens, overlap_tokens=overlap))
    summary = None
    with _Reporter() as report:
        async for event in vector_client(c).index_dataset_events(request):
            if event.HasField("summary"):
                summary = event.summary
            else:
                report(event.progress)
    if summary is None:
        raise click.ClickException("the index stream ended without a summary; run the command again")
    _print_summary(summary)


@click.command("index-status")
@click.argument("collection")
@client_command
async def index_status(c: Clients, collection: str) -> None:
    """Show how COLLECTION was indexed and whether its dataset has moved on since."""
    s = await vector_client(c).get_index_status(collection)
    state = pb.IndexRunState.Name(s.state).removeprefix("INDEX_RUN_STATE_").lower()
    progress = "-"
    if s.HasField("progress"):
        total = f" of {s.progress.rows_total:,}" if s.progress.rows_total else ""
        progress = f"{STAGES.get(s.progress.stage, s.progress.stage)}: {s.progress.rows_done:,}{total} rows"
    output.fields(
        f"index status of {s.collection}",
        [
            ("dataset", s.dataset),
            ("id column", s.id_column),
            ("text columns", ", ".join(s.text_columns)),
            ("state", state),
            ("progress", progress),
            ("rows embedded", f"{s.rows_embedded:,}"),
            ("covered version", s.covered_version),
            ("current version", s.current_version or "-"),
            ("stale", "yes" if s.stale else "no"),
            ("last indexed", output.when(s.last_indexed_time)),
            ("last error", s.last_error or "-"),
        ],
    )


@click.command("recall")
@click.argument("collection")
@click.option("--sample", "sample_size", type=int, default=100, show_default=True, help="Query vectors sampled.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Neighbours compared per query.")
@click.option("--ef", type=int, default=None, help="HNSW search list size.")
@click.option("--nprobe", type=int, default=None, help="IVF clusters probed.")
@click.option("--seed", type=int, default=None, help="Seed of the sample, to repeat a run.")
@client_command
async def recall(
    c: Clients, collection: str, sample_size: int, k: int, ef: int | None, nprobe: int | None, seed: int | None
) -> None:
    """Measure recall@k of COLLECTION's index against exact search, with search latency."""
    params = search_params(ef=ef, nprobe=nprobe) if ef is not None or nprobe is not None else None
    # Exact search reads every vector: give it far longer than one call's default.
    timeout_s = max(click.get_current_context().params.get("timeout_s", 30.0), 600.0)
    r = await vector_client(c).evaluate_recall(
        collection, sample_size=sample_size, k=k, params=params, seed=seed, timeout_s=timeout_s
    )
    output.fields(
        f"recall of {collection}",
        [
            ("index", pb.IndexType.Name(r.index_type).removeprefix("INDEX_TYPE_").lower()),
            (f"recall@{r.k}", f"{r.recall_at_k:.4f}"),
            ("queries", f"{r.sample_size:,}"),
            ("latency p50", f"{_seconds(r.latency_p50) * 1000:.2f} ms"),
            ("latency p95", f"{_seconds(r.latency_p95) * 1000:.2f} ms"),
            ("seed", r.seed),
        ],
    )


COMMANDS = (index, index_status, recall)
