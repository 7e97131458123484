"""The passage index against the reference builder (the phonemes and word spans every other
stage reads) and the Quran text's own word counts."""

from __future__ import annotations

import numpy as np
import pytest

from services.gateway.reference import builder, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.locate.build import ayah_places, build_index
from services.locate.index import PassageIndex, WordPlace
from tests.locate.conftest import SMALL_SURAHS


def test_each_ayah_reads_as_its_reference(small_index: PassageIndex) -> None:
    values = moshaf_mod.default_values()
    # Every ayah of the short surahs and Al-Fatiha, and a spread of the long ones.
    rows = [r for r in range(small_index.ayah_count) if small_index.ayah_surah[r] not in (27, 55) or r % 9 == 0]
    for row in rows:
        surah, ayah = int(small_index.ayah_surah[row]), int(small_index.ayah_number[row])
        reference = builder.build_reference(targets.TargetSpec("ayah", surah, ayah, ayah), values)
        first, end = int(small_index.ayah_first_word[row]), int(small_index.ayah_first_word[row + 1])
        offset = int(small_index.word_start[first])
        assert small_index.span_phonemes(first, end) == reference.phonemes, (surah, ayah)
        assert [int(s) - offset for s in small_index.word_start[first:end]] == [
            w.phoneme_start for w in reference.words
        ], (surah, ayah)
        assert [int(e) - offset for e in small_index.word_end[first:end]] == [w.phoneme_end for w in reference.words]


def test_words_and_places_follow_the_mushaf(small_index: PassageIndex) -> None:
    assert small_index.surahs == SMALL_SURAHS
    assert small_index.ayah_count == sum(quran.ayah_count(s) for s in SMALL_SURAHS)
    words = sum(len(quran.ayah_text(s, a).uthmani_words) for s, a in ayah_places(SMALL_SURAHS))
    assert small_index.word_count == words
    for surah, ayah, word in [(1, 1, 0), (1, 7, 8), (27, 30, 4), (55, 13, 3), (114, 6, 2)]:
        w = small_index.word_of(surah, ayah, word)
        assert small_index.place(w) == WordPlace(surah, ayah, word)
    assert small_index.place(small_index.word_count - 1) == WordPlace(114, 6, 2)
    with pytest.raises(KeyError):
        small_index.word_of(2, 1)
    with pytest.raises(KeyError):
        small_index.word_of(1, 1, 4)


def test_hamzat_al_wasl_is_flagged_from_the_uthmani_text(small_index: PassageIndex) -> None:
    # 1:2 ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَـٰلَمِينَ
    first = small_index.word_of(1, 2)
    assert small_index.word_wasl[first : first + 4].tolist() == [True, False, False, True]
    assert int(small_index.word_wasl.sum()) == sum(
        word.startswith("\u0671") for s, a in ayah_places(SMALL_SURAHS) for word in quran.ayah_text(s, a).uthmani_words
    )


def test_a_process_pool_builds_the_same_index(small_index: PassageIndex) -> None:
    pooled = build_index(surahs=(1, 112, 113, 114), workers=2)
    alone = build_index(surahs=(1, 112, 113, 114), workers=1)
    assert pooled.phonemes == alone.phonemes
    for column in ("ayah_surah", "ayah_number", "ayah_first_word", "word_start", "word_end", "word_wasl"):
        assert np.array_equal(getattr(pooled, column), getattr(alone, column)), column
    assert small_index.phonemes.endswith(alone.phonemes[-200:])


def _index(word_start: list[int], word_end: list[int], first_word: list[int]) -> PassageIndex:
    return PassageIndex(
        phonetizer_version="test",
        moshaf=moshaf_mod.default_values(),
        phonemes="بِسمِ",
        ayah_surah=np.array([1], dtype=np.int32),
        ayah_number=np.array([1], dtype=np.int32),
        ayah_first_word=np.array(first_word, dtype=np.int32),
        word_start=np.array(word_start, dtype=np.int32),
        word_end=np.array(word_end, dtype=np.int32),
        word_wasl=np.zeros(len(word_start), dtype=bool),
    )


def test_inconsistent_columns_are_refused() -> None:
    assert _index([0, 2], [2, 5], [0, 2]).word_count == 2
    with pytest.raises(ValueError, match="word columns"):
        _index([0, 2], [2, 5], [0, 3])
    with pytest.raises(ValueError, match="in order"):
        _index([2, 0], [5, 2], [0, 2])
    with pytest.raises(ValueError, match="outside"):
        _index([0, 2], [2, 9], [0, 2])
    with pytest.raises(ValueError, match="at least one word"):
        _index([], [], [0, 0])
