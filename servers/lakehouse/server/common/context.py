"""Per-call context (request id, principal, credentials) visible to everything a call runs."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from lakehouse.server.common.auth import LOCAL_ADMIN, Principal
from lakehouse.server.common.tracing import inject_current


@dataclass(frozen=True)
class CallContext:
    """What the server knows about the call being served."""

    request_id: str
    method: str
    principal: Principal
    authorization: str = field(default="", repr=False)
    """The caller's authorization header, forwarded on mesh hops so peers see the same principal."""


_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("lakehouse_call", default=None)


def current_call() -> CallContext | None:
    """The call being served by this task, if any."""
    return _current.get()


def current_principal() -> Principal:
    """The caller's principal; the local admin outside a call (start-up, tests of domain code)."""
    call = _current.get()
    return call.principal if call else LOCAL_ADMIN


def set_call(call: CallContext) -> contextvars.Token[CallContext | None]:
    return _current.set(call)


def reset_call(token: contextvars.Token[CallContext | None]) -> None:
    _current.reset(token)


def forwarded_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata a mesh hop carries: the request id, the caller's credentials and the trace context."""
    call = _current.get()
    if call is None:
        return ()
    pairs = [("x-request-id", call.request_id)]
    if call.authorization:
        pairs.append(("authorization", call.authorization))
    pairs.extend(inject_current())
    return tuple(pairs)
