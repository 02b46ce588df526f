"""QueryService glue: protobuf <-> domain, upload spooling, and the Flight server beside it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lakehouse.client.arrow import arrow_schema, table_ipc
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.query.v1 import query_service_pb2_grpc as pb_grpc
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import Config
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.convert import seconds, to_timestamp
from lakehouse.server.common.denials import DenialJournal
from lakehouse.server.common.errors import FailedPrecondition, PermissionDenied, invalid_field
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_of, page_request
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.query import sources
from lakehouse.server.query.convert import (
    DRIVERS,
    MODES,
    compact_pb,
    file_options,
    parameters,
    progress_pb,
    statement_pb,
    summary_pb,
    table_pb,
    vacuum_pb,
)
from lakehouse.server.query.errors import UploadIdle, UploadTooLarge
from lakehouse.server.query.flight import FlightEndpoint
from lakehouse.server.query.ingestion import Ingestor, Lineage, Summary, Target
from lakehouse.server.query.peers import CatalogGateway, StorageGateway
from lakehouse.server.query.service import QueryService, RowDeletion, Statement

SERVICE = pb.DESCRIPTOR.services_by_name["QueryService"]


class QueryServicer(pb_grpc.QueryServiceServicer):
    def __init__(self, config: Config, queries: QueryService, ingestor: Ingestor, flight_location: Any) -> None:
        self._config = config
        self._queries = queries
        self._ingestor = ingestor
        self._flight_location = flight_location
        # Where database files may be ingested from; made once, not on the event loop per call.
        imports = config.data_dir / "imports"
        imports.mkdir(parents=True, exist_ok=True)
        self._import_dirs = [imports, *(Path(d) for d in config.query.import_dirs)]

    async def Query(self, request: pb.QueryRequest, context: Any) -> pb.QueryResponse:
        statement = Statement(request.sql, parameters(request.parameters), dict(request.as_of))
        inline = request.max_inline_rows if request.HasField("max_inline_rows") else None
        timeout = _timeout(request, context)
        result = await self._queries.query(statement, inline, timeout)
        response = pb.QueryResponse(
            result=table_ipc(result.table),
            truncated=result.truncated,
            versions_read=result.versions_read,
            elapsed=seconds(result.elapsed_s),
        )
        if result.truncated:
            response.flight_ticket = flight_pb2.FlightTicket(sql=statement_pb(result.pinned)).SerializeToString()
            response.flight_location = self._flight_location()
        return response

    async def Explain(self, request: pb.ExplainRequest, context: Any) -> pb.ExplainResponse:
        statement = Statement(request.sql, parameters(request.parameters), dict(request.as_of))
        result = await self._queries.explain(statement, request.analyze, _timeout(request, context))
        return pb.ExplainResponse(
            plan=result.plan, schema=arrow_schema(result.schema), versions_read=result.versions_read
        )

    async def ListTables(self, request: pb.ListTablesRequest, context: Any) -> pb.ListTablesResponse:
        page = page_request(request.page_size, request.page_token)
        readable = await self._queries.readable_tables()
        chosen, token = page_of(
            [t for t in readable if page.after is None or t.name > page.after][: page.size + 1], page, lambda t: t.name
        )
        return pb.ListTablesResponse(tables=[table_pb(t) for t in chosen], next_page_token=token)

    async def DeleteRows(self, request: pb.DeleteRowsRequest, context: Any) -> pb.DeleteRowsResponse:
        deletion = RowDeletion(
            request.dataset, request.key_column, tuple(request.key_values), request.erasure_id, request.dry_run
        )
        deleted = await self._queries.delete_rows(deletion)
        return pb.DeleteRowsResponse(
            version_before=deleted.version_before,
            version_after=deleted.version_after,
            rows_removed=deleted.rows_removed,
            files_removed=deleted.files_removed,
        )

    async def IngestFile(
        self, request_iterator: AsyncIterator[pb.IngestFileRequest], context: Any
    ) -> pb.IngestFileResponse:
        messages = aiter(request_iterator)
        first = await self._next(messages)
        if first is None or first.WhichOneof("payload") != "header":
            raise invalid_field("header", "the first message must carry the header", reason="MISSING_HEADER")
        header = first.header
        self._require_log_target(header.dataset)
        limit = self._config.query.max_upload_mb * 1024 * 1024
        if header.size_bytes > limit:
            raise UploadTooLarge(
                f"{header.size_bytes} bytes is over the {self._config.query.max_upload_mb} MiB upload limit"
            )
        target = Target(header.dataset, MODES.get(header.mode, "CREATE"), header.description)  # type: ignore[arg-type]
        options = file_options(header.options)
        suffix = Path(header.file_name.replace("\x00", "")).suffix
        spool = self._ingestor.spool_path(suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,16}", suffix) else ".upload")
        try:
            size, sha = await self._spool(messages, spool, limit)
            lineage = Lineage("upload", header.file_name or "upload", {"file_name": header.file_name})
            summary = await self._ingestor.ingest_file(target, spool, header.file_name, options, sha, size, lineage)
        finally:
            await asyncio.to_thread(spool.unlink, True)
        return pb.IngestFileResponse(summary=summary_pb(summary))

    def _require_log_target(self, dataset: str) -> None:
        """The mesh's own identity ingests only the chat session log (see common/roles.py)."""
        log_dataset = self._config.chat.session_dataset
        if current_principal().role == "service" and (not log_dataset or dataset != log_dataset):
            raise PermissionDenied(
                f"header.dataset: the mesh identity may append only the chat session log ({log_dataset or 'none'})",
                reason="ROLE_NOT_ALLOWED",
            )

    async def _next(self, messages: AsyncIterator[pb.IngestFileRequest]) -> pb.IngestFileRequest | None:
        idle = self._config.query.upload_idle_timeout_s
        try:
            return await asyncio.wait_for(anext(messages, None), idle)
        except TimeoutError:
            raise UploadIdle(f"no upload data for {idle:g} s; the upload was dropped and nothing was written") from None

    async def _spool(self, messages: AsyncIterator[pb.IngestFileRequest], spool: Path, limit: int) -> tuple[int, str]:
        """Writes chunks to the spool until the commit message; returns (size, sha256)."""
        digest, size = hashlib.sha256(), 0
        sink = await asyncio.to_thread(spool.open, "wb")
        try:
            while (message := await self._next(messages)) is not None:
                kind = message.WhichOneof("payload")
                if kind == "commit":
                    if await self._next(messages) is not None:
                        raise invalid_field(
                            "commit", "must be the last message of the stream", reason="UNEXPECTED_MESSAGE"
                        )
                    if message.commit.sha256 and message.commit.sha256.lower() != digest.hexdigest():
                        raise FailedPrecondition(
                            f"file SHA-256 is {digest.hexdigest()}, commit.sha256 was {message.commit.sha256}",
                            reason="CHECKSUM_MISMATCH",
                        )
                    return size, digest.hexdigest()
                if kind != "chunk":
                    raise invalid_field(
                        "header", "only the first message may carry a header", reason="UNEXPECTED_MESSAGE"
                    )
                size += len(message.chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"the upload is over the {self._config.query.max_upload_mb} MiB limit; nothing was written"
                    )
                # Hashing and writing happen in a thread (hashlib releases the GIL on large chunks),
                # so the event loop keeps receiving while the previous chunk is processed.
                await asyncio.to_thread(_hash_and_write, digest, sink, message.chunk)
        finally:
            await asyncio.to_thread(sink.close)
        raise invalid_field(
            "commit", "the stream ended without a commit message; nothing was written", reason="MISSING_COMMIT"
        )

    async def IngestObject(
        self, request: pb.IngestObjectRequest, context: Any
    ) -> AsyncIterator[pb.IngestObjectResponse]:
        target = Target(request.dataset, MODES.get(request.mode, "CREATE"), request.description)  # type: ignore[arg-type]
        events = self._ingestor.ingest_object(
            target, request.object.bucket, request.object.key, file_options(request.options)
        )
        async for event in events:
            if isinstance(event, Summary):
                yield pb.IngestObjectResponse(summary=summary_pb(event))
            else:
                yield pb.IngestObjectResponse(progress=progress_pb(event))

    async def IngestDatabase(
        self, request: pb.IngestDatabaseRequest, context: Any
    ) -> AsyncIterator[pb.IngestDatabaseResponse]:
        target = Target(request.dataset, MODES.get(request.mode, "CREATE"), request.description)  # type: ignore[arg-type]
        source = await asyncio.to_thread(
            sources.database_source,
            request.uri,
            DRIVERS.get(request.driver, ""),
            request.table,
            request.query,
            self._import_dirs,
            self._config.query.database_hosts,
            self._config.query.batch_rows,
        )
        async for event in self._ingestor.ingest_database(target, source):
            if isinstance(event, Summary):
                yield pb.IngestDatabaseResponse(summary=summary_pb(event))
            else:
                yield pb.IngestDatabaseResponse(progress=progress_pb(event))

    async def Compact(self, request: pb.CompactRequest, context: Any) -> pb.CompactResponse:
        return await compact(self._queries, request)

    async def Vacuum(self, request: pb.VacuumRequest, context: Any) -> pb.VacuumResponse:
        return await vacuum(self._queries, request)

    async def GetDatasetHistory(
        self, request: pb.GetDatasetHistoryRequest, context: Any
    ) -> pb.GetDatasetHistoryResponse:
        versions, token = await self._queries.history(request.dataset, request.page_size, request.page_token)
        return pb.GetDatasetHistoryResponse(
            versions=[
                pb.DatasetVersion(
                    version=v.version,
                    commit_time=to_timestamp(v.create_time),
                    operation=v.operation,
                    row_count=v.row_count,
                    schema_fingerprint=v.fingerprint,
                    actor=v.actor,
                    source=v.source,
                    content_sha256=v.content_sha256,
                    delta_version=v.table_version,
                )
                for v in versions
            ],
            next_page_token=token,
        )


