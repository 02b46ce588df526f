"""IndexDataset, GetIndexStatus and EvaluateRecall as plain Python. No grpc here.

Indexing reads a dataset or view through the query service as the caller (so profiles, views and
tombstones apply, and redacted text is never embedded), embeds the text of each row, and upserts
one vector per row, or per chunk when chunking is on, with the row's key, the dataset version
and a SHA-256 of the text. A re-run embeds only rows whose key is new or whose text (or copied
metadata) changed, and deletes the vectors of rows that are gone.

The rows are first copied to a local Arrow spool file: Flight drains at gigabytes per second,
so the query service's engine slot and Flight stream are released at once instead of staying
open (under the stream time limit) while the embedder works through the rows on the CPU; the
spool is read back batch by batch through a memory map, never whole.

What a collection was indexed from, and how its last run went, is kept in a small JSON file per
collection under <data_dir>/vector/index-state, replaced atomically, so status survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.server.common.config import Config
from lakehouse.server.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    invalid_field,
)
from lakehouse.server.common.names import MAX_SHORT_TEXT
from lakehouse.server.vector.gateways import (
    RESERVED_FIELDS,
    Catalog,
    CollectionInfo,
    CollectionSpec,
    Embedder,
    FieldKind,
    Hit,
    Query,
    Record,
    Scalar,
    ScalarFieldSpec,
    SourceTable,
    VectorBackend,
)

log = logging.getLogger("lakehouse.vector.index")

COLLECTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")
MAX_SAMPLE = 10_000
DEFAULT_SAMPLE = 100
DEFAULT_K = 10
# Keys per delete filter, so one expression stays a modest size.
KEYS_PER_DELETE = 1000
# Texts per embed call: the embedder micro-batches them; this only bounds one call's memory.
TEXTS_PER_EMBED = 1024
# Progress is written to the state file at most this often while a run goes on.
STATE_SAVE_INTERVAL_S = 2.0
# Vectors read per batch when scanning a collection.
SCAN_BATCH = 1000
# The text stored with a vector is a Milvus VARCHAR of at most this many bytes.
MAX_STORED_TEXT_BYTES = 65535
INTERRUPTED = "the run was interrupted before it completed (the server stopped); run IndexDataset again to finish it"
CANCELLED = "the run was cancelled before it completed; vectors already written stay and a re-run continues from them"
SOURCE_FIELDS = ("source_dataset", "source_version", "source_key", "chunk_index", "content_sha256")

RunState = Literal["IDLE", "RUNNING", "FAILED"]


class IndexBackend(VectorBackend, Protocol):
    """The vector backend with the two calls indexing needs beyond the protocol."""

    def scan(
        self, name: str, *, fields: Sequence[str] = (), filter: str = "", with_vectors: bool = False, batch_size: int
    ) -> AsyncIterator[list[Record]]:
        """Every record matching `filter`, in batches of at most `batch_size`."""
        ...

    async def update_collection(
        self, name: str, *, embedder_model: str | None = None, source_dataset: str | None = None
    ) -> CollectionSpec:
        """Records the model a collection holds vectors of and the dataset it is indexed from."""
        ...


# -- requests and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunking:
    """How long texts are split before embedding."""

    max_tokens: int = 0
    """Most model tokens per chunk; 0 means no splitting (the embedder truncates long texts)."""
    overlap_tokens: int = 0
    """Tokens shared by consecutive chunks; smaller than `max_tokens`."""


@dataclass(frozen=True)
class IndexRequest:
    """One IndexDataset run."""

    dataset: str
    """Dataset or view to read, by its SQL name."""
    id_column: str
    """Column holding the row key, unique per row."""
    text_columns: tuple[str, ...]
    """Columns embedded, joined with newlines in this order."""
    collection: str
    """Target collection; created when missing."""
    version: int | None = None
    """Dataset version to read; None reads the current one."""
    metadata_columns: tuple[str, ...] = ()
    """Columns copied into every vector's metadata."""
    chunking: Chunking | None = None
    """None (or max_tokens 0): one vector per row."""
    incremental: bool = True
    """Embed only new or changed rows and delete vectors of rows that are gone."""

    @property
    def chunked(self) -> bool:
        return self.chunking is not None and self.chunking.max_tokens > 0


@dataclass(frozen=True)
class IndexProgress:
    """How far a run has got."""

    stage: str
    """ "reading", "embedding", "removing" or "flushing"."""
    rows_done: int
    """Rows read (while reading) or processed (afterwards) so far."""
    rows_total: int
    """Rows to process; 0 while still unknown."""
    elapsed_s: float
    """Seconds since the run started."""


@dataclass(frozen=True)
class IndexSummary:
    """Outcome of a completed run."""

    collection: str
    dataset: str
    dataset_version: int
    """Version the collection now covers (for a view, its base dataset's version)."""
    rows_read: int
    rows_embedded: int
    """Rows embedded because they were new or changed."""
    rows_unchanged: int
    rows_removed: int
    """Rows whose vectors were deleted because the row is gone from the source."""
    vectors_upserted: int
    elapsed_s: float


