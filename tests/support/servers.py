"""Real, throwaway servers on 127.0.0.1 for the test suite.

Nothing here is mocked in-process: PostgreSQL is a genuine cluster started
from Debian's binaries and S3 is moto's standalone HTTP server, so the code
under test talks to them over real sockets exactly as it would in production.

Public API
----------
free_port() -> int
wait_for_port(host, port, timeout) -> None
postgres_server(workdir) -> context manager yielding PostgresInfo
moto_s3_server() -> context manager yielding S3Info
s3_env(info) -> dict[str, str]
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCALHOST = "127.0.0.1"
_PG_SUPERUSER = "lakehouse"
_PG_DATABASE = "lakehouse_test"
_PG_SYSTEM_USER = "postgres"
_PG_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found. The test suite "
    "needs a real PostgreSQL: install Debian's package with "
    "`apt-get install -y postgresql` (binaries land in /usr/lib/postgresql/<ver>/bin)."
)
# A Unix socket path must fit in sun_path (108 bytes incl. ".s.PGSQL.NNNNN").
_MAX_SOCKET_DIR_LEN = 80
# free_port() cannot reserve a port, so another process may grab it before the
# server binds; a couple of retries with fresh ports makes that race harmless.
_START_ATTEMPTS = 3


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    """Block until host:port accepts TCP connections; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.1f}s")


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresInfo:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL using the psycopg 3 driver."""
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def conninfo(self) -> str:
        """libpq keyword string, for psycopg.connect() directly."""
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={self.database}"


def _pg_version(bindir: Path) -> tuple[int, ...] | None:
    """Version of the initdb in bindir, or None if it is unusable."""
    initdb, pg_ctl = bindir / "initdb", bindir / "pg_ctl"
    if not (os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK)):
        return None
    try:
        out = subprocess.run(
            [str(initdb), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+(?:\.\d+)*)", out)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def _pg_bindir_candidates() -> list[Path]:
    """Every place Debian (or PATH) might have put initdb/pg_ctl."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        # pg_config may come from libpq-dev alone (client only); the version
        # probe below drops its bindir if initdb is not actually there.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            found.append(Path(out.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        found.append(Path(initdb).resolve().parent)
    return list(dict.fromkeys(p.resolve() for p in found))


def find_pg_bindir() -> Path:
    """Directory holding the newest usable initdb + pg_ctl; RuntimeError if none."""
    versioned = [(v, d) for d in _pg_bindir_candidates() if (v := _pg_version(d))]
    if not versioned:
        raise RuntimeError(_PG_INSTALL_HINT)
    return max(versioned)[1]


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_pg_user(cmd: list[str]) -> list[str]:
    """initdb/postgres refuse to run as root, so drop to the postgres user."""
    if not _running_as_root():
        return cmd
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root but `runuser` is missing (util-linux)")
    return ["runuser", "-u", _PG_SYSTEM_USER, "--", *cmd]


def _traversable_by_others(path: Path) -> bool:
    """True if every ancestor of path has o+x, so the postgres user can reach it."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _make_cluster_root(workdir: Path) -> Path:
    """Fresh directory for one cluster, reachable by whoever runs postgres.

    As root the server runs as `postgres`, which must be able to traverse every
    parent of the data directory. pytest's tmp_path_factory lives under
    /tmp/pytest-of-root/ which is mode 0700, so a cluster under workdir would
    be unreachable; in that case we fall back to a fresh tempfile.mkdtemp()
    in the system temp dir (/tmp is 1777, i.e. traversable).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    parent: Path | None = workdir
    if _running_as_root() and not _traversable_by_others(workdir):
        parent = None  # system temp dir
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-", dir=parent))
    root.chmod(0o755)
    if _running_as_root():
        if not _traversable_by_others(root):
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"{root} is not traversable by the postgres user")
        pg = pwd.getpwnam(_PG_SYSTEM_USER)
        os.chown(root, pg.pw_uid, pg.pw_gid)
    return root


def _make_socket_dir(root: Path) -> Path:
    """Socket dir for -k; kept short because of the sun_path length limit."""
    sock = root / "sock"
    if len(str(sock)) > _MAX_SOCKET_DIR_LEN:
        sock = Path(tempfile.mkdtemp(prefix="pgsock-"))
    sock.mkdir(exist_ok=True)
    sock.chmod(0o755)
    if _running_as_root():
        pg = pwd.getpwnam(_PG_SYSTEM_USER)
        os.chown(sock, pg.pw_uid, pg.pw_gid)
    return sock


def _write_owned(path: Path, text: str) -> None:
    """Write a 0600 file that the postgres user (if we switch to it) can read."""
    path.write_text(text)
    path.chmod(0o600)
    if _running_as_root():
        pg = pwd.getpwnam(_PG_SYSTEM_USER)
        os.chown(path, pg.pw_uid, pg.pw_gid)


