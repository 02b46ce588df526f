"""Real Milvus for the test suite: a Milvus 2.3 standalone server from the `milvus` package and a
Milvus Lite server, each a child process on 127.0.0.1 for the whole session.

The server binary comes compressed inside the `milvus` wheel; it is unpacked once into
`$XDG_CACHE_HOME/lakehouse-tests/milvus-<version>/bin` (`~/.cache/...` by default) and reused by
later sessions. Each session gets its own data directory, free loopback ports, and an embedded
etcd bound to two of them (etcd's defaults, 2379 and 2380, would collide with any other Milvus on
the machine). The server survives SIGTERM, so it is stopped by its process group: SIGTERM, a grace
period, then SIGKILL, and no server outlives the run holding ports.

Nothing skips: a server that cannot start fails the tests that need it with its log tail.

Public API
----------
MilvusServerInfo
milvus_standalone(workdir) -> context manager yielding MilvusServerInfo
milvus_lite(workdir) -> context manager yielding MilvusServerInfo
milvus_server, milvus_lite_server: session fixtures (registered in tests/conftest.py)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import lzma
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import milvus
import pytest
from pymilvus import MilvusClient

from lakehouse.server.vector.backend import EmbeddedMilvusLite
from tests.support.servers import LOCALHOST, free_port

_START_ATTEMPTS = 3
_STARTUP_TIMEOUT_S = 120.0
_STOP_GRACE_S = 2.0
_PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
# Test-only tuning, measured on Milvus 2.3.5: a collection load took ~2.4 s and a flush ~3 s with
# the defaults, about 1 s and 1.5 s with these. The first group exists in the template; the
# second is added under queryCoord.
_TEST_SETTINGS = {
    "queryCoord.checkInterval": 200,
    "queryCoord.distPullInterval": 100,
    "dataCoord.segment.assignmentExpiration": 200,  # ms a new segment stays open before a flush may seal it
}
_QUERY_COORD_EXTRA = {
    "checkChannelInterval": 100,  # ms
    "checkSegmentInterval": 100,  # ms
    "leaderViewUpdateInterval": 1,  # s
    "UpdateNextTargetInterval": 1,  # s
}


@dataclass(frozen=True)
class MilvusServerInfo:
    uri: str
    """gRPC endpoint for pymilvus, e.g. "http://127.0.0.1:41234"."""
    pid: int
    version: str
    log_path: Path
    started_s: float
    """Seconds from spawning the process until it answered a pymilvus call."""


# --------------------------------------------------------------------------
# Milvus 2.3 standalone (the `milvus` package)
# --------------------------------------------------------------------------


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lakehouse-tests"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def milvus_binaries() -> Path:
    """The unpacked server binary and its libraries, unpacked once per version (about 4 s)."""
    packed = Path(milvus.__file__).parent / "data" / "bin"
    target = _cache_root() / f"milvus-{milvus.__version__}"
    bindir = target / "bin"
    with _file_lock(target / ".lock"):
        if (bindir / ".complete").exists():
            return bindir
        partial = target / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for archive in sorted(packed.glob("*.lzma")):
            out = partial / archive.stem
            with lzma.open(archive) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            out.chmod(0o755)
        (partial / ".complete").touch()
        shutil.rmtree(bindir, ignore_errors=True)
        partial.rename(bindir)
    return bindir


def _write_config(base: Path) -> tuple[dict[str, int], int]:
    """milvus.yaml (and the embedded etcd's own file) under base/configs; returns the ports."""
    ports = {key: free_port() for key in _PORT_KEYS}
    peer_port = free_port()
    config = milvus.MilvusServerConfig(data_dir=str(base), **ports)
    for key, value in _TEST_SETTINGS.items():
        config.set(key, value)
    config.resolve()  # checks the ports bind, creates the data directories, writes milvus.yaml
    etcd_yaml = base / "configs" / "embed-etcd.yaml"
    etcd_yaml.write_text(
        "name: default\n"
        f"data-dir: {base / 'data' / 'etcd.data'}\n"
        f"listen-client-urls: http://{LOCALHOST}:{ports['etcd_port']}\n"
        f"advertise-client-urls: http://{LOCALHOST}:{ports['etcd_port']}\n"
        f"listen-peer-urls: http://{LOCALHOST}:{peer_port}\n"
        f"initial-advertise-peer-urls: http://{LOCALHOST}:{peer_port}\n"
        f"initial-cluster: default=http://{LOCALHOST}:{peer_port}\n"
    )
    milvus_yaml = base / "configs" / "milvus.yaml"
    text = milvus_yaml.read_text()
    embed = "  use:\n    embed: true"
    if embed not in text:
        raise RuntimeError(f"{milvus_yaml}: no embedded etcd section to point at {etcd_yaml}")
    text = text.replace(embed, f"  config:\n    path: {etcd_yaml}\n{embed}", 1)
    extra = "".join(f"  {key}: {value}\n" for key, value in _QUERY_COORD_EXTRA.items())
    text = text.replace("\nqueryCoord:\n", f"\nqueryCoord:\n{extra}", 1)
    # Components advertise loopback instead of the first network interface.
    text = text.replace(
        "  ip: # if not specify address, will use the first unicastable address as local ip", f"  ip: {LOCALHOST}"
    )
    milvus_yaml.write_text(text)
    return ports, free_port()


def _stop_group(proc: subprocess.Popen[bytes], grace: float = _STOP_GRACE_S) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` (Milvus 2.3 ignores SIGTERM).

    The group is signalled only while its leader is unreaped, so its id cannot belong to anything else.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _log_tail(path: Path, size: int = 6000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "(no log)"
    return data[-size:].decode(errors="replace")


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{LOCALHOST}:{port}/healthz", timeout=1) as response:
            return b"OK" in response.read()
    except (urllib.error.URLError, OSError):
        return False


def _answers(uri: str) -> str:
    """The server's version once pymilvus can list collections; "" while it cannot."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    try:
        client = MilvusClient(uri=uri, timeout=5, dedicated=True)
        try:
            client.list_collections(timeout=5)
            return str(client.get_server_version(timeout=5))
        finally:
            client.close()
    except Exception:
        return ""


def _start_standalone(base: Path, bindir: Path) -> tuple[subprocess.Popen[bytes], MilvusServerInfo]:
    ports, metrics_port = _write_config(base)
    log_path = base / "logs" / "server.log"
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(metrics_port),
        "MILVUS_RUN_DIR": str(base / "run"),
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(bindir), os.environ.get("LD_LIBRARY_PATH", "")) if p),
    }
    began = time.monotonic()
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(bindir / "milvus"), "run", "standalone"],
            cwd=base,  # the server reads configs/milvus.yaml from its working directory
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so killpg reaches all of it
        )
    uri = f"http://{LOCALHOST}:{ports['proxy_port']}"
    deadline = began + _STARTUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Milvus exited with status {proc.returncode}")
            if _healthz(metrics_port) and (version := _answers(uri)):
                return proc, MilvusServerInfo(uri, proc.pid, version, log_path, time.monotonic() - began)
            time.sleep(0.2)
        raise RuntimeError(f"Milvus did not answer at {uri} within {_STARTUP_TIMEOUT_S:.0f} s")
    except BaseException as e:
        _stop_group(proc)
        raise RuntimeError(f"{e}\n--- {log_path} (tail) ---\n{_log_tail(log_path)}") from e


@contextlib.contextmanager
def milvus_standalone(workdir: Path) -> Iterator[MilvusServerInfo]:
    """A Milvus 2.3 standalone server on loopback for the duration of the block."""
    bindir = milvus_binaries()
    errors: list[str] = []
    for attempt in range(_START_ATTEMPTS):
        base = workdir / f"milvus-{attempt}"
        base.mkdir(parents=True)
        try:
            proc, info = _start_standalone(base, bindir)
        except RuntimeError as e:  # most likely a port taken between choosing and binding it
            errors.append(str(e))
            continue
        try:
            yield info
        finally:
            _stop_group(proc)
        return
    raise RuntimeError("could not start Milvus:\n" + "\n\n".join(errors))


# --------------------------------------------------------------------------
# Milvus Lite (`python -m milvus_lite server`)
# --------------------------------------------------------------------------


@contextlib.contextmanager
def milvus_lite(workdir: Path) -> Iterator[MilvusServerInfo]:
    """A Milvus Lite server on loopback, started the way the vector backend starts its own."""
    lite = EmbeddedMilvusLite(workdir)
    began = time.monotonic()
    uri = lite.start()
    try:
        version = _answers(uri)
        if not version:
            raise RuntimeError(f"Milvus Lite does not answer at {uri}:\n{lite.log_tail()}")
        assert lite.pid is not None
        yield MilvusServerInfo(uri, lite.pid, version, lite.log_path, time.monotonic() - began)
    finally:
        lite.stop()


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServerInfo]:
    """A real Milvus 2.3 standalone server, shared by the session."""
    with milvus_standalone(tmp_path_factory.mktemp("milvus")) as info:
        yield info


@pytest.fixture(scope="session")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServerInfo]:
    """A Milvus Lite server (child process), shared by the session."""
    with milvus_lite(tmp_path_factory.mktemp("milvus-lite")) as info:
        yield info
