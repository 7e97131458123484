"""Waqf (stop) marks per reference word, from the `quran-text` package's Hafs mushaf.

quran-transcript's bundled text has no stop marks; quran-text's Hafs (KFGQPC) has them,
one shared word numbering, and the same word division as quran-transcript's Uthmani text
in every ayah but one (15:7, where it prints لَّوۡمَا as one word and quran-transcript as
لَّوْ مَا). Words are mapped by (surah, ayah, index); where the counts differ, a word
takes the mark of the printed word it ends (compared letters only, `match_fold`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache

from quran_text import Mushaf, match_fold
from quran_text import Word as PrintedWord

from services.tajweed.model import Word


class Stop(enum.Enum):
    """The mushaf's stop signs and what they allow."""

    MUST = "ۘ"  # م: stopping is required
    FORBIDDEN = "ۙ"  # لا: do not stop
    OPTIONAL = "ۚ"  # ج: stop or continue
    CONTINUE_PREFERRED = "ۖ"  # صلى: continuing is better
    STOP_PREFERRED = "ۗ"  # قلى: stopping is better
    PAIRED = "ۛ"  # ∴: stop at one of the pair, not both
    SAKT = "ۜ"  # a short breathless pause


_BY_SIGN = {stop.value: stop for stop in Stop}


@dataclass(frozen=True)
class WordStop:
    stop: Stop | None
    ayah_end: bool
    # For a ∴ mark: (surah, ayah, n) shared by the two marks of one pair.
    pair: tuple[int, int, int] | None = None


@cache
def _mushaf() -> Mushaf:
    return Mushaf.hafs()


def preload() -> None:
    _mushaf()


@cache
def _printed(surah: int, ayah: int) -> tuple[tuple[str, Stop | None], ...]:
    """Each printed word of an ayah: its letters (match_fold) and its stop sign."""
    try:
        words = _mushaf().ayah(surah, ayah).word_list
    except IndexError:
        return ()
    return tuple((match_fold(w.text), _stop_of(w)) for w in words)


def _stop_of(word: PrintedWord) -> Stop | None:
    return next((_BY_SIGN[m.sign] for m in word.marks if m.kind == "waqf" and m.sign in _BY_SIGN), None)


def _lookup(word: Word) -> WordStop:
    printed = _printed(word.surah, word.ayah)
    position = word.word_in_ayah
    folded = match_fold(word.uthmani)
    if not (0 <= position < len(printed) and printed[position][0] == folded):
        candidates = [i for i, (text, _) in enumerate(printed) if text.endswith(folded)]
        if candidates:
            position = min(candidates, key=lambda i: abs(i - word.word_in_ayah))
        elif not 0 <= position < len(printed):
            return WordStop(None, False)
        # Otherwise a spelling difference (2:72 فَٱدَّٰرَْٰٔتُمْ): same position, same word.
    stops = [stop for _, stop in printed]
    stop = stops[position]
    pair = None
    if stop == Stop.PAIRED:
        pair = (word.surah, word.ayah, stops[:position].count(Stop.PAIRED) // 2)
    return WordStop(stop, position == len(printed) - 1, pair)


def word_stops(words: tuple[Word, ...]) -> list[WordStop]:
    return [_lookup(word) for word in words]
