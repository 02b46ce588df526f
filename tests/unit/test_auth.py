from __future__ import annotations

import hashlib
import hmac

import pytest

from lakehouse.server.common import auth
from lakehouse.server.common.auth import (
    LOCAL_ADMIN,
    Principal,
    TokenAuthenticator,
    is_loopback,
    require_safe_binding,
)
from lakehouse.server.common.config import AuthConfig, ConfigError, TokenConfig
from lakehouse.server.common.errors import Code, Unauthenticated

OPS_TOKEN = "ops-token-0123456789"
OPS_NEXT_TOKEN = "ops-token-rotated-9876"
BOT_TOKEN = "bot-token-abcdef"


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticator(*tokens: TokenConfig, environ: dict[str, str] | None = None) -> TokenAuthenticator:
    return TokenAuthenticator.from_config(AuthConfig(tokens=tokens), environ or {})


@pytest.fixture
def ops_and_bot() -> TokenAuthenticator:
    """ops has two tokens (rotation: one hashed, one from the environment); bot is an agent."""
    return authenticator(
        TokenConfig(principal="ops", role="admin", sha256=sha256_hex(OPS_TOKEN)),
        TokenConfig(principal="ops", role="admin", env="LAKEHOUSE_OPS_TOKEN"),
        TokenConfig(principal="bot", role="agent", profile="small", env="BOT_TOKEN"),
        environ={"LAKEHOUSE_OPS_TOKEN": OPS_NEXT_TOKEN, "BOT_TOKEN": BOT_TOKEN},
    )


# --- accepted tokens ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(f"Bearer {OPS_TOKEN}", Principal("ops", "admin"), id="sha256-token"),
        pytest.param(f"Bearer {OPS_NEXT_TOKEN}", Principal("ops", "admin"), id="env-token-same-principal"),
        pytest.param(f"Bearer {BOT_TOKEN}", Principal("bot", "agent", "small"), id="second-principal"),
        pytest.param(f"bearer {OPS_TOKEN}", Principal("ops", "admin"), id="scheme-lowercase"),
        pytest.param(f"BEARER {OPS_TOKEN}", Principal("ops", "admin"), id="scheme-uppercase"),
        pytest.param(f"Bearer   {OPS_TOKEN}  ", Principal("ops", "admin"), id="surrounding-spaces"),
    ],
)
def test_known_token_authenticates_as_its_principal(
    ops_and_bot: TokenAuthenticator, header: str, expected: Principal
) -> None:
    assert ops_and_bot.enabled
    assert ops_and_bot.authenticate(header) == expected


def test_rotation_retiring_the_old_token_refuses_it() -> None:
    after_rotation = authenticator(
        TokenConfig(principal="ops", env="LAKEHOUSE_OPS_TOKEN"), environ={"LAKEHOUSE_OPS_TOKEN": OPS_NEXT_TOKEN}
    )

    assert after_rotation.authenticate(f"Bearer {OPS_NEXT_TOKEN}") == Principal("ops", "admin")
    with pytest.raises(Unauthenticated) as info:
        after_rotation.authenticate(f"Bearer {OPS_TOKEN}")
    assert info.value.reason == "INVALID_TOKEN"


def test_token_is_read_from_the_environment_at_start_not_per_call() -> None:
    environ = {"LAKEHOUSE_OPS_TOKEN": OPS_TOKEN}
    authn = authenticator(TokenConfig(principal="ops", env="LAKEHOUSE_OPS_TOKEN"), environ=environ)

    environ["LAKEHOUSE_OPS_TOKEN"] = "changed-later"

    assert authn.authenticate(f"Bearer {OPS_TOKEN}").name == "ops"


