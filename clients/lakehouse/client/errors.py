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
    )
}

RETRYABLE = (UnavailableError, ResourceExhaustedError)


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
