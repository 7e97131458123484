"""The whole mushaf, built as the gateway will build it (two spawned workers): every ayah and
word is there, the stored form stays small, and searches land across the whole index."""

from __future__ import annotations

import random
import time

import pytest

from services.gateway.reference import quran
from services.locate import codec
from services.locate.build import build_index
from services.locate.evaluation import NoiseModel, is_right, recited, sample_queries
from services.locate.index import WordPlace
from services.locate.search import PassageSearch


# All 6,236 ayahs phonetized (under a minute): make soak; tests/locate covers the same code on a
# few surahs under make test.
@pytest.mark.slow
@pytest.mark.soak
def test_the_whole_mushaf_is_indexed_and_searchable() -> None:
    started = time.perf_counter()
    index = build_index(workers=2)
    build_s = time.perf_counter() - started
    print(f"whole-mushaf index built in {build_s:.1f} s")

    assert index.ayah_count == 6236 == quran.total_ayahs()
    assert index.surahs == tuple(range(1, 115))
    assert index.word_count == sum(
        len(quran.ayah_text(s, a).uthmani_words) for s in range(1, 115) for a in range(1, quran.ayah_count(s) + 1)
    )
    assert index.place(0) == WordPlace(1, 1, 0)
    assert index.place(index.word_count - 1) == WordPlace(114, 6, 2)
    raw = codec.encode(index)
    assert len(raw) < 1_000_000

    search = PassageSearch(index)
    # The basmala: 1:1 and inside 27:30, nowhere else in the Tanzil text.
    basmala = search.search(recited(index, index.word_of(1, 1), 4))
    assert [span.start for span in basmala.tied] == [WordPlace(1, 1, 0), WordPlace(27, 30, 4)]
    # Inside the longest ayah, and from inside Ayat al-Kursi into the next ayah.
    for surah, ayah, word in ((2, 282, 40), (2, 255, 46)):
        result = search.search(recited(index, index.word_of(surah, ayah, word), 6))
        assert result.best is not None and result.best.start == WordPlace(surah, ayah, word)
    assert search.search(recited(index, index.word_of(2, 255, 46), 6)).tied[0].last == WordPlace(2, 256, 1)

    queries = sample_queries(index, random.Random(25), 200, 4)
    rng = random.Random(26)
    right = sum(is_right(search, search.search(NoiseModel(0.05).apply(q.phonemes, rng)), q) for q in queries)
    assert right / len(queries) >= 0.97
