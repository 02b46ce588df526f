import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lakehouse.common.v1 import progress_pb2 as _progress_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReindexMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REINDEX_MODE_UNSPECIFIED: _ClassVar[ReindexMode]
    REINDEX_MODE_MISSING: _ClassVar[ReindexMode]
    REINDEX_MODE_FULL: _ClassVar[ReindexMode]
REINDEX_MODE_UNSPECIFIED: ReindexMode
REINDEX_MODE_MISSING: ReindexMode
REINDEX_MODE_FULL: ReindexMode

class Trace(_message.Message):
    __slots__ = ("id", "namespace", "content", "metadata", "tags", "version", "replay_count", "retired", "retire_reason", "retire_time", "revises_id", "revised_by_id", "idempotency_key", "content_sha256", "create_time", "update_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETIRED_FIELD_NUMBER: _ClassVar[int]
    RETIRE_REASON_FIELD_NUMBER: _ClassVar[int]
    RETIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISES_ID_FIELD_NUMBER: _ClassVar[int]
    REVISED_BY_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    version: int
    replay_count: int
    retired: bool
    retire_reason: str
    retire_time: _timestamp_pb2.Timestamp
    revises_id: str
    revised_by_id: str
    idempotency_key: str
    content_sha256: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., version: _Optional[int] = ..., replay_count: _Optional[int] = ..., retired: _Optional[bool] = ..., retire_reason: _Optional[str] = ..., retire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revises_id: _Optional[str] = ..., revised_by_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., content_sha256: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TraceFilter(_message.Message):
    __slots__ = ("tags", "metadata", "create_time_after", "create_time_before")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    create_time_after: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    def __init__(self, tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., create_time_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddTraceRequest(_message.Message):
    __slots__ = ("namespace", "content", "metadata", "tags", "idempotency_key", "idempotent")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    idempotency_key: str
    idempotent: bool
    def __init__(self, namespace: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ..., idempotency_key: _Optional[str] = ..., idempotent: _Optional[bool] = ...) -> None: ...

class AddTraceResponse(_message.Message):
    __slots__ = ("trace", "replayed")
    TRACE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    replayed: bool
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetTraceRequest(_message.Message):
    __slots__ = ("namespace", "id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetTraceResponse(_message.Message):
    __slots__ = ("trace",)
    TRACE_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ...) -> None: ...

class ListTracesRequest(_message.Message):
    __slots__ = ("namespace", "page_size", "page_token", "filter", "include_retired", "include_superseded")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RETIRED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_size: int
    page_token: str
    filter: TraceFilter
    include_retired: bool
    include_superseded: bool
    def __init__(self, namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[_Union[TraceFilter, _Mapping]] = ..., include_retired: _Optional[bool] = ..., include_superseded: _Optional[bool] = ...) -> None: ...

class ListTracesResponse(_message.Message):
    __slots__ = ("traces", "next_page_token")
    TRACES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[Trace]
    next_page_token: str
    def __init__(self, traces: _Optional[_Iterable[_Union[Trace, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTraceRequest(_message.Message):
    __slots__ = ("trace", "update_mask", "expected_version")
    TRACE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    update_mask: _field_mask_pb2.FieldMask
    expected_version: int
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateTraceResponse(_message.Message):
    __slots__ = ("trace",)
    TRACE_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ...) -> None: ...

class ReviseTraceRequest(_message.Message):
    __slots__ = ("namespace", "id", "content", "metadata", "tags")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    content: str
    metadata: _containers.ScalarMap[str, str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., content: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ReviseTraceResponse(_message.Message):
    __slots__ = ("trace", "predecessor")
    TRACE_FIELD_NUMBER: _ClassVar[int]
    PREDECESSOR_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    predecessor: Trace
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ..., predecessor: _Optional[_Union[Trace, _Mapping]] = ...) -> None: ...

class RetireTraceRequest(_message.Message):
    __slots__ = ("namespace", "id", "reason")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    reason: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetireTraceResponse(_message.Message):
    __slots__ = ("trace",)
    TRACE_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ...) -> None: ...

class GetTraceHistoryRequest(_message.Message):
    __slots__ = ("namespace", "id", "max_depth")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    max_depth: int
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ..., max_depth: _Optional[int] = ...) -> None: ...

class GetTraceHistoryResponse(_message.Message):
    __slots__ = ("traces", "truncated")
    TRACES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    traces: _containers.RepeatedCompositeFieldContainer[Trace]
    truncated: bool
    def __init__(self, traces: _Optional[_Iterable[_Union[Trace, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SearchTracesRequest(_message.Message):
    __slots__ = ("namespaces", "query", "k", "filter", "include_retired", "include_superseded", "max_distance")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RETIRED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    query: str
    k: int
    filter: TraceFilter
    include_retired: bool
    include_superseded: bool
    max_distance: float
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., query: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[TraceFilter, _Mapping]] = ..., include_retired: _Optional[bool] = ..., include_superseded: _Optional[bool] = ..., max_distance: _Optional[float] = ...) -> None: ...

class TraceHit(_message.Message):
    __slots__ = ("trace", "distance")
    TRACE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    trace: Trace
    distance: float
    def __init__(self, trace: _Optional[_Union[Trace, _Mapping]] = ..., distance: _Optional[float] = ...) -> None: ...

class SearchTracesResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[TraceHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[TraceHit, _Mapping]]] = ...) -> None: ...

class TraceIds(_message.Message):
    __slots__ = ("namespace", "ids")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class NamespaceFilter(_message.Message):
    __slots__ = ("namespace", "filter")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    filter: TraceFilter
    def __init__(self, namespace: _Optional[str] = ..., filter: _Optional[_Union[TraceFilter, _Mapping]] = ...) -> None: ...

class SourceRows(_message.Message):
    __slots__ = ("dataset", "keys", "namespaces")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., namespaces: _Optional[_Iterable[str]] = ...) -> None: ...

class ForgetTracesRequest(_message.Message):
    __slots__ = ("ids", "filter", "source_rows", "reason", "erasure_id", "dry_run")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ROWS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ids: TraceIds
    filter: NamespaceFilter
    source_rows: SourceRows
    reason: str
    erasure_id: str
    dry_run: bool
    def __init__(self, ids: _Optional[_Union[TraceIds, _Mapping]] = ..., filter: _Optional[_Union[NamespaceFilter, _Mapping]] = ..., source_rows: _Optional[_Union[SourceRows, _Mapping]] = ..., reason: _Optional[str] = ..., erasure_id: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class NamespaceForgetCount(_message.Message):
    __slots__ = ("namespace", "traces_deleted", "vectors_deleted")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TRACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_DELETED_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    traces_deleted: int
    vectors_deleted: int
    def __init__(self, namespace: _Optional[str] = ..., traces_deleted: _Optional[int] = ..., vectors_deleted: _Optional[int] = ...) -> None: ...

class ForgetReceipt(_message.Message):
    __slots__ = ("id", "actor", "reason", "erasure_id", "dry_run", "traces_matched", "traces_not_found", "traces_deleted", "vectors_deleted", "namespaces", "start_time", "complete_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    TRACES_MATCHED_FIELD_NUMBER: _ClassVar[int]
    TRACES_NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    TRACES_DELETED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_DELETED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    actor: str
    reason: str
    erasure_id: str
    dry_run: bool
    traces_matched: int
    traces_not_found: int
    traces_deleted: int
    vectors_deleted: int
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceForgetCount]
    start_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., erasure_id: _Optional[str] = ..., dry_run: _Optional[bool] = ..., traces_matched: _Optional[int] = ..., traces_not_found: _Optional[int] = ..., traces_deleted: _Optional[int] = ..., vectors_deleted: _Optional[int] = ..., namespaces: _Optional[_Iterable[_Union[NamespaceForgetCount, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ForgetTracesResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: ForgetReceipt
    def __init__(self, receipt: _Optional[_Union[ForgetReceipt, _Mapping]] = ...) -> None: ...

class ReindexRequest(_message.Message):
    __slots__ = ("namespaces", "mode")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    mode: ReindexMode
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[ReindexMode, str]] = ...) -> None: ...

class ReindexSummary(_message.Message):
    __slots__ = ("namespaces", "traces_scanned", "vectors_written", "orphan_vectors_removed", "collections_created", "elapsed")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    TRACES_SCANNED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_VECTORS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_CREATED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    traces_scanned: int
    vectors_written: int
    orphan_vectors_removed: int
    collections_created: int
    elapsed: _duration_pb2.Duration
    def __init__(self, namespaces: _Optional[_Iterable[str]] = ..., traces_scanned: _Optional[int] = ..., vectors_written: _Optional[int] = ..., orphan_vectors_removed: _Optional[int] = ..., collections_created: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReindexResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: _progress_pb2.Progress
    summary: ReindexSummary
    def __init__(self, progress: _Optional[_Union[_progress_pb2.Progress, _Mapping]] = ..., summary: _Optional[_Union[ReindexSummary, _Mapping]] = ...) -> None: ...

class PlaybookEntry(_message.Message):
    __slots__ = ("id", "namespace", "query", "answer_collection", "answer_id", "score", "role", "tags", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    namespace: str
    query: str
    answer_collection: str
    answer_id: str
    score: float
    role: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., namespace: _Optional[str] = ..., query: _Optional[str] = ..., answer_collection: _Optional[str] = ..., answer_id: _Optional[str] = ..., score: _Optional[float] = ..., role: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordPlaybookRequest(_message.Message):
    __slots__ = ("namespace", "query", "answer_collection", "answer_id", "score", "role", "tags")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    query: str
    answer_collection: str
    answer_id: str
    score: float
    role: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., query: _Optional[str] = ..., answer_collection: _Optional[str] = ..., answer_id: _Optional[str] = ..., score: _Optional[float] = ..., role: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordPlaybookResponse(_message.Message):
    __slots__ = ("entry", "created")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    entry: PlaybookEntry
    created: bool
    def __init__(self, entry: _Optional[_Union[PlaybookEntry, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RecordPlaybookBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RecordPlaybookRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RecordPlaybookRequest, _Mapping]]] = ...) -> None: ...

class PlaybookRecordError(_message.Message):
    __slots__ = ("code", "reason", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    field: str
    message: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class PlaybookRecordResult(_message.Message):
    __slots__ = ("index", "entry", "error", "created")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    index: int
    entry: PlaybookEntry
    error: PlaybookRecordError
    created: bool
    def __init__(self, index: _Optional[int] = ..., entry: _Optional[_Union[PlaybookEntry, _Mapping]] = ..., error: _Optional[_Union[PlaybookRecordError, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RecordPlaybookBatchResponse(_message.Message):
    __slots__ = ("results", "recorded_count", "failed_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PlaybookRecordResult]
    recorded_count: int
    failed_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[PlaybookRecordResult, _Mapping]]] = ..., recorded_count: _Optional[int] = ..., failed_count: _Optional[int] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class LookupPlaybookRequest(_message.Message):
    __slots__ = ("namespace", "query_text", "query_vector", "max_distance", "role", "exclude_answer_ids", "answer_collections", "k")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_TEXT_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MAX_DISTANCE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ANSWER_IDS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    query_text: str
    query_vector: Vector
    max_distance: float
    role: str
    exclude_answer_ids: _containers.RepeatedScalarFieldContainer[str]
    answer_collections: _containers.RepeatedScalarFieldContainer[str]
    k: int
    def __init__(self, namespace: _Optional[str] = ..., query_text: _Optional[str] = ..., query_vector: _Optional[_Union[Vector, _Mapping]] = ..., max_distance: _Optional[float] = ..., role: _Optional[str] = ..., exclude_answer_ids: _Optional[_Iterable[str]] = ..., answer_collections: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ...) -> None: ...

class PlaybookMatch(_message.Message):
    __slots__ = ("entry", "distance")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    entry: PlaybookEntry
    distance: float
    def __init__(self, entry: _Optional[_Union[PlaybookEntry, _Mapping]] = ..., distance: _Optional[float] = ...) -> None: ...

class LookupPlaybookResponse(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[PlaybookMatch]
    def __init__(self, matches: _Optional[_Iterable[_Union[PlaybookMatch, _Mapping]]] = ...) -> None: ...

class ListPlaybookRequest(_message.Message):
    __slots__ = ("namespace", "page_size", "page_token", "role", "answer_collection", "tags")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_size: int
    page_token: str
    role: str
    answer_collection: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., role: _Optional[str] = ..., answer_collection: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPlaybookResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[PlaybookEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[PlaybookEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletePlaybookEntryRequest(_message.Message):
    __slots__ = ("namespace", "id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    id: str
    def __init__(self, namespace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeletePlaybookEntryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
