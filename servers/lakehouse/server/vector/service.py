"""Vector domain: embeddings, collections, vectors, multi-collection search with the playbook, and
the caller's model profile. No grpc here: the servicer converts protobuf to the types below.

Every call that names a collection checks it against the caller's access policy first, whether or
not the collection exists, so an agent cannot probe for collections outside its profile. The
policy comes from the catalog under its lease (`LeasedPolicies`), as in the query service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

import numpy as np

from lakehouse.server.common.config import Config
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    Unavailable,
    invalid_field,
)
from lakehouse.server.common.leases import LeasedPolicies, PolicyAnswer
from lakehouse.server.common.names import MAX_LONG_TEXT, check_text
from lakehouse.server.common.paging import Page, page_of
from lakehouse.server.vector.flushing import DeferredFlush
from lakehouse.server.vector.gateways import (
    RESERVED_FIELDS,
    CacheStats,
    Catalog,
    CollectionInfo,
    CollectionSpec,
    Embedded,
    Embedder,
    EmbedderInfo,
    Hit,
    IndexSpec,
    Memory,
    Metric,
    PlaybookMatch,
    Record,
    Scalar,
    ScalarFieldSpec,
    VectorBackend,
)

log = logging.getLogger("lakehouse.vector")
T = TypeVar("T")
U = TypeVar("U")

COLLECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")
"""Collection names follow the dataset rule, so a collection can be named after its dataset."""
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
"""Declared scalar field names: what Milvus accepts and what filter expressions can name."""
MAX_DIMENSION = 32768
MAX_STRING_BYTES = 65535
MAX_ID_BYTES = 512
MAX_TEXT_BYTES = 65535
"""Longest id and stored text, in UTF-8 bytes (the backend's column sizes)."""
DEFAULT_K = 10
MAX_BACKEND_TOPK = 16384
"""The most candidates Milvus returns from one search."""
DEFAULT_PLAYBOOK_NAMESPACE = "playbook"
"""Namespace consulted when PlaybookOptions.namespace is empty."""
PLAYBOOK_BOOST = 0.5
"""A boosted hit's distance becomes distance * (1 - PLAYBOOK_BOOST * score)."""
MAX_LISTED = 50
MEMORY_RETRY_S = 1.0

FieldKind = Literal["STRING", "INT64", "DOUBLE", "BOOL"]
Consistency = Literal["Strong", "Bounded", "Session", "Eventually"]


# -- what the domain needs besides the gateways ----------------------------------------------------


@dataclass(frozen=True)
class VectorPolicy:
    """The part of the caller's access policy the vector service enforces."""

    principal: str
    profile: str
    restricted: bool
    """True for agent principals: only `collections` and `memory_namespaces` are reachable."""
    collections: frozenset[str] = frozenset()
    memory_namespaces: frozenset[str] = frozenset()
    hidden_keys: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Soft-erased row keys by dataset: vectors indexed from those rows never come back."""

    def hiding(self, spec: CollectionSpec) -> str:
        """A Milvus expression excluding the tombstoned rows of the collection's source dataset."""
        keys = self.hidden_keys.get(spec.source_dataset)
        if not keys:
            return ""
        return f"source_key not in [{', '.join(_milvus_string(k) for k in sorted(keys))}]"


class Policies(Protocol):
    async def access_policy(self, known_revision: int) -> PolicyAnswer[VectorPolicy]:
        """The caller's policy, unless `known_revision` is current."""
        ...


class IndexRuns(Protocol):
    def running(self, collection: str) -> bool:
        """Whether an IndexDataset run is writing to `collection` now."""
        ...

    async def forget(self, collection: str) -> None:
        """Drops what is known of a deleted collection's IndexDataset runs."""
        ...


class LoadingEmbedder(Embedder, Protocol):
    async def ready(self) -> Embedder:
        """The embedder once loaded; EMBEDDER_UNAVAILABLE when it cannot be loaded."""
        ...


class CollectionStore(VectorBackend, Protocol):
    """The backend with the two calls beyond `VectorBackend` the service needs."""

    async def spec(self, name: str) -> CollectionSpec:
        """A collection's settings without its row count and index state (cheaper than describing
        it); NotFound COLLECTION_NOT_FOUND."""
        ...

    async def update_collection(
        self, name: str, *, embedder_model: str | None = None, source_dataset: str | None = None
    ) -> CollectionSpec:
        """Records the model whose vectors the collection holds."""
        ...

    def scan(
        self, name: str, *, fields: Sequence[str] = (), filter: str = "", with_vectors: bool = False
    ) -> AsyncIterator[list[Record]]:
        """Every record matching `filter`, in batches."""
        ...


# -- requests --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewField:
    """A declared scalar field as requested; `kind` is "" when the request left it unset."""

    name: str
    kind: str
    nullable: bool = True
    max_length: int = 0


@dataclass(frozen=True)
class NewCollection:
    """CreateCollection's request: zero values mean "use the default"."""

    name: str
    dimension: int = 0
    metric: str = ""
    index_kind: str = ""
    index_params: tuple[str, Mapping[str, int]] | None = None
    """(name of the parameter message, e.g. "hnsw", its fields by proto name), when one was set."""
    fields: tuple[NewField, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class RecordIn:
    """One record of UpsertVectors; `vector` is None when the text is to be embedded here."""

    id: str
    vector: Sequence[float] | None
    text: str = ""
    metadata: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class PlaybookOptions:
    enabled: bool = False
    namespace: str = ""
    role: str = ""
    boost_threshold: float | None = None
    inject_threshold: float | None = None


@dataclass(frozen=True)
class SearchRequest:
    collections: tuple[str, ...]
    text: str | None = None
    vector: Sequence[float] | None = None
    k: int = 0
    per_collection_k: int = 0
    filter: str = ""
    exclude_ids: tuple[str, ...] = ()
    max_distance: float | None = None
    playbook: PlaybookOptions = PlaybookOptions()
    output_fields: tuple[str, ...] = ()
    params: Mapping[str, int] = field(default_factory=dict)
    """Search-time parameters by their Milvus names ("ef", "nprobe", "itopk_size"), as given."""
    consistency: Consistency | None = None
    """None: the configured consistency."""


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookEffect:
    action: Literal["BOOSTED", "INJECTED"]
    entry_id: str
    recorded_query: str
    query_distance: float
    score: float
    distance_before: float
    """For BOOSTED, the distance before the boost; 0 for INJECTED."""


@dataclass(frozen=True)
class SearchHit:
    collection: str
    id: str
    distance: float
    text: str
    metadata: Mapping[str, Scalar]
    playbook: PlaybookEffect | None = None


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    model: str
    """Embedding model of a text query; empty for a vector query."""


@dataclass(frozen=True)
class Upserted:
    upserted: int
    embedded: int


# -- index types -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    milvus: str
    default: int | None
    """Filled in when the request leaves it 0; None leaves it to the backend."""
    low: int
    high: int


# Build parameters per index type: the message that carries them and each field's range (Milvus'
# documented ranges where it has them).
_INDEX_PARAMS: dict[str, tuple[str | None, dict[str, _Param]]] = {
    "AUTOINDEX": (None, {}),
    "FLAT": (None, {}),
    "HNSW": ("hnsw", {"m": _Param("M", 16, 2, 2048), "ef_construction": _Param("efConstruction", 200, 1, 2**31 - 1)}),
    "IVF_FLAT": ("ivf_flat", {"nlist": _Param("nlist", 1024, 1, 65536)}),
    "GPU_CAGRA": (
        "gpu_cagra",
        {
            "intermediate_graph_degree": _Param("intermediate_graph_degree", None, 1, 1024),
            "graph_degree": _Param("graph_degree", None, 1, 1024),
        },
    ),
}
_CAGRA_DEFAULTS = {"intermediate_graph_degree": 128, "graph_degree": 64}
_METRICS: tuple[Metric, ...] = ("COSINE", "IP", "L2")
_FIELD_KINDS: tuple[FieldKind, ...] = ("STRING", "INT64", "DOUBLE", "BOOL")
MEMORY_COLLECTION_PREFIX = "memory_"
"""Collections of the memory service, one per namespace (see memory.service.collection_name)."""


class VectorService:
    """Collections, vectors and search over a `VectorBackend`, texts embedded by an `Embedder`."""

    def __init__(
        self,
        config: Config,
        embedder: LoadingEmbedder,
        backend: CollectionStore,
        backend_started: Callable[[], Awaitable[None]],
        memory: Memory,
        policies: Policies,
        catalog: Catalog,
        index_runs: IndexRuns,
    ) -> None:
        self._config = config
        self._v = config.vector
        self._embedder = embedder
        self._backend = backend
        self._started = backend_started
        self._memory = memory
        self._catalog = catalog
        self._index_runs = index_runs
        self._policies = LeasedPolicies(policies.access_policy)
        self._flushes = DeferredFlush(
            backend.flush, idle_s=self._v.flush_idle_ms / 1000, max_delay_s=self._v.flush_max_delay_s
        )

    # -- the caller's profile -----------------------------------------------------------------

    async def policy(self) -> VectorPolicy:
        return await self._policies.get()

    async def require_collections(self, names: Iterable[str], field: str = "collection") -> None:
        """Refuses an agent naming a collection its profile does not bind, whether it exists or not."""
        policy = await self.policy()
        if not policy.restricted:
            return
        for i, name in enumerate(names):
            if name not in policy.collections:
                allowed = _listed(policy.collections)
                where = f"{field}[{i}]" if field.endswith("collections") else field
                raise PermissionDenied(
                    f"{where}: collection {name!r} is not bound to profile {policy.profile!r}; "
                    f"collections you may use: {allowed}",
                    reason="COLLECTION_NOT_ALLOWED",
                    metadata={"collection": name[:200], "profile": policy.profile, "allowed": allowed[:900]},
                )

    async def require_collection(self, name: str, field: str = "collection") -> None:
        await self.require_collections((name,), field)

    def require_writable(self, name: str, field: str = "collection") -> None:
        """Collections named memory_* belong to the memory service: only it (the mesh identity)
        and admins write them, so traces cannot be altered around the memory service's records."""
        role = current_principal().role
        if name.startswith(MEMORY_COLLECTION_PREFIX) and role not in ("service", "admin"):
            raise PermissionDenied(
                f"{field}: collections named {MEMORY_COLLECTION_PREFIX}* hold the memory service's traces; "
                "write them through the memory service (AddTrace, ForgetTraces)",
                reason="COLLECTION_RESERVED",
                metadata={"collection": name[:200]},
            )

    async def _require_namespace(self, namespace: str) -> None:
        policy = await self.policy()
        if policy.restricted and namespace not in policy.memory_namespaces:
            allowed = _listed(policy.memory_namespaces)
            raise PermissionDenied(
                f"playbook.namespace: memory namespace {namespace!r} is not bound to profile {policy.profile!r}; "
                f"namespaces you may use: {allowed}",
                reason="NAMESPACE_NOT_ALLOWED",
                metadata={"namespace": namespace[:200], "profile": policy.profile, "allowed": allowed[:900]},
            )

    # -- embedder -----------------------------------------------------------------------------

    async def embedder_info(self) -> tuple[EmbedderInfo, CacheStats]:
        embedder = await self._embedder.ready()
        return embedder.info, embedder.cache_stats()

    async def embed(self, texts: Sequence[str]) -> tuple[Embedded, EmbedderInfo]:
        if not texts:
            raise invalid_field("texts", "give at least one text", reason="EMPTY_INPUT")
        limit = self._v.embedder.max_texts
        if len(texts) > limit:
            raise invalid_field(
                "texts", f"{len(texts)} texts is more than the {limit} one call may embed", reason="BATCH_TOO_LARGE"
            )
        embedder = await self._embedder.ready()
        return await embedder.embed(list(texts)), embedder.info

    # -- collections --------------------------------------------------------------------------

    async def ready(self, *, embedder: bool = False) -> None:
        """Starts the backend (and loads the embedder) if this is their first use."""
        await self._started()
        if embedder:
            await self._embedder.ready()

    async def create_collection(self, new: NewCollection) -> CollectionInfo:
        self.require_writable(new.name, "collection.name")
        spec = await self._collection_spec(new)
        await self._started()
        if spec.index.kind == "GPU_CAGRA" and not self._backend.supports_gpu_index:
            raise FailedPrecondition(
                f"collection.index.type: GPU_CAGRA needs a GPU-enabled Milvus server; this service uses "
                f"{self._backend.kind}; choose HNSW, IVF_FLAT, FLAT or AUTOINDEX",
                reason="INDEX_TYPE_UNSUPPORTED",
                violations=[FieldViolation("collection.index.type", "GPU_CAGRA is not supported by this backend")],
            )
        return await self._backend.create_collection(spec)  # COLLECTION_EXISTS when it does

    async def _collection_spec(self, new: NewCollection) -> CollectionSpec:
        if not COLLECTION_NAME.fullmatch(new.name):
            raise invalid_field(
                "collection.name",
                "must match ^[a-z][a-z0-9_]{0,127}$: lowercase letters, digits and '_', starting with a letter",
                reason="INVALID_COLLECTION_NAME",
            )
        if new.dimension < 0 or new.dimension > MAX_DIMENSION:
            raise invalid_field(
                "collection.dimension",
                f"must be between 1 and {MAX_DIMENSION}, or 0 for the embedder's dimension",
                reason="INVALID_DIMENSION",
            )
        metric = new.metric or "COSINE"
        if metric not in _METRICS:
            raise invalid_field("collection.metric", f"choose one of {', '.join(_METRICS)}", reason="INVALID_METRIC")
        index = _index_spec(new.index_kind or "AUTOINDEX", new.index_params)
        fields = _field_specs(new.fields)
        description = check_text("collection.description", new.description, MAX_LONG_TEXT)
        dimension, model = new.dimension, ""
        if dimension == 0:  # the embedder's: the collection then holds that model's vectors
            info = (await self._embedder.ready()).info
            dimension, model = info.dimension, info.model
        return CollectionSpec(
            name=new.name,
            dimension=dimension,
            metric=metric,  # type: ignore[arg-type]
            index=index,
            fields=fields,
            description=description,
            embedder_model=model,
        )

    async def get_collection(self, name: str) -> CollectionInfo:
        await self.require_collection(name, "name")
        await self._started()
        return await self._describe(name)

    async def list_collections(self, page: Page) -> tuple[list[CollectionInfo], str]:
        policy = await self.policy()
        await self._started()
        names = sorted(await self._backend.list_collections())
        if policy.restricted:
            names = [n for n in names if n in policy.collections]
        if page.after is not None:
            names = [n for n in names if n > page.after]
        chosen, token = page_of(names[: page.size + 1], page, lambda n: n)
        described = await _all(self._describe_if_exists(n) for n in chosen)
        return [info for info in described if info is not None], token

    async def _describe_if_exists(self, name: str) -> CollectionInfo | None:
        try:
            return await self._describe(name)
        except NotFound:  # dropped between listing and describing
            return None

    async def _describe(self, name: str) -> CollectionInfo:
        info = await self._backend.describe_collection(name)
        if self._flushes.pending(name) and info.index_state == "READY":
            return replace(info, index_state="BUILDING")  # rows wait for their flush
        return info

    async def delete_collection(self, name: str) -> None:
        await self.require_collection(name, "name")
        self.require_writable(name, "name")
        spec = await self._spec(name)
        if self._index_runs.running(name):
            raise FailedPrecondition(
                f"an IndexDataset run is writing to collection {name!r}; cancel it or wait for it to finish",
                reason="INDEX_RUNNING",
            )
        self._flushes.forget(name)
        await self._backend.drop_collection(name)
        await self._index_runs.forget(name)
        if spec.source_dataset:
            await self._catalog.remove_derivation(spec.source_dataset, name)

    async def close(self) -> None:
        """Flushes the collections with upserts still waiting for their flush."""
        await self._flushes.close()

    async def _spec(self, name: str) -> CollectionSpec:
        await self._started()
        return await self._backend.spec(name)

    # -- vectors ------------------------------------------------------------------------------

    async def upsert(self, collection: str, records: Sequence[RecordIn]) -> Upserted:
        await self.require_collection(collection)
        self.require_writable(collection)
        if len(records) > self._v.max_batch:
            raise invalid_field(
                "records",
                f"{len(records)} records is more than the {self._v.max_batch} one call may carry",
                reason="BATCH_TOO_LARGE",
            )
        spec = await self._spec(collection)
        checked = _check_records(spec, records)
        if not checked:
            return Upserted(0, 0)
        to_embed = [i for i, r in enumerate(checked) if r.vector is None]
        if to_embed:
            embedder = await self._embedder.ready()
            info = embedder.info
            _require_same_embedder(spec, info, "records")
            vectors = (await embedder.embed([checked[i].text for i in to_embed])).vectors
            for row, i in enumerate(to_embed):
                checked[i] = replace(checked[i], vector=vectors[row])
            if not spec.embedder_model:  # from now on it holds this model's vectors
                await self._backend.update_collection(collection, embedder_model=info.model)
        written = [Record(r.id, np.asarray(r.vector, dtype=np.float32), r.text, r.metadata) for r in checked]
        count = await self._backend.upsert(collection, written)
        self._flushes.written(collection)
        return Upserted(count, len(to_embed))

    async def delete_vectors(self, collection: str, ids: Sequence[str], filter: str) -> int:
        await self.require_collection(collection)
        self.require_writable(collection)
        if bool(ids) == bool(filter.strip()):
            raise InvalidArgument(
                "give exactly one of ids and filter",
                reason="MISSING_SELECTOR",
                violations=[FieldViolation("ids", "give ids or a filter, not both and not neither")],
            )
        await self._spec(collection)
        return await self._backend.delete(collection, ids=list(ids), filter=filter)

    async def get_vectors(
        self, collection: str, ids: Sequence[str], include_vectors: bool, output_fields: Sequence[str]
    ) -> list[Record]:
        await self.require_collection(collection)
        if len(ids) > self._v.max_batch:
            raise invalid_field(
                "ids",
                f"{len(ids)} ids is more than the {self._v.max_batch} one call may read",
                reason="BATCH_TOO_LARGE",
            )
        spec = await self._spec(collection)
        known = {f.name for f in spec.fields} | RESERVED_FIELDS
        for i, name in enumerate(output_fields):
            if name not in known:
                raise invalid_field(
                    f"output_fields[{i}]",
                    f"collection {collection!r} has no field {name!r}; declared fields: "
                    f"{', '.join(f.name for f in spec.fields) or 'none'}",
                    reason="UNKNOWN_FIELD",
                )
        if not ids:
            return []
        found = await self._backend.get(
            collection, list(dict.fromkeys(ids)), with_vectors=include_vectors, fields=output_fields
        )
        by_id = {r.id: _only(r, output_fields) for r in found}
        return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]

    # -- search -------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        names = tuple(dict.fromkeys(request.collections))
        if not names:
            raise invalid_field("collections", "name at least one collection", reason="MISSING_COLLECTIONS")
        has_text = request.text is not None and request.text.strip() != ""
        if not has_text and request.vector is None:
            raise invalid_field("text", "give a query text or a query vector", reason="MISSING_QUERY")
        k, per_k = self._search_sizes(request.k, request.per_collection_k)
        if request.max_distance is not None and math.isnan(request.max_distance):
            raise invalid_field("max_distance", "must be a number", reason="INVALID_MAX_DISTANCE")
        playbook = request.playbook
        boost, inject = self._thresholds(playbook)
        await self.require_collections(names, "collections")
        namespace = playbook.namespace or DEFAULT_PLAYBOOK_NAMESPACE
        if playbook.enabled:
            await self._require_namespace(namespace)
        specs = await _all(self._spec(n) for n in names)
        _require_mergeable(specs)

        model = ""
        if has_text:
            embedder = await self._embedder.ready()
            for spec in specs:
                _require_same_embedder(spec, embedder.info, "collections")
            vector = (await embedder.embed([request.text or ""])).vectors[0]
            model = embedder.info.model
        else:
            vector = _query_vector(request.vector or (), specs[0])
            if playbook.enabled:
                await self._require_playbook_space(vector)

        _check_search_params(request.params)
        excluded = frozenset(request.exclude_ids)
        policy = await self.policy()
        filters = {spec.name: _both_filters(request.filter, policy.hiding(spec)) for spec in specs}
        # Excluded ids are dropped after the backend answers: ask for that many more candidates.
        limit = min(per_k + len(excluded), MAX_BACKEND_TOPK)
        searches = _all(self._search_one(spec, vector, limit, request, filters[spec.name]) for spec in specs)
        if playbook.enabled:
            lookup = self._memory.lookup_playbook(namespace, vector, max(boost, inject), playbook.role)
            per_collection, matches = await _both(searches, lookup)
        else:
            per_collection, matches = await searches, []

        order = {name: i for i, name in enumerate(names)}
        hits = [
            SearchHit(spec.name, h.id, h.distance, h.text, _fields(h.metadata, request.output_fields))
            for spec, collection_hits in zip(specs, per_collection, strict=True)
            for h in [h for h in collection_hits if h.id not in excluded][:per_k]
        ]
        if matches:
            hits = await self._apply_playbook(hits, matches, boost, inject, playbook.role, excluded, request, filters)
        if request.max_distance is not None:
            hits = [h for h in hits if h.distance <= request.max_distance]
        hits.sort(key=lambda h: (h.distance, order[h.collection], h.id))
        return SearchResult(hits[:k], model)

    async def _require_playbook_space(self, vector: np.ndarray) -> None:
        """Recorded queries are embedded by the model: a query vector of another dimension cannot be
        compared with them."""
        info = (await self._embedder.ready()).info
        if vector.shape[0] != info.dimension:
            raise invalid_field(
                "playbook.enabled",
                f"the playbook compares queries embedded by {info.model} (dimension {info.dimension}); a query "
                f"vector of dimension {vector.shape[0]} cannot be looked up in it",
                reason="DIMENSION_MISMATCH",
            )

    def _search_sizes(self, k: int, per_collection_k: int) -> tuple[int, int]:
        for name, value in (("k", k), ("per_collection_k", per_collection_k)):
            if value < 0:
                raise invalid_field(name, "must not be negative", reason="INVALID_K")
            if value > self._v.max_k:
                raise invalid_field(
                    name,
                    f"{value} is more than the largest k this server allows ({self._v.max_k})",
                    reason="K_TOO_LARGE",
                )
        k = k or DEFAULT_K
        return k, per_collection_k or k

    def _thresholds(self, playbook: PlaybookOptions) -> tuple[float, float]:
        boost = playbook.boost_threshold
        inject = playbook.inject_threshold
        for name, value in (("boost_threshold", boost), ("inject_threshold", inject)):
            if playbook.enabled and value is not None and not (value >= 0 and math.isfinite(value)):
                raise invalid_field(f"playbook.{name}", "must be a distance of 0 or more", reason="INVALID_THRESHOLD")
        return (
            self._v.playbook_boost_distance if boost is None else boost,
            self._v.playbook_inject_distance if inject is None else inject,
        )

    async def _search_one(
        self, spec: CollectionSpec, vector: np.ndarray, limit: int, request: SearchRequest, filter: str
    ) -> list[Hit]:
        return await self._backend.search(
            spec.name,
            vector,
            limit,
            filter=filter,
            fields=request.output_fields,
            params=request.params,
            consistency=request.consistency or self._v.consistency,
        )

    async def _apply_playbook(
        self,
        hits: list[SearchHit],
        matches: Sequence[PlaybookMatch],
        boost: float,
        inject: float,
        role: str,
        excluded: frozenset[str],
        request: SearchRequest,
        filters: Mapping[str, str],
    ) -> list[SearchHit]:
        """Boosts hits that are recorded answers to a close query; injects close answers that are
        missing. Entries of another role, of collections not searched, or of excluded ids do nothing."""
        searched = set(request.collections)
        usable = [m for m in matches if m.role == role and m.collection in searched and m.answer_id not in excluded]
        best_boost: dict[tuple[str, str], PlaybookMatch] = {}
        closest: dict[tuple[str, str], PlaybookMatch] = {}
        for m in usable:
            key = (m.collection, m.answer_id)
            if m.query_distance <= boost:
                held = best_boost.get(key)
                if held is None or (m.score, -m.query_distance) > (held.score, -held.query_distance):
                    best_boost[key] = m
            if m.query_distance <= inject:
                held = closest.get(key)
                if held is None or m.query_distance < held.query_distance:
                    closest[key] = m
        present = {(h.collection, h.id) for h in hits}
        out = []
        for h in hits:
            match = best_boost.get((h.collection, h.id))
            if match is None:
                out.append(h)
                continue
            effect = PlaybookEffect(
                "BOOSTED", match.entry_id, match.recorded_query, match.query_distance, match.score, h.distance
            )
            out.append(replace(h, distance=h.distance * (1 - PLAYBOOK_BOOST * match.score), playbook=effect))
        missing = [m for key, m in closest.items() if key not in present]
        out += await self._injected(missing, request.output_fields, filters)
        return out

    async def _injected(
        self, matches: Sequence[PlaybookMatch], output_fields: Sequence[str], filters: Mapping[str, str]
    ) -> list[SearchHit]:
        """The recorded answers, read from their collections; with a filter, only those it passes
        (an injection never shows what the search itself would have filtered out)."""
        by_collection: dict[str, list[PlaybookMatch]] = {}
        for m in matches:
            by_collection.setdefault(m.collection, []).append(m)
        names = list(by_collection)
        found = await _all(
            self._answers(n, [m.answer_id for m in by_collection[n]], output_fields, filters[n]) for n in names
        )
        injected = []
        for name, records in zip(names, found, strict=True):
            stored = {r.id: r for r in records}
            for m in by_collection[name]:
                record = stored.get(m.answer_id)
                if record is None:  # the answer was deleted since it was recorded
                    continue
                effect = PlaybookEffect("INJECTED", m.entry_id, m.recorded_query, m.query_distance, m.score, 0.0)
                injected.append(
                    SearchHit(
                        name, record.id, m.query_distance, record.text, _fields(record.metadata, output_fields), effect
                    )
                )
        return injected

    async def _answers(self, name: str, ids: Sequence[str], fields: Sequence[str], filter: str) -> list[Record]:
        if not filter.strip():
            return await self._backend.get(name, ids, with_vectors=False, fields=fields)
        expression = f"({filter}) and id in [{', '.join(_milvus_string(i) for i in ids)}]"
        return [r async for batch in self._backend.scan(name, fields=fields, filter=expression) for r in batch]


# -- checks ----------------------------------------------------------------------------------------


def _index_spec(kind: str, params: tuple[str, Mapping[str, int]] | None) -> IndexSpec:
    if kind not in _INDEX_PARAMS:
        raise invalid_field(
            "collection.index.type", f"choose one of {', '.join(_INDEX_PARAMS)}", reason="INVALID_INDEX_PARAMS"
        )
    expected, allowed = _INDEX_PARAMS[kind]
    given: Mapping[str, int] = {}
    if params is not None:
        message, given = params
        if message != expected:
            why = f"{message} parameters do not apply to index type {kind}" + (
                f"; {kind} takes {expected} parameters" if expected else f"; {kind} takes none"
            )
            raise invalid_field(f"collection.index.{message}", why, reason="INVALID_INDEX_PARAMS")
    values: dict[str, int] = {}
    for name, param in allowed.items():
        value = int(given.get(name, 0))
        if value == 0:
            if param.default is not None:
                values[param.milvus] = param.default
            continue
        if not param.low <= value <= param.high:
            raise invalid_field(
                f"collection.index.{expected}.{name}",
                f"must be between {param.low} and {param.high} (0 for the default)",
                reason="INVALID_INDEX_PARAMS",
            )
        values[param.milvus] = value
    if kind == "GPU_CAGRA":
        degree = values.get("graph_degree", _CAGRA_DEFAULTS["graph_degree"])
        before = values.get("intermediate_graph_degree", _CAGRA_DEFAULTS["intermediate_graph_degree"])
        if degree > before:
            raise invalid_field(
                "collection.index.gpu_cagra.graph_degree",
                f"must not be larger than intermediate_graph_degree ({before})",
                reason="INVALID_INDEX_PARAMS",
            )
    return IndexSpec(kind=kind, params=values)  # type: ignore[arg-type]


def _field_specs(fields: Sequence[NewField]) -> tuple[ScalarFieldSpec, ...]:
    seen: set[str] = set()
    specs = []
    for i, f in enumerate(fields):
        where = f"collection.fields[{i}]"
        if f.name in RESERVED_FIELDS:
            raise invalid_field(
                f"{where}.name",
                f"{f.name!r} is reserved ({', '.join(sorted(RESERVED_FIELDS))}); the service sets those itself",
                reason="RESERVED_FIELD",
            )
        if not FIELD_NAME.fullmatch(f.name):
            raise invalid_field(
                f"{where}.name",
                "must be letters, digits and '_', starting with a letter or '_', at most 255 characters",
                reason="INVALID_FIELD",
            )
        if f.name in seen:
            raise invalid_field(f"{where}.name", f"{f.name!r} is declared twice", reason="INVALID_FIELD")
        seen.add(f.name)
        if f.kind not in _FIELD_KINDS:
            raise invalid_field(f"{where}.type", f"choose one of {', '.join(_FIELD_KINDS)}", reason="INVALID_FIELD")
        if not 0 <= f.max_length <= MAX_STRING_BYTES:
            raise invalid_field(
                f"{where}.max_length",
                f"must be between 1 and {MAX_STRING_BYTES}, or 0 for the maximum",
                reason="INVALID_FIELD",
            )
        specs.append(ScalarFieldSpec(f.name, f.kind, f.nullable, f.max_length or MAX_STRING_BYTES))  # type: ignore[arg-type]
    return tuple(specs)


@dataclass
class _Problems:
    """Every problem of a batch; the error carries the first one's reason and all the fields."""

    found: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, where: str, description: str, reason: str) -> None:
        self.found.append((where, description, reason))

    def raise_any(self) -> None:
        if not self.found:
            return
        where, description, reason = self.found[0]
        more = f" (and {len(self.found) - 1} more problems)" if len(self.found) > 1 else ""
        raise InvalidArgument(
            f"{where}: {description}{more}; nothing was written",
            reason=reason,
            violations=[FieldViolation(w, d) for w, d, _ in self.found],
        )


