"""Channels to peer services. A peer with no address in [mesh] runs in this process and is
reached through a channel to this server's own port, so the all-in-one process and a
one-service-per-pod deployment run the same code path (generated stubs over gRPC)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from lakehouse.client._base import open_channel
from lakehouse.server.common.config import MeshConfig
from lakehouse.server.common.context import forwarded_metadata


class PeerChannels:
    """One lazily opened channel per peer address."""

    def __init__(self, mesh: MeshConfig, own_address: Callable[[], str]) -> None:
        self._mesh = mesh
        self._own_address = own_address
        self._channels: dict[str, grpc.aio.Channel] = {}

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

    @staticmethod
    def metadata() -> tuple[tuple[str, str], ...]:
        """Credentials and request id of the call being served, so peers see the same caller."""
        return forwarded_metadata()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
