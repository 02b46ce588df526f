"""Typed async client for the memory service: agent memory traces and the playbook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime

from google.protobuf import field_mask_pb2

from lakehouse.client._base import BaseAsyncClient
from lakehouse.memory.v1 import memory_service_pb2 as pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as pb_grpc


def trace_filter(
    *,
    tags: Sequence[str] = (),
    metadata: Mapping[str, str] | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> pb.TraceFilter:
    """Exact conditions on traces; every one given must hold."""
    out = pb.TraceFilter(tags=list(tags), metadata=dict(metadata or {}))
    if created_after is not None:
        out.create_time_after.FromDatetime(created_after)
    if created_before is not None:
        out.create_time_before.FromDatetime(created_before)
    return out


def playbook_record(
    namespace: str,
    query: str,
    answer_collection: str,
    answer_id: str,
    score: float,
    *,
    role: str = "",
    tags: Sequence[str] = (),
) -> pb.RecordPlaybookRequest:
    """One entry for `record_playbook_batch`."""
    return pb.RecordPlaybookRequest(
        namespace=namespace,
        query=query,
        answer_collection=answer_collection,
        answer_id=answer_id,
        score=score,
        role=role,
        tags=list(tags),
    )


class AsyncMemoryClient(BaseAsyncClient):
    """Agent memory traces (add, update, revise, retire, history, search, forget) and the playbook."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.MemoryServiceStub(channel)

    # -- traces --------------------------------------------------------------------------------

    async def add_trace(
        self,
        namespace: str,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
        idempotency_key: str = "",
        idempotent: bool = False,
    ) -> pb.AddTraceResponse:
        """Adds a trace; with a key (or `idempotent`), a repeat replays the existing trace."""
        request = pb.AddTraceRequest(
            namespace=namespace,
            content=content,
            metadata=dict(metadata or {}),
            tags=list(tags),
            idempotency_key=idempotency_key,
            idempotent=idempotent,
        )
        # Only an idempotent add may be sent twice: a plain one would add a duplicate.
        return await self._unary(self._stub.AddTrace, request, idempotent=bool(idempotency_key or idempotent))

    async def get_trace(self, namespace: str, trace_id: str) -> pb.Trace:
        return (await self._unary(self._stub.GetTrace, pb.GetTraceRequest(namespace=namespace, id=trace_id))).trace

    async def list_traces(
        self,
        namespace: str,
        *,
        filter: pb.TraceFilter | None = None,
        include_retired: bool = False,
        include_superseded: bool = False,
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListTracesResponse:
        """One page of a namespace's traces, newest first."""
        request = pb.ListTracesRequest(
            namespace=namespace,
            filter=filter,
            include_retired=include_retired,
            include_superseded=include_superseded,
            page_size=page_size,
            page_token=page_token,
        )
        return await self._unary(self._stub.ListTraces, request)

    async def update_trace(
        self,
        namespace: str,
        trace_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Sequence[str] | None = None,
        expected_version: int | None = None,
    ) -> pb.Trace:
        """Changes the given fields in place and increments the version."""
        trace = pb.Trace(namespace=namespace, id=trace_id)
        paths: list[str] = []
        if content is not None:
            trace.content = content
            paths.append("content")
        if metadata is not None:
            trace.metadata.update(metadata)
            paths.append("metadata")
        if tags is not None:
            trace.tags.extend(tags)
            paths.append("tags")
        request = pb.UpdateTraceRequest(trace=trace, update_mask=field_mask_pb2.FieldMask(paths=paths))
        if expected_version is not None:
            request.expected_version = expected_version
        # Not retried once sent: a repeat would bump the version twice.
        return (await self._unary(self._stub.UpdateTrace, request, idempotent=False)).trace

    async def revise_trace(
        self,
        namespace: str,
        trace_id: str,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        tags: Sequence[str] = (),
    ) -> pb.ReviseTraceResponse:
        """A new trace revising the head of a chain; returns it and its predecessor."""
        request = pb.ReviseTraceRequest(
            namespace=namespace, id=trace_id, content=content, metadata=dict(metadata or {}), tags=list(tags)
        )
        # A repeat would answer TRACE_SUPERSEDED: retried only when never sent.
        return await self._unary(self._stub.ReviseTrace, request, idempotent=False)

    async def retire_trace(self, namespace: str, trace_id: str, reason: str) -> pb.Trace:
        request = pb.RetireTraceRequest(namespace=namespace, id=trace_id, reason=reason)
        # Idempotent: retiring a retired trace returns it unchanged.
        return (await self._unary(self._stub.RetireTrace, request)).trace

    async def get_trace_history(
        self, namespace: str, trace_id: str, *, max_depth: int = 0
    ) -> pb.GetTraceHistoryResponse:
        request = pb.GetTraceHistoryRequest(namespace=namespace, id=trace_id, max_depth=max_depth)
        return await self._unary(self._stub.GetTraceHistory, request)

    async def search_traces(
        self,
        query: str,
        *,
        namespaces: Sequence[str] = (),
        k: int = 0,
        filter: pb.TraceFilter | None = None,
        include_retired: bool = False,
        include_superseded: bool = False,
        max_distance: float | None = None,
    ) -> list[pb.TraceHit]:
        """Traces by meaning, closest first, across `namespaces` (empty: every one you may read)."""
        request = pb.SearchTracesRequest(
            namespaces=list(namespaces),
            query=query,
            k=k,
            filter=filter,
            include_retired=include_retired,
            include_superseded=include_superseded,
        )
        if max_distance is not None:
            request.max_distance = max_distance
        return list((await self._unary(self._stub.SearchTraces, request)).hits)

    async def forget_traces(
        self, namespace: str, ids: Sequence[str], *, reason: str, dry_run: bool = False
    ) -> pb.ForgetReceipt:
        """Hard-deletes traces by id with their revision chains and vectors; returns the receipt."""
        request = pb.ForgetTracesRequest(
            ids=pb.TraceIds(namespace=namespace, ids=list(ids)), reason=reason, dry_run=dry_run
        )
        # Idempotent: ids already forgotten are counted as not found.
        return (await self._unary(self._stub.ForgetTraces, request)).receipt

    async def forget_matching(
        self, namespace: str, filter: pb.TraceFilter, *, reason: str, dry_run: bool = False
    ) -> pb.ForgetReceipt:
        """Hard-deletes the traces of a namespace that match a (non-empty) filter."""
        request = pb.ForgetTracesRequest(
            filter=pb.NamespaceFilter(namespace=namespace, filter=filter), reason=reason, dry_run=dry_run
        )
        return (await self._unary(self._stub.ForgetTraces, request)).receipt

    async def forget_source_rows(
        self,
        dataset: str,
        keys: Sequence[str],
        *,
        reason: str,
        namespaces: Sequence[str] = (),
        erasure_id: str = "",
        dry_run: bool = False,
    ) -> pb.ForgetReceipt:
        """Forgets the traces that reference rows of `dataset` by key (admins only)."""
        request = pb.ForgetTracesRequest(
            source_rows=pb.SourceRows(dataset=dataset, keys=list(keys), namespaces=list(namespaces)),
            reason=reason,
            erasure_id=erasure_id,
            dry_run=dry_run,
        )
        # Idempotent: traces already forgotten are counted as not found, never an error.
        return (await self._unary(self._stub.ForgetTraces, request)).receipt

    def reindex(
        self, namespaces: Sequence[str] = (), *, full: bool = False, timeout_s: float | None = None
    ) -> AsyncIterator[pb.ReindexResponse]:
        """Progress messages, then one summary (admins only)."""
        request = pb.ReindexRequest(
            namespaces=list(namespaces), mode=pb.REINDEX_MODE_FULL if full else pb.REINDEX_MODE_MISSING
        )
        return self._server_stream(self._stub.Reindex, request, timeout_s=timeout_s)

    async def reindex_summary(
        self, namespaces: Sequence[str] = (), *, full: bool = False, timeout_s: float | None = None
    ) -> pb.ReindexSummary:
        summary = pb.ReindexSummary()
        async for event in self.reindex(namespaces, full=full, timeout_s=timeout_s):
            if event.HasField("summary"):
                summary = event.summary
        return summary

    # -- playbook ------------------------------------------------------------------------------

    async def record_playbook(
        self,
        namespace: str,
        query: str,
        answer_collection: str,
        answer_id: str,
        score: float,
        *,
        role: str = "",
        tags: Sequence[str] = (),
    ) -> pb.RecordPlaybookResponse:
        """Records that an answer worked for a query; recording the same triple again updates it."""
        request = playbook_record(namespace, query, answer_collection, answer_id, score, role=role, tags=tags)
        # Idempotent: the entry id is derived from the request, last write wins.
        return await self._unary(self._stub.RecordPlaybook, request)

    async def record_playbook_batch(
        self, requests: Sequence[pb.RecordPlaybookRequest]
    ) -> pb.RecordPlaybookBatchResponse:
        request = pb.RecordPlaybookBatchRequest(requests=list(requests))
        return await self._unary(self._stub.RecordPlaybookBatch, request)

    async def lookup_playbook(
        self,
        namespace: str,
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        max_distance: float | None = None,
        role: str = "",
        exclude_answer_ids: Sequence[str] = (),
        answer_collections: Sequence[str] = (),
        k: int = 0,
    ) -> list[pb.PlaybookMatch]:
        """Recorded answers whose query is close to this one, for one role, closest first."""
        if (text is None) == (vector is None):
            raise ValueError("give exactly one of text and vector")
        request = pb.LookupPlaybookRequest(
            namespace=namespace,
            role=role,
            exclude_answer_ids=list(exclude_answer_ids),
            answer_collections=list(answer_collections),
            k=k,
        )
        if text is not None:
            request.query_text = text
        else:
            request.query_vector.values.extend(float(x) for x in vector or ())
        if max_distance is not None:
            request.max_distance = max_distance
        return list((await self._unary(self._stub.LookupPlaybook, request)).matches)

    async def list_playbook(
        self,
        namespace: str,
        *,
        role: str | None = None,
        answer_collection: str = "",
        tags: Sequence[str] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> pb.ListPlaybookResponse:
        request = pb.ListPlaybookRequest(
            namespace=namespace,
            answer_collection=answer_collection,
            tags=list(tags),
            page_size=page_size,
            page_token=page_token,
        )
        if role is not None:
            request.role = role
        return await self._unary(self._stub.ListPlaybook, request)

    async def delete_playbook_entry(self, namespace: str, entry_id: str) -> None:
        # A repeat after success would answer PLAYBOOK_ENTRY_NOT_FOUND: retried only when never sent.
        request = pb.DeletePlaybookEntryRequest(namespace=namespace, id=entry_id)
        await self._unary(self._stub.DeletePlaybookEntry, request, idempotent=False)
