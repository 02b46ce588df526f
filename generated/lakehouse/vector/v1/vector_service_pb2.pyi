import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lakehouse.common.v1 import progress_pb2 as _progress_pb2
from lakehouse.common.v1 import refs_pb2 as _refs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedderPrecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBEDDER_PRECISION_UNSPECIFIED: _ClassVar[EmbedderPrecision]
    EMBEDDER_PRECISION_FP32: _ClassVar[EmbedderPrecision]
    EMBEDDER_PRECISION_FP16: _ClassVar[EmbedderPrecision]
    EMBEDDER_PRECISION_INT8: _ClassVar[EmbedderPrecision]

class DistanceMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISTANCE_METRIC_UNSPECIFIED: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_COSINE: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_IP: _ClassVar[DistanceMetric]
    DISTANCE_METRIC_L2: _ClassVar[DistanceMetric]

class IndexType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_TYPE_UNSPECIFIED: _ClassVar[IndexType]
    INDEX_TYPE_AUTOINDEX: _ClassVar[IndexType]
    INDEX_TYPE_FLAT: _ClassVar[IndexType]
    INDEX_TYPE_IVF_FLAT: _ClassVar[IndexType]
    INDEX_TYPE_HNSW: _ClassVar[IndexType]
    INDEX_TYPE_GPU_CAGRA: _ClassVar[IndexType]

class FieldType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIELD_TYPE_UNSPECIFIED: _ClassVar[FieldType]
    FIELD_TYPE_STRING: _ClassVar[FieldType]
    FIELD_TYPE_INT64: _ClassVar[FieldType]
    FIELD_TYPE_DOUBLE: _ClassVar[FieldType]
    FIELD_TYPE_BOOL: _ClassVar[FieldType]

class IndexState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_STATE_UNSPECIFIED: _ClassVar[IndexState]
    INDEX_STATE_BUILDING: _ClassVar[IndexState]
    INDEX_STATE_READY: _ClassVar[IndexState]
    INDEX_STATE_FAILED: _ClassVar[IndexState]

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_UNSPECIFIED: _ClassVar[Consistency]
    CONSISTENCY_STRONG: _ClassVar[Consistency]
    CONSISTENCY_BOUNDED: _ClassVar[Consistency]
    CONSISTENCY_EVENTUALLY: _ClassVar[Consistency]

class PlaybookAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAYBOOK_ACTION_UNSPECIFIED: _ClassVar[PlaybookAction]
    PLAYBOOK_ACTION_BOOSTED: _ClassVar[PlaybookAction]
    PLAYBOOK_ACTION_INJECTED: _ClassVar[PlaybookAction]

class IndexRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_RUN_STATE_UNSPECIFIED: _ClassVar[IndexRunState]
    INDEX_RUN_STATE_IDLE: _ClassVar[IndexRunState]
    INDEX_RUN_STATE_RUNNING: _ClassVar[IndexRunState]
    INDEX_RUN_STATE_FAILED: _ClassVar[IndexRunState]
EMBEDDER_PRECISION_UNSPECIFIED: EmbedderPrecision
EMBEDDER_PRECISION_FP32: EmbedderPrecision
EMBEDDER_PRECISION_FP16: EmbedderPrecision
EMBEDDER_PRECISION_INT8: EmbedderPrecision
DISTANCE_METRIC_UNSPECIFIED: DistanceMetric
DISTANCE_METRIC_COSINE: DistanceMetric
DISTANCE_METRIC_IP: DistanceMetric
DISTANCE_METRIC_L2: DistanceMetric
INDEX_TYPE_UNSPECIFIED: IndexType
INDEX_TYPE_AUTOINDEX: IndexType
INDEX_TYPE_FLAT: IndexType
INDEX_TYPE_IVF_FLAT: IndexType
INDEX_TYPE_HNSW: IndexType
INDEX_TYPE_GPU_CAGRA: IndexType
FIELD_TYPE_UNSPECIFIED: FieldType
FIELD_TYPE_STRING: FieldType
FIELD_TYPE_INT64: FieldType
FIELD_TYPE_DOUBLE: FieldType
FIELD_TYPE_BOOL: FieldType
INDEX_STATE_UNSPECIFIED: IndexState
INDEX_STATE_BUILDING: IndexState
INDEX_STATE_READY: IndexState
INDEX_STATE_FAILED: IndexState
CONSISTENCY_UNSPECIFIED: Consistency
CONSISTENCY_STRONG: Consistency
CONSISTENCY_BOUNDED: Consistency
CONSISTENCY_EVENTUALLY: Consistency
PLAYBOOK_ACTION_UNSPECIFIED: PlaybookAction
PLAYBOOK_ACTION_BOOSTED: PlaybookAction
PLAYBOOK_ACTION_INJECTED: PlaybookAction
INDEX_RUN_STATE_UNSPECIFIED: IndexRunState
INDEX_RUN_STATE_IDLE: IndexRunState
INDEX_RUN_STATE_RUNNING: IndexRunState
INDEX_RUN_STATE_FAILED: IndexRunState

