"""The Arrow Flight endpoint of the query service: bulk reads and writes beside the gRPC port.

Same tokens, roles, sandbox and catalog versions as QueryService. Flight calls arrive on
Flight's own threads; domain coroutines run on the server's event loop and are awaited from
there. Tickets and commands are serialized protobuf messages, never evaluated text.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import DecodeError

from lakehouse.common.v1 import refs_pb2
from lakehouse.query.v1 import flight_pb2
from lakehouse.query.v1 import query_service_pb2 as pb
from lakehouse.server.common import metrics, roles
from lakehouse.server.common.auth import Principal, TokenAuthenticator
from lakehouse.server.common.config import Config
from lakehouse.server.common.context import CallContext, reset_call, set_call
from lakehouse.server.common.denials import DenialJournal
from lakehouse.server.common.errors import Code, LakehouseError
from lakehouse.server.query.convert import MODES, parameters, statement_pb, summary_pb
from lakehouse.server.query.ingestion import Ingestor, Lineage, Target
from lakehouse.server.query.service import QueryService, Statement

T = TypeVar("T")
log = logging.getLogger("lakehouse.flight")


class _Caller(flight.ServerMiddleware):
    def __init__(self, principal: Principal, authorization: str) -> None:
        self.principal = principal
        self.authorization = authorization


class _Authenticate(flight.ServerMiddlewareFactory):
    """Bearer tokens on every Flight call, exactly as on the gRPC port."""

    def __init__(self, authenticator: TokenAuthenticator, endpoint: FlightEndpoint) -> None:
        self._auth = authenticator
        self._endpoint = endpoint

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> _Caller:
        authorization = (headers.get("authorization") or [""])[0]
        try:
            return _Caller(self._auth.authenticate(authorization), authorization)
        except LakehouseError as exc:
            method = str(getattr(info.method, "name", info.method)).title().replace("_", "")
            self._endpoint.deny(f"/flight/{method}", "", exc, uuid.uuid4().hex)
            raise flight.FlightUnauthenticatedError(f"{exc.reason}: {exc.message}") from None


def flight_error(exc: LakehouseError) -> Exception:
    """A domain error as the Flight error with the nearest status; the reason leads the message."""
    text = f"{exc.reason}: {exc.message}"
    if exc.code == Code.UNAUTHENTICATED:
        return flight.FlightUnauthenticatedError(text)
    if exc.code == Code.PERMISSION_DENIED:
        return flight.FlightUnauthorizedError(text)
    if exc.code in (Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.ABORTED):
        return flight.FlightUnavailableError(text)
    if exc.code == Code.DEADLINE_EXCEEDED:
        return flight.FlightTimedOutError(text)
    if exc.code == Code.NOT_FOUND:
        return KeyError(text)  # Flight reports it as NOT_FOUND
    if exc.code in (Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS, Code.OUT_OF_RANGE):
        return pa.ArrowInvalid(text)  # INVALID_ARGUMENT
    if exc.code == Code.UNIMPLEMENTED:
        return NotImplementedError(text)
    return flight.FlightServerError(text)


class _FlightServer(flight.FlightServerBase):
    def __init__(self, endpoint: FlightEndpoint, location: str, authenticator: TokenAuthenticator) -> None:
        super().__init__(location, middleware={"caller": _Authenticate(authenticator, endpoint)})
        self._endpoint = endpoint

    # -- reads ---------------------------------------------------------------------------------

    def list_flights(self, context: flight.ServerCallContext, criteria: bytes) -> Iterator[flight.FlightInfo]:
        prefix = criteria.decode("utf-8", "replace") if criteria else ""
        readable = self._endpoint.call(context, "Query", self._endpoint.queries.readable_tables)
        for table in readable:
            if table.name.startswith(prefix):
                ticket = flight_pb2.FlightTicket(dataset={"dataset": table.name, "version": table.base.version})
                rows = -1 if table.view else table.base.row_count
                yield self._info(flight.FlightDescriptor.for_path(table.name), table.schema, rows, ticket)

    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        statement = self._statement_of(descriptor)
        resolved = self._endpoint.call(context, "Query", lambda: self._endpoint.queries.resolve(statement))
        schema = self._endpoint.guard(lambda: self._endpoint.queries.schema_of(resolved, statement.params))
        pinned = flight_pb2.FlightTicket(
            sql=statement_pb(Statement(resolved.checked.sql, statement.params, resolved.versions))
        )
        return self._info(descriptor, schema, -1, pinned)

    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        parsed = flight_pb2.FlightTicket()
        try:
            parsed.ParseFromString(ticket.ticket)
        except DecodeError:
            raise pa.ArrowInvalid("INVALID_TICKET: not a ticket this server issued") from None
        statement = _ticket_statement(parsed)
        resolved = self._endpoint.call(context, "Query", lambda: self._endpoint.queries.resolve(statement))
        opened = self._endpoint.guard(lambda: self._endpoint.queries.open_reader(resolved, statement.params))
        reader, close, interrupt = opened
        watchdog = _Watchdog(interrupt, close, self._endpoint.timeout_s)
        batches = _closing(context, reader, close, watchdog)
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(reader.schema, batches))

    # -- writes and actions --------------------------------------------------------------------

    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        target = _put_target(descriptor)
        lineage = Lineage("flight", f"flight do_put {target.dataset}")
        batches = pa.RecordBatchReader.from_batches(reader.schema, (_count("received", c.data) for c in reader))
        summary = self._endpoint.call(
            context, "IngestFile", lambda: self._endpoint.ingestor.ingest_arrow(target, batches, lineage)
        )
        writer.write(pa.py_buffer(summary_pb(summary).SerializeToString()))

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return [
            ("compact", "Compact a dataset (body: CompactRequest)"),
            ("vacuum", "Vacuum a dataset (body: VacuumRequest)"),
        ]

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[bytes]:
        from lakehouse.server.query.servicer import compact, vacuum  # the same code as the gRPC rpcs

        body = action.body.to_pybytes() if action.body is not None else b""
        if action.type == "compact":
            request = _parse(pb.CompactRequest, body)
            response = self._endpoint.call(context, "Compact", lambda: compact(self._endpoint.queries, request))
        elif action.type == "vacuum":
            request = _parse(pb.VacuumRequest, body)
            response = self._endpoint.call(context, "Vacuum", lambda: vacuum(self._endpoint.queries, request))
        else:
            raise pa.ArrowInvalid(f"UNKNOWN_ACTION: {action.type!r}; use compact or vacuum")
        yield response.SerializeToString()

    # -- helpers -------------------------------------------------------------------------------

    def _statement_of(self, descriptor: flight.FlightDescriptor) -> Statement:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            return _path_statement(descriptor.path)
        command = _parse(flight_pb2.FlightCommand, descriptor.command)
        kind = command.WhichOneof("command")
        if kind == "sql":
            return _sql_statement(command.sql)
        if kind == "dataset":
            return _ref_statement(command.dataset)
        raise pa.ArrowInvalid("INVALID_COMMAND: GetFlightInfo takes a sql or dataset command")

    def _info(
        self, descriptor: flight.FlightDescriptor, schema: pa.Schema, rows: int, ticket: flight_pb2.FlightTicket
    ) -> flight.FlightInfo:
        endpoint = flight.FlightEndpoint(ticket.SerializeToString(), [self._endpoint.location])
        return flight.FlightInfo(schema, descriptor, [endpoint], rows, -1)


class FlightEndpoint:
    """Owns the Flight server's lifecycle and the bridge from Flight threads to the event loop."""

    def __init__(
        self,
        config: Config,
        queries: QueryService,
        ingestor: Ingestor,
        authenticator: TokenAuthenticator,
        denials: DenialJournal | None = None,
    ) -> None:
        self._config = config
        self.queries = queries
        self.ingestor = ingestor
        self._authenticator = authenticator
        self._denials = denials
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _FlightServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def timeout_s(self) -> float:
        return self._config.query.default_timeout_s

    @property
    def location(self) -> str:
        if self._config.server.flight_advertise:
            return self._config.server.flight_advertise
        host = self._config.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        port = self._server.port if self._server else self._config.server.flight_port
        return f"grpc+tcp://{host}:{port}"

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        host = self._config.server.host
        bind = f"grpc+tcp://{host}:{self._config.server.flight_port}"
        try:
            self._server = await asyncio.to_thread(_FlightServer, self, bind, self._authenticator)
        except (pa.ArrowException, OSError) as exc:
            raise OSError(
                f"cannot start Arrow Flight on {host}:{self._config.server.flight_port} ({exc}); "
                "pick another port with --flight-port or [server] flight_port"
            ) from None
        self._thread = threading.Thread(target=self._server.serve, name="lakehouse-flight", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.shutdown)
            self._server = None

    def call(self, context: flight.ServerCallContext, method: str, work: Callable[[], Awaitable[T]]) -> T:
        """Runs a domain coroutine on the event loop as the Flight caller; maps domain errors."""
        caller: _Caller = context.get_middleware("caller")
        assert self._loop is not None

        async def as_caller() -> T:
            call = CallContext(uuid.uuid4().hex, f"/flight/{method}", caller.principal, caller.authorization)
            token = set_call(call)
            try:
                roles.require(caller.principal, call.method)
                return await work()
            except LakehouseError as exc:
                if exc.code == Code.PERMISSION_DENIED:
                    self.deny(call.method, caller.principal.name, exc, call.request_id)
                raise
            finally:
                reset_call(token)

        return self.guard(lambda: asyncio.run_coroutine_threadsafe(as_caller(), self._loop).result())  # type: ignore[arg-type]

    def deny(self, method: str, principal: str, exc: LakehouseError, request_id: str) -> None:
        """Journals a refused Flight call; safe from any thread."""
        if self._denials is not None and self._loop is not None:
            record = (method, principal, exc.code.name, exc.reason, exc.message, request_id, "flight")
            self._loop.call_soon_threadsafe(self._denials.record, *record)

    @staticmethod
    def guard(work: Callable[[], T]) -> T:
        try:
            return work()
        except LakehouseError as exc:
            raise flight_error(exc) from None
        except flight.FlightError:
            raise
        except Exception as exc:
            raise _internal(exc) from None


