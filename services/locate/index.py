"""The passage index: the mushaf (or some of its surahs) as one phoneme string with word bounds.

One coordinate system for everything the search reports: offsets into `phonemes`, the
concatenation of every indexed ayah's phonetic script in mushaf order, each ayah phonetized on
its own (as the reference cache phonetizes an ayah target: its last word in its waqf form), with
no separator between ayahs, so a recitation that runs on from one ayah into the next is a
substring like any other. Words are numbered globally in the same order; `word_start[w]` and
`word_end[w]` are the word's phoneme span as the reference builder maps it (words merged by
idgham may overlap by a phoneme; starts never decrease); `word_wasl[w]` says whether the word
opens with hamzat al-wasl.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]


@dataclass(frozen=True)
class WordPlace:
    """Where a word sits in the mushaf: surah, ayah, 0-based Uthmani word index in the ayah."""

    surah: int
    ayah: int
    word: int


@dataclass(frozen=True, eq=False)
class PassageIndex:
    phonetizer_version: str
    # The validated MoshafAttributes values (defaults applied) the phonemes were produced with.
    moshaf: dict[str, Any]
    phonemes: str
    # One row per ayah, in mushaf order.
    ayah_surah: I32
    ayah_number: I32
    # Global index of the ayah's first word; one more entry than ayahs (the word count at the end).
    ayah_first_word: I32
    word_start: I32
    word_end: I32
    # True where the word opens with hamzat al-wasl (ٱ): read from a stop it gains a hamza and a
    # vowel that the connected reading in `phonemes` does not have.
    word_wasl: npt.NDArray[np.bool_]
    # Global word -> row of its ayah (derived, not stored).
    word_ayah: I32 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ayahs = len(self.ayah_surah)
        if len(self.ayah_number) != ayahs or len(self.ayah_first_word) != ayahs + 1:
            raise ValueError("the ayah columns disagree in length")
        words = int(self.ayah_first_word[-1])
        if len(self.word_start) != words or len(self.word_end) != words or len(self.word_wasl) != words:
            raise ValueError("the word columns disagree with the ayahs' word counts")
        if words and (np.any(np.diff(self.word_start) < 0) or np.any(self.word_end < self.word_start)):
            raise ValueError("word spans must start in order and not end before they start")
        if words and (self.word_start[0] < 0 or self.word_end[-1] > len(self.phonemes)):
            raise ValueError("a word span lies outside the phoneme string")
        counts = np.diff(self.ayah_first_word)
        if np.any(counts < 1):
            raise ValueError("every ayah has at least one word")
        object.__setattr__(self, "word_ayah", np.repeat(np.arange(ayahs, dtype=np.int32), counts))

    @property
    def ayah_count(self) -> int:
        return len(self.ayah_surah)

    @property
    def word_count(self) -> int:
        return len(self.word_start)

    @property
    def surahs(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.unique(self.ayah_surah))

    def place(self, word: int) -> WordPlace:
        row = int(self.word_ayah[word])
        return WordPlace(int(self.ayah_surah[row]), int(self.ayah_number[row]), word - int(self.ayah_first_word[row]))

    def word_of(self, surah: int, ayah: int, word: int = 0) -> int:
        """The global index of a word given by its place; KeyError when it is not indexed."""
        rows = np.flatnonzero((self.ayah_surah == surah) & (self.ayah_number == ayah))
        if len(rows) != 1:
            raise KeyError(f"{surah}:{ayah} is not in this index")
        row = int(rows[0])
        first, end = int(self.ayah_first_word[row]), int(self.ayah_first_word[row + 1])
        if not 0 <= word < end - first:
            raise KeyError(f"{surah}:{ayah} has no word {word}")
        return first + word

    def span_phonemes(self, first_word: int, end_word: int) -> str:
        """The phonemes of words first_word..end_word-1 (the index's connected reading)."""
        if not 0 <= first_word < end_word <= self.word_count:
            raise IndexError(f"no word span {first_word}..{end_word}")
        return self.phonemes[int(self.word_start[first_word]) : int(self.word_end[end_word - 1])]
