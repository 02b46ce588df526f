import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lakehouse.common.v1 import arrow_pb2 as _arrow_pb2
from lakehouse.common.v1 import progress_pb2 as _progress_pb2
from lakehouse.common.v1 import refs_pb2 as _refs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TableKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TABLE_KIND_UNSPECIFIED: _ClassVar[TableKind]
    TABLE_KIND_DATASET: _ClassVar[TableKind]
    TABLE_KIND_VIEW: _ClassVar[TableKind]

class IngestMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_MODE_UNSPECIFIED: _ClassVar[IngestMode]
    INGEST_MODE_CREATE: _ClassVar[IngestMode]
    INGEST_MODE_APPEND: _ClassVar[IngestMode]
    INGEST_MODE_OVERWRITE: _ClassVar[IngestMode]

class FileFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_FORMAT_UNSPECIFIED: _ClassVar[FileFormat]
    FILE_FORMAT_CSV: _ClassVar[FileFormat]
    FILE_FORMAT_TSV: _ClassVar[FileFormat]
    FILE_FORMAT_JSON: _ClassVar[FileFormat]
    FILE_FORMAT_NDJSON: _ClassVar[FileFormat]
    FILE_FORMAT_PARQUET: _ClassVar[FileFormat]

class BadRowHandling(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BAD_ROW_HANDLING_UNSPECIFIED: _ClassVar[BadRowHandling]
    BAD_ROW_HANDLING_FAIL: _ClassVar[BadRowHandling]
    BAD_ROW_HANDLING_SKIP: _ClassVar[BadRowHandling]

class DatabaseDriver(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATABASE_DRIVER_UNSPECIFIED: _ClassVar[DatabaseDriver]
    DATABASE_DRIVER_POSTGRESQL: _ClassVar[DatabaseDriver]
    DATABASE_DRIVER_SQLITE: _ClassVar[DatabaseDriver]
    DATABASE_DRIVER_DUCKDB: _ClassVar[DatabaseDriver]
TABLE_KIND_UNSPECIFIED: TableKind
TABLE_KIND_DATASET: TableKind
TABLE_KIND_VIEW: TableKind
INGEST_MODE_UNSPECIFIED: IngestMode
INGEST_MODE_CREATE: IngestMode
INGEST_MODE_APPEND: IngestMode
INGEST_MODE_OVERWRITE: IngestMode
FILE_FORMAT_UNSPECIFIED: FileFormat
FILE_FORMAT_CSV: FileFormat
FILE_FORMAT_TSV: FileFormat
FILE_FORMAT_JSON: FileFormat
FILE_FORMAT_NDJSON: FileFormat
FILE_FORMAT_PARQUET: FileFormat
BAD_ROW_HANDLING_UNSPECIFIED: BadRowHandling
BAD_ROW_HANDLING_FAIL: BadRowHandling
BAD_ROW_HANDLING_SKIP: BadRowHandling
DATABASE_DRIVER_UNSPECIFIED: DatabaseDriver
DATABASE_DRIVER_POSTGRESQL: DatabaseDriver
DATABASE_DRIVER_SQLITE: DatabaseDriver
DATABASE_DRIVER_DUCKDB: DatabaseDriver

class QueryParameter(_message.Message):
    __slots__ = ("name", "string_value", "int64_value", "double_value", "bool_value", "bytes_value", "null_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT64_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    string_value: str
    int64_value: int
    double_value: float
    bool_value: bool
    bytes_value: bytes
    null_value: _struct_pb2.NullValue
    def __init__(self, name: _Optional[str] = ..., string_value: _Optional[str] = ..., int64_value: _Optional[int] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., bytes_value: _Optional[bytes] = ..., null_value: _Optional[_Union[_struct_pb2.NullValue, str]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("sql", "parameters", "as_of", "max_inline_rows", "timeout")
    class AsOfEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SQL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    MAX_INLINE_ROWS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    sql: str
    parameters: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    as_of: _containers.ScalarMap[str, int]
    max_inline_rows: int
    timeout: _duration_pb2.Duration
    def __init__(self, sql: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., as_of: _Optional[_Mapping[str, int]] = ..., max_inline_rows: _Optional[int] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("result", "truncated", "flight_ticket", "flight_location", "versions_read", "elapsed")
    class VersionsReadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FLIGHT_TICKET_FIELD_NUMBER: _ClassVar[int]
    FLIGHT_LOCATION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_READ_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    result: _arrow_pb2.ArrowTable
    truncated: bool
    flight_ticket: bytes
    flight_location: str
    versions_read: _containers.ScalarMap[str, int]
    elapsed: _duration_pb2.Duration
    def __init__(self, result: _Optional[_Union[_arrow_pb2.ArrowTable, _Mapping]] = ..., truncated: _Optional[bool] = ..., flight_ticket: _Optional[bytes] = ..., flight_location: _Optional[str] = ..., versions_read: _Optional[_Mapping[str, int]] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExplainRequest(_message.Message):
    __slots__ = ("sql", "parameters", "as_of", "analyze", "timeout")
    class AsOfEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SQL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    ANALYZE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    sql: str
    parameters: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    as_of: _containers.ScalarMap[str, int]
    analyze: bool
    timeout: _duration_pb2.Duration
    def __init__(self, sql: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., as_of: _Optional[_Mapping[str, int]] = ..., analyze: _Optional[bool] = ..., timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("plan", "schema", "versions_read")
    class VersionsReadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PLAN_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_READ_FIELD_NUMBER: _ClassVar[int]
    plan: str
    schema: _arrow_pb2.ArrowSchema
    versions_read: _containers.ScalarMap[str, int]
    def __init__(self, plan: _Optional[str] = ..., schema: _Optional[_Union[_arrow_pb2.ArrowSchema, _Mapping]] = ..., versions_read: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("name", "kind", "schema", "version", "row_count", "base_dataset", "description", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    BASE_DATASET_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: TableKind
    schema: _arrow_pb2.ArrowSchema
    version: int
    row_count: int
    base_dataset: str
    description: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[TableKind, str]] = ..., schema: _Optional[_Union[_arrow_pb2.ArrowSchema, _Mapping]] = ..., version: _Optional[int] = ..., row_count: _Optional[int] = ..., base_dataset: _Optional[str] = ..., description: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTablesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTablesResponse(_message.Message):
    __slots__ = ("tables", "next_page_token")
    TABLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[Table]
    next_page_token: str
    def __init__(self, tables: _Optional[_Iterable[_Union[Table, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CsvOptions(_message.Message):
    __slots__ = ("delimiter", "quote", "escape", "header", "null_strings")
    DELIMITER_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    ESCAPE_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NULL_STRINGS_FIELD_NUMBER: _ClassVar[int]
    delimiter: str
    quote: str
    escape: str
    header: bool
    null_strings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, delimiter: _Optional[str] = ..., quote: _Optional[str] = ..., escape: _Optional[str] = ..., header: _Optional[bool] = ..., null_strings: _Optional[_Iterable[str]] = ...) -> None: ...

class FileOptions(_message.Message):
    __slots__ = ("format", "csv", "column_types", "bad_rows")
    class ColumnTypesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CSV_FIELD_NUMBER: _ClassVar[int]
    COLUMN_TYPES_FIELD_NUMBER: _ClassVar[int]
    BAD_ROWS_FIELD_NUMBER: _ClassVar[int]
    format: FileFormat
    csv: CsvOptions
    column_types: _containers.ScalarMap[str, str]
    bad_rows: BadRowHandling
    def __init__(self, format: _Optional[_Union[FileFormat, str]] = ..., csv: _Optional[_Union[CsvOptions, _Mapping]] = ..., column_types: _Optional[_Mapping[str, str]] = ..., bad_rows: _Optional[_Union[BadRowHandling, str]] = ...) -> None: ...

class IngestSummary(_message.Message):
    __slots__ = ("dataset", "version", "created", "duplicate", "rows_written", "rows_skipped", "bytes_read", "content_sha256", "schema", "pii_columns", "warnings", "elapsed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    ROWS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    PII_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: int
    created: bool
    duplicate: bool
    rows_written: int
    rows_skipped: int
    bytes_read: int
    content_sha256: str
    schema: _arrow_pb2.ArrowSchema
    pii_columns: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    elapsed: _duration_pb2.Duration
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[int] = ..., created: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., rows_written: _Optional[int] = ..., rows_skipped: _Optional[int] = ..., bytes_read: _Optional[int] = ..., content_sha256: _Optional[str] = ..., schema: _Optional[_Union[_arrow_pb2.ArrowSchema, _Mapping]] = ..., pii_columns: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class IngestFileHeader(_message.Message):
    __slots__ = ("dataset", "mode", "file_name", "options", "size_bytes", "description")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    mode: IngestMode
    file_name: str
    options: FileOptions
    size_bytes: int
    description: str
    def __init__(self, dataset: _Optional[str] = ..., mode: _Optional[_Union[IngestMode, str]] = ..., file_name: _Optional[str] = ..., options: _Optional[_Union[FileOptions, _Mapping]] = ..., size_bytes: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class IngestFileRequest(_message.Message):
    __slots__ = ("header", "chunk", "commit")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    header: IngestFileHeader
    chunk: bytes
    commit: IngestFileCommit
    def __init__(self, header: _Optional[_Union[IngestFileHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., commit: _Optional[_Union[IngestFileCommit, _Mapping]] = ...) -> None: ...

class IngestFileCommit(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class IngestFileResponse(_message.Message):
    __slots__ = ("summary",)
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    summary: IngestSummary
    def __init__(self, summary: _Optional[_Union[IngestSummary, _Mapping]] = ...) -> None: ...

class IngestObjectRequest(_message.Message):
    __slots__ = ("object", "dataset", "mode", "options", "description")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    object: _refs_pb2.ObjectRef
    dataset: str
    mode: IngestMode
    options: FileOptions
    description: str
    def __init__(self, object: _Optional[_Union[_refs_pb2.ObjectRef, _Mapping]] = ..., dataset: _Optional[str] = ..., mode: _Optional[_Union[IngestMode, str]] = ..., options: _Optional[_Union[FileOptions, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class IngestObjectResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: _progress_pb2.Progress
    summary: IngestSummary
    def __init__(self, progress: _Optional[_Union[_progress_pb2.Progress, _Mapping]] = ..., summary: _Optional[_Union[IngestSummary, _Mapping]] = ...) -> None: ...

class IngestDatabaseRequest(_message.Message):
    __slots__ = ("dataset", "mode", "driver", "uri", "table", "query", "description")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    mode: IngestMode
    driver: DatabaseDriver
    uri: str
    table: str
    query: str
    description: str
    def __init__(self, dataset: _Optional[str] = ..., mode: _Optional[_Union[IngestMode, str]] = ..., driver: _Optional[_Union[DatabaseDriver, str]] = ..., uri: _Optional[str] = ..., table: _Optional[str] = ..., query: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class IngestDatabaseResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: _progress_pb2.Progress
    summary: IngestSummary
    def __init__(self, progress: _Optional[_Union[_progress_pb2.Progress, _Mapping]] = ..., summary: _Optional[_Union[IngestSummary, _Mapping]] = ...) -> None: ...

class CompactRequest(_message.Message):
    __slots__ = ("dataset", "apply_tombstones", "target_file_size_bytes")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    APPLY_TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    TARGET_FILE_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    apply_tombstones: bool
    target_file_size_bytes: int
    def __init__(self, dataset: _Optional[str] = ..., apply_tombstones: _Optional[bool] = ..., target_file_size_bytes: _Optional[int] = ...) -> None: ...

class CompactResponse(_message.Message):
    __slots__ = ("dataset", "version_before", "version_after", "files_removed", "files_added", "rows_erased", "tombstones_cleared", "elapsed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_AFTER_FIELD_NUMBER: _ClassVar[int]
    FILES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    FILES_ADDED_FIELD_NUMBER: _ClassVar[int]
    ROWS_ERASED_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_CLEARED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version_before: int
    version_after: int
    files_removed: int
    files_added: int
    rows_erased: int
    tombstones_cleared: int
    elapsed: _duration_pb2.Duration
    def __init__(self, dataset: _Optional[str] = ..., version_before: _Optional[int] = ..., version_after: _Optional[int] = ..., files_removed: _Optional[int] = ..., files_added: _Optional[int] = ..., rows_erased: _Optional[int] = ..., tombstones_cleared: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class VacuumRequest(_message.Message):
    __slots__ = ("dataset", "retention", "dry_run")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    retention: _duration_pb2.Duration
    dry_run: bool
    def __init__(self, dataset: _Optional[str] = ..., retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class VacuumResponse(_message.Message):
    __slots__ = ("dataset", "files_deleted", "bytes_deleted", "dry_run")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FILES_DELETED_FIELD_NUMBER: _ClassVar[int]
    BYTES_DELETED_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    files_deleted: _containers.RepeatedScalarFieldContainer[str]
    bytes_deleted: int
    dry_run: bool
    def __init__(self, dataset: _Optional[str] = ..., files_deleted: _Optional[_Iterable[str]] = ..., bytes_deleted: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeleteRowsRequest(_message.Message):
    __slots__ = ("dataset", "key_column", "key_values", "erasure_id", "dry_run")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUES_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_column: str
    key_values: _containers.RepeatedScalarFieldContainer[str]
    erasure_id: str
    dry_run: bool
    def __init__(self, dataset: _Optional[str] = ..., key_column: _Optional[str] = ..., key_values: _Optional[_Iterable[str]] = ..., erasure_id: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class DeleteRowsResponse(_message.Message):
    __slots__ = ("version_before", "version_after", "rows_removed", "files_removed")
    VERSION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_AFTER_FIELD_NUMBER: _ClassVar[int]
    ROWS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    FILES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    version_before: int
    version_after: int
    rows_removed: int
    files_removed: int
    def __init__(self, version_before: _Optional[int] = ..., version_after: _Optional[int] = ..., rows_removed: _Optional[int] = ..., files_removed: _Optional[int] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("version", "commit_time", "operation", "row_count", "schema_fingerprint", "actor", "source", "content_sha256", "delta_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIME_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DELTA_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    commit_time: _timestamp_pb2.Timestamp
    operation: str
    row_count: int
    schema_fingerprint: str
    actor: str
    source: str
    content_sha256: str
    delta_version: int
    def __init__(self, version: _Optional[int] = ..., commit_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., operation: _Optional[str] = ..., row_count: _Optional[int] = ..., schema_fingerprint: _Optional[str] = ..., actor: _Optional[str] = ..., source: _Optional[str] = ..., content_sha256: _Optional[str] = ..., delta_version: _Optional[int] = ...) -> None: ...

class GetDatasetHistoryRequest(_message.Message):
    __slots__ = ("dataset", "page_size", "page_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    page_size: int
    page_token: str
    def __init__(self, dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetDatasetHistoryResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