# --- refused calls ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "MISSING_TOKEN", id="no-header"),
        pytest.param("", "MISSING_TOKEN", id="empty-header"),
        pytest.param("Bearer", "MALFORMED_TOKEN", id="scheme-only"),
        pytest.param("Bearer ", "MALFORMED_TOKEN", id="scheme-and-space"),
        pytest.param("Bearer     ", "MALFORMED_TOKEN", id="scheme-and-blanks"),
        pytest.param(OPS_TOKEN, "MALFORMED_TOKEN", id="token-without-scheme"),
        pytest.param(f"Basic {OPS_TOKEN}", "MALFORMED_TOKEN", id="basic-scheme"),
        pytest.param(f"Token {OPS_TOKEN}", "MALFORMED_TOKEN", id="other-scheme"),
        pytest.param(f"Bearer\t{OPS_TOKEN}", "MALFORMED_TOKEN", id="tab-separator"),
        pytest.param("Bearer not-a-known-token", "INVALID_TOKEN", id="unknown-token"),
        pytest.param(f"Bearer {OPS_TOKEN.upper()}", "INVALID_TOKEN", id="case-changed-token"),
        pytest.param(f"Bearer {OPS_TOKEN[:-1]}", "INVALID_TOKEN", id="truncated-token"),
        pytest.param(f"Bearer {sha256_hex(OPS_TOKEN)}", "INVALID_TOKEN", id="the-hash-itself"),
    ],
)
def test_bad_credentials_are_unauthenticated_with_a_reason(
    ops_and_bot: TokenAuthenticator, header: str | None, reason: str
) -> None:
    with pytest.raises(Unauthenticated) as info:
        ops_and_bot.authenticate(header)

    assert info.value.code == Code.UNAUTHENTICATED
    assert info.value.reason == reason


def test_missing_token_message_says_what_to_send(ops_and_bot: TokenAuthenticator) -> None:
    with pytest.raises(Unauthenticated) as info:
        ops_and_bot.authenticate(None)

    assert "authorization: Bearer <token>" in info.value.message


def test_refusal_does_not_echo_the_presented_token(ops_and_bot: TokenAuthenticator) -> None:
    with pytest.raises(Unauthenticated) as info:
        ops_and_bot.authenticate("Bearer guessed-secret-value")

    assert "guessed-secret-value" not in str(info.value)


def test_every_entry_is_compared_in_constant_time(
    ops_and_bot: TokenAuthenticator, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)

    # The match is the first entry: the remaining entries (the mesh token's too) must still be compared.
    assert ops_and_bot.authenticate(f"Bearer {OPS_TOKEN}").name == "ops"
    assert len(calls) == 4
    calls.clear()
    with pytest.raises(Unauthenticated):
        ops_and_bot.authenticate("Bearer wrong")
    assert len(calls) == 4


# --- authentication off ------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "garbage", "Bearer anything"])
def test_no_tokens_means_every_caller_is_the_local_admin(header: str | None) -> None:
    authn = authenticator()

    assert not authn.enabled
    assert authn.authenticate(header) == LOCAL_ADMIN
    assert (LOCAL_ADMIN.name, LOCAL_ADMIN.role) == ("local-admin", "admin")


# --- start-up failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"BOT_TOKEN": BOT_TOKEN}, id="unset"),
        pytest.param({"BOT_TOKEN": BOT_TOKEN, "LAKEHOUSE_OPS_TOKEN": ""}, id="empty"),
    ],
)
def test_unset_token_variable_fails_start_naming_it_without_secrets(environ: dict[str, str]) -> None:
    ops_hash = sha256_hex(OPS_TOKEN)

    with pytest.raises(ConfigError) as info:
        authenticator(
            TokenConfig(principal="ops", sha256=ops_hash),
            TokenConfig(principal="ops", env="LAKEHOUSE_OPS_TOKEN"),
            TokenConfig(principal="bot", role="agent", profile="small", env="BOT_TOKEN"),
            environ=environ,
        )

    message = str(info.value)
    assert "LAKEHOUSE_OPS_TOKEN" in message
    assert "auth.tokens.1" in message
    assert "unset or empty" in message
    for secret in (OPS_TOKEN, ops_hash, BOT_TOKEN):
        assert secret not in message


# --- loopback and safe binding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("[::]", False),
        ("10.0.0.5", False),
        ("192.168.1.10", False),
        ("128.0.0.1", False),
        ("fe80::1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "10.0.0.5", "192.168.1.10", "lakehouse.internal"])
def test_exposed_binding_without_tokens_is_refused_with_an_explanation(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        require_safe_binding(host, authenticator())

    message = str(info.value)
    assert host in message
    assert "authentication off" in message
    assert "[auth]" in message
    assert "127.0.0.1" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binding_without_tokens_is_allowed(host: str) -> None:
    require_safe_binding(host, authenticator())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5"])
def test_exposed_binding_with_tokens_is_allowed(host: str, ops_and_bot: TokenAuthenticator) -> None:
    require_safe_binding(host, ops_and_bot)
