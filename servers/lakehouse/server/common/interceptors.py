"""The one server interceptor: request id, authentication, a log line, metrics and a trace span
per call, error mapping.

Domain code raises `LakehouseError`s; here they become `google.rpc.Status` with `ErrorInfo`
(reason, domain "<service>.lakehouse") and `BadRequest` field violations. Anything else becomes
INTERNAL with no internals in the message (the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

from lakehouse.client.errors import LakehouseClientError
from lakehouse.server.common import metrics, roles
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.context import CallContext, reset_call, set_call
from lakehouse.server.common.errors import Code, DeadlineExceeded, LakehouseError, ResourceExhausted
from lakehouse.server.common.tracing import ServerSpan

log = logging.getLogger("lakehouse.rpc")

EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
DENIALS = (Code.PERMISSION_DENIED, Code.UNAUTHENTICATED)
OnDenied = Callable[[str, str, str, str, str, str, str], None]
"""(method, principal, code, reason, message, request id, peer)"""
MAX_MESSAGE_CHARS = 4000
MAX_DETAIL_CHARS = 1000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class ServerCallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so each call is identified, authenticated, logged and error-mapped."""

    def __init__(
        self,
        authenticator: TokenAuthenticator,
        on_denied: OnDenied | None = None,
        tracer: trace.Tracer | None = None,
        limits: Callable[[str], int] | None = None,
        upload_idle_s: float = 60.0,
    ) -> None:
        self._auth = authenticator
        self._upload_idle_s = upload_idle_s
        self._on_denied = on_denied
        self._tracer = tracer or trace.NoOpTracer()
        self._admission = Admission(limits or (lambda service: 1 << 30))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            # Health and reflection stay open, unlogged and untouched so probes and discovery
            # work without credentials.
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        call = _Call(method, metadata, self._auth, self._on_denied, self._tracer, self._admission)
        return _wrap(handler, call, self._upload_idle_s)


class Admission:
    """Calls in progress per service, against its limit: a call over the limit is refused at
    once (RESOURCE_EXHAUSTED with a retry delay) rather than queued behind the others."""

    RETRY_AFTER_S = 0.1

    def __init__(self, limit_of: Callable[[str], int]) -> None:
        self._limit_of = limit_of
        self._active: dict[str, int] = {}

    def enter(self, service: str) -> None:
        active = self._active.get(service, 0)
        limit = self._limit_of(service)
        if active >= limit:
            raise ResourceExhausted(
                f"the {service} service is serving its limit of {limit} calls at once; retry shortly",
                reason="SERVICE_OVERLOADED",
                retry_after_s=self.RETRY_AFTER_S,
                metadata={"service": service, "limit": str(limit)},
            )
        self._active[service] = active + 1

    def leave(self, service: str) -> None:
        self._active[service] -= 1


class _Call:
    """One call's bookkeeping, shared by the four handler shapes."""

    def __init__(
        self,
        method: str,
        metadata: dict[str, Any],
        auth: TokenAuthenticator,
        on_denied: OnDenied | None,
        tracer: trace.Tracer,
        admission: Admission,
    ) -> None:
        self.method = method
        self.admission = admission
        self.admitted = False
        self.metadata = metadata
        self.auth = auth
        self.on_denied = on_denied
        self.tracer = tracer
        rid = str(metadata.get("x-request-id", ""))
        self.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        self.principal = ""  # known once authenticated
        self.labels = metrics.method_labels(method)
        self.span: ServerSpan | None = None

    def begin(self) -> tuple[CallContext, Any]:
        # Counted and traced before authentication, so refused calls show up too.
        metrics.IN_FLIGHT.labels(*self.labels).inc()
        self.span = ServerSpan(self.tracer, self.method, self.metadata, self.request_id)
        self.span.enter()
        self.admission.enter(self.labels[0])
        self.admitted = True
        authorization = str(self.metadata.get("authorization", ""))
        principal = self.auth.authenticate(authorization)
        self.principal = principal.name
        ctx = CallContext(self.request_id, self.method, principal, authorization)
        token = set_call(ctx)
        try:
            roles.require(principal, self.method)
        except BaseException:
            reset_call(token)
            raise
        return ctx, token

    async def fail(self, context: grpc.aio.ServicerContext, ctx: CallContext | None, exc: BaseException) -> None:
        # A peer's denial was journaled by the peer; only refusals made here are journaled here.
        if self.on_denied is not None and isinstance(exc, LakehouseError) and exc.code in DENIALS:
            denied = (self.method, self.principal, exc.code.name, exc.reason, exc.message, self.request_id)
            self.on_denied(*denied, context.peer())
        status = _to_status(exc, self.method, self.request_id)
        await context.abort_with_status(rpc_status.to_status(status))

    def finish(self, ctx: CallContext | None, started: float, code: str) -> None:
        seconds = time.perf_counter() - started
        log.info(
            "rpc %s code=%s duration_ms=%.2f principal=%s",
            self.method,
            code,
            seconds * 1000,
            ctx.principal.name if ctx else "-",
            extra={"request_id": self.request_id},
        )
        metrics.IN_FLIGHT.labels(*self.labels).dec()
        metrics.RPCS.labels(*self.labels, code).inc()
        if self.admitted:
            self.admission.leave(self.labels[0])
            self.admitted = False
        metrics.RPC_SECONDS.labels(*self.labels).observe(seconds)
        if self.span is not None:
            self.span.exit(code)
            self.span = None


def _code_name(exc: BaseException) -> str:
    if isinstance(exc, LakehouseError):
        return exc.code.name
    if isinstance(exc, LakehouseClientError):
        return exc.code.name
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "INTERNAL"


