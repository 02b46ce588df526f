"""Removes credentials from text that is kept or shown: lineage references, log lines, errors."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Parameter names that carry secrets: exact names, or names ending in one of them.
_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:pass(?:word)?|passwd|pwd|secret|token|key|apikey|credentials?|signature|sig|auth)$",
    re.IGNORECASE,
)
_PARAM = re.compile(r"(^|[&;])([^=&;]+)=([^&;]*)")
_LIBPQ = re.compile(r"(\b(?:password|passwd|pwd|secret|token|api_key)\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_uri(text: str) -> str:
    """Masks a URI's password and secret-looking parameters; text with nothing to mask is unchanged."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return _LIBPQ.sub(rf"\1{MASK}", text)
    if not parts.scheme or not parts.netloc:
        return _LIBPQ.sub(rf"\1{MASK}", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else netloc
    redacted = (parts.scheme, netloc, parts.path, _mask_params(parts.query), _mask_params(parts.fragment))
    if redacted == (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment):
        return text  # nothing secret: keep the caller's exact spelling
    return urlunsplit(redacted)


def _mask_params(params: str) -> str:
    """Masks values of secret-looking `name=value` pairs, keeping everything else byte for byte."""

    def mask(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        return f"{sep}{name}={MASK}" if value and _SECRET_NAME.search(name) else match.group(0)

    return _PARAM.sub(mask, params)
