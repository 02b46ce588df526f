"""Errors of the catalog service, each with its status code and reason."""

from __future__ import annotations

from lakehouse.server.common.errors import FailedPrecondition, NotFound, PermissionDenied, invalid_field


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


def invalid_dataset_name(field: str) -> Exception:
    return invalid_field(
        field,
        "must match ^[a-z][a-z0-9_]{0,127}$: lowercase letters, digits and '_', starting with a letter, "
        "at most 128 characters (it is the SQL table name)",
        reason="INVALID_DATASET_NAME",
    )
