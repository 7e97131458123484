"""Melody of a recitation from its pitch track: range, per-word contour slope, final lowering.

All in semitones relative to the reciter's median (key-invariant). The range is the spread
between the 5th and 95th percentiles of voiced frames (robust to octave slips); a word's slope
is the least-squares slope of its voiced frames in semitones per second; final lowering is how
far the last word's final third sits below the recitation's median, the fall a stop (waqf)
brings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.prosody.pitch import PitchTrack

MIN_VOICED_FRAMES = 5


@dataclass(frozen=True)
class WordSpan:
    index: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class WordMelody:
    index: int
    slope_st_per_s: float
    mean_st: float
    voiced_frames: int


@dataclass(frozen=True)
class Melody:
    range_st: float
    words: tuple[WordMelody, ...]
    final_lowering_st: float


def pitch_range(semitones: np.ndarray) -> float:
    v = semitones[np.isfinite(semitones)]
    return float(np.percentile(v, 95) - np.percentile(v, 5)) if len(v) >= MIN_VOICED_FRAMES else 0.0


def word_melody(track: PitchTrack, semitones: np.ndarray, word: WordSpan) -> WordMelody:
    sl = track.window(word.start_s, word.end_s)
    st = semitones[sl]
    t = track.times[sl]
    ok = np.isfinite(st)
    if ok.sum() < MIN_VOICED_FRAMES:
        return WordMelody(word.index, 0.0, float(np.nanmean(st)) if ok.any() else 0.0, int(ok.sum()))
    slope = float(np.polyfit(t[ok], st[ok], 1)[0])
    return WordMelody(word.index, slope, float(st[ok].mean()), int(ok.sum()))


def final_lowering(track: PitchTrack, semitones: np.ndarray, last: WordSpan | None) -> float:
    """Median semitone of the recitation minus that of the last word's final third (> 0: it falls)."""
    if last is None:
        voiced = np.flatnonzero(np.isfinite(semitones))
        if len(voiced) < MIN_VOICED_FRAMES:
            return 0.0
        tail = semitones[voiced[-max(MIN_VOICED_FRAMES, len(voiced) // 10) :]]
    else:
        start = last.end_s - (last.end_s - last.start_s) / 3
        tail = semitones[track.window(start, last.end_s)]
        tail = tail[np.isfinite(tail)]
        if len(tail) == 0:
            return 0.0
    return float(np.nanmedian(semitones) - np.median(tail))


def melody(track: PitchTrack, words: Sequence[WordSpan] = ()) -> Melody:
    st = track.semitones()
    return Melody(
        range_st=pitch_range(st),
        words=tuple(word_melody(track, st, w) for w in words),
        final_lowering_st=final_lowering(track, st, words[-1] if words else None),
    )
