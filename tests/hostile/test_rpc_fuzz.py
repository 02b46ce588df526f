"""Every RPC of the six contracts, fed generated hostile requests (tests/hostile/fuzz.py) against
one real `lakehouse serve` process: each call must end in OK or a deliberate error — a code the
server chose, with an ErrorInfo reason — within its deadline. INTERNAL, UNKNOWN, DATA_LOSS, a
call that hangs past its deadline, or a server that dies fail the test.

Examples are derandomized (the same requests on every run, so CI is reproducible); set
LAKEHOUSE_FUZZ_EXAMPLES to explore more locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor as d
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.catalog.v1 import catalog_service_pb2
from lakehouse.chat.v1 import chat_service_pb2
from lakehouse.memory.v1 import memory_service_pb2
from lakehouse.query.v1 import query_service_pb2
from lakehouse.storage.v1 import storage_service_pb2
from lakehouse.vector.v1 import vector_service_pb2
from tests.e2e.harness import REPO, ServerProcess, kill_leftovers, running, write_config
from tests.hostile.fuzz import messages

MODEL_DIR = Path(os.environ.get("LAKEHOUSE_MODEL_DIR", REPO / "data" / "models" / "all-minilm-l6-v2"))
EXAMPLES = int(os.environ.get("LAKEHOUSE_FUZZ_EXAMPLES", "25"))
DEADLINE_S = 20.0
# Codes no user input may provoke: a bug (INTERNAL, UNKNOWN, DATA_LOSS) or a hang.
FORBIDDEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
}
SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (storage_service_pb2, "StorageService"),
        (catalog_service_pb2, "CatalogService"),
        (query_service_pb2, "QueryService"),
        (vector_service_pb2, "VectorService"),
        (memory_service_pb2, "MemoryService"),
        (chat_service_pb2, "ChatService"),
    )
]
METHODS = [m for service in SERVICES for m in service.methods]
CONFIG = f"""\
[server]
grace_period_s = 5

[vector.embedder]
model_dir = "{MODEL_DIR}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("fuzz")
    config = write_config(workdir / "lakehouse.toml", CONFIG)
    with running(workdir, config=config) as process:
        yield process
    kill_leftovers()


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        server.address, options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", -1)]
    ) as ch:
        yield ch


def _call(channel: grpc.Channel, method: d.MethodDescriptor, requests: list[Message]) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = GetMessageClass(method.output_type)
    kwargs = {"request_serializer": lambda m: m.SerializeToString(), "response_deserializer": response_class.FromString}
    if method.client_streaming and method.server_streaming:
        list(channel.stream_stream(path, **kwargs)(iter(requests), timeout=DEADLINE_S))
    elif method.client_streaming:
        channel.stream_unary(path, **kwargs)(iter(requests), timeout=DEADLINE_S)
    elif method.server_streaming:
        list(channel.unary_stream(path, **kwargs)(requests[0], timeout=DEADLINE_S))
    else:
        channel.unary_unary(path, **kwargs)(requests[0], timeout=DEADLINE_S)


def _check(error: grpc.RpcError, method: d.MethodDescriptor, requests: list[Message]) -> None:
    code = error.code()
    shown = [str(r)[:600] for r in requests]
    assert code not in FORBIDDEN, f"{method.full_name} answered {code.name}: {error.details()!r} to {shown}"
    if code == grpc.StatusCode.CANCELLED:
        return
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    infos = []
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and not infos:
        return  # gRPC's own message size limit, refused before any handler ran
    assert infos and infos[0].reason, f"{method.full_name}: {code.name} without an ErrorInfo reason: {shown}"


@pytest.mark.parametrize("method", METHODS, ids=[f"{m.containing_service.name}.{m.name}" for m in METHODS])
def test_hostile_requests_get_deliberate_answers(
    method: d.MethodDescriptor, channel: grpc.Channel, server: ServerProcess
) -> None:
    count = st.integers(1, 3) if method.client_streaming else st.just(1)
    requests = count.flatmap(lambda n: st.lists(messages(method.input_type), min_size=n, max_size=n))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests)
    def probe(batch: list[Message]) -> None:
        try:
            _call(channel, method, batch)
        except grpc.RpcError as error:
            _check(error, method, batch)
        assert server.alive(), f"the server died on {method.full_name}:\n{server.stderr[-3000:]}"

    probe()
