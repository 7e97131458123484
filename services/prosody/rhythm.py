"""Rhythm metrics from aligned intervals: nPVI and Varco of vocalic intervals, rPVI and Varco
of consonantal ones, %V, articulation rate and pause ratio.

An interval is a maximal run of phonemes of one kind (vowel or consonant) in the alignment;
a pause is a gap between aligned phonemes of at least MIN_PAUSE_S. Definitions:
- nPVI = 100 / (m-1) * sum |d_k - d_{k+1}| / ((d_k + d_{k+1}) / 2)   (Grabe & Low 2002)
- rPVI = 1 / (m-1) * sum |d_k - d_{k+1}|, in milliseconds
- Varco = 100 * std(d) / mean(d)   (population std; Dellwo 2006)
- %V = vocalic time / (vocalic + consonantal time) * 100
- articulation rate = vocalic intervals (syllable nuclei) per second of speech, pauses excluded
- pause ratio = pause time / (speech + pause time) between the first and last phoneme
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The model's phonetic script: the three short vowels and the long-vowel letters
# (alif, waw madd, yaa madd, imala alif). A test checks them against quran-transcript.
VOWELS = frozenset("\u064e\u064f\u0650\u0627\u06e5\u06e6\u0640")
MIN_PAUSE_S = 0.15


@dataclass(frozen=True)
class Interval:
    kind: str  # "V", "C" or "P" (pause)
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Rhythm:
    npvi_v: float
    varco_v: float
    rpvi_c_ms: float
    varco_c: float
    percent_v: float
    articulation_rate: float
    pause_ratio: float


def npvi(durations: Sequence[float]) -> float:
    d = np.asarray(durations, dtype=np.float64)
    if len(d) < 2:
        return 0.0
    pair = (d[:-1] + d[1:]) / 2
    return float(100.0 * np.mean(np.abs(np.diff(d)) / np.where(pair > 0, pair, 1.0)))


def rpvi(durations: Sequence[float]) -> float:
    d = np.asarray(durations, dtype=np.float64)
    return float(np.mean(np.abs(np.diff(d)))) if len(d) >= 2 else 0.0


def varco(durations: Sequence[float]) -> float:
    d = np.asarray(durations, dtype=np.float64)
    if len(d) < 2 or d.mean() <= 0:
        return 0.0
    return float(100.0 * d.std() / d.mean())


def intervals(phonemes: Sequence[tuple[str, float, float]], min_pause_s: float = MIN_PAUSE_S) -> list[Interval]:
    """Merge aligned (phoneme, start_s, end_s) into vocalic, consonantal and pause intervals."""
    out: list[Interval] = []
    for ph, start, end in sorted(phonemes, key=lambda p: p[1]):
        kind = "V" if ph in VOWELS else "C"
        if out and start - out[-1].end_s >= min_pause_s:
            out.append(Interval("P", out[-1].end_s, start))
        if out and out[-1].kind == kind:
            out[-1] = Interval(kind, out[-1].start_s, max(end, out[-1].end_s))
        else:
            out.append(Interval(kind, start, end))
    return out


def rhythm(items: Sequence[Interval]) -> Rhythm:
    v = [i.duration_s for i in items if i.kind == "V"]
    c = [i.duration_s for i in items if i.kind == "C"]
    p = sum(i.duration_s for i in items if i.kind == "P")
    speech = sum(v) + sum(c)
    return Rhythm(
        npvi_v=npvi(v),
        varco_v=varco(v),
        rpvi_c_ms=1000.0 * rpvi(c),
        varco_c=varco(c),
        percent_v=100.0 * sum(v) / speech if speech > 0 else 0.0,
        articulation_rate=len(v) / speech if speech > 0 else 0.0,
        pause_ratio=p / (speech + p) if speech + p > 0 else 0.0,
    )
