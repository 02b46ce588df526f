"""ChatService glue: protobuf <-> domain, a few lines per RPC; the service's start, drain and close.

The caller's gRPC deadline becomes the domain's deadline, so retries and provider timeouts stay
inside it. Cancelling a ChatStream (or a Chat) cancels the handler task, which closes the HTTP
response and with it the upstream request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from lakehouse.chat.v1 import chat_service_pb2 as pb
from lakehouse.chat.v1 import chat_service_pb2_grpc as pb_grpc
from lakehouse.common.v1 import arrow_pb2, refs_pb2
from lakehouse.server.chat import service as domain
from lakehouse.server.chat.gateways import Delta, Message, ProviderStatus, Usage
from lakehouse.server.chat.peers import CatalogPolicies, QueryRows, SessionWriter, VectorRetriever
from lakehouse.server.chat.providers import make_providers
from lakehouse.server.chat.sessions import SessionLog
from lakehouse.server.common.app import MeshServer, ServiceBinding
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import Config
from lakehouse.server.common.convert import seconds, to_timestamp
from lakehouse.server.common.errors import invalid_field
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.paging import page_of, page_request
from lakehouse.server.common.peers import PeerChannels

SERVICE = pb.DESCRIPTOR.services_by_name["ChatService"]
_ROLES = {pb.MESSAGE_ROLE_SYSTEM: "system", pb.MESSAGE_ROLE_USER: "user", pb.MESSAGE_ROLE_ASSISTANT: "assistant"}
_MODES: dict[int, domain.AnswerMode] = {
    pb.ANSWER_MODE_UNSPECIFIED: "",
    pb.ANSWER_MODE_GENERATED: "GENERATED",
    pb.ANSWER_MODE_EXTRACTIVE: "EXTRACTIVE",
}


class ChatServicer(pb_grpc.ChatServiceServicer):
    def __init__(self, chat: domain.ChatService) -> None:
        self._chat = chat

    async def ListProviders(self, request: pb.ListProvidersRequest, context: Any) -> pb.ListProvidersResponse:
        page = page_request(request.page_size, request.page_token)
        infos = await self._chat.list_providers(request.probe, _deadline(context))
        infos = [i for i in infos if page.after is None or i.name > page.after][: page.size + 1]
        shown, token = page_of(infos, page, lambda i: i.name)
        return pb.ListProvidersResponse(providers=[provider_pb(i) for i in shown], next_page_token=token)

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        page = page_request(request.page_size, request.page_token)
        models, skipped = await self._chat.list_models(request.provider, _deadline(context))
        models = [m for m in models if page.after is None or m.name > page.after][: page.size + 1]
        shown, token = page_of(models, page, lambda m: m.name)
        return pb.ListModelsResponse(
            models=[pb.Model(name=m.name, provider=m.provider, model=m.model, is_default=m.is_default) for m in shown],
            next_page_token=token,
            skipped_providers=skipped,
        )

    async def Chat(self, request: pb.ChatRequest, context: Any) -> pb.ChatResponse:
        result = await self._chat.chat(chat_request(request), _deadline(context))
        c = result.completion
        return pb.ChatResponse(
            content=c.content,
            finish_reason=_finish(c.finish_reason),
            usage=usage_pb(c.usage),
            provider=result.provider,
            model=result.model,
            latency=seconds(result.latency_s),
        )

    async def ChatStream(self, request: pb.ChatStreamRequest, context: Any) -> AsyncIterator[pb.ChatStreamResponse]:
        async for event in self._chat.chat_stream(chat_request(request), _deadline(context)):
            if isinstance(event, Delta):
                yield pb.ChatStreamResponse(delta=pb.ChatDelta(content=event.content))
            else:
                yield pb.ChatStreamResponse(
                    summary=pb.ChatStreamSummary(
                        finish_reason=_finish(event.finish_reason),
                        usage=usage_pb(event.usage),
                        provider=event.provider,
                        model=event.model,
                        time_to_first_token=seconds(event.time_to_first_token_s),
                        latency=seconds(event.latency_s),
                    )
                )

    async def Answer(self, request: pb.AnswerRequest, context: Any) -> pb.AnswerResponse:
        result = await self._chat.answer(
            domain.AnswerRequest(
                question=request.question,
                collections=tuple(request.collections),
                k=request.k,
                model=request.model,
                profile=request.profile,
                include_sql_context=request.include_sql_context,
                mode=answer_mode(request.mode),
            ),
            _deadline(context),
        )
        return pb.AnswerResponse(
            answer=result.answer,
            citations=[citation_pb(c) for c in result.citations],
            grounded=result.grounded,
            unknown_source_numbers=list(result.unknown_numbers),
            sources_retrieved=result.sources_retrieved,
            mode=pb.AnswerMode.Value(f"ANSWER_MODE_{result.mode}"),
            model=result.model,
            provider=result.provider,
            usage=usage_pb(result.usage),
            latency=seconds(result.latency_s),
        )


# -- conversions -----------------------------------------------------------------------------------


def _deadline(context: Any) -> float | None:
    """The caller's deadline as a monotonic instant; None when the call has none."""
    left = context.time_remaining() if context is not None else None
    return None if left is None else time.monotonic() + left