class FloatVector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "token_count", "truncated")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    token_count: int
    truncated: bool
    def __init__(self, values: _Optional[_Iterable[float]] = ..., token_count: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "model", "dimension")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    model: str
    dimension: int
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., model: _Optional[str] = ..., dimension: _Optional[int] = ...) -> None: ...

class EmbeddingCacheStats(_message.Message):
    __slots__ = ("hits", "misses", "entries", "capacity")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    hits: int
    misses: int
    entries: int
    capacity: int
    def __init__(self, hits: _Optional[int] = ..., misses: _Optional[int] = ..., entries: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class GetEmbedderInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEmbedderInfoResponse(_message.Message):
    __slots__ = ("model", "model_sha256", "source", "dimension", "max_tokens", "precision", "execution_providers", "max_batch_size", "max_batch_wait", "cache")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_WAIT_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    model: str
    model_sha256: str
    source: str
    dimension: int
    max_tokens: int
    precision: EmbedderPrecision
    execution_providers: _containers.RepeatedScalarFieldContainer[str]
    max_batch_size: int
    max_batch_wait: _duration_pb2.Duration
    cache: EmbeddingCacheStats
    def __init__(self, model: _Optional[str] = ..., model_sha256: _Optional[str] = ..., source: _Optional[str] = ..., dimension: _Optional[int] = ..., max_tokens: _Optional[int] = ..., precision: _Optional[_Union[EmbedderPrecision, str]] = ..., execution_providers: _Optional[_Iterable[str]] = ..., max_batch_size: _Optional[int] = ..., max_batch_wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache: _Optional[_Union[EmbeddingCacheStats, _Mapping]] = ...) -> None: ...

class HnswParams(_message.Message):
    __slots__ = ("m", "ef_construction")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ...) -> None: ...

class IvfFlatParams(_message.Message):
    __slots__ = ("nlist",)
    NLIST_FIELD_NUMBER: _ClassVar[int]
    nlist: int
    def __init__(self, nlist: _Optional[int] = ...) -> None: ...

class GpuCagraParams(_message.Message):
    __slots__ = ("intermediate_graph_degree", "graph_degree")
    INTERMEDIATE_GRAPH_DEGREE_FIELD_NUMBER: _ClassVar[int]
    GRAPH_DEGREE_FIELD_NUMBER: _ClassVar[int]
    intermediate_graph_degree: int
    graph_degree: int
    def __init__(self, intermediate_graph_degree: _Optional[int] = ..., graph_degree: _Optional[int] = ...) -> None: ...

class IndexSpec(_message.Message):
    __slots__ = ("type", "hnsw", "ivf_flat", "gpu_cagra")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    IVF_FLAT_FIELD_NUMBER: _ClassVar[int]
    GPU_CAGRA_FIELD_NUMBER: _ClassVar[int]
    type: IndexType
    hnsw: HnswParams
    ivf_flat: IvfFlatParams
    gpu_cagra: GpuCagraParams
    def __init__(self, type: _Optional[_Union[IndexType, str]] = ..., hnsw: _Optional[_Union[HnswParams, _Mapping]] = ..., ivf_flat: _Optional[_Union[IvfFlatParams, _Mapping]] = ..., gpu_cagra: _Optional[_Union[GpuCagraParams, _Mapping]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("ef", "nprobe", "itopk_size")
    EF_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    ITOPK_SIZE_FIELD_NUMBER: _ClassVar[int]
    ef: int
    nprobe: int
    itopk_size: int
    def __init__(self, ef: _Optional[int] = ..., nprobe: _Optional[int] = ..., itopk_size: _Optional[int] = ...) -> None: ...

class ScalarField(_message.Message):
    __slots__ = ("name", "type", "nullable", "max_length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: FieldType
    nullable: bool
    max_length: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[FieldType, str]] = ..., nullable: _Optional[bool] = ..., max_length: _Optional[int] = ...) -> None: ...

class FieldValue(_message.Message):
    __slots__ = ("string_value", "int64_value", "double_value", "bool_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    int64_value: int
    double_value: float
    bool_value: bool
    def __init__(self, string_value: _Optional[str] = ..., int64_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "dimension", "metric", "index", "fields", "description", "embedder_model", "row_count", "index_state", "source_dataset", "create_time", "indexed_rows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DATASET_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    INDEXED_ROWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: DistanceMetric
    index: IndexSpec
    fields: _containers.RepeatedCompositeFieldContainer[ScalarField]
    description: str
    embedder_model: str
    row_count: int
    index_state: IndexState
    source_dataset: str
    create_time: _timestamp_pb2.Timestamp
    indexed_rows: int
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[DistanceMetric, str]] = ..., index: _Optional[_Union[IndexSpec, _Mapping]] = ..., fields: _Optional[_Iterable[_Union[ScalarField, _Mapping]]] = ..., description: _Optional[str] = ..., embedder_model: _Optional[str] = ..., row_count: _Optional[int] = ..., index_state: _Optional[_Union[IndexState, str]] = ..., source_dataset: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indexed_rows: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "next_page_token")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    next_page_token: str
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VectorRecord(_message.Message):
    __slots__ = ("id", "vector", "text", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: FloatVector
    text: str
    metadata: _containers.MessageMap[str, FieldValue]
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Union[FloatVector, _Mapping]] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, FieldValue]] = ...) -> None: ...

