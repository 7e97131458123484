"""The gateway's locate decision on a small passage index (a few surahs, built in-process): which
span is assessed, as which target, and when the answer says it is not sure."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2
from services.gateway.locate_settings import LocateConfig, parse_surahs
from services.gateway.locating import LocateService, Location, decide, span_target, uthmani_between
from services.gateway.reference import builder, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference.cache import MemoryStore
from services.locate.evaluation import NoiseModel, recited
from services.locate.index import WordPlace
from services.locate.search import LocateResult

# Ar-Rahman for its refrain (31 identical ayahs), Al-Fatiha for its basmala, and the short surahs.
SURAHS = (1, 55, *range(103, 115))
CONFIG = LocateConfig(surahs=SURAHS, sure_margin=0.05, workers=1)


@pytest.fixture(scope="module")
def store() -> MemoryStore:
    return MemoryStore(16)


@pytest.fixture(scope="module")
def service(store: MemoryStore) -> LocateService:
    return LocateService(store, CONFIG)


def _locate(service: LocateService, decoded: str) -> Location:
    return asyncio.run(service.locate(decoded, None))


def _recitation(service: LocateService, surah: int, ayah: int, word: int, count: int) -> str:
    search, _ = asyncio.run(service.search_for(None))
    return recited(search.index, search.index.word_of(surah, ayah, word), count)


def test_a_whole_ayah_is_located_sure_and_assessed_as_that_ayah(service: LocateService) -> None:
    location = _locate(service, _recitation(service, 112, 2, 0, 2))
    assert location.target == common_pb2.Target(ayah=common_pb2.AyahTarget(surah=112, ayah=2))
    assert location.decision.sure and location.located.sure
    assert not location.located.candidates
    assert location.located.passage.surah == 112 and location.located.passage.end_word == 2
    assert list(location.located.surahs) == list(SURAHS)


def test_consecutive_ayahs_become_an_ayah_range(service: LocateService) -> None:
    search, _ = asyncio.run(service.search_for(None))
    words = search.index.word_of(114, 4) - search.index.word_of(114, 1)
    location = _locate(service, _recitation(service, 114, 1, 0, words))
    assert location.target.WhichOneof("kind") == "ayah_range"
    assert (location.target.ayah_range.first_ayah, location.target.ayah_range.last_ayah) == (1, 3)
    assert location.located.sure


def test_a_span_inside_an_ayah_becomes_the_imlaey_words_it_covers(service: LocateService) -> None:
    # 109:1 قُلْ يَـٰٓأَيُّهَا ٱلْكَـٰفِرُونَ: its second Uthmani word is two imlaey words (يَا أَيُّهَا).
    target = span_target(WordPlace(109, 1, 1), WordPlace(109, 2, 0))
    assert target.WhichOneof("kind") == "words"
    spec = targets.target_from_proto(target)
    reference = builder.build_reference(spec, moshaf_mod.default_values())
    assert reference.uthmani == uthmani_between(WordPlace(109, 1, 1), WordPlace(109, 2, 0))
    assert [(w.surah, w.ayah, w.word_in_ayah) for w in reference.words] == [(109, 1, 1), (109, 1, 2), (109, 2, 0)]


def test_noisy_decodes_of_random_ayahs_are_located(service: LocateService) -> None:
    search, _ = asyncio.run(service.search_for(None))
    rng = random.Random(25)
    noise = NoiseModel(0.08)
    short = [(s, a) for s in range(103, 115) for a in range(1, 4)]
    right = 0
    for surah, ayah in rng.sample(short, 12):
        first = search.index.word_of(surah, ayah)
        row = int(search.index.word_ayah[first])
        words = int(search.index.ayah_first_word[row + 1]) - first
        location = _locate(service, noise.apply(recited(search.index, first, words), rng))
        passage = location.located.passage
        right += (passage.surah, passage.ayah, passage.start_word) == (surah, ayah, 0)
    assert right >= 11


def test_the_refrain_is_ambiguous_not_sure_and_lists_the_other_places(service: LocateService) -> None:
    location = _locate(service, _recitation(service, 55, 13, 0, 4))
    located = location.located
    assert not located.sure and located.ambiguous
    # The first of the identical ayahs in mushaf order is the one assessed; the others are named.
    assert (located.passage.surah, located.passage.ayah) == (55, 13)
    assert location.target == common_pb2.Target(ayah=common_pb2.AyahTarget(surah=55, ayah=13))
    assert {(c.surah, c.ayah) for c in located.candidates} <= {(55, a) for a in range(14, 78)}
    assert len(located.candidates) >= 5


def test_a_small_margin_is_not_sure_and_keeps_the_runners_up(service: LocateService) -> None:
    search, _ = asyncio.run(service.search_for(None))
    result = search.search(_recitation(service, 112, 1, 0, 3))
    assert result.best is not None and len(result.candidates) > 1
    doubtful = LocateResult(result.candidates, result.candidates[:1], 0.01, result.query)
    decision = decide(doubtful, sure_margin=0.05)
    assert decision is not None and not decision.sure and not decision.ambiguous
    assert decision.span == result.best and decision.candidates == result.candidates[1:9]
    # The same result with its real margin is sure, and then lists nothing else.
    sure = decide(result, sure_margin=0.05)
    assert sure is not None and sure.sure and sure.candidates == ()


def test_a_decode_that_reads_like_nothing_is_refused(service: LocateService) -> None:
    with pytest.raises(InvalidArgument, match="no passage"):
        _locate(service, "")


def test_the_index_is_kept_in_the_store_and_reused(store: MemoryStore, service: LocateService) -> None:
    asyncio.run(service.search_for(None))
    # A second gateway over the same store reads the index instead of building it.
    other = LocateService(store, CONFIG)
    _, index_ms = asyncio.run(other.search_for(None))
    assert index_ms < 1500
    assert asyncio.run(other._cache.get(None, surahs=SURAHS)).cache_hit


def test_surah_lists_parse() -> None:
    assert parse_surahs("") is None
    assert parse_surahs("90-92,1") == (1, 90, 91, 92)
    assert parse_surahs("1-114") is None


def test_uthmani_words_of_several_imlaey_words_map_to_their_first() -> None:
    from services.gateway.follow.stretch import imlaey_index

    # قُلْ يَـٰٓأَيُّهَا ٱلْكَـٰفِرُونَ: يَا أَيُّهَا is one Uthmani word after the first.
    assert [imlaey_index(109, 1, u) for u in range(4)] == [0, 1, 3, 4]
    # 20:94 قَالَ يَبْنَؤُمَّ ...: يَا ابْنَ أُمَّ is one Uthmani word.
    assert [imlaey_index(20, 94, u) for u in range(3)] == [0, 1, 4]


def test_a_live_search_is_sure_only_of_enough_words_and_never_of_a_prelude_alone(service: LocateService) -> None:
    two = _recitation(service, 112, 1, 0, 2)
    assert _locate(service, two).decision.sure
    early = asyncio.run(service.locate(two, None, min_words=3))
    assert not early.decision.sure and not early.located.sure
    assert asyncio.run(service.locate(_recitation(service, 112, 1, 0, 3), None, min_words=3)).decision.sure
    basmala = _recitation(service, 1, 1, 0, 4)
    alone = asyncio.run(service.locate(basmala, None, min_words=3))
    assert not alone.decision.sure and alone.located.candidates