class _Watchdog:
    """Stops a streaming statement that outlives its time limit, so no DoGet holds an engine slot
    for ever. It never touches the call context: that is only valid while Flight runs the call,
    and a watchdog thread can outlive it."""

    def __init__(self, interrupt: Callable[[], None], close: Callable[[], None], limit_s: float) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(interrupt, close, limit_s), daemon=True)
        self._thread.start()

    def _watch(self, interrupt: Callable[[], None], close: Callable[[], None], limit_s: float) -> None:
        if not self._done.wait(limit_s):
            interrupt()
            close()

    def stop(self) -> None:
        self._done.set()


def _closing(
    context: flight.ServerCallContext, reader: pa.RecordBatchReader, close: Callable[[], None], watchdog: _Watchdog
) -> Iterator[pa.RecordBatch]:
    """Batches of `reader`; stops when the caller has gone, and always releases the engine slot."""
    try:
        for batch in reader:
            if context.is_cancelled():  # safe here: this runs inside the call
                return
            _count("sent", batch)
            yield batch
    except duckdb.InterruptException:
        raise flight.FlightTimedOutError("QUERY_TIMEOUT: the stream ran past [query] default_timeout_s") from None
    except Exception as exc:
        raise _internal(exc) from None
    finally:
        watchdog.stop()
        close()