class UpsertVectorsRequest(_message.Message):
    __slots__ = ("collection", "records")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    records: _containers.RepeatedCompositeFieldContainer[VectorRecord]
    def __init__(self, collection: _Optional[str] = ..., records: _Optional[_Iterable[_Union[VectorRecord, _Mapping]]] = ...) -> None: ...

class UpsertVectorsResponse(_message.Message):
    __slots__ = ("upserted_count", "embedded_count")
    UPSERTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    upserted_count: int
    embedded_count: int
    def __init__(self, upserted_count: _Optional[int] = ..., embedded_count: _Optional[int] = ...) -> None: ...

class DeleteVectorsRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ...) -> None: ...

class DeleteVectorsResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...

class GetVectorsRequest(_message.Message):
    __slots__ = ("collection", "ids", "include_vectors", "output_fields")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    include_vectors: bool
    output_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., include_vectors: _Optional[bool] = ..., output_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVectorsResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[VectorRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[VectorRecord, _Mapping]]] = ...) -> None: ...

class PlaybookOptions(_message.Message):
    __slots__ = ("enabled", "namespace", "role", "boost_threshold", "inject_threshold")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    BOOST_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    INJECT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    namespace: str
    role: str
    boost_threshold: float
    inject_threshold: float
    def __init__(self, enabled: _Optional[bool] = ..., namespace: _Optional[str] = ..., role: _Optional[str] = ..., boost_threshold: _Optional[float] = ..., inject_threshold: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collections", "text", "vector", "k", "per_collection_k", "filter", "exclude_ids", "max_distance", "playbook", "output_fields", "params", "consistency")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PER_COLLECTION_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedScalarFieldContainer[str]
    text: str
    vector: FloatVector
    k: int
    per_collection_k: int
    filter: str
    exclude_ids: _containers.RepeatedScalarFieldContainer[str]
    max_distance: float
    playbook: PlaybookOptions
    output_fields: _containers.RepeatedScalarFieldContainer[str]
    params: SearchParams
    consistency: Consistency
    def __init__(self, collections: _Optional[_Iterable[str]] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[FloatVector, _Mapping]] = ..., k: _Optional[int] = ..., per_collection_k: _Optional[int] = ..., filter: _Optional[str] = ..., exclude_ids: _Optional[_Iterable[str]] = ..., max_distance: _Optional[float] = ..., playbook: _Optional[_Union[PlaybookOptions, _Mapping]] = ..., output_fields: _Optional[_Iterable[str]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class PlaybookEffect(_message.Message):
    __slots__ = ("action", "entry_id", "recorded_query", "query_distance", "score", "distance_before")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_QUERY_FIELD_NUMBER: _ClassVar[int]
    QUERY_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    action: PlaybookAction
    entry_id: str
    recorded_query: str
    query_distance: float
    score: float
    distance_before: float
    def __init__(self, action: _Optional[_Union[PlaybookAction, str]] = ..., entry_id: _Optional[str] = ..., recorded_query: _Optional[str] = ..., query_distance: _Optional[float] = ..., score: _Optional[float] = ..., distance_before: _Optional[float] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("collection", "id", "distance", "text", "metadata", "playbook")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldValue, _Mapping]] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    collection: str
    id: str
    distance: float
    text: str
    metadata: _containers.MessageMap[str, FieldValue]
    playbook: PlaybookEffect
    def __init__(self, collection: _Optional[str] = ..., id: _Optional[str] = ..., distance: _Optional[float] = ..., text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, FieldValue]] = ..., playbook: _Optional[_Union[PlaybookEffect, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "model")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    model: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class Chunking(_message.Message):
    __slots__ = ("max_tokens", "overlap_tokens")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    overlap_tokens: int
    def __init__(self, max_tokens: _Optional[int] = ..., overlap_tokens: _Optional[int] = ...) -> None: ...

class IndexDatasetRequest(_message.Message):
    __slots__ = ("source", "id_column", "text_columns", "metadata_columns", "collection", "chunking", "incremental")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    METADATA_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    INCREMENTAL_FIELD_NUMBER: _ClassVar[int]
    source: _refs_pb2.DatasetRef
    id_column: str
    text_columns: _containers.RepeatedScalarFieldContainer[str]
    metadata_columns: _containers.RepeatedScalarFieldContainer[str]
    collection: str
    chunking: Chunking
    incremental: bool
    def __init__(self, source: _Optional[_Union[_refs_pb2.DatasetRef, _Mapping]] = ..., id_column: _Optional[str] = ..., text_columns: _Optional[_Iterable[str]] = ..., metadata_columns: _Optional[_Iterable[str]] = ..., collection: _Optional[str] = ..., chunking: _Optional[_Union[Chunking, _Mapping]] = ..., incremental: _Optional[bool] = ...) -> None: ...

class IndexSummary(_message.Message):
    __slots__ = ("collection", "dataset", "dataset_version", "rows_read", "rows_embedded", "rows_unchanged", "rows_removed", "vectors_upserted", "elapsed")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    ROWS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    ROWS_UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    ROWS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_UPSERTED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    dataset: str
    dataset_version: int
    rows_read: int
    rows_embedded: int
    rows_unchanged: int
    rows_removed: int
    vectors_upserted: int
    elapsed: _duration_pb2.Duration
    def __init__(self, collection: _Optional[str] = ..., dataset: _Optional[str] = ..., dataset_version: _Optional[int] = ..., rows_read: _Optional[int] = ..., rows_embedded: _Optional[int] = ..., rows_unchanged: _Optional[int] = ..., rows_removed: _Optional[int] = ..., vectors_upserted: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IndexDatasetResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: _progress_pb2.Progress
    summary: IndexSummary
    def __init__(self, progress: _Optional[_Union[_progress_pb2.Progress, _Mapping]] = ..., summary: _Optional[_Union[IndexSummary, _Mapping]] = ...) -> None: ...

class GetIndexStatusRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class GetIndexStatusResponse(_message.Message):
    __slots__ = ("collection", "dataset", "id_column", "text_columns", "state", "progress", "rows_embedded", "covered_version", "current_version", "stale", "last_indexed_time", "last_error")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ID_COLUMN_FIELD_NUMBER: _ClassVar[int]
    TEXT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ROWS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    COVERED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEXED_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    collection: str
    dataset: str
    id_column: str
    text_columns: _containers.RepeatedScalarFieldContainer[str]
    state: IndexRunState
    progress: _progress_pb2.Progress
    rows_embedded: int
    covered_version: int
    current_version: int
    stale: bool
    last_indexed_time: _timestamp_pb2.Timestamp
    last_error: str
    def __init__(self, collection: _Optional[str] = ..., dataset: _Optional[str] = ..., id_column: _Optional[str] = ..., text_columns: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[IndexRunState, str]] = ..., progress: _Optional[_Union[_progress_pb2.Progress, _Mapping]] = ..., rows_embedded: _Optional[int] = ..., covered_version: _Optional[int] = ..., current_version: _Optional[int] = ..., stale: _Optional[bool] = ..., last_indexed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class EvaluateRecallRequest(_message.Message):
    __slots__ = ("collection", "sample_size", "k", "params", "seed")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    collection: str
    sample_size: int
    k: int
    params: SearchParams
    seed: int
    def __init__(self, collection: _Optional[str] = ..., sample_size: _Optional[int] = ..., k: _Optional[int] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class EvaluateRecallResponse(_message.Message):
    __slots__ = ("recall_at_k", "k", "sample_size", "latency_p50", "latency_p95", "index_type", "seed")
    RECALL_AT_K_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    recall_at_k: float
    k: int
    sample_size: int
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    index_type: IndexType
    seed: int
    def __init__(self, recall_at_k: _Optional[float] = ..., k: _Optional[int] = ..., sample_size: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., index_type: _Optional[_Union[IndexType, str]] = ..., seed: _Optional[int] = ...) -> None: ...
