"""Where each sound of the recitation starts and ends: the forced alignment's tokens, as segments.

The aligner gives every reference phoneme a token and the frames it holds (a CTC span: often
a spike of one or two frames, blank frames around it). Tokens are of two kinds:
- vowels: the short vowels (َ ُ ِ, imala ۪, rawm ؙ), the madd symbols (ا ۦ ۥ ـ) and the yaa or
  waw of a leen madd;
- consonants: every other symbol, with the marks that belong to a letter (the qalqalah
  release ڇ, the sakt ۜ) and the hidden nasals (ں ۾).
A segment is either a nucleus, a run of consecutive vowel tokens (a short vowel and the madd
that lengthens it are ONE nucleus), or the consonant tokens of one reference group (a letter,
or a held letter: the copies of a shadda or a ghunnah).

THE BLANK RULE. A blank frame belongs to the token before it, unless that token is a
consonant and the token after it is a vowel: then it belongs to the vowel. A lasting silence
(energy under the silence threshold for at least min_pause_s, energy.py) belongs to no
token: the token before it ends where it starts, and the blank frames after it go to the
next token only when that token is a vowel. Frames before the first token belong to none;
frames after the last token are the last token's up to where the speech ends (the first
lasting silence), or, with no energy envelope to say where that is, only a final madd
reaches past its last spike (one inter-spike interval per symbol: a madd's last spike is
one frame long, its share of the vowel is not).

Why this rule: a CTC model emits a held vowel anywhere inside it, typically late, and a
consonant near where the consonant is. So the boundaries are taken at consonant spikes,
and the vowels take the blank frames they touch. What it measures:
- a nucleus runs from the end of the consonant before it to the start of the next
  consonant (or to a silence): where its vowel and madd spikes fall inside does not matter;
- a consonant before a vowel is its own frames; before another consonant it runs to that
  consonant's first frame (onset to onset, both spikes being consonants);
- a held consonant (shadda, ghunnah) runs from its first copy's first frame to its last
  copy's last frame, or, when a consonant follows, to that consonant's first frame. A quiet
  run between its copies is part of it, not a stop: the model heard the letter on both sides,
  a doubled stop's closure is silent by nature, and a nasal murmur is 20-30 dB under the
  vowels, so under a noise floor its energy is the noise's (measured on surahs 80-89 with the
  demo model: clean ghunnahs at 20-30 dB SNR lost 0.3-0.8 s of a 0.6-1.1 s hold to "silence").
Durations in the validators are read from these segments (tempo.py says how they become
harakat); no duration depends on where a vowel's spike falls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.tajweed import phonetics
from services.tajweed.energy import EnergyProfile
from services.tajweed.model import Alignment, Reference

VOWEL_SYMBOLS = (
    phonetics.HARAKAT
    | phonetics.MADD_SYMBOLS
    | {phonetics.PH.fatha_momala, phonetics.PH.dama_mokhtalasa}
)


@dataclass(frozen=True)
class Segment:
    index: int
    vowel: bool
    # Its tokens: reference phoneme indices [first, last).
    first: int
    last: int
    # After the blank rule.
    start_s: float
    end_s: float
    # A nucleus only: lasting silences between its own tokens (a reciter stopping for breath
    # inside a madd), which belong to no token. A held consonant has none: see the module doc.
    silent_s: float = 0.0

    @property
    def duration(self) -> float:
        return max(0.0, self.end_s - self.start_s - self.silent_s)

    def holds(self, token: int) -> bool:
        return self.first <= token < self.last


@dataclass(frozen=True)
class Timeline:
    # Per token (reference phoneme), after the blank rule.
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    segments: tuple[Segment, ...]
    # Per token: the segment holding it.
    segment_of: tuple[int, ...]
    # Per reference group: its first token's start to its last token's end.
    group_spans: tuple[tuple[float, float], ...]
    # Token index i -> the longest lasting silence between token i and token i + 1.
    silences: Mapping[int, tuple[float, float]]

    def segment(self, token: int) -> Segment:
        return self.segments[self.segment_of[token]]

    def following(self, segment: Segment) -> Segment | None:
        return self.segments[segment.index + 1] if segment.index + 1 < len(self.segments) else None

    def is_last(self, segment: Segment) -> bool:
        return segment.index == len(self.segments) - 1

    def span(self, first_group: int, last_group: int) -> tuple[float, float]:
        start = self.group_spans[first_group][0]
        return start, max(start, self.group_spans[last_group][1])

    def silence_after(self, token: int) -> tuple[float, float] | None:
        return self.silences.get(token)


def is_vowel_token(symbol: str) -> bool:
    return symbol in VOWEL_SYMBOLS


def token_kinds(reference: Reference, leen_groups: frozenset[int]) -> list[bool]:
    """Per reference phoneme: True for a vowel token (leen yaa/waw included), False for a consonant."""
    kinds = [is_vowel_token(p) for p in reference.phonemes]
    for index in leen_groups:
        group = reference.groups[index]
        for token in range(group.start, group.end):
            kinds[token] = reference.phonemes[token] == group.core
    return kinds


def _segment_bounds(reference: Reference, vowel: list[bool]) -> list[tuple[int, int]]:
    """[first, last) token ranges: vowel runs, and each group's consonant tokens."""
    group_of = [0] * len(reference.phonemes)
    for group in reference.groups:
        for token in range(group.start, group.end):
            group_of[token] = group.index
    bounds: list[tuple[int, int]] = []
    first = 0
    for token in range(1, len(vowel) + 1):
        ends = (
            token == len(vowel)
            or vowel[token] != vowel[token - 1]
            or (not vowel[token] and group_of[token] != group_of[token - 1])
        )
        if ends:
            bounds.append((first, token))
            first = token
    return bounds