def _hash_and_write(digest: Any, sink: Any, chunk: bytes) -> None:
    digest.update(chunk)
    sink.write(chunk)


async def compact(queries: QueryService, request: pb.CompactRequest) -> pb.CompactResponse:
    """Compact, shared by the gRPC rpc and the Flight action."""
    started = time.perf_counter()
    before, after, metrics = await queries.compact(
        request.dataset, request.apply_tombstones, request.target_file_size_bytes
    )
    return compact_pb(request.dataset, before.version, after.version, metrics, time.perf_counter() - started)


async def vacuum(queries: QueryService, request: pb.VacuumRequest) -> pb.VacuumResponse:
    """Vacuum, shared by the gRPC rpc and the Flight action."""
    hours = request.retention.ToNanoseconds() / 3.6e12 if request.HasField("retention") else None
    files = await queries.vacuum(request.dataset, hours, request.dry_run)
    return vacuum_pb(request.dataset, files, request.dry_run)


def _timeout(request: Any, context: Any) -> float | None:
    """The statement's own limit, capped by the call's deadline."""
    limits = []
    if request.HasField("timeout"):
        limits.append(request.timeout.ToNanoseconds() / 1e9)
    remaining = context.time_remaining() if context is not None else None
    if remaining is not None:
        limits.append(max(remaining - 0.05, 0.01))
    return min(limits) if limits else None


def build(
    config: Config,
    executor: BlockingExecutor,
    peers: PeerChannels,
    authenticator: TokenAuthenticator,
    denials: DenialJournal | None = None,
) -> ServiceBinding:
    """The query service with its Flight endpoint, ready to host."""
    catalog = CatalogGateway(peers)
    storage = StorageGateway(peers, executor)
    queries = QueryService(config, catalog, storage, executor.run)
    ingestor = Ingestor(config, queries, catalog, storage, executor.run)
    flight = FlightEndpoint(config, queries, ingestor, authenticator, denials)
    servicer = QueryServicer(config, queries, ingestor, lambda: flight.location)

    async def start(server: MeshServer) -> dict[str, str]:
        await flight.start(asyncio.get_running_loop())
        return {"flight": flight.location}

    async def close() -> None:
        await flight.stop()
        queries.close()

    return ServiceBinding(
        name="query",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_QueryServiceServicer_to_server(servicer, server),
        close=close,
        start=start,
    )
