"""The playbook's recorded query vectors, held in memory per (namespace, role) for lookups.

Every search with the playbook on asks for the recorded answers close to its query, so the lookup
is a matrix product over vectors held here (loaded from the database at start, updated on every
write) rather than a round trip to Milvus. Vectors are stored normalised, so a cosine distance is
1 - dot product.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from lakehouse.server.memory.store import PlaybookRow


def normalised(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass
class _Slot:
    entries: dict[str, PlaybookRow]
    matrix: np.ndarray | None = None
    """Rows in the order of `order`; rebuilt on the first lookup after a write."""
    order: tuple[str, ...] = ()


class PlaybookIndex:
    """Thread-safe: lookups may run in the blocking pool while writes land."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._lock = threading.Lock()

    def load(self, rows: Iterable[PlaybookRow]) -> None:
        for row in rows:
            self.put(row)

    def put(self, row: PlaybookRow) -> None:
        with self._lock:
            for key, slot in self._slots.items():  # a re-recorded entry may have changed role
                if key != (row.namespace, row.role) and row.id in slot.entries:
                    del slot.entries[row.id]
                    slot.matrix = None
            slot = self._slots.setdefault((row.namespace, row.role), _Slot({}))
            slot.entries[row.id] = row
            slot.matrix = None

    def remove(self, entry_id: str) -> None:
        with self._lock:
            for slot in self._slots.values():
                if slot.entries.pop(entry_id, None) is not None:
                    slot.matrix = None

    def size(self, namespace: str, role: str) -> int:
        slot = self._slots.get((namespace, role))
        return len(slot.entries) if slot else 0

    def lookup(
        self,
        namespace: str,
        role: str,
        query: np.ndarray,
        max_distance: float,
        k: int,
        excluded: frozenset[str],
        collections: frozenset[str],
    ) -> list[tuple[PlaybookRow, float]]:
        """Entries of exactly this role within `max_distance` of `query`, closest first."""
        with self._lock:
            slot = self._slots.get((namespace, role))
            if slot is None or not slot.entries:
                return []
            if slot.matrix is None:
                slot.order = tuple(slot.entries)
                slot.matrix = np.stack([normalised(slot.entries[i].vector) for i in slot.order])
            matrix, order, entries = slot.matrix, slot.order, dict(slot.entries)
        if matrix.shape[1] != query.shape[0]:
            return []  # recorded with another model's dimension: nothing comparable
        distances = 1.0 - matrix @ normalised(query)
        candidates = np.flatnonzero(distances <= max_distance)
        ranked = candidates[np.argsort(distances[candidates], kind="stable")]
        out: list[tuple[PlaybookRow, float]] = []
        for i in ranked:
            row = entries[order[i]]
            if row.answer_id in excluded or (collections and row.answer_collection not in collections):
                continue
            out.append((row, float(max(distances[i], 0.0))))
            if len(out) >= k:
                break
        return out


def entry_order(rows: Sequence[PlaybookRow]) -> list[PlaybookRow]:
    return sorted(rows, key=lambda r: (-r.update_us, r.id))
