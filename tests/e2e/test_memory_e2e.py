"""Memory from outside: `lakehouse serve` as a process, traces remembered, revised, found, retired
and forgotten with the CLI; the playbook recorded and looked up; and a server killed between a
trace's row and its vector, whose restart repairs the trace so it is found by meaning."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from lakehouse.client import open_channel, token_metadata
from lakehouse.client.errors import LakehouseClientError
from lakehouse.client.memory import AsyncMemoryClient
from lakehouse.server.memory.service import FAILPOINT_ENV
from tests.e2e.harness import Cli, ok, row, running, start_server, write_config

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "data" / "models" / "all-minilm-l6-v2"
CONFIG = """\
[server]
grace_period_s = 5

[vector.embedder]
model_dir = {model_dir}
providers = ["CPUExecutionProvider"]
"""
TRACE_ID = re.compile(r"trace ([0-9a-f]{32})")


def config_in(directory: Path) -> Path:
    return write_config(directory / "lakehouse.toml", CONFIG.format(model_dir=json.dumps(str(MODEL_DIR))))


def test_remember_revise_find_and_forget_through_the_cli(workdir: Path) -> None:
    with running(workdir / "cli", config=config_in(workdir / "cli")) as server:
        cli = Cli(server.address, workdir)
        added = ok(cli("memory", "add", "ops", "The deploy key lives in the ops vault.", "--tag", "keys"))
        first = TRACE_ID.search(added)
        assert first is not None, added
        revised = ok(cli("memory", "revise", "ops", first.group(1), "The deploy key moved to the new vault."))
        second = TRACE_ID.search(revised)
        assert second is not None and second.group(1) != first.group(1), revised
        found = ok(cli("memory", "search", "where is the deploy key", "--namespace", "ops", "-k", "1"))
        assert "moved to the new vault" in found, found
        history = ok(cli("memory", "history", "ops", second.group(1)))
        assert "superseded" in history and "active" in history, history
        ok(cli("memory", "retire", "ops", second.group(1), "--reason", "rotated"))
        assert "rotated" in ok(cli("memory", "get", "ops", second.group(1)))
        ok(cli("collections", "create", "kb"))
        recorded = ok(cli("playbook", "record", "ops", "where is the key", "kb/doc-1", "--score", "0.9"))
        assert "recorded playbook entry" in recorded, recorded
        looked = ok(cli("playbook", "lookup", "ops", "where is the key"))
        assert "kb/doc-1" in looked, looked
        receipt = ok(cli("memory", "forget", "ops", first.group(1), "--reason", "cleanup"))
        assert row(receipt, "traces deleted", "2") and row(receipt, "vectors deleted", "2"), receipt
        assert "ops (2)" in receipt, receipt


async def _add_through_failpoint(address: str, content: str) -> None:
    channel = open_channel(address)
    try:
        client = AsyncMemoryClient(channel, timeout_s=60, metadata=token_metadata(""))
        with pytest.raises(LakehouseClientError):  # the server dies in the middle of the call
            await client.add_trace("crash", content)
    finally:
        await channel.close()


async def _state(address: str, query: str) -> tuple[list[str], list[str]]:
    channel = open_channel(address)
    try:
        client = AsyncMemoryClient(channel, timeout_s=60, metadata=token_metadata(""))
        listed = await client.list_traces("crash")
        hits = await client.search_traces(query, namespaces=["crash"], k=5)
        return [t.content for t in listed.traces], [h.trace.content for h in hits]
    finally:
        await channel.close()


def test_a_crash_between_row_and_vector_is_repaired_on_restart(workdir: Path) -> None:
    directory = workdir / "crash"
    config = config_in(directory)
    content = "The emergency generator is tested every first Monday."
    query = "when is the backup generator tested"
    with running(directory, config=config) as warm:  # the namespace exists, with one healthy trace
        asyncio.run(_warm_up(warm.address))
    doomed = start_server(directory, config=config, env={FAILPOINT_ENV: "after_trace_row"})
    doomed.wait_ready()
    asyncio.run(_add_through_failpoint(doomed.address, content))
    deadline = time.monotonic() + 30
    while doomed.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not doomed.alive(), "the failpoint should have ended the server"
    assert "failpoint after_trace_row" in doomed.stderr
    doomed.kill()
    with running(directory, config=config) as restarted:
        stored, found = asyncio.run(_state(restarted.address, query))
        deadline = time.monotonic() + 60
        while content not in found and time.monotonic() < deadline:  # the repair runs in the background
            time.sleep(0.5)
            stored, found = asyncio.run(_state(restarted.address, query))
        assert content in stored  # the row was durable when the process died
        assert found[0] == content  # and the repair wrote its vector: found by meaning


async def _warm_up(address: str) -> None:
    channel = open_channel(address)
    try:
        client = AsyncMemoryClient(channel, timeout_s=60, metadata=token_metadata(""))
        await client.add_trace("crash", "The cafeteria closes at 3pm on Fridays.")
    finally:
        await channel.close()
