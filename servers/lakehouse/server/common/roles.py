"""What each role may call. One table, checked by the interceptor for every RPC.

- admin: everything.
- writer: everything except administration (buckets, erasure, profiles).
- reader: read-only calls.
- agent: read-only calls plus writing its own memory (profiles narrow what it sees further).
"""

from __future__ import annotations

from lakehouse.server.common.auth import Principal
from lakehouse.server.common.errors import PermissionDenied

_READ_PREFIXES = (
    "Get",
    "List",
    "Stat",
    "WhoAmI",
    "Query",
    "Explain",
    "Search",
    "Lookup",
    "Embed",
    "Evaluate",
    "Chat",
    "Answer",
)
_ADMIN_ONLY = frozenset(
    {"CreateBucket", "DeleteBucket", "EraseRows", "RestoreRows", "CreateProfile", "UpdateProfile", "DeleteProfile"}
)
_AGENT_WRITES = frozenset(
    {"AddTrace", "UpdateTrace", "ReviseTrace", "RetireTrace", "RecordPlaybook", "RecordPlaybookBatch"}
)


def is_read_only(method: str) -> bool:
    return method.startswith(_READ_PREFIXES)


def may_call(role: str, method: str) -> bool:
    """Whether `role` may call the RPC named `method` (the part after the last '/')."""
    if role == "admin":
        return True
    if role == "writer":
        return method not in _ADMIN_ONLY
    if role == "agent":
        return is_read_only(method) or method in _AGENT_WRITES
    if role == "reader":
        return is_read_only(method)
    return False


def require(principal: Principal, full_method: str) -> None:
    """Refuses the call when the principal's role does not allow it."""
    method = full_method.rsplit("/", 1)[-1]
    if not may_call(principal.role, method):
        raise PermissionDenied(
            f"{principal.name} has the {principal.role} role, which may not call {method}",
            reason="ROLE_NOT_ALLOWED",
            metadata={"role": principal.role, "method": method},
        )
