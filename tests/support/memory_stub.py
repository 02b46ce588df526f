"""A memory service that answers LookupPlaybook, for testing the vector service's playbook before
the real memory service exists.

It is a real grpc.aio server on its own port, built on the generated MemoryServiceServicer, so the
vector service reaches it exactly as it will reach the memory service: through [mesh] memory and
the generated stub. Entries are kept in a list with their recorded query vectors; distances are
1 - cosine similarity, computed with numpy. Every other rpc answers UNIMPLEMENTED (the generated
base class does that).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from lakehouse.memory.v1 import memory_service_pb2 as pb
from lakehouse.memory.v1 import memory_service_pb2_grpc as pb_grpc

NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,62}")


@dataclass(frozen=True)
class RecordedAnswer:
    namespace: str
    query: str
    vector: np.ndarray
    answer_collection: str
    answer_id: str
    score: float
    role: str = ""

    @property
    def id(self) -> str:
        key = "\x00".join((self.namespace, self.query, self.answer_collection, self.answer_id))
        return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class PlaybookMemory(pb_grpc.MemoryServiceServicer):
    """LookupPlaybook over `entries`; `lookups` keeps every request received, in order. With
    `failure` set, every lookup fails with that status instead (a memory service in trouble)."""

    entries: list[RecordedAnswer] = field(default_factory=list)
    lookups: list[pb.LookupPlaybookRequest] = field(default_factory=list)
    failure: grpc.StatusCode | None = None
    dimension: int = 384
    """The embedding model's dimension: query vectors of another length are refused, as the memory
    service refuses them."""

    def record(
        self,
        query: str,
        vector: Sequence[float],
        answer_collection: str,
        answer_id: str,
        score: float,
        *,
        role: str = "",
        namespace: str = "playbook",
    ) -> RecordedAnswer:
        entry = RecordedAnswer(
            namespace, query, np.asarray(vector, dtype=np.float64), answer_collection, answer_id, score, role
        )
        self.entries.append(entry)
        return entry

    async def LookupPlaybook(
        self, request: pb.LookupPlaybookRequest, context: grpc.aio.ServicerContext
    ) -> pb.LookupPlaybookResponse:
        self.lookups.append(request)
        if self.failure is not None:
            await context.abort(self.failure, f"the memory stub fails with {self.failure.name}")
        if not NAMESPACE.fullmatch(request.namespace):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAMESPACE")
        if request.WhichOneof("query") != "query_vector":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this stub looks up by query_vector only")
        query = np.asarray(request.query_vector.values, dtype=np.float64)
        if query.shape != (self.dimension,):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"DIMENSION_MISMATCH: expected {self.dimension}")
        max_distance = request.max_distance if request.HasField("max_distance") else 0.5
        excluded = set(request.exclude_answer_ids)
        collections = set(request.answer_collections)
        matches = []
        for entry in self.entries:
            if entry.namespace != request.namespace or entry.role != request.role:
                continue
            if entry.answer_id in excluded or (collections and entry.answer_collection not in collections):
                continue
            distance = cosine_distance(query, entry.vector)
            if distance <= max_distance:
                matches.append((distance, entry))
        matches.sort(key=lambda m: m[0])
        return pb.LookupPlaybookResponse(
            matches=[
                pb.PlaybookMatch(
                    entry=pb.PlaybookEntry(
                        id=e.id,
                        namespace=e.namespace,
                        query=e.query,
                        answer_collection=e.answer_collection,
                        answer_id=e.answer_id,
                        score=e.score,
                        role=e.role,
                    ),
                    distance=d,
                )
                for d, e in matches[: request.k or 10]
            ]
        )


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(1.0 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


class MemoryStubServer:
    """`PlaybookMemory` served on 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self.memory = PlaybookMemory()
        self.address = ""
        self._server: grpc.aio.Server | None = None

    async def start(self) -> MemoryStubServer:
        self._server = grpc.aio.server()
        pb_grpc.add_MemoryServiceServicer_to_server(self.memory, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self.address = f"127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None
