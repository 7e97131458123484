"""The ASR core: audio samples in, per-level log-probs and the greedy decode out.

Transport-free (no grpc here): the servicer converts protobuf to these objects, the gateway's
in-process mode and the benchmarks call it directly. One engine per process owns the model,
the optional pause segmenter, and one model worker thread shared by both of their batchers,
so that the two never compete for the GPU (or the CPU cores) at the same moment.

A request runs as: checks, (segmenter when the audio is long or on request), chunk plan,
features (off the event loop), the CTC model through the dynamic batcher, log-softmax,
stitching by frame, greedy decode (off the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from services.asr import chunking, metrics
from services.asr.batching import DynamicBatcher
from services.asr.config import AsrConfig
from services.asr.decode import DecodeReference, DecodeResult, greedy_decode
from services.asr.segmenter import (
    LABEL_SAMPLES,
    SAMPLE_RATE,
    Segmentation,
    SegmentOptions,
    chunk_bounds,
    segmentation_from_labels,
)
from services.asr.vocab import Vocabulary
from services.common.errors import FailedPrecondition, InvalidArgument, Unavailable

if TYPE_CHECKING:  # torch-backed modules are imported when the engine loads, not on import
    from torch import Tensor

    from services.asr.checkpoint import CheckpointFiles
    from services.asr.features import FeatureExtractor

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.float32]
LogProbs = dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True)
class ModelVersion:
    """What produced an output; dev_weights: random development weights (outputs are noise)."""

    name: str
    weights_digest: str
    dev_weights: bool
    backend: str
    precision: str
    device: str
    # The demo checkpoint: trained on the synthetic reciter; it hears that voice, not people.
    demo_weights: bool = False


@dataclass(frozen=True)
class TranscribeOptions:
    include_log_probs: bool = False
    # Levels whose log-probs to return; empty: all.
    levels: tuple[str, ...] = ()
    force_segmentation: bool = False
    skip_sifat: bool = False
    detect_completeness: bool = False
    # The reference the learner should have recited (its phoneme groups and their sifat): the
    # sifat decode aligns to it when a level's tokens do not match the decoded groups one to one.
    reference: DecodeReference | None = None


@dataclass(frozen=True)
class Transcription:
    decode: DecodeResult
    # Only the requested levels, and only when include_log_probs was set.
    log_probs: LogProbs
    num_frames: int
    frame_duration_s: float
    audio_duration_s: float
    model_version: ModelVersion
    # (stage, milliseconds) in the order they ran.
    timings: tuple[tuple[str, float], ...]
    chunking: str
    segments: tuple[tuple[float, float], ...]
    is_complete: bool | None
    batch_size: int
    queue_ms: float


@dataclass(frozen=True)
class SegmentResult:
    segmentation: Segmentation
    model_version: ModelVersion
    audio_duration_s: float
    frame_duration_s: float = LABEL_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class ModelInfo:
    model_version: ModelVersion
    # level -> labels by id (index 0 the blank); sifat levels in quran-transcript's English names.
    vocabularies: Mapping[str, tuple[str, ...]]
    frame_duration_s: float
    sample_rate_hz: int
    max_audio_s: float
    window_s: float
    window_overlap_s: float
    segment_above_s: float
    segmenter_version: ModelVersion | None
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    parameters: int


@dataclass(frozen=True)
class PlanRun:
    """How the pieces of one plan ran: stage times (ms) and the batching they met."""

    features_ms: float
    queue_ms: float
    model_ms: float
    batch_size: int


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise FailedPrecondition(f"MUAALEM_ASR_DEVICE={requested} but torch sees no CUDA device")
    return requested


def geometry_of(config: Mapping[str, Any], preprocessor: Mapping[str, Any]) -> chunking.FrameGeometry:
    """Output-frame arithmetic of a checkpoint, from its config.json and preprocessor config."""
    adapter = bool(config.get("add_adapter", False))
    return chunking.FrameGeometry(
        feature_stride=int(preprocessor.get("stride", 2)),
        adapter_stride=int(config.get("adapter_stride", 2)),
        adapter_layers=int(config.get("num_adapter_layers", 1)) if adapter else 0,
    )


@dataclass(frozen=True)
class ModelInput:
    """One piece's features as the extractor gives them for that piece alone: (T, 160) and its
    (T,) mask, which ends with a masked frame when the piece has an odd number of 10 ms frames
    (the model sees that frame in an unbatched run, so a batch keeps it and tells the model
    each item's extent)."""

    features: Tensor
    mask: Tensor
    valid_frames: int

    @property
    def frames(self) -> int:
        return int(self.features.shape[0])


def model_inputs(
    extractor: FeatureExtractor, geometry: chunking.FrameGeometry, waves: Sequence[Samples]
) -> list[ModelInput]:
    """Features of each wave as it has them alone. Frame counts come from `geometry` (CPU
    arithmetic; tests/asr check it against the extractor's mask and input_frames), so nothing
    is read back from a GPU here."""
    batch = extractor.extract(waves)
    inputs = []
    for row, wave in enumerate(waves):
        own = geometry.feature_extent(len(wave))
        inputs.append(
            ModelInput(
                features=batch.features[row, :own],
                mask=batch.attention_mask[row, :own],
                valid_frames=geometry.feature_frames(len(wave)),
            )
        )
    return inputs


def pad_batch(items: Sequence[ModelInput], padding_value: float) -> tuple[Tensor, Tensor]:
    """(B, T, 160) features padded with the extractor's padding value, and the (B, T) mask."""
    import torch

    longest = max(item.frames for item in items)
    first = items[0].features
    batch = first.new_full((len(items), longest, first.shape[1]), padding_value)
    mask = torch.zeros((len(items), longest), dtype=items[0].mask.dtype, device=first.device)
    for row, item in enumerate(items):
        batch[row, : item.frames] = item.features
        mask[row, : item.frames] = item.mask
    return batch, mask


class CtcRunner:
    """The CTC model's batch function (runs in the model worker thread): per-input log-probs,
    cut to each input's own output frames, as float32 numpy on the CPU."""

    def __init__(self, model: Any, geometry: chunking.FrameGeometry, padding_value: float, device: str) -> None:
        self.model = model
        self.geometry = geometry
        self.padding_value = padding_value
        self.device = device

    def __call__(self, items: list[ModelInput]) -> list[LogProbs]:
        import torch

        features, mask = pad_batch(items, self.padding_value)
        # Each item's own extent: the adapter then reads zeros past it, as when it runs alone.
        extents = torch.tensor([item.frames for item in items], dtype=torch.int64)
        with torch.inference_mode():
            logits = self.model(features, mask, input_frames=extents)
            per_level = {
                level: torch.log_softmax(value.float(), dim=-1).cpu().numpy() for level, value in logits.items()
            }
        record_gpu_peak(self.device)
        lengths = [self.geometry.output_frames_from_features(item.valid_frames) for item in items]
        return [
            {level: values[row, :length] for level, values in per_level.items()} for row, length in enumerate(lengths)
        ]


class SegmenterRunner:
    """The segmenter's batch function: frame classifier on features built before queueing,
    argmax per 20 ms frame, cut to each chunk's valid frames."""

    def __init__(self, classifier: Any, padding_value: float, device: str) -> None:
        self.classifier = classifier
        self.padding_value = padding_value
        self.device = device

    def __call__(self, items: list[ModelInput]) -> list[npt.NDArray[np.int64]]:
        import torch

        features, mask = pad_batch(items, self.padding_value)
        with torch.inference_mode():
            logits = self.classifier(features, mask)
            labels = logits.argmax(dim=-1).cpu().numpy()
        record_gpu_peak(self.device)
        return [labels[row, : item.valid_frames].astype(np.int64) for row, item in enumerate(items)]


def record_gpu_peak(device: str) -> None:
    if not device.startswith("cuda"):
        return
    import torch

    metrics.GPU_PEAK_MEMORY.labels(device).set(torch.cuda.max_memory_allocated(device))


@dataclass
class _Loaded:
    """Everything start-up produced."""

    device: str
    version: ModelVersion
    vocabulary: Vocabulary
    geometry: chunking.FrameGeometry
    extractor: FeatureExtractor
    # Labels per level, blank included.
    vocab_sizes: dict[str, int]
    parameters: int
    runner: CtcRunner
    asr: DynamicBatcher[ModelInput, LogProbs]
    segmenter: DynamicBatcher[ModelInput, npt.NDArray[np.int64]] | None = None
    segmenter_version: ModelVersion | None = None
    # The segmenter's feature extractor and frame arithmetic (features are built before queueing).
    segmenter_extractor: FeatureExtractor | None = None
    segmenter_geometry: chunking.FrameGeometry | None = None
    executor: ThreadPoolExecutor | None = field(default=None, repr=False)


class AsrEngine:
    """Loads at `start()` (the server's on_start: health is NOT_SERVING until it returns)."""

    def __init__(self, config: AsrConfig) -> None:
        self.config = config
        self._loaded: _Loaded | None = None

    @property
    def ready(self) -> bool:
        return self._loaded is not None

    @property
    def geometry(self) -> chunking.FrameGeometry:
        return self._state().geometry

    @property
    def version(self) -> ModelVersion:
        return self._state().version

    @property
    def vocabulary(self) -> Vocabulary:
        return self._state().vocabulary

    @property
    def min_duration_s(self) -> float:
        return self.geometry.min_samples / SAMPLE_RATE

    async def start(self) -> None:
        if self._loaded is not None:
            return
        loaded = await asyncio.to_thread(self._load)
        loaded.asr.start()
        if loaded.segmenter is not None:
            loaded.segmenter.start()
        self._loaded = loaded
        await self._warm_up()

    async def _warm_up(self) -> None:
        """One small request through every path before SERVING, so the first real caller does not
        pay for lazy initialisation (allocator, kernels, the decoder's regexes)."""
        rng = np.random.default_rng(0)
        noise = (0.01 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
        await self.transcribe(
            noise,
            TranscribeOptions(include_log_probs=True, detect_completeness=self._loaded is not None
                              and self._loaded.segmenter is not None),
        )

    async def close(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        await loaded.asr.close()
        if loaded.segmenter is not None:
            await loaded.segmenter.close()
        if loaded.executor is not None:
            loaded.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ loading

    def _load(self) -> _Loaded:
        import torch

        from services.asr.features import FeatureExtractor
        from services.asr.modeling import EncoderConfig, count_parameters, resolve_precision

        cfg = self.config
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        device = resolve_device(cfg.device)
        started = time.perf_counter()
        files = self._resolve(cfg.model, "multi_level_ctc")
        vocabulary = Vocabulary.from_checkpoint(files)
        geometry = geometry_of(files.config, files.preprocessor_config)
        precision = resolve_precision(cfg.precision, device)
        model, version = self._load_ctc(files, device, precision)
        extractor = FeatureExtractor(files.preprocessor_config, device)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-model")
        runner = CtcRunner(model, geometry, extractor.padding_value, device)
        asr: DynamicBatcher[ModelInput, LogProbs] = DynamicBatcher(
            runner,
            name="asr",
            max_batch_size=cfg.max_batch_size,
            max_queue_delay_s=cfg.max_queue_delay_s,
            max_queue_size=cfg.max_queue_size,
            length_of=lambda item: item.frames,
            bucket_width=max(0, round(cfg.bucket_width_s * SAMPLE_RATE / geometry.feature_frame_samples)),
            executor=executor,
        )
        sizes = {level: vocabulary.size(level) for level in vocabulary.levels}
        loaded = _Loaded(
            device=device,
            version=version,
            vocabulary=vocabulary,
            geometry=geometry,
            extractor=extractor,
            vocab_sizes=sizes,
            parameters=count_parameters(EncoderConfig.from_config(files.config), sizes),
            runner=runner,
            asr=asr,
            executor=executor,
        )
        if cfg.segmenter_model:
            self._load_segmenter(loaded, precision)
        log.info(
            "asr model loaded",
            extra={
                "model": version.name,
                "weights_digest": version.weights_digest,
                "dev_weights": version.dev_weights,
                "backend": version.backend,
                "precision": version.precision,
                "device": version.device,
                "segmenter": loaded.segmenter_version.name if loaded.segmenter_version else None,
                "load_s": round(time.perf_counter() - started, 2),
            },
        )
        return loaded

    def _load_ctc(self, files: CheckpointFiles, device: str, precision: str) -> tuple[Any, ModelVersion]:
        cfg = self.config
        if cfg.backend == "onnxruntime":
            from services.asr.onnx_backend import OnnxMultiLevelCTC, default_providers

            providers = default_providers() if device.startswith("cuda") else ["CPUExecutionProvider"]
            onnx = OnnxMultiLevelCTC(Path(cfg.onnx_path).expanduser(), providers, threads=cfg.torch_threads)
            # The graph carries the digest of the checkpoint it was exported from; serving it with
            # another checkpoint's vocabulary would decode the wrong labels.
            if onnx.weights_digest != files.weights_digest:
                raise FailedPrecondition(
                    f"MUAALEM_ASR_ONNX_PATH={cfg.onnx_path} was exported from weights {onnx.weights_digest}, but "
                    f"MUAALEM_ASR_MODEL={cfg.model} has weights {files.weights_digest}; export it again "
                    "with `muaalem export-onnx`"
                )
            version = ModelVersion(
                name=files.name,
                weights_digest=files.weights_digest,
                dev_weights=files.dev_weights or onnx.dev_weights,
                backend="onnxruntime",
                precision=onnx.precision,
                device=str(onnx.device),
                demo_weights=files.demo_weights,
            )
            return onnx, version
        from services.asr.modeling import load_multilevel_ctc, use_onednn_linears

        model = load_multilevel_ctc(files, device, precision)
        if device == "cpu" and precision == "float32":
            use_onednn_linears(model)
        version = ModelVersion(
            name=files.name,
            weights_digest=files.weights_digest,
            dev_weights=files.dev_weights,
            backend="torch",
            precision=precision,
            device=str(model.device),
            demo_weights=files.demo_weights,
        )
        return model, version

    def _load_segmenter(self, loaded: _Loaded, precision: str) -> None:
        from services.asr.features import FeatureExtractor
        from services.asr.modeling import load_frame_classifier, use_onednn_linears

        cfg = self.config
        try:
            files = self._resolve(cfg.segmenter_model, "frame_classifier")
        except Unavailable as exc:
            raise Unavailable(
                f"{exc.message} Or set MUAALEM_SEGMENTER_MODEL to empty to serve without the segmenter "
                "(long audio is then cut in fixed windows)."
            ) from exc
        classifier = load_frame_classifier(files, loaded.device, precision)
        if loaded.device == "cpu" and precision == "float32":
            use_onednn_linears(classifier)
        extractor = FeatureExtractor(files.preprocessor_config, loaded.device)
        loaded.segmenter_extractor = extractor
        loaded.segmenter_geometry = geometry_of(files.config, files.preprocessor_config)
        loaded.segmenter = DynamicBatcher(
            SegmenterRunner(classifier, extractor.padding_value, loaded.device),
            name="segmenter",
            max_batch_size=cfg.segmenter_batch_size,
            max_queue_delay_s=cfg.max_queue_delay_s,
            max_queue_size=cfg.max_queue_size,
            executor=loaded.executor,
        )
        loaded.segmenter_version = ModelVersion(
            name=files.name,
            weights_digest=files.weights_digest,
            dev_weights=files.dev_weights,
            backend="torch",
            precision=precision,
            device=str(classifier.device),
        )

    def _resolve(self, name: str, kind: str) -> CheckpointFiles:
        """The configured checkpoint, or (dev fallback on) a random-weight one in the cache."""
        from services.asr.checkpoint import resolve_checkpoint

        try:
            return resolve_checkpoint(name, kind)
        except Unavailable as exc:
            size = self.config.dev_fallback
            if not size:
                raise
            if size == "demo":
                from services.asr.checkpoint import DEMO_CHECKPOINT

                if kind == "multi_level_ctc" and (DEMO_CHECKPOINT / "config.json").is_file():
                    log.warning("SERVING THE DEMO CHECKPOINT %s (it hears the synthetic reciter, not people). "
                                "Reason: %s", DEMO_CHECKPOINT, exc.message)
                    return resolve_checkpoint(str(DEMO_CHECKPOINT), kind)
                # No demo segmenter (short demo audio never reaches one), and without the demo
                # checkpoint (a checkout without it) the random tiny one keeps the mesh running.
                size = "tiny"
            target = self.config.cache_dir / "dev-checkpoints" / f"{kind}-{size}"
            log.warning(
                "SERVING RANDOM DEVELOPMENT WEIGHTS (%s, size %s) at %s: every output is noise and is "
                "marked dev_weights. Reason: %s",
                kind,
                size,
                target,
                exc.message,
            )
            return resolve_checkpoint(str(ensure_dev_checkpoint(target, kind, size)), kind)

    # ------------------------------------------------------------------ serving

    def _state(self) -> _Loaded:
        if self._loaded is None:
            raise Unavailable("the ASR model is not loaded yet (start-up in progress)")
        return self._loaded

    def check_samples(self, samples: Samples, max_duration_s: float | None = None) -> Samples:
        """The checks every entry point makes. Served calls (gRPC, and the gateway's in-process
        mode, which goes through AsrServicer too) are checked by the servicer's audio decoding
        already; these guard callers of the engine itself (the benchmarks)."""
        limit = self.config.max_audio_s if max_duration_s is None else max_duration_s
        array = np.asarray(samples)
        if array.ndim != 1:
            raise InvalidArgument(f"audio samples must be one mono channel, got shape {array.shape}")
        if array.size == 0:
            raise InvalidArgument("audio contains no samples")
        if array.size / SAMPLE_RATE > limit:
            raise InvalidArgument(
                f"audio is {array.size / SAMPLE_RATE:.1f} s long, over the limit of {limit:.0f} s for this call"
            )
        if not np.isfinite(array).all():
            raise InvalidArgument("audio contains NaN or infinite samples")
        minimum = self.geometry.min_samples
        if array.size < minimum:
            raise InvalidArgument(
                f"audio is {array.size / SAMPLE_RATE * 1000:.1f} ms long; at least "
                f"{minimum / SAMPLE_RATE * 1000:.0f} ms ({minimum} samples at 16 kHz) is needed for one model frame"
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def _check_levels(self, levels: Sequence[str]) -> tuple[str, ...]:
        known = self.vocabulary.levels
        unknown = [level for level in levels if level not in known]
        if unknown:
            raise InvalidArgument(f"unknown level(s) {', '.join(unknown)}; the model has {', '.join(known)}")
        return tuple(dict.fromkeys(levels)) if levels else tuple(known)

    def _check_reference(self, reference: DecodeReference | None) -> None:
        """Rejects sifa labels the model does not have (quran-transcript's names, e.g. "jahr")."""
        if reference is None:
            return
        labels = self.vocabulary.labels
        for index, row in enumerate(reference.labels):
            for level in self.vocabulary.sifa_levels:
                label = row.get(level)
                if label is None or label not in labels[level][1:]:
                    raise InvalidArgument(
                        f"reference sifat group {index}: {level} label {label!r} is not one of "
                        f"{', '.join(labels[level][1:])}"
                    )

    async def transcribe(
        self, samples: Samples, options: TranscribeOptions | None = None, *, max_duration_s: float | None = None
    ) -> Transcription:
        opts = options or TranscribeOptions()
        state = self._state()
        samples = self.check_samples(samples, max_duration_s)
        levels = self._check_levels(opts.levels)
        self._check_reference(opts.reference)
        began = time.perf_counter()
        timings: list[tuple[str, float]] = []
        duration = samples.size / SAMPLE_RATE
        cut_at_pauses = state.segmenter is not None and (
            duration > self.config.segment_above_s or opts.force_segmentation
        )
        intervals: list[tuple[int, int]] | None = None
        is_complete: bool | None = None
        if state.segmenter is not None and (cut_at_pauses or opts.detect_completeness):
            mark = time.perf_counter()
            segmentation = await self._segment(state, samples, SegmentOptions())
            timings.append(("segmenter", _ms(mark)))
            if opts.detect_completeness:
                is_complete = segmentation.is_complete
            if cut_at_pauses:
                intervals = segmentation.sample_pairs()
        plan = chunking.plan(
            samples.size,
            geometry=state.geometry,
            window_s=self.config.window_s,
            overlap_s=self.config.window_overlap_s,
            speech_intervals=intervals,
        )
        log_probs, run = await self.run_plan(samples, plan)
        timings += [("features", run.features_ms), ("queue", run.queue_ms), ("model", run.model_ms)]
        mark = time.perf_counter()
        decode = await asyncio.to_thread(self._decode, log_probs, opts)
        timings.append(("ctc_decode", _ms(mark)))
        timings.append(("total", _ms(began)))
        returned = {level: log_probs[level] for level in levels} if opts.include_log_probs else {}
        return Transcription(
            decode=decode,
            log_probs=returned,
            num_frames=int(log_probs[self.vocabulary.levels[0]].shape[0]),
            frame_duration_s=state.geometry.frame_duration_s,
            audio_duration_s=duration,
            model_version=state.version,
            timings=tuple(timings),
            chunking=plan.method,
            segments=tuple((p.start / SAMPLE_RATE, p.end / SAMPLE_RATE) for p in plan.pieces)
            if plan.method != "none"
            else (),
            is_complete=is_complete,
            batch_size=run.batch_size,
            queue_ms=run.queue_ms,
        )

    def _decode(self, log_probs: LogProbs, opts: TranscribeOptions) -> DecodeResult:
        return greedy_decode(log_probs, self.vocabulary, opts.reference, skip_sifat=opts.skip_sifat)

    async def run_plan(self, samples: Samples, plan: chunking.ChunkPlan) -> tuple[LogProbs, PlanRun]:
        """Log-probs of a whole recording run as `plan` says (features, batcher, stitching)."""
        state = self._state()
        if not plan.pieces:
            return chunking.blank(plan.num_samples, state.geometry, state.vocab_sizes), PlanRun(0.0, 0.0, 0.0, 0)
        mark = time.perf_counter()
        inputs = await asyncio.to_thread(self._features, state, samples, plan.pieces)
        features_ms = _ms(mark)
        mark = time.perf_counter()
        results = await state.asr.infer(inputs)
        waited_ms = _ms(mark)
        outputs = [r.value for r in results]
        if len(plan.pieces) == 1 and plan.pieces[0] == chunking.Piece(0, plan.num_samples):
            log_probs = dict(outputs[0])
        else:
            log_probs = await asyncio.to_thread(
                chunking.stitch, plan.pieces, outputs, num_samples=plan.num_samples, geometry=state.geometry
            )
        # Its inputs may have run in several batches: model time is theirs, the rest was waiting.
        batches = {r.batch_id: r for r in results}.values()
        model_ms = sum(r.compute_s for r in batches) * 1000.0
        largest = max(r.batch_size for r in batches)
        return log_probs, PlanRun(features_ms, max(0.0, waited_ms - model_ms), model_ms, largest)

    def model_inputs(self, samples: Samples, pieces: Sequence[chunking.Piece]) -> list[ModelInput]:
        """Features of `pieces` of a recording, as the batcher receives them (benchmarks)."""
        return self._features(self._state(), samples, pieces)

    def forward(self, items: list[ModelInput]) -> list[LogProbs]:
        """One forward pass on `items` in the calling thread, bypassing the batcher (benchmarks)."""
        return self._state().runner(items)

    @staticmethod
    def _features(state: _Loaded, samples: Samples, pieces: Sequence[chunking.Piece]) -> list[ModelInput]:
        return model_inputs(state.extractor, state.geometry, [samples[p.start : p.end] for p in pieces])

    async def segment(
        self, samples: Samples, options: SegmentOptions | None = None, *, max_duration_s: float | None = None
    ) -> SegmentResult:
        state = self._state()
        if state.segmenter is None:
            raise FailedPrecondition(
                "no segmenter is loaded: set MUAALEM_SEGMENTER_MODEL to a recitation-segmenter-v2 checkpoint"
            )
        opts = options or SegmentOptions()
        opts.validate()
        samples = self.check_samples(samples, max_duration_s)
        segmentation = await self._segment(state, samples, opts)
        assert state.segmenter_version is not None
        return SegmentResult(
            segmentation=segmentation,
            model_version=state.segmenter_version,
            audio_duration_s=samples.size / SAMPLE_RATE,
        )

    async def _segment(self, state: _Loaded, samples: Samples, options: SegmentOptions) -> Segmentation:
        assert state.segmenter is not None
        assert state.segmenter_extractor is not None and state.segmenter_geometry is not None
        geometry = state.segmenter_geometry
        # A tail shorter than one 25 ms analysis window has no frame to label.
        bounds = [(s, e) for s, e in chunk_bounds(samples.size) if geometry.feature_frames(e - s) > 0]
        chunks = [samples[s:e] for s, e in bounds]
        inputs = await asyncio.to_thread(model_inputs, state.segmenter_extractor, geometry, chunks) if chunks else []
        results = await state.segmenter.infer(inputs)
        return segmentation_from_labels([r.value for r in results], [s for s, _ in bounds], samples.size, options)

    def model_info(self) -> ModelInfo:
        state = self._state()
        cfg = self.config
        return ModelInfo(
            model_version=state.version,
            vocabularies={level: tuple(state.vocabulary.labels[level]) for level in state.vocabulary.levels},
            frame_duration_s=state.geometry.frame_duration_s,
            sample_rate_hz=SAMPLE_RATE,
            max_audio_s=cfg.max_audio_s,
            window_s=cfg.window_s,
            window_overlap_s=cfg.window_overlap_s,
            segment_above_s=cfg.segment_above_s,
            segmenter_version=state.segmenter_version,
            max_batch_size=cfg.max_batch_size,
            max_queue_delay_ms=cfg.max_queue_delay_s * 1000.0,
            max_queue_size=cfg.max_queue_size,
            parameters=state.parameters,
        )


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def ensure_dev_checkpoint(target: Path, kind: str, size: str) -> Path:
    """Writes a random-weight checkpoint at `target` unless a complete one is there already.
    Written beside it and renamed into place, so that concurrent starts never read half a file."""
    from services.asr.checkpoint import resolve_checkpoint
    from services.asr.devmodel import write_dev_checkpoint, write_dev_segmenter

    damaged = False
    if target.is_dir():
        try:
            if resolve_checkpoint(str(target), kind).dev_weights:
                return target
        except Exception as exc:  # a damaged cache entry is rewritten
            log.warning("rewriting damaged dev checkpoint %s: %s", target, exc)
        damaged = True
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    writer: Callable[..., Path] = write_dev_checkpoint if kind == "multi_level_ctc" else write_dev_segmenter
    try:
        writer(staging, size=size)
        if damaged:
            shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