def _count(direction: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    metrics.FLIGHT_ROWS.labels(direction).inc(batch.num_rows)
    metrics.FLIGHT_BYTES.labels(direction).inc(batch.nbytes)
    return batch


def _internal(exc: Exception) -> flight.FlightInternalError:
    """An unexpected failure: logged here with its traceback, reported without internals."""
    request_id = uuid.uuid4().hex
    log.error("unhandled error in a Flight call", exc_info=exc, extra={"request_id": request_id})
    return flight.FlightInternalError(f"internal error; quote request id {request_id} when reporting it")


def _parse(message_type: Any, data: bytes) -> Any:
    message = message_type()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise pa.ArrowInvalid(f"INVALID_COMMAND: not a serialized {message_type.DESCRIPTOR.full_name}") from None
    return message


def _path_statement(path: list[bytes]) -> Statement:
    if len(path) != 1:
        raise pa.ArrowInvalid("INVALID_PATH: a path descriptor is one element, 'dataset' or 'dataset@version'")
    name, _, version = path[0].decode("utf-8", "replace").partition("@")
    if version and not version.isdigit():
        raise pa.ArrowInvalid(f"INVALID_PATH: {version!r} is not a version number")
    return _dataset_statement(name, int(version) if version else None)


def _ref_statement(ref: refs_pb2.DatasetRef) -> Statement:
    return _dataset_statement(ref.dataset, ref.version if ref.HasField("version") else None)


def _dataset_statement(name: str, version: int | None) -> Statement:
    quoted = '"' + name.replace('"', '""') + '"'
    return Statement(f"SELECT * FROM {quoted}", None, {name: version} if version is not None else None)


def _sql_statement(sql: flight_pb2.SqlStatement) -> Statement:
    try:
        params = parameters(sql.parameters)
    except LakehouseError as exc:
        raise flight_error(exc) from None
    return Statement(sql.sql, params, dict(sql.as_of))


def _ticket_statement(ticket: flight_pb2.FlightTicket) -> Statement:
    kind = ticket.WhichOneof("ticket")
    if kind == "sql":
        return _sql_statement(ticket.sql)
    if kind == "dataset":
        return _ref_statement(ticket.dataset)
    raise pa.ArrowInvalid("INVALID_TICKET: empty ticket")


def _put_target(descriptor: flight.FlightDescriptor) -> Target:
    if descriptor.descriptor_type == flight.DescriptorType.PATH:
        if len(descriptor.path) != 1:
            raise pa.ArrowInvalid("INVALID_PATH: DoPut takes one path element, the dataset name")
        return Target(descriptor.path[0].decode("utf-8", "replace"), "APPEND")
    command = _parse(flight_pb2.FlightCommand, descriptor.command)
    if command.WhichOneof("command") != "put":
        raise pa.ArrowInvalid("INVALID_COMMAND: DoPut takes a put command or a path descriptor")
    put = command.put
    return Target(put.dataset, MODES.get(put.mode, "CREATE"), put.description)  # type: ignore[arg-type]
