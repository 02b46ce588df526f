"""Indexing from outside: `lakehouse serve` as a process, sample notes ingested and indexed with the
CLI (progress and summary), found with `buf curl` and the typed client, then erased for good with
`lakehouse erase --mode hard`, which reaches the vectors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.cli import sample
from lakehouse.client import open_channel, token_metadata
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.vector.v1 import vector_service_pb2 as pb
from tests.e2e.harness import Cli, ServerProcess, buf_curl, ok, row, running, write_config

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# Where `make model` puts the embedding model (the repository's lakehouse.toml, data dir ./data).
MODEL_DIR = REPO / "data" / "models" / "all-minilm-l6-v2"
CONFIG = """\
[server]
grace_period_s = 5

[vector.embedder]
model_dir = {model_dir}
providers = ["CPUExecutionProvider"]
"""
ROWS = 200
SEARCH = "lakehouse.vector.v1.VectorService/Search"


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[ServerProcess]:
    config = write_config(workdir / "vector" / "lakehouse.toml", CONFIG.format(model_dir=json.dumps(str(MODEL_DIR))))
    with running(workdir / "vector", config=config) as started:
        yield started


@pytest.fixture(scope="module")
def vcli(server: ServerProcess, workdir: Path) -> Cli:
    return Cli(server.address, workdir)


def a_note() -> dict[str, Any]:
    """A note of the sample whose text no other note has."""
    notes = sample.generate(ROWS)["notes"].to_pylist()
    texts = [n["text"] for n in notes]
    return next(n for n in notes[20:] if texts.count(n["text"]) == 1)


def search_json(server: ServerProcess, text: str) -> list[dict[str, Any]]:
    result = buf_curl(server.address, method=SEARCH, data={"collections": ["notes_idx"], "text": text, "k": 3})
    assert result.code == 0, str(result)
    return list(json.loads(result.stdout).get("hits", []))


async def client_search(address: str, text: str) -> pb.SearchResponse:
    channel = open_channel(address)
    try:
        client = AsyncVectorClient(channel, timeout_s=30, metadata=token_metadata(""))
        return await client.search("notes_idx", text=text, k=3)
    finally:
        await channel.close()


def test_index_search_and_hard_erasure_through_the_cli(vcli: Cli, server: ServerProcess) -> None:
    ok(vcli("sample", "--rows", str(ROWS), "-o", "notes-sample"))
    ok(vcli("ingest", "notes-sample/notes.csv", "--dataset", "notes"))
    indexed = vcli(
        "index", "notes", "--collection", "notes_idx", "--id-column", "note_id", "--text-column", "text",
        "--metadata-column", "author",
    )  # fmt: skip
    out = ok(indexed)
    assert "embedding: " in indexed.stderr and "rows" in indexed.stderr, str(indexed)
    assert f"indexed notes version 2 into notes_idx: {ROWS} rows read, {ROWS} embedded" in out, out
    assert row(out, "rows embedded", str(ROWS)) and row(out, "vectors upserted", str(ROWS)), out

    again = ok(vcli("index", "notes", "--collection", "notes_idx", "--id-column", "note_id", "--text-column", "text",
                    "--metadata-column", "author"))  # fmt: skip
    assert row(again, "rows embedded", "0") and row(again, "rows unchanged", str(ROWS)), again
    status = ok(vcli("index-status", "notes_idx"))
    assert row(status, "state", "idle") and row(status, "stale", "no") and row(status, "rows embedded", str(ROWS))

    note = a_note()
    key = str(note["note_id"])
    [first, *_] = search_json(server, note["text"])
    assert first["id"] == key and first["collection"] == "notes_idx" and first["text"] == note["text"]
    assert first["metadata"]["source_key"] == {"stringValue": key}
    assert first["metadata"]["author"] == {"stringValue": note["author"]}
    hits = asyncio.run(client_search(server.address, note["text"])).hits
    assert hits[0].id == key and hits[0].distance < 1e-4

    erased = ok(vcli("erase", "notes", "--key-column", "note_id", "--keys", key, "--mode", "hard",
                     "--reason", "asked to be forgotten"))  # fmt: skip
    assert row(erased, "state", "complete") and row(erased, "vector_collection", "notes_idx", "1"), erased
    gone = buf_curl(
        server.address,
        method="lakehouse.vector.v1.VectorService/GetVectors",
        data={"collection": "notes_idx", "ids": [key]},
    )
    assert gone.code == 0 and json.loads(gone.stdout or "{}").get("records", []) == [], str(gone)
    assert key not in [h["id"] for h in search_json(server, note["text"])]
    assert row(ok(vcli("index-status", "notes_idx")), "stale", "yes")

    recall = ok(vcli("recall", "notes_idx", "--sample", "20", "-k", "5", "--seed", "3"))
    assert row(recall, "recall@5") and row(recall, "queries", "20") and row(recall, "seed", "3"), recall
