"""The chat domain without a server: the routing table, citation checking, and what happens with
no provider configured (extractive answers, Chat refused with how to configure one)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from lakehouse.server.chat.gateways import ChatPolicy, Message, Passage, SessionRecord, SourceRow
from lakehouse.server.chat.providers import HttpProvider, make_providers
from lakehouse.server.chat.service import (
    AnswerRequest,
    ChatRequest,
    ChatService,
    Router,
    check_citations,
)
from lakehouse.server.common.config import ChatConfig, ProviderConfig
from lakehouse.server.common.errors import Code, LakehouseError
from tests.support.fake_llm import FakeLLM


class Passages:
    """A retriever over a fixed list, recording what it was asked."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = list(passages)
        self.asked: list[tuple[tuple[str, ...], str, int]] = []

    async def search(self, collections: Sequence[str], text: str, k: int) -> list[Passage]:
        self.asked.append((tuple(collections), text, k))
        return self.passages[:k]


class NoRows:
    async def rows(self, passages: Sequence[Passage]) -> list[SourceRow | None]:
        return [None] * len(passages)


class Open:
    async def caller(self) -> ChatPolicy:
        return ChatPolicy("", False, frozenset(), "")

    async def profile(self, name: str) -> ChatPolicy:
        raise AssertionError("not used")


class Sessions:
    def __init__(self) -> None:
        self.records: list[SessionRecord] = []

    def append(self, record: SessionRecord) -> None:
        self.records.append(record)


PASSAGES = [
    Passage("notes", "n1", "Welds MIG and TIG.", 0.1, {"source_dataset": "notes", "source_key": "1"}),
    Passage("notes", "n7", "Forklift certified.", 0.3, {"source_dataset": "notes", "source_key": "7"}),
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def providers(fake: FakeLLM, *names: str) -> dict[str, HttpProvider]:
    config = ChatConfig(
        providers={n: ProviderConfig(kind="openai", base_url=fake.url, default_model="echo") for n in names}
    )
    return make_providers(config)


@pytest.mark.parametrize(
    ("model", "provider", "upstream"),
    [
        ("a/echo", "a", "echo"),
        ("b/meta-llama/llama-3.1-8b", "b", "meta-llama/llama-3.1-8b"),
        ("a/", "a", "echo"),
        ("", "a", "echo"),
        ("gpt-4o", "a", "gpt-4o"),
    ],
)
def test_the_routing_table(fake: FakeLLM, model: str, provider: str, upstream: str) -> None:
    route = Router(providers(fake, "a", "b"), "a").route(model)
    assert (route.provider.name, route.model) == (provider, upstream)


@pytest.mark.parametrize(
    ("default", "model", "code", "reason"),
    [
        ("a", "c/echo", Code.NOT_FOUND, "PROVIDER_NOT_FOUND"),
        ("a", "meta-llama/x", Code.NOT_FOUND, "PROVIDER_NOT_FOUND"),
        ("", "echo", Code.FAILED_PRECONDITION, "NO_DEFAULT_PROVIDER"),
    ],
)
def test_routing_never_falls_through_to_the_default(
    fake: FakeLLM, default: str, model: str, code: Code, reason: str
) -> None:
    with pytest.raises(LakehouseError) as caught:
        Router(providers(fake, "a", "b"), default).route(model)
    assert (caught.value.code, caught.value.reason) == (code, reason)


@pytest.mark.parametrize(
    ("answer", "cited", "unknown"),
    [
        ("Yes [1].", [1], []),
        ("Both [2][1] and again [1, 2].", [2, 1], []),
        ("See [1] and [3] and [0].", [1], [3, 0]),
        ("No citation at all.", [], []),
        ("A list [a] or [1.5] is not a citation.", [], []),
    ],
)
def test_citations_are_checked_against_the_sources(answer: str, cited: list[int], unknown: list[int]) -> None:
    assert check_citations(answer, 2) == (cited, unknown)


async def test_with_no_provider_answers_are_extractive_and_chat_says_how_to_configure() -> None:
    sessions = Sessions()
    chat = ChatService(ChatConfig(), {}, Passages(PASSAGES), NoRows(), Open(), sessions)
    result = await chat.answer(AnswerRequest("who welds?", ("notes",)), None)
    assert result.mode == "EXTRACTIVE" and result.grounded
    assert result.answer == "Welds MIG and TIG. [1]\n\nForklift certified. [2]"
    assert [(c.number, c.passage.row_key) for c in result.citations] == [(1, "1"), (2, "7")]
    with pytest.raises(LakehouseError) as caught:
        await chat.chat(ChatRequest("", (Message("user", "hi"),)), None)
    assert (caught.value.code, caught.value.reason) == (Code.FAILED_PRECONDITION, "NO_PROVIDER_CONFIGURED")
    assert "[chat.providers." in caught.value.message
    with pytest.raises(LakehouseError) as generated:
        await chat.answer(AnswerRequest("who welds?", ("notes",), mode="GENERATED"), None)
    assert generated.value.reason == "NO_PROVIDER_CONFIGURED"
    assert [(r.method, r.mode, r.code) for r in sessions.records] == [
        ("Answer", "EXTRACTIVE", "OK"),
        ("Chat", "", "FAILED_PRECONDITION"),
        ("Answer", "", "FAILED_PRECONDITION"),
    ]


async def test_nothing_retrieved_means_no_model_call_and_no_grounding(fake: FakeLLM) -> None:
    before = len(fake.seen)
    chat = ChatService(ChatConfig(), providers(fake, "a"), Passages([]), NoRows(), Open(), Sessions())
    result = await chat.answer(AnswerRequest("anything?", ("notes",), model="a/cite"), None)
    assert (result.answer, result.grounded, result.citations, result.sources_retrieved) == ("", False, (), 0)
    assert len(fake.seen) == before


async def test_the_model_sees_numbered_sources_with_their_rows(fake: FakeLLM) -> None:
    chat = ChatService(ChatConfig(), providers(fake, "a"), Passages(PASSAGES), NoRows(), Open(), Sessions())
    result = await chat.answer(AnswerRequest("who welds?", ("notes",), model="a/cite"), None)
    assert result.grounded and [c.number for c in result.citations] == [1, 2]
    prompt = fake.seen[-1].body["messages"][1]["content"]
    assert "[1] (notes/n1, row 1 of notes)\nWelds MIG and TIG." in prompt
    assert prompt.endswith("Question: who welds?")
