"""Rendering the kustomize overlays with kubectl and reading what they hold."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from lakehouse.server.common.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod", "gpu")
SERVICES = ("storage", "catalog", "query", "vector", "memory", "chat")
EDGES = {"query": {"grpc", "flight"}, "chat": {"grpc"}, "all-in-one": {"grpc", "flight"}}
"""Pods (by app.kubernetes.io/component) that take traffic from outside the mesh, and on which ports."""

Obj = dict[str, Any]


@functools.cache
def render(target: str) -> tuple[Obj, ...]:
    """The objects `kubectl kustomize deploy/k8s/<target>` prints."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (scripts/system-deps.sh installs it): the manifests cannot be rendered")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {target} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    matches = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def label(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def containers(deployment: Obj) -> list[Obj]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def pod_labels(deployment: Obj) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def component(deployment: Obj) -> str:
    return pod_labels(deployment)["app.kubernetes.io/component"]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) matches `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if (
            (op == "In" and value not in expr["values"])
            or (op == "NotIn" and value in expr["values"])
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_keys(deployment: Obj) -> dict[str, str]:
    """Environment variable -> Secret key, for variables filled from a Secret."""
    found = {}
    for container in containers(deployment):
        for name, entry in env_of(container).items():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                found[name] = ref["key"]
    return found


def config_text(objects: tuple[Obj, ...]) -> str:
    (config_map,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("lakehouse-config")]
    return str(config_map["data"]["lakehouse.toml"])


def load_shipped_config(text: str, tmp_path: Path) -> Config:
    """`text` read by the server's own loader (unknown keys and bad values fail), with no environment."""
    path = tmp_path / "lakehouse.toml"
    path.write_text(text)
    return load_config(path, environ={})


def walk(value: Any) -> Iterator[Any]:
    """Every value nested in `value`, itself included."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
