"""The chat service from outside: `lakehouse serve` as a process.

With no provider configured (the embedded default), `lakehouse answer` returns an extractive
answer citing the sample rows, `lakehouse chat` fails with how to configure a provider, and the
session log is a dataset `lakehouse sql` reads. With the fake provider configured, `lakehouse
chat --stream` streams through the server and `buf curl` reaches Answer by reflection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.cli import sample
from tests.e2e.harness import Cli, ServerProcess, buf_curl, failed, ok, row, running, write_config
from tests.support.fake_llm import FakeLLM

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "data" / "models" / "all-minilm-l6-v2"
CONFIG = """\
[server]
grace_period_s = 5

[vector.embedder]
model_dir = {model_dir}
providers = ["CPUExecutionProvider"]

[chat]
session_flush_s = 0.2
{providers}
"""
FAKE_PROVIDER = """
[chat.providers.fake]
kind = "openai"
base_url = "{url}"
default_model = "cite"
"""
ROWS = 200
QUESTION = "who is certified for MIG and TIG welding?"


def _config(workdir: Path, name: str, providers: str = "") -> Path:
    text = CONFIG.format(model_dir=json.dumps(str(MODEL_DIR)), providers=providers)
    return write_config(workdir / name / "lakehouse.toml", text)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def plain(workdir: Path) -> Iterator[ServerProcess]:
    with running(workdir / "chat-plain", config=_config(workdir, "chat-plain")) as started:
        yield started


def _indexed(cli: Cli) -> None:
    ok(cli("sample", "--rows", str(ROWS), "-o", "notes-sample"))
    ok(cli("ingest", "notes-sample/notes.csv", "--dataset", "notes"))
    ok(cli("index", "notes", "--collection", "notes_idx", "--id-column", "note_id", "--text-column", "text"))


def test_with_no_model_answer_is_extractive_and_cites_rows(plain: ServerProcess, workdir: Path) -> None:
    cli = Cli(plain.address, workdir / "chat-plain")
    _indexed(cli)
    out = ok(cli("answer", QUESTION, "--collection", "notes_idx", "-k", "3"))
    assert "extractive answer (no model was called)" in out, out
    assert "citations: grounded, 3 sources retrieved" in out, out
    notes = {str(n["note_id"]): n["text"] for n in sample.generate(ROWS)["notes"].to_pylist()}
    keys = [line.split("notes@v")[1].split(":")[1].split()[0] for line in out.splitlines() if "notes@v" in line]
    assert len(keys) == 3 and all(k in notes for k in keys), out
    assert notes[keys[0]].split()[0] in out

    refused = failed(cli("chat", "hello"))
    assert "NO_PROVIDER_CONFIGURED" in refused and "[chat.providers." in refused, refused
    assert "add [chat.providers.NAME] to use one" in ok(cli("providers", "list"))

    sessions = ok(cli("sql", "SELECT method, mode, code, grounded FROM chat_sessions ORDER BY time"))
    assert row(sessions, "Answer", "EXTRACTIVE", "OK", "True"), sessions
    assert row(sessions, "Chat", "", "FAILED_PRECONDITION"), sessions


def test_a_configured_provider_streams_and_answers_through_reflection(fake: FakeLLM, workdir: Path) -> None:
    config = _config(workdir, "chat-fake", FAKE_PROVIDER.format(url=fake.url))
    with running(workdir / "chat-fake", config=config) as server:
        cli = Cli(server.address, workdir / "chat-fake")
        streamed = ok(cli("chat", "stream these words", "--model", "fake/echo", "--stream"))
        assert "echo: stream these words" in streamed and "fake/echo, finish stop" in streamed, streamed
        listed = ok(cli("providers", "list", "--probe"))
        assert row(listed, "fake (default)", "openai"), listed
        _indexed(cli)
        result = buf_curl(
            server.address,
            method="lakehouse.chat.v1.ChatService/Answer",
            data={"question": QUESTION, "collections": ["notes_idx"], "k": 2},
        )
        assert result.code == 0, str(result)
        answer = json.loads(result.stdout)
        assert answer["answer"] == "The sources say so [1] and [2]." and answer["grounded"] is True
        assert [c["sourceNumber"] for c in answer["citations"]] == [1, 2]
        assert answer["citations"][0]["sourceDataset"]["dataset"] == "notes"