def _check_records(spec: CollectionSpec, records: Sequence[RecordIn]) -> list[RecordIn]:
    """The batch with metadata checked against the declared fields; raises before anything is written."""
    problems = _Problems()
    declared = {f.name: f for f in spec.fields}
    seen: set[str] = set()
    checked = []
    for i, r in enumerate(records):
        where = f"records[{i}]"
        if not r.id:
            problems.add(f"{where}.id", "every record needs an id", "MISSING_ID")
        elif r.id in seen:
            problems.add(f"{where}.id", f"id {r.id!r} appears more than once in this batch", "DUPLICATE_ID")
        elif len(r.id.encode()) > MAX_ID_BYTES:
            problems.add(f"{where}.id", f"is longer than {MAX_ID_BYTES} bytes", "VALUE_TOO_LONG")
        seen.add(r.id)
        if len(r.text.encode()) > MAX_TEXT_BYTES:
            problems.add(f"{where}.text", f"is longer than {MAX_TEXT_BYTES} bytes", "VALUE_TOO_LONG")
        if r.vector is not None:
            _check_vector(spec, r.vector, f"{where}.vector", problems)
        elif not r.text:
            problems.add(f"{where}.vector", "give a vector, or a text to embed", "MISSING_VECTOR")
        metadata = _check_metadata(declared, r.metadata, f"{where}.metadata", problems)
        checked.append(replace(r, metadata=metadata))
    problems.raise_any()
    return checked


