from __future__ import annotations

import base64
import re

import pytest

from lakehouse.server.common.errors import Code, InvalidArgument
from lakehouse.server.common.paging import (
    DEFAULT_PAGE_SIZE,
    Page,
    decode_token,
    encode_token,
    page_of,
    page_request,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


# --- page sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page_size", "size"),
    [
        pytest.param(0, DEFAULT_PAGE_SIZE, id="unset-gets-default"),
        pytest.param(1, 1, id="one"),
        pytest.param(25, 25, id="small"),
        pytest.param(1000, 1000, id="at-cap"),
        pytest.param(1001, 1000, id="over-cap"),
        pytest.param(2**31 - 1, 1000, id="int32-max"),
    ],
)
def test_page_size_defaults_and_caps(page_size: int, size: int) -> None:
    assert DEFAULT_PAGE_SIZE == 100
    assert page_request(page_size, "") == Page(size=size, after=None)


@pytest.mark.parametrize(
    ("page_size", "size"),
    [(0, 10), (3, 3), (50, 50), (51, 50)],
)
def test_service_specific_default_and_maximum(page_size: int, size: int) -> None:
    assert page_request(page_size, "", default=10, maximum=50).size == size


def test_default_above_the_maximum_is_capped() -> None:
    assert page_request(0, "", default=500, maximum=20).size == 20


@pytest.mark.parametrize("page_size", [-1, -100, -(2**31)])
def test_negative_page_size_names_page_size(page_size: int) -> None:
    with pytest.raises(InvalidArgument) as info:
        page_request(page_size, "")

    error = info.value
    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_SIZE"
    assert error.violations[0].field == "page_size"
    assert error.message == "page_size: must not be negative"


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "",
        "datasets/orders/part-0001.parquet",
        "é漢字🙂",
        'quote"and\\backslash',
        "nul\x00inside",
        "x" * 2000,
        "42",
    ],
)
def test_token_round_trips_the_last_key(key: str) -> None:
    token = encode_token(key)

    assert decode_token(token) == key
    assert page_request(10, token) == Page(size=10, after=key)


def test_token_is_url_safe_and_does_not_show_the_key() -> None:
    token = encode_token("secret-ish/key?with=query&and+plus")

    assert re.fullmatch(r"[A-Za-z0-9_=-]+", token)
    assert "secret-ish" not in token


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("abc", id="bad-padding"),
        pytest.param("=", id="padding-only"),
        pytest.param(" ", id="blank"),
        pytest.param("é", id="non-ascii"),
        pytest.param(b64(b"not json"), id="not-json"),
        pytest.param(b64(b"\xff\xfe\xfd"), id="not-utf8"),
        pytest.param(b64(b"[1, 2]"), id="json-list"),
        pytest.param(b64(b'"after"'), id="json-string"),
        pytest.param(b64(b'{"before": "a"}'), id="no-after"),
        pytest.param(b64(b'{"after": 5}'), id="after-not-a-string"),
        pytest.param(b64(b'{"after": null}'), id="after-null"),
        pytest.param(encode_token("key")[:-3], id="truncated"),
    ],
)
def test_garbled_token_names_page_token(token: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        page_request(10, token)

    error = info.value
    assert error.code == Code.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert error.violations[0].field == "page_token"
    assert error.message == "page_token: not a token this server issued"


# --- page_of -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "size"),
    [([], 10), (["a"], 10), (["a", "b"], 2), (list("abcdefghij"), 10)],
)
def test_no_next_token_when_the_page_is_not_overfull(keys: list[str], size: int) -> None:
    assert page_of(keys, Page(size, None), str) == (keys, "")


def test_next_token_continues_after_the_last_returned_key() -> None:
    rows, token = page_of([{"k": "a"}, {"k": "b"}, {"k": "c"}], Page(2, None), lambda r: r["k"])

    assert rows == [{"k": "a"}, {"k": "b"}]
    assert decode_token(token) == "b"


def _list(keys: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """A List RPC the way services implement it: fetch size + 1 after the cursor."""
    page = page_request(page_size, page_token)
    fetched = [k for k in sorted(keys) if page.after is None or k > page.after][: page.size + 1]
    return page_of(fetched, page, str)


@pytest.mark.parametrize(("total", "page_size"), [(0, 10), (9, 10), (10, 10), (11, 10), (25, 10), (7, 1), (250, 0)])
def test_following_tokens_visits_every_key_once(total: int, page_size: int) -> None:
    keys = [f"k{i:04d}" for i in range(total)]
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        items, token = _list(keys, page_size, token)
        seen += items
        pages += 1
        if not token:
            break
        assert pages <= total + 1, "paging does not terminate"

    assert seen == keys
    assert pages == max(1, -(-total // (page_size or DEFAULT_PAGE_SIZE)))
