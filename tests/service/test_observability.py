"""Observability: Prometheus metrics per process, OpenTelemetry traces across mesh hops, and the
request id and trace id in log lines.

Metrics are scraped over HTTP from the server's /metrics endpoint and parsed with
prometheus_client's own parser. Traces go to a real OTLP/gRPC collector: a grpc.aio server built
on the generated TraceService of opentelemetry-proto, which keeps what it receives.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.client import AsyncCatalogClient, open_channel
from lakehouse.client.errors import NotFoundError
from lakehouse.client.flight import LakehouseFlight
from lakehouse.server.common.auth import LOCAL_ADMIN
from lakehouse.server.common.config import Config, ObservabilityConfig
from lakehouse.server.common.context import CallContext, reset_call, set_call
from lakehouse.server.common.logs import JsonFormatter, _CallIds
from tests.support.mesh import RunningMesh, make_config, start_mesh
from tests.support.query import flight_location, query_client
from tests.support.servers import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


async def started(tmp_path: Path, observability: ObservabilityConfig) -> RunningMesh:
    config: Config = replace(make_config(tmp_path / "data"), observability=observability)
    return await start_mesh(config, ("storage", "catalog", "query"))


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def metered(tmp_path: Path) -> AsyncIterator[RunningMesh]:
    mesh = await started(tmp_path, ObservabilityConfig(metrics_port=free_port()))
    yield mesh
    await mesh.stop()


async def test_metrics_count_rpcs_by_code_with_latencies_flight_and_ingest(metered: RunningMesh) -> None:
    url = metered.server.endpoints["metrics"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    before = await asyncio.to_thread(scrape, url)

    def flight_round_trip() -> pa.Table:
        client = LakehouseFlight(flight_location(metered))
        client.upload(pa.table({"n": list(range(100))}), "numbers", mode="create")
        return client.read_dataset("numbers")

    assert (await asyncio.to_thread(flight_round_trip)).num_rows == 100
    middle = await asyncio.to_thread(scrape, url)
    await metered.catalog.list_datasets()
    with pytest.raises(NotFoundError):
        await metered.catalog.get_dataset("missing")
    after = await asyncio.to_thread(scrape, url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(middle, name, **labels)

    def moved(name: str, **labels: str) -> float:
        return value(middle, name, **labels) - value(before, name, **labels)

    rpc = {"service": "catalog", "method": "GetDataset"}
    assert grew("lakehouse_rpc_requests_total", **rpc, code="NOT_FOUND") == 1
    assert grew("lakehouse_rpc_requests_total", service="catalog", method="ListDatasets", code="OK") == 1
    assert grew("lakehouse_rpc_duration_seconds_count", **rpc) == 1
    assert grew("lakehouse_rpc_duration_seconds_bucket", **rpc, le="+Inf") == 1
    assert value(after, "lakehouse_rpc_in_flight", **rpc) == 0
    assert moved("lakehouse_flight_rows_total", direction="received") == 100
    assert moved("lakehouse_flight_rows_total", direction="sent") == 100
    assert moved("lakehouse_flight_bytes_total", direction="sent") >= 800
    assert moved("lakehouse_ingest_rows_total", source="flight") == 100


async def test_no_metrics_port_means_no_endpoint(tmp_path: Path) -> None:
    mesh = await started(tmp_path, ObservabilityConfig())
    try:
        assert "metrics" not in mesh.server.endpoints
    finally:
        await mesh.stop()


# -- traces ----------------------------------------------------------------------------------------


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
            for scope in resource.scope_spans:
                self.spans.extend((service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    receiver = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield receiver, port
    await server.stop(None)


async def test_a_call_and_its_mesh_hops_are_one_trace(tmp_path: Path, collector: tuple[Collector, int]) -> None:
    receiver, port = collector
    mesh = await started(
        tmp_path, ObservabilityConfig(otlp_endpoint=f"http://127.0.0.1:{port}", service_name="lakehouse-test")
    )
    try:
        channel = open_channel(mesh.address)
        traced = AsyncCatalogClient(
            channel, timeout_s=20, metadata=lambda: (("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-01"),)
        )
        await traced.list_datasets()
        # Query asks the catalog for the caller's policy: a second hop inside the same trace.
        q = query_client(mesh)
        await q.query("SELECT 1 AS one")
        await channel.close()
    finally:
        await mesh.stop()  # flushes the batch of spans to the collector

    spans = {(span.name, span.trace_id.hex()): span for _, span in receiver.spans}
    assert {service for service, _ in receiver.spans} == {"lakehouse-test"}
    listed = spans[("catalog/ListDatasets", TRACE_ID)]
    assert listed.parent_span_id.hex() == PARENT_SPAN
    assert listed.status.code != 2  # not ERROR
    query_span = next(span for (name, _), span in spans.items() if name == "query/Query")
    hops = [s for _, s in receiver.spans if s.trace_id == query_span.trace_id and s is not query_span]
    assert any(s.name.startswith("catalog/") and s.parent_span_id == query_span.span_id for s in hops), [
        s.name for s in hops
    ]


async def test_without_a_collector_nothing_is_recorded_yet_calls_work(tmp_path: Path) -> None:
    mesh = await started(tmp_path, ObservabilityConfig())
    try:
        traced = AsyncCatalogClient(
            mesh.channel, timeout_s=20, metadata=lambda: (("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-01"),)
        )
        await traced.list_datasets()
    finally:
        await mesh.stop()


# -- log lines -------------------------------------------------------------------------------------


def test_log_lines_carry_the_request_id_of_the_call_being_served() -> None:
    stamp = _CallIds()
    outside = logging.LogRecord("lakehouse.test", logging.INFO, __file__, 1, "outside", None, None)
    stamp.filter(outside)
    assert outside.request_id == "-"
    token = set_call(CallContext("req-42", "/lakehouse.catalog.v1.CatalogService/ListDatasets", LOCAL_ADMIN))
    try:
        inside = logging.LogRecord("lakehouse.test", logging.INFO, __file__, 1, "inside", None, None)
        stamp.filter(inside)
    finally:
        reset_call(token)
    assert inside.request_id == "req-42"
    assert '"request_id": "req-42"' in JsonFormatter().format(inside)
