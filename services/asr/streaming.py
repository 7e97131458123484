"""Encoding while the learner recites: a segment's audio arrives in chunks, the encoder runs over
windows as soon as the audio allows, and when the segment ends only its last window is left.

The API has the shape of sherpa-onnx's OnlineStream: `recognizer.create_stream(options)`, then
`stream.accept_waveform(samples)` as audio arrives and `await recognizer.decode(stream)` to run
what the audio so far allows, `stream.input_finished()` at the end, and
`await recognizer.result(stream)`, the same Transcription the unary Transcribe returns for the
whole segment (computed in windows, so close to it, not equal: docs/benchmarks.md measures how
close).

Windows. A segment's output frames are cut into cores of W frames. The core [a, a + W) runs in
the window [a - L, a + W + R) (L and R frames of context, less at the segment's start) and only
the core's frames are kept (chunking.context_window): it can run once the audio reaches
a + W + R. At input_finished, what is left (less than W + R) runs as one last window, with L
frames of context before it and the segment's end after it, as in the whole-segment path.
All windows go through the engine's dynamic batcher, so windows of concurrent sessions share
forward passes (their steady-state windows all have the same length, L + W + R).

Features. A log-mel frame reads 25 ms of audio only, so the segment's frames are computed once,
as the audio arrives, and a window's frames are a slice of them. The whole-segment path
normalises each mel bin over the whole segment, which a stream does not have yet; a window is
normalised with the statistics of the segment from its start to the window's end ("prefix": the
last window has exactly the whole segment's), or of its own frames ("window": what chunking's
long-audio windows do; measured less close to the whole-segment path). Either way a stream's
result is a function of its audio only, never of how it was chunked or when it arrived.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from services.asr import chunking
from services.asr.batching import DynamicBatcher
from services.asr.decode import DecodeResult
from services.asr.results import LogProbs, ModelVersion, Samples, TranscribeOptions, Transcription
from services.asr.runners import ModelInput, split_batch
from services.asr.segmenter import SAMPLE_RATE
from services.common.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from torch import Tensor

    from services.asr.features import FeatureExtractor

Normalisation = Literal["prefix", "window"]
NORMALISATIONS: tuple[Normalisation, ...] = ("prefix", "window")


@dataclass(frozen=True)
class WindowSettings:
    """W (the core each window keeps), L and R (its context before and after), in seconds;
    rounded to whole output frames."""

    window_s: float
    left_s: float
    right_s: float
    normalisation: Normalisation = "prefix"

    def frames(self, geometry: chunking.FrameGeometry) -> tuple[int, int, int]:
        step = geometry.frame_duration_s
        # Half up (not Python's round half to even), and 0.5 s / 0.04 s is 12.499... in floats.
        window, left, right = (
            math.floor(value / step + 0.5 + 1e-9) for value in (self.window_s, self.left_s, self.right_s)
        )
        if window < 1 or left < 0 or right < 0:
            raise ValueError(f"window {self.window_s} s needs at least one frame, contexts must be >= 0")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation {self.normalisation!r}: one of {', '.join(NORMALISATIONS)}")
        return window, left, right

    def label(self) -> str:
        return f"W {self.window_s:g} s, L {self.left_s:g} s, R {self.right_s:g} s"


@dataclass
class StreamStats:
    """What a stream's windows cost; model and queue times count each batch once."""

    windows: int = 0
    features_ms: float = 0.0
    queue_ms: float = 0.0
    model_ms: float = 0.0
    # The model time of the windows run after input_finished (the last one, and any the
    # audio had allowed but that had not run yet): what the end of a segment waits for.
    after_end_model_ms: float = 0.0
    largest_batch: int = 0
    # Audio the windows ran over (with their context), all of them and those after the end.
    samples_computed: int = 0
    samples_after_end: int = 0


