"""What the prosody stage knows about one recitation, as plain data over numpy arrays.

`AudioFeatures` needs only the audio (so the stage runs beside the ASR); `Timing` comes from
the alignment of the reference on the audio (words, phonemes and groups with times, the madd
rules' spans) and gives the rhythm, the per-word melody and the haraka.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.common.energy import energy_envelope
from services.prosody import maqam as maqam_mod
from services.prosody.acoustic import log_mel
from services.prosody.melody import Melody, WordSpan, melody
from services.prosody.pitch import PitchTrack, PitchTracker
from services.prosody.rhythm import MIN_PAUSE_S, VOWELS, Rhythm, intervals, rhythm
from services.prosody.voice import VoiceQuality, voice_quality

SHORT_VOWELS = frozenset("\u064e\u064f\u0650")
MADD_LETTERS = VOWELS - SHORT_VOWELS
MIN_HARAKA_SAMPLES = 3


@dataclass(frozen=True)
class Phone:
    phoneme: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Group:
    phonemes: str
    word_index: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Madd:
    word_index: int
    rule: str
    golden_len: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Word:
    index: int
    text: str
    start_s: float
    end_s: float

    @property
    def span(self) -> WordSpan:
        return WordSpan(self.index, self.start_s, self.end_s)


@dataclass(frozen=True)
class Timing:
    """An alignment's view of a recitation; `confidence` is the share of unflagged tokens."""

    words: tuple[Word, ...]
    phones: tuple[Phone, ...]
    groups: tuple[Group, ...]
    madds: tuple[Madd, ...]
    confidence: float

    def haraka_s(self) -> float:
        """One count: the outlier-trimmed geometric mean of consonant + short-vowel groups, each from
        its onset to the next group's (groups running into a madd letter or a pause excluded). 0 when too few."""
        samples = []
        for here, after in zip(self.groups, self.groups[1:], strict=False):
            if (
                len(here.phonemes) == 2
                and here.phonemes[1] in SHORT_VOWELS
                and here.phonemes[0] not in VOWELS
                and not (after.phonemes and after.phonemes[0] in MADD_LETTERS)
                and after.start_s > here.start_s
                # Before a pause the onset-to-onset time holds the silence too.
                and after.start_s - here.end_s < MIN_PAUSE_S
            ):
                samples.append(math.log(after.start_s - here.start_s))
        if len(samples) < MIN_HARAKA_SAMPLES:
            return 0.0
        logs = np.asarray(samples)
        med = float(np.median(logs))
        spread = max(1.4826 * float(np.median(np.abs(logs - med))), math.log(1.5))
        kept = logs[np.abs(logs - med) <= 3 * spread]
        return float(math.exp(kept.mean()))

    def rhythm(self) -> Rhythm:
        return rhythm(intervals([(p.phoneme, p.start_s, p.end_s) for p in self.phones]))


@dataclass(frozen=True)
class AudioFeatures:
    pitch: PitchTrack
    energy_db: npt.NDArray[np.float32]
    voice: VoiceQuality
    maqam: maqam_mod.MaqamEstimate | None
    mel: npt.NDArray[np.float64]
    duration_s: float
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)


def analyze(samples: npt.NDArray[np.floating], sample_rate: int, tracker: PitchTracker) -> AudioFeatures:
    """Everything the audio alone gives, with each feature's time in milliseconds."""
    x = np.asarray(samples, dtype=np.float32)
    timings: dict[str, float] = {}

    def timed(name: str, started: float) -> float:
        now = time.perf_counter()
        timings[name] = round((now - started) * 1000, 2)
        return now

    t = time.perf_counter()
    track = tracker.track(x, sample_rate)
    t = timed("pitch", t)
    energy, _ = energy_envelope(x, sample_rate, hop_s=track.hop_s)
    t = timed("energy", t)
    voice = voice_quality(x, sample_rate, track)
    t = timed("voice_quality", t)
    estimate = maqam_mod.estimate(track)
    t = timed("maqam", t)
    mel = log_mel(x, sample_rate, hop_s=track.hop_s)
    timed("acoustic", t)
    return AudioFeatures(track, energy, voice, estimate, mel, len(x) / sample_rate, timings)


@dataclass(frozen=True)
class Recitation:
    """One side of a comparison: the audio's features and, when aligned, the timing."""

    audio: AudioFeatures
    timing: Timing | None = None

    def melody(self) -> Melody:
        words: Sequence[WordSpan] = [w.span for w in self.timing.words] if self.timing else ()
        return melody(self.audio.pitch, words)
