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
import dataclasses
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from services.asr import chunking, metrics
from services.asr.batching import DynamicBatcher
from services.asr.config import AsrConfig
from services.asr.decode import DecodeReference, DecodeResult, greedy_decode, greedy_text
from services.asr.hardware import choose_backend, choose_precision
from services.asr.loading import SegmenterParts, geometry_of, load_ctc, load_segmenter, resolve_device, resolve_files
from services.asr.results import (
    LogProbs,
    ModelInfo,
    ModelVersion,
    PlanRun,
    Samples,
    SegmentResult,
    TranscribeOptions,
    Transcription,
)
from services.asr.runners import CtcRunner, ModelInput, SegmenterRunner, model_inputs
from services.asr.segmenter import SAMPLE_RATE, Segmentation, SegmentOptions, chunk_bounds, segmentation_from_labels
from services.asr.streaming import StreamingRecognizer, WindowSettings
from services.asr.vocab import PHONEMES, Vocabulary
from services.common import tracing
from services.common.errors import FailedPrecondition, InvalidArgument, Unavailable

if TYPE_CHECKING:
    from services.asr.features import FeatureExtractor

log = logging.getLogger(__name__)

# Each phase is one more forward pass over the whole recording.
MAX_FRAME_PHASES = 8

__all__ = ["AsrEngine", "TranscribeOptions", "Transcription"]


