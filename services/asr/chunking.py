"""Cutting long audio into model-sized pieces and stitching their log-probs back by frame.

All of it is arithmetic on sample and frame counts, so the stitched result has exactly the
frame count and timestamps of an unchunked run: every piece starts on a CTC output-frame
boundary (a multiple of 640 samples for the 40 ms frames of the muaalem model), where output
frame j of the piece is output frame start/640 + j of the whole recording. For frames covered
by several pieces, the piece in which the frame lies farthest from an edge wins (an edge at
the start or end of the recording does not count: there is no context beyond it anyway).
Frames no piece covers (pauses between segmenter intervals) are filled with blank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from .decode import LOG_PROB_FLOOR

if TYPE_CHECKING:
    from torch import Tensor

_Frames = TypeVar("_Frames", int, "Tensor")

SAMPLE_RATE = 16_000


def strided_frames(frames: _Frames, kernel: int, stride: int, padding: int) -> _Frames:
    """Frames a strided convolution leaves of `frames` (an int or a tensor of lengths): the one
    place the adapter's length arithmetic is written (the model's masks and extents, and the
    output-frame counts here, all call it)."""
    return (frames + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class FrameGeometry:
    """How many feature and output frames a number of samples yields.

    SeamlessM4TFeatureExtractor: 25 ms windows (400 samples) every 10 ms (160), no centring,
    then `stride` consecutive frames stacked into one (the remainder dropped). The adapter:
    `adapter_layers` convolutions of kernel `adapter_kernel`, padding stride // 2, stride
    `adapter_stride`.
    """

    feature_window: int = 400
    feature_hop: int = 160
    feature_stride: int = 2
    adapter_stride: int = 2
    adapter_layers: int = 1
    adapter_kernel: int = 3

    @property
    def feature_frame_samples(self) -> int:
        return self.feature_hop * self.feature_stride

    @property
    def frame_samples(self) -> int:
        """Samples per output frame (640 = 40 ms for the muaalem model)."""
        return self.feature_frame_samples * self.adapter_stride**self.adapter_layers

    @property
    def frame_duration_s(self) -> float:
        return self.frame_samples / SAMPLE_RATE

    def spectrogram_frames(self, num_samples: int) -> int:
        """10 ms frames before stacking."""
        if num_samples < self.feature_window:
            return 0
        return 1 + (num_samples - self.feature_window) // self.feature_hop

    def feature_frames(self, num_samples: int) -> int:
        """Valid stacked feature frames (the attention mask's sum)."""
        return self.spectrogram_frames(num_samples) // self.feature_stride

    def feature_extent(self, num_samples: int) -> int:
        """Stacked frames the audio has on its own: the valid ones plus the half-padded frame an
        odd spectrogram count leaves (the extractor's `input_frames`)."""
        return -(-self.spectrogram_frames(num_samples) // self.feature_stride)

    def output_frames_from_features(self, feature_frames: int) -> int:
        frames = feature_frames
        for _ in range(self.adapter_layers):
            frames = max(0, strided_frames(frames, self.adapter_kernel, self.adapter_stride, self.adapter_stride // 2))
        return frames

    def output_frames(self, num_samples: int) -> int:
        return self.output_frames_from_features(self.feature_frames(num_samples))

    @property
    def min_samples(self) -> int:
        """The shortest audio that yields one output frame (560 samples = 35 ms)."""
        return self.feature_window + self.feature_hop * (self.feature_stride - 1)


@dataclass(frozen=True)
class Piece:
    """A half-open range of samples that runs through the model on its own."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ChunkPlan:
    """How one recording runs: its pieces, and how it was cut (none, windows, segmenter)."""

    num_samples: int
    pieces: tuple[Piece, ...]
    method: str


def plan_windows(
    start: int,
    end: int,
    *,
    window_samples: int,
    overlap_samples: int,
    frame_samples: int,
) -> list[Piece]:
    """Windows over [start, end) (start a multiple of frame_samples), each at most
    `window_samples` long, consecutive ones overlapping by at least `overlap_samples`.
    The last window ends at `end`, reaching back as far as a whole window allows, so that it
    has as much context as the others."""
    if start % frame_samples:
        raise ValueError(f"window start {start} is not on a frame boundary ({frame_samples} samples)")
    window = window_samples - window_samples % frame_samples
    hop = window - math.ceil(overlap_samples / frame_samples) * frame_samples
    if window <= 0 or hop <= 0:
        raise ValueError("the window must be longer than one frame and than the overlap")
    if end - start <= window:
        return [Piece(start, end)]
    pieces: list[Piece] = []
    position = start
    while position + window < end:
        pieces.append(Piece(position, position + window))
        position += hop
    last = start + math.ceil((end - window - start) / frame_samples) * frame_samples
    pieces.append(Piece(last, end))
    return pieces


def snap_interval(start: int, end: int, num_samples: int, frame_samples: int) -> Piece:
    """Widens [start, end) to output-frame boundaries (within the recording)."""
    lo = max(0, start - start % frame_samples)
    hi = min(num_samples, math.ceil(end / frame_samples) * frame_samples)
    return Piece(lo, hi)


def plan(
    num_samples: int,
    *,
    geometry: FrameGeometry,
    window_s: float,
    overlap_s: float,
    speech_intervals: Sequence[tuple[int, int]] | None = None,
) -> ChunkPlan:
    """The pieces one recording runs as.

    Without intervals: one piece up to `window_s`, windows above. With the segmenter's speech
    intervals (in samples, snapped outwards to frame boundaries): consecutive intervals are
    packed into pieces of at most `window_s`, pauses inside a piece included (the model was
    trained on continuous recitation, pauses and all), so that every cut falls in a pause;
    an interval longer than a window runs in windows; the pauses between pieces are not run
    at all (their frames are blank). Pieces come out in time order.
    """
    frame = geometry.frame_samples
    window = round(window_s * SAMPLE_RATE)
    overlap = round(overlap_s * SAMPLE_RATE)

    def windows(piece: Piece) -> list[Piece]:
        return plan_windows(piece.start, piece.end, window_samples=window, overlap_samples=overlap, frame_samples=frame)

    if speech_intervals is None:
        pieces = windows(Piece(0, num_samples))
        return ChunkPlan(num_samples, tuple(pieces), "none" if len(pieces) == 1 else "windows")
    packed: list[Piece] = []
    for raw_start, raw_end in sorted(speech_intervals):
        snapped = snap_interval(raw_start, raw_end, num_samples, frame)
        if snapped.length <= 0:
            continue
        if packed and max(packed[-1].end, snapped.end) - packed[-1].start <= window:
            packed[-1] = Piece(packed[-1].start, max(packed[-1].end, snapped.end))
        else:
            packed.append(snapped)
    out: list[Piece] = []
    for piece in packed:
        if geometry.output_frames(piece.length) >= 1:
            out.extend(windows(piece))
    return ChunkPlan(num_samples, tuple(out), "segmenter")


LogProbs = Mapping[str, npt.NDArray[np.float32]]


def blank(
    num_samples: int, geometry: FrameGeometry, vocab_sizes: Mapping[str, int]
) -> dict[str, npt.NDArray[np.float32]]:
    """All-blank log-probs for a recording in which nothing was run (no speech found)."""
    total = geometry.output_frames(num_samples)
    out: dict[str, npt.NDArray[np.float32]] = {}
    for level, vocab in vocab_sizes.items():
        # A blank frame: log p(blank) = 0, every other label at the wire's floor.
        values = np.full((total, vocab), LOG_PROB_FLOOR, dtype=np.float32)
        values[:, 0] = 0.0
        out[level] = values
    return out


def stitch(
    pieces: Sequence[Piece],
    outputs: Sequence[LogProbs],
    *,
    num_samples: int,
    geometry: FrameGeometry,
) -> dict[str, npt.NDArray[np.float32]]:
    """Per-level (frames, vocab) log-probs of the whole recording from its pieces' outputs.

    Frame f of the result comes from the piece covering f in which f is farthest from an
    edge (ties: the earlier piece); frames no piece covers are blank (label 0).
    """
    if len(pieces) != len(outputs):
        raise ValueError(f"{len(pieces)} pieces but {len(outputs)} outputs")
    if not outputs:
        raise ValueError("nothing to stitch")
    total = geometry.output_frames(num_samples)
    levels = list(outputs[0])
    best = np.full(total, -1, dtype=np.int64)
    owner = np.full(total, -1, dtype=np.int64)
    offsets: list[int] = []
    for index, (piece, output) in enumerate(zip(pieces, outputs, strict=True)):
        first = first_frame(piece, output, geometry, index)
        expected = geometry.output_frames(piece.length)
        offsets.append(first)
        frames = np.arange(first, min(first + expected, total))
        if frames.size == 0:
            continue
        local = frames - first
        to_left = np.full(frames.size, total, dtype=np.int64) if piece.start == 0 else local
        right_is_end = first + expected >= total
        to_right = np.full(frames.size, total, dtype=np.int64) if right_is_end else expected - 1 - local
        distance = np.minimum(to_left, to_right)
        better = distance > best[frames]
        best[frames[better]] = distance[better]
        owner[frames[better]] = index
    stitched = blank(num_samples, geometry, {level: outputs[0][level].shape[1] for level in levels})
    for level in levels:
        result = stitched[level]
        for index, output in enumerate(outputs):
            frames = np.flatnonzero(owner == index)
            if frames.size:
                result[frames] = output[level][frames - offsets[index]]
    return stitched


def first_frame(piece: Piece, output: LogProbs, geometry: FrameGeometry, index: int = 0) -> int:
    """The recording's frame that a piece's output frame 0 is, after checking that the piece
    starts on a frame boundary and that every level has the piece's own frame count."""
    if piece.start % geometry.frame_samples:
        raise ValueError(f"piece {piece} does not start on a frame boundary")
    expected = geometry.output_frames(piece.length)
    for level, values in output.items():
        if values.shape[0] != expected:
            raise ValueError(f"piece {index} level {level}: {values.shape[0]} frames, expected {expected}")
    return piece.start // geometry.frame_samples


@dataclass(frozen=True)
class Window:
    """A piece run with context for some output frames of a recording: the piece reaches
    `left` frames before `keep_start` and up to `right` frames past `keep_end` (less at the
    recording's edges), and only frames [keep_start, keep_end) of its output are kept."""

    piece: Piece
    keep_start: int
    keep_end: int


def context_window(
    keep_start: int, keep_end: int, *, left: int, right: int, num_samples: int, geometry: FrameGeometry
) -> Window:
    """The window that computes frames [keep_start, keep_end) of a recording of `num_samples`
    (so far) with `left` and `right` frames of context."""
    if not 0 <= keep_start < keep_end:
        raise ValueError(f"empty or negative frame range [{keep_start}, {keep_end})")
    frame = geometry.frame_samples
    start = max(0, keep_start - left) * frame
    end = min(num_samples, (keep_end + right) * frame)
    if geometry.output_frames(end - start) < keep_end - start // frame:
        raise ValueError(f"{num_samples} samples do not reach frame {keep_end - 1}")
    return Window(Piece(start, end), keep_start, keep_end)


def kept(window: Window, output: LogProbs, geometry: FrameGeometry) -> dict[str, npt.NDArray[np.float32]]:
    """The frames a window keeps of its piece's output, per level."""
    first = first_frame(window.piece, output, geometry)
    lo, hi = window.keep_start - first, window.keep_end - first
    return {level: values[lo:hi] for level, values in output.items()}