def _check_vector(spec: CollectionSpec, values: Sequence[float], where: str, problems: _Problems) -> None:
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (spec.dimension,):
        problems.add(
            where,
            f"has {vector.size} values; collection {spec.name!r} has dimension {spec.dimension}",
            "DIMENSION_MISMATCH",
        )
    elif not np.isfinite(vector).all():
        problems.add(where, "holds NaN or infinite values", "NON_FINITE_VALUE")
    elif spec.metric == "COSINE" and not np.any(vector):
        problems.add(where, "is all zeros, which has no direction under COSINE", "ZERO_NORM_VECTOR")


def _check_metadata(
    declared: Mapping[str, ScalarFieldSpec], metadata: Mapping[str, Scalar], where: str, problems: _Problems
) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key, value in metadata.items():
        if key in RESERVED_FIELDS:
            problems.add(f"{where}.{key}", f"{key!r} is reserved; the service sets it itself", "RESERVED_FIELD")
            continue
        if not key:
            problems.add(where, "metadata keys must not be empty", "INVALID_FIELD")
            continue
        spec = declared.get(key)
        if spec is None or value is None:
            out[key] = value
            continue
        converted = _typed(spec, value)
        if converted is None:
            problems.add(
                f"{where}.{key}", f"field {key!r} is {spec.kind}, got {type(value).__name__}", "FIELD_TYPE_MISMATCH"
            )
        elif isinstance(converted, str) and len(converted.encode()) > spec.max_length:
            problems.add(f"{where}.{key}", f"is longer than the field's {spec.max_length} bytes", "VALUE_TOO_LONG")
        else:
            out[key] = converted
    for name, spec in declared.items():
        if not spec.nullable and out.get(name) is None and not any(p[0] == f"{where}.{name}" for p in problems.found):
            problems.add(
                f"{where}.{name}", f"field {name!r} is not nullable: every record must set it", "MISSING_FIELD"
            )
    return out