@dataclass(frozen=True)
class _Segmenter:
    """The loaded pause segmenter and the batcher that runs it."""

    parts: SegmenterParts
    batcher: DynamicBatcher[ModelInput, npt.NDArray[np.int64]]


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
    segmenter: _Segmenter | None
    streaming: StreamingRecognizer
    executor: ThreadPoolExecutor = field(repr=False)
    # calibration.json beside the checkpoint (the tajweed thresholds fitted for this model), or "".
    tajweed_calibration_json: str = ""

    @property
    def segmenter_version(self) -> ModelVersion | None:
        return self.segmenter.parts.version if self.segmenter is not None else None


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
    def streaming(self) -> StreamingRecognizer:
        """TranscribeLive's recognizer: streams of one segment each, encoded as they arrive."""
        return self._state().streaming

    @property
    def min_duration_s(self) -> float:
        return self.geometry.min_samples / SAMPLE_RATE

    async def start(self) -> None:
        if self._loaded is not None:
            return
        loaded = await asyncio.to_thread(self._load)
        loaded.asr.start()
        if loaded.segmenter is not None:
            loaded.segmenter.batcher.start()
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
            await loaded.segmenter.batcher.close()
        loaded.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ loading

    def _load(self) -> _Loaded:
        import torch

        from services.asr.features import FeatureExtractor
        from services.asr.weights import resolve_precision

        cfg = self.config
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        # OpenVINO serves on the CPU (config refuses it with a CUDA device).
        device = "cpu" if cfg.backend == "openvino" else resolve_device(cfg.device)
        if cfg.backend == "auto":
            cfg = dataclasses.replace(cfg, backend=choose_backend("auto", device))
        started = time.perf_counter()
        files = resolve_files(cfg, cfg.model, "multi_level_ctc")
        vocabulary = Vocabulary.from_checkpoint(files)
        geometry = geometry_of(files.config, files.preprocessor_config)
        choice = choose_precision(cfg.precision, device)
        if self.config.backend == "auto":
            choice = dataclasses.replace(choice, reason=f"backend auto: {cfg.backend} on {device}; {choice.reason}")
        precision = resolve_precision(choice.precision, device)
        ctc = load_ctc(cfg, files, device, choice)
        extractor = FeatureExtractor(files.preprocessor_config, device)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-model")
        runner = CtcRunner(ctc.model, geometry, extractor.padding_value, device)
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
        segmenter = None
        if cfg.segmenter_model:
            parts = load_segmenter(cfg, device, precision)
            segmenter = _Segmenter(
                parts,
                DynamicBatcher(
                    SegmenterRunner(parts.classifier, parts.extractor.padding_value, device),
                    name="segmenter",
                    max_batch_size=cfg.segmenter_batch_size,
                    max_queue_delay_s=cfg.max_queue_delay_s,
                    max_queue_size=cfg.max_queue_size,
                    executor=executor,
                ),
            )
        streaming = StreamingRecognizer(
            extractor=extractor,
            geometry=geometry,
            batcher=asr,
            version=ctc.version,
            settings=WindowSettings(cfg.stream_window_s, cfg.stream_left_s, cfg.stream_right_s),
            max_samples=round(cfg.max_audio_s * SAMPLE_RATE),
            check_options=self._check_options,
            decode_log_probs=self._decode,
            completeness=self._completeness if segmenter is not None else None,
        )
        loaded = _Loaded(
            device=device,
            version=ctc.version,
            vocabulary=vocabulary,
            geometry=geometry,
            extractor=extractor,
            vocab_sizes={level: vocabulary.size(level) for level in vocabulary.levels},
            parameters=ctc.parameters,
            runner=runner,
            asr=asr,
            segmenter=segmenter,
            streaming=streaming,
            executor=executor,
            tajweed_calibration_json=_calibration_beside(files.directory),
        )
        version = ctc.version
        log.info(
            "asr model loaded",
            extra={
                "model": version.name,
                "weights_digest": version.weights_digest,
                "dev_weights": version.dev_weights,
                "backend": version.backend,
                "precision": version.precision,
                "device": version.device,
                "precision_reason": version.precision_reason,
                "segmenter": loaded.segmenter_version.name if loaded.segmenter_version else None,
                "load_s": round(time.perf_counter() - started, 2),
            },
        )
        metrics.MODEL.labels(
            version.name, version.backend, version.precision, version.device, version.precision_reason
        ).set(1)
        metrics.STARTUP_SECONDS.set(time.perf_counter() - started)
        return loaded

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

    def _check_options(self, options: TranscribeOptions) -> tuple[str, ...]:
        """The levels to return, after checking them, the frame phases and the reference."""
        levels = self._check_levels(options.levels)
        if not 0 <= options.frame_phases <= MAX_FRAME_PHASES:
            raise InvalidArgument(
                f"options.frame_phases must be 0-{MAX_FRAME_PHASES} (0 or 1: none), got {options.frame_phases}"
            )
        self._check_reference(options.reference)
        return levels

    async def _completeness(self, samples: Samples) -> bool:
        segmenter = self._state().segmenter
        if segmenter is None:
            raise FailedPrecondition("no segmenter is loaded: set MUAALEM_SEGMENTER_MODEL")
        return (await self._segment(segmenter, samples, SegmentOptions())).is_complete

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
        levels = self._check_options(opts)
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
            segmentation = await self._segment(state.segmenter, samples, SegmentOptions())
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
        # The phases go to the batcher with the decode itself: one batch where there is room.
        async def phases() -> list[str]:
            count = opts.frame_phases
            shifted = [self._phase_phonemes(samples, intervals, k, count) for k in range(1, count)]
            return list(await asyncio.gather(*shifted))

        (log_probs, run), phase_phonemes = await asyncio.gather(self.run_plan(samples, plan), phases())
        timings += [("features", run.features_ms), ("queue", run.queue_ms), ("model", run.model_ms)]
        mark = time.perf_counter()
        decode = await asyncio.to_thread(self._decode, log_probs, opts)
        if phase_phonemes:
            decode = dataclasses.replace(decode, phase_phonemes=tuple(phase_phonemes))
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

    async def _phase_phonemes(
        self, samples: Samples, intervals: Sequence[tuple[int, int]] | None, phase: int, phases: int
    ) -> str:
        """The phonemes decoded from `samples` delayed by phase/phases of an output frame: the
        same sound on a grid moved by less than a frame, which a sure decode does not notice."""
        state = self._state()
        shift = round(phase * state.geometry.frame_samples / phases)
        shifted = np.concatenate([np.zeros(shift, dtype=samples.dtype), samples])
        plan = chunking.plan(
            shifted.size,
            geometry=state.geometry,
            window_s=self.config.window_s,
            overlap_s=self.config.window_overlap_s,
            speech_intervals=[(start + shift, end + shift) for start, end in intervals] if intervals else None,
        )
        log_probs, _ = await self.run_plan(shifted, plan)
        return await asyncio.to_thread(greedy_text, log_probs[PHONEMES], self.vocabulary.tokens[PHONEMES])

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
        with tracing.span("asr batcher", **{"muaalem.asr.inputs": len(inputs)}):
            results = await state.asr.infer(inputs)
            waited_ms = _ms(mark)
            # Its inputs may have run in several batches: model time is theirs, the rest was waiting.
            batches = {r.batch_id: r for r in results}.values()
            model_ms = sum(r.compute_s for r in batches) * 1000.0
            largest = max(r.batch_size for r in batches)
            queue_ms = max(0.0, waited_ms - model_ms)
            tracing.set_attributes(batch_size=largest, queue_ms=round(queue_ms, 3), model_ms=round(model_ms, 3))
        outputs = [r.value for r in results]
        if len(plan.pieces) == 1 and plan.pieces[0] == chunking.Piece(0, plan.num_samples):
            log_probs = dict(outputs[0])
        else:
            log_probs = await asyncio.to_thread(
                chunking.stitch, plan.pieces, outputs, num_samples=plan.num_samples, geometry=state.geometry
            )
        return log_probs, PlanRun(features_ms, queue_ms, model_ms, largest)

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
        segmentation = await self._segment(state.segmenter, samples, opts)
        return SegmentResult(
            segmentation=segmentation,
            model_version=state.segmenter.parts.version,
            audio_duration_s=samples.size / SAMPLE_RATE,
        )

    @staticmethod
    async def _segment(segmenter: _Segmenter, samples: Samples, options: SegmentOptions) -> Segmentation:
        geometry = segmenter.parts.geometry
        # A tail shorter than one 25 ms analysis window has no frame to label.
        bounds = [(s, e) for s, e in chunk_bounds(samples.size) if geometry.feature_frames(e - s) > 0]
        chunks = [samples[s:e] for s, e in bounds]
        extractor = segmenter.parts.extractor
        inputs = await asyncio.to_thread(model_inputs, extractor, geometry, chunks) if chunks else []
        results = await segmenter.batcher.infer(inputs)
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
            tajweed_calibration_json=state.tajweed_calibration_json,
        )


# Written by the calibration step (bench/calibrate.py) beside the checkpoint it was fitted for.
CALIBRATION_FILE = "calibration.json"


def _calibration_beside(directory: Path) -> str:
    """The checkpoint's tajweed calibration, verbatim (the tajweed stage parses and checks it)."""
    path = directory / CALIBRATION_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
