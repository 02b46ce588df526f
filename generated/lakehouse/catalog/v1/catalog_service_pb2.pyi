import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lakehouse.common.v1 import arrow_pb2 as _arrow_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PiiKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PII_KIND_UNSPECIFIED: _ClassVar[PiiKind]
    PII_KIND_EMAIL: _ClassVar[PiiKind]
    PII_KIND_PHONE: _ClassVar[PiiKind]
    PII_KIND_SSN: _ClassVar[PiiKind]
    PII_KIND_CARD_NUMBER: _ClassVar[PiiKind]
    PII_KIND_IP_ADDRESS: _ClassVar[PiiKind]
    PII_KIND_DATE_OF_BIRTH: _ClassVar[PiiKind]
    PII_KIND_ADDRESS: _ClassVar[PiiKind]
    PII_KIND_SALARY: _ClassVar[PiiKind]
    PII_KIND_PERSON_NAME: _ClassVar[PiiKind]

class SensitivitySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSITIVITY_SOURCE_UNSPECIFIED: _ClassVar[SensitivitySource]
    SENSITIVITY_SOURCE_DETECTED: _ClassVar[SensitivitySource]
    SENSITIVITY_SOURCE_OWNER: _ClassVar[SensitivitySource]

class VersionOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_OPERATION_UNSPECIFIED: _ClassVar[VersionOperation]
    VERSION_OPERATION_CREATE: _ClassVar[VersionOperation]
    VERSION_OPERATION_APPEND: _ClassVar[VersionOperation]
    VERSION_OPERATION_OVERWRITE: _ClassVar[VersionOperation]
    VERSION_OPERATION_DELETE: _ClassVar[VersionOperation]
    VERSION_OPERATION_COMPACT: _ClassVar[VersionOperation]
    VERSION_OPERATION_SCHEMA_EVOLUTION: _ClassVar[VersionOperation]

class RedactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDACTION_KIND_UNSPECIFIED: _ClassVar[RedactionKind]
    REDACTION_KIND_NULL: _ClassVar[RedactionKind]
    REDACTION_KIND_HASH: _ClassVar[RedactionKind]
    REDACTION_KIND_MASK: _ClassVar[RedactionKind]

class ErasureMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERASURE_MODE_UNSPECIFIED: _ClassVar[ErasureMode]
    ERASURE_MODE_SOFT: _ClassVar[ErasureMode]
    ERASURE_MODE_HARD: _ClassVar[ErasureMode]

class ErasureState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERASURE_STATE_UNSPECIFIED: _ClassVar[ErasureState]
    ERASURE_STATE_RUNNING: _ClassVar[ErasureState]
    ERASURE_STATE_COMPLETE: _ClassVar[ErasureState]
    ERASURE_STATE_FAILED: _ClassVar[ErasureState]

class DerivationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DERIVATION_KIND_UNSPECIFIED: _ClassVar[DerivationKind]
    DERIVATION_KIND_VECTOR_COLLECTION: _ClassVar[DerivationKind]
    DERIVATION_KIND_MEMORY_NAMESPACE: _ClassVar[DerivationKind]
