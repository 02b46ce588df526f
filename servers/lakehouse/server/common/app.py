"""Generic gRPC bootstrap: one grpc.aio server hosting the given services, health, reflection,
and a SIGTERM drain (health NOT_SERVING, in-flight calls finish within the grace period, exit 0)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from lakehouse.server.common.auth import TokenAuthenticator, require_safe_binding
from lakehouse.server.common.config import Config
from lakehouse.server.common.denials import DenialJournal
from lakehouse.server.common.interceptors import ServerCallInterceptor
from lakehouse.server.common.metrics import MetricsEndpoint, serve_metrics
from lakehouse.server.common.tracing import Tracing

log = logging.getLogger("lakehouse.server")


@dataclass(frozen=True)
class ServiceBinding:
    """One service ready to be hosted: how to add it to a server and how to close it."""

    name: str
    """Short name, for example "storage"."""
    full_name: str
    """Protobuf service name, for example "lakehouse.storage.v1.StorageService"."""
    register: Callable[[grpc.aio.Server], None]
    """Adds the servicer to a server."""
    close: Callable[[], Awaitable[None]] | None = None
    """Releases what the service holds (connections, pools) after the server stopped."""
    serving: bool = True
    """Whether health reports it; False for a contract whose server is not in this release."""
    start: Callable[[MeshServer], Awaitable[dict[str, str]]] | None = None
    """Starts what the service runs beside the gRPC port (the Flight server); returns its endpoints."""
    drain: Callable[[], Awaitable[None]] | None = None
    """Sends what the service buffers for its peers (the chat session log) while in-process peers
    still take calls: after health goes NOT_SERVING, before the port stops."""


class MeshServer:
    """A started gRPC server with its services; `stop` drains it."""

    def __init__(
        self,
        config: Config,
        bindings: Sequence[ServiceBinding],
        authenticator: TokenAuthenticator,
        on_stopped: Callable[[], Awaitable[None]] | None = None,
        denials: DenialJournal | None = None,
    ) -> None:
        require_safe_binding(config.server.host, authenticator)
        self._config = config
        self._bindings = tuple(bindings)
        self._on_stopped = on_stopped
        self._authenticator = authenticator
        self._denials = denials
        self._not_serving: set[str] = set()
        self._health: HealthServicer | None = None
        self._tracing = Tracing(config.observability)
        self._metrics: MetricsEndpoint | None = None
        self.port = 0
        self.endpoints: dict[str, str] = {}
        """Extra endpoints the services opened, for example {"flight": "grpc+tcp://127.0.0.1:50052"}."""

    @property
    def address(self) -> str:
        """HOST:PORT clients can dial (valid after `start`)."""
        host = self._config.server.host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        # grpc.aio objects belong to the loop they are made on, so they are made here, not in __init__.
        limit = self._config.server.max_message_mb * 1024 * 1024
        self._server = grpc.aio.server(
            interceptors=[
                ServerCallInterceptor(
                    self._authenticator,
                    self._denials.record if self._denials else None,
                    self._tracing.tracer,
                    self._config.server.concurrency_of,
                    self._config.server.upload_idle_timeout_s,
                )
            ],
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                # Without this a second server on the same port starts too and the kernel splits
                # clients between two servers with different data.
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = HealthServicer()
        for binding in self._bindings:
            binding.register(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        names = [b.full_name for b in self._bindings]
        if self._config.server.reflection:
            reflection.enable_server_reflection(
                [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
                self._server,
            )
        host = self._config.server.host
        bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        try:
            self.port = self._server.add_insecure_port(f"{bind_host}:{self._config.server.port}")
        except RuntimeError:
            self.port = 0  # newer grpc raises where older versions returned 0
        if self.port == 0:
            raise OSError(
                f"cannot bind {host}:{self._config.server.port}: the port is in use or the address is not one of this "
                "machine's; pick another with --port or [server] port"
            )
        await self._server.start()
        self._metrics = serve_metrics(self._config.observability)
        if self._metrics is not None:
            self.endpoints["metrics"] = self._metrics.url
        if self._denials is not None:
            self._denials.start()
        for binding in self._bindings:
            if binding.start is not None:
                self.endpoints.update(await binding.start(self))
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for binding in self._bindings:
            if binding.serving:  # a contract without a server here has no health entry (NOT_FOUND)
                await self._health.set(binding.full_name, _status(binding.full_name not in self._not_serving))
        extras = "".join(f", {name} on {uri}" for name, uri in self.endpoints.items())
        log.info("serving %s on %s%s", ", ".join(b.name for b in self._bindings), self.address, extras)

    async def set_serving(self, full_name: str, serving: bool) -> None:
        """Reports one hosted service as able to serve or not (its backend went away or came back)."""
        if serving:
            self._not_serving.discard(full_name)
        else:
            self._not_serving.add(full_name)
        if self._health is not None:  # ignored once draining: everything is NOT_SERVING then
            await self._health.set(full_name, _status(serving))

    async def stop(self) -> None:
        """Health goes NOT_SERVING, in-flight calls get the grace period, then services close."""
        assert self._health is not None, "stop() before start()"
        await self._health.enter_graceful_shutdown()
        # Load balancers need a moment to see NOT_SERVING before the port stops taking calls.
        await asyncio.sleep(self._config.server.drain_delay_s)
        grace = self._config.server.grace_period_s
        log.info("draining for up to %.1fs", grace)
        if self._denials is not None:
            await self._denials.close()  # while the in-process catalog still takes calls
        for binding in self._bindings:
            if binding.drain is not None:
                await binding.drain()
        await self._server.stop(grace)
        for binding in self._bindings:
            if binding.close is not None:
                await binding.close()
        if self._on_stopped is not None:
            await self._on_stopped()
        if self._metrics is not None:
            await asyncio.to_thread(self._metrics.close)
        await asyncio.to_thread(self._tracing.shutdown)
        log.info("stopped")


def _status(serving: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING


async def serve_until_signalled(server: MeshServer, on_started: Callable[[MeshServer], None] | None = None) -> None:
    """Starts `server`, waits for SIGTERM or SIGINT, then drains it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if on_started:
        on_started(server)
    await stop.wait()
    await server.stop()
