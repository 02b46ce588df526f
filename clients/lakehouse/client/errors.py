"""Client-side errors: one exception class per gRPC status code, built from google.rpc.Status."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """A request field the server refused, as a dot path."""

    field: str
    description: str


class LakehouseClientError(Exception):
    """A call failed. `reason` is the server's UPPER_SNAKE reason; `violations` name bad fields."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata = metadata or {}
        self.violations = violations
        self.retry_delay_s = retry_delay_s

    @property
    def request_id(self) -> str:
        return self.metadata.get("request_id", "")

    def __str__(self) -> str:
        head = f"{self.code.name}"
        if self.reason:
            head += f" {self.reason}"
        return f"{head}: {self.message}"


class CancelledError(LakehouseClientError):
    code = grpc.StatusCode.CANCELLED


class InvalidArgumentError(LakehouseClientError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(LakehouseClientError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(LakehouseClientError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(LakehouseClientError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(LakehouseClientError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(LakehouseClientError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(LakehouseClientError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRangeError(LakehouseClientError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(LakehouseClientError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(LakehouseClientError):
    code = grpc.StatusCode.INTERNAL


class UnavailableError(LakehouseClientError):
    code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(LakehouseClientError):
    code = grpc.StatusCode.UNAUTHENTICATED


class AbortedError(LakehouseClientError):
    """A concurrent change won (for example a Delta commit conflict); retrying is safe."""

    code = grpc.StatusCode.ABORTED


_BY_CODE: dict[grpc.StatusCode, type[LakehouseClientError]] = {
    cls.code: cls
    for cls in (
        CancelledError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        UnauthenticatedError,
        AbortedError,
    )
}

# How gRPC itself words a call it failed while choosing a connection: nothing was sent, so no
# server can have acted on it. Servers in the mesh always attach ErrorInfo, so these never come
# from one of them.
_NOT_SENT_PREFIXES = (
    "failed to connect to all addresses",
    "errors resolving",
    "dns resolution failed",
    "name resolution failure",
)


def never_sent(error: LakehouseClientError) -> bool:
    """True when gRPC failed the call before sending it (no connection), so no server saw it."""
    return (
        error.code == grpc.StatusCode.UNAVAILABLE
        and not error.reason
        and error.message.lower().startswith(_NOT_SENT_PREFIXES)
    )


def is_retryable(error: BaseException, *, idempotent: bool) -> bool:
    """Whether repeating the call may succeed and cannot repeat a change the server already made.

    RESOURCE_EXHAUSTED only with RetryInfo: without it the limit is a quota or gRPC's own message or
    metadata size limit, which no retry lifts. UNAVAILABLE may arrive after the server committed a
    write, so calls that are not idempotent retry it only when the request was never sent.
    """
    if isinstance(error, ResourceExhaustedError):
        return error.retry_delay_s is not None
    if isinstance(error, UnavailableError):
        return idempotent or never_sent(error)
    return False


def from_rpc_error(error: grpc.RpcError) -> LakehouseClientError:
    """Translates a failed call, reading ErrorInfo, BadRequest and RetryInfo when present."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    kwargs: dict = {}
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    if status is not None:
        message = status.message
        kwargs = _details(status.details)
    cls = _BY_CODE.get(code, LakehouseClientError)
    return cls(message or code.name, code=code, **kwargs)


def _details(details: list) -> dict:
    out: dict = {}
    for detail in details:
        info, bad, retry = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            out.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Unpack(bad):
            out["violations"] = tuple(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Unpack(retry):
            out["retry_delay_s"] = retry.retry_delay.ToNanoseconds() / 1e9
    return out
