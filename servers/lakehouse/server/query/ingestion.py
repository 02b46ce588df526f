"""Ingest domain: files, storage objects, databases and Arrow streams into Delta datasets.

Each ingest stages its input on local disk (so bad rows and schema mismatches fail before any
write), commits once to Delta, then registers the version with the catalog. Ingests into one
dataset are serialised in this process, so catalog versions follow Delta versions in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from lakehouse.server.common import metrics
from lakehouse.server.common.config import Config
from lakehouse.server.common.errors import InvalidArgument
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.names import MAX_LONG_TEXT, check_dataset_name, check_text
from lakehouse.server.query import ingest, sources, tables
from lakehouse.server.query.errors import DatasetExists
from lakehouse.server.query.gateways import Catalog, DatasetInfo, NewVersion, Storage
from lakehouse.server.query.ingest import CopiedStage, FileOptions, Stage, StreamStage
from lakehouse.server.query.service import QueryService

Mode = Literal["CREATE", "APPEND", "OVERWRITE"]
Staged = Stage | StreamStage | CopiedStage
PROGRESS_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Target:
    """Where an ingest writes."""

    dataset: str
    mode: Mode = "CREATE"
    description: str = ""


@dataclass(frozen=True)
class Lineage:
    source_system: str
    source_reference: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    dataset: str
    version: int
    created: bool
    duplicate: bool
    rows_written: int
    rows_skipped: int
    bytes_read: int
    content_sha256: str
    schema: pa.Schema
    pii_columns: tuple[str, ...]
    warnings: tuple[str, ...]
    elapsed_s: float


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    rows: int
    bytes: int
    bytes_total: int = 0


Stager = Callable[[pa.Schema | None, Path, ingest.Progress], Staged]
"""Blocking: reads the source into a stage file, typed after the dataset's schema if any."""


