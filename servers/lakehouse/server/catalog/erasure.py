"""Tombstones, erasure receipts and derivations. No grpc here.

A soft erasure records tombstones that every data service applies at once (through the access
policy); a hard erasure deletes the rows from the table through the query service, then from the
vector collections and memory namespaces recorded as derived from the dataset. Each step's outcome
lands in the receipt, which never holds the key values themselves, only their count: nor do the
journal's events. Peers are reached through the injected `TableRows` and `DerivedStores`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from lakehouse.server.catalog import schema as schemas
from lakehouse.server.catalog.errors import DatasetNotFound, ErasureNotFound, InUse, TombstoneKeyMismatch
from lakehouse.server.catalog.service import Runner, StoreUnit, check_lookup, int_token, journal
from lakehouse.server.catalog.store import (
    CatalogStore,
    DatasetRecord,
    DerivationRecord,
    DownstreamRecord,
    ErasureRecord,
    TombstoneRecord,
    Tx,
)
from lakehouse.server.common.context import current_principal
from lakehouse.server.common.errors import InvalidArgument, invalid_field
from lakehouse.server.common.names import MAX_LONG_TEXT, MAX_SHORT_TEXT, check_text
from lakehouse.server.common.paging import Page, page_of

MAX_KEYS = 10_000
MODES = ("SOFT", "HARD")
DERIVATION_KINDS = ("VECTOR_COLLECTION", "MEMORY_NAMESPACE")
# How a derivation kind is named in a receipt's downstream deletions.
DOWNSTREAM_KINDS = {"VECTOR_COLLECTION": "vector_collection", "MEMORY_NAMESPACE": "memory_namespace"}


@dataclass(frozen=True)
class RowDeletion:
    """What the query service did (or, in a dry run, would do) to a dataset's rows."""

    version_before: int
    version_after: int
    rows_removed: int
    files_removed: int


class TableRows(Protocol):
    """Deletes a dataset's rows by key, or counts them in a dry run (the query service)."""

    async def delete(
        self, dataset: str, key_column: str, keys: Sequence[str], erasure_id: str, *, dry_run: bool
    ) -> RowDeletion: ...


class DerivedStores(Protocol):
    """Where a hard erasure propagates: the vector and memory services. Both return counts."""

    async def delete_vectors(self, collection: str, dataset: str, keys: Sequence[str]) -> int: ...

    async def forget_traces(
        self, namespace: str, dataset: str, keys: Sequence[str], reason: str, erasure_id: str
    ) -> int | None:
        """Traces forgotten; namespace "" sweeps every namespace, and answers None when this
        deployment has no memory service."""
        ...


@dataclass(frozen=True)
class ErasureRequest:
    dataset: str
    key_column: str
    keys: tuple[str, ...]
    mode: str
    reason: str


