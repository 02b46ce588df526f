"""AI-safe views, model profiles and the access policy every data service enforces. No grpc here.

Views share the namespace of dataset names (both are SQL table names). A profile's bindings must
resolve when it is saved: datasets and views here, collections through the vector service (the
injected `CollectionDirectory`); memory namespaces come into being on their first trace, so only
their names are checked. Anything that can change a policy bumps the policy revision in its own
transaction (see `service.journal`), so `access_policy` answers a caller that is up to date with
one single-row read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from lakehouse.server.catalog import schema as schemas
from lakehouse.server.catalog.access import require_visible, visibility
from lakehouse.server.catalog.errors import (
    BindingNotFound,
    DatasetNotFound,
    InUse,
    NameTaken,
    NotViewOwner,
    ProfileNotFound,
    ViewNotFound,
)
from lakehouse.server.catalog.service import Runner, StoreUnit, check_update_mask, journal
from lakehouse.server.catalog.store import (
    BINDING_KINDS,
    CatalogStore,
    DatasetRecord,
    ProfileRecord,
    RedactionRecord,
    Tx,
    ViewRecord,
)
from lakehouse.server.common.auth import Principal
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import FieldViolation, InvalidArgument, PermissionDenied, invalid_field
from lakehouse.server.common.names import DATASET_NAME, MAX_LONG_TEXT, MAX_SHORT_TEXT, check_dataset_name, check_text
from lakehouse.server.common.paging import Page, page_of
from lakehouse.server.common.rowfilter import validate_row_filter

PROFILE_ID = re.compile(r"[a-z][a-z0-9-]{0,62}")
# As memory_service.proto names them.
MEMORY_NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
# As vector_service.proto names them: letters, digits and underscores, starting with a letter.
COLLECTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")
REDACTION_KINDS = ("NULL", "HASH", "MASK")
MAX_MASK_KEEP = 64
MAX_BINDINGS = 1000
MAX_CHAT_MODEL = 200
UPDATABLE_VIEW_FIELDS = ("description", "columns", "row_filter", "redactions")
UPDATABLE_PROFILE_FIELDS = ("description", *BINDING_KINDS, "default_chat_model")


class CollectionDirectory(Protocol):
    """Confirms a vector collection exists (the vector service, reached through its client).

    Raises BindingNotFound when it does not and BindingUnverifiable when nobody can say.
    """

    async def require(self, collection: str, field: str) -> None: ...


@dataclass(frozen=True)
class HiddenRows:
    """The soft tombstones of one dataset."""

    dataset: str
    key_column: str
    key_values: tuple[str, ...]


@dataclass(frozen=True)
class AccessPolicy:
    """What one principal may read; see AccessPolicy in catalog_service.proto."""

    principal: str
    role: str
    profile: str
    restricted: bool
    datasets: tuple[DatasetRecord, ...]
    views: tuple[ViewRecord, ...]
    view_bases: tuple[DatasetRecord, ...]
    tombstones: tuple[HiddenRows, ...]
    collections: tuple[str, ...] = ()
    memory_namespaces: tuple[str, ...] = ()
    default_chat_model: str = ""


class GovernanceService(StoreUnit):
    """Views, profiles and access policies."""

    def __init__(
        self, store: CatalogStore, run: Runner, collections: CollectionDirectory, token_profiles: frozenset[str]
    ) -> None:
        super().__init__(store, run)
        self._collections = collections
        self._token_profiles = token_profiles

    # -- views ---------------------------------------------------------------------------------

    async def create_view(self, view: ViewRecord) -> ViewRecord:
        check_dataset_name(view.name, "view.name", reason="INVALID_VIEW_NAME")
        if not view.base_dataset:
            raise invalid_field("view.base_dataset", "name the dataset the view reads", reason="MISSING_DATASET")
        check_text("view.description", view.description, MAX_LONG_TEXT)
        return await self._write(self._create_view, view)

    def _create_view(self, view: ViewRecord) -> ViewRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            tx.lock_name(view.name)
            if tx.view(view.name) is not None:
                raise NameTaken(f"view {view.name!r} already exists", reason="VIEW_ALREADY_EXISTS")
            if tx.dataset(view.name) is not None:
                raise NameTaken(
                    f"a dataset named {view.name!r} exists: datasets and views share one namespace (they are SQL "
                    "table names); pick another name",
                    reason="DATASET_ALREADY_EXISTS",
                )
            record = _checked(tx, replace(view, owner=current_principal().name, create_time=now, update_time=now))
            tx.insert_view(record)
            journal(tx, now, "view", record.name, "create", None, record.summary())
            return record

    async def get_view(self, name: str) -> ViewRecord:
        def load(tx: Tx) -> ViewRecord:
            record = tx.view(name)
            require_visible(visibility(tx), "view", name, record.name if record else None)
            if record is None:
                raise ViewNotFound(name)
            return record

        check_text("name", name, MAX_SHORT_TEXT)
        return await self._run(self._read, load)

    async def list_views(self, page: Page, base_dataset: str) -> tuple[list[ViewRecord], str]:
        check_text("base_dataset", base_dataset, MAX_SHORT_TEXT)

        def load(tx: Tx) -> list[ViewRecord]:
            seen = visibility(tx)
            return tx.views(page.after, page.size + 1, base_dataset, seen.views if seen is not None else None)

        return page_of(await self._run(self._read, load), page, lambda v: v.name)

    async def update_view(self, changes: ViewRecord, paths: Sequence[str]) -> ViewRecord:
        check_update_mask(paths, UPDATABLE_VIEW_FIELDS)
        check_text("view.description", changes.description, MAX_LONG_TEXT)
        return await self._write(self._update_view, changes, tuple(paths))

    def _update_view(self, changes: ViewRecord, paths: tuple[str, ...]) -> ViewRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = _owned_view(tx, changes.name, "change it")
            after = _checked(tx, replace(before, **{p: getattr(changes, p) for p in paths}, update_time=now))
            tx.update_view(after)
            journal(tx, now, "view", before.name, "update", before.summary(), after.summary())
            return after

    async def delete_view(self, name: str) -> ViewRecord:
        check_text("name", name, MAX_SHORT_TEXT)
        return await self._write(self._delete_view, name)

    def _delete_view(self, name: str) -> ViewRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            record = _owned_view(tx, name, "delete it")
            profiles = tx.profiles_binding("views", name)
            if profiles:
                raise InUse(
                    f"view {name!r} is bound to profiles {', '.join(schemas.capped(profiles))}: remove it from "
                    "them first",
                    reason="VIEW_IN_USE",
                    metadata={"profiles": ",".join(profiles[:50])},
                )
            tx.delete_view(name)
            journal(tx, now, "view", name, "delete", record.summary(), None)
            return record

    # -- profiles ------------------------------------------------------------------------------

    async def create_profile(self, profile: ProfileRecord) -> ProfileRecord:
        if not PROFILE_ID.fullmatch(profile.id):
            raise invalid_field(
                "profile.id",
                "must match ^[a-z][a-z0-9-]{0,62}$: lowercase letters, digits and '-', starting with a letter",
                reason="INVALID_PROFILE_ID",
            )
        profile = _normalised(profile, UPDATABLE_PROFILE_FIELDS)
        await self._verify_collections(profile.collections)
        return await self._write(self._create_profile, profile)

    def _create_profile(self, profile: ProfileRecord) -> ProfileRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            if tx.profile(profile.id) is not None:
                raise NameTaken(f"profile {profile.id!r} already exists", reason="PROFILE_ALREADY_EXISTS")
            _resolve_bindings(tx, profile, BINDING_KINDS)
            record = replace(profile, create_time=now, update_time=now)
            tx.insert_profile(record)
            journal(tx, now, "profile", record.id, "create", None, record.summary())
            return record

    async def get_profile(self, profile_id: str) -> ProfileRecord:
        check_text("id", profile_id, MAX_SHORT_TEXT)
        _require_own_profile(current_principal(), profile_id)

        def load(tx: Tx) -> ProfileRecord:
            record = tx.profile(profile_id)
            if record is None:
                raise ProfileNotFound(profile_id)
            return record

        return await self._run(self._read, load)

    async def list_profiles(self, page: Page) -> tuple[list[ProfileRecord], str]:
        principal = current_principal()
        ids = [principal.profile] if principal.role == "agent" else None
        found = await self._run(self._read, lambda tx: tx.profiles(page.after, page.size + 1, ids))
        return page_of(found, page, lambda p: p.id)

    async def update_profile(self, changes: ProfileRecord, paths: Sequence[str]) -> ProfileRecord:
        check_update_mask(paths, UPDATABLE_PROFILE_FIELDS)
        changes = _normalised(changes, paths)
        if "collections" in paths:
            await self._verify_collections(changes.collections)
        return await self._write(self._update_profile, changes, tuple(paths))

    def _update_profile(self, changes: ProfileRecord, paths: tuple[str, ...]) -> ProfileRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = tx.profile(changes.id, for_update=True)
            if before is None:
                raise ProfileNotFound(changes.id)
            after = replace(before, **{p: getattr(changes, p) for p in paths}, update_time=now)
            _resolve_bindings(tx, after, [p for p in paths if p in BINDING_KINDS])
            tx.update_profile(after)
            journal(tx, now, "profile", before.id, "update", before.summary(), after.summary())
            return after

    async def delete_profile(self, profile_id: str) -> ProfileRecord:
        check_text("id", profile_id, MAX_SHORT_TEXT)
        if profile_id in self._token_profiles:
            raise InUse(
                f"profile {profile_id!r} is bound to a token in [auth]: remove or rebind that token first",
                reason="PROFILE_IN_USE",
            )
        return await self._write(self._delete_profile, profile_id)

    def _delete_profile(self, profile_id: str) -> ProfileRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            record = tx.profile(profile_id, for_update=True)
            if record is None:
                raise ProfileNotFound(profile_id)
            tx.delete_profile(profile_id)
            journal(tx, now, "profile", profile_id, "delete", record.summary(), None)
            return record

    async def _verify_collections(self, collections: Sequence[str]) -> None:
        for i, name in enumerate(collections):
            await self._collections.require(name, f"profile.collections[{i}]")

    # -- access policy -------------------------------------------------------------------------

    @property
    def policy_lease_s(self) -> float:
        return self._store.policy_lease_s

    async def access_policy(self, known_revision: int) -> tuple[int, AccessPolicy | None]:
        """The current revision, and the caller's policy unless `known_revision` is current."""
        return await self._run(self._read, _access_policy, known_revision, current_principal())