class Ingestor:
    def __init__(
        self,
        config: Config,
        queries: QueryService,
        catalog: Catalog,
        storage: Storage,
        run: Callable[..., Awaitable[Any]],
    ) -> None:
        self._config = config
        self._queries = queries
        self._catalog = catalog
        self._storage = storage
        self._run = run
        # Ingest work (parsing, Arrow streams from Flight clients, commits) gets its own threads, so
        # slow or idle uploads can never starve the catalog and storage work sharing `run`.
        self._stage_run = BlockingExecutor(config.query.concurrent_ingests, "lakehouse-ingest").run
        self.spool_dir = config.data_dir / "query" / "spool"
        # Anything left here belongs to ingests that died with an earlier process.
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def spool_path(self, suffix: str) -> Path:
        return self.spool_dir / f"{uuid.uuid4().hex}{suffix}"

    # -- sources -------------------------------------------------------------------------------

    async def ingest_file(
        self, target: Target, path: Path, file_name: str, options: FileOptions, sha256: str, size: int, lineage: Lineage
    ) -> Summary:
        """A local file (an upload spooled by the servicer, or a downloaded object)."""
        options = _with_format(options, file_name)
        if size == 0:
            raise InvalidArgument("the file is empty; nothing was written", reason="EMPTY_INPUT")

        def stager(schema: pa.Schema | None, stage_path: Path, progress: ingest.Progress) -> Staged:
            return sources.stage_file(path, options, schema, stage_path, self._config.query.batch_rows, progress)

        return await self._ingest(target, stager, content_key(sha256, options), size, lineage, _silent)

    async def ingest_object(
        self, target: Target, bucket: str, key: str, options: FileOptions
    ) -> AsyncIterator[ProgressEvent | Summary]:
        options = _with_format(options, key)
        path = self.spool_path(".object")
        events: asyncio.Queue[ProgressEvent | Summary | BaseException] = asyncio.Queue()
        reporter = _Reporter(events, "downloading")
        try:

            async def work() -> Summary:
                size, sha = await self._storage.download(bucket, key, path, reporter.downloaded)
                if size == 0:
                    raise InvalidArgument(f"object {key!r} is empty; nothing was written", reason="EMPTY_INPUT")
                reporter.stage = "reading"
                lineage = Lineage(
                    "object", f"{bucket or self._config.storage.default_bucket}/{key}", {"format": options.format}
                )

                def stager(schema: pa.Schema | None, stage_path: Path, progress: ingest.Progress) -> Staged:
                    return sources.stage_file(
                        path, options, schema, stage_path, self._config.query.batch_rows, progress
                    )

                return await self._ingest(
                    target,
                    stager,
                    content_key(sha, options),
                    size,
                    lineage,
                    reporter.threadsafe(asyncio.get_running_loop()),
                )

            async for event in _stream(work(), events):
                yield event
        finally:
            path.unlink(missing_ok=True)

    async def ingest_database(
        self, target: Target, source: sources.DatabaseSource
    ) -> AsyncIterator[ProgressEvent | Summary]:
        events: asyncio.Queue[ProgressEvent | Summary | BaseException] = asyncio.Queue()
        reporter = _Reporter(events, "reading")

        async def work() -> Summary:
            lineage = Lineage(source.driver, source.redacted_reference, {"driver": source.driver})

            def stager(schema: pa.Schema | None, stage_path: Path, progress: ingest.Progress) -> Staged:
                return sources.stage_database(source, schema, stage_path, progress)

            return await self._ingest(target, stager, None, 0, lineage, reporter.threadsafe(asyncio.get_running_loop()))

        async for event in _stream(work(), events):
            yield event

    async def ingest_arrow(self, target: Target, reader: pa.RecordBatchReader, lineage: Lineage) -> Summary:
        """An Arrow stream (Flight DoPut)."""

        def stager(schema: pa.Schema | None, stage_path: Path, progress: ingest.Progress) -> Staged:
            return ingest.stage_batches(iter(reader), reader.schema, schema, stage_path, progress)

        return await self._ingest(target, stager, None, 0, lineage, _silent)

    # -- the one ingest path -------------------------------------------------------------------

    async def _ingest(
        self, target: Target, stager: Stager, sha256: str | None, size: int, lineage: Lineage, progress: ingest.Progress
    ) -> Summary:
        started = time.perf_counter()
        check_dataset_name(target.dataset, "dataset")
        check_text("description", target.description, MAX_LONG_TEXT)
        _check_lineage(lineage)  # before anything is written: the catalog would refuse it after the commit
        async with self._queries.lock(target.dataset):
            existing = await self._catalog.get_dataset(target.dataset)
            if sha256 and existing is not None:
                duplicate = await self._duplicate(existing, target, sha256, started)
                if duplicate is not None:
                    return duplicate
            if existing is not None and target.mode == "CREATE":
                raise DatasetExists(
                    f"dataset {target.dataset!r} already exists; ingest with mode append to add rows or overwrite to replace them"
                )
            stage_path = self.spool_path(".arrows")
            try:
                schema = existing.schema if existing is not None and target.mode == "APPEND" else None
                stage = await self._staged(stager, schema, stage_path, progress)
                try:
                    if sha256 is None:
                        sha256 = await self._run(ingest.file_sha256, stage_path)
                        if existing is not None:
                            duplicate = await self._duplicate(existing, target, sha256, started)
                            if duplicate is not None:
                                return duplicate
                    # Past this point the ingest completes even if the caller goes away: a commit
                    # cut off before its catalog registration would leave the two out of step.
                    commit = asyncio.ensure_future(
                        self._commit(target, existing, stage, sha256, size, lineage, started)
                    )
                    return await _unstoppable(commit)
                finally:
                    await self._stage_run(stage.close)
            finally:
                stage_path.unlink(missing_ok=True)

    async def _staged(
        self, stager: Stager, schema: pa.Schema | None, stage_path: Path, progress: ingest.Progress
    ) -> Staged:
        """Runs the stager; if the caller leaves meanwhile, whatever it produces is cleaned up."""
        future = asyncio.ensure_future(self._stage_run(stager, schema, stage_path, progress))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_discard_stage)
            raise

    async def _write(self, location: tables.TableLocation, stage: Staged, mode: Literal["append", "overwrite"]) -> int:
        """One Delta commit of the stage's rows; a bad row found while streaming is reported as itself."""
        try:
            if isinstance(stage, CopiedStage):
                version = await self._stage_run(tables.commit_files, location, stage.files, stage.schema, mode)
            else:
                version = await self._stage_run(tables.commit, location, stage.reader(), mode, mode == "overwrite")
        except Exception:
            if stage.failure is not None:
                raise stage.failure from None
            raise
        if isinstance(stage, StreamStage):
            await self._run(sources.skipped_rows, stage)
        return version

    async def _duplicate(self, existing: DatasetInfo, target: Target, sha256: str, started: float) -> Summary | None:
        seen = await self._catalog.version_with_content(existing.name, sha256)
        # Overwriting with content that an older version held is a real change; appending it again is not.
        if seen is None or (target.mode == "OVERWRITE" and seen.version != existing.version):
            return None
        return Summary(
            existing.name,
            seen.version,
            False,
            True,
            0,
            0,
            0,
            sha256,
            existing.schema,
            existing.pii_columns,
            (),
            time.perf_counter() - started,
        )

    async def _commit(
        self,
        target: Target,
        existing: DatasetInfo | None,
        stage: Staged,
        sha256: str,
        size: int,
        lineage: Lineage,
        started: float,
    ) -> Summary:
        bucket = existing.bucket if existing else self._config.storage.default_bucket
        # Tables live under the bucket's reserved prefix, out of reach of the object API (so nobody
        # reads around views or deletes a table's files), one folder per incarnation of a name.
        location_path = (
            existing.location if existing else f"_lakehouse/datasets/{target.dataset}-{uuid.uuid4().hex[:12]}"
        )
        bucket_uri = await self._storage.bucket_uri(bucket)
        location = tables.table_location(bucket_uri, location_path, self._config.storage.s3)
        # A table nobody registered (a crash before registration) is replaced, never appended to.
        fresh = existing is None or existing.table_version is None
        mode: Literal["append", "overwrite"] = "overwrite" if target.mode == "OVERWRITE" or fresh else "append"
        if existing is not None and existing.table_version is not None:
            await self._stage_run(tables.settle, location, existing.table_version)
        try:
            table_version = await self._write(location, stage, mode)
            snap = await self._run(tables.snapshot, location, table_version)
            if existing is None:
                await self._catalog.create_dataset(
                    target.dataset, bucket, location_path, snap.schema, target.description, stage.sample
                )
            dataset, version, duplicate = await self._catalog.register_version(
                NewVersion(
                    dataset=target.dataset,
                    table_version=table_version,
                    operation="OVERWRITE" if target.mode == "OVERWRITE" else "APPEND",
                    schema=snap.schema,
                    row_count=snap.row_count,
                    size_bytes=snap.size_bytes,
                    files=snap.relative_files,
                    source_system=lineage.source_system,
                    source_reference=lineage.source_reference,
                    job_id=uuid.uuid4().hex,
                    content_sha256=sha256,
                    sample=stage.sample if existing is not None else None,  # create_dataset already saw it
                    attributes=lineage.attributes,
                )
            )
        except BaseException:
            if existing is None:  # a dataset that never came to be leaves no files behind
                await asyncio.shield(self._run(tables.remove, location))
            raise
        if duplicate:  # a concurrent ingest of the same content registered first; ours stays invisible
            return Summary(
                target.dataset,
                version.version,
                False,
                True,
                0,
                0,
                0,
                sha256,
                dataset.schema,
                dataset.pii_columns,
                (),
                time.perf_counter() - started,
            )
        warnings = stage.warnings
        metrics.INGEST_ROWS.labels(lineage.source_system).inc(stage.rows)
        return Summary(
            target.dataset,
            version.version,
            existing is None,
            False,
            stage.rows,
            stage.rows_skipped,
            size or stage.bytes,
            sha256,
            snap.schema,
            dataset.pii_columns,
            warnings,
            time.perf_counter() - started,
        )


