"""The size cap of one bucket, held while uploads run concurrently.

A budget computed once per upload from a scan lets two uploads each see room for themselves and
together overshoot the cap. Instead the bucket keeps a running total of stored bytes (one scan,
the first time it is needed, then kept up to date by every put, replace and delete) plus the
bytes that uploads in flight have received so far. Uploads reserve bytes as they arrive, settle
their reservation into the stored total when they publish and release it when they are dropped.
Files that reach the bucket by other paths (Delta tables the query service writes into it) are
counted by that first scan only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lakehouse.server.storage.errors import QuotaExceeded


class BucketUsage:
    """Stored and reserved bytes of one bucket; does nothing when the bucket has no cap."""

    def __init__(self, name: str, max_bytes: int, scan: Callable[[], int]) -> None:
        self._name = name
        self.max_bytes = max_bytes
        self._scan = scan
        self._lock = threading.Lock()
        self._stored: int | None = None
        self._reserved = 0

    def reserve(self, nbytes: int, credit: int) -> None:
        """Holds `nbytes` more for an upload; `credit` is the size of the object it replaces."""
        if not self.max_bytes:
            return
        with self._lock:
            if self._stored_locked() + self._reserved + nbytes - credit > self.max_bytes:
                raise self._exceeded()
            self._reserved += nbytes

    def release(self, nbytes: int) -> None:
        """Gives back what a dropped upload had reserved."""
        if self.max_bytes and nbytes:
            with self._lock:
                self._reserved -= nbytes

    def settle(self, reserved: int, delta: int) -> None:
        """At publish: re-checks the cap against what is stored now and counts `delta` as stored.

        Other uploads' reservations are not counted here: they are promises, not objects, and
        each is checked the same way when it publishes.
        """
        if not self.max_bytes:
            return
        with self._lock:
            if self._stored_locked() + delta > self.max_bytes:
                raise self._exceeded()
            self._stored = self._stored_locked() + delta
            self._reserved -= reserved

    def undo(self, delta: int) -> None:
        """Takes back a settled `delta` whose publish failed."""
        if self.max_bytes:
            with self._lock:
                self._stored = self._stored_locked() - delta

    @contextmanager
    def removing(self, nbytes: int) -> Iterator[None]:
        """Wraps deleting `nbytes` of objects, so a first scan never sees the delete half done."""
        if not self.max_bytes:
            yield
            return
        with self._lock:
            stored = self._stored_locked()
            yield
            self._stored = stored - nbytes

    def _stored_locked(self) -> int:
        if self._stored is None:
            self._stored = self._scan()
        return self._stored

    def _exceeded(self) -> QuotaExceeded:
        return QuotaExceeded(
            f"bucket {self._name!r} is capped at {self.max_bytes} bytes and this upload would exceed it; "
            "delete objects or raise max_bytes"
        )
