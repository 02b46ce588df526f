from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from lakehouse.server.common.config import (
    AuthConfig,
    BucketConfig,
    CatalogConfig,
    Config,
    ConfigError,
    MeshConfig,
    S3Config,
    ServerConfig,
    StorageConfig,
    TokenConfig,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "lakehouse.toml"
HASH = "ab" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lakehouse.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return str(info.value)


# --- defaults and the shipped lakehouse.toml -----------------------------------


def test_no_file_gives_the_documented_defaults() -> None:
    config = load_config(None, {})

    assert config == Config()
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 50051
    assert config.server.flight_port == 50052
    assert config.server.data_dir == "./data"
    assert config.server.grace_period_s == 10.0
    assert config.server.blocking_workers == 8
    assert config.server.reflection is True
    assert config.server.max_message_mb == 64
    assert (config.server.log_level, config.server.log_format) == ("INFO", "text")
    assert config.mesh.timeout_s == 10.0
    assert all(
        config.mesh.address_of(name) == "" for name in ("storage", "catalog", "query", "vector", "memory", "chat")
    )
    assert config.auth.tokens == ()
    assert config.storage.default_bucket == "default"
    assert dict(config.storage.buckets) == {"default": BucketConfig(uri="", max_bytes=0)}
    assert config.storage.s3.region == "us-east-1"
    assert config.catalog.url == ""


def test_shipped_lakehouse_toml_loads_and_equals_the_defaults() -> None:
    assert load_config(SHIPPED, {}) == load_config(None, {})


def _differences(raw: dict[str, Any], defaults: object, where: str) -> list[str]:
    """Every key of the shipped file whose value is not the default of the same field."""
    found = []
    for key, value in raw.items():
        dotted = f"{where}.{key}" if where else key
        if isinstance(defaults, Mapping):
            expected = defaults.get(key, "<not declared by default>")
        else:
            expected = getattr(defaults, key, "<no such field>")
        if isinstance(value, dict):
            found += _differences(value, expected, dotted)
        elif value != (list(expected) if isinstance(expected, tuple) else expected):
            found.append(f"{dotted} = {value!r}, default is {expected!r}")
    return found


def test_every_value_in_the_shipped_file_is_the_default() -> None:
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))

    assert set(raw) == {f.name for f in dataclasses.fields(Config)}
    assert _differences(raw, Config(), "") == []


def test_shipped_file_mentions_every_setting() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    sections = (ServerConfig, MeshConfig, TokenConfig, StorageConfig, BucketConfig, S3Config, CatalogConfig)
    missing = [
        f"{cls.__name__}.{f.name}"
        for cls in sections
        for f in dataclasses.fields(cls)
        if f.name not in ("buckets", "s3") and f"{f.name} =" not in text
    ]
    assert missing == []


def test_shipped_file_names_the_environment_override_syntax() -> None:
    assert "LAKEHOUSE_SERVER__PORT" in SHIPPED.read_text(encoding="utf-8")


# --- values from a file -----------------------------------------------------------


def test_file_values_replace_defaults_and_leave_the_rest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
port = 6000
log_format = "json"

[storage]
default_bucket = "lake"

[storage.buckets.lake]
uri = "s3://lake/prefix"
max_bytes = 1048576

[catalog]
url = "postgresql+psycopg://lake@db/lake"
""",
    )

    config = load_config(path, {})

    assert config.server.port == 6000
    assert config.server.log_format == "json"
    assert config.server.host == "127.0.0.1"
    assert config.storage.default_bucket == "lake"
    assert dict(config.storage.buckets) == {"lake": BucketConfig(uri="s3://lake/prefix", max_bytes=1048576)}
    assert config.catalog_url == "postgresql+psycopg://lake@db/lake"


def test_tokens_with_a_hash_or_an_env_var_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[[auth.tokens]]
principal = "ops"
sha256 = "{HASH}"

[[auth.tokens]]
principal = "ops"
env = "LAKEHOUSE_OPS_TOKEN"

[[auth.tokens]]
principal = "bot"
role = "agent"
profile = "small"
env = "BOT_TOKEN"
""",
    )

    tokens = load_config(path, {}).auth.tokens

    assert tokens == (
        TokenConfig(principal="ops", role="admin", sha256=HASH),
        TokenConfig(principal="ops", env="LAKEHOUSE_OPS_TOKEN"),
        TokenConfig(principal="bot", role="agent", profile="small", env="BOT_TOKEN"),
    )


