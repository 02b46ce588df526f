"""Chat commands: send a prompt (whole or streamed), answer a question from the lake with
citations, and list the LLM providers and their models."""

from __future__ import annotations

import click
import pyarrow as pa
from rich.text import Text

from lakehouse.chat.v1 import chat_service_pb2 as pb
from lakehouse.cli import output
from lakehouse.cli.commands import Clients, client_command
from lakehouse.client._base import token_metadata
from lakehouse.client.chat import AsyncChatClient

SNIPPET_CHARS = 160


def chat_client(c: Clients) -> AsyncChatClient:
    """The chat service's client over the command's channel, with its --token and --timeout."""
    timeout_s = click.get_current_context().params.get("timeout_s", 120.0)
    return AsyncChatClient(c.channel, timeout_s=timeout_s, metadata=token_metadata(c.token))


def _short(enum: type, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()  # type: ignore[attr-defined]


def _usage(u: pb.Usage) -> str:
    return f"{u.prompt_tokens} prompt + {u.completion_tokens} completion tokens"


@click.command("chat")
@click.argument("prompt")
@click.option("--model", "-m", default="", help='"provider/model", or a bare name for the default provider.')
@click.option("--system", default="", help="System message sent before the prompt.")
@click.option("--temperature", type=float, default=None, help="Sampling temperature, 0 to 2 (default: the model's).")
@click.option("--max-tokens", type=int, default=None, help="Most tokens to generate.")
@click.option("--json", "json_mode", is_flag=True, help="Ask the model for a JSON object.")
@click.option("--stop", multiple=True, help="Stop sequence; repeatable, at most 4.")
@click.option("--stream/--no-stream", default=False, show_default=True, help="Print the reply as it is generated.")
@client_command
async def chat(
    c: Clients,
    prompt: str,
    model: str,
    system: str,
    temperature: float | None,
    max_tokens: int | None,
    json_mode: bool,
    stop: tuple[str, ...],
    stream: bool,
) -> None:
    """Send PROMPT to a model through the chat service and print the reply."""
    client = chat_client(c)
    kwargs = {"model": model, "system": system, "temperature": temperature, "max_tokens": max_tokens}
    if not stream:
        reply = await client.chat(prompt, json_mode=json_mode, stop=stop, **kwargs)  # type: ignore[arg-type]
        output.console.print(Text(reply.content))
        _footer(reply.provider, reply.model, reply.finish_reason, reply.usage, reply.latency.ToMilliseconds())
        return
    async for event in client.chat_stream(prompt, json_mode=json_mode, stop=stop, **kwargs):  # type: ignore[arg-type]
        if event.HasField("delta"):
            output.console.print(Text(event.delta.content), end="", soft_wrap=True)
        else:
            s = event.summary
            output.console.print()
            _footer(s.provider, s.model, s.finish_reason, s.usage, s.latency.ToMilliseconds())


def _footer(provider: str, model: str, finish: int, usage: pb.Usage, latency_ms: int) -> None:
    reason = _short(pb.FinishReason, finish, "FINISH_REASON_")
    note = " (truncated)" if finish == pb.FINISH_REASON_LENGTH else ""
    output.console.print(
        Text(f"— {provider}/{model}, finish {reason}{note}, {_usage(usage)}, {latency_ms} ms", style="dim")
    )


@click.command("answer")
@click.argument("question")
@click.option("--collection", "collections", multiple=True, help="Collection to retrieve from; repeatable.")
@click.option("-k", "k", type=int, default=0, help="Passages to retrieve (default 5).")
@click.option("--model", "-m", default="", help='"provider/model" to answer with (default: the configured one).')
@click.option("--profile", default="", help="Answer as this model profile sees the lake (admins).")
@click.option("--sql-context", is_flag=True, help="Complete each source with its row, read through the query service.")
@click.option("--extractive", is_flag=True, help="Return the best passages themselves, without a model.")
@client_command
async def answer(
    c: Clients,
    question: str,
    collections: tuple[str, ...],
    k: int,
    model: str,
    profile: str,
    sql_context: bool,
    extractive: bool,
) -> None:
    """Answer QUESTION from the lake, citing the rows the answer came from."""
    result = await chat_client(c).answer(
        question,
        collections,
        k=k,
        model=model,
        profile=profile,
        include_sql_context=sql_context,
        mode="extractive" if extractive else "",
    )
    if result.mode == pb.ANSWER_MODE_EXTRACTIVE:
        head = "extractive answer (no model was called): the best passages, each cited"
    else:
        head = f"answer from {result.provider}/{result.model}"
    output.console.print(Text(head, style="bold"))
    output.console.print(Text(result.answer or "(no passage matched the question)"))
    grounded = "grounded" if result.grounded else "NOT grounded"
    if result.unknown_source_numbers:
        grounded += f" (cites missing sources {', '.join(f'[{n}]' for n in result.unknown_source_numbers)})"
    rows = [
        (
            f"[{ci.source_number}]",
            f"{ci.collection}/{ci.id}",
            _source_row(ci),
            f"{ci.distance:.4f}",
            _clip(ci.snippet),
        )
        for ci in result.citations
    ]
    output.table(
        f"citations: {grounded}, {result.sources_retrieved} sources retrieved, {result.latency.ToMilliseconds()} ms",
        ["#", "passage", "source row", "distance", "snippet"],
        rows,
    )
    for ci in result.citations:
        if ci.HasField("row"):
            row = pa.ipc.open_stream(ci.row.arrow_ipc).read_all().to_pylist()[0]
            output.console.print(Text(f"[{ci.source_number}] row: " + ", ".join(f"{k}={v}" for k, v in row.items())))


def _source_row(ci: pb.Citation) -> str:
    if not ci.HasField("source_dataset"):
        return "-"
    ref = ci.source_dataset
    version = f"@v{ref.version}" if ref.HasField("version") else ""
    return f"{ref.dataset}{version}:{ci.row_key}"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


@click.group("providers")
def providers() -> None:
    """LLM providers of the chat service and their models."""


@providers.command("list")
@click.option("--probe", is_flag=True, help="Contact each provider to check that it answers and accepts its key.")
@client_command
async def providers_list(c: Clients, probe: bool) -> None:
    """List the configured providers and whether they can take calls."""
    found = await chat_client(c).list_providers(probe=probe)
    rows = [
        (
            p.name + (" (default)" if p.is_default else ""),
            _short(pb.ProviderKind, p.kind, "PROVIDER_KIND_"),
            p.base_url,
            p.default_model or "-",
            _short(pb.ProviderAvailability, p.availability, "PROVIDER_AVAILABILITY_"),
            p.availability_reason or "-",
        )
        for p in found
    ]
    if not rows:
        output.console.print(
            Text("no LLM provider is configured: Answer is extractive; add [chat.providers.NAME] to use one")
        )
        return
    output.table("providers", ["name", "kind", "base url", "default model", "availability", "reason"], rows)


@providers.command("models")
@click.argument("provider", required=False, default="")
@client_command
async def providers_models(c: Clients, provider: str) -> None:
    """List the models of PROVIDER (default: every available provider) as routable names."""
    found = await chat_client(c).list_models(provider)
    rows = [(m.name, m.provider, "yes" if m.is_default else "") for m in found.models]
    output.table("models", ["model", "provider", "default"], rows)
    if found.skipped_providers:
        output.console.print(Text(f"skipped (unavailable): {', '.join(found.skipped_providers)}", style="dim"))


COMMANDS = (chat, answer, providers)
