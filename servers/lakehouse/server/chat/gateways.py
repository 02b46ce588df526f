"""What the chat domain works with: the conversation types, and protocols for what it reaches
beyond itself (LLM providers, the vector service's search, row reads, the session log, policies)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal, Protocol

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["", "STOP", "LENGTH", "CONTENT_FILTER"]
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Message:
    """One message of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True)
class ChatCall:
    """One request to a model, as a provider sends it upstream."""

    model: str
    """Model id as the provider knows it (no routing prefix)."""
    messages: tuple[Message, ...]
    temperature: float | None = None
    """None: left out upstream, so the provider's default applies."""
    max_tokens: int | None = None
    json_mode: bool = False
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Usage:
    """Token counts a provider reported."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """A whole reply (or, at the end of a stream, the reply's summary with empty content)."""

    content: str
    finish_reason: FinishReason
    usage: Usage | None


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed reply; never empty."""

    content: str


StreamEvent = Delta | Completion
"""A stream yields deltas, then exactly one Completion (content "") as its last event."""


@dataclass(frozen=True)
class ProviderStatus:
    """Whether a provider can take calls, and why not."""

    availability: Literal["AVAILABLE", "MISCONFIGURED", "UNREACHABLE"]
    reason: str = ""
    """Never contains a key."""
    probe_time: datetime | None = None


class Provider(Protocol):
    """An LLM endpoint of one wire protocol. `deadline` is a `time.monotonic()` instant or None."""

    kind: ClassVar[str]
    name: str
    base_url: str
    default_model: str
    timeout_s: float

    def status(self) -> ProviderStatus: ...

    async def probe(self, deadline: float | None) -> ProviderStatus: ...

    async def complete(self, call: ChatCall, deadline: float | None) -> Completion: ...

    def stream(self, call: ChatCall, deadline: float | None) -> AsyncIterator[StreamEvent]: ...

    async def models(self, deadline: float | None) -> list[str]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Passage:
    """A retrieved search hit: what Answer cites."""

    collection: str
    id: str
    text: str
    distance: float
    metadata: Mapping[str, Scalar] = field(default_factory=dict)

    @property
    def source_dataset(self) -> str:
        value = self.metadata.get("source_dataset")
        return value if isinstance(value, str) else ""

    @property
    def source_version(self) -> int | None:
        value = self.metadata.get("source_version")
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def row_key(self) -> str:
        value = self.metadata.get("source_key")
        return "" if value is None else str(value)


class Retriever(Protocol):
    """The vector service's Search, called as the caller (profiles, views, tombstones apply)."""

    async def search(self, collections: Sequence[str], text: str, k: int) -> list[Passage]: ...


@dataclass(frozen=True)
class SourceRow:
    """A passage's source row as the caller may see it: column values and Arrow IPC bytes."""

    values: Mapping[str, object]
    arrow_ipc: bytes


class RowReader(Protocol):
    """Source rows of passages, read through the query service as the caller."""

    async def rows(self, passages: Sequence[Passage]) -> list[SourceRow | None]: ...


@dataclass(frozen=True)
class ChatPolicy:
    """What the caller's access policy (or a named profile) says about chat."""

    profile: str
    restricted: bool
    collections: frozenset[str]
    default_chat_model: str
    previewed_datasets: frozenset[str] | None = None
    """For a profile an admin names (not the caller's own): the datasets it reads in full. Source
    rows are read as the caller (the admin), so only rows of these datasets are returned; None for
    the caller's own policy, which the query service enforces itself."""


class Policies(Protocol):
    """The caller's policy, and a named profile's (for admins previewing an agent's view)."""

    async def caller(self) -> ChatPolicy: ...

    async def profile(self, name: str) -> ChatPolicy: ...


@dataclass(frozen=True)
class SessionRecord:
    """One Chat, ChatStream or Answer call, as the session log keeps it (no prompts, no keys)."""

    time: datetime
    request_id: str
    principal: str
    method: str
    model: str
    provider: str
    mode: str
    code: str
    latency_ms: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    citations: tuple[str, ...] = ()
    grounded: bool | None = None


class SessionSink(Protocol):
    """Where session records go; `append` never blocks and never raises."""

    def append(self, record: SessionRecord) -> None: ...
