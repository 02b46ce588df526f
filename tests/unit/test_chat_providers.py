"""The HTTP providers against the fake provider on loopback (real sockets, real httpx): both wire
protocols, streaming, usage, truncation, the error table, retry bounds, deadlines, key redaction."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from lakehouse.server.chat.gateways import ChatCall, Completion, Delta, Message
from lakehouse.server.chat.providers import HttpProvider, make_providers
from lakehouse.server.common.config import ChatConfig, ProviderConfig
from lakehouse.server.common.errors import Code, LakehouseError
from tests.support.fake_llm import FakeLLM

KEY = "sk-test-5b1f0c9e7d2a4f16"
KINDS = ("openai", "ollama")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM(api_key=KEY) as server:
        yield server


def _chat(fake: FakeLLM, *, key_env: str = "FAKE_KEY", timeout_s: float = 10.0, attempts: int = 3) -> ChatConfig:
    providers = {
        kind: ProviderConfig(
            kind=kind, base_url=fake.url, api_key_env=key_env, timeout_s=timeout_s, default_model="echo"
        )
        for kind in KINDS
    }
    return ChatConfig(providers=providers, default_provider="openai", max_attempts=attempts, max_backoff_s=1.0)


@pytest_asyncio.fixture
async def providers(fake: FakeLLM) -> AsyncIterator[dict[str, HttpProvider]]:
    made = make_providers(_chat(fake), {"FAKE_KEY": KEY})
    yield made
    for p in made.values():
        await p.close()


def call(model: str, text: str = "hello there world", **kw: object) -> ChatCall:
    return ChatCall(model, (Message("user", text),), **kw)  # type: ignore[arg-type]


async def _error(coro: object) -> LakehouseError:
    with pytest.raises(LakehouseError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_reply_comes_with_finish_reason_and_usage(providers: dict[str, HttpProvider], kind: str) -> None:
    reply = await providers[kind].complete(call("echo"), None)
    assert reply.content == "echo: hello there world"
    assert reply.finish_reason == "STOP"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (3, 4)


@pytest.mark.parametrize("kind", KINDS)
async def test_max_tokens_truncates_and_says_length(providers: dict[str, HttpProvider], kind: str) -> None:
    reply = await providers[kind].complete(call("echo", max_tokens=2), None)
    assert reply.content == "echo: hello"
    assert reply.finish_reason == "LENGTH"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_yields_deltas_in_order_then_one_summary(providers: dict[str, HttpProvider], kind: str) -> None:
    events = [e async for e in providers[kind].stream(call("echo", max_tokens=3), None)]
    deltas = [e.content for e in events if isinstance(e, Delta)]
    assert "".join(deltas) == "echo: hello there"
    assert len(deltas) == 3
    assert isinstance(events[-1], Completion) and sum(isinstance(e, Completion) for e in events) == 1
    assert events[-1].finish_reason == "LENGTH"
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 3


async def test_unset_temperature_is_left_out_upstream_and_set_options_are_sent(
    fake: FakeLLM, providers: dict[str, HttpProvider]
) -> None:
    await providers["openai"].complete(call("echo", text="t-omitted"), None)
    await providers["openai"].complete(call("echo", text="t-set", temperature=0.3, json_mode=True, stop=("END",)), None)
    await providers["ollama"].complete(call("echo", text="o-set", temperature=0.0, max_tokens=5), None)
    bodies = {s.body["messages"][0]["content"]: s.body for s in fake.seen if s.body.get("messages")}
    assert "temperature" not in bodies["t-omitted"]
    assert bodies["t-set"]["temperature"] == 0.3
    assert bodies["t-set"]["response_format"] == {"type": "json_object"}
    assert bodies["t-set"]["stop"] == ["END"]
    assert bodies["o-set"]["options"] == {"temperature": 0.0, "num_predict": 5}
    assert bodies["o-set"]["stream"] is False


@pytest.mark.parametrize(
    ("model", "code", "reason"),
    [
        ("missing", Code.NOT_FOUND, "MODEL_NOT_FOUND"),
        ("bad-request", Code.INVALID_ARGUMENT, "PROVIDER_REJECTED_REQUEST"),
        ("server-error", Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        ("overloaded", Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        ("rate-limited", Code.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED"),
        ("malformed", Code.UNAVAILABLE, "PROVIDER_BAD_RESPONSE"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_upstream_failures_map_to_clear_codes(
    providers: dict[str, HttpProvider], kind: str, model: str, code: Code, reason: str
) -> None:
    error = await _error(providers[kind].complete(call(model), None))
    assert (error.code, error.reason) == (code, reason)
    assert error.metadata["provider"] == kind


async def test_a_rate_limit_carries_retry_after_and_is_retried_a_bounded_number_of_times(fake: FakeLLM) -> None:
    (provider,) = [p for n, p in make_providers(_chat(fake, attempts=3), {"FAKE_KEY": KEY}).items() if n == "openai"]
    before = fake.counts["rate-limited"]
    fake.retry_after = "0"
    error = await _error(provider.complete(call("rate-limited"), None))
    assert error.code == Code.RESOURCE_EXHAUSTED and error.retry_after_s == 0.0
    assert fake.counts["rate-limited"] - before == 3
    await provider.close()


async def test_a_retry_after_longer_than_the_caller_may_wait_is_not_waited_for(fake: FakeLLM) -> None:
    provider = make_providers(_chat(fake), {"FAKE_KEY": KEY})["openai"]
    before = fake.counts["rate-limited"]
    fake.retry_after = "30"
    try:
        error = await _error(provider.complete(call("rate-limited"), time.monotonic() + 5))
    finally:
        fake.retry_after = "0"
        await provider.close()
    assert error.retry_after_s == 30.0
    assert fake.counts["rate-limited"] - before == 1


async def test_503_is_retried_until_it_succeeds_but_500_is_not(
    fake: FakeLLM, providers: dict[str, HttpProvider]
) -> None:
    before = fake.counts["flaky"]
    fake.counts["flaky"] = 0
    reply = await providers["openai"].complete(call("flaky"), None)
    assert reply.content.startswith("echo:")
    assert fake.counts["flaky"] == fake.flaky_failures + 1
    fake.counts["flaky"] += before
    errors_before = fake.counts["server-error"]
    await _error(providers["openai"].complete(call("server-error"), None))
    assert fake.counts["server-error"] - errors_before == 1


async def test_connection_errors_are_retried_and_end_unavailable() -> None:
    with FakeLLM() as gone:
        url = gone.url
    chat = ChatConfig(providers={"dead": ProviderConfig(kind="openai", base_url=url, default_model="echo")})
    provider = make_providers(chat)["dead"]
    try:
        error = await _error(provider.complete(call("echo"), None))
    finally:
        await provider.close()
    assert (error.code, error.reason) == (Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE")


async def test_a_slow_provider_ends_at_the_callers_deadline(fake: FakeLLM, providers: dict[str, HttpProvider]) -> None:
    error = await _error(providers["ollama"].complete(call("slow"), time.monotonic() + 0.3))
    assert (error.code, error.reason) == (Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_cut_after_it_started_is_interrupted_and_not_retried(
    fake: FakeLLM, providers: dict[str, HttpProvider], kind: str
) -> None:
    before = fake.counts["interrupt"]
    got: list[str] = []
    with pytest.raises(LakehouseError) as caught:
        async for event in providers[kind].stream(call("interrupt"), None):
            if isinstance(event, Delta):
                got.append(event.content)
    assert got == ["echo:", " hello"]
    assert (caught.value.code, caught.value.reason) == (Code.UNAVAILABLE, "PROVIDER_STREAM_INTERRUPTED")
    assert fake.counts["interrupt"] - before == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_event_after_the_first_delta_is_an_interruption(
    providers: dict[str, HttpProvider], kind: str
) -> None:
    with pytest.raises(LakehouseError) as caught:
        async for _ in providers[kind].stream(call("stream-error"), None):
            pass
    assert caught.value.reason == "PROVIDER_STREAM_INTERRUPTED"
    assert "out of memory" in caught.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_malformed_stream_line_is_a_bad_response(providers: dict[str, HttpProvider], kind: str) -> None:
    with pytest.raises(LakehouseError) as caught:
        async for _ in providers[kind].stream(call("malformed"), None):
            pass
    assert caught.value.reason == "PROVIDER_BAD_RESPONSE"


async def test_closing_a_stream_early_drops_the_upstream_connection(
    fake: FakeLLM, providers: dict[str, HttpProvider]
) -> None:
    before = fake.disconnects
    stream = providers["openai"].stream(call("slow-stream"), None)
    async for event in stream:
        assert isinstance(event, Delta)
        break
    await stream.aclose()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while fake.disconnects == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fake.disconnects == before + 1


async def test_models_are_listed_from_both_protocols(providers: dict[str, HttpProvider]) -> None:
    for p in providers.values():
        assert "echo" in await p.models(None)


async def test_a_missing_key_makes_the_provider_misconfigured_not_a_crash(fake: FakeLLM) -> None:
    provider = make_providers(_chat(fake, key_env="UNSET_FAKE_KEY"), {})["openai"]
    try:
        assert provider.status().availability == "MISCONFIGURED"
        assert "UNSET_FAKE_KEY" in provider.status().reason
        error = await _error(provider.complete(call("echo"), None))
    finally:
        await provider.close()
    assert (error.code, error.reason) == (Code.FAILED_PRECONDITION, "PROVIDER_MISCONFIGURED")


async def test_the_key_never_appears_in_errors_or_logs(fake: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages = []
    wrong = make_providers(_chat(fake), {"FAKE_KEY": KEY + "-wrong"})["openai"]
    right = make_providers(_chat(fake), {"FAKE_KEY": KEY})
    try:
        error = await _error(wrong.complete(call("echo"), None))
        assert (error.code, error.reason) == (Code.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED")
        messages.append(error.message)
        for p in right.values():
            leak = await _error(p.complete(call("leak-key"), None))
            assert leak.reason == "PROVIDER_REJECTED_REQUEST"
            messages.append(leak.message)
            await _error(p.complete(call("rate-limited"), None))
        probed = await wrong.probe(None)
        messages.append(probed.reason)
    finally:
        await wrong.close()
        for p in right.values():
            await p.close()
    assert "[redacted]" in " ".join(messages)
    for text in [*messages, caplog.text]:
        assert KEY not in text


async def test_credentials_in_the_base_url_are_never_shown() -> None:
    with FakeLLM() as gone:
        url = gone.url.replace("http://", "http://user:s3cret@")
    provider = make_providers(ChatConfig(providers={"p": ProviderConfig(kind="ollama", base_url=url)}))["p"]
    try:
        error = await _error(provider.complete(call("echo"), None))
    finally:
        await provider.close()
    assert "s3cret" not in provider.base_url and "s3cret" not in error.message
    assert provider.base_url.startswith("http://127.0.0.1:")
