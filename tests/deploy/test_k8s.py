"""The Kubernetes overlays as `kubectl apply -k` would send them: rendered by kubectl's kustomize,
validated against the Kubernetes API schemas, and held to the mesh's deployment rules."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.manifests import (
    DEPLOY,
    EDGES,
    K8S,
    OVERLAYS,
    SERVICES,
    Obj,
    component,
    config_text,
    containers,
    env_of,
    label,
    load_shipped_config,
    named,
    of_kind,
    pod_labels,
    render,
    secret_keys,
    selects,
    walk,
)

# The oldest Kubernetes release still maintained when this was written, and the newest the
# installed kubernetes-validate knows: the manifests must hold for both.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
SECRET_NAME = "lakehouse-secrets"
SECRET_LIKE = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD|SALT|CREDENTIAL|_URL$|__URL$", re.IGNORECASE)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_the_kubernetes_api(overlay: str, version: str) -> None:
    problems = []
    for obj in render(f"overlays/{overlay}"):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{label(obj)}: {exc.message} at {'.'.join(map(str, exc.path))}")
    assert not problems, "\n".join(problems)


def test_base_renders_and_is_valid_for_the_kubernetes_api() -> None:
    objects = render("base")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
    assert {o["metadata"]["name"] for o in of_kind(objects, "Deployment")} == {f"lakehouse-{s}" for s in SERVICES}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves_to_an_object_of_the_overlay(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for deployment in of_kind(objects, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert ("ServiceAccount", pod["serviceAccountName"]) in names, label(deployment)
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, label(deployment)
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
    for autoscaler in of_kind(objects, "HorizontalPodAutoscaler"):
        assert ("Deployment", autoscaler["spec"]["scaleTargetRef"]["name"]) in names, label(autoscaler)
    for service in of_kind(objects, "Service"):
        backing = [
            d
            for d in of_kind(objects, "Deployment")
            if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(d))
        ]
        assert backing, f"{label(service)} selects no pods"
        (container,) = containers(backing[0])
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in {p["name"] for p in container["ports"]}, f"{label(service)} {port['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_probed_limited_and_locked_down(overlay: str) -> None:
    for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, label(deployment)
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", label(deployment)
        assert pod["automountServiceAccountToken"] is False, label(deployment)
        # Service links would put LAKEHOUSE_QUERY_PORT=tcp://... and the like into the environment,
        # next to the LAKEHOUSE_* variables the config reads.
        assert pod["enableServiceLinks"] is False, label(deployment)
        for container in containers(deployment):
            where = f"{label(deployment)} container {container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["runAsUser"] != 0, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security["capabilities"].get("add"), where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{where}: {kind}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["grpc"]["port"] == 50051, f"{where}: {probe}"


def _health_name(service: str) -> str:
    """The name the server registers `service` under in grpc.health.v1: its protobuf full name."""
    module = importlib.import_module(f"lakehouse.{service}.v1.{service}_service_pb2")
    return str(module.DESCRIPTOR.services_by_name[f"{service.capitalize()}Service"].full_name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ask_the_health_service_for_what_the_pod_serves(overlay: str) -> None:
    full_names = {name: _health_name(name) for name in SERVICES}
    for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
        (container,) = containers(deployment)
        served = env_of(container)["SERVICE"]["value"]
        # Liveness asks for the server as a whole (""): a backend outage must not restart the pod.
        assert container["livenessProbe"]["grpc"]["service"] == ""
        assert container["startupProbe"]["grpc"]["service"] == ""
        readiness = container["readinessProbe"]["grpc"]["service"]
        if served:
            assert readiness == full_names[served], label(deployment)
        else:  # all six in one pod: ready once the query service, the usual entry point, is
            assert readiness == full_names["query"], label(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_writable_paths_are_only_the_data_volume_and_tmp(overlay: str) -> None:
    for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
        for container in containers(deployment):
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert writable == {"/data", "/tmp"}, label(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_is_written_into_the_manifests(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    assert not of_kind(objects, "Secret"), "Secrets are created from secret.example.env, never rendered"
    for deployment in of_kind(objects, "Deployment"):
        for container in containers(deployment):
            for name, entry in env_of(container).items():
                if SECRET_LIKE.search(name):
                    assert "value" not in entry, f"{label(deployment)}: {name} is inlined"
                    assert entry["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, f"{label(deployment)}: {name}"
    config = tomllib.loads(config_text(objects))
    strings = [v for v in walk(config) if isinstance(v, str)]
    assert not [s for s in strings if re.search(r"://[^/@\s]+:[^/@\s]+@", s)], "a URL carries credentials"
    assert all(not token.get("sha256") for token in config.get("auth", {}).get("tokens", [])), (
        "tokens come from the Secret through env, so rotating one needs no new ConfigMap"
    )


def test_the_secret_template_names_every_key_the_pods_read_and_holds_no_values() -> None:
    template = (K8S / "overlays" / "prod" / "secret.example.env").read_text()
    entries = dict(
        line.split("=", 1) for line in template.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
    assert all(value == "" for value in entries.values()), "the template must stay empty"
    for overlay in OVERLAYS:
        for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
            assert set(secret_keys(deployment).values()) <= set(entries), label(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_port_is_named_and_every_service_speaks_grpc(overlay: str) -> None:
    for service in of_kind(render(f"overlays/{overlay}"), "Service"):
        ports = {p.get("name") for p in service["spec"]["ports"]}
        assert None not in ports, label(service)
        assert "grpc" in ports, label(service)
        if service["spec"]["selector"]["app.kubernetes.io/component"] in ("query", "all-in-one"):
            assert "flight" in ports, label(service)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_exposes_grpc_and_metrics(overlay: str) -> None:
    for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
        (container,) = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["grpc"] == 50051 and ports["metrics"] == 9464, label(deployment)
        assert ("flight" in ports) == (component(deployment) in ("query", "all-in-one")), label(deployment)


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_prod_runs_one_service_per_deployment_and_autoscales_the_stateless_ones(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    served = {env_of(containers(d)[0])["SERVICE"]["value"] for d in deployments.values()}
    assert served == set(SERVICES)
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert scaled == {"lakehouse-query", "lakehouse-vector", "lakehouse-chat"}
    for name, deployment in deployments.items():
        if name in scaled:  # the autoscaler owns the count; a replicas field would fight it on every apply
            assert "replicas" not in deployment["spec"], name
        else:
            assert deployment["spec"]["replicas"] >= 2, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(deployment))]
        assert len(matching) == 1, label(deployment)


def _rule_ports(rule: Obj, container_ports: dict[str, int]) -> set[str]:
    if not rule.get("ports"):
        return set(container_ports)
    names = set()
    for entry in rule["ports"]:
        port = entry["port"]
        names |= {n for n, number in container_ports.items() if port in (n, number)}
    return names


def _peers(rule: Obj) -> str:
    """Who a rule admits: "anywhere", "mesh" or "prometheus"."""
    peers = rule.get("from") or []
    if not peers or any("ipBlock" in p or ("namespaceSelector" in p and "podSelector" not in p) for p in peers):
        return "anywhere"
    kinds = set()
    for peer in peers:
        labels = peer["podSelector"].get("matchLabels", {})
        if labels == {"app.kubernetes.io/part-of": "lakehouse-mesh"} and "namespaceSelector" not in peer:
            kinds.add("mesh")
        elif labels == {"app.kubernetes.io/name": "prometheus"}:
            kinds.add("prometheus")
        else:
            kinds.add(f"other: {peer}")
    assert len(kinds) == 1, kinds
    return kinds.pop()


def _admitted(objects: tuple[Obj, ...], deployment: Obj) -> dict[str, set[str]]:
    """Port name -> who may connect to it, under the NetworkPolicies that select the pod."""
    (container,) = containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    admitted: dict[str, set[str]] = {name: set() for name in ports}
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod_labels(deployment))
    ]
    assert policies, f"no NetworkPolicy selects {label(deployment)}: every pod must be covered"
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            for port in _rule_ports(rule, ports):
                admitted[port].add(_peers(rule))
    return admitted


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_edges_take_outside_traffic(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    for deployment in of_kind(objects, "Deployment"):
        admitted = _admitted(objects, deployment)
        open_to_all = {port for port, who in admitted.items() if "anywhere" in who}
        assert open_to_all == EDGES.get(component(deployment), set()), label(deployment)
        assert admitted["grpc"] & {"mesh", "anywhere"}, f"{label(deployment)}: the mesh cannot reach it"
        assert admitted["metrics"] == {"prometheus"}, label(deployment)


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_internal_services_are_reached_only_by_mesh_pods(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    for name in ("storage", "catalog", "vector", "memory"):
        admitted = _admitted(objects, named(objects, "Deployment", f"lakehouse-{name}"))
        assert admitted["grpc"] == {"mesh"}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_config_map_is_a_lakehouse_toml_the_server_accepts(overlay: str, tmp_path: Path) -> None:
    objects = render(f"overlays/{overlay}")
    config = load_shipped_config(config_text(objects), tmp_path)
    assert config.server.host == "0.0.0.0"  # reachable through the pod IP ...
    assert config.auth.tokens, "... which the server allows only with authentication on"
    assert config.server.port == 50051 and config.server.flight_port == 50052
    assert config.server.data_dir == "/data"
    assert config.vector.embedder.model_dir == "/opt/lakehouse/models/all-minilm-l6-v2"
    for deployment in of_kind(objects, "Deployment"):
        mounts = {m["name"]: m for m in containers(deployment)[0]["volumeMounts"]}
        assert mounts["config"]["mountPath"] == "/etc/lakehouse"  # the image's LAKEHOUSE_CONFIG directory


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_gets_every_variable_its_config_reads(overlay: str, tmp_path: Path) -> None:
    objects = render(f"overlays/{overlay}")
    config = load_shipped_config(config_text(objects), tmp_path)
    everyone = {t.env for t in config.auth.tokens if t.env} | {config.auth.mesh_token_env} - {""}
    needs = {name: set(everyone) for name in SERVICES}
    needs["query"] |= {config.governance.hash_salt_env} - {""}
    needs["vector"] |= {config.vector.token_env} - {""}
    needs["chat"] |= {p.api_key_env for p in config.chat.providers.values()} - {""}
    if any(b.uri.startswith("s3://") for b in config.storage.buckets.values()):
        needs["storage"] |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        needs["query"] |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for deployment in of_kind(objects, "Deployment"):
        served = env_of(containers(deployment)[0])["SERVICE"]["value"]
        wanted = set.union(*needs.values()) if not served else needs[served]
        assert wanted <= set(secret_keys(deployment)), (
            f"{label(deployment)} lacks {wanted - set(secret_keys(deployment))}"
        )


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_prod_keeps_state_in_shared_backends(overlay: str, tmp_path: Path) -> None:
    objects = render(f"overlays/{overlay}")
    config = load_shipped_config(config_text(objects), tmp_path)
    assert config.storage.buckets[config.storage.default_bucket].uri.startswith("s3://")
    assert config.vector.uri.startswith("http"), "a Milvus server, not Milvus Lite in one pod"
    assert config.governance.hash_salt_env, "every query replica needs the same salt"
    assert config.auth.mesh_token_env, "services in different pods must recognise each other"
    # The catalog URL comes from the Secret (it holds a password): the catalog, and the memory
    # service whose tables live in the catalog's database.
    for name in ("catalog", "memory"):
        assert secret_keys(named(objects, "Deployment", f"lakehouse-{name}"))["LAKEHOUSE_CATALOG__URL"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mesh_addresses_point_at_the_services(overlay: str, tmp_path: Path) -> None:
    objects = render(f"overlays/{overlay}")
    config = load_shipped_config(config_text(objects), tmp_path)
    for name in SERVICES:
        if overlay == "dev":  # all six in one process
            assert config.mesh.address_of(name) == "", name
            continue
        host, _, port = config.mesh.address_of(name).rpartition(":")
        service = named(objects, "Service", host)
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == name
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"] == int(port)
    host, _, port = config.server.flight_advertise.removeprefix("grpc+tcp://").rpartition(":")
    flight = {p["name"]: p["port"] for p in named(objects, "Service", host)["spec"]["ports"]}
    assert flight["flight"] == int(port)


@pytest.mark.parametrize("overlay", ["prod", "gpu"])
def test_each_service_sends_metrics_and_traces_under_its_own_name(overlay: str, tmp_path: Path) -> None:
    objects = render(f"overlays/{overlay}")
    observability = load_shipped_config(config_text(objects), tmp_path).observability
    assert (observability.metrics_port, observability.metrics_host) == (9464, "0.0.0.0")
    names = {
        env_of(containers(d)[0])["LAKEHOUSE_OBSERVABILITY__SERVICE_NAME"]["value"]
        for d in of_kind(objects, "Deployment")
    }
    assert names == {f"lakehouse-{s}" for s in SERVICES}


def test_dev_is_one_pod_with_everything_on_one_volume(tmp_path: Path) -> None:
    objects = render("overlays/dev")
    (deployment,) = of_kind(objects, "Deployment")
    assert env_of(containers(deployment)[0])["SERVICE"]["value"] == ""
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "two pods must never write one SQLite file"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    claim = named(objects, "PersistentVolumeClaim", volumes["data"]["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    config = load_shipped_config(config_text(objects), tmp_path)
    assert config.vector.uri == "", "Milvus Lite under /data"
    assert config.catalog.url == "", "SQLite under /data"
    assert all(not b.uri for b in config.storage.buckets.values()), "buckets under /data"
    assert not of_kind(objects, "HorizontalPodAutoscaler")


def test_gpu_puts_only_the_vector_pods_on_gpus_and_demands_cuda(tmp_path: Path) -> None:
    objects = render("overlays/gpu")
    for deployment in of_kind(objects, "Deployment"):
        (container,) = containers(deployment)
        gpus = container["resources"]["limits"].get("nvidia.com/gpu")
        if deployment["metadata"]["name"] == "lakehouse-vector":
            assert gpus == 1 and container["resources"]["requests"]["nvidia.com/gpu"] == 1
            assert container["image"].split(":")[0].endswith("lakehouse-mesh-gpu")
            tolerations = deployment["spec"]["template"]["spec"]["tolerations"]
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
            # A surge pod would wait for a GPU the old pods hold: updates replace pods in place.
            assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
        else:
            assert gpus is None, label(deployment)
            assert container["image"].split(":")[0].endswith("lakehouse-mesh"), label(deployment)
    embedder = load_shipped_config(config_text(objects), tmp_path).vector.embedder
    assert embedder.require_gpu
    assert embedder.providers[0] == "CUDAExecutionProvider"


def _toml(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


def _flatten(table: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_overlay_configs_differ_from_base_only_where_they_mean_to() -> None:
    """The overlays replace lakehouse.toml whole; this keeps the copies from drifting apart."""
    base = _flatten(_toml(K8S / "base" / "lakehouse.toml"))
    prod = _flatten(_toml(K8S / "overlays" / "prod" / "lakehouse.toml"))
    gpu = _flatten(_toml(K8S / "overlays" / "gpu" / "lakehouse.toml"))
    assert {k for k in base if base[k] != prod.get(k)} == set(), "prod changes a key of base"
    assert {k.split(".")[0] for k in set(prod) - set(base)} <= {"storage", "catalog", "query", "vector"}
    changed = {k for k in prod.keys() | gpu.keys() if prod.get(k) != gpu.get(k)}
    assert changed and all(k.startswith("vector.embedder.") for k in changed), changed


def test_pods_run_as_the_user_the_image_creates() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    (uid,) = re.findall(r"^USER (\d+):\d+$", dockerfile, re.MULTILINE)
    for overlay in OVERLAYS:
        for deployment in of_kind(render(f"overlays/{overlay}"), "Deployment"):
            assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)
