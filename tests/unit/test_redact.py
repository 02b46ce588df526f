from __future__ import annotations

import pytest

from lakehouse.server.common.redact import MASK, redact_attributes, redact_uri

# (text, secret that must disappear, what must be kept, expected output)
MASKED = [
    pytest.param(
        "postgresql://user:secret@host/db",
        "secret",
        "postgresql://user:***@host/db",
        id="postgres-password",
    ),
    pytest.param(
        "postgresql+psycopg://lake:s3cr3t@db.internal:5432/catalog?sslmode=require",
        "s3cr3t",
        "postgresql+psycopg://lake:***@db.internal:5432/catalog?sslmode=require",
        id="driver-port-and-query-kept",
    ),
    pytest.param("mysql://app:p%40ss@host/db", "p%40ss", "mysql://app:***@host/db", id="percent-encoded-password"),
    pytest.param("redis://:hunter2@cache:6379/0", "hunter2", "redis://:***@cache:6379/0", id="password-without-user"),
    pytest.param("https://u:pa@ss@host/x", "pa@ss", "https://u:***@host/x", id="at-sign-in-password"),
    pytest.param(
        "https://example.com/export?password=hunter2&format=csv",
        "hunter2",
        "https://example.com/export?password=***&format=csv",
        id="password-param",
    ),
    pytest.param(
        "https://api.example.com/v1/rows?token=t0k3n&page=2",
        "t0k3n",
        "https://api.example.com/v1/rows?token=***&page=2",
        id="token-param",
    ),
    pytest.param(
        "https://api.example.com/rows?api_key=k3y-value",
        "k3y-value",
        "https://api.example.com/rows?api_key=***",
        id="api-key-param",
    ),
    pytest.param(
        "https://h/cb?access_token=zzz-access#section",
        "zzz-access",
        "https://h/cb?access_token=***#section",
        id="access-token-param-fragment-kept",
    ),
    pytest.param(
        "https://bucket.s3.amazonaws.com/key.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20240101&X-Amz-Signature=deadbeefcafe",
        "deadbeefcafe",
        "https://bucket.s3.amazonaws.com/key.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Signature=***",
        id="presigned-s3",
    ),
    pytest.param(
        "https://h/p?X-Amz-Security-Token=sessiontok",
        "sessiontok",
        "https://h/p?X-Amz-Security-Token=***",
        id="s3-session-token",
    ),
    pytest.param(
        "https://acct.blob.core.windows.net/c/b?sv=2022&sig=azuresig",
        "azuresig",
        "https://acct.blob.core.windows.net/c/b?sv=2022&sig=***",
        id="azure-sas-sig",
    ),
    pytest.param(
        "host=db.internal port=5432 user=lake password=hunter2 dbname=catalog",
        "hunter2",
        "host=db.internal port=5432 user=lake password=*** dbname=catalog",
        id="libpq-keywords",
    ),
    pytest.param("dbname=x PASSWORD=Hunter2", "Hunter2", "dbname=x PASSWORD=***", id="libpq-uppercase"),
    pytest.param("host=h password = hunter2", "hunter2", "host=h password = ***", id="libpq-spaces-around-equals"),
    pytest.param("host=h pwd=hunter2 user=u", "hunter2", "host=h pwd=*** user=u", id="odbc-pwd"),
    pytest.param(
        "nightly load from postgresql://bob:hunter2@db/x at 02:00",
        "hunter2",
        "nightly load from postgresql://bob:***@db/x at 02:00",
        id="uri-inside-free-text",
    ),
    pytest.param(
        "copy https://u:pa@ss@host/x then s3://b/k",
        "pa@ss",
        "copy https://u:***@host/x then s3://b/k",
        id="at-sign-in-password-inside-free-text",
    ),
]


@pytest.mark.parametrize(("text", "secret", "expected"), MASKED)
def test_credentials_are_masked_and_the_rest_kept(text: str, secret: str, expected: str) -> None:
    redacted = redact_uri(text)

    assert secret not in redacted
    assert MASK in redacted
    assert redacted == expected


def test_user_name_is_kept_when_the_password_is_masked() -> None:
    redacted = redact_uri("postgresql://analyst:secret@host/db")

    assert "analyst" in redacted
    assert "secret" not in redacted


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain text with no credentials",
        "orders.csv",
        "s3://bucket/prefix/part-0000.parquet",
        "file:///var/lib/lakehouse/data.parquet",
        "sqlite:///data/catalog.db",
        "postgresql://user@host/db",
        "postgresql://host:5432/db",
        "https://example.com/data.csv?format=csv&page=2",
        "https://example.com/a?b=c&d=e#frag",
        "host=db.internal port=5432 user=lake dbname=catalog",
        "SELECT * FROM orders WHERE id = 1",
        "copied from https://host:443/data.csv by ana@example.com",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_uri(text) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("host=db password='correct horse battery' dbname=x", id="quoted-with-spaces"),
        pytest.param("host=db password = 'correct horse battery'", id="quoted-spaces-around-equals"),
    ],
)
def test_quoted_libpq_password_is_masked_entirely(text: str) -> None:
    redacted = redact_uri(text)

    for word in ("correct", "horse", "battery"):
        assert word not in redacted


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("https://example.com/search?q=big%20data", id="percent-encoded-space"),
        pytest.param("https://example.com/export?flag&format=csv", id="bare-flag"),
    ],
)
def test_uri_without_credentials_keeps_its_exact_query(text: str) -> None:
    assert redact_uri(text) == text


def test_attributes_under_secret_looking_keys_are_masked_entirely() -> None:
    attributes = {
        "db_password": "hunter2",
        "api-token": "t0k3n",
        "aws_secret_access_key": "wJalr",
        "Authorization": "Bearer abc",
        "password_file": "/run/secrets/pw",
        "github_token_value": "ghp_x",
        "empty_password": "",
        "keyboard_layout": "us",
        "tokenizer": "bpe",
        "authorized_by": "ana",
    }

    assert redact_attributes(attributes) == {
        "db_password": MASK,
        "api-token": MASK,
        "aws_secret_access_key": MASK,
        "Authorization": MASK,
        "password_file": MASK,
        "github_token_value": MASK,
        "empty_password": "",
        "keyboard_layout": "us",
        "tokenizer": "bpe",
        "authorized_by": "ana",
    }


def test_attribute_values_lose_embedded_credentials_and_keep_the_rest() -> None:
    attributes = {"dsn": "postgresql://bob:hunter2@db/x", "conn": "host=db password=hunter2", "team": "hr"}

    assert redact_attributes(attributes) == {
        "dsn": "postgresql://bob:***@db/x",
        "conn": "host=db password=***",
        "team": "hr",
    }
