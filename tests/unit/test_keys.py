from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from lakehouse.server.common.config import ConfigError, load_config
from lakehouse.server.common.errors import Code, InvalidArgument
from lakehouse.server.storage.keys import (
    MAX_KEY_BYTES,
    MAX_LOCAL_SEGMENT_BYTES,
    check_bucket_name,
    check_key,
    check_local_segments,
    check_prefix,
)


def refusal(call: Callable[..., object], *args: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        call(*args)
    return info.value


# --- object keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "report.csv",
        "datasets/orders/part-0000.parquet",
        "a b/c d",
        ".hidden",
        "a/.b",
        "...",
        "..a",
        "a..",
        "a/.../b",
        "_lakehouse2/x",
        "_lakehousex",
        "x/_lakehouse/y",
        "_Lakehouse/x",
        "é漢字/🙂.txt",
        "a" * MAX_KEY_BYTES,
        "é" * (MAX_KEY_BYTES // 2),
    ],
)
def test_safe_key_is_returned_unchanged(key: str) -> None:
    assert check_key(key) == key


INVALID_KEYS = [
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("a" * (MAX_KEY_BYTES + 1), "at most 1024 bytes of UTF-8", id="1025-ascii"),
    pytest.param("é" * 513, "at most 1024 bytes of UTF-8", id="513-two-byte-chars"),
    pytest.param("🙂" * 257, "at most 1024 bytes of UTF-8", id="257-four-byte-chars"),
    pytest.param("a\x00b", "control characters", id="nul"),
    pytest.param("a\x7fb", "control characters", id="del"),
    pytest.param("a\nb", "control characters", id="newline"),
    pytest.param("\tb", "control characters", id="tab"),
    pytest.param("a\x1b[31m", "control characters", id="escape"),
    pytest.param("a\x85b", "control characters", id="c1-next-line"),
    pytest.param("a\ud800b", "lone surrogates", id="lone-surrogate"),
    pytest.param("/a", "must not start with '/'", id="absolute"),
    pytest.param("/", "must not start with '/'", id="root"),
    pytest.param(".", "'.' or '..' path segments", id="dot"),
    pytest.param("..", "'.' or '..' path segments", id="dotdot"),
    pytest.param("./a", "'.' or '..' path segments", id="leading-dot"),
    pytest.param("a/./b", "'.' or '..' path segments", id="inner-dot"),
    pytest.param("../etc/passwd", "'.' or '..' path segments", id="leading-dotdot"),
    pytest.param("a/../../b", "'.' or '..' path segments", id="inner-dotdot"),
    pytest.param("a/..", "'.' or '..' path segments", id="trailing-dotdot"),
    pytest.param("a//b", "empty path segments", id="double-slash"),
    pytest.param("a/", "empty path segments", id="trailing-slash"),
    pytest.param("_lakehouse/meta.json", "reserved for the server", id="reserved-prefix"),
    pytest.param("_lakehouse", "reserved for the server", id="reserved-directory"),
]


@pytest.mark.parametrize(("key", "why"), INVALID_KEYS)
def test_unsafe_key_is_refused_naming_the_field(key: str, why: str) -> None:
    error = refusal(check_key, key, "header.key")

    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "INVALID_OBJECT_KEY"
    assert error.violations[0].field == "header.key"
    assert why in error.violations[0].description
    assert error.message.startswith("header.key: ")


def test_key_field_defaults_to_key() -> None:
    assert refusal(check_key, "").violations[0].field == "key"


def test_key_length_counts_utf8_bytes_not_characters() -> None:
    three_byte = "漢"
    fits = three_byte * (MAX_KEY_BYTES // 3) + "a"  # 1024 bytes, 342 characters

    assert check_key(fits) == fits
    assert refusal(check_key, fits + "a").reason == "INVALID_OBJECT_KEY"


def _follows_the_rules(key: str) -> bool:
    segments = key.split("/")
    return (
        key != ""
        and not key.startswith("/")
        and "" not in segments
        and "." not in segments
        and ".." not in segments
        and "\x00" not in key
        and segments[0] != "_lakehouse"
    )


def test_exhaustively_accepted_keys_never_escape_the_bucket() -> None:
    # Hypothesis is not installed: every string of up to 6 characters over an alphabet that
    # exercises each rule stands in for the property "accepted keys split into safe segments".
    alphabet = ("a", ".", "/", "\x00", "_lakehouse")
    accepted = refused = 0
    for length in range(7):
        for parts in itertools.product(alphabet, repeat=length):
            key = "".join(parts)
            try:
                check_key(key)
            except InvalidArgument:
                refused += 1
                assert not _follows_the_rules(key), f"refused a safe key: {key!r}"
                continue
            accepted += 1
            segments = key.split("/")
            assert not key.startswith("/"), key
            assert ".." not in segments and "." not in segments and "" not in segments, key
            assert _follows_the_rules(key), f"accepted an unsafe key: {key!r}"
    assert accepted > 100 and refused > 100


# --- local-disk segment limit ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a" * MAX_LOCAL_SEGMENT_BYTES,
        "dir/" + "a" * MAX_LOCAL_SEGMENT_BYTES,
        "/".join(["a" * MAX_LOCAL_SEGMENT_BYTES] * 3),
        "é" * (MAX_LOCAL_SEGMENT_BYTES // 2),
    ],
)
def test_local_segments_within_255_bytes_pass(key: str) -> None:
    check_local_segments(key)


