"""MemoryService glue: protobuf <-> domain, a few lines per RPC; the service's start and close.

At start the tables are created and the playbook's vectors loaded; the repair (vectors missing from
Milvus rewritten, vectors of forgotten traces removed) then runs in the background, retrying while
the vector service is not up yet, so a process hosting both never waits on itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from lakehouse.common.v1 import progress_pb2
from lakehouse.memory.v1 import memory_service_pb2 as pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as pb_grpc
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import Config
from lakehouse.server.common.convert import from_timestamp, seconds, to_timestamp
from lakehouse.server.common.errors import LakehouseError
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_request
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.memory import service as domain
from lakehouse.server.memory.peers import CatalogGateway, VectorGateway
from lakehouse.server.memory.store import Filter, MemoryStore, PlaybookRow, TraceRow, Visibility, create_memory_engine

log = logging.getLogger("lakehouse.memory")

SERVICE = pb.DESCRIPTOR.services_by_name["MemoryService"]
REPAIR_RETRY_S = 2.0


class MemoryServicer(pb_grpc.MemoryServiceServicer):
    def __init__(self, memory: domain.MemoryService) -> None:
        self._memory = memory

    async def AddTrace(self, request: pb.AddTraceRequest, context: Any) -> pb.AddTraceResponse:
        new = domain.NewTrace(
            namespace=request.namespace,
            content=request.content,
            metadata=dict(request.metadata),
            tags=list(request.tags),
            idempotency_key=request.idempotency_key,
            idempotent=request.idempotent,
        )
        row, replayed = await self._memory.add(new)
        return pb.AddTraceResponse(trace=trace_pb(row), replayed=replayed)

    async def GetTrace(self, request: pb.GetTraceRequest, context: Any) -> pb.GetTraceResponse:
        return pb.GetTraceResponse(trace=trace_pb(await self._memory.get(request.namespace, request.id)))

    async def ListTraces(self, request: pb.ListTracesRequest, context: Any) -> pb.ListTracesResponse:
        page = page_request(request.page_size, request.page_token, default=domain.DEFAULT_LIST)
        visibility = Visibility(request.include_retired, request.include_superseded)
        rows, token = await self._memory.list_traces(
            request.namespace, page, trace_filter(request, "filter"), visibility
        )
        return pb.ListTracesResponse(traces=[trace_pb(r) for r in rows], next_page_token=token)

    async def UpdateTrace(self, request: pb.UpdateTraceRequest, context: Any) -> pb.UpdateTraceResponse:
        t = request.trace
        change = domain.TraceChange(
            namespace=t.namespace,
            id=t.id,
            paths=list(request.update_mask.paths),
            content=t.content,
            metadata=dict(t.metadata),
            tags=list(t.tags),
            expected_version=request.expected_version if request.HasField("expected_version") else None,
        )
        return pb.UpdateTraceResponse(trace=trace_pb(await self._memory.update(change)))

    async def ReviseTrace(self, request: pb.ReviseTraceRequest, context: Any) -> pb.ReviseTraceResponse:
        new, before = await self._memory.revise(
            request.namespace, request.id, request.content, dict(request.metadata), list(request.tags)
        )
        return pb.ReviseTraceResponse(trace=trace_pb(new), predecessor=trace_pb(before))

    async def RetireTrace(self, request: pb.RetireTraceRequest, context: Any) -> pb.RetireTraceResponse:
        row = await self._memory.retire(request.namespace, request.id, request.reason)
        return pb.RetireTraceResponse(trace=trace_pb(row))

    async def GetTraceHistory(self, request: pb.GetTraceHistoryRequest, context: Any) -> pb.GetTraceHistoryResponse:
        rows, truncated = await self._memory.history(request.namespace, request.id, request.max_depth)
        return pb.GetTraceHistoryResponse(traces=[trace_pb(r) for r in rows], truncated=truncated)

    async def SearchTraces(self, request: pb.SearchTracesRequest, context: Any) -> pb.SearchTracesResponse:
        query = domain.TraceQuery(
            namespaces=list(request.namespaces),
            query=request.query,
            k=request.k,
            filter=trace_filter(request, "filter"),
            visibility=Visibility(request.include_retired, request.include_superseded),
            max_distance=request.max_distance if request.HasField("max_distance") else None,
        )
        hits = await self._memory.search(query)
        return pb.SearchTracesResponse(hits=[pb.TraceHit(trace=trace_pb(r), distance=d) for r, d in hits])

    async def ForgetTraces(self, request: pb.ForgetTracesRequest, context: Any) -> pb.ForgetTracesResponse:
        receipt = await self._memory.forget(selector(request), request.reason, request.erasure_id, request.dry_run)
        return pb.ForgetTracesResponse(receipt=receipt_pb(receipt))

    async def Reindex(self, request: pb.ReindexRequest, context: Any) -> AsyncIterator[pb.ReindexResponse]:
        full = request.mode == pb.REINDEX_MODE_FULL
        async for event in self._memory.reindex(list(request.namespaces), full):
            if isinstance(event, domain.ReindexSummary):
                yield pb.ReindexResponse(
                    summary=pb.ReindexSummary(
                        namespaces=list(event.namespaces),
                        traces_scanned=event.traces_scanned,
                        vectors_written=event.vectors_written,
                        orphan_vectors_removed=event.orphan_vectors_removed,
                        collections_created=event.collections_created,
                        elapsed=seconds(event.elapsed_s),
                    )
                )
            else:
                yield pb.ReindexResponse(
                    progress=progress_pb2.Progress(
                        stage=f"namespace {event.namespace}",
                        rows_done=event.traces_done,
                        rows_total=event.traces_total,
                        elapsed=seconds(event.elapsed_s),
                    )
                )

    async def RecordPlaybook(self, request: pb.RecordPlaybookRequest, context: Any) -> pb.RecordPlaybookResponse:
        (result,) = await self._memory.record([playbook_in(request)], batch=False)
        assert result.entry is not None
        return pb.RecordPlaybookResponse(entry=entry_pb(result.entry), created=result.created)

    async def RecordPlaybookBatch(
        self, request: pb.RecordPlaybookBatchRequest, context: Any
    ) -> pb.RecordPlaybookBatchResponse:
        results = await self._memory.record([playbook_in(r) for r in request.requests], batch=True)
        out = pb.RecordPlaybookBatchResponse()
        for i, result in enumerate(results):
            item = out.results.add(index=i, created=result.created)
            if result.entry is not None:
                item.entry.CopyFrom(entry_pb(result.entry))
                out.recorded_count += 1
            else:
                item.error.CopyFrom(record_error(result.error))
                out.failed_count += 1
        return out

    async def LookupPlaybook(self, request: pb.LookupPlaybookRequest, context: Any) -> pb.LookupPlaybookResponse:
        which = request.WhichOneof("query")
        query = domain.PlaybookQuery(
            namespace=request.namespace,
            text=request.query_text if which == "query_text" else None,
            vector=list(request.query_vector.values) if which == "query_vector" else None,
            max_distance=request.max_distance if request.HasField("max_distance") else None,
            role=request.role,
            exclude_answer_ids=list(request.exclude_answer_ids),
            answer_collections=list(request.answer_collections),
            k=request.k,
        )
        matches = await self._memory.lookup(query)
        return pb.LookupPlaybookResponse(matches=[pb.PlaybookMatch(entry=entry_pb(r), distance=d) for r, d in matches])

    async def ListPlaybook(self, request: pb.ListPlaybookRequest, context: Any) -> pb.ListPlaybookResponse:
        page = page_request(request.page_size, request.page_token, default=domain.DEFAULT_LIST)
        role = request.role if request.HasField("role") else None
        rows, token = await self._memory.list_playbook(
            request.namespace, page, role, request.answer_collection, list(request.tags)
        )
        return pb.ListPlaybookResponse(entries=[entry_pb(r) for r in rows], next_page_token=token)

    async def DeletePlaybookEntry(
        self, request: pb.DeletePlaybookEntryRequest, context: Any
    ) -> pb.DeletePlaybookEntryResponse:
        await self._memory.delete_playbook_entry(request.namespace, request.id)
        return pb.DeletePlaybookEntryResponse()


# -- conversions -----------------------------------------------------------------------------------


def _time(us: int | None) -> Any:
    return None if us is None else to_timestamp(datetime.fromtimestamp(us / 1e6, UTC))


def _us(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1_000_000)


def trace_pb(row: TraceRow) -> pb.Trace:
    return pb.Trace(
        id=row.id,
        namespace=row.namespace,
        content=row.content,
        metadata=dict(row.metadata),
        tags=list(row.tags),
        version=row.version,
        replay_count=row.replay_count,
        retired=row.retired,
        retire_reason=row.retire_reason,
        retire_time=_time(row.retire_us),
        revises_id=row.revises_id,
        revised_by_id=row.revised_by_id,
        idempotency_key=row.idempotency_key,
        content_sha256=row.content_sha256,
        create_time=_time(row.create_us),
        update_time=_time(row.update_us),
    )


def filter_of(f: pb.TraceFilter, field: str) -> Filter:
    return Filter(
        tags=tuple(dict.fromkeys(f.tags)),
        metadata=dict(f.metadata),
        created_after_us=_us(
            from_timestamp(f.create_time_after, f.HasField("create_time_after"), f"{field}.create_time_after")
        ),
        created_before_us=_us(
            from_timestamp(f.create_time_before, f.HasField("create_time_before"), f"{field}.create_time_before")
        ),
    )


def trace_filter(request: Any, field: str) -> Filter:
    return filter_of(request.filter, field) if request.HasField("filter") else Filter()


def selector(request: pb.ForgetTracesRequest) -> domain.Selector:
    which = request.WhichOneof("selector")
    if which == "ids":
        return domain.Selector("ids", namespace=request.ids.namespace, ids=list(request.ids.ids))
    if which == "filter":
        f = request.filter
        where = filter_of(f.filter, "filter.filter") if f.HasField("filter") else Filter()
        return domain.Selector("filter", namespace=f.namespace, filter=where)
    if which == "source_rows":
        s = request.source_rows
        return domain.Selector("source_rows", dataset=s.dataset, keys=list(s.keys), namespaces=list(s.namespaces))
    return domain.Selector("")


def receipt_pb(r: domain.ForgetReceipt) -> pb.ForgetReceipt:
    return pb.ForgetReceipt(
        id=r.id,
        actor=r.actor,
        reason=r.reason,
        erasure_id=r.erasure_id,
        dry_run=r.dry_run,
        traces_matched=r.traces_matched,
        traces_not_found=r.traces_not_found,
        traces_deleted=r.traces_deleted,
        vectors_deleted=r.vectors_deleted,
        namespaces=[
            pb.NamespaceForgetCount(
                namespace=n.namespace, traces_deleted=n.traces_deleted, vectors_deleted=n.vectors_deleted
            )
            for n in r.namespaces
        ],
        start_time=_time(r.start_us),
        complete_time=_time(r.complete_us),
    )


def playbook_in(r: pb.RecordPlaybookRequest) -> domain.PlaybookIn:
    return domain.PlaybookIn(
        namespace=r.namespace,
        query=r.query,
        answer_collection=r.answer_collection,
        answer_id=r.answer_id,
        score=r.score,
        role=r.role,
        tags=list(r.tags),
    )


def entry_pb(row: PlaybookRow) -> pb.PlaybookEntry:
    return pb.PlaybookEntry(
        id=row.id,
        namespace=row.namespace,
        query=row.query,
        answer_collection=row.answer_collection,
        answer_id=row.answer_id,
        score=row.score,
        role=row.role,
        tags=list(row.tags),
        create_time=_time(row.create_us),
        update_time=_time(row.update_us),
    )


def record_error(error: LakehouseError | None) -> pb.PlaybookRecordError:
    assert error is not None
    return pb.PlaybookRecordError(
        code=int(error.code),
        reason=error.reason,
        field=error.violations[0].field if error.violations else "",
        message=error.message,
    )


# -- start and repair ------------------------------------------------------------------------------


class Repair:
    """Runs the start-up repair in the background until it succeeds once."""

    def __init__(self, memory: domain.MemoryService) -> None:
        self._memory = memory
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lakehouse-memory-repair")

    async def _run(self) -> None:
        while True:
            try:
                summary = await self._memory.repair()
            except LakehouseError as exc:  # the vector service is not up yet, or Milvus is down
                log.info("memory repair waits for its peers: %s", exc.message)
                await asyncio.sleep(REPAIR_RETRY_S)
                continue
            except Exception:
                log.exception("memory repair failed; Reindex can run it again")
                return
            if summary is not None and (summary.vectors_written or summary.orphan_vectors_removed):
                log.info(
                    "memory repair: %d vectors rewritten, %d orphan vectors removed, %d collections created",
                    summary.vectors_written,
                    summary.orphan_vectors_removed,
                    summary.collections_created,
                )
            self.done.set()
            return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def build(
    config: Config, executor: BlockingExecutor, peers: PeerChannels, authenticator: TokenAuthenticator
) -> ServiceBinding:
    """The memory service ready to host (see the module docstring for what starts when)."""
    store = MemoryStore(create_memory_engine(config.memory_url))
    vectors = VectorGateway(peers, authenticator.mesh_authorization)
    memory = domain.MemoryService(
        config.memory,
        store,
        executor,
        vectors,
        CatalogGateway(peers),
        vectors,
        failpoint=os.environ.get(domain.FAILPOINT_ENV, ""),
    )
    servicer = MemoryServicer(memory)
    repair = Repair(memory)

    async def start(server: MeshServer) -> dict[str, str]:
        await memory.open()
        if config.memory.repair_on_start:
            repair.start()
        return {}

    async def close() -> None:
        await repair.stop()
        await memory.close()
        await executor.run(store.close)

    return ServiceBinding(
        name="memory",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_MemoryServiceServicer_to_server(servicer, server),
        close=close,
        start=start,
    )
