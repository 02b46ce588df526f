"""The chat service in a real mesh (tokens on, the ONNX embedder, Milvus Lite, DuckDB over Delta)
calling the fake provider over HTTP on loopback: routing, streaming, error codes through gRPC,
cancellation, key redaction, answers with citations to rows, profiles, and the session log.

One mesh serves the module: the sample notes are ingested and indexed once into two collections,
one bound to the agent's profile and one not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
import pytest_asyncio

from lakehouse.chat.v1 import chat_service_pb2 as pb
from lakehouse.chat.v1 import chat_service_pb2_grpc as pb_grpc
from lakehouse.client import ChatClient, RetryPolicy, token_metadata
from lakehouse.client.catalog import AsyncCatalogClient
from lakehouse.client.chat import AsyncChatClient
from lakehouse.client.errors import LakehouseClientError
from lakehouse.client.vector import AsyncVectorClient
from lakehouse.server.common.config import ChatConfig, Config, ProviderConfig, TokenConfig
from tests.support.fake_llm import FakeLLM
from tests.support.mesh import Backends, RunningMesh, eventually, make_config, start_mesh
from tests.support.query import query_client, sample_file

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(
    os.environ.get("LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR") or ROOT / "data" / "models" / "all-minilm-l6-v2"
)
ADMIN = "chat-admin-token"
AGENT = "chat-agent-token"
READER = "chat-reader-token"
PROFILE = "notes-bot"
VECTORS_ONLY = "vectors-only"
VIEW_BOT = "view-bot"
VIEW = "notes_safe"
VIEWED = "notes_safe_vec"
VIEW_AGENT = "chat-view-agent-token"
KEY = "sk-chat-9f8e7d6c5b4a3210"
KEY_ENV = "LAKEHOUSE_TEST_FAKE_LLM_KEY"
WRONG_KEY_ENV = "LAKEHOUSE_TEST_FAKE_LLM_WRONG_KEY"
BOUND = "notes_vec"
UNBOUND = "notes_private"
QUESTION = "who has experience in MIG and TIG welding?"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


TOKENS = (
    TokenConfig(principal="ops", role="admin", sha256=_sha(ADMIN)),
    TokenConfig(principal="bot", role="agent", profile=PROFILE, sha256=_sha(AGENT)),
    TokenConfig(principal="analyst", role="reader", sha256=_sha(READER)),
    TokenConfig(principal="viewbot", role="agent", profile=VIEW_BOT, sha256=_sha(VIEW_AGENT)),
)


def chat_config(data_dir: Path, fake: FakeLLM) -> Config:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    config = make_config(data_dir, Backends(tokens=TOKENS))
    embedder = replace(config.vector.embedder, model_dir=str(MODEL_DIR))
    providers = {
        "openai": ProviderConfig(kind="openai", base_url=fake.url + "/v1", api_key_env=KEY_ENV, default_model="echo"),
        "ollama": ProviderConfig(kind="ollama", base_url=fake.url, api_key_env=KEY_ENV, default_model="echo"),
        "nokey": ProviderConfig(kind="openai", base_url=fake.url, api_key_env="LAKEHOUSE_TEST_UNSET_KEY"),
        "wrongkey": ProviderConfig(kind="openai", base_url=fake.url, api_key_env=WRONG_KEY_ENV),
    }
    chat = ChatConfig(default_provider="openai", providers=providers, session_flush_s=0.2, max_backoff_s=1.0)
    return replace(config, vector=replace(config.vector, embedder=embedder), chat=chat)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=KEY) as server:
        yield server


class Mesh:
    def __init__(self, running: RunningMesh) -> None:
        self.running = running

    def chat(self, token: str = ADMIN, timeout_s: float = 30) -> AsyncChatClient:
        retry = RetryPolicy(attempts=1)
        return AsyncChatClient(self.running.channel, timeout_s=timeout_s, retry=retry, metadata=token_metadata(token))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory, fake: FakeLLM) -> AsyncIterator[Mesh]:
    os.environ[KEY_ENV] = KEY
    os.environ[WRONG_KEY_ENV] = KEY + "-but-wrong"
    base = tmp_path_factory.mktemp("chat")
    running = await start_mesh(chat_config(base / "data", fake), None, ADMIN)
    try:
        metadata = token_metadata(ADMIN)
        await query_client(running, ADMIN, timeout_s=60).ingest_file(
            sample_file(base / "files", "notes", "csv"), "notes"
        )
        vectors = AsyncVectorClient(running.channel, timeout_s=120, metadata=metadata)
        for collection in (BOUND, UNBOUND):
            await vectors.index_dataset(collection, "notes", id_column="note_id", text_columns=["text"])
        catalog = AsyncCatalogClient(running.channel, timeout_s=30, metadata=metadata)
        await catalog.create_view(VIEW, "notes", ["note_id", "text"], row_filter="note_id <= 100")
        await vectors.index_dataset(VIEWED, VIEW, id_column="note_id", text_columns=["text"])
        await catalog.create_profile(VIEW_BOT, views=[VIEW], collections=[VIEWED])
        await catalog.create_profile(PROFILE, datasets=["notes"], collections=[BOUND], default_chat_model="ollama/echo")
        await catalog.create_profile(VECTORS_ONLY, collections=[BOUND])
        yield Mesh(running)
    finally:
        await running.stop()
        os.environ.pop(KEY_ENV, None)
        os.environ.pop(WRONG_KEY_ENV, None)


async def _error(coro: object) -> LakehouseClientError:
    with pytest.raises(LakehouseClientError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


# -- routing and providers -------------------------------------------------------------------------


async def test_the_prefix_routes_to_its_provider_and_a_bare_name_to_the_default(mesh: Mesh) -> None:
    client = mesh.chat()
    for model, provider in (("openai/echo", "openai"), ("ollama/echo", "ollama"), ("echo", "openai"), ("", "openai")):
        reply = await client.chat("route me", model=model)
        assert (reply.provider, reply.model, reply.content) == (provider, "echo", "echo: route me")
        assert reply.finish_reason == pb.FINISH_REASON_STOP
        assert reply.usage.completion_tokens == 3


async def test_an_unknown_prefix_is_not_found_and_never_reaches_the_default(mesh: Mesh, fake: FakeLLM) -> None:
    before = len(fake.seen)
    error = await _error(mesh.chat().chat("hi", model="nope/echo"))
    assert (error.code.name, error.reason) == ("NOT_FOUND", "PROVIDER_NOT_FOUND")
    assert [v.field for v in error.violations] == ["model"]
    assert len(fake.seen) == before


async def test_a_provider_without_its_key_is_listed_unavailable_and_refuses_calls(mesh: Mesh) -> None:
    listed = {p.name: p for p in await mesh.chat().list_providers()}
    assert listed["nokey"].availability == pb.PROVIDER_AVAILABILITY_MISCONFIGURED
    assert "LAKEHOUSE_TEST_UNSET_KEY" in listed["nokey"].availability_reason
    assert listed["openai"].availability == pb.PROVIDER_AVAILABILITY_AVAILABLE and listed["openai"].is_default
    error = await _error(mesh.chat().chat("hi", model="nokey/echo"))
    assert (error.code.name, error.reason) == ("FAILED_PRECONDITION", "PROVIDER_MISCONFIGURED")


async def test_models_are_listed_as_routable_names(mesh: Mesh) -> None:
    found = await mesh.chat().list_models("ollama")
    assert "ollama/echo" in [m.name for m in found.models]
    everything = await mesh.chat().list_models()
    assert {"openai/cite", "ollama/cite"} <= {m.name for m in everything.models}
    assert set(everything.skipped_providers) == {"nokey", "wrongkey"}


async def test_an_agent_naming_no_model_gets_its_profiles_default(mesh: Mesh) -> None:
    reply = await mesh.chat(AGENT).chat("which model?")
    assert (reply.provider, reply.model) == ("ollama", "echo")
    assert (await mesh.chat(READER).chat("which model?")).provider == "openai"  # no profile: the default


# -- errors, retries, redaction --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "code", "reason"),
    [
        ("missing", "NOT_FOUND", "MODEL_NOT_FOUND"),
        ("bad-request", "INVALID_ARGUMENT", "PROVIDER_REJECTED_REQUEST"),
        ("server-error", "UNAVAILABLE", "PROVIDER_UNAVAILABLE"),
        ("malformed", "UNAVAILABLE", "PROVIDER_BAD_RESPONSE"),
        ("rate-limited", "RESOURCE_EXHAUSTED", "PROVIDER_RATE_LIMITED"),
    ],
)
async def test_provider_failures_reach_the_caller_as_clear_codes(
    mesh: Mesh, model: str, code: str, reason: str
) -> None:
    error = await _error(mesh.chat().chat("hi", model=f"ollama/{model}"))
    assert (error.code.name, error.reason) == (code, reason)
    if code == "RESOURCE_EXHAUSTED":
        assert error.retry_delay_s is not None  # RetryInfo from Retry-After


async def test_bad_requests_name_the_field(mesh: Mesh) -> None:
    cases = [
        (mesh.chat().chat([], model="echo"), "messages", "EMPTY_MESSAGES"),
        (mesh.chat().chat("x", temperature=3.0), "temperature", "INVALID_TEMPERATURE"),
        (mesh.chat().chat("x", max_tokens=0), "max_tokens", "INVALID_MAX_TOKENS"),
        (mesh.chat().chat("x", stop=["a", "b", "c", "d", "e"]), "stop", "TOO_MANY_STOP_SEQUENCES"),
    ]
    for coro, field, reason in cases:
        error = await _error(coro)
        assert (error.code.name, error.reason, [v.field for v in error.violations]) == (
            "INVALID_ARGUMENT",
            reason,
            [field],
        )


async def test_a_refused_key_is_failed_precondition_and_the_key_appears_nowhere(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    refused = await _error(mesh.chat().chat("hi", model="wrongkey/echo"))
    assert (refused.code.name, refused.reason) == ("FAILED_PRECONDITION", "PROVIDER_AUTH_FAILED")
    echoed = await _error(mesh.chat().chat("hi", model="openai/leak-key"))
    assert echoed.reason == "PROVIDER_REJECTED_REQUEST" and "[redacted]" in echoed.message
    probed = {p.name: p for p in await mesh.chat().list_providers(probe=True)}
    assert probed["wrongkey"].availability == pb.PROVIDER_AVAILABILITY_UNREACHABLE
    texts = [
        refused.message,
        str(refused.metadata),
        echoed.message,
        probed["wrongkey"].availability_reason,
        caplog.text,
    ]
    for text in texts:
        assert KEY not in text


# -- streaming and cancellation --------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
async def test_a_stream_sends_deltas_in_order_then_one_summary_last(mesh: Mesh, provider: str) -> None:
    events = [e async for e in mesh.chat().chat_stream("one two three four", model=f"{provider}/echo", max_tokens=3)]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["delta", "delta", "delta", "summary"]
    assert "".join(e.delta.content for e in events[:-1]) == "echo: one two"
    summary = events[-1].summary
    assert summary.finish_reason == pb.FINISH_REASON_LENGTH
    assert (summary.usage.completion_tokens, summary.provider) == (3, provider)


async def test_cancelling_a_stream_cancels_the_upstream_request(mesh: Mesh, fake: FakeLLM) -> None:
    before = fake.disconnects
    stream = mesh.chat().chat_stream("go", model="openai/slow-stream")
    async for event in stream:
        assert event.WhichOneof("event") == "delta"
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await eventually(lambda: fake.disconnects > before, timeout_s=10)


async def test_cancelling_a_chat_call_cancels_the_upstream_request(mesh: Mesh, fake: FakeLLM) -> None:
    before, asked = fake.disconnects, fake.counts["slow"]
    call = asyncio.create_task(mesh.chat().chat("wait", model="openai/slow"))
    assert await eventually(lambda: fake.counts["slow"] > asked, timeout_s=10)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await eventually(lambda: fake.disconnects > before, timeout_s=10)


async def test_a_stream_cut_after_the_first_delta_is_interrupted(mesh: Mesh, fake: FakeLLM) -> None:
    before = fake.counts["interrupt"]
    received = []
    with pytest.raises(LakehouseClientError) as caught:
        async for event in mesh.chat().chat_stream("a b c", model="ollama/interrupt"):
            received.append(event.delta.content)
    assert received == ["echo:", " a"]
    assert (caught.value.code.name, caught.value.reason) == ("UNAVAILABLE", "PROVIDER_STREAM_INTERRUPTED")
    assert fake.counts["interrupt"] == before + 1


async def test_the_blocking_client_streams_too(mesh: Mesh) -> None:
    def stream() -> list[str]:
        with ChatClient(mesh.running.address, token=ADMIN) as chat:
            return [e.WhichOneof("event") for e in chat.chat_stream("a b", model="ollama/echo")]

    assert await asyncio.to_thread(stream) == ["delta", "delta", "delta", "summary"]


# -- answers ---------------------------------------------------------------------------------------


async def test_an_answer_cites_the_rows_its_sources_came_from(mesh: Mesh) -> None:
    result = await mesh.chat().answer(QUESTION, [BOUND], k=4, model="openai/cite")
    assert result.mode == pb.ANSWER_MODE_GENERATED and result.grounded
    assert result.answer == "The sources say so [1] and [2]."
    assert [c.source_number for c in result.citations] == [1, 2]
    assert result.sources_retrieved == 4
    notes = sample_table()
    for c in result.citations:
        assert c.collection == BOUND and c.source_dataset.dataset == "notes"
        assert notes[int(c.row_key)] == c.snippet  # the cited passage is the text of that row
        assert "welding" in c.snippet.lower()
    assert result.usage.prompt_tokens > 0


async def test_a_cited_number_with_no_source_makes_the_answer_ungrounded(mesh: Mesh) -> None:
    result = await mesh.chat().answer(QUESTION, [BOUND], k=3, model="ollama/cite-unknown")
    assert not result.grounded
    assert list(result.unknown_source_numbers) == [99]
    assert [c.source_number for c in result.citations] == [1]  # only sources that exist are returned
    uncited = await mesh.chat().answer(QUESTION, [BOUND], k=3, model="ollama/cite-none")
    assert not uncited.grounded and not uncited.citations


async def test_an_extractive_answer_returns_the_passages_themselves(mesh: Mesh, fake: FakeLLM) -> None:
    before = len(fake.seen)
    result = await mesh.chat().answer(QUESTION, [BOUND], k=3, mode="extractive")
    assert result.mode == pb.ANSWER_MODE_EXTRACTIVE and result.grounded and not result.model
    assert [c.source_number for c in result.citations] == [1, 2, 3]
    for c in result.citations:
        assert f"{c.snippet} [{c.source_number}]" in result.answer
    assert len(fake.seen) == before  # no model was called


async def test_sql_context_returns_each_source_row_as_the_caller_may_see_it(mesh: Mesh) -> None:
    result = await mesh.chat().answer(QUESTION, [BOUND], k=2, mode="extractive", include_sql_context=True)
    for c in result.citations:
        row = pa.ipc.open_stream(c.row.arrow_ipc).read_all().to_pylist()
        assert len(row) == 1 and str(row[0]["note_id"]) == c.row_key and row[0]["text"] == c.snippet


async def test_an_agent_answers_from_its_profiles_collections_only(mesh: Mesh) -> None:
    agent = mesh.chat(AGENT)
    own = await agent.answer(QUESTION, k=2, mode="extractive")  # no collections: the profile's
    assert {c.collection for c in own.citations} == {BOUND}
    denied = await _error(agent.answer(QUESTION, [UNBOUND], mode="extractive"))
    assert denied.code.name == "PERMISSION_DENIED"
    other = await _error(agent.answer(QUESTION, [BOUND], profile="someone-else", mode="extractive"))
    assert (other.code.name, other.reason) == ("PERMISSION_DENIED", "PROFILE_NOT_ALLOWED")


async def test_source_rows_come_through_the_view_an_agent_reads(mesh: Mesh) -> None:
    result = await mesh.chat(VIEW_AGENT).answer(QUESTION, k=3, mode="extractive", include_sql_context=True)
    assert result.citations and {c.collection for c in result.citations} == {VIEWED}
    for c in result.citations:
        row = pa.ipc.open_stream(c.row.arrow_ipc).read_all().to_pylist()[0]
        assert set(row) == {"note_id", "text"} and row["note_id"] <= 100  # the view's columns and rows only


async def test_an_admin_previewing_a_profile_is_held_to_its_collections(mesh: Mesh) -> None:
    error = await _error(mesh.chat().answer(QUESTION, [UNBOUND], profile=PROFILE, mode="extractive"))
    assert (error.code.name, error.reason) == ("PERMISSION_DENIED", "COLLECTION_NOT_ALLOWED")
    previewed = await mesh.chat().answer(QUESTION, profile=PROFILE, k=1, mode="extractive", include_sql_context=True)
    assert [c.collection for c in previewed.citations] == [BOUND]
    assert previewed.citations[0].HasField("row")  # the profile reads notes in full
    no_rows = await mesh.chat().answer(QUESTION, profile=VECTORS_ONLY, k=1, mode="extractive", include_sql_context=True)
    assert no_rows.citations and not no_rows.citations[0].HasField("row")  # notes is not bound to it
    missing = await _error(mesh.chat().answer(QUESTION, profile="no-such-profile", mode="extractive"))
    assert missing.code.name == "NOT_FOUND"


async def test_an_answer_without_collections_or_profile_names_the_field(mesh: Mesh) -> None:
    error = await _error(mesh.chat(READER).answer(QUESTION))
    assert (error.reason, [v.field for v in error.violations]) == ("NO_COLLECTIONS", ["collections"])
    empty = await _error(mesh.chat().answer("  ", [BOUND]))
    assert empty.reason == "EMPTY_QUESTION"
    stub = pb_grpc.ChatServiceStub(mesh.running.channel)
    with pytest.raises(grpc.aio.AioRpcError) as odd:
        await stub.Answer(
            pb.AnswerRequest(question="q", collections=[BOUND], mode=9), metadata=[("authorization", f"Bearer {ADMIN}")]
        )
    assert odd.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "mode" in (odd.value.details() or "")


async def test_a_soft_erased_row_is_never_cited_again(mesh: Mesh) -> None:
    admin = AsyncCatalogClient(mesh.running.channel, timeout_s=30, metadata=token_metadata(ADMIN))
    question = "holds a current forklift certification"
    before = await mesh.chat().answer(question, [UNBOUND], k=3, mode="extractive")
    erased = before.citations[0].row_key
    await admin.erase_rows("notes", "note_id", [erased], mode="soft", reason="test: asked to be forgotten")
    try:
        after = await mesh.chat().answer(question, [UNBOUND], k=3, mode="extractive", include_sql_context=True)
        assert erased not in [c.row_key for c in after.citations]
        assert all(c.HasField("row") for c in after.citations)
    finally:
        await admin.restore_rows("notes", [erased], reason="test: restored")


# -- session log -----------------------------------------------------------------------------------


async def test_every_call_leaves_one_session_record_the_query_service_can_read(mesh: Mesh) -> None:
    marker = await mesh.chat(READER).answer(QUESTION, [BOUND], k=2, model="openai/cite")
    assert marker.grounded
    client = query_client(mesh.running, ADMIN)

    async def rows() -> list[dict[str, object]]:
        try:
            sql = "SELECT * FROM chat_sessions WHERE principal = 'analyst' AND method = 'Answer' AND code = 'OK'"
            return (await client.query(sql)).table.to_pylist()
        except LakehouseClientError:
            return []

    found: list[dict[str, object]] = []
    for _ in range(100):
        found = await rows()
        if found:
            break
        await asyncio.sleep(0.1)
    assert len(found) == 1
    record = found[0]
    assert (record["provider"], record["model"], record["mode"], record["grounded"]) == (
        "openai",
        "cite",
        "GENERATED",
        True,
    )
    assert len(record["citations"]) == 2 and all(c.startswith(f"{BOUND}/") for c in record["citations"])  # type: ignore[arg-type]
    assert record["completion_tokens"] and record["latency_ms"] > 0  # type: ignore[operator]
    assert record["request_id"]


def sample_table() -> dict[int, str]:
    from tests.support.query import sample_tables

    notes = sample_tables()["notes"]
    return dict(zip(notes["note_id"].to_pylist(), notes["text"].to_pylist(), strict=True))
