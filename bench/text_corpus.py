"""Sentence embeddings for the vector benchmark: real all-MiniLM-L6-v2 vectors of generated text.

Random unit vectors are the worst case for a graph index and unlike what a lakehouse stores;
these are the vectors the service itself would write. Sentences are built from the model's own
word-piece vocabulary (whole alphabetic words only), with a Zipf-like choice of words so that
topics recur the way they do in real notes and tickets: "<topic>: w1 w2 ... (#i)". They are
embedded with the prepared model's int8 variant (mean cosine >= 0.99 to fp32, twice as fast on
a CPU) and cached under bench/results/cache, keyed by count, seed and model hash, so a second run
starts at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from lakehouse.server.common.config import Config, EmbedderConfig, VectorConfig
from lakehouse.server.vector.embedder import OnnxEmbedder

CACHE = Path(__file__).resolve().parent / "results" / "cache"
CALL = 512


def vocabulary(model_dir: Path) -> list[str]:
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    return sorted(w for w in vocab if w.isascii() and w.isalpha() and len(w) >= 4)


def sentences(model_dir: Path, count: int, seed: int) -> list[str]:
    words = vocabulary(model_dir)
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(len(words)) + 50.0)
    order = rng.permutation(len(words))  # which words are common depends on the seed, not the alphabet
    weights = weights[np.argsort(order)] / weights.sum()
    topics = rng.choice(len(words), size=count, p=weights)
    lengths = rng.integers(5, 12, size=count)
    body = rng.choice(len(words), size=(count, 12), p=weights)
    return [
        f"{words[t]}: " + " ".join(words[w] for w in body[i, : lengths[i]]) + f" (#{i})" for i, t in enumerate(topics)
    ]


def embedded(model_dir: Path, count: int, seed: int) -> np.ndarray:
    """`count` unit vectors (float32, count x 384) of generated sentences, from the cache when there."""
    digest = hashlib.sha256((model_dir / "manifest.json").read_bytes()).hexdigest()
    path = CACHE / f"text-{count}-{seed}-{digest[:12]}.npy"
    if path.is_file():
        return np.load(path)
    texts = sentences(model_dir, count, seed)
    settings = EmbedderConfig(model_dir=str(model_dir), variant="int8", max_batch=64, cache_entries=0)
    embedder = OnnxEmbedder.load(Config(vector=VectorConfig(embedder=settings)))
    began = time.perf_counter()

    async def run() -> np.ndarray:
        parts = []
        for start in range(0, count, CALL):
            parts.append(np.asarray((await embedder.embed(texts[start : start + CALL])).vectors, dtype=np.float32))
            done = min(start + CALL, count)
            print(
                f"\r  embedding sentences: {done:,}/{count:,} ({done / (time.perf_counter() - began):,.0f}/s)",
                end="",
                flush=True,
            )
        await embedder.close()
        return np.concatenate(parts)

    vectors = asyncio.run(run())
    print()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors
