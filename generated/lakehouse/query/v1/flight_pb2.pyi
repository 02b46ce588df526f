from lakehouse.common.v1 import refs_pb2 as _refs_pb2
from lakehouse.query.v1 import query_service_pb2 as _query_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlightCommand(_message.Message):
    __slots__ = ("sql", "dataset", "put")
    SQL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    sql: SqlStatement
    dataset: _refs_pb2.DatasetRef
    put: DatasetPut
    def __init__(self, sql: _Optional[_Union[SqlStatement, _Mapping]] = ..., dataset: _Optional[_Union[_refs_pb2.DatasetRef, _Mapping]] = ..., put: _Optional[_Union[DatasetPut, _Mapping]] = ...) -> None: ...

class SqlStatement(_message.Message):
    __slots__ = ("sql", "parameters", "as_of")
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
    sql: str
    parameters: _containers.RepeatedCompositeFieldContainer[_query_service_pb2.QueryParameter]
    as_of: _containers.ScalarMap[str, int]
    def __init__(self, sql: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[_query_service_pb2.QueryParameter, _Mapping]]] = ..., as_of: _Optional[_Mapping[str, int]] = ...) -> None: ...

class DatasetPut(_message.Message):
    __slots__ = ("dataset", "mode", "description")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    mode: _query_service_pb2.IngestMode
    description: str
    def __init__(self, dataset: _Optional[str] = ..., mode: _Optional[_Union[_query_service_pb2.IngestMode, str]] = ..., description: _Optional[str] = ...) -> None: ...

class FlightTicket(_message.Message):
    __slots__ = ("sql", "dataset")
    SQL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    sql: SqlStatement
    dataset: _refs_pb2.DatasetRef
    def __init__(self, sql: _Optional[_Union[SqlStatement, _Mapping]] = ..., dataset: _Optional[_Union[_refs_pb2.DatasetRef, _Mapping]] = ...) -> None: ...
