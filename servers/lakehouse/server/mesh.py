"""Composition root: turns config and a list of service names into a running MeshServer."""

from __future__ import annotations

from collections.abc import Sequence

from lakehouse.server.catalog import servicer as catalog
from lakehouse.server.chat import servicer as chat
from lakehouse.server.common.app import MeshServer
from lakehouse.server.common.auth import TokenAuthenticator
from lakehouse.server.common.config import SERVICE_NAMES, Config, ConfigError
from lakehouse.server.common.denials import DenialJournal
from lakehouse.server.common.executor import BlockingExecutor
from lakehouse.server.common.peers import PeerChannels
from lakehouse.server.memory import servicer as memory
from lakehouse.server.query import servicer as query
from lakehouse.server.storage import servicer as storage
from lakehouse.server.vector import servicer as vector

# Peers each built service calls; a peer not hosted here needs an address in [mesh]. The vector
# service calls memory only for searches with the playbook on, and answers MEMORY_UNAVAILABLE
# when it cannot be reached, so memory is not required here. Memory keeps its vectors in the
# vector service; it reaches it in the background at start, so neither waits for the other. Chat
# retrieves through vector, reads rows and appends its session log through query, and reads
# policies from the catalog.
PEERS = {
    "catalog": ("storage", "query"),
    "query": ("catalog", "storage"),
    "vector": ("catalog", "query"),
    "memory": ("catalog", "vector"),
    "chat": ("catalog", "query", "vector"),
}


def _require_peers(config: Config, services: Sequence[str]) -> None:
    for service in services:
        for peer in PEERS.get(service, ()):
            if peer not in services and not config.mesh.address_of(peer):
                raise ConfigError(
                    f"the {service} service calls the {peer} service, which this process does not host: "
                    f'set [mesh] {peer} = "HOST:PORT" (or LAKEHOUSE_MESH__{peer.upper()}), or add --service {peer}'
                )


def build_server(config: Config, services: Sequence[str] = SERVICE_NAMES) -> MeshServer:
    """A MeshServer hosting `services` (all six by default), not yet started."""
    unknown = [s for s in services if s not in SERVICE_NAMES]
    if unknown:
        raise ValueError(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICE_NAMES)}")
    _require_peers(config, services)
    authenticator = TokenAuthenticator.from_config(config.auth)
    executor = BlockingExecutor(config.server.blocking_workers)
    server: MeshServer
    peers = PeerChannels(config.mesh, lambda: server.address)
    denials = DenialJournal(peers, authenticator.mesh_authorization, config.mesh.timeout_s)
    bindings = []
    for name in services:
        if name == "storage":
            bindings.append(storage.build(config, executor))
        elif name == "catalog":
            bindings.append(catalog.build(config, executor, peers, authenticator.enabled))
        elif name == "query":
            bindings.append(query.build(config, executor, peers, authenticator, denials))
        elif name == "vector":
            bindings.append(vector.build(config, executor, peers, authenticator))
        elif name == "memory":
            bindings.append(memory.build(config, executor, peers, authenticator))
        else:
            bindings.append(chat.build(config, executor, peers, authenticator))

    async def release() -> None:
        await peers.close()
        executor.shutdown()

    server = MeshServer(config, bindings, authenticator, on_stopped=release, denials=denials)
    return server
