"""Shared fixtures: real PostgreSQL and S3 (moto) servers for the session, meshes per test.

Backends are parametrized so the same tests run against SQLite and PostgreSQL catalogs and
against local-disk and S3 buckets. A backend that cannot start fails the run; nothing skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import psycopg
import pytest

from tests.support.mesh import Backends, RunningMesh, make_config, start_mesh
from tests.support.milvus import milvus_lite_server, milvus_server  # noqa: F401 (session fixtures)
from tests.support.servers import PostgresInfo, S3Info, moto_s3_server, postgres_server, s3_env


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresInfo]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as info:
        yield info


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Info]:
    with moto_s3_server() as info:
        saved = {k: os.environ.get(k) for k in s3_env(info)}
        os.environ.update(s3_env(info))  # pyarrow's S3 filesystem reads credentials from the environment
        try:
            yield info
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def fresh_postgres_url(info: PostgresInfo) -> str:
    """A new empty database on the session's cluster, so tests never see each other's rows."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(info.conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return info.url.rsplit("/", 1)[0] + f"/{name}"


def fresh_s3_bucket(info: S3Info) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", **info.client_kwargs()).create_bucket(Bucket=name)
    return f"s3://{name}/lake"


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return fresh_postgres_url(request.getfixturevalue("postgres"))


@pytest.fixture(params=["local", "s3"])
def bucket_backend(request: pytest.FixtureRequest) -> Backends:
    if request.param == "local":
        return Backends()
    info: S3Info = request.getfixturevalue("s3")
    return Backends(bucket_uri=fresh_s3_bucket(info), s3_endpoint=info.endpoint_url)


class MeshFactory:
    """Starts meshes on port 0 with the given backends and stops every one after the test."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self.started: list[RunningMesh] = []

    async def __call__(
        self,
        backends: Backends = Backends(),
        *,
        token: str | None = None,
        services: tuple[str, ...] | None = None,
        data_dir: Path | None = None,
        **server: object,
    ) -> RunningMesh:
        mesh = await start_mesh(make_config(data_dir or self._data_dir, backends, **server), services, token)
        self.started.append(mesh)
        return mesh

    async def restart(self, mesh: RunningMesh, token: str | None = None) -> RunningMesh:
        """Stops `mesh` and serves the same data again on the same port, as after a restart."""
        self.started.remove(mesh)
        await mesh.stop()
        config = replace(mesh.config, server=replace(mesh.config.server, port=mesh.server.port))
        again = await start_mesh(config, mesh.services, token)
        self.started.append(again)
        return again

    async def stop_all(self) -> None:
        for mesh in self.started:
            await mesh.stop()
        self.started.clear()


@pytest.fixture
async def mesh_factory(tmp_path: Path) -> AsyncIterator[MeshFactory]:
    factory = MeshFactory(tmp_path / "data")
    yield factory
    await factory.stop_all()


@pytest.fixture
async def mesh(mesh_factory: MeshFactory) -> RunningMesh:
    """All six services, SQLite catalog, local default bucket."""
    return await mesh_factory()
