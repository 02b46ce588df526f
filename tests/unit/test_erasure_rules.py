"""Rules of erasure requests that need no server: key checks and the vector filter they become."""

from __future__ import annotations

import pytest

from lakehouse.server.catalog.erasure import check_keys
from lakehouse.server.catalog.peers import milvus_filter
from lakehouse.server.common.errors import InvalidArgument


def test_the_vector_filter_quotes_and_escapes_every_value() -> None:
    keys = ["plain", 'say "hi"', "back\\slash", "José", "it's"]
    assert milvus_filter("workers", keys) == (
        'source_dataset == "workers" and source_key in ["plain", "say \\"hi\\"", "back\\\\slash", "José", "it\'s"]'
    )


def test_keys_are_deduplicated_in_order() -> None:
    assert check_keys(["3", "1", "3", "2"]) == ("3", "1", "2")


@pytest.mark.parametrize(
    ("keys", "reason", "field"),
    [
        ([], "EMPTY_KEYS", "key_values"),
        (["ok", ""], "EMPTY_KEY", "key_values[1]"),
        (["secret-key\x00"], "INVALID_KEY", "key_values[0]"),
        (["secret-key" * 30], "INVALID_KEY", "key_values[0]"),
        ([str(i) for i in range(10_001)], "TOO_MANY_KEYS", "key_values"),
    ],
)
def test_bad_keys_are_refused_without_quoting_them(keys: list[str], reason: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_keys(keys)
    assert (err.value.reason, [v.field for v in err.value.violations]) == (reason, [field])
    assert "secret-key" not in err.value.message