# --- invalid files: the message names the file, the dotted key and the reason -------------

INVALID = [
    pytest.param("[server]\nport = 70000\n", "server.port", "less than or equal to 65535", id="port-too-big"),
    pytest.param("[server]\nport = -1\n", "server.port", "greater than or equal to 0", id="port-negative"),
    pytest.param("[server]\nport = 'http'\n", "server.port", "valid integer", id="port-not-a-number"),
    pytest.param("[server]\nprot = 1\n", "server.prot", "unknown key", id="unknown-key"),
    pytest.param("[servr]\nport = 1\n", "servr", "unknown key", id="unknown-section"),
    pytest.param(
        "[storage.buckets.default]\nsize = 1\n", "storage.buckets.default.size", "unknown key", id="unknown-nested-key"
    ),
    pytest.param("[storage.s3]\nbucket = 'x'\n", "storage.s3.bucket", "unknown key", id="unknown-s3-key"),
    pytest.param("[server]\nlog_level = 'debug'\n", "server.log_level", "(got 'debug')", id="log-level-case"),
    pytest.param("[server]\nlog_format = 'xml'\n", "server.log_format", "'text' or 'json'", id="log-format"),
    pytest.param(
        "[server]\nblocking_workers = 0\n", "server.blocking_workers", "greater than or equal to 1", id="no-workers"
    ),
    pytest.param(
        "[server]\nblocking_workers = 1.5\n", "server.blocking_workers", "fractional part", id="fractional-workers"
    ),
    pytest.param("[server]\ndata_dir = 5\n", "server.data_dir", "valid string", id="data-dir-number"),
    pytest.param("[server]\nreflection = 'maybe'\n", "server.reflection", "valid boolean", id="reflection-maybe"),
    pytest.param("[mesh]\ntimeout_s = 0\n", "mesh.timeout_s", "greater than 0", id="zero-timeout"),
    pytest.param(
        "[storage.buckets.default]\nmax_bytes = -1\n",
        "storage.buckets.default.max_bytes",
        "greater than or equal to 0",
        id="negative-quota",
    ),
    pytest.param("[storage.buckets]\ndefault = 1\n", "storage.buckets.default", "(got 1)", id="bucket-not-a-table"),
    pytest.param("server = 1\n", "server", "(got 1)", id="section-not-a-table"),
    pytest.param("[auth]\ntokens = 1\n", "auth.tokens", "(got 1)", id="tokens-not-a-list"),
    pytest.param(
        "[[auth.tokens]]\nprincipal = 'ops'\nsha256 = 'ABC'\n", "auth.tokens.0.sha256", "(got 'ABC')", id="hash-not-hex"
    ),
    pytest.param(
        f"[[auth.tokens]]\nprincipal = 'ops'\nsha256 = '{HASH.upper()}'\n",
        "auth.tokens.0.sha256",
        "should match pattern",
        id="hash-uppercase",
    ),
    pytest.param(
        f"[[auth.tokens]]\nprincipal = 'ops'\nrole = 'root'\nsha256 = '{HASH}'\n",
        "auth.tokens.0.role",
        "'admin', 'writer', 'reader' or 'agent'",
        id="unknown-role",
    ),
    pytest.param(f"[[auth.tokens]]\nsha256 = '{HASH}'\n", "auth.tokens.0.principal", "required", id="no-principal"),
    pytest.param(
        f"[[auth.tokens]]\nprincipal = 'ops'\nsha256 = '{HASH}'\ntoken = 'plain'\n",
        "auth.tokens.0.token",
        "unknown key",
        id="plaintext-token-key",
    ),
    pytest.param(
        "[storage]\ndefault_bucket = 'missing'\n",
        "storage",
        "default_bucket 'missing' is not declared in [storage.buckets]",
        id="undeclared-default-bucket",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), INVALID)
