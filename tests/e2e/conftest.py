"""Fixtures of the e2e tier: `lakehouse serve` subprocesses shared per module where tests only read
or add uniquely named things, and a safety net so no server outlives the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Cli, ServerProcess, kill_leftovers, running, write_config

# The shared servers drain quickly; everything else about them is the defaults a user gets.
SHARED_CONFIG = """\
[server]
grace_period_s = 5
"""


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_servers() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the module's servers, CLI runs and files; the cwd of every process."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def mesh(workdir: Path) -> Iterator[ServerProcess]:
    """All six services in one process, shared by the module; SIGTERM must end it with 0."""
    config = write_config(workdir / "shared" / "lakehouse.toml", SHARED_CONFIG)
    with running(workdir / "shared", config=config) as server:
        yield server


@pytest.fixture(scope="module")
def cli(mesh: ServerProcess, workdir: Path) -> Cli:
    """`lakehouse ...` run in the module's temp dir against the module's server."""
    return Cli(mesh.address, workdir)