def answer_mode(value: int) -> domain.AnswerMode:
    if value not in _MODES:
        raise invalid_field("mode", f"unknown answer mode {value}", reason="INVALID_MODE")
    return _MODES[value]


def chat_request(r: pb.ChatRequest | pb.ChatStreamRequest) -> domain.ChatRequest:
    return domain.ChatRequest(
        model=r.model,
        messages=tuple(Message(_ROLES.get(m.role, ""), m.content) for m in r.messages),  # type: ignore[arg-type]
        temperature=r.temperature if r.HasField("temperature") else None,
        max_tokens=r.max_tokens if r.HasField("max_tokens") else None,
        json_mode=r.json_mode,
        stop=tuple(r.stop),
    )


def _finish(reason: str) -> Any:
    return pb.FinishReason.Value(f"FINISH_REASON_{reason or 'UNSPECIFIED'}")


def usage_pb(usage: Usage | None) -> pb.Usage | None:
    if usage is None:
        return None
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def _availability(status: ProviderStatus) -> Any:
    return pb.ProviderAvailability.Value(f"PROVIDER_AVAILABILITY_{status.availability}")


def provider_pb(info: domain.ProviderInfo) -> pb.Provider:
    return pb.Provider(
        name=info.name,
        kind=pb.ProviderKind.Value(f"PROVIDER_KIND_{info.kind.upper()}"),
        base_url=info.base_url,
        default_model=info.default_model,
        is_default=info.is_default,
        availability=_availability(info.status),
        availability_reason=info.status.reason,
        timeout=seconds(info.timeout_s),
        probe_time=to_timestamp(info.status.probe_time),
    )


def citation_pb(c: domain.Citation) -> pb.Citation:
    p = c.passage
    out = pb.Citation(
        source_number=c.number,
        collection=p.collection,
        id=p.id,
        row_key=p.row_key,
        snippet=c.snippet,
        distance=p.distance,
    )
    if p.source_dataset:
        out.source_dataset.CopyFrom(refs_pb2.DatasetRef(dataset=p.source_dataset, version=p.source_version))
    if c.row is not None:
        out.row.CopyFrom(arrow_pb2.ArrowTable(arrow_ipc=c.row.arrow_ipc, row_count=1))
    return out


# -- binding ---------------------------------------------------------------------------------------


def build(
    config: Config, executor: BlockingExecutor, peers: PeerChannels, authenticator: TokenAuthenticator
) -> ServiceBinding:
    """The chat service ready to host: one pooled HTTP client per configured provider."""
    chat = config.chat
    providers = make_providers(chat)
    writer = SessionWriter(peers, authenticator.mesh_authorization, chat.session_dataset)
    sessions = SessionLog(
        writer.append if chat.session_dataset else None, executor, chat.session_flush_s, chat.session_max_buffered
    )
    service = domain.ChatService(
        chat, providers, VectorRetriever(peers), QueryRows(peers), CatalogPolicies(peers), sessions
    )
    servicer = ChatServicer(service)

    async def start(server: MeshServer) -> dict[str, str]:
        sessions.start()
        return {}

    async def close() -> None:
        await sessions.close()
        for provider in providers.values():
            await provider.close()

    return ServiceBinding(
        name="chat",
        full_name=SERVICE.full_name,
        register=lambda server: pb_grpc.add_ChatServiceServicer_to_server(servicer, server),
        close=close,
        start=start,
        drain=sessions.close,
    )