def _access_policy(tx: Tx, known_revision: int, principal: Principal) -> tuple[int, AccessPolicy | None]:
    # The revision is read first: whatever is read after it is at least that new, so a caller
    # never keeps an older policy under a newer revision.
    revision = tx.policy_revision()
    if known_revision == revision:
        return revision, None
    return revision, _policy(tx, principal)


def _policy(tx: Tx, principal: Principal) -> AccessPolicy:
    seen = visibility(tx, principal)
    if seen is None:
        return AccessPolicy(
            principal=principal.name,
            role=principal.role,
            profile=principal.profile,
            restricted=False,
            datasets=tuple(tx.datasets(None, None)),
            views=tuple(tx.views(None, None)),
            view_bases=(),
            tombstones=_hidden(tx, None),
        )
    views = tuple(tx.views(None, None, names=seen.views))
    bases = {v.base_dataset for v in views} - set(seen.datasets)
    profile = seen.profile
    return AccessPolicy(
        principal=principal.name,
        role=principal.role,
        profile=principal.profile,
        restricted=True,
        datasets=tuple(tx.datasets(None, None, names=seen.datasets)),
        views=views,
        view_bases=tuple(tx.datasets(None, None, names=bases)),
        tombstones=_hidden(tx, {*seen.datasets, *bases, *_sources_of(tx, profile.collections if profile else ())}),
        collections=profile.collections if profile else (),
        memory_namespaces=profile.memory_namespaces if profile else (),
        default_chat_model=profile.default_chat_model if profile else "",
    )


