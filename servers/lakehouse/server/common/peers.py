"""Channels to peer services. A peer with no address in [mesh] runs in this process and is
reached through a channel to this server's own port, so the all-in-one process and a
one-service-per-pod deployment run the same code path (generated stubs over gRPC)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from lakehouse.client._base import BaseAsyncClient, open_channel
from lakehouse.server.common.config import MeshConfig
from lakehouse.server.common.context import forwarded_metadata

C = TypeVar("C", bound=BaseAsyncClient)


class PeerChannels:
    """One lazily opened channel per peer address."""

    def __init__(self, mesh: MeshConfig, own_address: Callable[[], str]) -> None:
        self._mesh = mesh
        self._own_address = own_address
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._clients: dict[tuple[type, str], BaseAsyncClient] = {}

    @property
    def timeout_s(self) -> float:
        return self._mesh.timeout_s

    def address(self, service: str) -> str:
        return self._mesh.address_of(service) or self._own_address()

    def channel(self, service: str) -> grpc.aio.Channel:
        address = self.address(service)
        if address not in self._channels:
            self._channels[address] = open_channel(address)
        return self._channels[address]

    def client(self, client_class: type[C], service: str) -> C:
        """The typed client of a peer, made once: mesh deadline, caller's credentials forwarded."""
        key = (client_class, service)
        if key not in self._clients:
            self._clients[key] = client_class(self.channel(service), timeout_s=self.timeout_s, metadata=self.metadata)
        return self._clients[key]  # type: ignore[return-value]

    @staticmethod
    def metadata() -> tuple[tuple[str, str], ...]:
        """Credentials and request id of the call being served, so peers see the same caller."""
        return forwarded_metadata()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._clients.clear()
