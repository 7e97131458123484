"""The audio of one recitation at 16 kHz mono, as it arrives (a live session) or all at once
(an uploaded file), with the wall-clock time each part arrived (a verdict's delay counts from
the arrival of the audio it judges)."""

from __future__ import annotations

import time
from bisect import bisect_left

import numpy as np
import numpy.typing as npt

from services.common.audio import TARGET_RATE, DecodedAudio


class Recording:
    def __init__(self, capacity_s: float = 30.0) -> None:
        # A buffer that doubles when full: no copy of the whole recording per chunk or segment.
        self._buffer = np.zeros(round(TARGET_RATE * capacity_s), dtype=np.float32)
        self._received = 0
        self._counts: list[int] = []  # samples so far, per arrival
        self._times: list[float] = []  # wall clock of that arrival

    @classmethod
    def of(cls, samples: npt.NDArray[np.float32]) -> Recording:
        recording = cls(capacity_s=max(samples.size / TARGET_RATE, 1.0))
        recording.append(samples)
        return recording

    def append(self, samples: npt.NDArray[np.float32], arrived: float | None = None) -> None:
        """`arrived`: when the samples reached the gateway (perf_counter), if not now (audio the
        intake read and decoded earlier, taken now at the stages' pace)."""
        if samples.size:
            needed = self._received + samples.size
            if needed > self._buffer.size:
                grown = np.zeros(max(needed, 2 * self._buffer.size), dtype=np.float32)
                grown[: self._received] = self._buffer[: self._received]
                self._buffer = grown
            self._buffer[self._received : needed] = samples
            self._received = needed
        self._counts.append(self._received)
        self._times.append(time.perf_counter() if arrived is None else arrived)

    @property
    def samples(self) -> npt.NDArray[np.float32]:
        return self._buffer[: self._received]

    @property
    def duration_s(self) -> float:
        return self._received / TARGET_RATE

    def arrived_at(self, seconds: float) -> float:
        """When the audio up to `seconds` had arrived (perf_counter clock)."""
        k = bisect_left(self._counts, int(seconds * TARGET_RATE))
        return self._times[k] if k < len(self._times) else time.perf_counter()

    def window(self, start_s: float, end_s: float) -> DecodedAudio:
        lo = max(0, round(start_s * TARGET_RATE))
        hi = min(self._received, max(lo, round(end_s * TARGET_RATE)))
        return DecodedAudio(
            samples=np.ascontiguousarray(self._buffer[lo:hi], dtype=np.float32),
            source_rate=TARGET_RATE,
            source_channels=1,
            source_format="recording",
        )