IndexEvent = IndexProgress | IndexSummary


@dataclass(frozen=True)
class IndexStatus:
    """A collection's indexing state as GetIndexStatus reports it."""

    collection: str
    dataset: str
    id_column: str
    text_columns: tuple[str, ...]
    state: RunState
    progress: IndexProgress | None
    """The run in progress; None when none is running."""
    rows_embedded: int
    """Source rows with vectors after the last completed run."""
    covered_version: int
    current_version: int
    """The source's current version; 0 when it cannot be read now (gone, or not readable by the caller)."""
    stale: bool
    last_indexed_time: datetime | None
    last_error: str


@dataclass(frozen=True)
class RecallReport:
    """EvaluateRecall's measurement."""

    recall_at_k: float
    k: int
    sample_size: int
    latency_p50_s: float
    latency_p95_s: float
    index_type: str
    seed: int


# -- persisted state -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexState:
    """What is kept per collection between runs and across restarts."""

    collection: str
    collection_created: str
    """ISO time the collection was created, as the backend reports it: a collection dropped and
    made again under the same name is another collection, and this state is not its own."""
    dataset: str
    base_dataset: str
    id_column: str
    text_columns: tuple[str, ...]
    metadata_columns: tuple[str, ...]
    chunking: tuple[int, int] | None
    """(max_tokens, overlap_tokens) of the last run, None when it did not chunk."""
    model: str
    run: RunState = "IDLE"
    stage: str = ""
    rows_done: int = 0
    rows_total: int = 0
    run_started: str = ""
    covered_version: int = 0
    rows_embedded: int = 0
    last_indexed_time: str = ""
    last_error: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IndexState:
        raw = json.loads(text)
        raw["text_columns"] = tuple(raw["text_columns"])
        raw["metadata_columns"] = tuple(raw["metadata_columns"])
        raw["chunking"] = tuple(raw["chunking"]) if raw.get("chunking") else None
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