@pytest.mark.parametrize(
    "key",
    [
        "a" * (MAX_LOCAL_SEGMENT_BYTES + 1),
        "dir/" + "a" * (MAX_LOCAL_SEGMENT_BYTES + 1) + "/file",
        "é" * 128,  # 128 characters, 256 bytes
    ],
)
def test_local_segment_over_255_bytes_is_refused(key: str) -> None:
    error = refusal(check_local_segments, key, "object.key")

    assert error.reason == "INVALID_OBJECT_KEY"
    assert error.violations[0].field == "object.key"
    assert "255 bytes" in error.message
    assert check_key(key) == key  # S3 has no such limit: the generic check accepts it


# --- listing prefixes --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "a", "a/", "datasets/orders/", "datasets/ord", ".hidden/", "_lake"])
def test_listing_prefix_is_returned_unchanged(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        pytest.param("/", "must not start with '/'", id="root"),
        pytest.param("//", "must not start with '/'", id="slashes"),
        pytest.param("/data/", "must not start with '/'", id="absolute"),
        pytest.param("../", "'.' or '..' path segments", id="parent"),
        pytest.param("a/../", "'.' or '..' path segments", id="inner-parent"),
        pytest.param("a//b/", "empty path segments", id="double-slash"),
        pytest.param("_lakehouse/", "reserved for the server", id="reserved"),
        pytest.param("a\x00/", "control characters", id="nul"),
    ],
)
def test_unsafe_listing_prefix_is_refused_naming_prefix(prefix: str, why: str) -> None:
    error = refusal(check_prefix, prefix)

    assert error.reason == "INVALID_OBJECT_KEY"
    assert error.violations[0].field == "prefix"
    assert why in error.message


# --- bucket names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "default", "my-bucket-1", "a-b", "a" * 63, "a0-9"])
def test_valid_bucket_name_is_returned(name: str) -> None:
    assert check_bucket_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("ab", id="two-characters"),
        pytest.param("a" * 64, id="64-characters"),
        pytest.param("Abc", id="uppercase"),
        pytest.param("1abc", id="starts-with-digit"),
        pytest.param("-abc", id="starts-with-dash"),
        pytest.param("a_b", id="underscore"),
        pytest.param("a.b.c", id="dots"),
        pytest.param("abc/def", id="slash"),
        pytest.param("../abc", id="traversal"),
        pytest.param("ábc", id="non-ascii"),
        pytest.param(" abc", id="leading-space"),
        pytest.param("abc ", id="trailing-space"),
    ],
)
def test_invalid_bucket_name_is_refused_with_the_rule(name: str) -> None:
    error = refusal(check_bucket_name, name, "bucket.name")

    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "INVALID_BUCKET_NAME"
    assert error.violations[0].field == "bucket.name"
    assert "3 to 63 characters" in error.message


def test_bucket_name_field_defaults_to_name() -> None:
    assert refusal(check_bucket_name, "X").violations[0].field == "name"


def test_bucket_name_with_trailing_newline_is_refused() -> None:
    error = refusal(check_bucket_name, "abc\n")

    assert error.reason == "INVALID_BUCKET_NAME"


# --- buckets declared in lakehouse.toml ------------------------------------------------------------


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lakehouse.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    return str(info.value).replace(str(path), "<file>")


@pytest.mark.parametrize("name", ["Bad Name/../x", "../etc", "ab", "Upper", "a_b"])
def test_declared_bucket_names_follow_the_runtime_rule(tmp_path: Path, name: str) -> None:
    message = config_error(tmp_path, f'[storage.buckets.default]\n[storage.buckets."{name}"]\n')

    assert "<file>: storage.buckets: " in message
    assert f'[storage.buckets."{name}"]' in message
    assert "3 to 63 characters" in message


def test_bucket_roots_must_be_absolute_directories(tmp_path: Path) -> None:
    message = config_error(tmp_path, "[storage]\nbucket_roots = ['/srv/lake', 'relative/dir']\n")

    assert "<file>: storage.bucket_roots: " in message
    assert "'relative/dir' is not an absolute directory" in message


def test_bucket_roots_default_to_none_and_take_absolute_directories(tmp_path: Path) -> None:
    path = tmp_path / "lakehouse.toml"
    path.write_text("[storage]\nbucket_roots = ['/srv/lake', '/mnt/data']\n", encoding="utf-8")

    assert load_config(None, environ={}).storage.bucket_roots == ()
    assert load_config(path, environ={}).storage.bucket_roots == ("/srv/lake", "/mnt/data")
