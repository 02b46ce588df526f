"""Errors of the catalog service, each with its status code and reason."""

from __future__ import annotations

from lakehouse.server.common.errors import (
    AlreadyExists,
    Code,
    FailedPrecondition,
    LakehouseError,
    NotFound,
    PermissionDenied,
)


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


class ViewNotFound(NotFound):
    reason = "VIEW_NOT_FOUND"

    def __init__(self, name: str) -> None:
        super().__init__(f"view {name!r} does not exist; ListViews shows the ones that do")


class ProfileNotFound(NotFound):
    reason = "PROFILE_NOT_FOUND"

    def __init__(self, profile_id: str) -> None:
        super().__init__(f"profile {profile_id!r} does not exist; ListProfiles shows the ones that do")


class ErasureNotFound(NotFound):
    reason = "ERASURE_NOT_FOUND"

    def __init__(self, erasure_id: str) -> None:
        super().__init__(f"erasure receipt {erasure_id!r} does not exist; ListErasures shows the ones that do")


class BindingNotFound(NotFound):
    """A profile binding that does not resolve (a dataset, view or collection that is not there)."""

    reason = "BINDING_NOT_FOUND"


class BindingUnverifiable(FailedPrecondition):
    """The service that owns a binding could not say whether it exists."""

    reason = "BINDING_UNVERIFIABLE"


class NameTaken(AlreadyExists):
    """A dataset, view or profile of that name exists; `reason` says which kind holds the name."""


class InUse(FailedPrecondition):
    """Something else depends on what is being deleted; `reason` says what kind of thing it is."""


class TombstoneKeyMismatch(FailedPrecondition):
    reason = "TOMBSTONE_KEY_MISMATCH"


class TableNotAllowed(PermissionDenied):
    reason = "TABLE_NOT_ALLOWED"


class NotViewOwner(PermissionDenied):
    reason = "NOT_VIEW_OWNER"