class IndexStates:
    """One JSON file per collection, written to a temporary file and renamed over the old one."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def path(self, collection: str) -> Path:
        return self._dir / f"{collection}.json"

    def load(self, collection: str) -> IndexState | None:
        try:
            return IndexState.from_json(self.path(collection).read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            log.warning("index state of %s is unreadable; treating the collection as not indexed", collection)
            return None

    def save(self, state: IndexState) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        target = self.path(state.collection)
        draft = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        with draft.open("w") as out:
            out.write(state.to_json())
            out.flush()
            os.fsync(out.fileno())
        os.replace(draft, target)

    def delete(self, collection: str) -> None:
        self.path(collection).unlink(missing_ok=True)


# -- the indexer -----------------------------------------------------------------------------------


class _Run:
    """A run in progress in this process: live progress for GetIndexStatus."""

    def __init__(self, request: IndexRequest) -> None:
        self.request = request
        self.started = time.perf_counter()
        self.stage = "reading"
        self.rows_done = 0
        self.rows_total = 0
        self.saved_at = 0.0

    def progress(self) -> IndexProgress:
        return IndexProgress(self.stage, self.rows_done, self.rows_total, time.perf_counter() - self.started)


@dataclass
class _Counts:
    rows_read: int = 0
    embedded: int = 0
    unchanged: int = 0
    removed: int = 0
    upserted: int = 0


@dataclass(frozen=True)
class _Spooled:
    path: Path
    rows: int
    version: int
    keys: frozenset[str]


@dataclass(frozen=True)
class _Plan:
    """Everything a run decided before writing: the source, the collection, how rows compare."""

    request: IndexRequest
    source: SourceTable
    full: bool
    """Re-embed every row (not incremental, or chunking or metadata columns changed)."""
    converters: Mapping[str, Callable[[Any], Scalar]] = field(default_factory=dict)


class Indexer:
    """Runs IndexDataset, reports GetIndexStatus and measures EvaluateRecall."""

    def __init__(
        self, config: Config, embedder: Embedder, backend: IndexBackend, query: Query, catalog: Catalog
    ) -> None:
        self._config = config
        self._embedder = embedder
        self._backend = backend
        self._query = query
        self._catalog = catalog
        self._states = IndexStates(config.data_dir / "vector" / "index-state")
        self._spool_dir = config.data_dir / "vector" / "index-spool"
        self._runs: dict[str, _Run] = {}
        _sweep(self._spool_dir)  # spools of runs a stopped server left behind

    def running(self, collection: str) -> bool:
        """Whether an IndexDataset run is writing to `collection` in this process."""
        return collection in self._runs

    async def forget(self, collection: str) -> None:
        """Drops the index state of a deleted collection."""
        await asyncio.to_thread(self._states.delete, collection)

    # -- IndexDataset ------------------------------------------------------------------------------

    async def index(self, request: IndexRequest) -> AsyncGenerator[IndexEvent, None]:
        """Progress events, then one summary. Raises domain errors; cancelling stops the run and
        leaves the vectors already written."""
        _check_request(request)
        if request.collection in self._runs:
            raise FailedPrecondition(
                f"an IndexDataset run is already writing to collection {request.collection!r}; wait for it to finish",
                reason="INDEX_RUNNING",
                metadata={"collection": request.collection},
            )
        run = _Run(request)
        self._runs[request.collection] = run
        try:
            await self._embedder_ready()
            self._check_chunking(request)
            # aclosing: a caller that stops listening closes the run here and now, so it is
            # recorded as cancelled before the collection is free again.
            async with contextlib.aclosing(self._index(request, run)) as events:
                async for event in events:
                    yield event
        finally:
            del self._runs[request.collection]

    async def _index(self, request: IndexRequest, run: _Run) -> AsyncGenerator[IndexEvent, None]:
        source = await self._query.describe(request.dataset)
        _check_columns(request, source.schema)
        info = await self._collection_or_none(request.collection)
        state = await self._own_state(request.collection, info)
        self._check_target(request, source, info, state)
        plan = _Plan(
            request,
            source,
            full=(
                not request.incremental
                or state is None
                or state.chunking != _chunking_key(request)
                or state.metadata_columns != request.metadata_columns
            ),
            converters={c: _converter(source.schema.field(c).type) for c in request.metadata_columns},
        )
        counts = _Counts()
        spool_path = self._spool_dir / f"{request.collection}-{uuid.uuid4().hex}.arrow"
        try:
            spooled = None
            async with contextlib.aclosing(self._spool(plan, run, spool_path)) as reading:
                async for event in reading:
                    if isinstance(event, _Spooled):
                        spooled = event
                    else:
                        yield event
            assert spooled is not None
            counts.rows_read = spooled.rows
            info = await self._claim_collection(plan, info)
            state = await self._begin(plan, info, state, run)
            try:
                # Registered before any vector is written, so a hard erasure reaches every vector
                # even if this run stops half way.
                await self._catalog.register_derivation(
                    source.base_dataset, request.collection, request.id_column, state.covered_version
                )
                run.stage, run.rows_done, run.rows_total = "embedding", 0, spooled.rows
                async with contextlib.aclosing(self._embed_rows(plan, spooled, run, state, counts)) as embedding:
                    async for event in embedding:
                        yield event
                run.stage = "removing"
                yield run.progress()
                counts.removed = await self._remove_gone(plan, spooled.keys)
                run.stage = "flushing"
                yield run.progress()
                await self._backend.flush(request.collection)
                await self._catalog.register_derivation(
                    source.base_dataset, request.collection, request.id_column, spooled.version
                )
            except BaseException as exc:
                self._failed(state, run, exc)
                raise
            now = datetime.now(UTC)
            done = replace(
                state,
                run="IDLE",
                stage="",
                rows_done=run.rows_done,
                covered_version=spooled.version,
                rows_embedded=spooled.rows,
                last_indexed_time=now.isoformat(),
                last_error="",
            )
            await asyncio.to_thread(self._states.save, done)
            elapsed = time.perf_counter() - run.started
            log.info(
                "indexed %s into %s: %d rows read, %d embedded, %d unchanged, %d removed in %.2f s",
                request.dataset,
                request.collection,
                counts.rows_read,
                counts.embedded,
                counts.unchanged,
                counts.removed,
                elapsed,
            )
            yield IndexSummary(
                collection=request.collection,
                dataset=request.dataset,
                dataset_version=spooled.version,
                rows_read=counts.rows_read,
                rows_embedded=counts.embedded,
                rows_unchanged=counts.unchanged,
                rows_removed=counts.removed,
                vectors_upserted=counts.upserted,
                elapsed_s=elapsed,
            )
        finally:
            spool_path.unlink(missing_ok=True)

    async def _embedder_ready(self) -> None:
        """Waits for an embedder that is still loading (EMBEDDER_UNAVAILABLE when it cannot load)."""
        ready = getattr(self._embedder, "ready", None)
        if ready is not None:
            await ready()

    def _check_chunking(self, request: IndexRequest) -> None:
        chunking = request.chunking
        if chunking is None:
            return
        problem = ""
        if chunking.max_tokens < 0 or chunking.overlap_tokens < 0:
            problem = "max_tokens and overlap_tokens must not be negative"
        elif chunking.overlap_tokens >= chunking.max_tokens and (chunking.max_tokens or chunking.overlap_tokens):
            problem = (
                f"overlap_tokens ({chunking.overlap_tokens}) must be smaller than max_tokens ({chunking.max_tokens})"
            )
        elif chunking.max_tokens:
            try:  # the embedder knows how many tokens a window loses to special tokens
                self._embedder.chunks("probe", chunking.max_tokens, chunking.overlap_tokens)
            except ValueError as exc:
                problem = str(exc)
        if problem:
            raise InvalidArgument(
                f"chunking: {problem}",
                reason="INVALID_CHUNKING",
                violations=[FieldViolation("chunking", problem)],
            )

    async def _collection_or_none(self, name: str) -> CollectionInfo | None:
        try:
            return await self._backend.describe_collection(name)
        except NotFound as exc:
            if exc.reason == "COLLECTION_NOT_FOUND":
                return None
            raise

    async def _own_state(self, collection: str, info: CollectionInfo | None) -> IndexState | None:
        """The stored state when it belongs to this incarnation of the collection."""
        state = await asyncio.to_thread(self._states.load, collection)
        if state is None or info is None:
            return None
        created = info.create_time.isoformat() if info.create_time else ""
        if state.collection_created and created and state.collection_created != created:
            return None
        return state

    def _check_target(
        self, request: IndexRequest, source: SourceTable, info: CollectionInfo | None, state: IndexState | None
    ) -> None:
        indexed_from = state.dataset if state else (info.spec.source_dataset if info else "")
        if indexed_from and indexed_from != request.dataset:
            raise FailedPrecondition(
                f"collection {request.collection!r} is indexed from {indexed_from!r}, not {request.dataset!r}; "
                "index into another collection, or delete this one first",
                reason="COLLECTION_SOURCE_MISMATCH",
                metadata={"source_dataset": indexed_from},
            )
        if state and state.id_column != request.id_column:
            raise FailedPrecondition(
                f"collection {request.collection!r} is keyed by column {state.id_column!r}, not "
                f"{request.id_column!r}; index with id_column {state.id_column!r} or into another collection",
                reason="COLLECTION_SOURCE_MISMATCH",
                metadata={"id_column": state.id_column},
            )
        if info is None:
            return
        model = self._embedder.info
        spec = info.spec
        if (spec.embedder_model and spec.embedder_model != model.model) or spec.dimension != model.dimension:
            held = spec.embedder_model or "vectors from elsewhere"
            raise FailedPrecondition(
                f"collection {request.collection!r} holds {spec.dimension}-dimensional vectors of {held}; the "
                f"embedder runs {model.model} ({model.dimension} dimensions)",
                reason="EMBEDDER_MISMATCH",
                metadata={"collection_model": spec.embedder_model, "embedder_model": model.model},
            )

    async def _claim_collection(self, plan: _Plan, info: CollectionInfo | None) -> CollectionInfo:
        """The target collection, created when missing; one made beforehand (CreateCollection,
        for other settings) is marked as indexed from the dataset, with the embedder's model."""
        if info is None:
            return await self._create_collection(plan)
        spec = info.spec
        if spec.source_dataset and spec.embedder_model:
            return info
        updated = await self._backend.update_collection(
            spec.name,
            embedder_model=None if spec.embedder_model else self._embedder.info.model,
            source_dataset=None if spec.source_dataset else plan.request.dataset,
        )
        return replace(info, spec=updated)

    async def _create_collection(self, plan: _Plan) -> CollectionInfo:
        request, schema = plan.request, plan.source.schema
        model = self._embedder.info
        spec = CollectionSpec(
            name=request.collection,
            dimension=model.dimension,
            fields=tuple(ScalarFieldSpec(c, _field_kind(schema.field(c).type)) for c in request.metadata_columns),
            description=f"indexed from {request.dataset}",
            embedder_model=model.model,
            source_dataset=request.dataset,
        )
        return await self._backend.create_collection(spec)

    async def _begin(self, plan: _Plan, info: CollectionInfo, state: IndexState | None, run: _Run) -> IndexState:
        request = plan.request
        base = state or IndexState(
            collection=request.collection,
            collection_created=info.create_time.isoformat() if info.create_time else "",
            dataset=request.dataset,
            base_dataset=plan.source.base_dataset,
            id_column=request.id_column,
            text_columns=request.text_columns,
            metadata_columns=request.metadata_columns,
            chunking=_chunking_key(request),
            model=self._embedder.info.model,
        )
        begun = replace(
            base,
            base_dataset=plan.source.base_dataset,
            text_columns=request.text_columns,
            metadata_columns=request.metadata_columns,
            chunking=_chunking_key(request),
            model=self._embedder.info.model,
            run="RUNNING",
            stage=run.stage,
            rows_done=run.rows_done,
            rows_total=run.rows_total,
            run_started=datetime.now(UTC).isoformat(),
            last_error="",
        )
        await asyncio.to_thread(self._states.save, begun)
        return begun

    def _failed(self, state: IndexState, run: _Run, exc: BaseException) -> None:
        """Records a run that did not complete. Synchronous on purpose: it runs while the task is
        being cancelled, when awaiting anything more could be cancelled too."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            why = CANCELLED
        elif isinstance(exc, LakehouseError):
            why = f"{exc.reason}: {exc.message}"
        else:
            why = f"internal error ({type(exc).__name__}); see the server log"
        failed = replace(state, run="FAILED", stage=run.stage, rows_done=run.rows_done, last_error=why)
        try:
            self._states.save(failed)
        except OSError:
            log.exception("could not record the failed run of %s", state.collection)

    # reading

    async def _spool(self, plan: _Plan, run: _Run, path: Path) -> AsyncGenerator[IndexProgress | _Spooled, None]:
        """Copies the source rows to `path`, checking keys; yields progress, then the `_Spooled`."""
        request = plan.request
        columns = list(dict.fromkeys((request.id_column, *request.text_columns, *request.metadata_columns)))
        rows = await self._query.read(request.dataset, request.version, columns)
        keys: set[str] = set()
        writer: pa.ipc.RecordBatchFileWriter | None = None
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        try:
            async for batch in rows.batches:
                if writer is None:
                    writer = await asyncio.to_thread(pa.ipc.new_file, str(path), batch.schema)
                _collect_keys(batch.column(request.id_column), keys, request.id_column)
                await asyncio.to_thread(_write, writer, batch)
                run.rows_done += batch.num_rows
                yield run.progress()
        finally:
            close = getattr(rows.batches, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
            if writer is not None:
                await asyncio.to_thread(writer.close)
        yield _Spooled(path if writer is not None else Path(), run.rows_done, rows.version, frozenset(keys))

    # embedding

    async def _embed_rows(
        self, plan: _Plan, spooled: _Spooled, run: _Run, state: IndexState, counts: _Counts
    ) -> AsyncGenerator[IndexProgress, None]:
        if not spooled.rows:
            return
        step = self._config.vector.index_batch_rows
        reader = await asyncio.to_thread(_open_spool, spooled.path)
        for i in range(reader.num_record_batches):
            batch = await asyncio.to_thread(reader.get_batch, i)
            for start in range(0, batch.num_rows, step):
                await self._embed_slice(plan, batch.slice(start, step), spooled.version, counts)
                run.rows_done += min(step, batch.num_rows - start)
                await self._save_progress(state, run)
                yield run.progress()

    async def _embed_slice(self, plan: _Plan, rows: pa.RecordBatch, version: int, counts: _Counts) -> None:
        request = plan.request
        keys = _keys(rows.column(request.id_column))
        texts = _texts(rows, request.text_columns)
        hashes = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        metadata = _metadata(rows, plan.converters)
        first_ids = [_vector_id(k, 0, request.chunked) for k in keys]
        stored = {} if plan.full else await self._stored(request.collection, first_ids)
        base = plan.source.base_dataset
        changed = []
        for i, first in enumerate(first_ids):
            if plan.full or not _same(stored.get(first), base, hashes[i], metadata[i]):
                changed.append(i)
        counts.unchanged += len(keys) - len(changed)
        if not changed:
            return
        pieces = await self._pieces([texts[i] for i in changed], request)
        flat = [piece for row in pieces for piece in row]
        vectors = await self._embed(flat)
        records: list[Record] = []
        position = 0
        for row, i in zip(pieces, changed, strict=True):
            written: list[Record] = []
            for chunk, piece in enumerate(row):
                fields: dict[str, Scalar] = dict(metadata[i])
                fields.update(
                    source_dataset=base,
                    source_version=version,
                    source_key=keys[i],
                    chunk_index=chunk,
                    content_sha256=hashes[i],
                )
                vector_id = _vector_id(keys[i], chunk, request.chunked)
                written.append(Record(vector_id, vectors[position], _stored_text(piece), fields))
                position += 1
            # Chunk 0 last: a re-run judges a row by its first chunk, so once that is written with
            # the new hash the others are too, even when a run stops between two upsert calls.
            records.extend(reversed(written))
        limit = self._config.vector.max_batch
        for start in range(0, len(records), limit):
            counts.upserted += await self._backend.upsert(request.collection, records[start : start + limit])
        counts.embedded += len(changed)
        # Rows that had vectors before may have had more chunks, or ids of another chunking.
        rewritten = [i for i in changed if plan.full or first_ids[i] in stored]
        if rewritten:
            rewritten_keys = {keys[i] for i in rewritten}
            kept = [r.id for r in records if r.metadata["source_key"] in rewritten_keys]
            expression = (
                f"source_dataset == {_quoted(base)} and source_key in [{_joined(keys[i] for i in rewritten)}]"
                f" and id not in [{_joined(kept)}]"
            )
            await self._backend.delete(request.collection, filter=expression)

    async def _stored(self, collection: str, ids: Sequence[str]) -> dict[str, Record]:
        found: dict[str, Record] = {}
        limit = self._config.vector.max_batch
        for start in range(0, len(ids), limit):
            records = await self._backend.get(collection, ids[start : start + limit], with_vectors=False, fields=())
            found.update((r.id, r) for r in records)
        return found

    async def _pieces(self, texts: list[str], request: IndexRequest) -> list[list[str]]:
        if not request.chunked:
            return [[t] for t in texts]
        assert request.chunking is not None
        size, overlap = request.chunking.max_tokens, request.chunking.overlap_tokens

        def cut() -> list[list[str]]:
            return [self._embedder.chunks(t, size, overlap) or [t] for t in texts]

        return await asyncio.to_thread(cut)

    async def _embed(self, texts: list[str]) -> list[np.ndarray]:
        vectors: list[np.ndarray] = []
        for start in range(0, len(texts), TEXTS_PER_EMBED):
            vectors.extend((await self._embedder.embed(texts[start : start + TEXTS_PER_EMBED])).vectors)
        return vectors

    async def _save_progress(self, state: IndexState, run: _Run) -> None:
        now = time.monotonic()
        if now - run.saved_at >= STATE_SAVE_INTERVAL_S:
            run.saved_at = now
            progress = replace(state, stage=run.stage, rows_done=run.rows_done, rows_total=run.rows_total)
            await asyncio.to_thread(self._states.save, progress)

    # removing

    async def _remove_gone(self, plan: _Plan, present: frozenset[str]) -> int:
        """Deletes the vectors of rows no longer in the source; returns how many rows that was."""
        collection, base = plan.request.collection, plan.source.base_dataset
        gone: set[str] = set()
        scan = self._backend.scan(
            collection, fields=("source_key",), filter=f"source_dataset == {_quoted(base)}", batch_size=SCAN_BATCH
        )
        async for records in scan:
            for record in records:
                key = record.metadata.get("source_key")
                if isinstance(key, str) and key not in present:
                    gone.add(key)
        ordered = sorted(gone)
        for start in range(0, len(ordered), KEYS_PER_DELETE):
            chunk = ordered[start : start + KEYS_PER_DELETE]
            expression = f"source_dataset == {_quoted(base)} and source_key in [{_joined(chunk)}]"
            await self._backend.delete(collection, filter=expression)
        return len(gone)

    # -- GetIndexStatus ----------------------------------------------------------------------------

    async def status(self, collection: str) -> IndexStatus:
        info = await self._backend.describe_collection(collection)
        state = await self._own_state(collection, info)
        live = self._runs.get(collection)
        if state is None:
            if live is None:
                raise FailedPrecondition(
                    f"collection {collection!r} was not built by IndexDataset", reason="NOT_INDEXED"
                )
            request = live.request
            current = await self._current_version(request.dataset)
            return IndexStatus(
                collection=collection,
                dataset=request.dataset,
                id_column=request.id_column,
                text_columns=request.text_columns,
                state="RUNNING",
                progress=live.progress(),
                rows_embedded=0,
                covered_version=0,
                current_version=current,
                stale=current > 0,
                last_indexed_time=None,
                last_error="",
            )
        if live is not None:
            run_state: RunState = "RUNNING"
        elif state.run == "RUNNING":
            run_state = "FAILED"  # written by a process that stopped mid-run
        else:
            run_state = state.run
        last_error = state.last_error or (INTERRUPTED if run_state == "FAILED" else "")
        current = await self._current_version(state.dataset)
        return IndexStatus(
            collection=collection,
            dataset=state.dataset,
            id_column=state.id_column,
            text_columns=state.text_columns,
            state=run_state,
            progress=live.progress() if live else None,
            rows_embedded=state.rows_embedded,
            covered_version=state.covered_version,
            current_version=current,
            stale=current > state.covered_version,
            last_indexed_time=datetime.fromisoformat(state.last_indexed_time) if state.last_indexed_time else None,
            last_error=last_error if run_state == "FAILED" else "",
        )

    async def _current_version(self, dataset: str) -> int:
        try:
            return await self._query.current_version(dataset)
        except (NotFound, PermissionDenied):
            return 0

    # -- EvaluateRecall ----------------------------------------------------------------------------

    async def evaluate_recall(
        self,
        collection: str,
        sample_size: int = 0,
        k: int = 0,
        params: Mapping[str, int] | None = None,
        seed: int | None = None,
    ) -> RecallReport:
        """recall@k of the collection's index against exact search over all its vectors."""
        sample_size = sample_size or DEFAULT_SAMPLE
        k = k or DEFAULT_K
        if sample_size < 0:
            raise invalid_field("sample_size", "must not be negative", reason="INVALID_ARGUMENT")
        if sample_size > MAX_SAMPLE:
            raise invalid_field("sample_size", f"at most {MAX_SAMPLE}", reason="SAMPLE_TOO_LARGE")
        if k < 0:
            raise invalid_field("k", "must not be negative", reason="INVALID_ARGUMENT")
        if k > self._config.vector.max_k:
            raise invalid_field("k", f"at most {self._config.vector.max_k} ([vector] max_k)", reason="K_TOO_LARGE")
        info = await self._backend.describe_collection(collection)
        seed = seed if seed is not None else random.getrandbits(63)
        sample = await self._backend.sample_vectors(collection, sample_size, seed)
        if not sample:
            raise FailedPrecondition(f"collection {collection!r} holds no vectors to sample", reason="COLLECTION_EMPTY")
        queries = np.stack([np.asarray(r.vector, dtype=np.float32) for r in sample])
        hits: list[list[Hit]] = []
        latencies: list[float] = []
        for query in queries:
            started = time.perf_counter()
            hits.append(
                await self._backend.search(
                    collection, query, k, params=params, consistency=self._config.vector.consistency
                )
            )
            latencies.append(time.perf_counter() - started)
        exact = _ExactSearch(queries, k, info.spec.metric, hits)
        scan = self._backend.scan(collection, fields=("id",), with_vectors=True, batch_size=SCAN_BATCH)
        async for records in scan:
            if records:
                await asyncio.to_thread(exact.add, records)
        p50, p95 = np.percentile(np.asarray(latencies), [50, 95])
        return RecallReport(
            recall_at_k=exact.recall(),
            k=k,
            sample_size=len(sample),
            latency_p50_s=float(p50),
            latency_p95_s=float(p95),
            index_type=info.spec.index.kind,
            seed=seed,
        )


