"""Bearer-token authentication: tokens are kept only as SHA-256 digests, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from lakehouse.server.common.config import AuthConfig, ConfigError
from lakehouse.server.common.errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    """Who a call runs as."""

    name: str
    role: str
    profile: str = ""


LOCAL_ADMIN = Principal(name="local-admin", role="admin")
MESH = Principal(name="mesh", role="service")


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    principal: Principal


class TokenAuthenticator:
    """Maps a presented bearer token to its principal, or refuses it."""

    def __init__(self, entries: tuple[_Entry, ...], mesh_token: str = "") -> None:
        self._entries = entries
        self._mesh_token = mesh_token

    @property
    def mesh_authorization(self) -> str:
        """The authorization header services send when they act on their own behalf; empty
        when authentication is off."""
        return f"Bearer {self._mesh_token}" if self._mesh_token else ""

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    @classmethod
    def from_config(cls, auth: AuthConfig, environ: Mapping[str, str] | None = None) -> TokenAuthenticator:
        """Resolves configured hashes and env-var tokens; a named variable that is unset fails start."""
        environ = os.environ if environ is None else environ
        entries = []
        for i, token in enumerate(auth.tokens):
            principal = Principal(token.principal, token.role, token.profile)
            if token.sha256:
                digest = bytes.fromhex(token.sha256)
            else:
                # Secrets mounted from files often end in a newline; presented tokens are stripped too.
                value = environ.get(token.env, "").strip()
                if not value:
                    raise ConfigError(f"auth.tokens.{i}: environment variable {token.env} is unset or empty")
                digest = hashlib.sha256(value.encode()).digest()
            entries.append(_Entry(digest, principal))
        if not entries:
            return cls(())
        mesh_token = _mesh_token(auth, environ)
        entries.append(_Entry(hashlib.sha256(mesh_token.encode()).digest(), MESH))
        return cls(tuple(entries), mesh_token)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `authorization: Bearer <token>` header value."""
        if not self.enabled:
            return LOCAL_ADMIN
        if not authorization:
            raise Unauthenticated("missing bearer token: send 'authorization: Bearer <token>'", reason="MISSING_TOKEN")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization must be 'Bearer <token>'", reason="MALFORMED_TOKEN")
        digest = hashlib.sha256(token.strip().encode()).digest()
        match = None
        # Compare against every entry so timing does not reveal which entry (if any) matched.
        for entry in self._entries:
            if hmac.compare_digest(entry.digest, digest):
                match = entry.principal
        if match is None:
            raise Unauthenticated("token not recognised", reason="INVALID_TOKEN")
        return match


def _mesh_token(auth: AuthConfig, environ: Mapping[str, str]) -> str:
    if not auth.mesh_token_env:
        # Only services of this process can know it: enough for the all-in-one server.
        return secrets.token_urlsafe(32)
    value = environ.get(auth.mesh_token_env, "").strip()
    if not value:
        raise ConfigError(f"auth.mesh_token_env: environment variable {auth.mesh_token_env} is unset or empty")
    return value


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_safe_binding(host: str, authenticator: TokenAuthenticator) -> None:
    """Refuses to expose an unauthenticated server beyond this machine."""
    if not authenticator.enabled and not is_loopback(host):
        raise ConfigError(
            f"refusing to bind {host} with authentication off: anyone who can reach it could read and "
            "change all data. Add tokens under [auth] (sha256 or env) or bind 127.0.0.1."
        )
