"""Records of the audit journal that more than one service writes or reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Denial:
    """A call a service refused (PERMISSION_DENIED or UNAUTHENTICATED), as it reports it."""

    time: datetime | None
    method: str
    principal: str
    """Empty when the caller was not authenticated."""
    code: str
    reason: str
    message: str
    request_id: str
    peer: str
