"""Rules for names and free text shared by every service (they reach the catalog and SQL)."""

from __future__ import annotations

import re

from lakehouse.server.common.errors import invalid_field

# A dataset name is also its SQL table name.
DATASET_NAME = re.compile(r"[a-z][a-z0-9_]{0,127}")
MAX_SHORT_TEXT = 256
MAX_LONG_TEXT = 16 * 1024


def check_dataset_name(name: str, field: str, *, reason: str = "INVALID_DATASET_NAME") -> str:
    """A dataset (or view) name: both are SQL table names in one namespace."""
    if not DATASET_NAME.fullmatch(name):
        raise invalid_field(
            field,
            "must match ^[a-z][a-z0-9_]{0,127}$: lowercase letters, digits and '_', starting with a letter, "
            "at most 128 characters (it is the SQL table name)",
            reason=reason,
        )
    return name


def check_text(field: str, value: str, max_chars: int, *, required: bool = False) -> str:
    """Free text a database can store: bounded, no NUL (PostgreSQL refuses NUL in text)."""
    if required and not value:
        raise invalid_field(field, "must not be empty", reason="INVALID_ARGUMENT")
    if len(value) > max_chars:
        raise invalid_field(field, f"must be at most {max_chars} characters", reason="VALUE_TOO_LONG")
    if "\x00" in value:
        raise invalid_field(field, "must not contain NUL characters", reason="INVALID_CHARACTERS")
    return value
