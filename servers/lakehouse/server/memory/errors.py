"""Errors of the memory domain beyond the shared ones."""

from __future__ import annotations

from lakehouse.server.common.errors import Code, LakehouseError


class Aborted(LakehouseError):
    """A concurrent change won (a version check, a running reindex): read again and retry."""

    code = Code.ABORTED
    reason = "ABORTED"
