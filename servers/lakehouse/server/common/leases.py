"""Access policies held per principal under the catalog's lease, shared by every service that
enforces them (query, vector, memory, chat).

The catalog gives each GetAccessPolicy answer a lease and answers every policy change only after
that lease, so a policy used within its lease is never older than a change its caller has seen
acknowledged. Past the lease the catalog is asked again with the revision held, and answers
"unchanged" in one row read almost always. A principal that keeps calling gets its lease renewed
in the background once half of it has passed, so its calls do not wait for the catalog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from lakehouse.server.common.context import current_principal

P = TypeVar("P")
log = logging.getLogger("lakehouse.policy")
_Key = tuple[str, str, str]


@dataclass(frozen=True)
class PolicyAnswer(Generic[P]):
    revision: int
    policy: P | None
    """None when the revision the caller sent is current."""
    lease_s: float
    """How long after asking the answer may be used without asking again."""


@dataclass(frozen=True)
class _Held(Generic[P]):
    revision: int
    policy: P
    until: float
    """Monotonic time until which the policy is used without asking."""
    renew_at: float
    """Monotonic time from which a call starts renewing the lease in the background."""


class LeasedPolicies(Generic[P]):
    """The caller's policy, from `fetch(known_revision)`, kept per principal (bounded LRU)."""

    def __init__(self, fetch: Callable[[int], Awaitable[PolicyAnswer[P]]], size: int = 1024) -> None:
        self._fetch = fetch
        self._size = size
        self._held: OrderedDict[_Key, _Held[P]] = OrderedDict()
        self._renewing: dict[_Key, asyncio.Task[P]] = {}

    async def get(self) -> P:
        principal = current_principal()
        key = (principal.name, principal.role, principal.profile)
        held = self._held.get(key)
        now = time.monotonic()
        if held is not None and now < held.until:
            if now >= held.renew_at and key not in self._renewing:
                self._renew_in_background(key, held)
            return held.policy
        return await self._renew(key, held)

    def _renew_in_background(self, key: _Key, held: _Held[P]) -> None:
        task = asyncio.create_task(self._renew(key, held), name="lakehouse-policy-renewal")
        self._renewing[key] = task

        def done(t: asyncio.Task[P]) -> None:
            self._renewing.pop(key, None)
            if not t.cancelled() and t.exception() is not None:  # the next call past the lease asks again
                log.debug("renewing an access policy in the background failed: %s", t.exception())

        task.add_done_callback(done)

    async def _renew(self, key: _Key, held: _Held[P] | None) -> P:
        asked = time.monotonic()
        answer = await self._fetch(held.revision if held else 0)
        policy = answer.policy if answer.policy is not None else (held.policy if held else None)
        if policy is None:  # "unchanged" for a revision this process never held: ask for all of it
            answer = await self._fetch(0)
            policy = answer.policy
            assert policy is not None
        self._held[key] = _Held(answer.revision, policy, asked + answer.lease_s, asked + answer.lease_s / 2)
        self._held.move_to_end(key)
        while len(self._held) > self._size:
            self._held.popitem(last=False)
        return policy
