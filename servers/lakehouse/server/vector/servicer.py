"""VectorService glue: protobuf <-> domain, a few lines per RPC; the service's start, health and close.

What the service runs on starts when first needed, not with the server: the embedding model loads
(about half a second) on the first call that embeds, and an embedded Milvus Lite (a child process
that takes a few seconds to start) on the first call that reads or writes vectors, so a mesh whose
callers never use vectors pays for neither. A Milvus server given by `[vector] uri` is connected
at start. Health follows the backend once it has started: NOT_SERVING while Milvus does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np

from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import Config
from lakehouse.server.common.convert import seconds, to_timestamp
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_request
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.vector import service as domain
from lakehouse.server.vector.backend import MilvusBackend
from lakehouse.server.vector.embedder import OnnxEmbedder
from lakehouse.server.vector.gateways import CollectionInfo, Record, Scalar, VectorBackend
from lakehouse.server.vector.index_rpcs import IndexRpcs
from lakehouse.server.vector.indexing import Indexer
from lakehouse.server.vector.peers import CatalogGateway, MemoryGateway, QueryGateway
from lakehouse.vector.v1 import vector_service_pb2 as pb
from lakehouse.vector.v1 import vector_service_pb2_grpc as pb_grpc

log = logging.getLogger("lakehouse.vector")

SERVICE = pb.DESCRIPTOR.services_by_name["VectorService"]
HEALTH_INTERVAL_S = 2.0
"""How often the backend is asked whether it answers, for the service's health status."""

_CONSISTENCY: dict[int, domain.Consistency | None] = {
    pb.CONSISTENCY_UNSPECIFIED: None,
    pb.CONSISTENCY_STRONG: "Strong",
    pb.CONSISTENCY_BOUNDED: "Bounded",
    pb.CONSISTENCY_EVENTUALLY: "Eventually",
}
# Milvus parameter names <-> the fields of the index parameter messages.
_INDEX_FIELDS = {
    "hnsw": {"M": "m", "efConstruction": "ef_construction"},
    "ivf_flat": {"nlist": "nlist"},
    "gpu_cagra": {"intermediate_graph_degree": "intermediate_graph_degree", "graph_degree": "graph_degree"},
}
_INDEX_MESSAGE = {"HNSW": "hnsw", "IVF_FLAT": "ivf_flat", "GPU_CAGRA": "gpu_cagra"}


class VectorServicer(IndexRpcs, pb_grpc.VectorServiceServicer):
    def __init__(self, vectors: domain.VectorService, indexer: Indexer) -> None:
        self._vectors = vectors
        self._indexer = indexer

    async def Embed(self, request: pb.EmbedRequest, context: Any) -> pb.EmbedResponse:
        embedded, info = await self._vectors.embed(list(request.texts))
        return pb.EmbedResponse(
            embeddings=[
                pb.Embedding(values=row.tolist(), token_count=tokens, truncated=cut)
                for row, tokens, cut in zip(embedded.vectors, embedded.token_counts, embedded.truncated, strict=True)
            ],
            model=info.model,
            dimension=info.dimension,
        )

    async def GetEmbedderInfo(self, request: pb.GetEmbedderInfoRequest, context: Any) -> pb.GetEmbedderInfoResponse:
        info, cache = await self._vectors.embedder_info()
        return pb.GetEmbedderInfoResponse(
            model=info.model,
            model_sha256=info.model_sha256,
            source=info.source,
            dimension=info.dimension,
            max_tokens=info.max_tokens,
            precision=pb.EmbedderPrecision.Value(f"EMBEDDER_PRECISION_{info.precision}"),
            execution_providers=list(info.providers),
            max_batch_size=info.max_batch,
            max_batch_wait=seconds(info.max_wait_s),
            cache=pb.EmbeddingCacheStats(
                hits=cache.hits, misses=cache.misses, entries=cache.entries, capacity=cache.capacity
            ),
        )

    async def CreateCollection(self, request: pb.CreateCollectionRequest, context: Any) -> pb.CreateCollectionResponse:
        info = await self._vectors.create_collection(new_collection(request.collection))
        return pb.CreateCollectionResponse(collection=collection_pb(info))

    async def GetCollection(self, request: pb.GetCollectionRequest, context: Any) -> pb.GetCollectionResponse:
        return pb.GetCollectionResponse(collection=collection_pb(await self._vectors.get_collection(request.name)))

    async def ListCollections(self, request: pb.ListCollectionsRequest, context: Any) -> pb.ListCollectionsResponse:
        page = page_request(request.page_size, request.page_token)
        infos, token = await self._vectors.list_collections(page)
        return pb.ListCollectionsResponse(collections=[collection_pb(i) for i in infos], next_page_token=token)

    async def DeleteCollection(self, request: pb.DeleteCollectionRequest, context: Any) -> pb.DeleteCollectionResponse:
        await self._vectors.delete_collection(request.name)
        return pb.DeleteCollectionResponse()

    async def UpsertVectors(self, request: pb.UpsertVectorsRequest, context: Any) -> pb.UpsertVectorsResponse:
        records = [
            domain.RecordIn(
                id=r.id,
                vector=list(r.vector.values) if r.HasField("vector") else None,
                text=r.text,
                metadata=scalars(r.metadata),
            )
            for r in request.records
        ]
        done = await self._vectors.upsert(request.collection, records)
        return pb.UpsertVectorsResponse(upserted_count=done.upserted, embedded_count=done.embedded)

    async def DeleteVectors(self, request: pb.DeleteVectorsRequest, context: Any) -> pb.DeleteVectorsResponse:
        deleted = await self._vectors.delete_vectors(request.collection, list(request.ids), request.filter)
        return pb.DeleteVectorsResponse(deleted_count=deleted)

    async def GetVectors(self, request: pb.GetVectorsRequest, context: Any) -> pb.GetVectorsResponse:
        records = await self._vectors.get_vectors(
            request.collection, list(request.ids), request.include_vectors, list(request.output_fields)
        )
        return pb.GetVectorsResponse(records=[record_pb(r, request.include_vectors) for r in records])

    async def Search(self, request: pb.SearchRequest, context: Any) -> pb.SearchResponse:
        result = await self._vectors.search(search_request(request))
        return pb.SearchResponse(hits=[hit_pb(h) for h in result.hits], model=result.model)

    # The indexing rpcs (IndexRpcs) after the caller's profile check, with what they run on started.

    async def IndexDataset(
        self, request: pb.IndexDatasetRequest, context: Any
    ) -> AsyncIterator[pb.IndexDatasetResponse]:
        await self._vectors.require_collection(request.collection)
        self._vectors.require_writable(request.collection)
        await self._vectors.ready(embedder=True)
        async for event in super().IndexDataset(request, context):
            yield event

    async def GetIndexStatus(self, request: pb.GetIndexStatusRequest, context: Any) -> pb.GetIndexStatusResponse:
        await self._vectors.require_collection(request.collection)
        await self._vectors.ready()
        return await super().GetIndexStatus(request, context)

    async def EvaluateRecall(self, request: pb.EvaluateRecallRequest, context: Any) -> pb.EvaluateRecallResponse:
        await self._vectors.require_collection(request.collection)
        await self._vectors.ready()
        return await super().EvaluateRecall(request, context)


