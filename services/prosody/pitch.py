"""Pitch of a recitation with SwiftF0 (MIT; a small ONNX model run by onnxruntime), on a 10 ms grid.

SwiftF0 answers every 256 samples at 16 kHz (16 ms); the rest of the stage (rhythm, melody,
comparison) works on the 10 ms grid of the energy envelope, so the track is resampled onto
it: log-f0 is interpolated linearly between the model's frames, voicing is the nearest model
frame's. Semitones are relative to the reciter's own median voiced f0, which makes contours
of a man and of a child (or of one reciter in two keys) comparable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HOP_S = 0.01
MODEL_RATE = 16000
# Recitation lies well inside this; a narrower band keeps octave errors out of the model's choice.
FMIN_HZ = 50.0
FMAX_HZ = 1000.0
VOICING_THRESHOLD = 0.5

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PitchTrack:
    """f0 per 10 ms frame (0 where unvoiced); frame i is centred on i * hop_s."""

    f0_hz: FloatArray
    voiced: npt.NDArray[np.bool_]
    confidence: FloatArray
    hop_s: float = HOP_S

    @property
    def times(self) -> FloatArray:
        return np.arange(len(self.f0_hz), dtype=np.float64) * self.hop_s

    @property
    def median_hz(self) -> float:
        """Median voiced f0; 0 when nothing is voiced."""
        return float(np.median(self.f0_hz[self.voiced])) if self.voiced.any() else 0.0

    def semitones(self, reference_hz: float | None = None) -> FloatArray:
        """Semitones relative to `reference_hz` (the track's own median when None); NaN where unvoiced."""
        ref = self.median_hz if reference_hz is None else reference_hz
        out = np.full(len(self.f0_hz), np.nan)
        if ref > 0:
            out[self.voiced] = 12.0 * np.log2(self.f0_hz[self.voiced] / ref)
        return out

    def window(self, start_s: float, end_s: float) -> slice:
        lo = int(np.clip(round(start_s / self.hop_s), 0, len(self.f0_hz)))
        hi = int(np.clip(round(end_s / self.hop_s), lo, len(self.f0_hz)))
        return slice(lo, hi)


def resample_track(
    times: FloatArray, f0_hz: FloatArray, confidence: FloatArray, frames: int, hop_s: float = HOP_S
) -> PitchTrack:
    """A tracker's frames (centred on `times`) on `frames` frames of the hop_s grid."""
    n = frames
    grid = np.arange(n) * hop_s
    if len(times) == 0:
        return PitchTrack(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n), hop_s)
    voiced_src = (confidence >= VOICING_THRESHOLD) & (f0_hz > 0)
    nearest = np.clip(np.searchsorted(times, grid), 0, len(times) - 1)
    left = np.clip(nearest - 1, 0, len(times) - 1)
    closer_left = np.abs(times[left] - grid) < np.abs(times[nearest] - grid)
    nearest = np.where(closer_left, left, nearest)
    voiced = voiced_src[nearest]
    f0 = np.zeros(n)
    if voiced_src.any():
        vt = times[voiced_src]
        f0_interp = np.exp2(np.interp(grid, vt, np.log2(f0_hz[voiced_src])))
        # Interpolating across an unvoiced gap would invent a glide: use the nearest frame there.
        both = voiced_src[left] & voiced_src[np.clip(left + 1, 0, len(times) - 1)]
        f0 = np.where(both, f0_interp, f0_hz[nearest])
    f0 = np.where(voiced, f0, 0.0)
    conf = np.interp(grid, times, confidence)
    return PitchTrack(f0.astype(np.float64), voiced, conf, hop_s)


class PitchTracker:
    """One SwiftF0 detector per process (building it allocates the onnxruntime pool)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._detector: object | None = None
        self._lock = threading.Lock()

    def _get(self) -> object:
        with self._lock:
            if self._detector is None:
                from swift_f0 import SwiftF0  # deferred: onnxruntime loads only where pitch is tracked

                # spin=False: the pool sleeps between calls instead of busy-waiting, right on a shared CPU.
                self._detector = SwiftF0(threads=self.threads, spin=False)
            return self._detector

    def track(self, samples: npt.NDArray[np.floating], sample_rate: int) -> PitchTrack:
        """The pitch track of mono float samples at 16 kHz (the mesh's rate; other rates are refused)."""
        if sample_rate != MODEL_RATE:
            raise ValueError(f"pitch tracking needs {MODEL_RATE} Hz audio, got {sample_rate} Hz")
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1 or len(x) == 0:
            raise ValueError("samples must be non-empty mono audio")
        detector = self._get()
        result = detector.detect(x, MODEL_RATE, fmin=FMIN_HZ, fmax=FMAX_HZ)  # type: ignore[attr-defined]
        return resample_track(
            np.asarray(result.timestamps, dtype=np.float64),
            np.asarray(result.pitch_hz, dtype=np.float64),
            np.asarray(result.confidence, dtype=np.float64),
            # The energy envelope's frame count (services.common.energy), so the grids line up.
            1 + len(x) // round(HOP_S * MODEL_RATE),
        )