class ErasureService(StoreUnit):
    """Erasure, restore, tombstones, receipts and derivations."""

    def __init__(self, store: CatalogStore, run: Runner, rows: TableRows, derived: DerivedStores) -> None:
        super().__init__(store, run)
        self._rows = rows
        self._derived = derived

    # -- erasure -------------------------------------------------------------------------------

    async def erase(self, dataset: str, key_column: str, keys: Sequence[str], mode: str, reason: str) -> ErasureRecord:
        check_lookup(dataset, "dataset")
        check_text("key_column", key_column, MAX_SHORT_TEXT, required=True)
        keys = check_keys(keys)
        if mode not in MODES:
            raise invalid_field("mode", "choose SOFT or HARD", reason="INVALID_ERASURE_MODE")
        request = ErasureRequest(dataset, key_column, keys, mode, _check_reason(reason))
        await self._run(self._read, _erasable, request)
        erasure_id = str(uuid.uuid4())
        if mode == "SOFT":
            counted = await self._rows.delete(dataset, key_column, request.keys, erasure_id, dry_run=True)
            return await self._write(self._record_soft, erasure_id, request, counted.rows_removed)
        # Once the rows are going, the erasure finishes (and its receipt says how) even if the
        # caller hangs up.
        return await asyncio.shield(self._hard(erasure_id, request))

    def _record_soft(self, erasure_id: str, request: ErasureRequest, rows: int) -> ErasureRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            dataset = _erasable(tx, request, lock=True)
            receipt = _receipt(erasure_id, request, dataset, now, "COMPLETE", rows_removed=rows, complete_time=now)
            tx.insert_tombstones(dataset.name, request.key_column, request.keys, erasure_id, now)
            tx.insert_erasure(receipt)
            journal(tx, now, "erasure", erasure_id, "erase", None, receipt.summary(), changes_policy=True)
            return receipt

    async def _hard(self, erasure_id: str, request: ErasureRequest) -> ErasureRecord:
        receipt = await self._write(self._start_hard, erasure_id, request)
        try:
            deleted = await self._rows.delete(
                receipt.dataset, request.key_column, request.keys, erasure_id, dry_run=False
            )
        except Exception as exc:
            return await self._write(self._finish, receipt, [_failure("delete_rows", exc)])
        receipt = replace(
            receipt,
            version_before=deleted.version_before,
            version_after=deleted.version_after,
            rows_removed=deleted.rows_removed,
            files_removed=deleted.files_removed,
        )
        await self._write(self._record_deletion, receipt, request.keys)
        receipt, failures = await self._propagate(receipt, request)
        return await self._write(self._finish, receipt, failures)

    def _start_hard(self, erasure_id: str, request: ErasureRequest) -> ErasureRecord:
        """The RUNNING receipt, stored before anything is deleted."""
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            receipt = _receipt(erasure_id, request, _erasable(tx, request, lock=True), now, "RUNNING")
            tx.insert_erasure(receipt)
            journal(tx, now, "erasure", erasure_id, "erase", None, receipt.summary(), changes_policy=False)
            return receipt

    def _record_deletion(self, receipt: ErasureRecord, keys: tuple[str, ...]) -> None:
        """The table step is done: the receipt says so, and soft tombstones of the deleted keys go."""
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            lifted = 0
            if tx.tombstone_key_column(receipt.dataset) == receipt.key_column:
                lifted = tx.delete_tombstones(receipt.dataset, keys)
            tx.update_erasure(receipt)
            summary = receipt.summary() | {"tombstones_lifted": lifted}
            journal(tx, now, "erasure", receipt.id, "delete_rows", None, summary, changes_policy=lifted > 0)

    async def _propagate(self, receipt: ErasureRecord, request: ErasureRequest) -> tuple[ErasureRecord, list[str]]:
        """Deletes from every derived collection and namespace; a failed target does not stop the rest."""
        done: list[DownstreamRecord] = []
        failures: list[str] = []
        for derivation in await self._run(self._read, _derivations_of, receipt.dataset):
            kind = DOWNSTREAM_KINDS[derivation.kind]
            try:
                count = await self._delete_derived(derivation, request, receipt.id)
            except Exception as exc:
                failures.append(_failure(f"{kind} {derivation.target}", exc))
                continue
            done.append(DownstreamRecord(kind, derivation.target, count or 0))
        # Traces name the rows they came from in their metadata (source_dataset, source_key), with
        # or without a registered derivation: every namespace is swept after the registered ones,
        # and listed as "*" when it still held some.
        try:
            swept = await self._derived.forget_traces("", receipt.dataset, request.keys, request.reason, receipt.id)
        except Exception as exc:
            failures.append(_failure("memory_namespace *", exc))
        else:
            if swept:
                done.append(DownstreamRecord("memory_namespace", "*", swept))
        return replace(receipt, downstream=tuple(done)), failures

    async def _delete_derived(
        self, derivation: DerivationRecord, request: ErasureRequest, erasure_id: str
    ) -> int | None:
        if derivation.kind == "VECTOR_COLLECTION":
            return await self._derived.delete_vectors(derivation.target, derivation.dataset, request.keys)
        return await self._derived.forget_traces(
            derivation.target, derivation.dataset, request.keys, request.reason, erasure_id
        )

    def _finish(self, receipt: ErasureRecord, failures: list[str]) -> ErasureRecord:
        now = datetime.now(UTC)
        if failures:
            final = replace(receipt, state="FAILED", detail="; ".join(failures))
        else:
            final = replace(receipt, state="COMPLETE", complete_time=now)
        with self._store.transaction() as tx:
            tx.update_erasure(final)
            action = "fail" if failures else "complete"
            journal(tx, now, "erasure", final.id, action, None, final.summary(), changes_policy=False)
        return final

    # -- restore, tombstones, receipts ---------------------------------------------------------

    async def restore(self, dataset: str, keys: Sequence[str], reason: str, applied: bool) -> int:
        """Lifts soft tombstones; `applied` says compaction deleted the rows (journaled as "apply")."""
        check_lookup(dataset, "dataset")
        return await self._write(self._restore, dataset, check_keys(keys), _check_reason(reason), applied)

    def _restore(self, dataset: str, keys: tuple[str, ...], reason: str, applied: bool) -> int:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            record = tx.dataset(dataset, for_update=True)
            if record is None:
                raise DatasetNotFound(dataset)
            lifted = tx.delete_tombstones(record.name, keys)
            after = {"key_count": len(keys), "lifted": lifted, "reason": reason}
            action = "apply" if applied else "restore"
            journal(tx, now, "tombstone", record.name, action, None, after, changes_policy=lifted > 0)
            return lifted

    async def list_tombstones(self, dataset: str, page: Page) -> tuple[list[TombstoneRecord], str]:
        check_lookup(dataset, "dataset")

        def load(tx: Tx) -> list[TombstoneRecord]:
            record = tx.dataset(dataset)
            if record is None:
                raise DatasetNotFound(dataset)
            return tx.tombstones(record.name, page.after, page.size + 1)

        return page_of(await self._run(self._read, load), page, lambda t: t.key_value)

    async def get_receipt(self, erasure_id: str) -> ErasureRecord:
        check_text("id", erasure_id, MAX_SHORT_TEXT)

        def load(tx: Tx) -> ErasureRecord:
            record = tx.erasure(erasure_id)
            if record is None:
                raise ErasureNotFound(erasure_id)
            return record

        return await self._run(self._read, load)

    async def list_receipts(self, page: Page, dataset: str) -> tuple[list[ErasureRecord], str]:
        check_text("dataset", dataset, MAX_SHORT_TEXT)
        before = int_token(page.after, "page_token")
        receipts = await self._run(self._read, lambda tx: tx.erasures(before, page.size + 1, dataset))
        return page_of(receipts, page, lambda r: str(r.sequence))

    # -- derivations ---------------------------------------------------------------------------

    async def register_derivation(self, derivation: DerivationRecord) -> DerivationRecord:
        if derivation.kind not in DERIVATION_KINDS:
            raise _bad_derivation("derivation.kind", "choose VECTOR_COLLECTION or MEMORY_NAMESPACE")
        check_lookup(derivation.dataset, "derivation.dataset")
        for name, value in (("target", derivation.target), ("key_column", derivation.key_column)):
            if not value or len(value) > MAX_SHORT_TEXT or "\x00" in value:
                raise _bad_derivation(f"derivation.{name}", f"required, at most {MAX_SHORT_TEXT} characters")
        if derivation.dataset_version < 0:
            raise _bad_derivation("derivation.dataset_version", "must not be negative")
        return await self._write(self._register_derivation, derivation)

    def _register_derivation(self, derivation: DerivationRecord) -> DerivationRecord:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            dataset = tx.dataset(derivation.dataset, for_share=True)
            if dataset is None:
                raise DatasetNotFound(derivation.dataset)
            if derivation.key_column not in {c.name for c in dataset.columns}:
                raise _bad_derivation("derivation.key_column", f"{dataset.name!r} has no such column")
            before = tx.derivation(dataset.name, derivation.kind, derivation.target)
            created = before.create_time if before else now
            after = replace(derivation, dataset=dataset.name, create_time=created, update_time=now)
            tx.upsert_derivation(after, exists=before is not None)
            entity = f"{after.dataset}/{after.target}"
            action = "update" if before else "create"
            summary = before.summary() if before else None
            journal(tx, now, "derivation", entity, action, summary, after.summary(), changes_policy=False)
            return after

    async def delete_derivation(self, dataset: str, kind: str, target: str) -> bool:
        """Forgets a derivation (its collection or namespace is gone); False when there was none."""
        if kind not in DERIVATION_KINDS:
            raise _bad_derivation("kind", "choose VECTOR_COLLECTION or MEMORY_NAMESPACE")
        check_lookup(dataset, "dataset")
        if not target or len(target) > MAX_SHORT_TEXT or "\x00" in target:
            raise _bad_derivation("target", f"required, at most {MAX_SHORT_TEXT} characters")
        return await self._write(self._delete_derivation, dataset, kind, target)

    def _delete_derivation(self, dataset: str, kind: str, target: str) -> bool:
        now = datetime.now(UTC)
        with self._store.transaction() as tx:
            before = tx.derivation(dataset, kind, target)
            if before is None:
                return False
            tx.delete_derivation(dataset, kind, target)
            journal(
                tx, now, "derivation", f"{dataset}/{target}", "delete", before.summary(), None, changes_policy=False
            )
            return True

    async def list_derivations(self, page: Page, dataset: str) -> tuple[list[DerivationRecord], str]:
        check_text("dataset", dataset, MAX_SHORT_TEXT)
        after = _derivation_token(page.after)
        found = await self._run(self._read, lambda tx: tx.derivations(after, page.size + 1, dataset))
        return page_of(found, page, lambda d: json.dumps([d.dataset, d.target, d.kind]))