def _run_pg(cmd: list[str], cwd: Path, timeout: float = 60.0) -> None:
    """Run a PostgreSQL tool (as postgres if root); raise with its output on error."""
    # cwd must be readable by postgres too, or the tools warn/fail on getcwd().
    proc = subprocess.run(
        _as_pg_user(cmd),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _initdb(bindir: Path, root: Path, datadir: Path, password: str) -> None:
    pwfile = root / "pwfile"
    _write_owned(pwfile, password + "\n")
    try:
        _run_pg(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir),
                "-U",
                _PG_SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",  # throwaway cluster: skip fsync of the new files
            ],
            cwd=root,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _pg_ctl_start(bindir: Path, root: Path, datadir: Path, sockdir: Path, port: int) -> None:
    # fsync & co. off: the cluster is deleted afterwards, durability is moot
    # and turning it off makes DDL-heavy tests much faster.
    server_opts = (
        f"-h {LOCALHOST} -p {port} -k {sockdir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    # -l sends server output to a file; without it the postmaster inherits
    # our captured stdout pipe and subprocess.run() would never return.
    _run_pg(
        [
            str(bindir / "pg_ctl"),
            "-w",
            "-t",
            "60",
            "-D",
            str(datadir),
            "-l",
            str(root / "server.log"),
            "-o",
            server_opts,
            "start",
        ],
        cwd=root,
        timeout=90,
    )


def _pg_ctl_stop(bindir: Path, root: Path, datadir: Path) -> None:
    """Fast shutdown; fall back to immediate so no postmaster outlives the test."""
    base = [str(bindir / "pg_ctl"), "-w", "-t", "30", "-D", str(datadir), "stop"]
    try:
        _run_pg([*base, "-m", "fast"], cwd=root)
    except (RuntimeError, subprocess.TimeoutExpired):
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            _run_pg([*base, "-m", "immediate"], cwd=root)


def _start_on_free_port(bindir: Path, root: Path, datadir: Path, sockdir: Path) -> int:
    """Start the cluster, retrying on a fresh port if the chosen one was taken."""
    last_error: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        try:
            _pg_ctl_start(bindir, root, datadir, sockdir, port)
            return port
        except RuntimeError as exc:
            last_error = exc
    log = root / "server.log"
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {last_error}\n--- server.log ---\n{tail}")


def _create_database(info: PostgresInfo) -> None:
    import psycopg  # local: only needed when a Postgres test actually runs

    # Connect to the always-present "postgres" maintenance database.
    admin = info.conninfo.replace(f"dbname={info.database}", "dbname=postgres")
    # CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{info.database}"')


@contextlib.contextmanager
def postgres_server(workdir: Path) -> Iterator[PostgresInfo]:
    """Run a private PostgreSQL cluster on 127.0.0.1 for the duration of the block."""
    bindir = find_pg_bindir()
    root = _make_cluster_root(Path(workdir))
    sockdir = _make_socket_dir(root)
    datadir = root / "data"
    password = secrets.token_hex(16)  # hex: safe inside URLs without quoting
    started = False
    try:
        _initdb(bindir, root, datadir, password)
        port = _start_on_free_port(bindir, root, datadir, sockdir)
        started = True
        info = PostgresInfo(LOCALHOST, port, _PG_SUPERUSER, password, _PG_DATABASE)
        _create_database(info)
        yield info
    finally:
        if started:
            _pg_ctl_stop(bindir, root, datadir)
        shutil.rmtree(root, ignore_errors=True)
        if not sockdir.is_relative_to(root):
            shutil.rmtree(sockdir, ignore_errors=True)


# --------------------------------------------------------------------------
# S3 (moto server)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Info:
    endpoint_url: str
    region: str = "us-east-1"
    access_key: str = "testing"
    secret_key: str = "testing"

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for boto3.client("s3", **info.client_kwargs())."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
        }


def s3_env(info: S3Info) -> dict[str, str]:
    """Environment variables pointing AWS SDKs (and subprocesses) at the server."""
    return {
        "AWS_ACCESS_KEY_ID": info.access_key,
        "AWS_SECRET_ACCESS_KEY": info.secret_key,
        "AWS_DEFAULT_REGION": info.region,
        "AWS_ENDPOINT_URL": info.endpoint_url,
        # Stop SDKs probing 169.254.169.254 for credentials (slow timeouts).
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _http_answers(url: str) -> bool:
    """True once the server returns any HTTP response (even an error status)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _stop_process_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the whole group, SIGKILL after grace, so the port is released."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


def _read_log(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


def _spawn_moto(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    # Output goes to a file, not a pipe: moto logs every request and an unread
    # pipe would eventually fill up and block the server.
    return subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", LOCALHOST, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # own process group, so killpg gets every child
    )


def _await_moto(proc: subprocess.Popen[bytes], url: str, log: IO[bytes], timeout: float) -> None:
    """Poll until moto answers HTTP; raise with its output if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited (rc={proc.returncode}):\n{_read_log(log)}")
        if _http_answers(url):
            return
        time.sleep(0.1)
    raise TimeoutError(f"moto server not answering at {url} after {timeout}s:\n{_read_log(log)}")


def _start_moto(log: IO[bytes], timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    """Start moto, retrying on a fresh port if it lost the bind race."""
    last_error: Exception | None = None
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        url = f"http://{LOCALHOST}:{port}"
        proc = _spawn_moto(port, log)
        try:
            _await_moto(proc, url, log, timeout)
            return proc, url
        except (RuntimeError, TimeoutError) as exc:
            _stop_process_group(proc)
            last_error = exc
    raise RuntimeError(f"could not start moto server: {last_error}")


@contextlib.contextmanager
def moto_s3_server(timeout: float = 20.0) -> Iterator[S3Info]:
    """Run `python -m moto.server` on 127.0.0.1 for the duration of the block."""
    with tempfile.TemporaryFile(prefix="moto-log-") as log:
        proc, url = _start_moto(log, timeout)
        try:
            yield S3Info(endpoint_url=url)
        finally:
            _stop_process_group(proc)
