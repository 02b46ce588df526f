"""Governance through the `lakehouse` CLI against a real `lakehouse serve`: views, profiles, erasure
receipts and tombstones, as an operator reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import Cli, failed, ok, row, usage_error

pytestmark = pytest.mark.e2e

PEOPLE_CSV = "id,email,city\n1,ann@example.com,Tulsa\n2,bob@example.org,Reno\n3,cy@example.net,Tulsa\n"


def ingest(cli: Cli, workdir: Path, dataset: str) -> None:
    source = workdir / f"{dataset}.csv"
    source.write_text(PEOPLE_CSV)
    ok(cli("ingest", str(source), "--dataset", dataset))


def test_views_and_profiles_are_created_listed_and_guarded(cli: Cli, workdir: Path) -> None:
    ingest(cli, workdir, "people")
    out = ok(
        cli(
            "views", "create", "people_safe", "--dataset", "people", "--columns", "id,email",
            "--filter", "city = 'Tulsa'", "--redact", "email=mask:2:4", "--description", "for the bot",
        )
    )  # fmt: skip
    assert row(out, "row filter", "city = 'Tulsa'") and row(out, "redactions", "email=mask:2:4"), out
    assert row(ok(cli("views", "list")), "people_safe", "people", "2", "city = 'Tulsa'")
    assert row(ok(cli("views", "update", "people_safe", "--filter", "")), "row filter", "-")

    out = ok(cli("profiles", "create", "support", "--views", "people_safe", "--namespaces", "bot_notes",
                 "--chat-model", "ollama/llama3.2"))  # fmt: skip
    assert row(out, "views", "people_safe") and row(out, "chat model", "ollama/llama3.2"), out
    assert row(ok(cli("profiles", "list")), "support", "0", "1", "0", "1", "ollama/llama3.2")

    assert "FAILED_PRECONDITION VIEW_IN_USE" in failed(cli("views", "delete", "people_safe"))
    assert "email=blur" in usage_error(
        cli("views", "create", "v", "--dataset", "people", "--columns", "id", "--redact", "email=blur")
    )
    missing = failed(cli("profiles", "create", "other", "--datasets", "nope"))
    assert "NOT_FOUND BINDING_NOT_FOUND" in missing and "profile.datasets[0]" in missing


def test_erasure_prints_receipts_and_tombstones(cli: Cli, workdir: Path) -> None:
    ingest(cli, workdir, "contacts")
    out = ok(cli("erase", "contacts", "--key-column", "id", "--keys", "1,2", "--mode", "soft", "--reason", "asked"))
    assert row(out, "state", "complete") and row(out, "rows removed", "2"), out
    receipt = re.search(r"│ id\s+│ ([0-9a-f-]{36})", out)
    assert receipt is not None, out
    tombstones = ok(cli("tombstones", "contacts"))
    assert row(tombstones, "id", "1", receipt.group(1)) and row(tombstones, "id", "2"), tombstones
    assert "restored 1 rows of contacts" in ok(cli("restore", "contacts", "--keys", "1", "--reason", "mistake"))

    keys = workdir / "keys.txt"
    keys.write_text("3\n\n")
    out = ok(cli("erase", "contacts", "--key-column", "id", "--keys-file", str(keys), "--mode", "hard",
                 "--reason", "for good"))  # fmt: skip
    assert row(out, "mode", "hard") and row(out, "state", "complete") and row(out, "rows removed", "1"), out
    listed = ok(cli("erasures", "--dataset", "contacts"))
    assert row(listed, "contacts", "hard", "complete") and row(listed, "contacts", "soft", "complete"), listed
    assert row(ok(cli("erasures", "get", receipt.group(1))), "reason", "asked")
    assert "derivations: none" in ok(cli("derivations", "--dataset", "contacts"))
    assert "--keys" in usage_error(cli("erase", "contacts", "--key-column", "id", "--mode", "soft", "--reason", "r"))
