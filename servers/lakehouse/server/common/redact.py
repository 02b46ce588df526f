"""Removes credentials from text that is kept or shown: lineage references, log lines, errors."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_PARAMS = re.compile(r"pass(word)?|pwd|secret|token|key|credential|signature|sig", re.IGNORECASE)
MASK = "***"


def redact_uri(text: str) -> str:
    """Masks a URI's password and secret-looking query parameters; leaves other text alone."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return _redact_key_values(text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = urlencode(
        [(k, MASK if SECRET_PARAMS.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_key_values(text: str) -> str:
    """libpq-style "host=x password=y" strings."""
    return re.sub(r"(\b(?:password|pwd|secret|token)\s*=\s*)(\S+)", rf"\1{MASK}", text, flags=re.IGNORECASE)