PII_KIND_UNSPECIFIED: PiiKind
PII_KIND_EMAIL: PiiKind
PII_KIND_PHONE: PiiKind
PII_KIND_SSN: PiiKind
PII_KIND_CARD_NUMBER: PiiKind
PII_KIND_IP_ADDRESS: PiiKind
PII_KIND_DATE_OF_BIRTH: PiiKind
PII_KIND_ADDRESS: PiiKind
PII_KIND_SALARY: PiiKind
PII_KIND_PERSON_NAME: PiiKind
SENSITIVITY_SOURCE_UNSPECIFIED: SensitivitySource
SENSITIVITY_SOURCE_DETECTED: SensitivitySource
SENSITIVITY_SOURCE_OWNER: SensitivitySource
VERSION_OPERATION_UNSPECIFIED: VersionOperation
VERSION_OPERATION_CREATE: VersionOperation
VERSION_OPERATION_APPEND: VersionOperation
VERSION_OPERATION_OVERWRITE: VersionOperation
VERSION_OPERATION_DELETE: VersionOperation
VERSION_OPERATION_COMPACT: VersionOperation
VERSION_OPERATION_SCHEMA_EVOLUTION: VersionOperation
REDACTION_KIND_UNSPECIFIED: RedactionKind
REDACTION_KIND_NULL: RedactionKind
REDACTION_KIND_HASH: RedactionKind
REDACTION_KIND_MASK: RedactionKind
ERASURE_MODE_UNSPECIFIED: ErasureMode
ERASURE_MODE_SOFT: ErasureMode
ERASURE_MODE_HARD: ErasureMode
ERASURE_STATE_UNSPECIFIED: ErasureState
ERASURE_STATE_RUNNING: ErasureState
ERASURE_STATE_COMPLETE: ErasureState
ERASURE_STATE_FAILED: ErasureState
DERIVATION_KIND_UNSPECIFIED: DerivationKind
DERIVATION_KIND_VECTOR_COLLECTION: DerivationKind
DERIVATION_KIND_MEMORY_NAMESPACE: DerivationKind

