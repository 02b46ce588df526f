"""Typed async client for the chat service: providers, models, chat (whole or streamed), answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from lakehouse.chat.v1 import chat_service_pb2 as pb
from lakehouse.chat.v1 import chat_service_pb2_grpc as pb_grpc
from lakehouse.client._base import BaseAsyncClient

ROLES = {"system": pb.MESSAGE_ROLE_SYSTEM, "user": pb.MESSAGE_ROLE_USER, "assistant": pb.MESSAGE_ROLE_ASSISTANT}
ANSWER_MODES = {
    "": pb.ANSWER_MODE_UNSPECIFIED,
    "generated": pb.ANSWER_MODE_GENERATED,
    "extractive": pb.ANSWER_MODE_EXTRACTIVE,
}
Conversation = str | Sequence[tuple[str, str]] | Sequence[pb.ChatMessage]
"""A prompt (one user message), (role, content) pairs, or ChatMessage messages."""


def messages(conversation: Conversation, system: str = "") -> list[pb.ChatMessage]:
    """A conversation as ChatMessage messages, with an optional system message first."""
    out = [pb.ChatMessage(role=pb.MESSAGE_ROLE_SYSTEM, content=system)] if system else []
    if isinstance(conversation, str):
        return [*out, pb.ChatMessage(role=pb.MESSAGE_ROLE_USER, content=conversation)]
    for item in conversation:
        if isinstance(item, pb.ChatMessage):
            out.append(item)
        else:
            role, content = item
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
            out.append(pb.ChatMessage(role=ROLES[role], content=content))
    return out


def _chat_fields(
    model: str,
    conversation: Conversation,
    system: str,
    temperature: float | None,
    max_tokens: int | None,
    json_mode: bool,
    stop: Sequence[str],
) -> dict[str, object]:
    fields: dict[str, object] = {
        "model": model,
        "messages": messages(conversation, system),
        "json_mode": json_mode,
        "stop": list(stop),
    }
    if temperature is not None:
        fields["temperature"] = temperature
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    return fields


class AsyncChatClient(BaseAsyncClient):
    """The mesh's LLM gateway: "provider/model" routing, streaming, and answers with citations.

    Model calls can take long: give the client (or the call) a deadline that fits the model.
    Chat is retried only as the other calls are (UNAVAILABLE before sending, RESOURCE_EXHAUSTED
    with RetryInfo); the service itself already retried the provider inside the deadline.
    """

    def __init__(self, channel, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(channel, **kwargs)
        self._stub = pb_grpc.ChatServiceStub(channel)

    async def list_providers(self, *, probe: bool = False) -> list[pb.Provider]:
        """Every configured provider with its availability; `probe` contacts each one."""
        providers: list[pb.Provider] = []
        token = ""
        while True:
            request = pb.ListProvidersRequest(page_size=1000, page_token=token, probe=probe)
            response = await self._unary(self._stub.ListProviders, request)
            providers += response.providers
            token = response.next_page_token
            if not token:
                return providers

    async def list_models(self, provider: str = "") -> pb.ListModelsResponse:
        """Routable "provider/model" names of one provider, or of every available one."""
        models: list[pb.Model] = []
        token = ""
        while True:
            request = pb.ListModelsRequest(provider=provider, page_size=1000, page_token=token)
            response = await self._unary(self._stub.ListModels, request)
            models += response.models
            token = response.next_page_token
            if not token:
                return pb.ListModelsResponse(models=models, skipped_providers=response.skipped_providers)

    async def chat(
        self,
        conversation: Conversation,
        *,
        model: str = "",
        system: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        stop: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> pb.ChatResponse:
        """The model's whole reply to `conversation`."""
        request = pb.ChatRequest(**_chat_fields(model, conversation, system, temperature, max_tokens, json_mode, stop))  # type: ignore[arg-type]
        return await self._unary(self._stub.Chat, request, timeout_s=timeout_s, idempotent=False)

    async def chat_stream(
        self,
        conversation: Conversation,
        *,
        model: str = "",
        system: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        stop: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> AsyncIterator[pb.ChatStreamResponse]:
        """Deltas as they come, then one summary; leaving the loop early cancels the model call."""
        fields = _chat_fields(model, conversation, system, temperature, max_tokens, json_mode, stop)
        request = pb.ChatStreamRequest(**fields)  # type: ignore[arg-type]
        stream = self._server_stream(self._stub.ChatStream, request, timeout_s=timeout_s, idempotent=False)
        try:
            async for message in stream:
                yield message
        finally:
            await stream.aclose()

    async def answer(
        self,
        question: str,
        collections: Sequence[str] = (),
        *,
        k: int = 0,
        model: str = "",
        profile: str = "",
        include_sql_context: bool = False,
        mode: str = "",
        timeout_s: float | None = None,
    ) -> pb.AnswerResponse:
        """An answer from the lake with citations to the rows it came from; `mode` "extractive"
        returns the best passages themselves without calling a model."""
        request = pb.AnswerRequest(
            question=question,
            collections=list(collections),
            k=k,
            model=model,
            profile=profile,
            include_sql_context=include_sql_context,
            mode=ANSWER_MODES[mode.lower()],
        )
        return await self._unary(self._stub.Answer, request, timeout_s=timeout_s, idempotent=False)
