"""Opaque page tokens for List RPCs: a base64 JSON cursor (the last key returned)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lakehouse.server.common.errors import invalid_field

DEFAULT_PAGE_SIZE = 100
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """A validated page request: how many items and the key to continue after."""

    size: int
    after: str | None


def page_request(page_size: int, page_token: str, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = 1000) -> Page:
    """Validates paging fields; a negative size or a garbled token names the field."""
    if page_size < 0:
        raise invalid_field("page_size", "must not be negative", reason="INVALID_PAGE_SIZE")
    size = min(page_size or default, maximum)
    return Page(size=size, after=decode_token(page_token) if page_token else None)


def encode_token(last_key: str) -> str:
    """Token that continues after `last_key`."""
    return base64.urlsafe_b64encode(json.dumps({"after": last_key}).encode()).decode()


def decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeError):
        raise invalid_field("page_token", "not a token this server issued", reason="INVALID_PAGE_TOKEN") from None
    if not isinstance(after, str):
        raise invalid_field("page_token", "not a token this server issued", reason="INVALID_PAGE_TOKEN")
    return after


def page_of(rows: Sequence[T], page: Page, key: Callable[[T], str]) -> tuple[list[T], str]:
    """Splits a fetch of up to `page.size + 1` rows into this page and the next page's token.

    Fetching one row more than asked tells whether another page exists without a count query.
    """
    token = encode_token(key(rows[page.size - 1])) if len(rows) > page.size else ""
    return list(rows[: page.size]), token
