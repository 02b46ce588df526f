"""Domain errors shared by every service. No grpc import: one interceptor maps them to status.

Each error carries a status code (google.rpc.Code numbering), an UPPER_SNAKE `reason` that
clients can branch on, a message that says what to do, optional field violations and metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum


class Code(IntEnum):
    """google.rpc.Code values (identical to grpc.StatusCode numbers)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class FieldViolation:
    """A request field that is wrong, as a dot path (for example "header.key")."""

    field: str
    description: str


class LakehouseError(Exception):
    """Base of every error a caller is meant to see."""

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        self.retry_after_s = retry_after_s


class InvalidArgument(LakehouseError):
    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class NotFound(LakehouseError):
    code = Code.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(LakehouseError):
    code = Code.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(LakehouseError):
    code = Code.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class PermissionDenied(LakehouseError):
    code = Code.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unauthenticated(LakehouseError):
    code = Code.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class ResourceExhausted(LakehouseError):
    code = Code.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class OutOfRange(LakehouseError):
    code = Code.OUT_OF_RANGE
    reason = "OUT_OF_RANGE"


class Unavailable(LakehouseError):
    code = Code.UNAVAILABLE
    reason = "BACKEND_UNAVAILABLE"


class DeadlineExceeded(LakehouseError):
    code = Code.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Unimplemented(LakehouseError):
    code = Code.UNIMPLEMENTED
    reason = "NOT_IMPLEMENTED"


def invalid_field(field: str, description: str, *, reason: str) -> InvalidArgument:
    """An INVALID_ARGUMENT naming one field, the most common user mistake."""
    return InvalidArgument(f"{field}: {description}", reason=reason, violations=[FieldViolation(field, description)])
