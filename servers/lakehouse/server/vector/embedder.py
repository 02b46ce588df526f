"""The embedding runtime: a prepared sentence-embedding model run by ONNX Runtime.

`OnnxEmbedder.load` reads and verifies a model directory written by `lakehouse models prepare`
(see manifest.py), opens one `InferenceSession` and one tokenizer, and reports which execution
provider actually runs the graph: ONNX Runtime falls back to the CPU without raising when the
CUDA libraries cannot be loaded, so the configured providers are only a wish list.

`embed` is a micro-batcher. Concurrent calls queue their texts; one batch of at most
`max_batch` texts runs once it is full or `max_wait_ms` after its oldest text arrived, on a
dedicated thread, and each caller gets its own rows back in order. Results are cached in an LRU
keyed by (graph SHA-256, SHA-256 of the text), and a text already being embedded for another
caller is not embedded twice. Texts are sorted by token count and run in groups of similar
length, so one long text does not pad a batch of short ones to its length; when more than one
batch is queued, a few batches' worth are sorted together.

On CUDA the graph's inputs are bound from host memory and its output stays on the device until
one copy back per run (IO binding). With `fp16` the graph runs in float16: the manifest's
"fp16" graph when the directory has one, otherwise the fp32 graph converted at load time when
the `onnx` package is installed (it is not a dependency of the server); without either the
fp32 graph runs and a warning says why. The int8 graph is for CPU replicas and always runs on
the CPU; it quantizes activations per run (dynamic quantization), so its vectors move slightly
with the other texts in the batch (cosine 0.989 at worst, measured), where fp32 vectors agree
within 1e-7.

No grpc here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from lakehouse.server.common import metrics
from lakehouse.server.common.config import Config, EmbedderConfig
from lakehouse.server.common.errors import Unavailable
from lakehouse.server.vector.gateways import CacheStats, Embedded, EmbedderInfo
from lakehouse.server.vector.manifest import Manifest, ManifestError, load_manifest, verify

log = logging.getLogger("lakehouse.vector.embedder")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
GPU_PROVIDERS = frozenset({CUDA, "TensorrtExecutionProvider"})
"""Providers that run the graph on a GPU (require_gpu is satisfied by either)."""

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
"""Inputs the runtime can feed, each int64 [batch, seq]; a graph takes input_ids and any of the others."""

FP16_VARIANT = "fp16"
"""Manifest graph variant holding a pre-converted float16 graph, used on CUDA when fp16 is on."""

# Texts whose token counts differ by up to this factor (or are all this short) share one model
# run; a longer text starts a new run, so padding stays below half of any run.
_GROUP_FACTOR = 2
_GROUP_FLOOR_TOKENS = 32
# Texts already queued beyond one batch go to the model thread together, up to this many
# batches' worth, so sorting by length has more to choose from (a call of a few hundred texts of
# mixed lengths, as IndexDataset sends, pads far less than it would in arrival order).
_WINDOW_BATCHES = 4

Precision = Literal["FP32", "FP16", "INT8"]


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded or run as configured (raised at service start)."""


def _closed() -> Unavailable:
    return Unavailable("the embedder is shut down", reason="EMBEDDER_CLOSED")


@dataclass(frozen=True)
class BatchStats:
    """What the micro-batcher has done since the embedder was loaded."""

    batches: int
    """Batches taken from the queue, each one trip to the model thread."""
    model_runs: int
    """InferenceSession runs of at most max_batch texts (a batch runs as one or more groups)."""
    texts: int
    """Texts sent to the model (cache hits and in-flight duplicates excluded)."""
    tokens: int
    """Tokens the model read, special tokens included, padding excluded."""
    padded_tokens: int
    """Token positions the model computed, padding included."""


@dataclass(frozen=True)
class _Vector:
    """One embedded text, as cached."""

    vector: np.ndarray
    token_count: int
    truncated: bool