def content_key(sha256: str, options: FileOptions) -> str:
    """What idempotency compares: the file's SHA-256, combined with the parse options when any
    are set, so the same bytes read differently (another column type, delimiter) are new content."""
    chosen = {k: v for k, v in asdict(options).items() if k != "format" and v not in ("", None, (), {}, False)}
    if not chosen:
        return sha256  # the plain file hash, which users can check with sha256sum
    canonical = json.dumps({"sha256": sha256, "options": chosen}, sort_keys=True, default=list)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_lineage(lineage: Lineage) -> None:
    check_text("file_name", lineage.source_reference, 1024)
    for key, value in lineage.attributes.items():
        check_text(f"lineage.attributes[{key!r}]", value, 1024)


async def _unstoppable(work: asyncio.Future[Summary]) -> Summary:
    """Awaits `work` to its end even when the caller is cancelled, then re-raises the cancellation."""
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await work
        raise


def _discard_stage(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


def _with_format(options: FileOptions, name: str) -> FileOptions:
    ingest.check_column_types(options.column_types)
    return replace(options, format=ingest.infer_format(options.format, name))


def _silent(rows: int, size: int) -> None:
    """Progress nobody listens to (unary ingests)."""


class _Reporter:
    """Turns progress callbacks (from worker threads) into queued events, a few per second."""

    def __init__(self, events: asyncio.Queue[Any], stage: str) -> None:
        self._events = events
        self.stage = stage
        self._last = 0.0
        self.bytes_total = 0

    def report(self, rows: int, size: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self._events.put_nowait(ProgressEvent(self.stage, rows, size, self.bytes_total))

    def downloaded(self, done: int, total: int) -> None:
        self.bytes_total = total
        self.report(0, done)

    def threadsafe(self, loop: asyncio.AbstractEventLoop) -> ingest.Progress:
        def report(rows: int, size: int) -> None:
            loop.call_soon_threadsafe(self.report, rows, size)

        return report


async def _stream(work: Awaitable[Summary], events: asyncio.Queue[Any]) -> AsyncIterator[ProgressEvent | Summary]:
    """Yields queued progress while `work` runs, then its summary (or raises its error)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            getter = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield getter.result()
                continue
            getter.cancel()
            while not events.empty():
                yield events.get_nowait()
            yield task.result()
            return
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
