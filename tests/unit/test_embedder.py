"""The embedder against the real prepared model (`make model` writes it; a missing one fails)."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tokenizers import Tokenizer

from lakehouse.server.common.config import Config, EmbedderConfig, VectorConfig
from lakehouse.server.common.errors import Unavailable
from lakehouse.server.vector.embedder import EmbedderError, OnnxEmbedder
from lakehouse.server.vector.manifest import Manifest, load_manifest

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(
    os.environ.get("LAKEHOUSE_VECTOR__EMBEDDER__MODEL_DIR") or ROOT / "data" / "models" / "all-minilm-l6-v2"
)

SENTENCES = [
    "The cat sits on the mat.",
    "A feline is resting on a rug.",
    "Quarterly revenue grew by twelve percent.",
    "Delta Lake keeps every version of a table.",
    "",
    "ok",
    " ".join(["The warehouse stores parquet files partitioned by day and region."] * 12),
]
LONG_TEXT = " ".join(
    f"Paragraph {i}: the lakehouse keeps tables as Delta files, indexes their text as vectors, "
    "and answers questions with citations that point back at rows."
    for i in range(40)
)


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    if not (MODEL_DIR / "manifest.json").is_file():
        pytest.fail(f"no prepared embedding model at {MODEL_DIR}: run `make model`")
    return load_manifest(MODEL_DIR)


@pytest.fixture
def make(manifest: Manifest) -> Iterator[Callable[..., OnnxEmbedder]]:
    """Loads an embedder with [vector.embedder] settings changed; each is closed after the test."""
    loaded: list[OnnxEmbedder] = []

    def load(**settings: Any) -> OnnxEmbedder:
        config = Config(vector=VectorConfig(embedder=EmbedderConfig(model_dir=str(MODEL_DIR), **settings)))
        embedder = OnnxEmbedder.load(config)
        loaded.append(embedder)
        return embedder

    yield load
    for embedder in loaded:
        embedder.executor.shutdown(wait=True)


@pytest.fixture
async def embedder(make: Callable[..., OnnxEmbedder]) -> AsyncIterator[OnnxEmbedder]:
    embedder = make()
    yield embedder
    await embedder.close()


@functools.cache
def whole_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def tokens(text: str) -> int:
    """Model tokens of `text`, special tokens included, without truncation."""
    return len(whole_tokenizer().encode(text).ids)


async def test_info_reports_the_provider_that_runs_and_the_manifest(embedder: OnnxEmbedder, manifest: Manifest) -> None:
    info = embedder.info
    # CUDA is configured first and listed as available, but this machine has no GPU: the
    # session falls back to the CPU and the embedder says so.
    assert embedder.config.providers[0] == "CUDAExecutionProvider"
    assert info.providers == ("CPUExecutionProvider",)
    assert info.model == manifest.name
    assert info.model_sha256 == manifest.graphs["fp32"].sha256
    assert info.source == manifest.source
    assert info.dimension == manifest.dimension == 384
    assert info.max_tokens == manifest.max_tokens == 256
    assert info.precision == "FP32"
    assert (info.max_batch, info.max_wait_s) == (64, 0.002)


async def test_embeddings_are_unit_vectors_in_input_order(embedder: OnnxEmbedder) -> None:
    out = await embedder.embed(SENTENCES)
    assert out.vectors.shape == (len(SENTENCES), 384)
    assert out.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
    similarity = out.vectors @ out.vectors.T
    # The paraphrase is the closest other sentence to the first one.
    assert int(np.argsort(similarity[0])[-2]) == 1
    assert similarity[0, 1] > similarity[0, 2] + 0.3


async def test_embeddings_are_deterministic_and_batch_invariant(make: Callable[..., OnnxEmbedder]) -> None:
    first, second = make(cache_entries=0), make(cache_entries=0)
    together = await first.embed(SENTENCES)
    again = await second.embed(SENTENCES)
    np.testing.assert_array_equal(together.vectors, again.vectors)
    for i, text in enumerate(SENTENCES):
        alone = await second.embed([text])
        np.testing.assert_allclose(alone.vectors[0], together.vectors[i], atol=1e-5)
    await first.close()
    await second.close()


async def test_token_counts_truncation_and_the_empty_text(embedder: OnnxEmbedder) -> None:
    out = await embedder.embed(["hello world", "", LONG_TEXT])
    assert out.token_counts == (4, 2, 256)
    assert out.truncated == (False, False, True)
    assert tokens(LONG_TEXT) > 256
    # The empty text embeds as the empty sentence ([CLS] [SEP]): a unit vector like any other.
    assert abs(float(np.linalg.norm(out.vectors[1])) - 1.0) < 1e-5


async def test_repeated_texts_come_from_the_cache(embedder: OnnxEmbedder) -> None:
    await embedder.embed(SENTENCES[:3])
    stats = embedder.cache_stats()
    assert (stats.hits, stats.misses, stats.entries, stats.capacity) == (0, 3, 3, 10_000)
    first = await embedder.embed(SENTENCES[:3])
    second = await embedder.embed([SENTENCES[2], SENTENCES[0], SENTENCES[3]])
    stats = embedder.cache_stats()
    assert (stats.hits, stats.misses, stats.entries) == (5, 4, 4)
    np.testing.assert_array_equal(second.vectors[0], first.vectors[2])
    assert embedder.batch_stats().texts == 4


async def test_duplicates_in_one_call_run_once(embedder: OnnxEmbedder) -> None:
    out = await embedder.embed(["same text", "other text", "same text", "same text"])
    np.testing.assert_array_equal(out.vectors[0], out.vectors[2])
    np.testing.assert_array_equal(out.vectors[0], out.vectors[3])
    assert embedder.batch_stats().texts == 2


async def test_the_lru_cache_keeps_the_most_recent_texts(make: Callable[..., OnnxEmbedder]) -> None:
    embedder = make(cache_entries=2)
    await embedder.embed(["a", "b"])
    await embedder.embed(["a"])  # "a" is now the most recent
    await embedder.embed(["c"])  # evicts "b"
    await embedder.embed(["a", "b"])
    stats = embedder.cache_stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 4, 2)
    await embedder.close()


async def test_concurrent_calls_share_model_batches(make: Callable[..., OnnxEmbedder]) -> None:
    embedder = make(cache_entries=0, max_batch=64)
    texts = [f"sentence number {i} about the lakehouse" for i in range(200)]
    results = await asyncio.gather(*(embedder.embed([text]) for text in texts))
    stats = embedder.batch_stats()
    assert stats.texts == 200
    assert stats.batches < 200
    assert stats.model_runs >= 4  # at most 64 texts per model run
    expected = await embedder.embed(texts)
    for i, result in enumerate(results):
        assert result.vectors.shape == (1, 384)
        np.testing.assert_allclose(result.vectors[0], expected.vectors[i], atol=1e-5)
    await embedder.close()


async def test_a_cancelled_caller_does_not_fail_another_waiting_for_the_same_text(embedder: OnnxEmbedder) -> None:
    text = "shared by two callers"
    first = asyncio.ensure_future(embedder.embed([text]))
    second = asyncio.ensure_future(embedder.embed([text]))
    await asyncio.sleep(0)
    first.cancel()
    out = await second
    assert out.vectors.shape == (1, 384)
    assert first.cancelled()


async def test_a_failed_batch_fails_its_callers_and_the_next_call_runs(embedder: OnnxEmbedder) -> None:
    real = embedder._run_model
    calls = 0

    def fail_once(encodings: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model run failed")
        return real(encodings)

    embedder._run_model = fail_once  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="model run failed"):
        await embedder.embed(["first try"])
    out = await embedder.embed(["first try"])
    assert out.vectors.shape == (1, 384)


async def test_close_fails_texts_still_waiting_for_the_model(embedder: OnnxEmbedder) -> None:
    real = embedder._run_model
    started, release = threading.Event(), threading.Event()

    def slow(encodings: Any) -> Any:
        started.set()
        release.wait(10)
        return real(encodings)

    embedder._run_model = slow  # type: ignore[method-assign]
    running = asyncio.ensure_future(embedder.embed(["in the model"]))
    while not started.is_set():
        await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(embedder.embed(["still queued"]))
    await asyncio.sleep(0.01)
    closing = asyncio.ensure_future(embedder.close())
    await asyncio.sleep(0.01)
    release.set()
    await closing
    for call in (running, queued):
        with pytest.raises(Unavailable):
            await call


async def test_require_gpu_without_a_gpu_stops_the_load(make: Callable[..., OnnxEmbedder]) -> None:
    with pytest.raises(EmbedderError) as info:
        make(require_gpu=True)
    message = str(info.value)
    assert "require_gpu" in message
    assert "CPUExecutionProvider" in message


async def test_a_missing_model_directory_says_how_to_make_it(tmp_path: Path) -> None:
    config = Config(vector=VectorConfig(embedder=EmbedderConfig(model_dir=str(tmp_path / "nothing"))))
    with pytest.raises(EmbedderError, match="models prepare"):
        OnnxEmbedder.load(config)


async def test_int8_runs_on_the_cpu_close_to_fp32(make: Callable[..., OnnxEmbedder], manifest: Manifest) -> None:
    fp32, int8 = make(), make(variant="int8")
    assert int8.info.precision == "INT8"
    assert int8.info.providers == ("CPUExecutionProvider",)
    assert int8.info.model_sha256 == manifest.graphs["int8"].sha256
    texts = [SENTENCES[0], SENTENCES[1], SENTENCES[2], SENTENCES[3], SENTENCES[-1]]
    a, b = (await fp32.embed(texts)).vectors, (await int8.embed(texts)).vectors
    cosine = np.sum(a * b, axis=1)
    assert float(cosine.min()) >= 0.99, cosine
    await fp32.close()
    await int8.close()


async def test_close_fails_later_calls(make: Callable[..., OnnxEmbedder]) -> None:
    embedder = make()
    await embedder.embed(["before"])
    await embedder.close()
    with pytest.raises(Unavailable):
        await embedder.embed(["after"])


def test_long_text_becomes_overlapping_windows_within_the_limit(make: Callable[..., OnnxEmbedder]) -> None:
    embedder = make()
    pieces = embedder.chunks(LONG_TEXT, 64, 16)
    assert len(pieces) > 5
    at = 0
    previous_end = 0
    for i, piece in enumerate(pieces):
        assert tokens(piece) <= 64
        start = LONG_TEXT.index(piece, at)  # a substring of the text, in order
        if i:
            assert start < previous_end  # overlaps the previous window
        previous_end = start + len(piece)
        at = start + 1
    assert LONG_TEXT.startswith(pieces[0])
    assert LONG_TEXT.endswith(pieces[-1])
    # Windows end on word boundaries, so every piece reads as whole words.
    words = set(LONG_TEXT.replace(",", " ").replace(":", " ").replace(".", " ").split())
    for piece in pieces:
        assert all(word in words for word in piece.replace(",", " ").replace(":", " ").replace(".", " ").split())


def test_zero_max_tokens_means_the_model_maximum(make: Callable[..., OnnxEmbedder]) -> None:
    pieces = make().chunks(LONG_TEXT, 0, 0)
    assert len(pieces) > 1
    assert all(tokens(piece) <= 256 for piece in pieces)
    assert max(tokens(piece) for piece in pieces) > 200


def test_short_text_is_one_chunk(make: Callable[..., OnnxEmbedder]) -> None:
    embedder = make()
    assert embedder.chunks("A short note.", 64, 16) == ["A short note."]
    assert embedder.chunks("", 0, 0) == [""]


@pytest.mark.parametrize(("max_tokens", "overlap"), [(64, 64), (64, 100), (64, -1), (3, 1)])
def test_overlap_must_leave_room_in_the_window(
    make: Callable[..., OnnxEmbedder], max_tokens: int, overlap: int
) -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        make().chunks(LONG_TEXT, max_tokens, overlap)
