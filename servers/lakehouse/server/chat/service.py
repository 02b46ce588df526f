"""The chat domain: routing a model name to a provider, Chat and ChatStream, and Answer (retrieval,
numbered sources, citations checked against what was retrieved, extractive without a model).

No grpc here: the servicer converts messages; peers and providers come in through gateways.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from lakehouse.server.chat.gateways import (
    ChatCall,
    ChatPolicy,
    Completion,
    Delta,
    FinishReason,
    Message,
    Passage,
    Policies,
    Provider,
    ProviderStatus,
    Retriever,
    RowReader,
    SessionRecord,
    SessionSink,
    SourceRow,
    Usage,
)
from lakehouse.server.common.config import ChatConfig
from lakehouse.server.common.context import current_call, current_principal
from lakehouse.server.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    LakehouseError,
    NotFound,
    PermissionDenied,
    invalid_field,
)

log = logging.getLogger("lakehouse.chat")

MAX_STOP = 4
MAX_K = 50
SNIPPET_CHARS = 1000
"""Most characters of a passage given to the model and returned in its citation."""
ROLES = ("system", "user", "assistant")
AnswerMode = Literal["", "GENERATED", "EXTRACTIVE"]
ANSWER_INSTRUCTIONS = (
    "Answer the question using only the numbered sources. Cite the sources you use with their numbers "
    "in square brackets, like [1] or [2][3]. Cite no number that is not listed. If the sources do not "
    "answer the question, say so."
)
# "[1]", "[1, 3]", "[2][3]": every number inside square brackets made only of numbers and commas.
_CITED = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


# -- routing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    provider: Provider
    model: str
    """Model id sent upstream, without the prefix."""


class Router:
    """ "provider/model" picks a configured provider; a bare name goes to the default provider.

    A prefix that names no provider is NOT_FOUND rather than a model name for the default provider:
    a typo in the prefix must not silently send the prompt (and the default provider's key)
    somewhere else. Model ids that contain "/" themselves (OpenRouter's "meta-llama/...") are
    written with the provider in front: "openrouter/meta-llama/llama-3.1-8b-instruct".
    """

    def __init__(self, providers: Mapping[str, Provider], default: str) -> None:
        self.providers = dict(providers)
        self.default = default

    def route(self, model: str, field_name: str = "model") -> Route:
        if "/" in model:
            prefix, upstream = model.split("/", 1)
            provider = self.providers.get(prefix)
            if provider is None:
                known = ", ".join(sorted(self.providers)) or "none are configured"
                raise NotFound(
                    f"no provider {prefix!r} in [chat.providers] (providers: {known})",
                    reason="PROVIDER_NOT_FOUND",
                    violations=[FieldViolation(field_name, f"unknown provider prefix {prefix!r}")],
                    metadata={"provider": prefix},
                )
        else:
            provider = self._default_provider()
            upstream = model
        upstream = upstream or provider.default_model
        if not upstream:
            raise invalid_field(
                field_name,
                f"name a model: provider {provider.name!r} has no default_model configured",
                reason="MODEL_REQUIRED",
            )
        return Route(provider, upstream)

    def _default_provider(self) -> Provider:
        if not self.providers:
            raise no_provider()
        if not self.default:
            raise FailedPrecondition(
                "several providers are configured and none is the default: name one as provider/model, "
                "or set [chat] default_provider",
                reason="NO_DEFAULT_PROVIDER",
            )
        return self.providers[self.default]


def no_provider() -> FailedPrecondition:
    return FailedPrecondition(
        "no LLM provider is configured: add one to lakehouse.toml, for example\n"
        '[chat.providers.ollama]\nkind = "ollama"\nbase_url = "http://127.0.0.1:11434"\ndefault_model = "llama3.2"',
        reason="NO_PROVIDER_CONFIGURED",
    )


# -- requests and results --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    json_mode: bool = False
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatResult:
    completion: Completion
    provider: str
    model: str
    latency_s: float


@dataclass(frozen=True)
class StreamSummary:
    finish_reason: FinishReason
    usage: Usage | None
    provider: str
    model: str
    time_to_first_token_s: float
    latency_s: float


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    kind: str
    base_url: str
    default_model: str
    is_default: bool
    timeout_s: float
    status: ProviderStatus


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    model: str
    is_default: bool

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    collections: tuple[str, ...] = ()
    k: int = 0
    model: str = ""
    profile: str = ""
    include_sql_context: bool = False
    mode: AnswerMode = ""


@dataclass(frozen=True)
class Citation:
    number: int
    passage: Passage
    snippet: str
    row: SourceRow | None = None


@dataclass(frozen=True)
class AnswerResult:
    answer: str
    citations: tuple[Citation, ...]
    grounded: bool
    unknown_numbers: tuple[int, ...]
    sources_retrieved: int
    mode: Literal["GENERATED", "EXTRACTIVE"]
    model: str = ""
    provider: str = ""
    usage: Usage | None = None
    latency_s: float = 0.0


@dataclass
class _Outcome:
    """What a call's session record says, filled in as the call goes."""

    model: str = ""
    provider: str = ""
    mode: str = ""
    usage: Usage | None = None
    citations: tuple[str, ...] = ()
    grounded: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)


# -- the service -----------------------------------------------------------------------------------


class ChatService:
    """Chat, ChatStream, Answer, ListProviders and ListModels. `deadline` is a `time.monotonic()`
    instant (the caller's gRPC deadline) or None."""

    def __init__(
        self,
        config: ChatConfig,
        providers: Mapping[str, Provider],
        retriever: Retriever,
        rows: RowReader,
        policies: Policies,
        sessions: SessionSink,
    ) -> None:
        self._config = config
        self._router = Router(providers, config.default_provider_name)
        self._retriever = retriever
        self._rows = rows
        self._policies = policies
        self._sessions = sessions

    # -- providers and models ------------------------------------------------------------------

    async def list_providers(self, probe: bool, deadline: float | None) -> list[ProviderInfo]:
        named = sorted(self._router.providers.items())
        # Probes run at once, so a slow provider costs its own timeout, not the sum of all of them.
        statuses = (
            await asyncio.gather(*(p.probe(deadline) for _, p in named)) if probe else [p.status() for _, p in named]
        )
        return [
            ProviderInfo(name, p.kind, p.base_url, p.default_model, name == self._router.default, p.timeout_s, status)
            for (name, p), status in zip(named, statuses, strict=True)
        ]

    async def list_models(self, provider: str, deadline: float | None) -> tuple[list[ModelInfo], list[str]]:
        """Models of one provider (its failures raised) or of every provider (failures skipped)."""
        if provider:
            chosen = self._router.providers.get(provider)
            if chosen is None:
                raise NotFound(
                    f"no provider {provider!r} in [chat.providers]",
                    reason="PROVIDER_NOT_FOUND",
                    violations=[FieldViolation("provider", "not a configured provider")],
                )
            return self._models_of(chosen, await chosen.models(deadline)), []
        named = sorted(self._router.providers.items())
        answers = await asyncio.gather(*(p.models(deadline) for _, p in named), return_exceptions=True)
        models: list[ModelInfo] = []
        skipped: list[str] = []
        for (name, p), answer in zip(named, answers, strict=True):
            if isinstance(answer, LakehouseError):
                log.info("ListModels skipped provider %s: %s", name, answer.message)
                skipped.append(name)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                models += self._models_of(p, answer)
        return sorted(models, key=lambda m: m.name), skipped

    @staticmethod
    def _models_of(p: Provider, ids: Sequence[str]) -> list[ModelInfo]:
        return [ModelInfo(p.name, m, m == p.default_model) for m in ids]

    # -- chat ----------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, deadline: float | None) -> ChatResult:
        outcome = _Outcome()
        started = time.perf_counter()
        code = "CANCELLED"  # stays so when the caller goes away before the reply
        try:
            route, call = await self._prepare(request, outcome)
            sent = time.perf_counter()
            completion = await route.provider.complete(call, deadline)
            outcome.usage = completion.usage
            code = "OK"
            return ChatResult(completion, route.provider.name, route.model, time.perf_counter() - sent)
        except Exception as exc:
            code = _code(exc)
            raise
        finally:
            self._record("Chat", outcome, code, started)

    async def chat_stream(self, request: ChatRequest, deadline: float | None) -> AsyncIterator[Delta | StreamSummary]:
        """Deltas in order, then one StreamSummary."""
        outcome = _Outcome()
        started = time.perf_counter()
        code = "CANCELLED"  # stays so when the caller goes away mid-stream
        try:
            route, call = await self._prepare(request, outcome)
            sent = time.perf_counter()
            first: float | None = None
            async for event in route.provider.stream(call, deadline):
                if isinstance(event, Delta):
                    first = first if first is not None else time.perf_counter()
                    yield event
                    continue
                now = time.perf_counter()
                outcome.usage = event.usage
                code = "OK"
                yield StreamSummary(
                    event.finish_reason,
                    event.usage,
                    route.provider.name,
                    route.model,
                    (first if first is not None else now) - sent,
                    now - sent,
                )
                return
        except Exception as exc:
            code = _code(exc)
            raise
        finally:
            self._record("ChatStream", outcome, code, started)

    async def _prepare(self, request: ChatRequest, outcome: _Outcome) -> tuple[Route, ChatCall]:
        validate_chat(request)
        route = self._router.route(request.model or (await self._policies.caller()).default_chat_model)
        outcome.provider, outcome.model, outcome.mode = route.provider.name, route.model, "GENERATED"
        call = ChatCall(
            route.model, request.messages, request.temperature, request.max_tokens, request.json_mode, request.stop
        )
        return route, call

    # -- answer --------------------------------------------------------------------------------

    async def answer(self, request: AnswerRequest, deadline: float | None) -> AnswerResult:
        outcome = _Outcome()
        started = time.perf_counter()
        code = "CANCELLED"
        try:
            result = await self._answer(request, deadline, outcome)
            result = AnswerResult(**{**result.__dict__, "latency_s": time.perf_counter() - started})
            outcome.citations = tuple(f"{c.passage.collection}/{c.passage.id}" for c in result.citations)
            outcome.grounded = result.grounded
            outcome.mode = result.mode
            outcome.usage = result.usage
            code = "OK"
            return result
        except Exception as exc:
            code = _code(exc)
            raise
        finally:
            self._record("Answer", outcome, code, started)

    async def _answer(self, request: AnswerRequest, deadline: float | None, outcome: _Outcome) -> AnswerResult:
        validate_answer(request)
        policy = await self._policy(request.profile)
        collections = self._collections(request, policy)
        route = self._answer_route(request, policy)
        if route is not None:
            outcome.provider, outcome.model = route.provider.name, route.model
        passages = await self._retriever.search(collections, request.question, request.k or self._config.answer_k)
        rows: list[SourceRow | None] = [None] * len(passages)
        if request.include_sql_context and passages:
            rows = await self._rows.rows(passages)
            if policy.previewed_datasets is not None:  # read as the admin: keep what the profile may read
                rows = [
                    r if p.source_dataset in policy.previewed_datasets else None
                    for p, r in zip(passages, rows, strict=True)
                ]
        sources = [
            Citation(i, p, p.text[:SNIPPET_CHARS], row)
            for i, (p, row) in enumerate(zip(passages, rows, strict=True), 1)
        ]
        mode: Literal["GENERATED", "EXTRACTIVE"] = "EXTRACTIVE" if route is None else "GENERATED"
        if not sources:  # nothing to ground an answer in: no model call
            return AnswerResult("", (), False, (), 0, mode, route.model if route else "", _provider(route))
        if route is None:
            return extractive_answer(sources)
        call = ChatCall(route.model, answer_prompt(request.question, sources))
        completion = await route.provider.complete(call, deadline)
        cited, unknown = check_citations(completion.content, len(sources))
        return AnswerResult(
            answer=completion.content,
            citations=tuple(sources[n - 1] for n in cited),
            grounded=bool(cited) and not unknown,
            unknown_numbers=tuple(unknown),
            sources_retrieved=len(sources),
            mode="GENERATED",
            model=route.model,
            provider=route.provider.name,
            usage=completion.usage,
        )

    async def _policy(self, profile: str) -> ChatPolicy:
        """The caller's policy, or the named profile's for an admin previewing it.

        An agent may name only its own profile; a reader or writer has none to name.
        """
        principal = current_principal()
        if not profile or profile == principal.profile:
            return await self._policies.caller()
        if principal.role != "admin":
            raise PermissionDenied(
                f"{principal.name} may not answer as profile {profile!r}: only admins may name another profile",
                reason="PROFILE_NOT_ALLOWED",
                violations=[FieldViolation("profile", "not the caller's own profile")],
                metadata={"profile": profile},
            )
        return await self._policies.profile(profile)

    @staticmethod
    def _collections(request: AnswerRequest, policy: ChatPolicy) -> tuple[str, ...]:
        if not request.collections:
            if not policy.restricted or not policy.collections:
                raise invalid_field(
                    "collections",
                    "name the collections to retrieve from (no profile binds any to the caller)",
                    reason="NO_COLLECTIONS",
                )
            return tuple(sorted(policy.collections))
        if request.profile and policy.restricted:
            # The vector service checks the caller's own profile; a previewed one is checked here.
            outside = [c for c in request.collections if c not in policy.collections]
            if outside:
                raise PermissionDenied(
                    f"profile {policy.profile!r} may not search {', '.join(outside)}",
                    reason="COLLECTION_NOT_ALLOWED",
                    violations=[
                        FieldViolation(f"collections[{request.collections.index(c)}]", "not bound to the profile")
                        for c in outside
                    ],
                    metadata={"profile": policy.profile, "allowed": ",".join(sorted(policy.collections))},
                )
        return request.collections

    def _answer_route(self, request: AnswerRequest, policy: ChatPolicy) -> Route | None:
        """The model to answer with, or None for an extractive answer."""
        if request.mode == "EXTRACTIVE":
            return None
        if not self._router.providers:
            if request.mode == "GENERATED":
                raise no_provider()
            return None
        return self._router.route(request.model or policy.default_chat_model)

    # -- session log ---------------------------------------------------------------------------

    def _record(self, method: str, outcome: _Outcome, code: str, started: float) -> None:
        call = current_call()
        usage = outcome.usage
        self._sessions.append(
            SessionRecord(
                time=datetime.now(UTC),
                request_id=call.request_id if call else "",
                principal=current_principal().name,
                method=method,
                model=outcome.model,
                provider=outcome.provider,
                mode=outcome.mode,
                code=code,
                latency_ms=(time.perf_counter() - started) * 1000,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                citations=outcome.citations,
                grounded=outcome.grounded,
            )
        )


def _code(exc: Exception) -> str:
    """The status a failed call ends with, for its session record."""
    return exc.code.name if isinstance(exc, LakehouseError) else "INTERNAL"


def _provider(route: Route | None) -> str:
    return route.provider.name if route else ""


# -- validation ------------------------------------------------------------------------------------


def validate_chat(request: ChatRequest) -> None:
    if not request.messages:
        raise invalid_field("messages", "give at least one message", reason="EMPTY_MESSAGES")
    for i, m in enumerate(request.messages):
        if m.role not in ROLES:
            raise invalid_field(f"messages[{i}].role", "must be system, user or assistant", reason="INVALID_ROLE")
    if request.temperature is not None and not 0.0 <= request.temperature <= 2.0:
        raise invalid_field("temperature", "must be between 0 and 2", reason="INVALID_TEMPERATURE")
    if request.max_tokens is not None and request.max_tokens < 1:
        raise invalid_field("max_tokens", "must be at least 1", reason="INVALID_MAX_TOKENS")
    if len(request.stop) > MAX_STOP:
        raise invalid_field("stop", f"at most {MAX_STOP} stop sequences", reason="TOO_MANY_STOP_SEQUENCES")


def validate_answer(request: AnswerRequest) -> None:
    if not request.question.strip():
        raise invalid_field("question", "must not be empty", reason="EMPTY_QUESTION")
    if not 0 <= request.k <= MAX_K:
        raise invalid_field("k", f"must be between 1 and {MAX_K} (0 means the default)", reason="INVALID_K")
    for i, name in enumerate(request.collections):
        if not name:
            raise InvalidArgument(
                f"collections[{i}]: must not be empty",
                reason="INVALID_COLLECTION",
                violations=[FieldViolation(f"collections[{i}]", "must not be empty")],
            )


# -- prompts and citations -------------------------------------------------------------------------


def answer_prompt(question: str, sources: Sequence[Citation]) -> tuple[Message, ...]:
    """A system message with the rules, and a user message with numbered sources then the question."""
    blocks = []
    for s in sources:
        where = f"{s.passage.collection}/{s.passage.id}"
        if s.passage.source_dataset:
            where += f", row {s.passage.row_key} of {s.passage.source_dataset}"
        block = f"[{s.number}] ({where})\n{s.snippet}"
        if s.row is not None:
            block += "\nrow: " + "; ".join(f"{k}={v}" for k, v in s.row.values.items())
        blocks.append(block)
    user = "Sources:\n\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    return (Message("system", ANSWER_INSTRUCTIONS), Message("user", user))


def check_citations(answer: str, source_count: int) -> tuple[list[int], list[int]]:
    """The numbers an answer cites that are sources (in order of first mention), and those that are not."""
    cited: list[int] = []
    unknown: list[int] = []
    for group in _CITED.findall(answer):
        for number in (int(n) for n in group.split(",")):
            target = cited if 1 <= number <= source_count else unknown
            if number not in target:
                target.append(number)
    return cited, unknown


def extractive_answer(sources: Sequence[Citation]) -> AnswerResult:
    """The passages themselves, best first, each followed by its citation number."""
    text = "\n\n".join(f"{s.snippet} [{s.number}]" for s in sources)
    return AnswerResult(text, tuple(sources), True, (), len(sources), "EXTRACTIVE")
