"""Errors of the catalog service, each with its status code and reason."""

from __future__ import annotations

from lakehouse.server.common.errors import Code, FailedPrecondition, LakehouseError, NotFound, PermissionDenied


class DatasetNotFound(NotFound):
    reason = "DATASET_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"dataset {name!r} does not exist; ListDatasets shows the ones that do")


class VersionNotFound(NotFound):
    reason = "VERSION_NOT_FOUND"


class ColumnNotFound(NotFound):
    reason = "COLUMN_NOT_FOUND"


class SchemaMismatch(FailedPrecondition):
    reason = "SCHEMA_MISMATCH"


class TableVersionNotNewer(FailedPrecondition):
    reason = "TABLE_VERSION_NOT_NEWER"


class NotDatasetOwner(PermissionDenied):
    reason = "NOT_DATASET_OWNER"


class ConcurrentChange(LakehouseError):
    """A concurrent transaction committed the same key first; the operation is retried once."""

    code = Code.ABORTED
    reason = "CONCURRENT_MODIFICATION"


class CatalogDatabaseError(LakehouseError):
    """The database refused a statement for a reason other than a race or an outage (a bug)."""

    code = Code.INTERNAL
    reason = "INTERNAL"
