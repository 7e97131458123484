"""Groups to audio, with every phoneme's time: espeak-ng syllables, durations set at a tempo.

Durations, with T the tempo in seconds per haraka: a voweled letter (consonant onset and short
vowel, the haraka the tajweed service measures) lasts T, its vowel at least T/2; a madd run of n
symbols n*T (the previous vowel's steady tail, stretched); a consonant keeps its spoken length,
and each extra copy of it (shadda, a ghunnah of 3 symbols = 2 harakat) holds it 2T/3 longer;
a qalqalah is a short release after the closure; a sakt is a short silence; an ayah ends with a
stop pause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dsp import RATE, Audio, fade, loudest_window, silence, sounding_core, stretch
from .espeak import SyllableBank
from .script import MADD_VOWEL, NASALS, SPOKEN_AS, SUKUN, VOWEL_MARK, Group

EDGE_S = 0.35
STOP_PAUSE_S = 0.6
SAKT_S = 0.25
QALQALAH_S = 0.07
MIN_VOWEL_TAIL = 480  # 30 ms: the steady part a madd is stretched from
HOLD_HARAKAT = 2.0 / 3.0
MIN_VOWEL_SHARE = 0.5


@dataclass(frozen=True)
class Timed:
    """A span of the output: one phoneme symbol (or a whole group) from start to end seconds."""

    symbol: str
    start: float
    end: float


@dataclass
class Rendering:
    samples: Audio
    group_spans: list[tuple[float, float]]
    phoneme_spans: list[list[Timed]]


def _spoken(consonant: str) -> str:
    return SPOKEN_AS.get(consonant, consonant)


# espeak-ng says some sakin letters alone with a trailing schwa (بْ, دْ, ءْ last ~0.4 s): keep the
# consonant's own first part only.
# Some come out very short (نْ: 45 ms): at least 70 ms, so that a 40 ms model frame can hold it.
MAX_SAKIN = int(0.14 * RATE)
MIN_SAKIN = int(0.07 * RATE)
# Some voices say a sakin nasal as 40 ms of murmur, then 100 ms of silence and a click: only the
# murmur is the letter (held over a ghunnah, the silence made the hold silent).
SAKIN_CORE_DB = 25.0
# A madd continues its vowel's steady part: espeak-ng ends a vowel with a faint decay (20-30 dB
# down over 100 ms), which, stretched, made the madd a murmur at the noise floor.
STEADY_VOWEL_DB = 12.0
HOLD_SOURCE = 480  # 30 ms: the shortest clip the stretch overlaps and adds


def _sakin(bank: SyllableBank, consonant: str) -> Audio:
    clip = sounding_core(bank.clip(_spoken(consonant) + SUKUN), SAKIN_CORE_DB)[:MAX_SAKIN]
    if len(clip) < MIN_SAKIN:
        clip = stretch(clip, MIN_SAKIN)
    return fade(clip, 64)


class Renderer:
    def __init__(self, bank: SyllableBank, tempo: float) -> None:
        self.bank = bank
        self.tempo = tempo
        self._last_vowel_tail: Audio | None = None
        self._last_vowel = ""

    def _consonant_split(self, consonant: str, vowel: str) -> tuple[Audio, int]:
        """The CV syllable and where its vowel starts (the sakin consonant's length, capped)."""
        letter = _spoken(consonant)
        cv = self.bank.clip(letter + VOWEL_MARK[vowel])
        sakin = _sakin(self.bank, consonant)
        onset = int(min(len(sakin), 0.5 * len(cv)))
        return cv, max(onset, min(320, len(cv) // 3))

    def group(self, g: Group) -> tuple[Audio, list[Timed]]:
        T = self.tempo
        if g.is_sakt:
            self._last_vowel_tail = None
            return silence(SAKT_S), [Timed(g.phonemes, 0.0, SAKT_S)]
        if g.is_madd:
            return self._madd(g)
        pieces: list[Audio] = []
        times: list[Timed] = []
        t = 0.0
        sakin = _sakin(self.bank, g.consonant)
        copies = g.consonant_count
        extra = copies - 1
        # Held copies (shadda, ghunnah): the sakin consonant stretched over the hold; without a
        # vowel after it the held consonant is the whole group.
        if extra > 0:
            nasal = g.consonant in NASALS
            hold_s = extra * HOLD_HARAKAT * T if nasal or extra > 1 else 0.5 * T
            # A nasal's murmur is stretched from its loudest 30 ms: a stretched decay faded the
            # ghunnah out. Other letters keep their whole sakin clip (a fricative's own course).
            source = loudest_window(sakin, HOLD_SOURCE) if nasal else sakin
            hold = stretch(source, round((len(sakin) / RATE + hold_s) * RATE))
            pieces.append(hold)
            held = extra if g.vowel else copies
            step = len(hold) / RATE / held
            times.extend(Timed(g.consonant, t + i * step, t + (i + 1) * step) for i in range(held))
            t += len(hold) / RATE
        if g.vowel:
            cv, onset = self._consonant_split(g.consonant, g.vowel)
            vowel_s = max(T - onset / RATE, MIN_VOWEL_SHARE * T)
            vowel = stretch(cv[onset:], round(vowel_s * RATE))
            pieces.extend([cv[:onset], vowel])
            times.append(Timed(g.consonant, t, t + onset / RATE))
            t += onset / RATE
            times.append(Timed(g.vowel, t, t + len(vowel) / RATE))
            t += len(vowel) / RATE
            steady = sounding_core(vowel, STEADY_VOWEL_DB)
            self._last_vowel_tail = steady[-max(MIN_VOWEL_TAIL, len(steady) // 3):]
            self._last_vowel = g.vowel
        elif extra <= 0:
            pieces.append(sakin)
            times.append(Timed(g.consonant, t, t + len(sakin) / RATE))
            t += len(sakin) / RATE
        if g.qalqalah:
            cv, onset = self._consonant_split(g.consonant, next(iter(VOWEL_MARK)))
            release = fade(cv[max(0, onset - 160) : onset + int(QALQALAH_S * RATE)], 160)
            pieces.append(release)
            times.append(Timed(g.phonemes[-1], t, t + len(release) / RATE))
            t += len(release) / RATE
        if not g.vowel:
            self._last_vowel_tail = None
        return np.concatenate(pieces) if pieces else silence(0.0), times

    def _madd(self, g: Group) -> tuple[Audio, list[Timed]]:
        T = self.tempo
        vowel = MADD_VOWEL[g.phonemes[0]]
        tail = self._last_vowel_tail
        if tail is None or self._last_vowel != vowel:
            # A madd after no matching vowel (only in a mistake): a plain long vowel.
            tail = sounding_core(self.bank.clip("\u0627" + VOWEL_MARK[vowel]), STEADY_VOWEL_DB)[-MIN_VOWEL_TAIL * 3 :]
        n = g.madd_count
        audio = stretch(tail, round(n * T * RATE))
        return audio, [Timed(g.phonemes[i], i * T, (i + 1) * T) for i in range(n)]


def render(
    groups: Sequence[Group], bank: SyllableBank, tempo: float, stops_after: Sequence[int] = ()
) -> Rendering:
    """Joins the groups (short fades between them); stops_after: group indexes followed by a stop."""
    renderer = Renderer(bank, tempo)
    pieces: list[Audio] = [silence(EDGE_S)]
    t = EDGE_S
    spans: list[tuple[float, float]] = []
    phonemes: list[list[Timed]] = []
    stops = set(stops_after)
    for index, g in enumerate(groups):
        audio, times = renderer.group(g)
        audio = fade(audio, 32)
        pieces.append(audio)
        duration = len(audio) / RATE
        spans.append((t, t + duration))
        phonemes.append([Timed(x.symbol, t + x.start, t + x.end) for x in times])
        t += duration
        if index in stops and index != len(groups) - 1:
            pieces.append(silence(STOP_PAUSE_S))
            t += STOP_PAUSE_S
            renderer._last_vowel_tail = None
    pieces.append(silence(EDGE_S))
    samples = np.concatenate(pieces).astype(np.float32)
    peak = float(np.max(np.abs(samples))) or 1.0
    return Rendering(samples * (0.6 / peak), spans, phonemes)
