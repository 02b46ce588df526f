"""Removes credentials from text that is kept or shown: lineage references, log lines, errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# Parameter names that carry secrets: exact names, or names ending in one of them.
_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:pass(?:word)?|passwd|pwd|secret|token|key|apikey|credentials?|signature|sig|auth)$",
    re.IGNORECASE,
)
# Words that make a free-form key (a lineage attribute) name a secret wherever they appear in it,
# as in "db_password_file" or "authorization_header", besides the names above.
_SECRET_WORD = re.compile(
    r"pass(?:word|wd)|secret|credential|authorization|private[_.-]?key|api[_.-]?key|access[_.-]?key|"
    r"(?:^|[_.-])tokens?(?:$|[_.-])",
    re.IGNORECASE,
)
_PARAM = re.compile(r"(^|[&;])([^=&;]+)=([^&;]*)")
_LIBPQ = re.compile(r"(\b(?:password|passwd|pwd|secret|token|api_key)\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# "scheme://user:password@" anywhere in free text; the password runs to the last "@" before the host.
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#]*@", re.IGNORECASE)


def redact_uri(text: str) -> str:
    """Masks a URI's password and secret-looking parameters; text with nothing to mask is unchanged.

    Text that is not a URI gets libpq-style `password=...` values and passwords of URIs
    embedded in it masked.
    """
    try:
        parts = urlsplit(text)
    except ValueError:
        return _redact_free_text(text)
    if not parts.scheme or not parts.netloc:
        return _redact_free_text(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if has_password else netloc
    redacted = (parts.scheme, netloc, parts.path, _mask_params(parts.query), _mask_params(parts.fragment))
    if redacted == (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment):
        return text  # nothing secret: keep the caller's exact spelling
    return urlunsplit(redacted)


def redact_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Masks whole values under secret-looking keys and credentials inside every other value."""
    return {k: MASK if v and _is_secret_key(k) else redact_uri(v) for k, v in attributes.items()}


def _is_secret_key(name: str) -> bool:
    return bool(_SECRET_NAME.search(name) or _SECRET_WORD.search(name))


def _redact_free_text(text: str) -> str:
    return _USERINFO.sub(rf"\g<1>{MASK}@", _LIBPQ.sub(rf"\1{MASK}", text))


def _mask_params(params: str) -> str:
    """Masks values of secret-looking `name=value` pairs, keeping everything else byte for byte."""

    def mask(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        return f"{sep}{name}={MASK}" if value and _SECRET_NAME.search(name) else match.group(0)

    return _PARAM.sub(mask, params)
