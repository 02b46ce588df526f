"""Chat gateway overhead (issue: chat service): the latency the chat service adds over calling the
provider directly, at 1 and 64 concurrent clients.

Both paths talk to the same fake provider (tests/support/fake_llm.py, an OpenAI-compatible
server in its own process on loopback, answering a short echo at once):

- direct: an `httpx.AsyncClient` (pooled, as the service's own) POSTs /v1/chat/completions;
- through the service: ChatService.Chat over gRPC (a generated stub on one channel) to a real
  `lakehouse serve` process whose `[chat.providers.fake]` points at the same fake, session log on.

Each concurrency level runs rounds alternating direct and service, each round `--requests`
calls spread over that many concurrent tasks; per-call latencies are pooled per path. Reported:
median and p99 of each path, the difference (the overhead added), calls per second, and the
CPU time the server process spent per call (from /proc: what the gateway costs regardless of how
the 2 cores are shared between the bench client, the fake provider and the server).
Anchor: LiteLLM reports 2 ms median / 13 ms p99 added at 1,170 RPS over 4 instances.
Target: <= 2 ms median added.

Run: .venv/bin/python bench/chat_bench.py [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import lakehouse_server, report

from lakehouse.chat.v1 import chat_service_pb2 as pb
from lakehouse.chat.v1 import chat_service_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[1]
PROMPT = "how long does a short echo take"
CONCURRENCY = (1, 64)


@contextmanager
def fake_provider() -> Iterator[str]:
    """The fake provider as its own process (so its threads never share the bench's GIL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_llm"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().decode().strip()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def server_pid(address: str) -> int:
    """The pid of the `lakehouse serve` process listening on `address` (from /proc)."""
    port = address.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and b"--port" in args and args[args.index(b"--port") + 1] == port.encode():
            return int(entry.name)
    raise RuntimeError(f"no lakehouse serve process on port {port}")


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process has used, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(call: Callable[[], Awaitable[object]], requests: int, concurrency: int) -> tuple[list[float], float]:
    """Per-call latencies of `requests` calls made by `concurrency` tasks, and the wall time."""
    latencies: list[float] = []
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - began


async def measure(address: str, url: str, requests: int, rounds: int) -> list[dict[str, object]]:
    pid = server_pid(address)
    body = {"model": "echo", "messages": [{"role": "user", "content": PROMPT}], "stream": False}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    request = pb.ChatRequest(model="fake/echo", messages=[pb.ChatMessage(role=pb.MESSAGE_ROLE_USER, content=PROMPT)])
    rows: list[dict[str, object]] = []
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, trust_env=False) as http,
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = pb_grpc.ChatServiceStub(channel)

        async def direct() -> None:
            response = await http.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            response.json()

        async def service() -> None:
            await stub.Chat(request, timeout=30)

        for warm in (direct, service):
            await timed(warm, 200, 8)
        for concurrency in CONCURRENCY:
            samples: dict[str, list[float]] = {"direct": [], "service": []}
            walls: dict[str, float] = {"direct": 0.0, "service": 0.0}
            server_cpu = 0.0
            for _ in range(rounds):
                for name, call in (("direct", direct), ("service", service)):
                    used = cpu_s(pid)
                    latencies, wall = await timed(call, requests, concurrency)
                    if name == "service":
                        server_cpu += cpu_s(pid) - used
                    samples[name] += latencies
                    walls[name] += wall
            d, s = samples["direct"], samples["service"]
            d50, s50, d99, s99 = statistics.median(d), statistics.median(s), pct(d, 0.99), pct(s, 0.99)
            rps = {name: len(samples[name]) / walls[name] for name in samples}
            rows.append(
                {
                    "metric": f"{concurrency} client(s): median direct / through the service",
                    "value": f"{d50 * 1e3:.2f} / {s50 * 1e3:.2f} ms, added {(s50 - d50) * 1e3:.2f} ms",
                    "target": "<= 2 ms added",
                    "numbers": {"direct_ms": d50 * 1e3, "service_ms": s50 * 1e3, "added_ms": (s50 - d50) * 1e3},
                }
            )
            rows.append(
                {
                    "metric": f"{concurrency} client(s): p99 direct / through the service",
                    "value": f"{d99 * 1e3:.2f} / {s99 * 1e3:.2f} ms, added {(s99 - d99) * 1e3:.2f} ms",
                    "numbers": {"direct_ms": d99 * 1e3, "service_ms": s99 * 1e3, "added_ms": (s99 - d99) * 1e3},
                }
            )
            rows.append(
                {
                    "metric": f"{concurrency} client(s): calls/s direct / through the service",
                    "value": f"{rps['direct']:.0f} / {rps['service']:.0f} ({rps['service'] / rps['direct']:.2f}x)",
                    "numbers": rps,
                }
            )
            per_call = server_cpu / len(s) * 1e3
            rows.append(
                {
                    "metric": f"{concurrency} client(s): server CPU per call (all threads)",
                    "value": f"{per_call:.2f} ms",
                    "numbers": {"server_cpu_ms_per_call": per_call},
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="calls per path per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per concurrency level")
    args = parser.parse_args()
    began = time.perf_counter()
    with fake_provider() as url:
        env = {
            "LAKEHOUSE_CHAT__PROVIDERS__FAKE__KIND": "openai",
            "LAKEHOUSE_CHAT__PROVIDERS__FAKE__BASE_URL": url,
            "LAKEHOUSE_CHAT__PROVIDERS__FAKE__DEFAULT_MODEL": "echo",
        }
        with lakehouse_server(env) as server:
            rows = asyncio.run(measure(server.address, url, args.requests, args.rounds))
    rows.append({"metric": "total run time", "value": f"{time.perf_counter() - began:.0f} s"})
    report("chat", rows)


if __name__ == "__main__":
    main()