class _ExactSearch:
    """Brute-force top-k over the collection, fed batch by batch, and the exact distance of every
    vector the index search returned, so recall counts ties at the k-th distance as found."""

    def __init__(self, queries: np.ndarray, k: int, metric: str, hits: list[list[Hit]]) -> None:
        self._metric = metric
        self._queries = _normalised(queries) if metric == "COSINE" else queries
        self._k = k
        self._best = np.full((len(queries), k), np.inf, dtype=np.float64)
        self._seen = 0
        self._hits = hits
        self._wanted: dict[str, list[tuple[int, int]]] = {}
        for q, found in enumerate(hits):
            for position, hit in enumerate(found):
                self._wanted.setdefault(hit.id, []).append((q, position))
        self._hit_distances = [np.full(len(found), np.inf) for found in hits]

    def _distances(self, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        if self._metric == "L2":
            return (
                np.sum(queries**2, axis=1)[:, None] + np.sum(vectors**2, axis=1)[None, :] - 2.0 * queries @ vectors.T
            ).astype(np.float64)
        if self._metric == "COSINE":
            vectors = _normalised(vectors)
        return (1.0 - queries @ vectors.T).astype(np.float64)

    def add(self, records: Sequence[Record]) -> None:
        vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in records])
        distances = self._distances(self._queries, vectors)
        merged = np.concatenate([self._best, distances], axis=1)
        keep = min(self._k, merged.shape[1])
        self._best = np.partition(merged, keep - 1, axis=1)[:, : self._k]
        self._seen += len(records)
        for column, record in enumerate(records):
            for q, position in self._wanted.get(record.id, ()):
                self._hit_distances[q][position] = distances[q, column]

    def recall(self) -> float:
        if not self._seen:
            return 0.0
        expected = min(self._k, self._seen)
        kth = np.sort(self._best, axis=1)[:, expected - 1]
        total = 0.0
        for q, found in enumerate(self._hit_distances):
            tolerance = 1e-5 * max(1.0, abs(float(kth[q])))
            total += min(int(np.sum(found[:expected] <= kth[q] + tolerance)), expected) / expected
        return total / len(self._hit_distances)


