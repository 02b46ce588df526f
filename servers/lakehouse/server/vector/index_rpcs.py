"""IndexDataset, GetIndexStatus and EvaluateRecall: protobuf <-> the indexer's dataclasses.

A mixin of the vector servicer, which sets `self._indexer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lakehouse.common.v1 import progress_pb2
from lakehouse.server.common.convert import seconds, to_timestamp
from lakehouse.server.vector.indexing import (
    Chunking,
    Indexer,
    IndexProgress,
    IndexRequest,
    IndexStatus,
    IndexSummary,
    RecallReport,
)
from lakehouse.vector.v1 import vector_service_pb2 as pb

RUN_STATES = {
    "IDLE": pb.INDEX_RUN_STATE_IDLE,
    "RUNNING": pb.INDEX_RUN_STATE_RUNNING,
    "FAILED": pb.INDEX_RUN_STATE_FAILED,
}
INDEX_TYPES = {
    "AUTOINDEX": pb.INDEX_TYPE_AUTOINDEX,
    "FLAT": pb.INDEX_TYPE_FLAT,
    "IVF_FLAT": pb.INDEX_TYPE_IVF_FLAT,
    "HNSW": pb.INDEX_TYPE_HNSW,
    "GPU_CAGRA": pb.INDEX_TYPE_GPU_CAGRA,
}


class IndexRpcs:
    """The indexing rpcs of VectorService."""

    _indexer: Indexer

    async def IndexDataset(
        self, request: pb.IndexDatasetRequest, context: Any
    ) -> AsyncIterator[pb.IndexDatasetResponse]:
        async for event in self._indexer.index(index_request(request)):
            if isinstance(event, IndexSummary):
                yield pb.IndexDatasetResponse(summary=summary_pb(event))
            else:
                yield pb.IndexDatasetResponse(progress=progress_pb(event))

    async def GetIndexStatus(self, request: pb.GetIndexStatusRequest, context: Any) -> pb.GetIndexStatusResponse:
        return status_pb(await self._indexer.status(request.collection))

    async def EvaluateRecall(self, request: pb.EvaluateRecallRequest, context: Any) -> pb.EvaluateRecallResponse:
        report = await self._indexer.evaluate_recall(
            request.collection,
            sample_size=request.sample_size,
            k=request.k,
            params=search_params(request.params) if request.HasField("params") else None,
            seed=request.seed if request.HasField("seed") else None,
        )
        return recall_pb(report)


def index_request(request: pb.IndexDatasetRequest) -> IndexRequest:
    chunking = None
    if request.HasField("chunking"):
        chunking = Chunking(request.chunking.max_tokens, request.chunking.overlap_tokens)
    return IndexRequest(
        dataset=request.source.dataset,
        version=request.source.version if request.source.HasField("version") else None,
        id_column=request.id_column,
        text_columns=tuple(request.text_columns),
        metadata_columns=tuple(request.metadata_columns),
        collection=request.collection,
        chunking=chunking,
        incremental=request.incremental if request.HasField("incremental") else True,
    )


def search_params(params: pb.SearchParams) -> dict[str, int]:
    """Search parameters as Milvus names them; unset ones are left to the backend's defaults."""
    return {name: getattr(params, name) for name in ("ef", "nprobe", "itopk_size") if params.HasField(name)}


def progress_pb(event: IndexProgress) -> progress_pb2.Progress:
    return progress_pb2.Progress(
        stage=event.stage, rows_done=event.rows_done, rows_total=event.rows_total, elapsed=seconds(event.elapsed_s)
    )


def summary_pb(summary: IndexSummary) -> pb.IndexSummary:
    return pb.IndexSummary(
        collection=summary.collection,
        dataset=summary.dataset,
        dataset_version=summary.dataset_version,
        rows_read=summary.rows_read,
        rows_embedded=summary.rows_embedded,
        rows_unchanged=summary.rows_unchanged,
        rows_removed=summary.rows_removed,
        vectors_upserted=summary.vectors_upserted,
        elapsed=seconds(summary.elapsed_s),
    )


def status_pb(status: IndexStatus) -> pb.GetIndexStatusResponse:
    return pb.GetIndexStatusResponse(
        collection=status.collection,
        dataset=status.dataset,
        id_column=status.id_column,
        text_columns=list(status.text_columns),
        state=RUN_STATES[status.state],
        progress=progress_pb(status.progress) if status.progress else None,
        rows_embedded=status.rows_embedded,
        covered_version=status.covered_version,
        current_version=status.current_version,
        stale=status.stale,
        last_indexed_time=to_timestamp(status.last_indexed_time),
        last_error=status.last_error,
    )


def recall_pb(report: RecallReport) -> pb.EvaluateRecallResponse:
    return pb.EvaluateRecallResponse(
        recall_at_k=report.recall_at_k,
        k=report.k,
        sample_size=report.sample_size,
        latency_p50=seconds(report.latency_p50_s),
        latency_p95=seconds(report.latency_p95_s),
        index_type=INDEX_TYPES.get(report.index_type, pb.INDEX_TYPE_UNSPECIFIED),
        seed=report.seed,
    )
