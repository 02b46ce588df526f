"""Milvus, Lite or server, behind the VectorBackend protocol, through pymilvus.

Every pymilvus call runs in a small dedicated thread pool, never on the event loop. The backend
keeps no event-loop state, so one instance serves any loop.

With an empty `[vector] uri` the backend starts Milvus Lite's gRPC server as a child process on
127.0.0.1 (`EmbeddedMilvusLite`) and talks to it exactly as to a Milvus server. Milvus Lite run
in-process holds the GIL while it searches, which would stall the asyncio server. The child stops
with the backend; a child that dies is reported by `healthy()` and restarted by the next call,
which answers UNAVAILABLE with retry info meanwhile.

Collections: primary key `id` VARCHAR(512), `vector` FLOAT_VECTOR(dim), `text` VARCHAR(65535), the
IndexDataset fields (filled with an "unset" value on every write and left out of reads when unset),
the declared scalar fields, and the dynamic field for undeclared metadata. The CollectionSpec is
stored as JSON in the collection property `lakehouse.spec` (Milvus Lite drops the schema
description; properties survive on both). Declared nullable fields are nullable columns where the
server has them (Milvus Lite, Milvus 2.5 and later); older servers keep them as dynamic keys, so a
null is an absent key there too.

Index types: Milvus Lite 3.2 (FAISS) builds AUTOINDEX (FAISS HNSW), FLAT (brute force), HNSW and
IVF_FLAT; it would accept GPU_CAGRA and silently search without it, so GPU_CAGRA is refused before
it gets there. A Milvus server builds AUTOINDEX, FLAT, HNSW and IVF_FLAT; GPU_CAGRA only on a GPU
build, which Milvus does not advertise: the backend tries and answers INDEX_TYPE_UNSUPPORTED when
the server refuses (a CPU build says "invalid index type"), and says so from then on.

Distances come back "smaller is closer": COSINE and IP as 1 - similarity, L2 as Milvus's squared
distance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import (
    DataNotMatchException,
    DataTypeNotMatchException,
    MilvusException,
    ParamError,
)

from lakehouse.server.common import metrics
from lakehouse.server.common.config import VectorConfig
from lakehouse.server.common.errors import (
    AlreadyExists,
    Code,
    FailedPrecondition,
    InvalidArgument,
    LakehouseError,
    NotFound,
    Unavailable,
    invalid_field,
)
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.vector.gateways import (
    RESERVED_FIELDS,
    CollectionInfo,
    CollectionSpec,
    FieldKind,
    Hit,
    IndexSpec,
    Record,
    Scalar,
    ScalarFieldSpec,
)

log = logging.getLogger("lakehouse.vector.backend")

T = TypeVar("T")

SPEC_PROPERTY = "lakehouse.spec"
"""Collection property holding the CollectionSpec as JSON."""
SPEC_FORMAT = 1
ID_MAX_LENGTH = 512
TEXT_MAX_LENGTH = 65535
LOOPBACK = "127.0.0.1"
# Milvus builds no index on a sealed segment smaller than this
# (indexCoord.segment.minSegmentNumRowsToEnableIndex); such segments are always searched by brute force.
MIN_INDEXED_SEGMENT_ROWS = 1024

# IndexDataset fields: a column each, with the value that means "not set" (written by every
# upsert that does not set it, and left out of what reads return).
SOURCE_FIELDS: Mapping[str, tuple[DataType, str | int, int]] = {
    "source_dataset": (DataType.VARCHAR, "", 1024),
    "source_version": (DataType.INT64, -1, 0),
    "source_key": (DataType.VARCHAR, "", ID_MAX_LENGTH),
    "chunk_index": (DataType.INT64, -1, 0),
    "content_sha256": (DataType.VARCHAR, "", 64),
}
_BASE_FIELDS = frozenset({"id", "vector", "text"})

_DATA_TYPES: Mapping[FieldKind, DataType] = {
    "STRING": DataType.VARCHAR,
    "INT64": DataType.INT64,
    "DOUBLE": DataType.DOUBLE,
    "BOOL": DataType.BOOL,
}
_KINDS: Mapping[DataType, FieldKind] = {
    DataType.VARCHAR: "STRING",
    DataType.INT64: "INT64",
    DataType.INT32: "INT64",
    DataType.INT16: "INT64",
    DataType.INT8: "INT64",
    DataType.DOUBLE: "DOUBLE",
    DataType.FLOAT: "DOUBLE",
    DataType.BOOL: "BOOL",
}

# Build parameters filled in when the spec leaves them out (the contract's defaults), and the
# search parameter each index type reads.
_BUILD_DEFAULTS: Mapping[str, Mapping[str, int]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 1024},
}
_BUILD_PARAMS: Mapping[str, frozenset[str]] = {
    "AUTOINDEX": frozenset(),
    "FLAT": frozenset(),
    "HNSW": frozenset({"M", "efConstruction"}),
    "IVF_FLAT": frozenset({"nlist"}),
    "GPU_CAGRA": frozenset({"intermediate_graph_degree", "graph_degree"}),
}
_SEARCH_PARAM: Mapping[str, str] = {"AUTOINDEX": "ef", "HNSW": "ef", "IVF_FLAT": "nprobe", "GPU_CAGRA": "itopk_size"}
DEFAULT_EF = 64
DEFAULT_NPROBE = 16

LITE_INDEX_TYPES = ("AUTOINDEX", "FLAT", "HNSW", "IVF_FLAT")
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")

UPSERT_BATCH = 1000
"""Rows per upsert call: about 2 MB of protobuf at 384 dimensions."""
GET_BATCH = 1000
SCAN_BATCH = 4096
SPEC_TTL_S = 30.0
"""How long a collection's spec and columns are reused before describing it again."""
HEALTH_TIMEOUT_S = 2.0
RETRY_AFTER_S = 1.0

