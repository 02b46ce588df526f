"""Prometheus metrics of one process, served over HTTP when `[observability] metrics_port` is set.

Metrics live in prometheus_client's default registry: one set per process, whatever number of
services it hosts, labelled by service and method (the method set is fixed by the contracts, so
label cardinality is bounded). Recording is a few dictionary lookups and never fails a call.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from lakehouse.server.common.config import ObservabilityConfig

log = logging.getLogger("lakehouse.metrics")

# Latency buckets from 0.5 ms (a cached policy lookup) to 60 s (a large ingest).
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

RPCS = Counter(
    "lakehouse_rpc_requests", "RPCs finished, by service, method and status code", ["service", "method", "code"]
)
RPC_SECONDS = Histogram(
    "lakehouse_rpc_duration_seconds", "RPC latency, by service and method", ["service", "method"], buckets=_RPC_BUCKETS
)
IN_FLIGHT = Gauge("lakehouse_rpc_in_flight", "RPCs being served, by service and method", ["service", "method"])
FLIGHT_ROWS = Counter("lakehouse_flight_rows", "Rows sent or received over Arrow Flight", ["direction"])
FLIGHT_BYTES = Counter("lakehouse_flight_bytes", "Arrow buffer bytes sent or received over Arrow Flight", ["direction"])
INGEST_ROWS = Counter("lakehouse_ingest_rows", "Rows committed by ingestion, by source kind", ["source"])
EMBED_BATCH = Histogram(
    "lakehouse_embedding_batch_size",
    "Texts per embedding model run",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
EMBED_CACHE = Counter("lakehouse_embedding_cache_lookups", "Embedding cache lookups, by result", ["result"])
BACKEND_ERRORS = Counter(
    "lakehouse_backend_errors", "Failures of what the services stand on, by backend and reason", ["backend", "reason"]
)


def method_labels(method: str) -> tuple[str, str]:
    """ "/lakehouse.query.v1.QueryService/Query" -> ("query", "Query")."""
    path, _, name = method.lstrip("/").rpartition("/")
    parts = path.split(".")
    service = parts[1] if len(parts) > 2 and parts[0] == "lakehouse" else path
    return service, name


def backend_error(backend: str, reason: str) -> None:
    """Counts a failure of Milvus ("milvus"), the catalog database ("database"), an LLM ("provider")..."""
    BACKEND_ERRORS.labels(backend, reason or "UNKNOWN").inc()


@dataclass
class MetricsEndpoint:
    """The running /metrics HTTP server."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(config: ObservabilityConfig) -> MetricsEndpoint | None:
    """Starts the /metrics endpoint when a port is configured."""
    if not config.metrics_port:
        return None
    server, thread = prometheus_client.start_http_server(config.metrics_port, addr=config.metrics_host)
    endpoint = MetricsEndpoint(server, thread)
    log.info("metrics on %s", endpoint.url)
    return endpoint
