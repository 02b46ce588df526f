"""OpenTelemetry traces: a server span per RPC, its context carried to every mesh hop.

The W3C `traceparent` of an incoming call becomes the parent of the call's span, and every call
a service makes to a peer while serving it carries the span on (see context.forwarded_metadata),
so one request through query, catalog and storage is one trace. Spans are exported over OTLP/gRPC
when `[observability] otlp_endpoint` is set. Otherwise the tracer records nothing, but an incoming
trace context still passes through to the peers unchanged.

Each MeshServer owns its tracer provider (no process-wide global), so several servers in one
process, as in the tests, keep their spans apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from lakehouse.server.common.config import ObservabilityConfig
from lakehouse.server.common.metrics import method_labels

log = logging.getLogger("lakehouse.tracing")
_NO_TRACER = trace.NoOpTracer()


class Tracing:
    """The tracer of one server, exporting when configured."""

    def __init__(self, config: ObservabilityConfig) -> None:
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = _NO_TRACER
        if config.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self._provider = TracerProvider(
                resource=Resource.create({"service.name": config.service_name}),
                sampler=ParentBased(TraceIdRatioBased(config.trace_sample_ratio)),
            )
            exporter = OTLPSpanExporter(
                endpoint=config.otlp_endpoint, insecure=config.otlp_endpoint.startswith("http://")
            )
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
            self.tracer = self._provider.get_tracer("lakehouse")
            log.info("exporting traces to %s as %s", config.otlp_endpoint, config.service_name)

    def shutdown(self) -> None:
        """Sends the spans still buffered."""
        if self._provider is not None:
            self._provider.shutdown()


class ServerSpan:
    """The span of one RPC, current while its handler runs."""

    def __init__(self, tracer: trace.Tracer, method: str, metadata: Mapping[str, Any], request_id: str) -> None:
        service, name = method_labels(method)
        parent = propagate.extract(metadata)
        self.span = tracer.start_span(
            f"{service}/{name}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": method.lstrip("/").rpartition("/")[0],
                "rpc.method": name,
                "lakehouse.request_id": request_id,
            },
        )
        if not self.span.get_span_context().is_valid:
            # No recording tracer: keep the caller's context (if any) current, so it still reaches peers.
            self.span = trace.NonRecordingSpan(trace.get_current_span(parent).get_span_context())
        self._token: object | None = None

    def enter(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))

    def exit(self, code: str) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        self.span.set_attribute("rpc.grpc.status_code", code)
        if code != "OK":
            self.span.set_status(Status(StatusCode.ERROR, code))
        self.span.end()


def inject_current() -> list[tuple[str, str]]:
    """The trace context of the running span as metadata pairs (none outside a trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return list(carrier.items())


def current_trace_id() -> str:
    """The running span's trace id in hex, or "" outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
