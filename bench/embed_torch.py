"""The baseline of embed_bench.py: sentence-transformers on PyTorch, in its own process.

Runs in the model build environment (.build/export-env, which has torch), never in the
project's: embed_bench.py starts it, and it prints one JSON line with its own sentences/s so
both numbers come from the same run on the same machine. It warms up, prints {"ready": true},
then runs one timed pass per "run" line on stdin and prints {"sentences_per_s": ...} for each;
the first pass's embeddings are saved so the benchmark can check both sides computed the same
vectors.

    embed_torch.py --weights DIR --sentences FILE.json --vectors OUT.npy [--batch 32] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path, required=True, help="sentence-transformers model folder")
    parser.add_argument("--sentences", type=Path, required=True, help="JSON list of sentences")
    parser.add_argument("--vectors", type=Path, required=True, help="where to save the embeddings (.npy)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    try:
        import numpy as np
        import sentence_transformers
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        print(
            f"{exc}; the baseline needs torch and sentence-transformers in this environment "
            f"({sys.prefix}): {sys.prefix}/bin/pip install sentence-transformers",
            file=sys.stderr,
        )
        return 2

    torch.set_num_threads(args.threads)
    sentences = json.loads(args.sentences.read_text(encoding="utf-8"))
    model = SentenceTransformer(str(args.weights), device="cpu")
    model.eval()

    def encode() -> np.ndarray:
        with torch.inference_mode():
            return model.encode(
                sentences,
                batch_size=args.batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    model.encode(sentences[: args.batch * 2], batch_size=args.batch, show_progress_bar=False)  # warm-up
    print(
        json.dumps(
            {"ready": True, "torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__}
        ),
        flush=True,
    )
    # One timed pass per "run" line on stdin, so the caller can interleave its own passes with
    # these (a fair comparison on a machine whose load changes).
    for line in sys.stdin:
        if line.strip() != "run":
            break
        started = time.perf_counter()
        vectors = encode()
        seconds = time.perf_counter() - started
        if not args.vectors.exists():
            np.save(args.vectors, vectors.astype(np.float32))
        print(json.dumps({"sentences_per_s": len(sentences) / seconds, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