def _sources_of(tx: Tx, collections: Sequence[str]) -> set[str]:
    """Datasets the collections derive from: their tombstones hide rows in vector search too."""
    wanted = set(collections)
    return {d.dataset for d in tx.derivations(None, None) if d.kind == "VECTOR_COLLECTION" and d.target in wanted}


def _hidden(tx: Tx, datasets: set[str] | None) -> tuple[HiddenRows, ...]:
    return tuple(HiddenRows(name, column, tuple(keys)) for name, (column, keys) in tx.hidden_keys(datasets).items())


# -- view rules ------------------------------------------------------------------------------------


def _owned_view(tx: Tx, name: str, action: str) -> ViewRecord:
    """The view, locked; only its owner or an admin may change it (profiles see through it)."""
    record = tx.view(name, for_update=True)
    if record is None:
        raise ViewNotFound(name)
    principal = current_principal()
    if principal.role != "admin" and principal.name != record.owner:
        raise NotViewOwner(f"only the owner of view {name!r} ({record.owner}) or an admin may {action}")
    return record


def _checked(tx: Tx, view: ViewRecord) -> ViewRecord:
    """The view with its row filter as stored, once every rule holds against its base's schema.

    The base row is share-locked, so it cannot go or change while the view is written.
    """
    base = tx.dataset(view.base_dataset, for_share=True) if DATASET_NAME.fullmatch(view.base_dataset) else None
    if base is None:
        raise DatasetNotFound(view.base_dataset[:200])
    schema = pa.ipc.open_stream(base.schema_ipc).schema
    _check_columns(view.columns, schema)
    _check_redactions(view.redactions, view.columns)
    return replace(view, row_filter=validate_row_filter(view.row_filter, schema))


