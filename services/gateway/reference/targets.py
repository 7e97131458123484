"""What a learner was asked to recite, validated against the Quran's real bounds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.common import bounds
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2
from services.gateway.reference import quran

MAX_AYAHS_PER_TARGET = bounds.MAX_AYAHS_PER_TARGET
MAX_WORDS_PER_TARGET = bounds.MAX_WORDS_PER_TARGET

TargetKind = Literal["ayah", "words", "ayah_range"]


@dataclass(frozen=True)
class TargetSpec:
    """A validated target. For `ayah`, last_ayah == ayah; for `words`, start_word/word_count."""

    kind: TargetKind
    surah: int
    ayah: int
    last_ayah: int = 0
    start_word: int = 0
    word_count: int = 0

    def key(self) -> str:
        """The target part of a cache key: `8:75`, `8:75:w17+9`, `2:1-5`."""
        if self.kind == "ayah":
            return f"{self.surah}:{self.ayah}"
        if self.kind == "words":
            return f"{self.surah}:{self.ayah}:w{self.start_word}+{self.word_count}"
        return f"{self.surah}:{self.ayah}-{self.last_ayah}"

    def to_proto(self) -> common_pb2.Target:
        if self.kind == "ayah":
            return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=self.surah, ayah=self.ayah))
        if self.kind == "words":
            return common_pb2.Target(
                words=common_pb2.WordRangeTarget(
                    surah=self.surah, ayah=self.ayah, start_word=self.start_word, word_count=self.word_count
                )
            )
        return common_pb2.Target(
            ayah_range=common_pb2.AyahRangeTarget(surah=self.surah, first_ayah=self.ayah, last_ayah=self.last_ayah)
        )


def _check_surah(surah: int) -> None:
    if not 1 <= surah <= quran.SURAH_COUNT:
        raise InvalidArgument(f"surah {surah} does not exist: valid surahs are 1..{quran.SURAH_COUNT}")


def _check_ayah(surah: int, ayah: int, field: str = "ayah") -> None:
    count = quran.ayah_count(surah)
    if not 1 <= ayah <= count:
        raise InvalidArgument(f"{field} {ayah} does not exist in surah {surah}: valid ayahs are 1..{count}")


def ayah_target(surah: int, ayah: int) -> TargetSpec:
    _check_surah(surah)
    _check_ayah(surah, ayah)
    return TargetSpec(kind="ayah", surah=surah, ayah=ayah, last_ayah=ayah)


def word_range_target(surah: int, ayah: int, start_word: int, word_count: int) -> TargetSpec:
    _check_surah(surah)
    _check_ayah(surah, ayah)
    words = len(quran.ayah_text(surah, ayah).imlaey_words)
    if not 0 <= start_word < words:
        raise InvalidArgument(
            f"start_word {start_word} is outside {surah}:{ayah}, which has {words} imlaey words "
            f"(valid start_word: 0..{words - 1})"
        )
    if not 1 <= word_count <= MAX_WORDS_PER_TARGET:
        raise InvalidArgument(f"word_count must be in 1..{MAX_WORDS_PER_TARGET}, got {word_count}")
    # quran-transcript wraps around from 114:6 to 1:1; a range must end inside the Quran.
    available = words - start_word
    cursor: tuple[int, int] | None = (surah, ayah)
    while available < word_count:
        assert cursor is not None
        cursor = quran.next_ayah(*cursor)
        if cursor is None:
            raise InvalidArgument(
                f"{word_count} words from word {start_word} of {surah}:{ayah} run past the end of the "
                f"Quran (114:6); at most {available} words are available from there"
            )
        available += len(quran.ayah_text(*cursor).imlaey_words)
    return TargetSpec(kind="words", surah=surah, ayah=ayah, start_word=start_word, word_count=word_count)


def ayah_range_target(surah: int, first_ayah: int, last_ayah: int) -> TargetSpec:
    _check_surah(surah)
    _check_ayah(surah, first_ayah, "first_ayah")
    _check_ayah(surah, last_ayah, "last_ayah")
    if last_ayah < first_ayah:
        raise InvalidArgument(f"last_ayah {last_ayah} comes before first_ayah {first_ayah}")
    if last_ayah - first_ayah + 1 > MAX_AYAHS_PER_TARGET:
        raise InvalidArgument(
            f"an ayah range covers at most {MAX_AYAHS_PER_TARGET} ayahs, got {last_ayah - first_ayah + 1}"
        )
    return TargetSpec(kind="ayah_range", surah=surah, ayah=first_ayah, last_ayah=last_ayah)


def target_from_proto(target: common_pb2.Target) -> TargetSpec:
    which = target.WhichOneof("kind")
    if which == "ayah":
        return ayah_target(target.ayah.surah, target.ayah.ayah)
    if which == "words":
        w = target.words
        return word_range_target(w.surah, w.ayah, w.start_word, w.word_count)
    if which == "ayah_range":
        r = target.ayah_range
        return ayah_range_target(r.surah, r.first_ayah, r.last_ayah)
    if which == "locate":
        # Only an assessment can locate (it has a recitation to search with); a reference cannot.
        raise InvalidArgument("target.locate needs a recitation: name a passage (target.ayah, words or ayah_range)")
    raise InvalidArgument(
        "target is missing: set one of target.ayah, target.words or target.ayah_range "
        "(or, to assess a recitation of an unknown passage, target.locate)"
    )