def build_timeline(
    reference: Reference,
    alignment: Alignment,
    energy: EnergyProfile | None,
    min_pause_s: float,
    leen_groups: frozenset[int] = frozenset(),
) -> Timeline:
    tokens = alignment.tokens
    count = len(tokens)
    vowel = token_kinds(reference, leen_groups)
    starts = [t.start_s for t in tokens]
    ends = [t.end_s for t in tokens]
    silences: dict[int, tuple[float, float]] = {}
    for i in range(count - 1):
        gap_start, gap_end = tokens[i].end_s, tokens[i + 1].start_s
        if gap_end <= gap_start:
            continue
        runs = energy.silent_runs(gap_start, gap_end, min_pause_s) if energy is not None else []
        to_vowel = not vowel[i] and vowel[i + 1]
        if runs:
            silences[i] = max(runs, key=lambda r: r[1] - r[0])
            ends[i] = max(gap_start, runs[0][0])
            if vowel[i + 1]:
                starts[i + 1] = min(gap_end, runs[-1][1])
        elif to_vowel:
            starts[i + 1] = gap_start
        else:
            ends[i] = gap_end
    if count:
        ends[-1] = _speech_end(reference, alignment, energy, min_pause_s, vowel)
    bounds = _segment_bounds(reference, vowel)
    segments = tuple(
        Segment(
            index,
            vowel[first],
            first,
            last,
            starts[first],
            ends[last - 1],
            _inner_silence(first, last, starts, ends, silences) if vowel[first] else 0.0,
        )
        for index, (first, last) in enumerate(bounds)
    )
    segment_of = [0] * count
    for segment in segments:
        for token in range(segment.first, segment.last):
            segment_of[token] = segment.index
    group_spans = tuple((starts[g.start], max(starts[g.start], ends[g.end - 1])) for g in reference.groups)
    return Timeline(
        starts=tuple(starts),
        ends=tuple(ends),
        segments=segments,
        segment_of=tuple(segment_of),
        group_spans=group_spans,
        silences=silences,
    )


def _inner_silence(
    first: int, last: int, starts: list[float], ends: list[float], silences: Mapping[int, tuple[float, float]]
) -> float:
    return sum(starts[k + 1] - ends[k] for k in range(first, last - 1) if k in silences)


def _speech_end(
    reference: Reference, alignment: Alignment, energy: EnergyProfile | None, min_pause_s: float, vowel: list[bool]
) -> float:
    """Where the last token ends: the first lasting silence after it, or a final madd extrapolated."""
    last = alignment.tokens[-1]
    if energy is not None:
        limit = max(energy.duration_s, last.end_s)
        runs = energy.silent_runs(last.end_s, limit, min_pause_s)
        return max(last.end_s, runs[0][0] if runs else limit)
    group = reference.groups[-1]
    n = group.end - group.start
    if not vowel[-1] or n < 2:
        return last.end_s
    tokens = alignment.tokens
    spacing = (tokens[group.end - 1].start_s - tokens[group.start].start_s) / (n - 1)
    return max(last.end_s, tokens[group.start].start_s + n * spacing)
