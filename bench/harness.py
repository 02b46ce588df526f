"""Shared pieces of the benchmarks: a real `lakehouse serve` process, timing, and reporting.

Benchmarks print ratios against baselines measured in the same run on the same machine; they
assert nothing (the test suite never times anything).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    address: str
    flight: str
    data_dir: Path


@contextmanager
def lakehouse_server(extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`lakehouse serve` as its own process on free loopback ports, stopped with SIGTERM."""
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        port, flight_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")} | (extra_env or {})
        env["LAKEHOUSE_SERVER__LOG_LEVEL"] = "WARNING"
        cmd = [
            sys.executable,
            "-m",
            "lakehouse.cli.main",
            "serve",
            "--port",
            str(port),
            "--flight-port",
            str(flight_port),
            "--data-dir",
            f"{tmp}/data",
        ]
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        try:
            _wait_healthy(f"127.0.0.1:{port}", proc)
            yield Server(f"127.0.0.1:{port}", f"grpc+tcp://127.0.0.1:{flight_port}", Path(tmp) / "data")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_healthy(address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def median_s(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def machine() -> dict[str, object]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}


def report(name: str, rows: list[dict[str, object]]) -> None:
    """Prints a readable table and writes bench/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "results": rows}, indent=2, default=str))
    width = max(len(str(r["metric"])) for r in rows)
    print(f"\n{name} ({machine()['cpus']} CPUs, Python {machine()['python']})")
    for r in rows:
        target = f"  target {r['target']}" if r.get("target") else ""
        print(f"  {str(r['metric']).ljust(width)}  {r['value']}{target}")
