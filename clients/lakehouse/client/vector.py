"""Typed async client for the vector service: embeddings, collections, vectors, search, indexing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from lakehouse.client._base import BaseAsyncClient
from lakehouse.common.v1 import refs_pb2
from lakehouse.vector.v1 import vector_service_pb2 as pb
from lakehouse.vector.v1 import vector_service_pb2_grpc as pb_grpc

Progress = Callable[[int, int], None]
"""Called with (rows done, rows total); total is 0 when unknown."""
Scalar = str | int | float | bool | None
CONSISTENCY = {
    "": pb.CONSISTENCY_UNSPECIFIED,
    "strong": pb.CONSISTENCY_STRONG,
    "bounded": pb.CONSISTENCY_BOUNDED,
    "eventually": pb.CONSISTENCY_EVENTUALLY,
}
# Index build parameters by index type: which message carries them.
_INDEX_PARAMS = {"hnsw": pb.HnswParams, "ivf_flat": pb.IvfFlatParams, "gpu_cagra": pb.GpuCagraParams}


def _enum(enum: Any, prefix: str, name: str) -> Any:
    """An enum value by its short name, for example ("cosine" -> DISTANCE_METRIC_COSINE)."""
    try:
        return enum.Value(f"{prefix}{name.upper()}")
    except ValueError:
        valid = ", ".join(k.removeprefix(prefix).lower() for k in enum.keys()[1:])
        raise ValueError(f"unknown value {name!r}; choose from {valid}") from None


def index_spec(kind: str = "autoindex", **params: int) -> pb.IndexSpec:
    """An index type ("autoindex", "flat", "ivf_flat", "hnsw", "gpu_cagra") with its build
    parameters by field name, for example `index_spec("hnsw", m=32, ef_construction=256)`."""
    spec = pb.IndexSpec(type=_enum(pb.IndexType, "INDEX_TYPE_", kind))
    if params:
        message = _INDEX_PARAMS.get(kind.lower())
        if message is None:
            raise ValueError(f"index type {kind!r} takes no parameters")
        getattr(spec, kind.lower()).CopyFrom(message(**params))
    return spec


def scalar_field(name: str, kind: str = "string", *, nullable: bool = True, max_length: int = 0) -> pb.ScalarField:
    """A declared scalar field: kind "string", "int64", "double" or "bool"."""
    return pb.ScalarField(
        name=name, type=_enum(pb.FieldType, "FIELD_TYPE_", kind), nullable=nullable, max_length=max_length
    )


def field_value(value: Scalar) -> pb.FieldValue:
    """A Python scalar as a FieldValue; None is null."""
    if value is None:
        return pb.FieldValue()
    if isinstance(value, bool):
        return pb.FieldValue(bool_value=value)
    if isinstance(value, int):
        return pb.FieldValue(int64_value=value)
    if isinstance(value, float):
        return pb.FieldValue(double_value=value)
    return pb.FieldValue(string_value=str(value))


def scalar(value: pb.FieldValue) -> Scalar:
    """A FieldValue as a Python scalar; unset is None."""
    kind = value.WhichOneof("kind")
    return None if kind is None else getattr(value, kind)


def metadata_of(message: pb.VectorRecord | pb.SearchHit) -> dict[str, Scalar]:
    """A record's or hit's metadata as plain Python values."""
    return {key: scalar(value) for key, value in message.metadata.items()}


def vector_record(
    id: str, vector: Sequence[float] | None = None, *, text: str = "", metadata: Mapping[str, Scalar] | None = None
) -> pb.VectorRecord:
    """A record to upsert; without `vector` the server embeds `text`."""
    record = pb.VectorRecord(id=id, text=text, metadata={k: field_value(v) for k, v in (metadata or {}).items()})
    if vector is not None:
        record.vector.values.extend(float(x) for x in vector)
    return record


def playbook(
    namespace: str = "",
    *,
    role: str = "",
    boost_threshold: float | None = None,
    inject_threshold: float | None = None,
) -> pb.PlaybookOptions:
    """Playbook re-ranking turned on, in `namespace` (empty: the server's default) for `role`."""
    options = pb.PlaybookOptions(enabled=True, namespace=namespace, role=role)
    if boost_threshold is not None:
        options.boost_threshold = boost_threshold
    if inject_threshold is not None:
        options.inject_threshold = inject_threshold
    return options


def search_params(
    *, ef: int | None = None, nprobe: int | None = None, itopk_size: int | None = None
) -> pb.SearchParams:
    params = pb.SearchParams()
    for name, value in (("ef", ef), ("nprobe", nprobe), ("itopk_size", itopk_size)):
        if value is not None:
            setattr(params, name, value)
    return params


class AsyncVectorClient(BaseAsyncClient):
    """Embeddings, collections, vectors, multi-collection search, and indexing datasets."""

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.VectorServiceStub(channel)

    # -- embeddings ----------------------------------------------------------------------------

    async def embed(self, texts: Sequence[str]) -> pb.EmbedResponse:
        """One embedding per text, in order, from the server's model."""
        return await self._unary(self._stub.Embed, pb.EmbedRequest(texts=list(texts)))

    async def get_embedder_info(self) -> pb.GetEmbedderInfoResponse:
        """The model, the execution providers running it, batching and cache statistics."""
        return await self._unary(self._stub.GetEmbedderInfo, pb.GetEmbedderInfoRequest())

    # -- collections ---------------------------------------------------------------------------

    async def create_collection(
        self,
        name: str,
        *,
        dimension: int = 0,
        metric: str = "cosine",
        index: pb.IndexSpec | None = None,
        fields: Sequence[pb.ScalarField] = (),
        description: str = "",
    ) -> pb.Collection:
        """Creates a collection; dimension 0 takes the embedder's (and records its model)."""
        collection = pb.Collection(
            name=name,
            dimension=dimension,
            metric=_enum(pb.DistanceMetric, "DISTANCE_METRIC_", metric),
            index=index,
            fields=list(fields),
            description=description,
        )
        request = pb.CreateCollectionRequest(collection=collection)
        # A repeat after success would answer COLLECTION_EXISTS: retried only when never sent.
        return (await self._unary(self._stub.CreateCollection, request, idempotent=False)).collection

    async def get_collection(self, name: str) -> pb.Collection:
        return (await self._unary(self._stub.GetCollection, pb.GetCollectionRequest(name=name))).collection

    async def list_collections(self, *, page_size: int = 0, page_token: str = "") -> pb.ListCollectionsResponse:
        """One page of the collections the caller may read, sorted by name."""
        request = pb.ListCollectionsRequest(page_size=page_size, page_token=page_token)
        return await self._unary(self._stub.ListCollections, request)

    async def all_collections(self) -> list[pb.Collection]:
        """Every collection the caller may read, sorted by name."""
        collections, token = [], ""
        while True:
            page = await self.list_collections(page_size=1000, page_token=token)
            collections += list(page.collections)
            token = page.next_page_token
            if not token:
                return collections

    async def delete_collection(self, name: str) -> None:
        """Deletes a collection and its vectors."""
        # A repeat after success would answer COLLECTION_NOT_FOUND: retried only when never sent.
        await self._unary(self._stub.DeleteCollection, pb.DeleteCollectionRequest(name=name), idempotent=False)

    # -- vectors -------------------------------------------------------------------------------

    async def upsert_vectors(self, collection: str, records: Sequence[pb.VectorRecord]) -> pb.UpsertVectorsResponse:
        """Inserts or replaces records by id (see `vector_record`); records without a vector have
        their text embedded by the server."""
        request = pb.UpsertVectorsRequest(collection=collection, records=list(records))
        # Idempotent: writing the same records again leaves the same state.
        return await self._unary(self._stub.UpsertVectors, request)

    async def delete_vectors(self, collection: str, *, ids: Sequence[str] = (), filter: str = "") -> int:
        """Deletes vectors by id or by a filter expression (give one); returns how many went."""
        request = pb.DeleteVectorsRequest(collection=collection, ids=list(ids), filter=filter)
        # Idempotent: deleting what is already gone deletes nothing more.
        return (await self._unary(self._stub.DeleteVectors, request)).deleted_count

    async def get_vectors(
        self,
        collection: str,
        ids: Sequence[str],
        *,
        include_vectors: bool = False,
        output_fields: Sequence[str] = (),
    ) -> list[pb.VectorRecord]:
        """The records with these ids that exist, in request order."""
        request = pb.GetVectorsRequest(
            collection=collection, ids=list(ids), include_vectors=include_vectors, output_fields=list(output_fields)
        )
        return list((await self._unary(self._stub.GetVectors, request)).records)

    # -- search --------------------------------------------------------------------------------

    async def search(
        self,
        collections: str | Sequence[str],
        *,
        text: str | None = None,
        vector: Sequence[float] | None = None,
        k: int = 0,
        per_collection_k: int = 0,
        filter: str = "",
        exclude_ids: Sequence[str] = (),
        max_distance: float | None = None,
        playbook: pb.PlaybookOptions | None = None,
        output_fields: Sequence[str] = (),
        params: pb.SearchParams | None = None,
        consistency: str = "",
    ) -> pb.SearchResponse:
        """Searches one or more collections with a text (embedded once by the server) or a
        vector; hits come merged by distance, closest first, each naming its collection."""
        if (text is None) == (vector is None):
            raise ValueError("give exactly one of text and vector")
        request = pb.SearchRequest(
            collections=[collections] if isinstance(collections, str) else list(collections),
            k=k,
            per_collection_k=per_collection_k,
            filter=filter,
            exclude_ids=list(exclude_ids),
            playbook=playbook,
            output_fields=list(output_fields),
            params=params,
            consistency=CONSISTENCY[consistency.lower()],
        )
        if text is not None:
            request.text = text
        else:
            request.vector.values.extend(float(x) for x in vector or ())
        if max_distance is not None:
            request.max_distance = max_distance
        return await self._unary(self._stub.Search, request)

    # -- indexing ------------------------------------------------------------------------------

    async def index_dataset(
        self,
        collection: str,
        dataset: str,
        *,
        id_column: str,
        text_columns: Sequence[str],
        metadata_columns: Sequence[str] = (),
        version: int | None = None,
        max_tokens: int = 0,
        overlap_tokens: int = 0,
        incremental: bool | None = None,
        progress: Progress | None = None,
        timeout_s: float = 24 * 3600,
    ) -> pb.IndexSummary:
        """Embeds `text_columns` of a dataset or view into `collection`; `progress` gets rows done."""
        request = pb.IndexDatasetRequest(
            source=refs_pb2.DatasetRef(dataset=dataset, version=version),
            id_column=id_column,
            text_columns=list(text_columns),
            metadata_columns=list(metadata_columns),
            collection=collection,
            chunking=pb.Chunking(max_tokens=max_tokens, overlap_tokens=overlap_tokens) if max_tokens else None,
            incremental=incremental,
        )
        async for event in self.index_dataset_events(request, timeout_s=timeout_s):
            if event.HasField("summary"):
                return event.summary
            if progress:
                progress(event.progress.rows_done, event.progress.rows_total)
        raise ConnectionError("the index stream ended without a summary")

    def index_dataset_events(
        self, request: pb.IndexDatasetRequest, *, timeout_s: float = 24 * 3600
    ) -> AsyncIterator[pb.IndexDatasetResponse]:
        """The raw IndexDataset stream: progress events, then the summary. Closing it early
        cancels the run (batches already written stay)."""
        # Another run already writing answers INDEX_RUNNING: retried only when never sent.
        return self._server_stream(self._stub.IndexDataset, request, timeout_s=timeout_s, idempotent=False)

    async def get_index_status(self, collection: str) -> pb.GetIndexStatusResponse:
        return await self._unary(self._stub.GetIndexStatus, pb.GetIndexStatusRequest(collection=collection))

    async def evaluate_recall(
        self,
        collection: str,
        *,
        sample_size: int = 0,
        k: int = 0,
        params: pb.SearchParams | None = None,
        seed: int | None = None,
        timeout_s: float | None = None,
    ) -> pb.EvaluateRecallResponse:
        """recall@k of the collection's index against exact search, with index search latency."""
        request = pb.EvaluateRecallRequest(
            collection=collection, sample_size=sample_size, k=k, params=params, seed=seed
        )
        return await self._unary(self._stub.EvaluateRecall, request, timeout_s=timeout_s)