def test_invalid_file_names_file_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = write(tmp_path, text)

    message = error_of(path)

    assert f"{path}: {key}: " in message
    assert reason in message


TOKEN_SOURCES = [
    pytest.param("principal = 'ops'\n", id="neither"),
    pytest.param(f"principal = 'ops'\nsha256 = '{HASH}'\nenv = 'OPS_TOKEN'\n", id="both"),
]


@pytest.mark.parametrize("body", TOKEN_SOURCES)
def test_token_needs_exactly_one_of_sha256_or_env(tmp_path: Path, body: str) -> None:
    path = write(tmp_path, f"[[auth.tokens]]\nprincipal = 'ok'\nenv = 'OK_TOKEN'\n\n[[auth.tokens]]\n{body}")

    message = error_of(path)

    assert f"{path}: auth.tokens.1: " in message
    assert "exactly one of sha256 or env" in message
    assert "auth.tokens.0" not in message


def test_every_invalid_key_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 70000\nlog_level = 'loud'\n\n[mesh]\nsotrage = 'x:1'\n")

    message = error_of(path)

    assert f"{path}: server.port: " in message
    assert f"{path}: server.log_level: " in message
    assert f"{path}: mesh.sotrage: unknown key" in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[server\nport = 1\n", id="unclosed-table"),
        pytest.param("[server]\nport = \n", id="missing-value"),
        pytest.param("[server]\nport = 1\nport = 2\n", id="duplicate-key"),
        pytest.param("[server]\n[server]\n", id="duplicate-table"),
    ],
)
def test_toml_syntax_error_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)

    message = error_of(path)

    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line" in message


def test_missing_file_names_the_path_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "lakehouse.toml"

    message = error_of(path)

    assert message.startswith(f"{path}: file not found")
    assert "--config" in message


# --- LAKEHOUSE_SECTION__KEY overrides ------------------------------------------------

OVERRIDES: list[Any] = [
    pytest.param("LAKEHOUSE_SERVER__PORT", "50061", lambda c: c.server.port, 50061, id="int"),
    pytest.param("LAKEHOUSE_SERVER__HOST", "0.0.0.0", lambda c: c.server.host, "0.0.0.0", id="str"),
    pytest.param("LAKEHOUSE_SERVER__REFLECTION", "false", lambda c: c.server.reflection, False, id="bool"),
    pytest.param("LAKEHOUSE_SERVER__GRACE_PERIOD_S", "2.5", lambda c: c.server.grace_period_s, 2.5, id="float"),
    pytest.param("LAKEHOUSE_SERVER__LOG_LEVEL", "DEBUG", lambda c: c.server.log_level, "DEBUG", id="literal"),
    pytest.param(
        "LAKEHOUSE_MESH__STORAGE", "storage:50051", lambda c: c.mesh.address_of("storage"), "storage:50051", id="mesh"
    ),
    pytest.param(
        "LAKEHOUSE_CATALOG__URL",
        "postgresql+psycopg://db/x",
        lambda c: c.catalog.url,
        "postgresql+psycopg://db/x",
        id="catalog",
    ),
    pytest.param(
        "LAKEHOUSE_STORAGE__S3__ENDPOINT",
        "http://127.0.0.1:9000",
        lambda c: c.storage.s3.endpoint,
        "http://127.0.0.1:9000",
        id="nested",
    ),
    pytest.param(
        "LAKEHOUSE_STORAGE__BUCKETS__DEFAULT__MAX_BYTES",
        "4096",
        lambda c: c.storage.buckets["default"].max_bytes,
        4096,
        id="bucket",
    ),
]


@pytest.mark.parametrize(("name", "value", "read", "expected"), OVERRIDES)
def test_environment_overrides_a_key(name: str, value: str, read: Callable[[Config], object], expected: object) -> None:
    assert read(load_config(SHIPPED, {name: value})) == expected