def _typed(spec: ScalarFieldSpec, value: Scalar) -> Scalar:
    """`value` as the field's type, or None when it is another type."""
    if spec.kind == "BOOL":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if spec.kind == "STRING":
        return value if isinstance(value, str) else None
    if spec.kind == "INT64":
        return value if isinstance(value, int) else None
    if spec.kind == "DOUBLE":
        return float(value) if isinstance(value, (int, float)) else None
    return None


def _require_same_embedder(spec: CollectionSpec, info: EmbedderInfo, field: str) -> None:
    if (spec.embedder_model and spec.embedder_model != info.model) or spec.dimension != info.dimension:
        held = f"model {spec.embedder_model}" if spec.embedder_model else "vectors not made by this server's model"
        raise FailedPrecondition(
            f"{field}: collection {spec.name!r} holds {held} (dimension {spec.dimension}); texts are embedded with "
            f"{info.model} (dimension {info.dimension}), so they cannot be compared; send vectors instead",
            reason="EMBEDDER_MISMATCH",
            metadata={"collection": spec.name, "collection_model": spec.embedder_model, "embedder_model": info.model},
        )


def _require_mergeable(specs: Sequence[CollectionSpec]) -> None:
    first = specs[0]
    for spec in specs[1:]:
        if spec.metric != first.metric:
            raise invalid_field(
                "collections",
                f"{first.name!r} uses {first.metric} and {spec.name!r} uses {spec.metric}; distances of different "
                "metrics cannot be merged",
                reason="METRIC_MISMATCH",
            )
        if spec.dimension != first.dimension:
            raise invalid_field(
                "collections",
                f"{first.name!r} has dimension {first.dimension} and {spec.name!r} has {spec.dimension}; one query "
                "vector cannot search both",
                reason="DIMENSION_MISMATCH",
            )