_COLLECTION_NOT_FOUND = 100
_COLLECTION_NOT_LOADED = 101
_NOT_FOUND_TEXT = re.compile(r"collection not found|can't find collection|does not exist", re.IGNORECASE)
_NOT_LOADED_TEXT = re.compile(r"not loaded", re.IGNORECASE)
_UNAVAILABLE_TEXT = re.compile(r"fail connecting|server unavailable|connection refused|retry timeout", re.IGNORECASE)
_FILTER_TEXT = re.compile(r"expr|parse|plan|token|column|comparison|operator|field|syntax|unexpected", re.IGNORECASE)
_TRANSIENT_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED", "UNKNOWN"})
_INPUT_CODES = frozenset({6, 1100})  # IllegalArgument (Milvus Lite), ParameterInvalid (Milvus)
_RATE_LIMIT = 8


def milvus_string(value: str) -> str:
    """A Milvus string literal: JSON string syntax, non-ASCII as it is (Milvus reads no \\u escapes).

    pymilvus's own `get`/`delete` by ids wrap ids in single quotes without escaping, so an id holding
    a quote breaks (or widens) the expression; ids are always matched through this instead.
    """
    return json.dumps(value, ensure_ascii=False)


def ids_filter(ids: Sequence[str]) -> str:
    return f"id in [{', '.join(milvus_string(i) for i in ids)}]"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- Milvus Lite as a child process ---------------------------------------------------------------

# Runs `milvus-lite server` (its own CLI entry point) with two additions: SIGTERM shuts down as
# gracefully as Ctrl-C does (the CLI handles only KeyboardInterrupt; plain SIGTERM would skip
# closing the database), and the child exits when the process that started it is gone, even
# after a SIGKILL of that process, so no orphan keeps the data directory locked.
_LITE_CHILD = """
import os, signal, sys, threading, time

def watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGINT)

signal.signal(signal.SIGTERM, signal.default_int_handler)
threading.Thread(target=watch_parent, args=(int(sys.argv[1]),), daemon=True).start()
from milvus_lite.cmdline import main
sys.exit(main(sys.argv[2:]))
"""


