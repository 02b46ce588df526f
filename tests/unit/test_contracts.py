"""The proto contracts: generated code is current, buf is happy, and naming conventions hold."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
GENERATED = ROOT / "generated" / "lakehouse"
BUF = ROOT / "node_modules" / ".bin" / "buf"
SERVICES = ("storage", "catalog", "query", "vector", "memory", "chat")
REGENERATE = "run `make protos` (scripts/gen_protos.py) and commit generated/"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lakehouse_gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and path.name != "__init__.py" and "__pycache__" not in path.parts
    }


# --- generated code is what the generator produces ---------------------------------------


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    _generator().generate(tmp_path)
    fresh = _files(tmp_path / "lakehouse")
    committed = _files(GENERATED)

    assert fresh, "the generator produced nothing"
    missing = sorted(set(fresh) - set(committed))
    extra = sorted(set(committed) - set(fresh))
    stale = sorted(name for name in set(fresh) & set(committed) if fresh[name] != committed[name])
    assert not missing, f"generated/lakehouse lacks {missing}: {REGENERATE}"
    assert not extra, f"generated/lakehouse has files no .proto produces {extra}: {REGENERATE}"
    assert not stale, f"generated/lakehouse is out of date in {stale}: {REGENERATE}"


def test_every_proto_has_generated_modules() -> None:
    for proto in sorted(PROTO.rglob("*.proto")):
        stem = proto.relative_to(PROTO).with_suffix("").as_posix()
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (GENERATED.parent / f"{stem}{suffix}").is_file(), f"{stem}{suffix} is missing: {REGENERATE}"


# --- buf -------------------------------------------------------------------------------------


def _buf(*args: str) -> subprocess.CompletedProcess[str]:
    if not BUF.is_file():
        pytest.fail(f"{BUF.relative_to(ROOT)} is missing: run `npm ci` in {ROOT} to install the pinned buf")
    return subprocess.run([str(BUF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_buf_lint_passes() -> None:
    result = _buf("lint")

    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_buf_format_leaves_the_protos_unchanged() -> None:
    result = _buf("format", "--diff", "--exit-code")

    assert result.returncode == 0, f"run `buf format -w`; buf format would change:\n{result.stdout}{result.stderr}"


# --- naming and API conventions -------------------------------------------------------------


def _service_module(svc: str) -> ModuleType:
    return importlib.import_module(f"lakehouse.{svc}.v1.{svc}_service_pb2")


def _service(svc: str) -> ServiceDescriptor:
    return _service_module(svc).DESCRIPTOR.services_by_name[f"{svc.capitalize()}Service"]


def _methods(prefix: str) -> list[MethodDescriptor]:
    return [m for svc in SERVICES for m in _service(svc).methods if m.name.startswith(prefix)]


def test_the_six_services_each_have_one_service_proto() -> None:
    protos = sorted(PROTO.glob("lakehouse/*/v1/*_service.proto"))

    assert [p.relative_to(PROTO).as_posix() for p in protos] == sorted(
        f"lakehouse/{svc}/v1/{svc}_service.proto" for svc in SERVICES
    )


@pytest.mark.parametrize("svc", SERVICES)
def test_service_is_named_after_its_package(svc: str) -> None:
    descriptor = _service_module(svc).DESCRIPTOR

    assert descriptor.name == f"lakehouse/{svc}/v1/{svc}_service.proto"
    assert descriptor.package == f"lakehouse.{svc}.v1"
    assert list(descriptor.services_by_name) == [f"{svc.capitalize()}Service"]
    assert _service(svc).full_name == f"lakehouse.{svc}.v1.{svc.capitalize()}Service"
    assert len(_service(svc).methods) > 0


def _field(message: Descriptor, name: str) -> FieldDescriptor:
    assert name in message.fields_by_name, f"{message.full_name} has no field {name!r}"
    return message.fields_by_name[name]


LIST_METHODS = _methods("List")
UPDATE_METHODS = _methods("Update")


def test_conventions_are_checked_on_real_methods() -> None:
    assert len(LIST_METHODS) >= 6
    assert len(UPDATE_METHODS) >= 3


@pytest.mark.parametrize("method", LIST_METHODS, ids=lambda m: m.full_name)
def test_list_rpcs_page_with_size_and_token(method: MethodDescriptor) -> None:
    assert _field(method.input_type, "page_size").type == FieldDescriptor.TYPE_INT32
    assert _field(method.input_type, "page_token").type == FieldDescriptor.TYPE_STRING
    assert _field(method.output_type, "next_page_token").type == FieldDescriptor.TYPE_STRING


@pytest.mark.parametrize("method", UPDATE_METHODS, ids=lambda m: m.full_name)
def test_update_rpcs_take_a_field_mask(method: MethodDescriptor) -> None:
    mask = _field(method.input_type, "update_mask")

    assert mask.type == FieldDescriptor.TYPE_MESSAGE
    assert mask.message_type.full_name == "google.protobuf.FieldMask"
