"""Speech intervals between pauses, the recitations-segmenter way.

The pipeline of the author's `recitations-segmenter` (1.0.0), re-implemented on numpy:
the audio is cut into 19.995 s chunks (the model was trained on <= 20 s), a frame classifier
labels every 20 ms feature frame speech (1) or silence (0) by argmax, label transitions
become [start, end) intervals in samples, and the intervals are cleaned: silences shorter
than `min_silence_duration_ms` are merged into the speech around them, speech shorter than
`min_speech_duration_ms` is dropped, and `pad_duration_ms` is added on each side.
`is_complete` is false when the recording ends in the middle of speech.

Two deliberate differences from the reference: the last chunk is labelled at its own length
(the reference zero-pads it to 19.995 s and labels the padding too, which reads as silence
and so hides a recording that stops mid-speech), and intervals are clamped to the recording.
A recording with no speech yields no intervals (the reference raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.errors import InvalidArgument

SAMPLE_RATE = 16_000
# 19.995 s: the reference's chunk length (its `max_duration_ms` default).
CHUNK_SAMPLES = 319_920
# One label per stacked feature frame: hop 160 x stride 2.
LABEL_SAMPLES = 320
SPEECH_LABEL = 1
# Cleaning parameters above this are surely a mistake (a minute of padding, say).
_MAX_OPTION_MS = 60_000

IntervalArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SegmentOptions:
    """The cleaning parameters of `clean_speech_intervals` (the reference's defaults)."""

    min_silence_duration_ms: int = 30
    min_speech_duration_ms: int = 30
    pad_duration_ms: int = 30

    def validate(self) -> None:
        for name in ("min_silence_duration_ms", "min_speech_duration_ms", "pad_duration_ms"):
            value = getattr(self, name)
            if not 0 <= value <= _MAX_OPTION_MS:
                raise InvalidArgument(f"segment option {name}={value} is out of range 0..{_MAX_OPTION_MS} ms")


@dataclass(frozen=True)
class Segmentation:
    """Speech intervals of one recording, in samples at 16 kHz, half-open and in time order."""

    intervals: IntervalArray
    raw_intervals: IntervalArray
    is_complete: bool
    num_samples: int

    def seconds(self) -> list[tuple[float, float]]:
        return [(int(s) / SAMPLE_RATE, int(e) / SAMPLE_RATE) for s, e in self.intervals]

    def sample_pairs(self) -> list[tuple[int, int]]:
        return [(int(s), int(e)) for s, e in self.intervals]


def chunk_bounds(num_samples: int, chunk_samples: int = CHUNK_SAMPLES) -> list[tuple[int, int]]:
    """[start, end) of the chunks the classifier runs on; the last one may be shorter."""
    return [(start, min(start + chunk_samples, num_samples)) for start in range(0, num_samples, chunk_samples)]


def speech_intervals(
    chunk_labels: Sequence[npt.NDArray[np.integer]],
    chunk_starts: Sequence[int],
    num_samples: int,
) -> tuple[IntervalArray, bool]:
    """Raw intervals from per-chunk frame labels; label i of a chunk starting at sample s
    covers [s + 320 i, s + 320 (i + 1)). Returns (intervals, is_complete)."""
    if len(chunk_labels) != len(chunk_starts):
        raise ValueError("one label array per chunk is needed")
    if not chunk_labels:
        return np.zeros((0, 2), dtype=np.int64), True
    stamps = np.concatenate(
        [
            start + LABEL_SAMPLES * np.arange(len(labels), dtype=np.int64)
            for labels, start in zip(chunk_labels, chunk_starts, strict=True)
        ]
    )
    speech = np.concatenate([np.asarray(labels) == SPEECH_LABEL for labels in chunk_labels])
    if speech.size == 0:
        return np.zeros((0, 2), dtype=np.int64), True
    changes = np.flatnonzero(np.diff(speech.astype(np.int8), prepend=np.int8(0)))
    edges = stamps[changes]
    is_complete = edges.size % 2 == 0
    if not is_complete:
        # Speech up to the last frame: the interval ends where that frame ends.
        edges = np.append(edges, min(int(stamps[-1]) + LABEL_SAMPLES, num_samples))
    return edges.reshape(-1, 2).astype(np.int64), bool(is_complete)


def _samples(ms: int) -> int:
    return int(ms * SAMPLE_RATE / 1000)


def clean_intervals(raw: IntervalArray, options: SegmentOptions, num_samples: int) -> IntervalArray:
    """Merge short silences, drop short speech, pad; the order of the reference."""
    if raw.shape[0] == 0:
        return raw.copy()
    starts, ends = raw[:, 0], raw[:, 1]
    # A silence shorter than the minimum joins the intervals on both of its sides.
    keep_gap = (starts[1:] - ends[:-1]) >= _samples(options.min_silence_duration_ms)
    group_starts = np.concatenate([[True], keep_gap])
    group_ends = np.concatenate([keep_gap, [True]])
    merged = np.stack([starts[group_starts], ends[group_ends]], axis=1)
    long_enough = (merged[:, 1] - merged[:, 0]) >= _samples(options.min_speech_duration_ms)
    kept = merged[long_enough]
    pad = _samples(options.pad_duration_ms)
    padded = np.stack([np.maximum(kept[:, 0] - pad, 0), np.minimum(kept[:, 1] + pad, num_samples)], axis=1)
    return padded.astype(np.int64)


def segmentation_from_labels(
    chunk_labels: Sequence[npt.NDArray[np.integer]],
    chunk_starts: Sequence[int],
    num_samples: int,
    options: SegmentOptions,
) -> Segmentation:
    raw, is_complete = speech_intervals(chunk_labels, chunk_starts, num_samples)
    return Segmentation(
        intervals=clean_intervals(raw, options, num_samples),
        raw_intervals=raw,
        is_complete=is_complete,
        num_samples=num_samples,
    )
