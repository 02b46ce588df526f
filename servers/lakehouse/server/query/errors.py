"""Errors of the query service, each with its status code and reason."""

from __future__ import annotations

from lakehouse.server.common.errors import (
    AlreadyExists,
    Code,
    FailedPrecondition,
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)


class DatasetExists(AlreadyExists):
    reason = "DATASET_EXISTS"


class SchemaMismatch(FailedPrecondition):
    reason = "SCHEMA_MISMATCH"


class MalformedInput(InvalidArgument):
    reason = "MALFORMED_INPUT"


class UnknownFormat(InvalidArgument):
    reason = "UNKNOWN_FORMAT"


class QueryFailed(InvalidArgument):
    reason = "QUERY_FAILED"


class QueryTimeout(LakehouseError):
    code = Code.DEADLINE_EXCEEDED
    reason = "QUERY_TIMEOUT"


class UploadTooLarge(ResourceExhausted):
    reason = "UPLOAD_TOO_LARGE"


class UploadIdle(LakehouseError):
    code = Code.DEADLINE_EXCEEDED
    reason = "UPLOAD_IDLE_TIMEOUT"


class MemoryLimitExceeded(ResourceExhausted):
    reason = "MEMORY_LIMIT_EXCEEDED"


class StorageFull(ResourceExhausted):
    reason = "STORAGE_FULL"


class VersionFilesRemoved(FailedPrecondition):
    reason = "VERSION_FILES_REMOVED"


class CommitConflict(LakehouseError):
    code = Code.ABORTED
    reason = "COMMIT_CONFLICT"


class SourcePathNotAllowed(PermissionDenied):
    reason = "SOURCE_PATH_NOT_ALLOWED"


class SourceUnavailable(LakehouseError):
    code = Code.UNAVAILABLE
    reason = "SOURCE_UNAVAILABLE"


class SourceAuthFailed(FailedPrecondition):
    reason = "SOURCE_AUTH_FAILED"


class SourceTableNotFound(NotFound):
    reason = "SOURCE_TABLE_NOT_FOUND"


class InvalidSource(InvalidArgument):
    reason = "INVALID_SOURCE_QUERY"