# -- helpers ---------------------------------------------------------------------------------------


def _check_request(request: IndexRequest) -> None:
    if not request.dataset:
        raise invalid_field("source.dataset", "name the dataset or view to index", reason="INVALID_ARGUMENT")
    if not COLLECTION_NAME.fullmatch(request.collection):
        raise invalid_field(
            "collection",
            "letters, digits and underscores, starting with a letter, at most 255 characters",
            reason="INVALID_COLLECTION_NAME",
        )
    if not request.id_column:
        raise invalid_field("id_column", "name the column holding each row's key", reason="INVALID_ARGUMENT")
    if not request.text_columns:
        raise invalid_field("text_columns", "name at least one column to embed", reason="INVALID_ARGUMENT")
    if request.version is not None and request.version < 1:
        raise NotFound(f"versions count from 1; there is no version {request.version}", reason="VERSION_NOT_FOUND")
    for i, column in enumerate(request.metadata_columns):
        if column in RESERVED_FIELDS:
            raise invalid_field(
                f"metadata_columns[{i}]",
                f"{column!r} is a reserved field name ({', '.join(sorted(RESERVED_FIELDS))})",
                reason="RESERVED_FIELD",
            )


def _check_columns(request: IndexRequest, schema: pa.Schema) -> None:
    named = [("id_column", request.id_column)]
    named += [(f"text_columns[{i}]", c) for i, c in enumerate(request.text_columns)]
    named += [(f"metadata_columns[{i}]", c) for i, c in enumerate(request.metadata_columns)]
    missing = [FieldViolation(f, f"{request.dataset!r} has no column {c!r}") for f, c in named if c not in schema.names]
    if missing:
        raise NotFound(
            f"{'; '.join(v.description for v in missing)}; its columns are {', '.join(schema.names)}",
            reason="COLUMN_NOT_FOUND",
            violations=missing,
        )
    key_type = schema.field(request.id_column).type
    if not (pa.types.is_integer(key_type) or pa.types.is_string(key_type) or pa.types.is_large_string(key_type)):
        raise invalid_field(
            "id_column",
            f"{request.id_column!r} is {key_type}; row keys come from an integer or text column (erasure matches them)",
            reason="INVALID_ROW_KEY",
        )