class EmbeddedMilvusLite:
    """Milvus Lite's gRPC server (`python -m milvus_lite server`) as a child process on loopback.

    Data lives in `<root>/milvus-lite/`, the child's output in `<root>/milvus-lite.log`. Milvus
    Lite locks its data directory, so one directory serves one process at a time.
    """

    def __init__(
        self, root: Path, *, startup_timeout_s: float = 60.0, stop_grace_s: float = 10.0, attempts: int = 3
    ) -> None:
        self.data_dir = root / "milvus-lite"
        self.log_path = root / "milvus-lite.log"
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self._attempts = attempts
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.started_s = 0.0
        """Seconds the last start took, until the child answered."""

    @property
    def uri(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """The child's exit status once it has exited; None while it runs or before it started."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> str:
        """Starts the child on a free loopback port and waits until it accepts connections."""
        if self.alive():
            return self.uri
        self.data_dir.mkdir(parents=True, exist_ok=True)
        failure = ""
        for _ in range(self._attempts):
            began = time.monotonic()
            port = free_port()
            self._proc = self._spawn(port)
            failure = self._await(port)
            if not failure:
                self.port = port
                self.started_s = time.monotonic() - began
                log.info("Milvus Lite started in %.1f s on %s (pid %d)", self.started_s, self.uri, self._proc.pid)
                return self.uri
            self.stop()
        raise Unavailable(
            f"Milvus Lite did not start: {failure}; log {self.log_path}:\n{self.log_tail()}",
            retry_after_s=RETRY_AFTER_S,
        )

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        argv = ["server", "--data-dir", str(self.data_dir), "--host", LOOPBACK, "--port", str(port)]
        with self.log_path.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-c", _LITE_CHILD, str(os.getpid()), *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C at the terminal reaches the server, which stops the
                # child in order, instead of killing both at once.
                start_new_session=True,
            )

    def _await(self, port: int) -> str:
        """ "" once the child accepts connections on `port`, else why it did not."""
        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                return f"the child exited with status {code}"
            if _port_open(port):
                return ""
            time.sleep(0.05)
        return f"nothing listened on port {port} after {self._startup_timeout_s:.0f} s"

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown that closes the database), then SIGKILL after the grace period."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_grace_s)
            except subprocess.TimeoutExpired:
                log.warning("Milvus Lite (pid %d) ignored SIGTERM for %.0f s; killing it", proc.pid, self._stop_grace_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=self._stop_grace_s)
        else:
            proc.wait()

    def log_tail(self, size: int = 4000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


# -- collections as stored ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    kind: FieldKind
    nullable: bool


@dataclass(frozen=True)
class _Shape:
    """What a write or read needs to know about a collection, described once per SPEC_TTL_S."""

    spec: CollectionSpec
    columns: Mapping[str, _Column]
    """Scalar columns besides id, vector and text (IndexDataset fields and declared fields)."""
    dynamic: bool
    create_time: datetime | None
    described_at: float


def spec_to_json(spec: CollectionSpec, create_time: datetime) -> str:
    return json.dumps(
        {
            "format": SPEC_FORMAT,
            "dimension": spec.dimension,
            "metric": spec.metric,
            "index": {"kind": spec.index.kind, "params": dict(spec.index.params)},
            "fields": [
                {"name": f.name, "kind": f.kind, "nullable": f.nullable, "max_length": f.max_length}
                for f in spec.fields
            ],
            "description": spec.description,
            "embedder_model": spec.embedder_model,
            "source_dataset": spec.source_dataset,
            "create_time": create_time.isoformat(),
        },
        separators=(",", ":"),
    )


def spec_from_json(name: str, text: str) -> tuple[CollectionSpec, datetime | None]:
    data = json.loads(text)
    spec = CollectionSpec(
        name=name,
        dimension=int(data["dimension"]),
        metric=data["metric"],
        index=IndexSpec(kind=data["index"]["kind"], params={k: int(v) for k, v in data["index"]["params"].items()}),
        fields=tuple(
            ScalarFieldSpec(f["name"], f["kind"], bool(f["nullable"]), int(f["max_length"])) for f in data["fields"]
        ),
        description=data.get("description", ""),
        embedder_model=data.get("embedder_model", ""),
        source_dataset=data.get("source_dataset", ""),
    )
    created = data.get("create_time")
    return spec, datetime.fromisoformat(created) if created else None


def _distance(metric: str) -> Callable[[float], float]:
    if metric == "L2":
        return float
    return lambda similarity: 1.0 - float(similarity)


def _server_has_nullable(version: str) -> bool:
    """Nullable columns: Milvus Lite, and Milvus servers from 2.5 on."""
    if version.startswith("milvus_lite"):
        return True
    match = re.match(r"v?(\d+)\.(\d+)", version)
    return match is None or (int(match.group(1)), int(match.group(2))) >= (2, 5)


class MilvusBackend:
    """VectorBackend over pymilvus's MilvusClient, each call run in a dedicated thread pool."""

    def __init__(self, config: VectorConfig, data_dir: Path, *, workers: int = 8) -> None:
        self._config = config
        self._timeout = config.timeout_s
        self._executor = BlockingExecutor(workers, name="milvus")
        self._embedded = EmbeddedMilvusLite(Path(data_dir) / "vector") if not config.uri else None
        self._lock = threading.RLock()
        self._client: MilvusClient | None = None
        self._uri = config.uri
        self._version = ""
        self._nullable = True
        self._gpu_refused = False
        self._restarting: threading.Thread | None = None
        self._down = ""
        self._closed = False
        self._shapes: dict[str, _Shape] = {}
        self._write_locks: dict[str, threading.Lock] = {}

    # -- protocol: identity and lifecycle -------------------------------------------------------

    @property
    def kind(self) -> str:
        """ "milvus-lite" for the embedded child or any Milvus Lite server, else "milvus"."""
        if self._embedded is not None or self._version.startswith("milvus_lite"):
            return "milvus-lite"
        return "milvus"

    @property
    def supports_gpu_index(self) -> bool:
        """Never on Milvus Lite; on a server until it refuses a GPU index (Milvus does not say
        beforehand whether it is a GPU build)."""
        return self.kind == "milvus" and not self._gpu_refused

    @property
    def server_version(self) -> str:
        """As the server reports it, e.g. "v2.3.5-lite" or "milvus_lite-3.2.2"; "" before start."""
        return self._version

    @property
    def embedded(self) -> EmbeddedMilvusLite | None:
        """The Milvus Lite child when `[vector] uri` is empty."""
        return self._embedded

    async def start(self) -> None:
        await self._executor.run(self._start)

    def _start(self) -> None:
        with self._lock:
            if self._embedded is not None:
                self._uri = self._embedded.start()
                self._client = self._connect()
                return
        # A Milvus server that is not up yet is not fatal: calls answer UNAVAILABLE and connect
        # as soon as it answers.
        try:
            self._live_client()
        except Unavailable as e:
            log.warning("Milvus at %s is not reachable yet: %s", self._uri, e.message)

    async def close(self) -> None:
        try:
            await self._executor.run(self._close)
        finally:
            await asyncio.to_thread(self._executor.shutdown)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            restarting = self._restarting
        if restarting is not None:
            restarting.join()
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if self._embedded is not None:
                self._embedded.stop()

    async def healthy(self) -> tuple[bool, str]:
        return await self._executor.run(self._healthy)

    def _healthy(self) -> tuple[bool, str]:
        try:
            client = self._live_client()
            client.list_collections(timeout=min(HEALTH_TIMEOUT_S, self._timeout))
        except LakehouseError as e:
            return False, e.message
        except Exception as e:
            error = self._translate(e)
            if isinstance(error, Unavailable):
                return False, error.message
            return False, f"Milvus answered with an error: {error.message}"
        return True, ""

    # -- connections ------------------------------------------------------------------------------

    def _connect(self) -> MilvusClient:
        token = os.environ.get(self._config.token_env, "") if self._config.token_env else ""
        if self._config.token_env and not token:
            log.warning(
                "[vector] token_env names %s, which is not set; connecting without a token", self._config.token_env
            )
        try:
            client = MilvusClient(uri=self._uri, token=token, timeout=self._timeout, dedicated=True)
            self._version = str(client.get_server_version(timeout=self._timeout))
        except MilvusException as e:
            raise Unavailable(
                f"cannot connect to Milvus at {self._uri}: {e.message}", retry_after_s=RETRY_AFTER_S
            ) from e
        self._nullable = _server_has_nullable(self._version)
        # Every failed call is already a domain error with Milvus's message; pymilvus would also log
        # each one (a bad filter included) as an ERROR with a traceback.
        logging.getLogger("pymilvus.decorators").setLevel(logging.CRITICAL)
        if self._version.startswith("milvus_lite"):
            # Milvus Lite keeps no MVCC timestamps for iterators; pymilvus warns on every scan.
            logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
        return client

    def _live_client(self) -> MilvusClient:
        """The connected client, or Unavailable (starting a restart of a Milvus Lite child that died)."""
        with self._lock:
            if self._closed:
                raise Unavailable("the vector backend is closed", retry_after_s=RETRY_AFTER_S)
            lite = self._embedded
            if lite is not None:
                if self._restarting is None and not lite.alive():
                    self._restart_lite(f"the Milvus Lite child (pid {lite.pid}) exited with status {lite.exit_code()}")
                if self._restarting is not None:
                    raise Unavailable(
                        f"Milvus Lite is restarting: {self._down}",
                        retry_after_s=max(RETRY_AFTER_S, round(lite.started_s or 3.0, 1)),
                    )
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _restart_lite(self, why: str) -> None:
        """Restarts the Milvus Lite child in the background; calls answer UNAVAILABLE meanwhile."""
        log.error("%s; restarting it", why)
        self._down = why
        thread = threading.Thread(target=self._restarted_lite, name="milvus-lite-restart", daemon=True)
        self._restarting = thread
        thread.start()

    def _restarted_lite(self) -> None:
        lite = self._embedded
        assert lite is not None
        client: MilvusClient | None = None
        try:
            lite.stop()
            self._uri = lite.start()
            client = self._connect()
        except Exception as e:
            log.error("Milvus Lite did not restart: %s", e)
        with self._lock:
            old, self._client = self._client, client
            self._shapes.clear()
            self._restarting = None
            closed = self._closed
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        if closed and client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # -- errors ---------------------------------------------------------------------------------------

    def _call(self, fn: Callable[[MilvusClient], T], *, collection: str = "", filter: str = "") -> T:
        """Runs `fn` with the live client, reloading a released collection once, and turns pymilvus
        errors into domain errors."""
        client = self._live_client()
        try:
            try:
                return fn(client)
            except MilvusException as e:
                if not collection or not self._not_loaded(e):
                    raise
                client.load_collection(collection, timeout=self._timeout)
                return fn(client)
        except LakehouseError:
            raise
        except Exception as e:
            error = self._translate(e, collection=collection, filter=filter)
            if isinstance(error, NotFound) and collection:
                self._shapes.pop(collection, None)
            if error.code in (Code.UNAVAILABLE, Code.INTERNAL):  # Milvus's trouble, not the caller's mistake
                metrics.backend_error("milvus", error.reason)
            raise error from e

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """One write at a time per collection on Milvus Lite, whose engine is single-writer per
        collection (its gRPC server would otherwise run concurrent writes on several threads)."""
        if self.kind != "milvus-lite":
            yield
            return
        with self._lock:
            lock = self._write_locks.setdefault(name, threading.Lock())
        with lock:
            yield

    @staticmethod
    def _not_loaded(e: MilvusException) -> bool:
        return e.code == _COLLECTION_NOT_LOADED or bool(_NOT_LOADED_TEXT.search(e.message or ""))

    def _translate(self, e: Exception, *, collection: str = "", filter: str = "") -> LakehouseError:
        if isinstance(e, LakehouseError):
            return e
        lite = self._embedded
        if lite is not None and not lite.alive():
            return Unavailable(
                f"the Milvus Lite child exited with status {lite.exit_code()}; it restarts on the next call",
                retry_after_s=RETRY_AFTER_S,
            )
        grpc_code = _grpc_code(e)
        if grpc_code is not None:
            if grpc_code == "UNAUTHENTICATED" or grpc_code == "PERMISSION_DENIED":
                return Unavailable(
                    f"Milvus at {self._uri} refused the credentials ([vector] token_env): {_message(e)}",
                    retry_after_s=RETRY_AFTER_S,
                )
            if grpc_code in _TRANSIENT_GRPC:
                return Unavailable(f"Milvus at {self._uri} did not answer: {_message(e)}", retry_after_s=RETRY_AFTER_S)
        if isinstance(e, (DataNotMatchException, DataTypeNotMatchException)):
            return InvalidArgument(f"records do not fit the collection: {_message(e)}", reason="FIELD_TYPE_MISMATCH")
        if isinstance(e, ParamError):
            return InvalidArgument(_message(e), reason="INVALID_ARGUMENT")
        if isinstance(e, MilvusException):
            text = e.message or ""
            if collection and (e.code == _COLLECTION_NOT_FOUND or _NOT_FOUND_TEXT.search(text)):
                return NotFound(f"collection {collection!r} does not exist", reason="COLLECTION_NOT_FOUND")
            if e.code == _RATE_LIMIT:
                return Unavailable(f"Milvus is rate limiting: {text}", retry_after_s=RETRY_AFTER_S)
            if _UNAVAILABLE_TEXT.search(text):
                return Unavailable(f"Milvus at {self._uri} did not answer: {text}", retry_after_s=RETRY_AFTER_S)
            if filter and _FILTER_TEXT.search(text):
                return invalid_field("filter", f"Milvus cannot use filter {filter!r}: {text}", reason="INVALID_FILTER")
            if e.code in _INPUT_CODES or e.is_input_error:
                return InvalidArgument(f"Milvus refused the request: {text}", reason="INVALID_ARGUMENT")
            return LakehouseError(f"Milvus failed: {text} (code {e.code})")
        return LakehouseError(f"Milvus call failed: {type(e).__name__}: {e}")

    # -- collections ------------------------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        return await self._executor.run(self._create_collection, spec)

    def _create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        kind = spec.index.kind
        if kind == "GPU_CAGRA" and not self.supports_gpu_index:
            raise self._gpu_unsupported()
        if kind not in _BUILD_PARAMS:
            raise invalid_field("collection.index.type", f"unknown index type {kind!r}", reason="INVALID_INDEX_PARAMS")
        unknown = sorted(set(spec.index.params) - _BUILD_PARAMS[kind])
        if unknown:
            raise invalid_field(
                "collection.index",
                f"{', '.join(unknown)} are not {kind} build parameters",
                reason="INVALID_INDEX_PARAMS",
            )
        for declared in spec.fields:
            if declared.name in RESERVED_FIELDS:
                raise invalid_field(
                    "collection.fields", f"{declared.name!r} is a reserved field name", reason="RESERVED_FIELD"
                )
        params = {**_BUILD_DEFAULTS.get(kind, {}), **spec.index.params}
        filled = CollectionSpec(
            name=spec.name,
            dimension=spec.dimension,
            metric=spec.metric,
            index=IndexSpec(kind=kind, params=params),
            fields=spec.fields,
            description=spec.description,
            embedder_model=spec.embedder_model,
            source_dataset=spec.source_dataset,
        )
        created = datetime.now(UTC).replace(microsecond=0)

        def create(client: MilvusClient) -> None:
            if client.has_collection(spec.name, timeout=self._timeout):
                raise AlreadyExists(f"collection {spec.name!r} already exists", reason="COLLECTION_EXISTS")
            schema = self._schema(client, filled)
            index = client.prepare_index_params()
            index.add_index("vector", index_type=kind, metric_type=spec.metric, params=params)
            client.create_collection(
                spec.name,
                schema=schema,
                timeout=self._timeout,
                properties={SPEC_PROPERTY: spec_to_json(filled, created)},
            )
            try:
                client.create_index(spec.name, index, timeout=self._timeout)
            except Exception as e:
                with contextlib.suppress(Exception):
                    client.drop_collection(spec.name, timeout=self._timeout)
                raise self._index_refused(kind, self._translate(e, collection=spec.name)) from e
            client.load_collection(spec.name, timeout=self._timeout)

        self._call(create)
        self._shapes.pop(spec.name, None)
        return self._describe_collection(spec.name)

    def _index_refused(self, kind: str, error: LakehouseError) -> LakehouseError:
        """What to say when the server would not build the index (the collection is dropped again)."""
        if isinstance(error, Unavailable):
            return error
        if kind == "GPU_CAGRA" and "invalid index type" in error.message.lower():
            self._gpu_refused = True
            return self._gpu_unsupported()
        return invalid_field(
            "collection.index", f"Milvus would not build the index: {error.message}", reason="INVALID_INDEX_PARAMS"
        )

    def _gpu_unsupported(self) -> FailedPrecondition:
        return FailedPrecondition(
            f"GPU_CAGRA needs a GPU build of Milvus; {self.kind} ({self._version or 'not connected'}) "
            f"builds {', '.join(LITE_INDEX_TYPES)}",
            reason="INDEX_TYPE_UNSUPPORTED",
        )

    def _schema(self, client: MilvusClient, spec: CollectionSpec) -> Any:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=True, description=spec.description[:255])
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_LENGTH)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=spec.dimension)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_LENGTH, default_value="")
        for name, (dtype, unset, length) in SOURCE_FIELDS.items():
            extra = {"max_length": length} if dtype == DataType.VARCHAR else {}
            schema.add_field(name, dtype, default_value=unset, **extra)
        for declared in spec.fields:
            if declared.nullable and not self._nullable:
                continue  # a dynamic key on this server (see the module docstring)
            dtype = _DATA_TYPES[declared.kind]
            extra = {"max_length": declared.max_length or TEXT_MAX_LENGTH} if dtype == DataType.VARCHAR else {}
            if declared.nullable:
                extra["nullable"] = True
            schema.add_field(declared.name, dtype, **extra)
        return schema

    async def describe_collection(self, name: str) -> CollectionInfo:
        return await self._executor.run(self._describe_collection, name)

    def _describe_collection(self, name: str) -> CollectionInfo:
        shape = self._shape(name, fresh=True)

        def describe(client: MilvusClient) -> CollectionInfo:
            index = client.describe_index(name, "vector", timeout=self._timeout) or {}
            state = str(client.get_load_state(name, timeout=self._timeout).get("state", ""))
            rows = self._row_count(client, name)
            index_state: Literal["BUILDING", "READY", "FAILED"]
            if str(index.get("state", "Finished")) == "Failed":
                index_state = "FAILED"
            elif (
                str(index.get("state", "Finished")) != "Finished"
                or int(index.get("pending_index_rows", 0) or 0) > 0
                or not state.endswith("Loaded")
                or not self._indexes_loaded(client, name)
            ):
                index_state = "BUILDING"
            else:
                index_state = "READY"
            return CollectionInfo(
                spec=shape.spec,
                row_count=rows,
                index_state=index_state,
                create_time=shape.create_time,
                indexed_rows=min(rows, int(index.get("indexed_rows", 0) or 0)),
            )

        return self._call(describe, collection=name)

    def _indexes_loaded(self, client: MilvusClient, name: str) -> bool:
        """Whether the query nodes serve every indexable sealed segment with its index: a server
        builds an index a few seconds before it loads it, and searches that segment by brute
        force meanwhile. Milvus Lite does not list segments (and indexes as it writes)."""
        if self.kind == "milvus-lite":
            return True
        segments = client.list_loaded_segments(name, timeout=self._timeout)
        return all(s.index_name for s in segments if s.num_rows >= MIN_INDEXED_SEGMENT_ROWS)

    def _row_count(self, client: MilvusClient, name: str) -> int:
        """Live rows (deletes subtracted, unflushed rows counted), read at `[vector] consistency`;
        the flushed-row statistic when the collection cannot be queried."""
        try:
            rows = client.query(
                name,
                filter="",
                output_fields=["count(*)"],
                consistency_level=self._config.consistency,
                timeout=self._timeout,
            )
            return int(rows[0]["count(*)"])
        except MilvusException as e:
            if self._not_loaded(e):
                return int(client.get_collection_stats(name, timeout=self._timeout).get("row_count", 0))
            raise

    async def spec(self, name: str) -> CollectionSpec:
        """The collection's spec, reused for up to SPEC_TTL_S: one RPC at most, against the four a
        describe_collection costs (index, load state and a row count)."""
        held = self._held_shape(name)  # a dict lookup: no thread hop on the search path
        if held is None:
            held = await self._executor.run(self._shape, name)
        return held.spec

    def _held_shape(self, name: str) -> _Shape | None:
        held = self._shapes.get(name)
        return held if held is not None and time.monotonic() - held.described_at < SPEC_TTL_S else None

    def _shape(self, name: str, fresh: bool = False) -> _Shape:
        held = None if fresh else self._held_shape(name)
        if held is not None:
            return held
        described = self._call(lambda c: c.describe_collection(name, timeout=self._timeout), collection=name)
        shape = self._shape_of(name, described)
        self._shapes[name] = shape
        return shape

    def _shape_of(self, name: str, described: Mapping[str, Any]) -> _Shape:
        columns: dict[str, _Column] = {}
        dimension = 0
        for f in described.get("fields", []):
            dtype = f.get("type")
            if f.get("name") in _BASE_FIELDS or f.get("is_primary"):
                if dtype == DataType.FLOAT_VECTOR:
                    dimension = int(f.get("params", {}).get("dim", 0))
                continue
            kind = _KINDS.get(dtype)
            if kind is not None:
                columns[f["name"]] = _Column(kind, bool(f.get("nullable", False)))
        properties = described.get("properties") or {}
        create_time: datetime | None = None
        if SPEC_PROPERTY in properties:
            spec, create_time = spec_from_json(name, properties[SPEC_PROPERTY])
        else:
            spec = self._spec_from_schema(name, dimension, columns, str(described.get("description", "")))
        if create_time is None and described.get("created_timestamp"):
            # A hybrid timestamp: milliseconds since the epoch above 18 logical bits.
            create_time = datetime.fromtimestamp((int(described["created_timestamp"]) >> 18) / 1000, UTC)
        return _Shape(
            spec=spec,
            columns=columns,
            dynamic=bool(described.get("enable_dynamic_field", False)),
            create_time=create_time,
            described_at=time.monotonic(),
        )

    def _spec_from_schema(
        self, name: str, dimension: int, columns: Mapping[str, _Column], description: str
    ) -> CollectionSpec:
        """A spec for a collection created outside this service: metric and index from its index."""
        index: Mapping[str, Any] = {}
        with contextlib.suppress(Exception):
            index = self._call(lambda c: c.describe_index(name, "vector", timeout=self._timeout)) or {}
        kind = str(index.get("index_type", "AUTOINDEX"))
        params = {k: int(v) for k, v in index.items() if k in _BUILD_PARAMS.get(kind, ()) and str(v).isdigit()}
        return CollectionSpec(
            name=name,
            dimension=dimension,
            metric=str(index.get("metric_type", "COSINE")),  # type: ignore[arg-type]
            index=IndexSpec(kind=kind, params=params),  # type: ignore[arg-type]
            fields=tuple(ScalarFieldSpec(n, c.kind, c.nullable) for n, c in columns.items() if n not in SOURCE_FIELDS),
            description=description,
        )

    async def update_collection(
        self, name: str, *, embedder_model: str | None = None, source_dataset: str | None = None
    ) -> CollectionSpec:
        """Records the model whose vectors the collection holds and the dataset it is indexed from."""
        return await self._executor.run(self._update_collection, name, embedder_model, source_dataset)

    def _update_collection(self, name: str, embedder_model: str | None, source_dataset: str | None) -> CollectionSpec:
        shape = self._shape(name, fresh=True)
        spec = shape.spec
        updated = CollectionSpec(
            name=spec.name,
            dimension=spec.dimension,
            metric=spec.metric,
            index=spec.index,
            fields=spec.fields,
            description=spec.description,
            embedder_model=spec.embedder_model if embedder_model is None else embedder_model,
            source_dataset=spec.source_dataset if source_dataset is None else source_dataset,
        )
        created = shape.create_time or datetime.now(UTC).replace(microsecond=0)
        self._call(
            lambda c: c.alter_collection_properties(
                name, properties={SPEC_PROPERTY: spec_to_json(updated, created)}, timeout=self._timeout
            ),
            collection=name,
        )
        self._shapes.pop(name, None)
        return updated

    async def list_collections(self) -> list[str]:
        return await self._executor.run(self._list_collections)

    def _list_collections(self) -> list[str]:
        return sorted(self._call(lambda c: c.list_collections(timeout=self._timeout)))

    async def drop_collection(self, name: str) -> None:
        await self._executor.run(self._drop_collection, name)

    def _drop_collection(self, name: str) -> None:
        def drop(client: MilvusClient) -> None:
            # Dropping a missing collection succeeds silently in Milvus.
            if not client.has_collection(name, timeout=self._timeout):
                raise NotFound(f"collection {name!r} does not exist", reason="COLLECTION_NOT_FOUND")
            client.drop_collection(name, timeout=self._timeout)

        try:
            self._call(drop, collection=name)
        finally:
            self._shapes.pop(name, None)
            self._write_locks.pop(name, None)

    async def flush(self, name: str) -> None:
        await self._executor.run(self._flush, name)

    def _flush(self, name: str) -> None:
        def flush(client: MilvusClient) -> None:
            if not client.has_collection(name, timeout=self._timeout):  # Milvus Lite flushes anything
                raise NotFound(f"collection {name!r} does not exist", reason="COLLECTION_NOT_FOUND")
            client.flush(name, timeout=self._timeout)

        with self._writing(name):
            self._call(flush, collection=name)

    # -- vectors ------------------------------------------------------------------------------------

    async def upsert(self, name: str, records: Sequence[Record]) -> int:
        return await self._executor.run(self._upsert, name, records)

    def _upsert(self, name: str, records: Sequence[Record]) -> int:
        if not records:
            return 0
        shape = self._shape(name)
        declared = {f.name: f for f in shape.spec.fields}
        rows = [self._row(shape, declared, record, i) for i, record in enumerate(records)]
        for start in range(0, len(rows), UPSERT_BATCH):
            chunk = rows[start : start + UPSERT_BATCH]

            def write(client: MilvusClient, chunk: list[dict[str, Any]] = chunk) -> None:
                client.upsert(name, chunk, timeout=self._timeout)

            with self._writing(name):
                self._call(write, collection=name)
        return len(rows)

    def _row(self, shape: _Shape, declared: Mapping[str, ScalarFieldSpec], record: Record, i: int) -> dict[str, Any]:
        where = f"records[{i}]"
        vector = np.asarray(record.vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != shape.spec.dimension:
            raise invalid_field(
                f"{where}.vector",
                f"has {vector.shape[0]} values; collection {shape.spec.name!r} holds {shape.spec.dimension}",
                reason="DIMENSION_MISMATCH",
            )
        row: dict[str, Any] = {"id": record.id, "vector": vector.tolist(), "text": record.text}
        for key, (_, unset, _) in SOURCE_FIELDS.items():
            row[key] = unset
        for key, value in record.metadata.items():
            if key in _BASE_FIELDS:
                raise invalid_field(f"{where}.metadata.{key}", "is a reserved field name", reason="RESERVED_FIELD")
            if key in SOURCE_FIELDS:
                if value is not None:
                    row[key] = value
            elif key in declared:
                row[key] = _checked(declared[key], value, f"{where}.metadata.{key}")
            elif value is not None:
                row[key] = value
        for key, field_spec in declared.items():
            column = shape.columns.get(key)
            if row.get(key) is not None:
                continue
            if not field_spec.nullable:
                raise invalid_field(
                    f"{where}.metadata.{key}", "is required (the field is not nullable)", reason="MISSING_FIELD"
                )
            if column is not None:
                row[key] = None
            else:
                row.pop(key, None)  # kept as a dynamic key: null is an absent key
        return row

    async def delete(self, name: str, *, ids: Sequence[str] = (), filter: str = "") -> int:
        return await self._executor.run(self._delete, name, tuple(ids), filter)

    def _delete(self, name: str, ids: Sequence[str], filter: str) -> int:
        if bool(ids) == bool(filter.strip()):
            raise InvalidArgument("give exactly one of ids and filter", reason="MISSING_SELECTOR")
        self._shape(name)
        if filter:
            with self._writing(name):
                result = self._call(
                    lambda c: c.delete(name, filter=filter, timeout=self._timeout), collection=name, filter=filter
                )
            return len(result) if isinstance(result, list) else int(result.get("delete_count", 0))
        # Milvus counts the ids it was given, present or not; the count is of those present,
        # read at Strong consistency. Every id is deleted either way.
        unique = list(dict.fromkeys(ids))
        deleted = 0
        for start in range(0, len(unique), GET_BATCH):
            chunk = unique[start : start + GET_BATCH]
            expression = ids_filter(chunk)

            def delete(client: MilvusClient, expression: str = expression) -> int:
                present = client.query(
                    name, filter=expression, output_fields=["id"], consistency_level="Strong", timeout=self._timeout
                )
                client.delete(name, filter=expression, timeout=self._timeout)
                return len(present)

            with self._writing(name):
                deleted += self._call(delete, collection=name)
        return deleted

    async def get(self, name: str, ids: Sequence[str], *, with_vectors: bool, fields: Sequence[str]) -> list[Record]:
        return await self._executor.run(self._get, name, tuple(ids), with_vectors, tuple(fields))

    def _get(self, name: str, ids: Sequence[str], with_vectors: bool, fields: Sequence[str]) -> list[Record]:
        shape = self._shape(name)
        unique = list(dict.fromkeys(ids))
        output = self._output_fields(shape, fields, with_vectors)
        found: dict[str, Record] = {}
        for start in range(0, len(unique), GET_BATCH):
            expression = ids_filter(unique[start : start + GET_BATCH])

            def read(client: MilvusClient, expression: str = expression) -> list[dict[str, Any]]:
                return list(
                    client.query(
                        name,
                        filter=expression,
                        output_fields=output,
                        consistency_level=self._config.consistency,
                        timeout=self._timeout,
                    )
                )

            rows = self._call(read, collection=name)
            for row in rows:
                record = _record(row, fields, with_vectors)
                found[record.id] = record
        return [found[i] for i in unique if i in found]

    async def scan(
        self,
        name: str,
        *,
        fields: Sequence[str] = (),
        filter: str = "",
        with_vectors: bool = False,
        batch_size: int = SCAN_BATCH,
    ) -> AsyncIterator[list[Record]]:
        """Every record matching `filter` (all when empty), in batches; `fields` as in `get`.

        Reads at `[vector] consistency` through a query iterator, so the collection may change
        while the scan runs without records being read twice.
        """
        shape = await self._executor.run(self._shape, name)
        output = self._output_fields(shape, fields, with_vectors)
        iterator = await self._executor.run(
            lambda: self._call(
                lambda c: c.query_iterator(
                    name,
                    batch_size=batch_size,
                    filter=filter,
                    output_fields=output,
                    consistency_level=self._config.consistency,
                    timeout=self._timeout,
                ),
                collection=name,
                filter=filter,
            )
        )
        try:
            while True:
                rows = await self._executor.run(lambda: self._call(lambda _c: iterator.next(), collection=name))
                if not rows:
                    return
                yield [_record(row, fields, with_vectors) for row in rows]
        finally:
            with contextlib.suppress(Exception):
                iterator.close()

    async def sample_vectors(self, name: str, count: int, seed: int) -> list[Record]:
        ids = await self._executor.run(self._all_ids, name)
        if not ids or count <= 0:
            return []
        chosen = random.Random(seed).sample(ids, min(count, len(ids)))
        return await self.get(name, chosen, with_vectors=True, fields=("id",))

    def _all_ids(self, name: str) -> list[str]:
        """Every id in the collection, sorted, so a seed picks the same sample every time."""
        self._shape(name)

        def read(client: MilvusClient) -> list[str]:
            iterator = client.query_iterator(
                name,
                batch_size=SCAN_BATCH * 4,
                output_fields=["id"],
                consistency_level=self._config.consistency,
                timeout=self._timeout,
            )
            ids: list[str] = []
            try:
                while rows := iterator.next():
                    ids.extend(str(row["id"]) for row in rows)
            finally:
                iterator.close()
            return sorted(set(ids))

        return self._call(read, collection=name)

    def _output_fields(self, shape: _Shape, fields: Sequence[str], with_vectors: bool) -> list[str]:
        if fields:
            wanted = [f for f in dict.fromkeys(fields) if f not in _BASE_FIELDS]
        else:
            wanted = [*shape.columns, *(["$meta"] if shape.dynamic else [])]
        return ["text", *wanted, *(["vector"] if with_vectors else [])]

    async def search(
        self,
        name: str,
        vector: np.ndarray,
        k: int,
        *,
        filter: str = "",
        fields: Sequence[str] = (),
        params: Mapping[str, int] | None = None,
        consistency: str = "Bounded",
    ) -> list[Hit]:
        return await self._executor.run(
            self._search, name, vector, k, filter, tuple(fields), dict(params or {}), consistency
        )

    def _search(
        self,
        name: str,
        vector: np.ndarray,
        k: int,
        filter: str,
        fields: Sequence[str],
        params: Mapping[str, int],
        consistency: str,
    ) -> list[Hit]:
        if consistency not in CONSISTENCY_LEVELS:
            raise invalid_field(
                "consistency",
                f"{consistency!r} is not one of {', '.join(CONSISTENCY_LEVELS)}",
                reason="INVALID_ARGUMENT",
            )
        shape = self._shape(name)
        spec = shape.spec
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != spec.dimension:
            raise invalid_field(
                "vector",
                f"has {query.shape[0]} values; collection {name!r} holds {spec.dimension}",
                reason="DIMENSION_MISMATCH",
            )
        output = self._output_fields(shape, fields, with_vectors=False)
        search_params = {"metric_type": spec.metric, "params": _search_params(spec, params, k)}
        results = self._call(
            lambda c: c.search(
                name,
                data=[query.tolist()],
                limit=k,
                filter=filter,
                output_fields=output,
                search_params=search_params,
                anns_field="vector",
                consistency_level=consistency,
                timeout=self._timeout,
            ),
            collection=name,
            filter=filter,
        )
        distance = _distance(spec.metric)
        hits = []
        for found in results[0] if results else []:
            entity = found.get("entity", {})
            hits.append(
                Hit(
                    id=str(found["id"]),
                    distance=distance(found["distance"]),
                    text=str(entity.get("text") or ""),
                    metadata=_metadata(entity, fields),
                )
            )
        hits.sort(key=lambda h: h.distance)
        return hits


def _search_params(spec: CollectionSpec, given: Mapping[str, int], k: int) -> dict[str, int]:
    """The search parameter of the collection's index type, with the contract's default."""
    name = _SEARCH_PARAM.get(spec.index.kind)
    if name == "ef":
        # HNSW needs ef >= k; a smaller ef is an error in Milvus, so it is raised to k.
        return {"ef": max(int(given.get("ef", max(k, DEFAULT_EF))), k)}
    if name == "nprobe":
        nlist = int(spec.index.params.get("nlist", 0)) or DEFAULT_NPROBE
        return {"nprobe": min(int(given.get("nprobe", DEFAULT_NPROBE)), nlist)}
    if name == "itopk_size" and "itopk_size" in given:
        return {"itopk_size": int(given["itopk_size"])}
    return {}


def _checked(declared: ScalarFieldSpec, value: Scalar, where: str) -> Scalar:
    """`value` as the declared field's type (an integer widened to a double), or FIELD_TYPE_MISMATCH."""
    if value is None:
        return None
    kind = declared.kind
    if kind == "DOUBLE" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    fits = {
        "STRING": isinstance(value, str),
        "INT64": isinstance(value, int) and not isinstance(value, bool),
        "DOUBLE": isinstance(value, float),
        "BOOL": isinstance(value, bool),
    }[kind]
    if not fits:
        raise invalid_field(
            where, f"{type(value).__name__} value for {kind} field {declared.name!r}", reason="FIELD_TYPE_MISMATCH"
        )
    return value


def _metadata(entity: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Scalar]:
    """Scalar fields of a returned entity: no id, vector or text, no nulls, no unset IndexDataset fields."""
    wanted = set(fields) if fields else None
    out: dict[str, Scalar] = {}
    for key, value in entity.items():
        if key in _BASE_FIELDS or key == "$meta" or value is None:
            continue
        if wanted is not None and key not in wanted:
            continue
        source = SOURCE_FIELDS.get(key)
        if source is not None and value == source[1]:
            continue
        out[key] = value
    return out


def _record(row: Mapping[str, Any], fields: Sequence[str], with_vectors: bool) -> Record:
    vector = np.asarray(row["vector"], dtype=np.float32) if with_vectors else np.empty(0, dtype=np.float32)
    return Record(id=str(row["id"]), vector=vector, text=str(row.get("text") or ""), metadata=_metadata(row, fields))


def _grpc_code(e: Exception) -> str | None:
    """The gRPC status name of a raw RpcError, or of one pymilvus wrapped after its retries."""
    code: Any = None
    if callable(getattr(e, "code", None)):
        with contextlib.suppress(Exception):
            code = e.code()  # type: ignore[attr-defined]
    elif isinstance(e, MilvusException):
        code = e.code
    name = getattr(code, "name", None)
    return name if isinstance(name, str) and not isinstance(code, int) else None


def _message(e: Exception) -> str:
    if isinstance(e, MilvusException):
        return e.message or str(e)
    details = getattr(e, "details", None)
    if callable(details):
        with contextlib.suppress(Exception):
            return str(details())
    return str(e)