async def _idle_limited(messages: AsyncIterator[Any], idle_s: float) -> AsyncIterator[Any]:
    """The client's stream of messages, ended with DEADLINE_EXCEEDED when none comes for `idle_s`."""
    iterator = aiter(messages)
    while True:
        try:
            message = await asyncio.wait_for(anext(iterator), idle_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise DeadlineExceeded(
                f"the upload sent nothing for {idle_s:g} s ([server] upload_idle_timeout_s); nothing was kept",
                reason="UPLOAD_IDLE_TIMEOUT",
            ) from None
        yield message


def _wrap(handler: grpc.RpcMethodHandler, call: _Call, upload_idle_s: float) -> grpc.RpcMethodHandler:
    if handler.unary_unary or handler.stream_unary:
        behavior = handler.unary_unary or handler.stream_unary
        streamed = handler.stream_unary is not None

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started, ctx, token = time.perf_counter(), None, None
            if streamed:
                request = _idle_limited(request, upload_idle_s)
            try:
                ctx, token = call.begin()
                response = await behavior(request, context)
            except grpc.aio.AbortError:
                call.finish(ctx, started, "ABORTED_BY_HANDLER")
                raise
            except BaseException as exc:
                call.finish(ctx, started, _code_name(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                await call.fail(context, ctx, exc)
                raise  # abort_with_status raises; this is never reached
            finally:
                if token is not None:
                    reset_call(token)
            call.finish(ctx, started, "OK")
            return response

        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary_response, handler.request_deserializer, handler.response_serializer)

    behavior = handler.unary_stream or handler.stream_stream
    streamed = handler.stream_stream is not None

    async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started, ctx, token = time.perf_counter(), None, None
        if streamed:
            request = _idle_limited(request, upload_idle_s)
        try:
            ctx, token = call.begin()
            result = behavior(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write() and returns nothing
                await result
        except grpc.aio.AbortError:
            call.finish(ctx, started, "ABORTED_BY_HANDLER")
            raise
        except BaseException as exc:
            call.finish(ctx, started, _code_name(exc))
            if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
                raise
            await call.fail(context, ctx, exc)
        finally:
            if token is not None:
                reset_call(token)
        call.finish(ctx, started, "OK")

    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(stream_response, handler.request_deserializer, handler.response_serializer)


def _domain(method: str) -> str:
    """ "/lakehouse.catalog.v1.CatalogService/GetDataset" -> "catalog.lakehouse"."""
    parts = method.lstrip("/").split(".")
    return f"{parts[1]}.lakehouse" if len(parts) > 2 and parts[0] == "lakehouse" else "lakehouse"


def _from_peer(exc: LakehouseClientError) -> LakehouseError:
    """A peer's failure keeps its code and reason; UNAVAILABLE stays retryable for our caller."""
    # A transport failure carries no ErrorInfo: the peer itself could not be reached.
    reason = exc.reason or ("PEER_UNAVAILABLE" if exc.code.name == "UNAVAILABLE" else exc.code.name)
    error = LakehouseError(
        f"{exc.domain or 'peer service'}: {exc.message}", reason=reason, retry_after_s=exc.retry_delay_s
    )
    error.code = Code[exc.code.name] if exc.code.name in Code.__members__ else Code.INTERNAL
    return error


def _to_status(exc: BaseException, method: str, request_id: str) -> status_pb2.Status:
    if isinstance(exc, LakehouseClientError):
        exc = _from_peer(exc)
    if not isinstance(exc, LakehouseError):
        log.error("unhandled error in %s", method, exc_info=exc, extra={"request_id": request_id})
        exc = LakehouseError(f"internal error; quote request id {request_id} when reporting it", reason="INTERNAL")
    # The status travels in trailers, and clients refuse trailers over 8 KiB by default (the call
    # then fails with RESOURCE_EXHAUSTED instead of this error): texts that quote long or non-ASCII
    # input are clipped harder until the whole status fits.
    status = _status(exc, method, request_id, _CLIPS[0])
    for clip in _CLIPS[1:]:
        if _trailer_bytes(status) <= TRAILER_BUDGET:
            break
        status = _status(exc, method, request_id, clip)
    return status


@dataclass(frozen=True)
class _Clip:
    message: int
    detail: int
    violations: int


_CLIPS = (
    _Clip(MAX_MESSAGE_CHARS, MAX_DETAIL_CHARS, 20),
    _Clip(1000, 200, 10),
    _Clip(300, 60, 5),
    _Clip(100, 20, 2),
)
TRAILER_BUDGET = 6500
"""Bytes of grpc-message plus grpc-status-details-bin, under the 8 KiB clients accept by default."""


def _trailer_bytes(status: status_pb2.Status) -> int:
    # grpc-message is percent-encoded (non-ASCII bytes three times over); details are base64.
    encoded = urllib.parse.quote(status.message, safe=_PRINTABLE)
    return len(encoded) + 4 * -(-status.ByteSize() // 3)


_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _status(exc: LakehouseError, method: str, request_id: str, clip: _Clip) -> status_pb2.Status:
    metadata = {key: _clip(value, clip.detail) for key, value in list(exc.metadata.items())[:16]}
    info = error_details_pb2.ErrorInfo(
        reason=exc.reason, domain=_domain(method), metadata={**metadata, "request_id": request_id}
    )
    details: list[Any] = [info]
    if exc.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=_clip(v.field, clip.detail), description=_clip(v.description, clip.detail)
                    )
                    for v in exc.violations[: clip.violations]
                ]
            )
        )
    if exc.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(exc.retry_after_s * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    code = exc.code if exc.code != Code.OK else Code.INTERNAL
    return status_pb2.Status(
        code=code_pb2.Code.Value(code.name), message=_clip(exc.message, clip.message), details=packed
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 20, 1)] + f"… ({len(text) - limit + 20} more)"