def _collect_keys(column: pa.Array | pa.ChunkedArray, seen: set[str], name: str) -> None:
    if column.null_count:
        raise invalid_field("id_column", f"column {name!r} holds null keys", reason="INVALID_ROW_KEY")
    for key in _keys(column):
        if key in seen:
            # The key is row data: it is not quoted back.
            raise invalid_field(
                "id_column", f"column {name!r} holds the same key on more than one row", reason="DUPLICATE_ROW_KEY"
            )
        if not key or len(key) > MAX_SHORT_TEXT or "\x00" in key:
            raise invalid_field(
                "id_column",
                f"keys of {name!r} must be 1 to {MAX_SHORT_TEXT} characters without NUL (erasure matches them)",
                reason="INVALID_ROW_KEY",
            )
        seen.add(key)


def _keys(column: pa.Array | pa.ChunkedArray) -> list[str]:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return [str(k) for k in column.to_pylist()]
    return [str(k) for k in pc.cast(column, pa.string()).to_pylist()]


def _texts(rows: pa.RecordBatch, columns: Sequence[str]) -> list[str]:
    values = [rows.column(c).to_pylist() for c in columns]
    return ["\n".join(_text(v) for v in row if v is not None) for row in zip(*values, strict=True)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(_scalar(value))


def _metadata(rows: pa.RecordBatch, converters: Mapping[str, Callable[[Any], Scalar]]) -> list[dict[str, Scalar]]:
    if not converters:
        return [{} for _ in range(rows.num_rows)]
    columns = {name: [convert(v) for v in rows.column(name).to_pylist()] for name, convert in converters.items()}
    return [{name: values[i] for name, values in columns.items()} for i in range(rows.num_rows)]


def _same(stored: Record | None, base: str, sha: str, metadata: Mapping[str, Scalar]) -> bool:
    """Whether the stored vector of a row still stands for it: same source, text and metadata."""
    if stored is None:
        return False
    fields = stored.metadata
    if fields.get("source_dataset") != base or fields.get("content_sha256") != sha:
        return False
    return all(fields.get(name) == value for name, value in metadata.items())


def _field_kind(arrow_type: pa.DataType) -> FieldKind:
    if pa.types.is_integer(arrow_type):
        return "INT64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "DOUBLE"
    if pa.types.is_boolean(arrow_type):
        return "BOOL"
    return "STRING"


def _converter(arrow_type: pa.DataType) -> Callable[[Any], Scalar]:
    """How a column's Python values become scalar metadata of the declared field kind."""
    kind = _field_kind(arrow_type)
    if kind == "INT64":
        return lambda v: None if v is None else int(v)
    if kind == "DOUBLE":
        return lambda v: None if v is None else float(v)
    if kind == "BOOL":
        return lambda v: None if v is None else bool(v)
    return lambda v: None if v is None else (v if isinstance(v, str) else str(_scalar(v)))


def _scalar(value: Any) -> Any:
    """Dates and times as ISO text, bytes as hex, anything else as JSON where it can be."""
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def _stored_text(text: str) -> str:
    """The text kept with a vector, cut to what a Milvus VARCHAR holds (the vector stands for the
    model's first tokens anyway)."""
    if len(text) * 4 <= MAX_STORED_TEXT_BYTES:
        return text
    return text.encode("utf-8", "surrogatepass")[:MAX_STORED_TEXT_BYTES].decode("utf-8", "ignore")


def _vector_id(key: str, chunk: int, chunked: bool) -> str:
    return f"{key}#{chunk}" if chunked else key


def _chunking_key(request: IndexRequest) -> tuple[int, int] | None:
    if not request.chunked:
        return None
    assert request.chunking is not None
    return (request.chunking.max_tokens, request.chunking.overlap_tokens)


def _quoted(value: str) -> str:
    """A Milvus string literal: JSON string syntax, non-ASCII as it is (Milvus reads no \\u escapes)."""
    return json.dumps(value, ensure_ascii=False)


def _joined(values: Any) -> str:
    return ", ".join(_quoted(v) for v in values)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _write(writer: Any, batch: pa.RecordBatch) -> None:
    writer.write_batch(batch)


def _open_spool(path: Path) -> pa.ipc.RecordBatchFileReader:
    return pa.ipc.open_file(pa.memory_map(str(path)))


def _sweep(directory: Path) -> None:
    if directory.is_dir():
        for leftover in directory.glob("*.arrow"):
            leftover.unlink(missing_ok=True)