def _check_columns(columns: Sequence[str], schema: pa.Schema) -> None:
    if not columns:
        raise invalid_field("view.columns", "list at least one column of the base dataset", reason="MISSING_COLUMNS")
    seen: set[str] = set()
    for i, column in enumerate(columns):
        if column in seen:
            raise invalid_field(f"view.columns[{i}]", f"{column!r} is listed twice", reason="DUPLICATE_COLUMN")
        if column not in schema.names:
            raise invalid_field(
                f"view.columns[{i}]",
                f"unknown column {column[:200]!r}; the base dataset's columns are "
                f"{', '.join(schemas.capped(schema.names))}",
                reason="UNKNOWN_COLUMN",
            )
        seen.add(column)


def _check_redactions(redactions: Sequence[RedactionRecord], columns: Sequence[str]) -> None:
    redacted: set[str] = set()
    for i, r in enumerate(redactions):
        at = f"view.redactions[{i}]"
        if r.kind not in REDACTION_KINDS:
            raise _bad_redaction(f"{at}.kind", "set how to redact: NULL, HASH or MASK")
        if r.column not in columns:
            raise _bad_redaction(f"{at}.column", f"{r.column[:200]!r} is not one of the view's columns")
        if r.column in redacted:
            raise _bad_redaction(f"{at}.column", f"{r.column!r} is redacted twice; give one redaction per column")
        redacted.add(r.column)
        for name, keep in (("keep_prefix", r.keep_prefix), ("keep_suffix", r.keep_suffix)):
            if keep and r.kind != "MASK":
                raise _bad_redaction(f"{at}.{name}", "applies to MASK redactions only")
            if not 0 <= keep <= MAX_MASK_KEEP:
                raise _bad_redaction(f"{at}.{name}", f"must be between 0 and {MAX_MASK_KEEP}")


def _bad_redaction(field: str, why: str) -> InvalidArgument:
    return invalid_field(field, why, reason="INVALID_REDACTION")


# -- profile rules ---------------------------------------------------------------------------------


def _normalised(profile: ProfileRecord, fields: Sequence[str]) -> ProfileRecord:
    """`profile` with the bindings of `fields` de-duplicated (first one kept), once each field's
    text rules hold; whether the bindings resolve is checked later, against the store."""
    check_text("profile.description", profile.description, MAX_LONG_TEXT)
    check_text("profile.default_chat_model", profile.default_chat_model, MAX_CHAT_MODEL)
    changes: dict[str, Any] = {}
    for kind in (k for k in BINDING_KINDS if k in fields):
        names = tuple(dict.fromkeys(getattr(profile, kind)))
        if len(names) > MAX_BINDINGS:
            raise invalid_field(f"profile.{kind}", f"at most {MAX_BINDINGS} names", reason="TOO_MANY_BINDINGS")
        for i, name in enumerate(names):
            _check_binding_name(kind, f"profile.{kind}[{i}]", name)
        changes[kind] = names
    return replace(profile, **changes)


def _check_binding_name(kind: str, field: str, name: str) -> None:
    if kind in ("datasets", "views") and not DATASET_NAME.fullmatch(name):
        raise _missing(field, f"{kind[:-1]} {name[:200]!r}", "it is not a valid table name")
    if kind == "collections" and not COLLECTION_NAME.fullmatch(name):
        raise invalid_field(
            field, "collection names are letters, digits and '_', starting with a letter", reason="INVALID_COLLECTION"
        )
    if kind == "memory_namespaces" and not MEMORY_NAMESPACE.fullmatch(name):
        raise invalid_field(
            field,
            "must match ^[a-z][a-z0-9_-]{0,62}$: lowercase letters, digits, '_' and '-', starting with a letter",
            reason="INVALID_NAMESPACE",
        )


def _resolve_bindings(tx: Tx, profile: ProfileRecord, kinds: Sequence[str]) -> None:
    """Every dataset and view bound must exist; their rows are share-locked until commit so
    they cannot be deleted under the profile."""
    for kind in (k for k in kinds if k in ("datasets", "views")):
        for i, name in enumerate(getattr(profile, kind)):
            found = tx.dataset(name, for_share=True) if kind == "datasets" else tx.view(name, for_share=True)
            if found is None:
                raise _missing(f"profile.{kind}[{i}]", f"{kind[:-1]} {name!r}", "it does not exist")


def _missing(field: str, what: str, why: str) -> BindingNotFound:
    description = f"{what} cannot be bound: {why}"
    return BindingNotFound(f"{field}: {description}", violations=[FieldViolation(field, description)])


def _require_own_profile(principal: Principal, profile_id: str) -> None:
    if principal.role == "agent" and profile_id != principal.profile:
        raise PermissionDenied(
            f"agents may read only their own profile ({principal.profile!r})", reason="PROFILE_NOT_ALLOWED"
        )
