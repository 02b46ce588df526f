"""Regenerates generated/ from proto/ with grpcio-tools: messages, .pyi stubs and gRPC stubs.

The command is deliberately plain (no plugins, no import rewriting): the generated modules import
each other by their absolute `lakehouse.*` names, which resolve because `lakehouse` is a
namespace package spread over generated/, servers/ and clients/.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GENERATED_DIR = ROOT / "generated"


def proto_files() -> list[Path]:
    """Every .proto under proto/, in a stable order."""
    return sorted(PROTO_DIR.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Runs protoc over every contract into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_DIR)) for p in proto_files()],
    ]
    # protoc resolves relative file names against the include path; run from proto/ so the
    # well-known types bundled with grpc_tools are found through its own include path.
    include = Path(protoc.__file__).parent / "_proto"
    args.insert(2, f"-I{include}")
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GENERATED_DIR, help="output root")
    out = parser.parse_args().out
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        target = out / "lakehouse"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / "lakehouse", target)
    print(f"generated {len(proto_files())} contracts into {target.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
