"""What the vector domain is made of, as plain Python: the embedder (ONNX Runtime), the vector
backend (Milvus through pymilvus) and the peers it calls (query, catalog, memory). The domain
(service.py, indexing.py) depends on these protocols only; embedder.py, backend.py and peers.py
implement them. No grpc here.

Distances are "smaller is closer" everywhere above the backend: COSINE and IP as
1 - similarity, L2 as the backend's squared distance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa

Metric = Literal["COSINE", "IP", "L2"]
IndexKind = Literal["AUTOINDEX", "FLAT", "IVF_FLAT", "HNSW", "GPU_CAGRA"]
FieldKind = Literal["STRING", "INT64", "DOUBLE", "BOOL"]
Scalar = str | int | float | bool | None

# Fields every collection has, or that IndexDataset writes; user-declared fields may not use them.
RESERVED_FIELDS = frozenset(
    {"id", "vector", "text", "source_dataset", "source_version", "source_key", "chunk_index", "content_sha256"}
)


# -- embedder ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedderInfo:
    model: str
    """Model name from the manifest, e.g. "all-MiniLM-L6-v2"."""
    model_sha256: str
    """SHA-256 of the ONNX graph file in use."""
    source: str
    dimension: int
    max_tokens: int
    precision: Literal["FP32", "FP16", "INT8"]
    providers: tuple[str, ...]
    """As the InferenceSession reports them (get_providers()), not as configured."""
    max_batch: int
    max_wait_s: float


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    capacity: int


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray
    """float32, shape (n, dimension), L2-normalised rows, in input order."""
    token_counts: tuple[int, ...]
    truncated: tuple[bool, ...]


class Embedder(Protocol):
    @property
    def info(self) -> EmbedderInfo: ...

    async def embed(self, texts: Sequence[str]) -> Embedded:
        """Micro-batched with concurrent callers and cached by (model, sha256(text)); the model
        runs off the event loop."""
        ...

    def chunks(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        """`text` cut into pieces of at most `max_tokens` model tokens (0: the model maximum)
        overlapping by `overlap_tokens`; one piece when it fits. Blocking but cheap (Rust)."""
        ...

    def cache_stats(self) -> CacheStats: ...

    async def close(self) -> None: ...


# -- backend -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarFieldSpec:
    name: str
    kind: FieldKind
    nullable: bool = True
    max_length: int = 65535


@dataclass(frozen=True)
class IndexSpec:
    kind: IndexKind = "AUTOINDEX"
    params: Mapping[str, int] = field(default_factory=dict)
    """Build parameters as Milvus names them: M/efConstruction, nlist,
    intermediate_graph_degree/graph_degree."""


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dimension: int
    metric: Metric = "COSINE"
    index: IndexSpec = field(default_factory=IndexSpec)
    fields: tuple[ScalarFieldSpec, ...] = ()
    description: str = ""
    embedder_model: str = ""
    """Model whose vectors the collection holds; texts are embedded only with that model."""
    source_dataset: str = ""


@dataclass(frozen=True)
class CollectionInfo:
    spec: CollectionSpec
    row_count: int
    index_state: Literal["BUILDING", "READY", "FAILED"]
    create_time: datetime | None
    indexed_rows: int = 0
    """Rows the vector index covers; the rest are searched by brute force."""


@dataclass(frozen=True)
class Record:
    id: str
    vector: Sequence[float] | np.ndarray
    text: str = ""
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    id: str
    distance: float
    """Smaller is closer (see module docstring)."""
    text: str
    metadata: Mapping[str, Scalar]


class VectorBackend(Protocol):
    """Milvus (Lite or server) behind blocking-free async calls; errors are domain errors
    (NotFound COLLECTION_NOT_FOUND, Unavailable BACKEND_UNAVAILABLE with retry info, InvalidArgument
    INVALID_FILTER, FailedPrecondition INDEX_TYPE_UNSUPPORTED)."""

    @property
    def kind(self) -> str:
        """ "milvus-lite" or "milvus"."""
        ...

    @property
    def supports_gpu_index(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def healthy(self) -> tuple[bool, str]:
        """Whether the backend answers, and a short reason when it does not."""
        ...

    async def create_collection(self, spec: CollectionSpec) -> CollectionInfo: ...

    async def describe_collection(self, name: str) -> CollectionInfo: ...

    async def list_collections(self) -> list[str]: ...

    async def drop_collection(self, name: str) -> None: ...

    async def upsert(self, name: str, records: Sequence[Record]) -> int: ...

    async def delete(self, name: str, *, ids: Sequence[str] = (), filter: str = "") -> int: ...

    async def get(
        self, name: str, ids: Sequence[str], *, with_vectors: bool, fields: Sequence[str]
    ) -> list[Record]: ...

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
        """The k closest vectors of one collection, closest first."""
        ...

    async def flush(self, name: str) -> None: ...

    async def sample_vectors(self, name: str, count: int, seed: int) -> list[Record]:
        """Up to `count` stored records with their vectors (for EvaluateRecall)."""
        ...


# -- peers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookMatch:
    """A recorded answer whose query is close to the search query (memory's LookupPlaybook)."""

    entry_id: str
    collection: str
    answer_id: str
    recorded_query: str
    query_distance: float
    score: float
    role: str


class Memory(Protocol):
    async def lookup_playbook(
        self, namespace: str, vector: np.ndarray, max_distance: float, role: str
    ) -> list[PlaybookMatch]: ...


@dataclass(frozen=True)
class SourceTable:
    """A dataset or view as the caller sees it through the query service (ListTables)."""

    name: str
    base_dataset: str
    """The dataset itself, or the view's base dataset: what vectors name as `source_dataset`, so
    a hard erasure of the base reaches them."""
    is_view: bool
    version: int
    """Current catalog version (for a view, its base dataset's)."""
    schema: pa.Schema
    """Columns as the caller sees them (a view's after redaction)."""


@dataclass(frozen=True)
class SourceRows:
    """Rows of a dataset or view read through the query service under the caller's principal."""

    dataset: str
    version: int
    """Catalog version read (for a view, its base dataset's)."""
    batches: AsyncIterator[pa.RecordBatch]
    """The rows in batches, never the whole result at once; closing the iterator (aclose) stops
    the transfer."""


class Query(Protocol):
    """The query service as the caller: profiles, views and tombstones apply to every read."""

    async def describe(self, name: str) -> SourceTable:
        """The dataset or view `name`; NotFound DATASET_NOT_FOUND or PermissionDenied
        TABLE_NOT_ALLOWED when the caller cannot read it."""
        ...

    async def read(self, name: str, version: int | None, columns: Sequence[str]) -> SourceRows:
        """`columns` of every row of `name` at `version` (None: the current one); NotFound
        VERSION_NOT_FOUND for a version that does not exist."""
        ...

    async def current_version(self, name: str) -> int: ...


class Catalog(Protocol):
    async def register_derivation(self, dataset: str, collection: str, key_column: str, version: int) -> None: ...

    async def remove_derivation(self, dataset: str, collection: str) -> None: ...