def check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Key values, de-duplicated in order. Messages never quote a key: keys identify people."""
    if not keys:
        raise invalid_field("key_values", "give at least one key value", reason="EMPTY_KEYS")
    if len(keys) > MAX_KEYS:
        raise invalid_field("key_values", f"at most {MAX_KEYS} per call", reason="TOO_MANY_KEYS")
    for i, key in enumerate(keys):
        if not key:
            raise invalid_field(f"key_values[{i}]", "must not be empty", reason="EMPTY_KEY")
        if len(key) > MAX_SHORT_TEXT or "\x00" in key:
            raise invalid_field(
                f"key_values[{i}]", f"must be at most {MAX_SHORT_TEXT} characters, without NUL", reason="INVALID_KEY"
            )
    return tuple(dict.fromkeys(keys))


def _check_reason(reason: str) -> str:
    if not reason.strip():
        raise invalid_field("reason", "say why (it is kept in the receipt and the journal)", reason="EMPTY_REASON")
    return check_text("reason", reason, MAX_LONG_TEXT)


def _erasable(tx: Tx, request: ErasureRequest, *, lock: bool = False) -> DatasetRecord:
    """The dataset, once the request fits it: a real key column, the same key column as any
    soft tombstones, and for a hard erasure the same key as every derived collection."""
    dataset = tx.dataset(request.dataset, for_update=lock)
    if dataset is None:
        raise DatasetNotFound(request.dataset)
    columns = [c.name for c in dataset.columns]
    if request.key_column not in columns:
        raise invalid_field(
            "key_column",
            f"{dataset.name!r} has no column {request.key_column[:200]!r}; its columns are "
            f"{', '.join(schemas.capped(columns))}",
            reason="UNKNOWN_COLUMN",
        )
    if request.mode == "SOFT":
        _require_tombstone_key(tx, dataset.name, request.key_column)
    else:
        _require_derivation_keys(tx, dataset.name, request.key_column)
    return dataset


def _require_tombstone_key(tx: Tx, dataset: str, key_column: str) -> None:
    held = tx.tombstone_key_column(dataset)
    if held is not None and held != key_column:
        raise TombstoneKeyMismatch(
            f"the tombstones of {dataset!r} match on column {held!r}, not {key_column!r}: erase by {held!r}, "
            "or restore those rows first",
            metadata={"tombstone_key_column": held, "key_column": key_column},
        )


def _require_derivation_keys(tx: Tx, dataset: str, key_column: str) -> None:
    """Derived items carry the key of their own key column; keys of another column cannot reach them."""
    other = [d for d in tx.derivations(None, None, dataset) if d.key_column != key_column]
    if other:
        named = [f"{DOWNSTREAM_KINDS[d.kind]} {d.target} (keyed by {d.key_column!r})" for d in other]
        raise InUse(
            f"a hard erasure of {dataset!r} must reach what derives from it, and {', '.join(schemas.capped(named))} "
            f"cannot be matched by {key_column!r}: erase by that column instead",
            reason="DERIVATION_KEY_MISMATCH",
        )


def _derivations_of(tx: Tx, dataset: str) -> list[DerivationRecord]:
    return tx.derivations(None, None, dataset)


def _receipt(
    erasure_id: str, request: ErasureRequest, dataset: DatasetRecord, now: datetime, state: str, **more: object
) -> ErasureRecord:
    return ErasureRecord(
        id=erasure_id,
        dataset=dataset.name,
        mode=request.mode,
        actor=current_principal().name,
        reason=request.reason,
        key_column=request.key_column,
        key_count=len(request.keys),
        version_before=dataset.current_version,
        version_after=dataset.current_version,
        state=state,
        start_time=now,
        **more,  # type: ignore[arg-type]
    )


def _failure(step: str, error: Exception) -> str:
    """What a receipt says of a failed step: the status and reason, never the message, which
    could quote a key value."""
    code = getattr(getattr(error, "code", None), "name", "INTERNAL")
    reason = getattr(error, "reason", "") or type(error).__name__
    return f"{step} failed: {code} {reason}"


def _bad_derivation(field: str, why: str) -> InvalidArgument:
    return invalid_field(field, why, reason="INVALID_DERIVATION")


def _derivation_token(after: str | None) -> tuple[str, str, str] | None:
    if after is None:
        return None
    try:
        key = json.loads(after)
    except ValueError:
        key = None
    if not (isinstance(key, list) and len(key) == 3 and all(isinstance(k, str) for k in key)):
        raise invalid_field("page_token", "not a token this server issued", reason="INVALID_PAGE_TOKEN")
    return key[0], key[1], key[2]