def _query_vector(values: Sequence[float], spec: CollectionSpec) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (spec.dimension,):
        raise invalid_field(
            "vector",
            f"has {vector.size} values; the collections have dimension {spec.dimension}",
            reason="DIMENSION_MISMATCH",
        )
    if not np.isfinite(vector).all():
        raise invalid_field("vector", "holds NaN or infinite values", reason="NON_FINITE_VALUE")
    if spec.metric == "COSINE" and not np.any(vector):
        raise invalid_field("vector", "is all zeros, which has no direction under COSINE", reason="ZERO_NORM_VECTOR")
    return vector.astype(np.float32)


def _check_search_params(given: Mapping[str, int]) -> None:
    """Search parameters are positive; the backend applies each to the index types that use it."""
    for key, value in given.items():
        if value <= 0:
            raise invalid_field(f"params.{key}", "must be at least 1", reason="INVALID_SEARCH_PARAMS")


def _fields(metadata: Mapping[str, Scalar], wanted: Sequence[str]) -> dict[str, Scalar]:
    return dict(metadata) if not wanted else {k: metadata[k] for k in wanted if k in metadata}


def _only(record: Record, wanted: Sequence[str]) -> Record:
    return replace(record, metadata=_fields(record.metadata, wanted)) if wanted else record


