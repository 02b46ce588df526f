"""Real `lakehouse` processes for the e2e tier: servers, CLI runs and `buf curl`, all over loopback.

Every server is a separate OS process started from the installed console script, on a free
127.0.0.1 port, with its own data dir and its working directory in a temp dir (so the repo's
./lakehouse.toml is never picked up). Readiness is a grpc.health.v1 Check on "", the way an
orchestrator's probe would see it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "node_modules" / ".bin" / "buf"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0
# Wide enough that rich never wraps a table cell in CLI output.
CLI_COLUMNS = "250"
_START_ATTEMPTS = 3

# Every process started here, so a session finalizer can make sure none outlives the run.
_STARTED: list[subprocess.Popen[bytes]] = []


def lakehouse_command() -> list[str]:
    """The installed `lakehouse` console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).parent / "lakehouse"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "lakehouse.cli.main"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without LAKEHOUSE_* settings (they would override test configs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({"COLUMNS": CLI_COLUMNS, "NO_COLOR": "1", "TERM": "dumb", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- servers ----------------------------------------------------------------------------------


class ServerDied(RuntimeError):
    """`lakehouse serve` exited before it became ready."""


class ServerProcess:
    """One `lakehouse serve` subprocess; stdout/stderr go to files (an unread pipe would block it)."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        data_dir: Path,
        config: Path | None,
        services: Sequence[str],
        env: Mapping[str, str] | None,
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.flight_port = free_port()
        self.flight = f"grpc+tcp://127.0.0.1:{self.flight_port}"
        self.data_dir = data_dir
        self.config = config
        self.services = tuple(services)
        self.env = dict(env or {})
        self._stdout_path = workdir / f"serve-{port}.out"
        self._stderr_path = workdir / f"serve-{port}.err"
        args = [*lakehouse_command(), "serve", "--port", str(port), "--flight-port", str(self.flight_port)]
        args += ["--data-dir", str(data_dir)]
        if config is not None:
            args += ["--config", str(config)]
        for service in self.services:
            args += ["--service", service]
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                args, cwd=workdir, env=clean_env(self.env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        _STARTED.append(self.proc)

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health(self, service: str = "", timeout_s: float = 1.0) -> int:
        """ServingStatus of `service` through a fresh channel; raises grpc.RpcError when it cannot."""
        with grpc.insecure_channel(self.address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        return reply.status

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Polls health Check("") until SERVING; ServerDied (with stderr) if the process exits."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerDied(
                    f"lakehouse serve on {self.address} exited with {self.proc.returncode} before it was ready:\n{self.stderr}"
                )
            try:
                if self.health(timeout_s=0.5) == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = exc.code()
            time.sleep(0.1)
        self.kill()
        raise TimeoutError(
            f"lakehouse serve on {self.address} not SERVING after {timeout_s:.0f}s (last: {last}):\n{self.stderr}"
        )

    def terminate(self) -> None:
        """Sends SIGTERM (the drain signal) without waiting."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then waits for the exit code (SIGKILL and an error if it hangs)."""
        if self.alive():
            self.terminate()
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"lakehouse serve on {self.address} ignored SIGTERM for {timeout_s:.0f}s:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


def start_server(
    workdir: Path,
    *,
    data_dir: Path | None = None,
    config: Path | None = None,
    services: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    wait: bool = True,
) -> ServerProcess:
    """Starts `lakehouse serve` and waits until it is SERVING; retries a lost port race.

    With `wait=False` it returns at once (call `wait_ready`), so several servers start together.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or workdir / "data"
    if not wait:
        return ServerProcess(workdir, port or free_port(), data_dir, config, services, env)
    last: Exception | None = None
    for _ in range(_START_ATTEMPTS if port is None else 1):
        server = ServerProcess(workdir, port or free_port(), data_dir, config, services, env)
        try:
            server.wait_ready()
            return server
        except ServerDied as exc:
            last = exc
            if "cannot bind" not in server.stderr and "cannot start Arrow Flight" not in server.stderr:
                raise
    raise AssertionError(f"could not start lakehouse serve: {last}")


def kill_leftovers() -> None:
    """Kills any server this session started that is still running (teardown safety net)."""
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


@contextlib.contextmanager
def running(workdir: Path, **kwargs: object) -> Iterator[ServerProcess]:
    """A started server that is SIGTERMed (and must exit 0) at the end, killed if still alive."""
    server = start_server(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    except BaseException:
        server.kill()  # the test already failed: do not hide its error behind a shutdown check
        raise
    try:
        if server.alive():
            code = server.stop()
            assert code == 0, f"lakehouse serve exited {code} after SIGTERM:\n{server.stderr}"
    finally:
        server.kill()


# -- the CLI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """A finished command: exit code and decoded output."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run_cli(
    *args: str,
    cwd: Path,
    address: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = CLI_TIMEOUT_S,
) -> Result:
    """Runs `lakehouse ARGS...` as a user would, against `address` (via $LAKEHOUSE_ADDRESS)."""
    extra = dict(env or {})
    if address is not None:
        extra["LAKEHOUSE_ADDRESS"] = address
    proc = subprocess.run(
        [*lakehouse_command(), *args],
        cwd=cwd,
        env=clean_env(extra),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    return Result(
        ("lakehouse", *args),
        proc.returncode,
        proc.stdout.decode(errors="replace"),
        proc.stderr.decode(errors="replace"),
    )


@dataclass(frozen=True)
class Cli:
    """`lakehouse ...` bound to one server and working directory."""

    address: str
    cwd: Path

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        return run_cli(*args, cwd=self.cwd, address=self.address, env=env)


def ok(result: Result) -> str:
    """stdout of a command that must succeed quietly (exit 0, nothing on stderr but warnings)."""
    assert result.code == 0, str(result)
    assert "Traceback" not in result.stderr, str(result)
    return result.stdout


def failed(result: Result) -> str:
    """stderr of a command that must fail the way a user can act on: exit 1, no traceback."""
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    return result.stderr


def usage_error(result: Result) -> str:
    """stderr of a command click refused before doing anything: exit 2, no traceback."""
    assert result.code == 2, str(result)
    assert "Traceback" not in result.stderr, str(result)
    return result.stderr


def row(text: str, *cells: str) -> bool:
    """True when one line of a rich table holds `cells` in this order."""
    pattern = r"\s*│\s*".join(re.escape(c) for c in cells)
    return any(re.search(pattern, line) for line in text.splitlines())


# -- buf curl ---------------------------------------------------------------------------------


def buf_path() -> Path:
    if not BUF.exists():
        raise AssertionError(
            f"buf not found at {BUF}: run `npm ci` in {REPO} (the e2e tier needs it; it is never skipped)"
        )
    return BUF


def buf_curl(
    address: str,
    *args: str,
    method: str = "",
    data: object | None = None,
    headers: Sequence[str] = (),
    timeout_s: float = 30.0,
) -> Result:
    """`buf curl --protocol grpc --http2-prior-knowledge ARGS [-d JSON] http://ADDRESS[/METHOD]`."""
    command = [str(buf_path()), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    for header in headers:
        command += ["-H", header]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command.append(f"http://{address}" + (f"/{method}" if method else ""))
    proc = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
    return Result(
        tuple(command), proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    )


def buf_error(result: Result) -> dict[str, object]:
    """The JSON error `buf curl` prints on stderr for a non-OK status."""
    assert result.code != 0, f"expected an error status:\n{result}"
    start = result.stderr.find("{")
    assert start >= 0, f"no JSON error on stderr:\n{result}"
    return json.loads(result.stderr[start:])


def decode_any_value(value: str) -> bytes:
    """buf curl prints an unresolvable Any's bytes as (unpadded, possibly URL-safe) base64."""
    value = value.replace("-", "+").replace("_", "/")
    return base64.b64decode(value + "=" * (-len(value) % 4))


def buf_error_info(error: Mapping[str, object]) -> error_details_pb2.ErrorInfo:
    """The google.rpc.ErrorInfo among a buf curl error's details."""
    for detail in error.get("details", []):  # type: ignore[union-attr]
        if detail.get("type") == "google.rpc.ErrorInfo":
            info = error_details_pb2.ErrorInfo()
            if "value" in detail:
                info.ParseFromString(decode_any_value(detail["value"]))
            else:  # buf resolved the type and printed it as JSON
                info.reason = detail["debug"]["reason"]
                info.domain = detail["debug"].get("domain", "")
            return info
    raise AssertionError(f"no google.rpc.ErrorInfo detail in {error}")


# -- rich status from generated stubs ---------------------------------------------------------


def status_details(
    error: grpc.RpcError,
) -> tuple[error_details_pb2.ErrorInfo | None, error_details_pb2.BadRequest | None]:
    """ErrorInfo and BadRequest of a failed call made with generated stubs."""
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    info = bad = None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
    return info, bad
