"""The container images, checked without a container engine: the Dockerfiles parsed and held to
the image rules, and the entrypoint and health check scripts run as the image runs them."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.manifests import DEPLOY, ROOT, load_shipped_config

DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*@sha256:[0-9a-f]{64}$")
"""A base image pinned by full version tag and digest."""
MODEL_DIR = "/opt/lakehouse/models/all-minilm-l6-v2"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile (continuations joined, comments dropped)."""
    logical, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            current = []
            stages.append(Stage(base, name, ()))
        elif current is None:
            assert keyword == "ARG", f"{path.name}: {keyword} before the first FROM"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            current.append(Instruction(keyword, rest.strip()))
            stages[-1] = Stage(stages[-1].base, stages[-1].name, tuple(current))
    return args, stages


@pytest.fixture(params=DOCKERFILES)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    return DEPLOY / request.param


def test_every_base_image_is_pinned_by_version_and_digest(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    names = {s.name for s in stages}
    for stage in stages:
        assert stage.base in names or PINNED.match(stage.base), f"{dockerfile.name}: {stage.base} is not pinned"


def test_the_runtime_stage_runs_as_a_fixed_non_root_user(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0, user
    created = " ".join(runtime.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created, "USER must be the user the image creates"
    assert runtime.instructions[-1].keyword in ("CMD", "ENTRYPOINT")
    assert [i.keyword for i in runtime.instructions].index("USER") > max(
        n for n, i in enumerate(runtime.instructions) if i.keyword in ("RUN", "COPY")
    ), "nothing may run as root after USER is set"


def _commands(run: str) -> list[list[str]]:
    """The commands of a RUN line, split at &&."""
    commands: list[list[str]] = [[]]
    for word in shlex.split(run):
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return commands


def test_dependencies_come_from_the_lock_with_hashes_and_the_project_without_dependencies(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    runs = [command for stage in stages for text in stage.all("RUN") for command in _commands(text)]
    installs = [argv for argv in runs if "install" in argv and "uv" in argv and "pip" in argv]
    assert any("--require-hashes" in a and "requirements.lock" in a for a in installs), "no hash-checked lock install"
    project = [a for a in installs if a[-1] == "."]
    assert project and "--no-deps" in project[0], "the project must be installed with --no-deps"
    assert "requirements.lock" in project[0], "its build backend comes from the lock too"
    for argv in installs:
        requirements = [argv[n + 1] for n, word in enumerate(argv) if word == "-r"]
        assert "--require-hashes" in argv or argv[-1] == ".", f"unchecked install: {shlex.join(argv)}"
        assert all(r in ("pyproject.toml", "requirements-model.txt") for r in requirements), argv
    for argv in runs:  # pip itself only installs uv, at an exact version
        if argv[:4] == ["python", "-m", "pip", "install"]:
            assert len(argv) == 5 and argv[4].startswith("uv=="), shlex.join(argv)


def test_no_secret_is_baked_into_the_image(dockerfile: Path) -> None:
    args, stages = parse(dockerfile)
    settings = dict(args)
    for stage in stages:
        for keyword in ("ENV", "ARG"):
            for text in stage.all(keyword):
                for pair in shlex.split(text):
                    key, _, value = pair.partition("=")
                    settings[key] = value
    secret_like = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|ACCESS_KEY|SALT", re.IGNORECASE)
    assert not {k: v for k, v in settings.items() if secret_like.search(k) and v}, "a secret has a value"
    copied = " ".join(src for stage in stages for src in stage.all("COPY"))
    assert ".env" not in copied and "secret" not in copied.lower()


def test_the_build_context_leaves_out_environments_data_and_credentials() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert patterns[0] == "*", "an allow list: only what the Dockerfiles copy is sent"
    included = [p[1:] for p in patterns if p.startswith("!")]
    for stage in parse(DEPLOY / "Dockerfile")[1]:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            for source in shlex.split(copy)[:-1]:
                assert any(source.rstrip("/").startswith(p.rstrip("/")) for p in included), f"{source} is excluded"
    for private in (".venv", "data", ".build", "node_modules", ".git", "tests"):
        assert not any(p.rstrip("/") == private for p in included), private
    assert "**/*.env" in patterns


def test_the_entrypoint_serves_with_the_image_config_and_probes_are_documented(dockerfile: Path) -> None:
    _, stages = parse(dockerfile)
    runtime = stages[-1]
    assert json.loads(runtime.all("ENTRYPOINT")[-1]) == ["lakehouse-serve"]
    assert runtime.all("HEALTHCHECK"), "docker and podman need a HEALTHCHECK (Kubernetes uses gRPC probes)"
    env = dict(pair.partition("=")[::2] for text in runtime.all("ENV") for pair in shlex.split(text))
    assert env["LAKEHOUSE_CONFIG"] == "/etc/lakehouse/lakehouse.toml"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1", "the root filesystem is read-only"
    assert env["HOME"] == "/tmp", "the only writable place besides /data"
    assert json.loads(runtime.all("VOLUME")[-1]) == ["/data"]
    exposed = {int(p) for text in runtime.all("EXPOSE") for p in text.split()}
    assert exposed == {50051, 50052, 9464}


def test_the_model_is_prepared_where_the_configs_look_for_it(dockerfile: Path, tmp_path: Path) -> None:
    _, stages = parse(dockerfile)
    prepare = [cmd for stage in stages for cmd in stage.all("RUN") if "models prepare" in cmd]
    assert len(prepare) == 1 and f"--model-dir {MODEL_DIR}" in prepare[0]
    assert f"--from=build {MODEL_DIR.rsplit('/', 1)[0]}" in " ".join(stages[-1].all("COPY"))
    image_config = load_shipped_config((DEPLOY / "image" / "lakehouse.toml").read_text(), tmp_path)
    assert image_config.vector.embedder.model_dir == MODEL_DIR
    assert image_config.server.data_dir == "/data"
    assert image_config.server.host == "0.0.0.0" and image_config.auth.tokens, "reachable, so authenticated"


def test_the_gpu_image_carries_cuda_12_and_cudnn_9_and_the_same_runtime_setup() -> None:
    _, cpu = parse(DEPLOY / "Dockerfile")
    _, gpu = parse(DEPLOY / "Dockerfile.gpu")
    base = gpu[-1].base
    assert base.startswith("nvidia/cuda:12.") and "-cudnn-runtime-" in base, base
    assert "--from=build /opt/python /opt/python" in gpu[-1].all("COPY"), "the CUDA base has no Python 3.11"
    for keyword in ("ENV", "USER", "ENTRYPOINT", "CMD", "HEALTHCHECK", "EXPOSE", "VOLUME", "WORKDIR"):
        assert cpu[-1].all(keyword) == gpu[-1].all(keyword), keyword


@pytest.fixture
def fake_lakehouse(tmp_path: Path) -> dict[str, str]:
    """A PATH whose `lakehouse` prints its arguments as JSON, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "lakehouse"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -c "import json, sys; print(json.dumps(sys.argv[1:]))" "$@"\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("", ["serve", "--config", "x.toml"]),
        ("query", ["serve", "--config", "x.toml", "--service", "query"]),
        ("storage,catalog", ["serve", "--config", "x.toml", "--service", "storage", "--service", "catalog"]),
        (" vector  memory ", ["serve", "--config", "x.toml", "--service", "vector", "--service", "memory"]),
    ],
)
def test_the_entrypoint_turns_service_into_service_flags(
    fake_lakehouse: dict[str, str], service: str, expected: list[str]
) -> None:
    done = subprocess.run(
        ["sh", str(DEPLOY / "image" / "lakehouse-serve"), "--config", "x.toml"],
        env={**fake_lakehouse, "SERVICE": service},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == expected


@pytest.fixture
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port, servicer
    finally:
        server.stop(0)


def _healthcheck(port: int, *service: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEPLOY / "image" / "lakehouse-healthcheck"), *service],
        env={**os.environ, "LAKEHOUSE_SERVER__PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_health_check_follows_the_servers_health_status(health_server: tuple[int, health.HealthServicer]) -> None:
    port, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert _healthcheck(port).returncode == 0
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)  # draining after SIGTERM
    assert _healthcheck(port).returncode == 1
    assert _healthcheck(port, "lakehouse.query.v1.QueryService").returncode == 1  # not registered: NOT_FOUND


def test_the_health_check_fails_when_nothing_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _healthcheck(port)
    assert done.returncode == 1
    assert "unhealthy" in done.stderr


def test_the_image_scripts_are_executable() -> None:
    """COPY keeps the mode the build context has; the entrypoint and HEALTHCHECK run them directly."""
    for script in ("lakehouse-serve", "lakehouse-healthcheck"):
        assert os.access(DEPLOY / "image" / script, os.X_OK), script


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"  # the Makefile installs the pinned uv into .venv
    assert uv.is_file(), "uv is missing from the environment: run make install"
    return str(uv)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment installed the way the Dockerfile's build stage installs /opt/venv:
    runtime dependencies only, hash-checked against the lock, then the project without dependencies.
    Offline, from the cache `make install` filled."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = [_uv(), "pip", "install", "--offline", "--quiet", "--python", python]
    for args in (
        ["--require-hashes", "-r", "pyproject.toml", "-c", "requirements.lock"],
        ["--no-deps", "--build-constraints", "requirements.lock", "."],
    ):
        done = subprocess.run([*install, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, f"{done.stderr}\n(offline: uv's cache must hold the wheels; make install fills it)"
    return venv


def test_the_images_dependency_set_leaves_out_the_test_tools(image_venv: Path) -> None:
    done = subprocess.run(
        [_uv(), "pip", "list", "--python", str(image_venv / "bin" / "python"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    installed = {entry["name"] for entry in json.loads(done.stdout)}
    assert {"lakehouse-mesh", "onnxruntime-gpu", "milvus-lite", "duckdb"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "moto", "milvus", "kubernetes-validate", "hypothesis"}


def test_the_images_dependency_set_serves_every_service(image_venv: Path, tmp_path: Path) -> None:
    """The image's entrypoint and default config on the image's dependency set alone: a runtime
    import of something only the test tools bring in fails here, not in a pod."""
    port, flight_port, metrics_port = (_free_port() for _ in range(3))
    token = "image-admin-token"
    env = {
        "PATH": f"{image_venv / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAKEHOUSE_CONFIG": str(DEPLOY / "image" / "lakehouse.toml"),
        "LAKEHOUSE_ADMIN_TOKEN": token,
        # What differs from the image: ports, the /data volume, the model baked into /opt.
        "LAKEHOUSE_SERVER__PORT": str(port),
        "LAKEHOUSE_SERVER__FLIGHT_PORT": str(flight_port),
        "LAKEHOUSE_OBSERVABILITY__METRICS_PORT": str(metrics_port),
        "LAKEHOUSE_SERVER__DATA_DIR": str(tmp_path / "data"),
        "LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR": str(ROOT / "data" / "models" / "all-minilm-l6-v2"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["sh", str(DEPLOY / "image" / "lakehouse-serve")], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        python = str(image_venv / "bin" / "python")
        check = [python, str(DEPLOY / "image" / "lakehouse-healthcheck")]
        for _ in range(120):
            assert server.poll() is None, log.read_text()
            if subprocess.run(check, env=env, capture_output=True, timeout=30, check=False).returncode == 0:
                break
            time.sleep(0.5)
        for service in ("storage", "catalog", "query", "vector", "memory", "chat"):
            full = f"lakehouse.{service}.v1.{service.capitalize()}Service"
            assert subprocess.run([*check, full], env=env, capture_output=True, timeout=30).returncode == 0, full
        client = {**env, "LAKEHOUSE_ADDRESS": f"127.0.0.1:{port}", "LAKEHOUSE_TOKEN": token, "NO_COLOR": "1"}
        for command in (["sql", "SELECT 42 AS answer"], ["embed", "an image without test tools"]):
            done = subprocess.run(
                ["lakehouse", *command], env=client, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, done.stderr + log.read_text()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