@dataclass
class _Job:
    key: bytes
    text: str
    future: asyncio.Future[_Vector]
    enqueued: float


class _Batcher:
    """The queue of texts waiting for the model, bound to one event loop."""

    def __init__(self, embedder: OnnxEmbedder, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._embedder = embedder
        self._queue: deque[_Job] = deque()
        self.pending: dict[bytes, asyncio.Future[_Vector]] = {}
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._task = loop.create_task(self._run(), name="lakehouse-embedder-batcher")

    def submit(self, key: bytes, text: str) -> asyncio.Future[_Vector]:
        future: asyncio.Future[_Vector] = self.loop.create_future()
        self._queue.append(_Job(key, text, future, self.loop.time()))
        self.pending[key] = future
        self._arrived.set()
        if len(self._queue) >= self._embedder.config.max_batch:
            self._full.set()
        return future

    async def _run(self) -> None:
        max_batch = self._embedder.config.max_batch
        max_wait_s = self._embedder.config.max_wait_ms / 1000
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            # A partial batch waits for more texts, but never longer than max_wait after its
            # oldest text arrived: texts that queued while the model was busy go at once.
            delay = self._queue[0].enqueued + max_wait_s - self.loop.time()
            if len(self._queue) < max_batch and delay > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._full.wait()
            jobs = [self._queue.popleft() for _ in range(min(max_batch * _WINDOW_BATCHES, len(self._queue)))]
            try:
                vectors = await self.loop.run_in_executor(
                    self._embedder.executor, self._embedder.run_batch, [job.text for job in jobs]
                )
            except asyncio.CancelledError:  # closed while the model ran: nobody will deliver these
                self._finish(jobs, error=_closed())
                raise
            except Exception as exc:
                log.exception("embedding a batch of %d texts failed", len(jobs))
                self._finish(jobs, error=exc)
            else:
                self._finish(jobs, vectors=vectors)

    def _finish(
        self, jobs: Sequence[_Job], *, vectors: Sequence[_Vector] = (), error: BaseException | None = None
    ) -> None:
        for i, job in enumerate(jobs):
            self.pending.pop(job.key, None)
            if error is None:
                self._embedder.remember(job.key, vectors[i])
            if job.future.done():  # every caller waiting for it was cancelled
                continue
            if error is None:
                job.future.set_result(vectors[i])
            else:
                job.future.set_exception(error)
                job.future.exception()  # retrieved here: its callers may all be gone

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._finish(list(self._queue), error=_closed())
        self._queue.clear()


class OnnxEmbedder:
    """A sentence-embedding model run by ONNX Runtime behind a micro-batcher (see module docstring).

    Implements `lakehouse.server.vector.gateways.Embedder`.
    """

    def __init__(
        self,
        *,
        manifest: Manifest,
        info: EmbedderInfo,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        config: EmbedderConfig,
        device_id: int | None,
    ) -> None:
        """Use `OnnxEmbedder.load`; this only assembles what it has checked."""
        self.manifest = manifest
        self.config = config
        self._info = info
        self._session = session
        self._device_id = device_id
        self._inputs = frozenset(manifest.inputs)
        self._output = manifest.output
        self._normalize = info.precision == "FP16"
        # Two tokenizers from one file: the model's truncates at max_tokens, the chunker's sees
        # the whole text. Neither is reconfigured after load, so both are safe to share.
        self._tokenizer = tokenizer
        self._whole = Tokenizer.from_str(tokenizer.to_str())
        self._whole.no_truncation()
        self._whole.no_padding()
        self._specials = self._whole.num_special_tokens_to_add(is_pair=False)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakehouse-embedder")
        self._batcher: _Batcher | None = None
        self._cache: OrderedDict[tuple[str, bytes], _Vector] = OrderedDict()
        self._hits = self._misses = 0
        self._stats_lock = threading.Lock()
        self._batches = self._runs = self._texts = self._tokens = self._padded = 0
        self._closed = False

    # -- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, config: Config) -> OnnxEmbedder:
        """Load and verify the model directory of `config`, open the session, report the provider.

        Blocking (hashes the graph, builds the session): call it in an executor.

        Raises:
            EmbedderError: the model directory is missing or does not match its manifest, the
                session cannot be created, or `require_gpu` is set and no GPU provider runs the
                graph.
        """
        settings = config.vector.embedder
        model_dir = config.model_dir
        try:
            manifest = load_manifest(model_dir)
            graph_path = verify(manifest, model_dir, settings.variant)
        except ManifestError as exc:
            raise EmbedderError(f"embedding model: {exc}") from exc
        tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
        tokenizer.no_padding()  # each batch is padded here, to its own longest text
        tokenizer.enable_truncation(manifest.max_tokens)

        providers = _providers(settings)
        options = _session_options(settings)
        session = _session(graph_path, options, providers)
        _check_signature(session, manifest, graph_path)
        active = tuple(session.get_providers())
        on_gpu = bool(GPU_PROVIDERS.intersection(active))
        if settings.require_gpu and not on_gpu:
            raise EmbedderError(
                f"[vector.embedder] require_gpu is set but ONNX Runtime runs the model with {', '.join(active)} "
                f"(configured {', '.join(settings.providers) or 'none'}; this ONNX Runtime offers "
                f"{', '.join(ort.get_available_providers())}). A GPU provider listed as available still falls "
                "back to the CPU when its CUDA/cuDNN libraries or a GPU are missing; check the ONNX Runtime log "
                "above, or set require_gpu = false to run on the CPU"
            )

        precision: Precision = "INT8" if settings.variant == "int8" else "FP32"
        model_sha256 = manifest.graph(settings.variant).sha256
        if on_gpu and settings.fp16 and settings.variant == "fp32":
            fp16 = _fp16_graph(manifest, model_dir, graph_path)
            if fp16 is not None:
                graph, model_sha256 = fp16
                session = _session(graph, options, providers)
                _check_signature(session, manifest, graph_path)
                active = tuple(session.get_providers())
                precision = "FP16"

        device_id = _device_id(session) if CUDA in active else None
        log.info(
            "embedding model %s (%s, %s, sha256 %s) runs on %s%s",
            manifest.name,
            settings.variant,
            precision,
            model_sha256[:12],
            ", ".join(active),
            "" if on_gpu else " (no GPU provider active)",
        )
        info = EmbedderInfo(
            model=manifest.name,
            model_sha256=model_sha256,
            source=manifest.source,
            dimension=manifest.dimension,
            max_tokens=manifest.max_tokens,
            precision=precision,
            providers=active,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
        )
        return cls(
            manifest=manifest,
            info=info,
            session=session,
            tokenizer=tokenizer,
            config=settings,
            device_id=device_id,
        )

    # -- the Embedder protocol ---------------------------------------------------------------------

    @property
    def info(self) -> EmbedderInfo:
        """Model, precision and the providers the session actually runs with."""
        return self._info

    async def embed(self, texts: Sequence[str]) -> Embedded:
        """Embeddings of `texts` in order: cached ones at once, the rest micro-batched.

        Raises:
            Unavailable: the embedder was closed.
        """
        if self._closed:
            raise _closed()
        if not texts:
            return Embedded(np.zeros((0, self._info.dimension), np.float32), (), ())
        batcher = self._batcher_for(asyncio.get_running_loop())
        model = self._info.model_sha256
        rows: list[_Vector | asyncio.Future[_Vector]] = []
        hits = misses = 0
        for text in texts:
            key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
            cached = self._cache.get((model, key))
            if cached is not None:
                self._cache.move_to_end((model, key))
                rows.append(cached)
                hits += 1
            elif (future := batcher.pending.get(key)) is not None:
                rows.append(future)  # the same text is already on its way, for this or another call
                hits += 1
            else:
                rows.append(batcher.submit(key, text))
                misses += 1
        self._hits += hits
        self._misses += misses
        metrics.EMBED_CACHE.labels("hit").inc(hits)
        metrics.EMBED_CACHE.labels("miss").inc(misses)
        done: list[_Vector] = []
        for row in rows:
            # Shielded: a cancelled caller must not cancel a text another caller waits for.
            done.append(row if isinstance(row, _Vector) else await asyncio.shield(row))
        return Embedded(
            vectors=np.stack([row.vector for row in done]),
            token_counts=tuple(row.token_count for row in done),
            truncated=tuple(row.truncated for row in done),
        )

    def chunks(self, text: str, max_tokens: int, overlap_tokens: int) -> list[str]:
        """`text` cut into substrings of at most `max_tokens` model tokens, special tokens counted.

        Windows end and start on word boundaries where a word fits in a window, so chunks read
        naturally and tokenize as they did inside the whole text; consecutive windows share
        `overlap_tokens` tokens, rounded out to whole words. `max_tokens` 0 (or above the
        model's maximum) means the model's maximum. A text that fits is returned whole.

        A piece cut out of a word longer than the window can tokenize longer on its own than
        inside the word; such pieces are shortened until they fit, down to a single token, so
        only windows of one or two text tokens can end up over the limit.

        Raises:
            ValueError: `overlap_tokens` is negative or leaves no room for new tokens in a window
                (`overlap_tokens >= max_tokens`), or `max_tokens` is too small for any text.
        """
        if max_tokens < 0 or overlap_tokens < 0:
            raise ValueError(f"max_tokens and overlap_tokens must be >= 0 (got {max_tokens}, {overlap_tokens})")
        if overlap_tokens >= max_tokens > 0:
            raise ValueError(f"overlap_tokens ({overlap_tokens}) must be less than max_tokens ({max_tokens})")
        limit = min(max_tokens, self._info.max_tokens) if max_tokens else self._info.max_tokens
        window = limit - self._specials
        if window <= overlap_tokens:
            raise ValueError(
                f"a window of {limit} tokens holds {max(window, 0)} text tokens besides the {self._specials} special "
                f"tokens; overlap_tokens ({overlap_tokens}) must be less than that"
            )
        encoding = self._whole.encode(text, add_special_tokens=False)
        count = len(encoding.ids)
        if count <= window:
            return [text]
        offsets = encoding.offsets
        words = encoding.word_ids

        def spaced(i: int) -> bool:  # text between token i - 1 and token i: a natural place to cut
            return i == 0 or i >= count or offsets[i][0] > offsets[i - 1][1]

        def word_start(i: int) -> bool:
            return i == 0 or i >= count or words[i] is None or words[i] != words[i - 1]

        def boundary(i: int, floor: int) -> int:
            """The best cut at or before token i and after `floor`: after a space not too far back,
            else at a word start, else i itself (a word longer than the window)."""
            for j in range(i, max(floor, i - window // 2), -1):
                if spaced(j):
                    return j
            for j in range(i, floor, -1):
                if word_start(j):
                    return j
            return i

        def piece(start: int, end: int) -> str:
            return text[offsets[start][0] : offsets[end - 1][1]]

        pieces: list[str] = []
        start = 0
        while True:
            end = count if start + window >= count else boundary(start + window, start)
            # Cut at word boundaries, a piece tokenizes as it did inside the text; a cut inside a
            # word (or a normalizer that looks across the cut) may not, so the piece is checked.
            while end - start > 1 and len(self._whole.encode(piece(start, end), add_special_tokens=False).ids) > window:
                end -= 1
            pieces.append(piece(start, end))
            if end >= count:
                return pieces
            start = boundary(max(end - overlap_tokens, start + 1), start)

    def cache_stats(self) -> CacheStats:
        """Cache hits (including texts already on their way to the model) and misses so far."""
        return CacheStats(
            hits=self._hits, misses=self._misses, entries=len(self._cache), capacity=self.config.cache_entries
        )

    def batch_stats(self) -> BatchStats:
        """Batches, model runs, texts and tokens the micro-batcher has sent to the model so far."""
        with self._stats_lock:
            return BatchStats(self._batches, self._runs, self._texts, self._tokens, self._padded)

    async def close(self) -> None:
        """Fail queued texts, wait for the batch on the model thread, stop the thread."""
        self._closed = True
        if self._batcher is not None and self._batcher.loop is asyncio.get_running_loop():
            await self._batcher.close()
        self._batcher = None
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------------

    def _batcher_for(self, loop: asyncio.AbstractEventLoop) -> _Batcher:
        # A batcher lives on the loop that first needed it; a new loop (tests, a restarted
        # server in the same process) gets a new one.
        if self._batcher is None or self._batcher.loop is not loop:
            self._batcher = _Batcher(self, loop)
        return self._batcher

    def remember(self, key: bytes, row: _Vector) -> None:
        """Put one embedded text in the LRU cache (on the event loop)."""
        capacity = self.config.cache_entries
        if capacity <= 0:
            return
        self._cache[(self._info.model_sha256, key)] = row
        self._cache.move_to_end((self._info.model_sha256, key))
        while len(self._cache) > capacity:
            self._cache.popitem(last=False)

    def run_batch(self, texts: Sequence[str]) -> list[_Vector]:
        """Tokenize and embed texts taken from the queue (on the model thread), in order.

        Sorted by token count, they run in groups of at most `max_batch` texts whose lengths
        differ by at most `_GROUP_FACTOR`, each padded to its own longest text.
        """
        max_batch = self.config.max_batch
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        vectors = np.empty((len(texts), self._info.dimension), np.float32)
        runs = padded = 0
        begin = 0
        while begin < len(order):
            ceiling = max(int(lengths[order[begin]]) * _GROUP_FACTOR, _GROUP_FLOOR_TOKENS)
            end = begin
            while end < len(order) and end - begin < max_batch and lengths[order[end]] <= ceiling:
                end += 1
            group = order[begin:end]
            vectors[group] = self._run_model([encodings[i] for i in group])
            runs += 1
            padded += len(group) * int(lengths[group[-1]])
            begin = end
        with self._stats_lock:
            self._batches += 1
            self._runs += runs
            self._texts += len(texts)
            self._tokens += int(lengths.sum())
            self._padded += padded
        vectors.flags.writeable = False
        return [
            _Vector(vectors[i], int(lengths[i]), bool(encoding.overflowing)) for i, encoding in enumerate(encodings)
        ]

    def _run_model(self, encodings: Sequence[Encoding]) -> np.ndarray:
        metrics.EMBED_BATCH.observe(len(encodings))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), np.int64)
        mask = np.zeros((len(encodings), width), np.int64)
        types = np.zeros((len(encodings), width), np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = encoding.attention_mask
            types[row, :n] = encoding.type_ids
        feeds = {
            name: array for name, array in zip(MODEL_INPUTS, (ids, mask, types), strict=True) if name in self._inputs
        }
        if self._device_id is None:
            out = self._session.run([self._output], feeds)[0]
        else:
            # Inputs go up from host memory, the output stays on the GPU until one copy back.
            binding = self._session.io_binding()
            for name, array in feeds.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output(self._output, "cuda", self._device_id)
            self._session.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()[0]
        out = np.asarray(out, dtype=np.float32)
        if self._normalize:  # float16 normalisation in the graph leaves norms off by ~1e-3
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _providers(settings: EmbedderConfig) -> list[str]:
    """Configured providers this ONNX Runtime offers, in order; the CPU only for the int8 graph."""
    available = ort.get_available_providers()
    wanted = [p for p in settings.providers if p in available]
    missing = [p for p in settings.providers if p not in available]
    if missing:
        log.warning(
            "embedding model: providers %s are not in this ONNX Runtime (it offers %s)",
            ", ".join(missing),
            ", ".join(available),
        )
    if settings.variant == "int8":
        gpu = [p for p in wanted if p in GPU_PROVIDERS]
        if gpu:
            # The int8 graph's quantized operators have CPU kernels only: on CUDA every layer
            # would copy between devices. fp32 (or fp16) is the GPU variant.
            log.warning("embedding model: the int8 graph runs on the CPU only; %s not used", ", ".join(gpu))
        wanted = [p for p in wanted if p not in GPU_PROVIDERS]
        if settings.require_gpu:
            raise EmbedderError(
                '[vector.embedder] require_gpu is set with variant = "int8", which runs on the CPU only; '
                'use variant = "fp32" on a GPU'
            )
    if not wanted:
        log.warning("embedding model: none of the configured providers is available; using %s", CPU)
        wanted = [CPU]
    return wanted


def _session_options(settings: EmbedderConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = 1
    # The model shares the CPU with the event loop, the tokenizer and the other services: idle
    # intra-op threads sleep instead of spinning between batches.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _session(graph: Path | bytes, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own, unexported exception classes
        where = "fp16 graph" if isinstance(graph, bytes) else str(graph)
        raise EmbedderError(f"embedding model: ONNX Runtime cannot load {where}: {exc}") from exc


def _check_signature(session: ort.InferenceSession, manifest: Manifest, graph: Path) -> None:
    """The graph takes the manifest's inputs (a subset of the three the runtime feeds) and has its output."""
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    problem = ""
    if inputs != set(manifest.inputs):
        problem = f"inputs {sorted(inputs)} differ from the manifest's {sorted(manifest.inputs)}"
    elif not inputs <= set(MODEL_INPUTS) or "input_ids" not in inputs:
        problem = f"inputs {sorted(inputs)} are not input_ids with some of {', '.join(MODEL_INPUTS[1:])}"
    elif manifest.output not in outputs:
        problem = f"has no output {manifest.output!r} (it has {', '.join(sorted(outputs))})"
    if problem:
        raise EmbedderError(f"embedding model: {graph}: {problem}; run `lakehouse models prepare --force`")


def _device_id(session: ort.InferenceSession) -> int:
    options: dict[str, Any] = session.get_provider_options().get(CUDA, {})
    return int(options.get("device_id", 0))


def _fp16_graph(manifest: Manifest, model_dir: Path, graph_path: Path) -> tuple[Path | bytes, str] | None:
    """The float16 graph to run on CUDA and its SHA-256, or None (with a warning) to run fp32.

    A prepared "fp16" graph is preferred: it is verified like the others and costs nothing at
    start. Otherwise the fp32 graph is converted here with the converter ONNX Runtime ships,
    which needs the `onnx` package; inputs and output keep their types.
    """
    if FP16_VARIANT in manifest.graphs:
        try:
            return verify(manifest, model_dir, FP16_VARIANT), manifest.graph(FP16_VARIANT).sha256
        except ManifestError as exc:
            raise EmbedderError(f"embedding model: {exc}") from exc
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        log.warning(
            "embedding model: fp16 is on but %s lists no %r graph and the onnx package is not installed "
            "to convert one; running the fp32 graph on the GPU",
            graph_path.parent / "manifest.json",
            FP16_VARIANT,
        )
        return None
    try:
        graph = convert_float_to_float16(onnx.load(str(graph_path)), keep_io_types=True).SerializeToString()
    except Exception as exc:  # the converter raises whatever onnx raises
        log.warning("embedding model: converting %s to float16 failed (%s); running it in fp32", graph_path, exc)
        return None
    return graph, hashlib.sha256(graph).hexdigest()