def _both_filters(first: str, second: str) -> str:
    """Two Milvus expressions that must both hold; either may be empty."""
    parts = [f"({f})" for f in (first.strip(), second) if f]
    return " and ".join(parts)


def _milvus_string(value: str) -> str:
    """A Milvus string literal: JSON string syntax, non-ASCII as it is (Milvus reads no \\u escapes)."""
    return json.dumps(value, ensure_ascii=False)


def _listed(names: Iterable[str]) -> str:
    ordered = sorted(names)
    text = ", ".join(ordered[:MAX_LISTED])
    if len(ordered) > MAX_LISTED:
        text += f" (and {len(ordered) - MAX_LISTED} more)"
    return text or "none"


async def _all(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """Runs the coroutines concurrently; the first failure cancels the rest and is raised as it is."""
    awaitables = list(coroutines)
    if len(awaitables) == 1:  # the common single-collection search: no tasks to make
        return [await awaitables[0]]
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(c)) for c in awaitables]
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
    return [t.result() for t in tasks]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _both(first: Awaitable[T], second: Awaitable[U]) -> tuple[T, U]:
    """Two awaitables concurrently; the first failure cancels the other and is raised as it is."""
    try:
        async with asyncio.TaskGroup() as group:
            a = group.create_task(_awaited(first))
            b = group.create_task(_awaited(second))
    except BaseExceptionGroup as failed:
        raise _first(failed) from None
    return a.result(), b.result()


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The error to report from a failed fan-out: a domain error if any, else the first one."""
    flat: list[BaseException] = []

    def walk(g: BaseExceptionGroup[Any]) -> None:
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else flat.append(e)

    walk(group)
    return next((e for e in flat if isinstance(e, LakehouseError)), flat[0])


def memory_unavailable(why: str) -> Unavailable:
    """The playbook is on and the memory service cannot answer."""
    return Unavailable(
        f"the playbook is enabled but the memory service cannot be reached ({why}); retry, or search without it",
        reason="MEMORY_UNAVAILABLE",
        retry_after_s=MEMORY_RETRY_S,
    )


# -- what starts on first use ---------------------------------------------------------------------


class OnFirstUse:
    """Runs `start` once, when first awaited; concurrent callers wait for the same run. A failed
    run is tried again by the next caller, which gets UNAVAILABLE with `reason` meanwhile."""

    def __init__(self, start: Callable[[], Awaitable[None]], what: str, reason: str) -> None:
        self._start = start
        self._what = what
        self._reason = reason
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        """Set once `start` has succeeded."""

    async def __call__(self) -> None:
        if self.done.is_set():
            return
        if self._task is None or self._task.done():
            if self._task is not None and not self._task.cancelled():
                self._task.exception()  # the failure was reported to its callers; this one tries again
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lakehouse-start-{self._reason}")
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        try:
            await self._start()
        except LakehouseError:
            raise
        except Exception as exc:
            log.error("%s could not start: %s", self._what, exc)
            raise Unavailable(f"{self._what} could not start: {exc}", reason=self._reason, retry_after_s=1.0) from exc
        self.done.set()

    async def settled(self) -> None:
        """Waits for a run in progress (it cannot be interrupted: it runs in a thread)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