class OnlineStream:
    """One segment: the audio received (16 kHz mono float32), its log-mel frames, and the
    kept log-probs of the frames computed so far. Not thread-safe beyond what the recognizer
    does: audio is appended on the event loop while `model_inputs` reads what was there before."""

    def __init__(
        self,
        *,
        extractor: FeatureExtractor,
        geometry: chunking.FrameGeometry,
        settings: WindowSettings,
        options: TranscribeOptions,
        levels: tuple[str, ...],
        max_samples: int,
        session_id: str = "",
    ) -> None:
        self.extractor = extractor
        self.geometry = geometry
        self.settings = settings
        self.options = options
        self.levels = levels
        self.session_id = session_id
        self.max_samples = max_samples
        self._window, self._left, self._right = settings.frames(geometry)
        self._buffer = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self._received = 0
        self._total: int | None = None
        self._log_mel: Tensor | None = None
        # Output frames handed to windows so far, and kept so far (in order).
        self._planned = 0
        self._kept = 0
        self._parts: dict[str, list[np.ndarray]] = {}
        self.finished_at: float | None = None
        self.stats = StreamStats()
        self.decoding = False

    # ---------------------------------------------------------------- audio in

    @property
    def received_samples(self) -> int:
        return self._received

    @property
    def finished(self) -> bool:
        return self._total is not None

    @property
    def frames_computed(self) -> int:
        """Output frames whose log-probs are final."""
        return self._kept

    @property
    def samples_ahead(self) -> int:
        """Audio received beyond the frames computed: what the encoder still owes the caller."""
        return max(0, self._received - self._kept * self.geometry.frame_samples)

    def accept_waveform(self, samples: Samples) -> None:
        """Appends 16 kHz mono samples; runs nothing (the recognizer's decode does)."""
        if self._total is not None:
            raise FailedPrecondition("audio after input_finished: the segment is closed")
        array = np.asarray(samples, dtype=np.float32)
        if array.ndim != 1:
            raise InvalidArgument(f"audio samples must be one mono channel, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise InvalidArgument("audio contains NaN or infinite samples")
        needed = self._received + array.size
        if needed > self.max_samples:
            raise InvalidArgument(
                f"audio: the stream reached {needed / SAMPLE_RATE:.1f} s, over the limit of "
                f"{self.max_samples / SAMPLE_RATE:.0f} s for one segment (MUAALEM_MAX_AUDIO_S)"
            )
        if needed > self._buffer.size:
            # A new array, never a resize in place: a window's features may be reading the old one
            # in a worker thread (values below _received never change).
            grown = np.zeros(max(needed, 2 * self._buffer.size), dtype=np.float32)
            grown[: self._received] = self._buffer[: self._received]
            self._buffer = grown
        self._buffer[self._received : needed] = array
        self._received = needed

    def input_finished(self, num_samples: int | None = None) -> None:
        """The segment ends after `num_samples` (default: all received). Audio past it (the
        pause a live session waited for before it knew the segment had ended) is not part of
        the segment; frames already computed keep the context they had."""
        if self._total is not None:
            raise FailedPrecondition("input_finished was called twice")
        total = self._received if num_samples is None else num_samples
        if not 0 <= total <= self._received:
            raise InvalidArgument(
                f"the segment cannot end at sample {total}: {self._received} samples were received"
            )
        minimum = self.geometry.min_samples
        if total < minimum:
            raise InvalidArgument(
                f"audio is {total / SAMPLE_RATE * 1000:.1f} ms long; at least "
                f"{minimum / SAMPLE_RATE * 1000:.0f} ms ({minimum} samples at 16 kHz) is needed for one model frame"
            )
        self._total = total
        self.finished_at = time.perf_counter()

    def samples(self) -> Samples:
        """The segment's audio (all received until input_finished)."""
        end = self._received if self._total is None else self._total
        return self._buffer[:end]

    # ---------------------------------------------------------------- windows

    def take_ready(self) -> list[chunking.Window]:
        """The windows the audio now allows, in order; each is handed out once.

        Regular windows are defined by the audio received, the last one by the segment's end,
        so the result depends on neither the chunking nor when decode ran (audio received past
        a cut at input_finished counts as context, whenever it arrived)."""
        frame = self.geometry.frame_samples
        total_frames = None if self._total is None else self.geometry.output_frames(self._total)
        windows: list[chunking.Window] = []
        while (self._planned + self._window + self._right) * frame <= self._received:
            if total_frames is not None and self._planned >= total_frames:
                break
            start = self._planned
            windows.append(self._context(start, start + self._window, self._right, self._received))
            self._planned = start + self._window
        if self._total is not None and total_frames is not None and self._planned < total_frames:
            # The rest, less than W + R, up to the segment's last sample (the right context
            # reaches the end whatever R is).
            windows.append(self._context(self._planned, total_frames, self._window + self._right + 1, self._total))
            self._planned = total_frames
        return windows

    def _context(self, start: int, end: int, right: int, num_samples: int) -> chunking.Window:
        return chunking.context_window(
            start, end, left=self._left, right=right, num_samples=num_samples, geometry=self.geometry
        )

    def model_inputs(self, windows: Sequence[chunking.Window]) -> list[ModelInput]:
        """The windows' features (in a worker thread: the log-mel frames of new audio are an FFT)."""
        self._extend_log_mel(max(w.piece.end for w in windows))
        assert self._log_mel is not None
        spectrogram = self.geometry.spectrogram_frames
        inputs: list[ModelInput] = []
        for window in windows:
            piece = window.piece
            first = piece.start // self.geometry.feature_hop
            frames = self._log_mel[first : first + spectrogram(piece.length)]
            statistics = None
            if self.settings.normalisation == "prefix":
                statistics = self.extractor.statistics(self._log_mel[: spectrogram(piece.end)])
            batch = self.extractor.from_log_mel(frames, statistics)
            inputs += split_batch(batch, self.geometry, [piece.length])
        return inputs

    def _extend_log_mel(self, end: int) -> None:
        """Log-mel frames of the audio up to sample `end`, computed once."""
        import torch

        have = 0 if self._log_mel is None else int(self._log_mel.shape[0])
        need = self.geometry.spectrogram_frames(end)
        if need <= have:
            return
        audio = self._buffer  # the array as it is now (see accept_waveform)
        hop = self.geometry.feature_hop
        new = self.extractor.log_mel_frames(audio[have * hop : (need - 1) * hop + self.geometry.feature_window])
        self._log_mel = new if self._log_mel is None else torch.cat((self._log_mel, new))

    def keep(self, windows: Sequence[chunking.Window], outputs: Sequence[LogProbs]) -> None:
        for window, output in zip(windows, outputs, strict=True):
            if window.keep_start != self._kept:
                raise RuntimeError(f"window for frames {window.keep_start}.. kept out of order (at {self._kept})")
            for level, values in chunking.kept(window, output, self.geometry).items():
                self._parts.setdefault(level, []).append(values)
            self._kept = window.keep_end
            self.stats.samples_computed += window.piece.length
            if self._total is not None:
                self.stats.samples_after_end += window.piece.length

    def log_probs(self) -> dict[str, np.ndarray]:
        """Every level's (frames, vocab) log-probs of the whole segment (once all windows ran)."""
        if self._total is None:
            raise FailedPrecondition("the segment has not ended (input_finished)")
        total_frames = self.geometry.output_frames(self._total)
        if self._kept < total_frames:
            raise FailedPrecondition(f"{total_frames - self._kept} frames are still to compute")
        # A segment cut at input_finished may have frames computed past its end: dropped.
        return {level: np.concatenate(parts)[:total_frames] for level, parts in self._parts.items()}


@dataclass
class StreamingRecognizer:
    """Owned by the engine: runs streams' windows through its batcher and decodes the result."""

    extractor: FeatureExtractor
    geometry: chunking.FrameGeometry
    batcher: DynamicBatcher[ModelInput, LogProbs]
    version: ModelVersion
    settings: WindowSettings
    max_samples: int
    # The engine's checks of the options (levels, reference); returns the levels to return.
    check_options: Callable[[TranscribeOptions], tuple[str, ...]]
    decode_log_probs: Callable[[LogProbs, TranscribeOptions], DecodeResult]
    # The segmenter's is_complete of a whole segment, when one is loaded (without one,
    # detect_completeness leaves is_complete unset, as in the unary path).
    completeness: Callable[[Samples], Awaitable[bool]] | None = None

    def create_stream(
        self, options: TranscribeOptions | None = None, *, session_id: str = "", settings: WindowSettings | None = None
    ) -> OnlineStream:
        opts = options or TranscribeOptions()
        if opts.force_segmentation:
            raise InvalidArgument(
                "options.force_segmentation: a stream is one segment, never cut at pauses; send segments "
                "as separate streams (or the whole recording to Transcribe)"
            )
        if opts.frame_phases > 1:
            # Encoded window by window as it arrives, a stream has one phase; each more would be
            # another stream.
            raise InvalidArgument(
                f"options.frame_phases is {opts.frame_phases}: a stream decodes one phase (0 or 1); ask Transcribe"
                " for the segment's frame phases"
            )
        levels = self.check_options(opts)
        return OnlineStream(
            extractor=self.extractor,
            geometry=self.geometry,
            settings=settings or self.settings,
            options=opts,
            levels=levels,
            max_samples=self.max_samples,
            session_id=session_id,
        )

    async def decode(self, stream: OnlineStream) -> int:
        """Runs every window the stream's audio allows now; the number run. One at a time per
        stream: windows are kept in order, and the log-mel frames are extended in place. A run
        that fails (the caller cancelled, the batcher refused) leaves the stream unusable."""
        if stream.decoding:
            raise FailedPrecondition("decode is already running on this stream")
        windows = stream.take_ready()
        if not windows:
            return 0
        stream.decoding = True
        try:
            await self._run(stream, windows)
        finally:
            stream.decoding = False
        return len(windows)

    async def _run(self, stream: OnlineStream, windows: list[chunking.Window]) -> None:
        mark = time.perf_counter()
        inputs = await asyncio.to_thread(stream.model_inputs, windows)
        stats = stream.stats
        stats.features_ms += _ms(mark)
        mark = time.perf_counter()
        results = await self.batcher.infer(inputs)
        waited_ms = _ms(mark)
        batches = {r.batch_id: r for r in results}.values()
        model_ms = sum(r.compute_s for r in batches) * 1000.0
        stats.model_ms += model_ms
        stats.queue_ms += max(0.0, waited_ms - model_ms)
        if stream.finished:
            stats.after_end_model_ms += model_ms
        stats.largest_batch = max(stats.largest_batch, *(r.batch_size for r in batches))
        stats.windows += len(windows)
        stream.keep(windows, [r.value for r in results])

    async def result(self, stream: OnlineStream) -> Transcription:
        """The whole segment's Transcription, once input_finished: runs what is left first."""
        if not stream.finished:
            raise FailedPrecondition("the segment has not ended: call input_finished first")
        while await self.decode(stream):
            pass
        log_probs = stream.log_probs()
        is_complete = None
        if stream.options.detect_completeness and self.completeness is not None:
            is_complete = await self.completeness(stream.samples())
        mark = time.perf_counter()
        decode = await asyncio.to_thread(self.decode_log_probs, log_probs, stream.options)
        decode_ms = _ms(mark)
        stats = stream.stats
        after_end_ms = (time.perf_counter() - stream.finished_at) * 1000.0 if stream.finished_at else 0.0
        samples = stream.samples()
        return Transcription(
            decode=decode,
            log_probs={level: log_probs[level] for level in stream.levels} if stream.options.include_log_probs else {},
            num_frames=int(next(iter(log_probs.values())).shape[0]),
            frame_duration_s=self.geometry.frame_duration_s,
            audio_duration_s=samples.size / SAMPLE_RATE,
            model_version=self.version,
            timings=(
                ("features", stats.features_ms),
                ("queue", stats.queue_ms),
                ("model", stats.model_ms),
                ("model_after_end", stats.after_end_model_ms),
                ("ctc_decode", decode_ms),
                ("after_end", after_end_ms),
            ),
            chunking="stream",
            segments=(),
            is_complete=is_complete,
            batch_size=stats.largest_batch,
            queue_ms=stats.queue_ms,
        )


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0
