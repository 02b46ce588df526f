"""What a principal may see of the catalog. Agents see only what their model profile binds.

Checked inside the reading transaction, so a profile change and a read never disagree. An agent
whose profile does not exist sees nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from lakehouse.server.catalog.errors import TableNotAllowed
from lakehouse.server.catalog.store import ProfileRecord, Tx
from lakehouse.server.common.auth import Principal
from lakehouse.server.common.context import current_principal

MAX_LISTED = 50


@dataclass(frozen=True)
class Visibility:
    """The bindings of a restricted principal's profile (None when the profile does not exist)."""

    profile: ProfileRecord | None

    @property
    def datasets(self) -> tuple[str, ...]:
        return self.profile.datasets if self.profile else ()

    @property
    def views(self) -> tuple[str, ...]:
        return self.profile.views if self.profile else ()


def visibility(tx: Tx, principal: Principal | None = None) -> Visibility | None:
    """None when the principal may see everything; otherwise what its profile binds."""
    principal = principal or current_principal()
    if principal.role != "agent":
        return None
    return Visibility(tx.profile(principal.profile) if principal.profile else None)


def require_visible(seen: Visibility | None, kind: str, asked: str, found: str | None) -> None:
    """Refuses `asked` (a name or id, resolved to `found` or None) unless the profile binds it.

    An unbound name is refused whether or not it exists, so agents cannot probe for tables.
    """
    if seen is None:
        return
    allowed = seen.datasets if kind == "dataset" else seen.views
    if (found or asked) in allowed:
        return
    raise TableNotAllowed(
        f"{kind} {asked!r} is not bound to your model profile; you may read: {_listed(allowed)}",
        metadata={"table": asked[:200], "allowed": ",".join(sorted(allowed)[:MAX_LISTED])},
    )


def _listed(names: Collection[str]) -> str:
    ordered = sorted(names)
    text = ", ".join(ordered[:MAX_LISTED])
    if len(ordered) > MAX_LISTED:
        text += f" (and {len(ordered) - MAX_LISTED} more)"
    return text or "nothing"