class Column(_message.Message):
    __slots__ = ("name", "arrow_type", "nullable", "pii", "sensitivity_source")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARROW_TYPE_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    PII_FIELD_NUMBER: _ClassVar[int]
    SENSITIVITY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    arrow_type: str
    nullable: bool
    pii: _containers.RepeatedScalarFieldContainer[PiiKind]
    sensitivity_source: SensitivitySource
    def __init__(self, name: _Optional[str] = ..., arrow_type: _Optional[str] = ..., nullable: _Optional[bool] = ..., pii: _Optional[_Iterable[_Union[PiiKind, str]]] = ..., sensitivity_source: _Optional[_Union[SensitivitySource, str]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("id", "name", "bucket", "location", "schema", "columns", "schema_fingerprint", "description", "owner", "tags", "current_version", "row_count", "size_bytes", "create_time", "update_time", "table_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    TABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    bucket: str
    location: str
    schema: _arrow_pb2.ArrowSchema
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    schema_fingerprint: str
    description: str
    owner: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    current_version: int
    row_count: int
    size_bytes: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    table_version: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., bucket: _Optional[str] = ..., location: _Optional[str] = ..., schema: _Optional[_Union[_arrow_pb2.ArrowSchema, _Mapping]] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., schema_fingerprint: _Optional[str] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., current_version: _Optional[int] = ..., row_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., table_version: _Optional[int] = ...) -> None: ...

class Lineage(_message.Message):
    __slots__ = ("source_system", "source_reference", "job_id", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    source_system: str
    source_reference: str
    job_id: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, source_system: _Optional[str] = ..., source_reference: _Optional[str] = ..., job_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("version", "operation", "row_count", "size_bytes", "files", "actor", "create_time", "lineage", "schema_fingerprint", "content_sha256", "table_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    TABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    operation: VersionOperation
    row_count: int
    size_bytes: int
    files: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    create_time: _timestamp_pb2.Timestamp
    lineage: Lineage
    schema_fingerprint: str
    content_sha256: str
    table_version: int
    def __init__(self, version: _Optional[int] = ..., operation: _Optional[_Union[VersionOperation, str]] = ..., row_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., files: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., schema_fingerprint: _Optional[str] = ..., content_sha256: _Optional[str] = ..., table_version: _Optional[int] = ...) -> None: ...

class SchemaDiff(_message.Message):
    __slots__ = ("added", "removed", "changed")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("dataset", "sample", "allow_additive_evolution")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_ADDITIVE_EVOLUTION_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    sample: _arrow_pb2.ArrowTable
    allow_additive_evolution: bool
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., sample: _Optional[_Union[_arrow_pb2.ArrowTable, _Mapping]] = ..., allow_additive_evolution: _Optional[bool] = ...) -> None: ...

class CreateDatasetResponse(_message.Message):
    __slots__ = ("dataset", "created")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    created: bool
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "tag", "owner", "name_prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    tag: str
    owner: str
    name_prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., tag: _Optional[str] = ..., owner: _Optional[str] = ..., name_prefix: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDatasetRequest(_message.Message):
    __slots__ = ("dataset", "update_mask")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    def __init__(self, dataset: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class RegisterDatasetVersionRequest(_message.Message):
    __slots__ = ("dataset", "table_version", "operation", "schema", "row_count", "size_bytes", "files", "lineage", "content_sha256", "sample", "allow_additive_evolution")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TABLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_ADDITIVE_EVOLUTION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    table_version: int
    operation: VersionOperation
    schema: _arrow_pb2.ArrowSchema
    row_count: int
    size_bytes: int
    files: _containers.RepeatedScalarFieldContainer[str]
    lineage: Lineage
    content_sha256: str
    sample: _arrow_pb2.ArrowTable
    allow_additive_evolution: bool
    def __init__(self, dataset: _Optional[str] = ..., table_version: _Optional[int] = ..., operation: _Optional[_Union[VersionOperation, str]] = ..., schema: _Optional[_Union[_arrow_pb2.ArrowSchema, _Mapping]] = ..., row_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., files: _Optional[_Iterable[str]] = ..., lineage: _Optional[_Union[Lineage, _Mapping]] = ..., content_sha256: _Optional[str] = ..., sample: _Optional[_Union[_arrow_pb2.ArrowTable, _Mapping]] = ..., allow_additive_evolution: _Optional[bool] = ...) -> None: ...

class RegisterDatasetVersionResponse(_message.Message):
    __slots__ = ("dataset", "version", "duplicate")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    version: DatasetVersion
    duplicate: bool
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., version: _Optional[_Union[DatasetVersion, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class GetDatasetHistoryRequest(_message.Message):
    __slots__ = ("dataset", "page_size", "page_token", "content_sha256")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    page_size: int
    page_token: str
    content_sha256: str
    def __init__(self, dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class GetDatasetHistoryResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDatasetVersionRequest(_message.Message):
    __slots__ = ("dataset", "version")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    version: int
    def __init__(self, dataset: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetDatasetVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: DatasetVersion
    def __init__(self, version: _Optional[_Union[DatasetVersion, _Mapping]] = ...) -> None: ...

class SetColumnSensitivityRequest(_message.Message):
    __slots__ = ("dataset", "column", "pii", "reason")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    PII_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    column: str
    pii: _containers.RepeatedScalarFieldContainer[PiiKind]
    reason: str
    def __init__(self, dataset: _Optional[str] = ..., column: _Optional[str] = ..., pii: _Optional[_Iterable[_Union[PiiKind, str]]] = ..., reason: _Optional[str] = ...) -> None: ...

class SetColumnSensitivityResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ColumnRedaction(_message.Message):
    __slots__ = ("column", "kind", "keep_prefix", "keep_suffix")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEEP_PREFIX_FIELD_NUMBER: _ClassVar[int]
    KEEP_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    column: str
    kind: RedactionKind
    keep_prefix: int
    keep_suffix: int
    def __init__(self, column: _Optional[str] = ..., kind: _Optional[_Union[RedactionKind, str]] = ..., keep_prefix: _Optional[int] = ..., keep_suffix: _Optional[int] = ...) -> None: ...

class View(_message.Message):
    __slots__ = ("name", "base_dataset", "columns", "row_filter", "redactions", "description", "owner", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_DATASET_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    REDACTIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_dataset: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    row_filter: str
    redactions: _containers.RepeatedCompositeFieldContainer[ColumnRedaction]
    description: str
    owner: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., base_dataset: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., row_filter: _Optional[str] = ..., redactions: _Optional[_Iterable[_Union[ColumnRedaction, _Mapping]]] = ..., description: _Optional[str] = ..., owner: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateViewRequest(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: View
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ...) -> None: ...

class CreateViewResponse(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: View
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ...) -> None: ...

class GetViewRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetViewResponse(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: View
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ...) -> None: ...

class ListViewsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "base_dataset")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BASE_DATASET_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    base_dataset: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., base_dataset: _Optional[str] = ...) -> None: ...

class ListViewsResponse(_message.Message):
    __slots__ = ("views", "next_page_token")
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    views: _containers.RepeatedCompositeFieldContainer[View]
    next_page_token: str
    def __init__(self, views: _Optional[_Iterable[_Union[View, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateViewRequest(_message.Message):
    __slots__ = ("view", "update_mask")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    view: View
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateViewResponse(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: View
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ...) -> None: ...

class DeleteViewRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteViewResponse(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: View
    def __init__(self, view: _Optional[_Union[View, _Mapping]] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("id", "description", "datasets", "views", "collections", "memory_namespaces", "default_chat_model", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CHAT_MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    datasets: _containers.RepeatedScalarFieldContainer[str]
    views: _containers.RepeatedScalarFieldContainer[str]
    collections: _containers.RepeatedScalarFieldContainer[str]
    memory_namespaces: _containers.RepeatedScalarFieldContainer[str]
    default_chat_model: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., datasets: _Optional[_Iterable[str]] = ..., views: _Optional[_Iterable[str]] = ..., collections: _Optional[_Iterable[str]] = ..., memory_namespaces: _Optional[_Iterable[str]] = ..., default_chat_model: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProfileRequest(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class CreateProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class ListProfilesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProfilesResponse(_message.Message):
    __slots__ = ("profiles", "next_page_token")
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    profiles: _containers.RepeatedCompositeFieldContainer[Profile]
    next_page_token: str
    def __init__(self, profiles: _Optional[_Iterable[_Union[Profile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateProfileRequest(_message.Message):
    __slots__ = ("profile", "update_mask")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class DeleteProfileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class DownstreamDeletion(_message.Message):
    __slots__ = ("kind", "target", "deleted_count")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    target: str
    deleted_count: int
    def __init__(self, kind: _Optional[str] = ..., target: _Optional[str] = ..., deleted_count: _Optional[int] = ...) -> None: ...

class ErasureReceipt(_message.Message):
    __slots__ = ("id", "dataset", "mode", "actor", "reason", "key_column", "key_count", "version_before", "version_after", "rows_removed", "files_removed", "downstream", "state", "detail", "start_time", "complete_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSION_BEFORE_FIELD_NUMBER: _ClassVar[int]
    VERSION_AFTER_FIELD_NUMBER: _ClassVar[int]
    ROWS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    FILES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    dataset: str
    mode: ErasureMode
    actor: str
    reason: str
    key_column: str
    key_count: int
    version_before: int
    version_after: int
    rows_removed: int
    files_removed: int
    downstream: _containers.RepeatedCompositeFieldContainer[DownstreamDeletion]
    state: ErasureState
    detail: str
    start_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., dataset: _Optional[str] = ..., mode: _Optional[_Union[ErasureMode, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., key_column: _Optional[str] = ..., key_count: _Optional[int] = ..., version_before: _Optional[int] = ..., version_after: _Optional[int] = ..., rows_removed: _Optional[int] = ..., files_removed: _Optional[int] = ..., downstream: _Optional[_Iterable[_Union[DownstreamDeletion, _Mapping]]] = ..., state: _Optional[_Union[ErasureState, str]] = ..., detail: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EraseRowsRequest(_message.Message):
    __slots__ = ("dataset", "key_column", "key_values", "mode", "reason")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_column: str
    key_values: _containers.RepeatedScalarFieldContainer[str]
    mode: ErasureMode
    reason: str
    def __init__(self, dataset: _Optional[str] = ..., key_column: _Optional[str] = ..., key_values: _Optional[_Iterable[str]] = ..., mode: _Optional[_Union[ErasureMode, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseRowsResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: ErasureReceipt
    def __init__(self, receipt: _Optional[_Union[ErasureReceipt, _Mapping]] = ...) -> None: ...

class RestoreRowsRequest(_message.Message):
    __slots__ = ("dataset", "key_values", "reason", "applied")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_values: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    applied: bool
    def __init__(self, dataset: _Optional[str] = ..., key_values: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., applied: _Optional[bool] = ...) -> None: ...

class RestoreRowsResponse(_message.Message):
    __slots__ = ("restored",)
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    restored: int
    def __init__(self, restored: _Optional[int] = ...) -> None: ...

class Tombstone(_message.Message):
    __slots__ = ("dataset", "key_column", "key_value", "erasure_id", "create_time")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUE_FIELD_NUMBER: _ClassVar[int]
    ERASURE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_column: str
    key_value: str
    erasure_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., key_column: _Optional[str] = ..., key_value: _Optional[str] = ..., erasure_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTombstonesRequest(_message.Message):
    __slots__ = ("dataset", "page_size", "page_token")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    page_size: int
    page_token: str
    def __init__(self, dataset: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTombstonesResponse(_message.Message):
    __slots__ = ("tombstones", "next_page_token")
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tombstones: _containers.RepeatedCompositeFieldContainer[Tombstone]
    next_page_token: str
    def __init__(self, tombstones: _Optional[_Iterable[_Union[Tombstone, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetErasureReceiptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetErasureReceiptResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: ErasureReceipt
    def __init__(self, receipt: _Optional[_Union[ErasureReceipt, _Mapping]] = ...) -> None: ...

class ListErasuresRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "dataset")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    dataset: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., dataset: _Optional[str] = ...) -> None: ...

class ListErasuresResponse(_message.Message):
    __slots__ = ("receipts", "next_page_token")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[ErasureReceipt]
    next_page_token: str
    def __init__(self, receipts: _Optional[_Iterable[_Union[ErasureReceipt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Derivation(_message.Message):
    __slots__ = ("dataset", "kind", "target", "key_column", "dataset_version", "create_time", "update_time")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    DATASET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    kind: DerivationKind
    target: str
    key_column: str
    dataset_version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, dataset: _Optional[str] = ..., kind: _Optional[_Union[DerivationKind, str]] = ..., target: _Optional[str] = ..., key_column: _Optional[str] = ..., dataset_version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterDerivationRequest(_message.Message):
    __slots__ = ("derivation",)
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    derivation: Derivation
    def __init__(self, derivation: _Optional[_Union[Derivation, _Mapping]] = ...) -> None: ...

class RegisterDerivationResponse(_message.Message):
    __slots__ = ("derivation",)
    DERIVATION_FIELD_NUMBER: _ClassVar[int]
    derivation: Derivation
    def __init__(self, derivation: _Optional[_Union[Derivation, _Mapping]] = ...) -> None: ...

class DeleteDerivationRequest(_message.Message):
    __slots__ = ("dataset", "kind", "target")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    kind: DerivationKind
    target: str
    def __init__(self, dataset: _Optional[str] = ..., kind: _Optional[_Union[DerivationKind, str]] = ..., target: _Optional[str] = ...) -> None: ...

class DeleteDerivationResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: bool
    def __init__(self, removed: _Optional[bool] = ...) -> None: ...

class ListDerivationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "dataset")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    dataset: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., dataset: _Optional[str] = ...) -> None: ...

class ListDerivationsResponse(_message.Message):
    __slots__ = ("derivations", "next_page_token")
    DERIVATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    derivations: _containers.RepeatedCompositeFieldContainer[Derivation]
    next_page_token: str
    def __init__(self, derivations: _Optional[_Iterable[_Union[Derivation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DatasetTombstones(_message.Message):
    __slots__ = ("dataset", "key_column", "key_values")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    KEY_COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_VALUES_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    key_column: str
    key_values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., key_column: _Optional[str] = ..., key_values: _Optional[_Iterable[str]] = ...) -> None: ...

class AccessPolicy(_message.Message):
    __slots__ = ("principal", "role", "profile", "restricted", "datasets", "views", "view_bases", "tombstones", "collections", "memory_namespaces", "default_chat_model")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    RESTRICTED_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    VIEW_BASES_FIELD_NUMBER: _ClassVar[int]
    TOMBSTONES_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CHAT_MODEL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: str
    profile: str
    restricted: bool
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    views: _containers.RepeatedCompositeFieldContainer[View]
    view_bases: _containers.RepeatedCompositeFieldContainer[Dataset]
    tombstones: _containers.RepeatedCompositeFieldContainer[DatasetTombstones]
    collections: _containers.RepeatedScalarFieldContainer[str]
    memory_namespaces: _containers.RepeatedScalarFieldContainer[str]
    default_chat_model: str
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[str] = ..., profile: _Optional[str] = ..., restricted: _Optional[bool] = ..., datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., views: _Optional[_Iterable[_Union[View, _Mapping]]] = ..., view_bases: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., tombstones: _Optional[_Iterable[_Union[DatasetTombstones, _Mapping]]] = ..., collections: _Optional[_Iterable[str]] = ..., memory_namespaces: _Optional[_Iterable[str]] = ..., default_chat_model: _Optional[str] = ...) -> None: ...

class GetAccessPolicyRequest(_message.Message):
    __slots__ = ("known_revision",)
    KNOWN_REVISION_FIELD_NUMBER: _ClassVar[int]
    known_revision: int
    def __init__(self, known_revision: _Optional[int] = ...) -> None: ...

class GetAccessPolicyResponse(_message.Message):
    __slots__ = ("revision", "unchanged", "policy", "lease")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    unchanged: bool
    policy: AccessPolicy
    lease: _duration_pb2.Duration
    def __init__(self, revision: _Optional[int] = ..., unchanged: _Optional[bool] = ..., policy: _Optional[_Union[AccessPolicy, _Mapping]] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Denial(_message.Message):
    __slots__ = ("time", "method", "principal", "code", "reason", "message", "request_id", "peer")
    TIME_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    method: str
    principal: str
    code: str
    reason: str
    message: str
    request_id: str
    peer: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., method: _Optional[str] = ..., principal: _Optional[str] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., request_id: _Optional[str] = ..., peer: _Optional[str] = ...) -> None: ...

class RecordDenialsRequest(_message.Message):
    __slots__ = ("denials",)
    DENIALS_FIELD_NUMBER: _ClassVar[int]
    denials: _containers.RepeatedCompositeFieldContainer[Denial]
    def __init__(self, denials: _Optional[_Iterable[_Union[Denial, _Mapping]]] = ...) -> None: ...

class RecordDenialsResponse(_message.Message):
    __slots__ = ("recorded",)
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    def __init__(self, recorded: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "time", "actor", "entity_type", "entity", "action", "before_json", "after_json", "request_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    actor: str
    entity_type: str
    entity: str
    action: str
    before_json: str
    after_json: str
    request_id: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., entity_type: _Optional[str] = ..., entity: _Optional[str] = ..., action: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "entity_type", "entity", "start_time", "end_time")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ENTITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    entity_type: str
    entity: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., entity_type: _Optional[str] = ..., entity: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("principal", "role", "profile", "auth_enabled")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    AUTH_ENABLED_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: str
    profile: str
    auth_enabled: bool
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[str] = ..., profile: _Optional[str] = ..., auth_enabled: _Optional[bool] = ...) -> None: ...