def test_environment_wins_over_the_file_and_keeps_its_other_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 6000\nflight_port = 6001\n")

    config = load_config(path, {"LAKEHOUSE_SERVER__PORT": "7000"})

    assert (config.server.port, config.server.flight_port) == (7000, 6001)


def test_os_environ_is_read_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_SERVER__PORT", "50999")

    assert load_config(None).server.port == 50999


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"LAKEHOUSE_PORT": "1"}, id="no-double-underscore"),
        pytest.param({"SERVER__PORT": "1"}, id="no-prefix"),
        pytest.param({"lakehouse_server__port": "1"}, id="lowercase-prefix"),
        pytest.param({"HOME": "/root", "PATH": "/bin"}, id="unrelated"),
    ],
)
def test_other_variables_are_ignored(environ: dict[str, str]) -> None:
    assert load_config(None, environ) == Config()


@pytest.mark.parametrize(
    ("name", "value", "key", "reason"),
    [
        pytest.param("LAKEHOUSE_SERVER__PORT", "abc", "server.port", "(got 'abc')", id="bad-value"),
        pytest.param(
            "LAKEHOUSE_SERVER__PORT", "99999", "server.port", "less than or equal to 65535", id="out-of-range"
        ),
        pytest.param("LAKEHOUSE_SERVER__NOPE", "1", "server.nope", "unknown key", id="unknown-key"),
        pytest.param("LAKEHOUSE_MESH__TIMEOUT_S", "-1", "mesh.timeout_s", "greater than 0", id="negative-timeout"),
    ],
)
def test_invalid_override_names_the_variable_not_the_file(
    tmp_path: Path, name: str, value: str, key: str, reason: str
) -> None:
    path = write(tmp_path, "[server]\nport = 6000\n")

    message = error_of(path, {name: value})

    assert f"{name}: {key}: " in message
    assert reason in message
    assert str(path) not in message


def test_override_below_a_scalar_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 6000\n")

    message = error_of(path, {"LAKEHOUSE_SERVER__PORT__X": "1"})

    assert message.startswith("LAKEHOUSE_SERVER__PORT__X: ")
    assert "server.port is not a table" in message


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        pytest.param("LAKEHOUSE_SERVR__PORT", "1", "servr", id="unknown-section"),
        pytest.param("LAKEHOUSE_STORAGE__DEFAULT_BUCKET", "missing", "storage", id="undeclared-default-bucket"),
    ],
)
def test_section_level_error_from_a_variable_names_the_variable(
    tmp_path: Path, name: str, value: str, key: str
) -> None:
    path = write(tmp_path, "[server]\nport = 6000\n")

    message = error_of(path, {name: value})

    assert f"{name}: {key}: " in message
    assert str(path) not in message


# --- frozen -----------------------------------------------------------------------

FROZEN: list[Any] = [
    pytest.param(lambda c: c, "server", id="config"),
    pytest.param(lambda c: c.server, "port", id="server"),
    pytest.param(lambda c: c.mesh, "storage", id="mesh"),
    pytest.param(lambda c: c.auth, "tokens", id="auth"),
    pytest.param(lambda c: c.auth.tokens[0], "sha256", id="token"),
    pytest.param(lambda c: c.storage, "default_bucket", id="storage"),
    pytest.param(lambda c: c.storage.buckets["default"], "max_bytes", id="bucket"),
    pytest.param(lambda c: c.storage.s3, "endpoint", id="s3"),
    pytest.param(lambda c: c.catalog, "url", id="catalog"),
]


@pytest.fixture
def config_with_token(tmp_path: Path) -> Config:
    return load_config(write(tmp_path, f"[[auth.tokens]]\nprincipal = 'ops'\nsha256 = '{HASH}'\n"), {})


@pytest.mark.parametrize(("part", "name"), FROZEN)
def test_assigning_a_field_raises(config_with_token: Config, part: Callable[[Config], object], name: str) -> None:
    target = part(config_with_token)
    before = getattr(target, name)

    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(target, name, before if name == "server" else 1)

    assert getattr(target, name) == before


