"""In-process mesh servers for service tests: a real grpc.aio server on port 0 with real backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.client import AsyncCatalogClient, AsyncStorageClient, RetryPolicy, open_channel, token_metadata
from lakehouse.server.common.app import MeshServer
from lakehouse.server.common.config import (
    AuthConfig,
    BucketConfig,
    CatalogConfig,
    Config,
    S3Config,
    ServerConfig,
    StorageConfig,
    TokenConfig,
)
from lakehouse.server.mesh import build_server


@dataclass(frozen=True)
class Backends:
    """Where a test mesh keeps its catalog and its default bucket."""

    catalog_url: str = ""
    bucket_uri: str = ""
    s3_endpoint: str = ""
    bucket_max_bytes: int = 0
    tokens: tuple[TokenConfig, ...] = ()
    extra_buckets: dict[str, BucketConfig] = field(default_factory=dict)


def make_config(data_dir: Path, backends: Backends = Backends(), **server: Any) -> Config:
    buckets = {
        "default": BucketConfig(uri=backends.bucket_uri, max_bytes=backends.bucket_max_bytes),
        **backends.extra_buckets,
    }
    return Config(
        server=ServerConfig(
            **{"data_dir": str(data_dir), "port": 0, "flight_port": 0, "grace_period_s": 1.0, **server}
        ),
        auth=AuthConfig(tokens=backends.tokens),
        storage=StorageConfig(buckets=buckets, s3=S3Config(endpoint=backends.s3_endpoint)),
        catalog=CatalogConfig(url=backends.catalog_url),
    )


class RunningMesh:
    """A started server plus clients pointed at it."""

    def __init__(self, config: Config, server: MeshServer, token: str | None, services: tuple[str, ...] | None) -> None:
        self.config = config
        self.services = services
        self.server = server
        self.address = server.address
        self.channel = open_channel(self.address)
        metadata = token_metadata(token or "")
        retry = RetryPolicy(attempts=2, initial_backoff_s=0.05)
        self.storage = AsyncStorageClient(self.channel, timeout_s=20, retry=retry, metadata=metadata)
        self.catalog = AsyncCatalogClient(self.channel, timeout_s=20, retry=retry, metadata=metadata)

    async def stop(self) -> None:
        await self.channel.close()
        await self.server.stop()


async def start_mesh(config: Config, services: tuple[str, ...] | None = None, token: str | None = None) -> RunningMesh:
    server = build_server(config, services) if services else build_server(config)
    await server.start()
    return RunningMesh(config, server, token, services)


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Polls `check` until it holds or `timeout_s` passes (for effects of a cancelled call)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
