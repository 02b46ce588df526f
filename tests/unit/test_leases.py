"""LeasedPolicies (servers/lakehouse/server/common/leases.py): a policy is used only within its
lease, and a principal that keeps calling has its lease renewed before it runs out."""

from __future__ import annotations

import asyncio

from lakehouse.server.common.leases import LeasedPolicies, PolicyAnswer

LEASE_S = 0.2


class Catalog:
    """Answers GetAccessPolicy as the catalog does: the policy, or "unchanged" for the current revision."""

    def __init__(self) -> None:
        self.revision = 1
        self.policy = "v1"
        self.asked: list[int] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, known: int) -> PolicyAnswer[str]:
        self.asked.append(known)
        if self.gate is not None:
            await self.gate.wait()
        unchanged = known == self.revision
        return PolicyAnswer(self.revision, None if unchanged else self.policy, LEASE_S)


async def test_within_the_lease_the_held_policy_is_used_without_asking() -> None:
    catalog = Catalog()
    policies = LeasedPolicies(catalog.fetch)
    assert await policies.get() == "v1"
    assert await policies.get() == "v1"
    assert catalog.asked == [0]


async def test_past_half_the_lease_a_call_renews_it_in_the_background_without_waiting() -> None:
    catalog = Catalog()
    policies = LeasedPolicies(catalog.fetch)
    await policies.get()
    await asyncio.sleep(LEASE_S * 0.6)
    catalog.gate = asyncio.Event()  # the catalog is slow to answer the renewal
    assert await policies.get() == "v1"  # answered from the held lease, not waiting
    assert await policies.get() == "v1"
    await asyncio.sleep(0)
    assert catalog.asked == [0, 1]  # one renewal, asked with the revision held
    catalog.revision, catalog.policy = 2, "v2"
    catalog.gate.set()
    while len(catalog.asked) < 2 or await policies.get() != "v2":
        await asyncio.sleep(0.005)
    assert catalog.asked == [0, 1]


async def test_past_the_lease_the_call_waits_for_the_catalog() -> None:
    catalog = Catalog()
    policies = LeasedPolicies(catalog.fetch)
    await policies.get()
    catalog.revision, catalog.policy = 2, "v2"
    await asyncio.sleep(LEASE_S * 1.1)
    assert await policies.get() == "v2"
    assert catalog.asked == [0, 1]


async def test_a_failed_background_renewal_leaves_the_next_call_past_the_lease_to_ask() -> None:
    catalog = Catalog()
    down = False

    async def fetch(known: int) -> PolicyAnswer[str]:
        if down:
            catalog.asked.append(-1)
            raise ConnectionError("catalog unreachable")
        return await catalog.fetch(known)

    policies = LeasedPolicies(fetch)
    await policies.get()
    down = True
    await asyncio.sleep(LEASE_S * 0.6)
    assert await policies.get() == "v1"  # still within the lease: the failed renewal costs nothing
    await asyncio.sleep(0.01)
    assert catalog.asked == [0, -1]
    down = False
    await asyncio.sleep(LEASE_S * 0.5)
    assert await policies.get() == "v1"
    assert catalog.asked == [0, -1, 1]