def test_tokens_are_held_in_a_tuple(config_with_token: Config) -> None:
    assert isinstance(config_with_token.auth.tokens, tuple)


def test_declared_buckets_cannot_be_changed_in_place() -> None:
    config = load_config(None, {})

    with pytest.raises(TypeError):
        config.storage.buckets["other"] = BucketConfig()  # type: ignore[index]

    assert set(config.storage.buckets) == {"default"}


def test_with_server_returns_a_changed_copy() -> None:
    config = load_config(None, {})

    changed = config.with_server(port=0, host="::1")

    assert (changed.server.port, changed.server.host) == (0, "::1")
    assert config.server.port == 50051
    assert changed.storage == config.storage


# --- derived values ------------------------------------------------------------------


def test_catalog_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(None, {"LAKEHOUSE_SERVER__DATA_DIR": str(tmp_path / "lake")})

    assert config.data_dir == (tmp_path / "lake").resolve()
    assert config.catalog_url == f"sqlite:///{(tmp_path / 'lake').resolve() / 'catalog.db'}"


def test_data_dir_is_absolute_with_home_expanded() -> None:
    config = load_config(None, {"LAKEHOUSE_SERVER__DATA_DIR": "~/lake"})

    assert config.data_dir == (Path.home() / "lake").resolve()
    assert load_config(None, {}).data_dir.is_absolute()


def test_sections_compose_into_the_config() -> None:
    assert Config() == Config(
        server=ServerConfig(),
        mesh=MeshConfig(),
        auth=AuthConfig(),
        storage=StorageConfig(),
        catalog=CatalogConfig(),
    )


# --- [chat] -----------------------------------------------------------------------


def test_chat_providers_are_read_with_their_routing_names(tmp_path: Path) -> None:
    path = tmp_path / "lakehouse.toml"
    path.write_text(
        '[chat.providers.local]\nkind = "ollama"\nbase_url = "http://127.0.0.1:11434/"\ndefault_model = "llama3.2"\n'
        '[chat.providers.openrouter]\nkind = "openai"\nbase_url = "https://openrouter.ai/api"\n'
        'api_key_env = "OPENROUTER_API_KEY"\n[chat]\ndefault_provider = "local"\n'
    )
    chat = load_config(path, {}).chat
    assert chat.default_provider_name == "local"
    assert chat.providers["local"].base_url == "http://127.0.0.1:11434"
    assert chat.providers["openrouter"].api_key_env == "OPENROUTER_API_KEY"


def test_one_provider_is_the_default_and_none_means_no_default() -> None:
    one = Config(chat={"providers": {"only": {"kind": "openai", "base_url": "http://x"}}})  # type: ignore[arg-type]
    assert one.chat.default_provider_name == "only"
    assert Config().chat.default_provider_name == ""


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[chat]\ndefault_provider = "gone"\n', "not declared in [chat.providers]"),
        ('[chat.providers."Bad/Name"]\nkind = "ollama"\nbase_url = "http://x"\n', "routing prefix"),
        ('[chat.providers.x]\nkind = "anthropic"\nbase_url = "http://x"\n', "chat.providers.x.kind"),
        ('[chat.providers.x]\nkind = "ollama"\nbase_url = "ftp://x"\n', "http:// or https://"),
        ('[chat.providers.x]\nkind = "ollama"\nbase_url = "http://x"\napi_key = "sk-1"\n', "unknown key"),
    ],
)
def test_invalid_chat_settings_are_refused_at_start(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "lakehouse.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    assert reason in str(err.value)


def test_a_provider_can_be_added_from_the_environment() -> None:
    environ = {
        "LAKEHOUSE_CHAT__PROVIDERS__VLLM__KIND": "openai",
        "LAKEHOUSE_CHAT__PROVIDERS__VLLM__BASE_URL": "http://gpu:8000/v1",
    }
    assert load_config(None, environ).chat.providers["vllm"].base_url == "http://gpu:8000/v1"