# -- conversions -----------------------------------------------------------------------------------


def _short(enum: Any, value: int, prefix: str) -> str:
    """An enum value's name without its prefix; "" for UNSPECIFIED, "UNKNOWN" for a number the
    contract does not define (the domain refuses it)."""
    try:
        name = str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return "UNKNOWN"
    return "" if name == "UNSPECIFIED" else name


def new_collection(c: pb.Collection) -> domain.NewCollection:
    params = None
    which = c.index.WhichOneof("params")
    if which is not None:
        message = getattr(c.index, which)
        params = (which, {f.name: int(getattr(message, f.name)) for f in message.DESCRIPTOR.fields})
    return domain.NewCollection(
        name=c.name,
        dimension=c.dimension,
        metric=_short(pb.DistanceMetric, c.metric, "DISTANCE_METRIC_"),
        index_kind=_short(pb.IndexType, c.index.type, "INDEX_TYPE_"),
        index_params=params,
        fields=tuple(
            domain.NewField(f.name, _short(pb.FieldType, f.type, "FIELD_TYPE_"), f.nullable, f.max_length)
            for f in c.fields
        ),
        description=c.description,
    )


def index_pb(kind: str, params: Mapping[str, int]) -> pb.IndexSpec:
    spec = pb.IndexSpec(type=pb.IndexType.Value(f"INDEX_TYPE_{kind}"))
    which = _INDEX_MESSAGE.get(kind)
    if which is not None:
        names = _INDEX_FIELDS[which]
        getattr(spec, which).SetInParent()
        for milvus, value in params.items():
            if milvus in names:
                setattr(getattr(spec, which), names[milvus], int(value))
    return spec


def collection_pb(info: CollectionInfo) -> pb.Collection:
    spec = info.spec
    return pb.Collection(
        name=spec.name,
        dimension=spec.dimension,
        metric=pb.DistanceMetric.Value(f"DISTANCE_METRIC_{spec.metric}"),
        index=index_pb(spec.index.kind, spec.index.params),
        fields=[
            pb.ScalarField(
                name=f.name,
                type=pb.FieldType.Value(f"FIELD_TYPE_{f.kind}"),
                nullable=f.nullable,
                max_length=f.max_length,
            )
            for f in spec.fields
        ],
        description=spec.description,
        embedder_model=spec.embedder_model,
        row_count=info.row_count,
        index_state=pb.IndexState.Value(f"INDEX_STATE_{info.index_state}"),
        source_dataset=spec.source_dataset,
        create_time=to_timestamp(info.create_time),
        indexed_rows=info.indexed_rows,
    )


def scalars(values: Mapping[str, pb.FieldValue]) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key, value in values.items():
        kind = value.WhichOneof("kind")
        out[key] = None if kind is None else getattr(value, kind)
    return out


