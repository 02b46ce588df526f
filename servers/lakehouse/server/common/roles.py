"""What each role may call. One table, checked by the interceptor for every RPC and Flight call.

- admin: everything.
- writer: everything except administration (buckets, erasure, profiles, row deletion).
- reader: read-only calls, tombstone values excepted (they are the keys of erased rows).
- agent: read-only calls on the data services plus writing memory; never raw objects, the
  journal or erasure records. Its model profile narrows what it sees further, in each service.
- service: the mesh's own identity (the mesh token); journals denials, appends the chat session
  log (creating and appending datasets through IngestFile), and the memory service keeps its
  namespaces' vectors with it (memory collections belong to the memory service, which checks the
  caller's profile itself), so it may read access policies and use vector collections.

Finer rules that depend on the request (a retention below the minimum, applying tombstones,
a profile's bindings) are checked by the domain code, which raises the same PERMISSION_DENIED.
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
    {
        "CreateBucket",
        "DeleteBucket",
        "EraseRows",
        "RestoreRows",
        "CreateProfile",
        "UpdateProfile",
        "DeleteProfile",
        "DeleteRows",
    }
)
_SERVICE_CALLS = frozenset({"RecordDenials"})
# What the mesh's own identity may call besides: appending the chat service's session log
# (IngestFile) and the catalog reads and registrations the query service makes for that ingest
# under the same identity. Nothing that reads rows or deletes anything.
_SERVICE_LOG_WRITES = frozenset(
    {
        "IngestFile",
        "GetAccessPolicy",
        "ListDatasets",
        "GetDataset",
        "GetDatasetVersion",
        "GetDatasetHistory",
        "CreateDataset",
        "RegisterDatasetVersion",
        "ListBuckets",
    }
)
# What the memory service calls on the vector service (and the vector service then asks the catalog).
_MESH_CALLS = frozenset(
    {
        "GetAccessPolicy",
        "Embed",
        "GetEmbedderInfo",
        "CreateCollection",
        "GetCollection",
        "DeleteCollection",
        "UpsertVectors",
        "DeleteVectors",
        "GetVectors",
        "Search",
    }
)
_WRITER_READS = frozenset({"ListTombstones"})
# Agents read data only through the services that apply their profile: never raw objects.
_AGENT_HIDDEN = frozenset(
    {
        "ListEvents",
        "ListTombstones",
        "ListErasures",
        "GetErasureReceipt",
        "ListDerivations",
        "GetObject",
        "ListObjects",
        "StatObject",
    }
)
_AGENT_WRITES = frozenset(
    {"AddTrace", "UpdateTrace", "ReviseTrace", "RetireTrace", "RecordPlaybook", "RecordPlaybookBatch"}
)
ROLES = ("admin", "writer", "reader", "agent")


def is_read_only(method: str) -> bool:
    return method.startswith(_READ_PREFIXES)


def may_call(role: str, full_method: str) -> bool:
    """Whether `role` may call `full_method` ("/package.Service/Method" or "/flight/Method")."""
    method = full_method.rsplit("/", 1)[-1]
    if role == "admin":
        return True
    if role == "service":
        return method in _SERVICE_CALLS or method in _SERVICE_LOG_WRITES or method in _MESH_CALLS or method == "WhoAmI"
    if method in _SERVICE_CALLS:
        return False
    if role == "writer":
        return method not in _ADMIN_ONLY
    if role == "reader":
        return is_read_only(method) and method not in _WRITER_READS
    if role == "agent":
        if method in _AGENT_HIDDEN:
            return False
        return is_read_only(method) or method in _AGENT_WRITES
    return False


def require(principal: Principal, full_method: str) -> None:
    """Refuses the call when the principal's role does not allow it."""
    if not may_call(principal.role, full_method):
        method = full_method.rsplit("/", 1)[-1]
        raise PermissionDenied(
            f"{principal.name} has the {principal.role} role, which may not call {method}",
            reason="ROLE_NOT_ALLOWED",
            metadata={"role": principal.role, "method": method},
        )


def require_admin(principal: Principal, what: str) -> None:
    """For request-dependent rules: `what` needs the admin role."""
    if principal.role != "admin":
        raise PermissionDenied(
            f"{what} needs the admin role; {principal.name} has the {principal.role} role",
            reason="ADMIN_REQUIRED",
            metadata={"role": principal.role},
        )
