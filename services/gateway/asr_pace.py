"""The asr's pace as this gateway sees it, and the live capacity it allows.

Every Transcription carries the asr's own timings (features, model) and the size of the batch it
ran in. A request's share of the compute is (features + model) / batch size; over the seconds of
audio it covered that is the asr's real-time factor (RTF) for this traffic, queueing excluded (a
queue is what too many sessions make, not what one costs). The capacity in sessions follows as
docs/live.md (Capacity) derives it by hand:

    sessions = floor(asr replicas x HEADROOM / RTF) / gateway replicas

so a gateway admits what its share of the asr keeps up with at real time. The RTF is a mean
weighted by audio seconds with a half-life of HALF_LIFE_S of audio, so a slower model rolled out,
or a busier machine, moves it within minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.common.pb import asr_pb2

# A reciter's pace leaves the asr idle between segments, but segments of several sessions can
# close together: 30 % of its time is kept for those bursts.
HEADROOM = 0.7
HALF_LIFE_S = 300.0
# Audio seen before the measure is trusted (a first call pays warm-up costs).
MIN_AUDIO_S = 20.0
# Timings that are compute for this request; "queue" and "segmenter" are not the model's pace.
COMPUTE = ("features", "model")


@dataclass
class AsrPace:
    asr_replicas: int = 1
    gateway_replicas: int = 1
    _weighted: float = 0.0
    _audio_s: float = 0.0
    _seen_s: float = 0.0

    def observe(self, transcription: asr_pb2.Transcription) -> None:
        audio_s = transcription.audio_duration_s
        compute_ms = sum(t.duration_ms for t in transcription.timings if t.stage in COMPUTE)
        if audio_s <= 0.0 or compute_ms <= 0.0:
            return
        share_s = compute_ms / 1000.0 / max(1, transcription.batch_size)
        # The older audio fades by its half-life, counted in audio seconds seen since.
        keep = 0.5 ** (audio_s / HALF_LIFE_S)
        self._weighted = self._weighted * keep + share_s
        self._audio_s = self._audio_s * keep + audio_s
        self._seen_s += audio_s

    @property
    def rtf(self) -> float | None:
        """Compute seconds per second of audio; None until MIN_AUDIO_S of audio was seen."""
        if self._seen_s < MIN_AUDIO_S or self._audio_s <= 0.0:
            return None
        return self._weighted / self._audio_s

    def capacity(self) -> int | None:
        """Live sessions this gateway's share of the asr keeps up with; None while unmeasured."""
        rtf = self.rtf
        if rtf is None:
            return None
        if rtf <= 0.0:
            return None
        # The epsilon keeps 0.7 / 0.1 at 7, not 6.999...
        return max(1, math.floor(self.asr_replicas * HEADROOM / rtf / self.gateway_replicas + 1e-9))