class EmbedderSlot:
    """The embedder, loaded off the event loop on first use (it takes about half a second). After a
    failed load, calls fail with EMBEDDER_UNAVAILABLE and the reason, and the next one tries again
    (a model prepared meanwhile is picked up); vector calls never need it."""

    def __init__(self, load: Callable[[], Awaitable[Embedder]]) -> None:
        self._embedder: Embedder | None = None

        async def loaded() -> None:
            self._embedder = await load()

        self._load = OnFirstUse(loaded, "the embedding model", "EMBEDDER_UNAVAILABLE")

    async def ready(self) -> Embedder:
        await self._load()
        assert self._embedder is not None
        return self._embedder

    def _loaded(self) -> Embedder:
        if self._embedder is None:
            raise Unavailable(
                "the embedding model is not loaded yet; retry", reason="EMBEDDER_UNAVAILABLE", retry_after_s=1.0
            )
        return self._embedder

    @property
    def info(self) -> EmbedderInfo:
        return self._loaded().info

    async def embed(self, texts: Sequence[str]) -> Embedded:
        return await (await self.ready()).embed(texts)

    def chunks(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        return self._loaded().chunks(text, max_tokens, overlap_tokens)

    def cache_stats(self) -> CacheStats:
        return self._loaded().cache_stats()

    async def close(self) -> None:
        await self._load.settled()
        if self._embedder is not None:
            await self._embedder.close()
            self._embedder = None
