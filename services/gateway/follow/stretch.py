"""A stretch of the session's words as a target of its own, phonetized with its real ends.

The reference service phonetizes a word-range target as read from its first word and
stopping (waqf) on its last, which is exactly how a segment between two pauses was recited:
the word before a pause is judged in its waqf form, not in the connected form the whole
ayah's reference gives it. Word-range targets count imlaey words; the session's words are
Uthmani words (a few Uthmani words hold two imlaey ones, e.g. يَٰٓأَيُّهَا), hence the map.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

from services.common.pb import common_pb2
from services.gateway.reference import quran

WordKey = tuple[int, int, int]  # surah, ayah, Uthmani word in ayah


def word_key(word: common_pb2.ReferenceWord) -> WordKey:
    return (word.surah, word.ayah, word.word_in_ayah)


@lru_cache(maxsize=512)
def _imlaey_starts(surah: int, ayah: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For one ayah: the Uthmani word each imlaey word starts in, as two sorted columns
    (uthmani index, first imlaey index there)."""
    text = quran.ayah_text(surah, ayah)
    uthmani: list[int] = [0]
    imlaey: list[int] = [0]
    for i in range(1, len(text.imlaey_words)):
        segment = None
        # An imlaey word that is half of an Uthmani word (يَا of يَـٰٓأَيُّهَا) is refused alone;
        # with the next one or two (يَبْنَؤُمَّ: يَا ابْنَ أُمَّ) it is the whole Uthmani word, which starts here.
        for count in (1, 2, 3):
            try:
                segment = quran.aya(surah, ayah).get_by_imlaey_words(i, count)
                break
            except Exception:  # quran-transcript: this imlaey word is part of an Uthmani word
                continue
        if segment is None:
            continue
        u = int(segment.start_span[2].uthmani)
        if u > uthmani[-1]:
            uthmani.append(u)
            imlaey.append(i)
    return tuple(uthmani), tuple(imlaey)


def imlaey_index(surah: int, ayah: int, uthmani_word: int) -> int:
    """The first imlaey word of an Uthmani word (its ayah's imlaey count past the last word)."""
    if uthmani_word >= len(quran.ayah_text(surah, ayah).uthmani_words):
        return len(quran.ayah_text(surah, ayah).imlaey_words)
    uthmani, imlaey = _imlaey_starts(surah, ayah)
    return imlaey[bisect_right(uthmani, uthmani_word) - 1]


def stretch_target(words: list[common_pb2.ReferenceWord], first: int, end: int) -> common_pb2.Target:
    """The word-range target of the session's words [first, end)."""
    start, last = words[first], words[end - 1]
    start_imlaey = imlaey_index(start.surah, start.ayah, start.word_in_ayah)
    count = 0
    surah, ayah = start.surah, start.ayah
    while (surah, ayah) != (last.surah, last.ayah):
        count += len(quran.ayah_text(surah, ayah).imlaey_words)
        following = quran.next_ayah(surah, ayah)
        assert following is not None, "session words run in Quran order"
        surah, ayah = following
    count += imlaey_index(last.surah, last.ayah, last.word_in_ayah + 1)
    count -= start_imlaey
    return common_pb2.Target(
        words=common_pb2.WordRangeTarget(
            surah=start.surah, ayah=start.ayah, start_word=start_imlaey, word_count=max(count, 1)
        )
    )