def field_value(value: Any) -> pb.FieldValue:
    if value is None:
        return pb.FieldValue()
    if isinstance(value, (bool, np.bool_)):
        return pb.FieldValue(bool_value=bool(value))
    if isinstance(value, (int, np.integer)):
        return pb.FieldValue(int64_value=int(value))
    if isinstance(value, (float, np.floating)):
        return pb.FieldValue(double_value=float(value))
    return pb.FieldValue(string_value=str(value))


def field_values(metadata: Mapping[str, Scalar]) -> dict[str, pb.FieldValue]:
    return {key: field_value(value) for key, value in metadata.items()}


def record_pb(record: Record, with_vector: bool) -> pb.VectorRecord:
    out = pb.VectorRecord(id=record.id, text=record.text, metadata=field_values(record.metadata))
    if with_vector:
        out.vector.values.extend(np.asarray(record.vector, dtype=np.float32).tolist())
    return out


def search_request(r: pb.SearchRequest) -> domain.SearchRequest:
    which = r.WhichOneof("query")
    p = r.playbook
    params = {name: getattr(r.params, name) for name in ("ef", "nprobe", "itopk_size") if r.params.HasField(name)}
    return domain.SearchRequest(
        collections=tuple(r.collections),
        text=r.text if which == "text" else None,
        vector=list(r.vector.values) if which == "vector" else None,
        k=r.k,
        per_collection_k=r.per_collection_k,
        filter=r.filter,
        exclude_ids=tuple(r.exclude_ids),
        max_distance=r.max_distance if r.HasField("max_distance") else None,
        playbook=domain.PlaybookOptions(
            enabled=p.enabled,
            namespace=p.namespace,
            role=p.role,
            boost_threshold=p.boost_threshold if p.HasField("boost_threshold") else None,
            inject_threshold=p.inject_threshold if p.HasField("inject_threshold") else None,
        ),
        output_fields=tuple(r.output_fields),
        params=params,
        consistency=_CONSISTENCY.get(r.consistency),
    )


def hit_pb(h: domain.SearchHit) -> pb.SearchHit:
    out = pb.SearchHit(
        collection=h.collection, id=h.id, distance=h.distance, text=h.text, metadata=field_values(h.metadata)
    )
    if h.playbook is not None:
        e = h.playbook
        out.playbook.CopyFrom(
            pb.PlaybookEffect(
                action=pb.PlaybookAction.Value(f"PLAYBOOK_ACTION_{e.action}"),
                entry_id=e.entry_id,
                recorded_query=e.recorded_query,
                query_distance=e.query_distance,
                score=e.score,
                distance_before=e.distance_before,
            )
        )
    return out


# -- health ----------------------------------------------------------------------------------------


class BackendHealth:
    """Keeps the service's health status in step with the backend: NOT_SERVING while Milvus does
    not answer, SERVING again once it does."""

    def __init__(self, backend: VectorBackend, interval_s: float = HEALTH_INTERVAL_S) -> None:
        self._backend = backend
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self, server: MeshServer, started: asyncio.Event) -> None:
        """Probes from when `started` is set (the backend has been started)."""
        self._task = asyncio.create_task(self._watch(server, started), name="lakehouse-vector-health")

    async def _watch(self, server: MeshServer, started: asyncio.Event) -> None:
        await started.wait()
        serving: bool | None = None
        while True:
            try:
                ok, why = await self._backend.healthy()
            except Exception as exc:  # a health probe must never stop probing
                ok, why = False, str(exc)
            if ok != serving:
                if ok:
                    log.info("vector backend answers: the vector service is SERVING")
                else:
                    log.warning("vector backend does not answer (%s): the vector service is NOT_SERVING", why)
                await server.set_serving(SERVICE.full_name, ok)
                serving = ok
            await asyncio.sleep(self._interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def build(
    config: Config, executor: BlockingExecutor, peers: PeerChannels, authenticator: TokenAuthenticator
) -> ServiceBinding:
    """The vector service ready to host (see the module docstring for what starts when)."""
    embedder = domain.EmbedderSlot(lambda: executor.run(OnnxEmbedder.load, config))
    backend = MilvusBackend(config.vector, config.data_dir)
    started = domain.OnFirstUse(backend.start, "the vector backend (Milvus)", "BACKEND_UNAVAILABLE")
    catalog = CatalogGateway(peers)
    indexer = Indexer(config, embedder, backend, QueryGateway(peers), catalog)
    memory = MemoryGateway(peers)
    vectors = domain.VectorService(config, embedder, backend, started, memory, catalog, catalog, indexer)
    servicer = VectorServicer(vectors, indexer)
    health = BackendHealth(backend)

    async def start(server: MeshServer) -> dict[str, str]:
        health.start(server, started.done)
        if config.vector.uri:  # a Milvus server: connecting is quick, and not fatal while it is down
            await started()
        return {}

    async def close() -> None:
        await health.stop()
        await started.settled()
        await vectors.close()
        await backend.close()
        await embedder.close()

    return ServiceBinding(
        name="vector",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_VectorServiceServicer_to_server(servicer, server),
        close=close,
        start=start,
    )
