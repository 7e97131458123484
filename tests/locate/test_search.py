"""The search over a small index: an exact brute-force oracle on noiseless queries, spans across
ayahs and from inside one, identical ayahs reported as ties, and noisy decodes."""

from __future__ import annotations

import itertools
import random

import pytest

from services.locate.evaluation import NoiseModel, is_right, recited, recited_prelude, sample_queries
from services.locate.index import PassageIndex, WordPlace
from services.locate.search import HEAD, PassageSearch

# Every ayah of Ar-Rahman that is the refrain فَبِأَىِّ ءَالَآءِ رَبِّكُمَا تُكَذِّبَانِ.
REFRAIN = (
    13,
    16,
    18,
    21,
    23,
    25,
    28,
    30,
    32,
    34,
    36,
    38,
    40,
    42,
    45,
    47,
    49,
    51,
    53,
    55,
    57,
    59,
    61,
    63,
    65,
    67,
    69,
    71,
    73,
    75,
    77,
)
WASL_OPENINGS = ("ءَ", "ءُ", "ءِ")
# أَعُوذُ بِٱللَّهِ مِنَ ٱلشَّيْطَـٰنِ ٱلرَّجِيمِ as quran-transcript phonetizes it (default moshaf), with a stop.
ISTIADHA = "ءَعُۥۥذُبِللَااهِمِنَششَيطَاانِررَجِۦۦۦۦم"


def _collapse(text: str) -> str:
    return "".join(symbol for symbol, _ in itertools.groupby(text))


def _exact_starts(index: PassageIndex, query: str, max_words: int) -> set[int]:
    """Brute force: every word w from which some run of whole words reads exactly as the query,
    up to the lengths of held sounds (the search's script), a word opening with hamzat al-wasl
    also as read from a stop."""
    wanted = _collapse(query)
    starts = set()
    for w in range(index.word_count):
        for e in range(w + 1, min(index.word_count, w + max_words) + 1):
            text = _collapse(index.phonemes[index.word_start[w] : index.word_end[e - 1]])
            readings = [text]
            if index.word_wasl[w] and not text.startswith("ء"):
                readings += [_collapse(opening + text) for opening in WASL_OPENINGS]
            if wanted in readings:
                starts.add(w)
    return starts


@pytest.mark.parametrize("words", [2, 3, 5])
def test_noiseless_queries_find_exactly_what_a_brute_force_search_finds(
    small_index: PassageIndex, small_search: PassageSearch, words: int
) -> None:
    rng = random.Random(words)
    for _ in range(12):
        first = rng.randrange(small_index.word_count - words)
        query = small_index.span_phonemes(first, first + words)
        result = small_search.search(query)
        expected = _exact_starts(small_index, query, words + 1)
        assert first in expected
        assert result.tied[0].score == 1.0
        assert {span.first_word for span in result.tied} == expected, small_index.place(first)
        assert result.best is not None and result.best.first_word == min(expected)


def test_a_recitation_over_several_ayahs_is_one_span(small_index: PassageIndex, small_search: PassageSearch) -> None:
    first = small_index.word_of(113, 1)
    everything = small_index.word_of(114, 1) - first  # the whole of Al-Falaq, 5 ayahs
    result = small_search.search(recited(small_index, first, everything))
    assert result.best is not None
    assert (result.best.start, result.best.last) == (WordPlace(113, 1, 0), WordPlace(113, 5, 4))
    assert result.best.score > 0.95 and not result.ambiguous

    # From inside 112:3 into 112:4, four words.
    first = small_index.word_of(112, 3, 2)
    result = small_search.search(recited(small_index, first, 4))
    assert result.best is not None
    assert (result.best.start, result.best.last) == (WordPlace(112, 3, 2), WordPlace(112, 4, 1))


def test_a_long_noisy_decode_is_placed_by_its_head_and_spans_all_of_it(
    small_index: PassageIndex, small_search: PassageSearch
) -> None:
    # From inside 27:16 to the end of 27:19, 10 % of the phonemes edited: far longer than the
    # head the search places it by (search.HEAD).
    first, end = small_index.word_of(27, 16, 3), small_index.word_of(27, 20)
    decoded = NoiseModel(0.1).apply(recited(small_index, first, end - first), random.Random(5))
    assert len(decoded) > 4 * HEAD
    result = small_search.search(decoded)
    assert result.best is not None
    assert (result.best.start, result.best.last) == (WordPlace(27, 16, 3), small_index.place(end - 1))
    assert 0.8 < result.best.score < 0.95 and result.margin > 0.3


def test_a_start_inside_an_ayah_on_hamzat_al_wasl(small_index: PassageIndex, small_search: PassageSearch) -> None:
    # 27:16 ... عُلِّمْنَا مَنطِقَ ٱلطَّيْرِ ... : read from ٱلطَّيْرِ the query opens with a hamza the
    # index's connected reading does not have.
    first = small_index.word_of(27, 16, 8)
    assert small_index.word_wasl[first]
    query = recited(small_index, first, 4)
    assert query.startswith("ءَ") and not small_index.span_phonemes(first, first + 4).startswith("ء")
    result = small_search.search(query)
    assert result.best is not None and result.best.start == WordPlace(27, 16, 8)
    # Read as from a stop (the hamza) and to a stop (كُلّ where the index reads on into كُلِّ).
    assert result.best.score == 1.0
    assert result.margin > 0.2


def test_a_stop_inside_an_ayah_reads_as_the_connected_words(
    small_index: PassageIndex, small_search: PassageSearch
) -> None:
    # 27:16 وَوَرِثَ سُلَيْمَـٰنُ دَاوُۥدَ وَقَالَ: the decode stops on وَقَال, the index reads on (وَقَالَ).
    first = small_index.word_of(27, 16)
    query = recited(small_index, first, 4)
    # (and lengthens the alif before it: a madd 'arid of 4)
    assert query.endswith("قَاااال") and small_index.span_phonemes(first, first + 4).endswith("قَاالَ")
    result = small_search.search(query)
    assert result.best is not None and result.best.score == 1.0
    assert (result.best.start, result.best.last) == (WordPlace(27, 16, 0), WordPlace(27, 16, 3))


def test_the_refrain_of_ar_rahman_is_reported_as_ties(small_index: PassageIndex, small_search: PassageSearch) -> None:
    query = recited(small_index, small_index.word_of(55, 13), 4)
    for noise in (0.0, 0.1):
        result = small_search.search(NoiseModel(noise).apply(query, random.Random(3)))
        assert result.ambiguous
        assert sorted(span.start.ayah for span in result.tied) == list(REFRAIN)
        assert all(span.start.word == 0 and span.last.word == 3 for span in result.tied)
        # The tie is complete, and whatever comes next is another text, clearly behind.
        assert len(result.candidates) >= len(REFRAIN)
        assert result.margin > 0.15


def test_the_basmala_is_reported_as_ties(small_index: PassageIndex, small_search: PassageSearch) -> None:
    result = small_search.search(recited(small_index, small_index.word_of(1, 1), 4))
    assert [span.start for span in result.tied] == [WordPlace(1, 1, 0), WordPlace(27, 30, 4)]
    assert result.tied[0].score == 1.0 and result.margin > 0.2
    # With the next words the tie is broken.
    result = small_search.search(recited(small_index, small_index.word_of(1, 1), 6))
    assert not result.ambiguous and result.best is not None and result.best.start == WordPlace(1, 1, 0)


BASMALA = (1, 1)


@pytest.mark.parametrize(
    ("opening", "expected"),
    [((BASMALA,), ("basmala",)), (("isti'adha", BASMALA), ("isti'adha", "basmala")), (("isti'adha",), ("isti'adha",))],
)
@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_an_opening_isti_adha_or_basmala_is_set_aside(
    small_index: PassageIndex,
    small_search: PassageSearch,
    opening: tuple[object, ...],
    expected: tuple[str, ...],
    noise: float,
) -> None:
    said = "".join(
        ISTIADHA if part == "isti'adha" else recited(small_index, small_index.word_of(1, 1), 4) for part in opening
    )
    assert said == recited_prelude(small_index.moshaf, expected)
    for seed, surah in enumerate((103, 108, 112, 113, 114)):
        first = small_index.word_of(surah, 1)
        passage = recited(small_index, first, 4)
        result = small_search.search(NoiseModel(noise).apply(said + passage, random.Random(seed)))
        assert result.prelude == expected, surah
        assert result.best is not None and result.best.start == WordPlace(surah, 1, 0), surah
        if noise == 0.0:
            assert result.prelude_phonemes == len(said)


def test_al_fatiha_keeps_its_basmala_and_27_30_its_own(small_index: PassageIndex, small_search: PassageSearch) -> None:
    result = small_search.search(recited(small_index, small_index.word_of(1, 1), 8))
    assert result.prelude == () and result.best is not None and result.best.start == WordPlace(1, 1, 0)
    result = small_search.search(recited(small_index, small_index.word_of(27, 30, 4), 6))
    assert result.prelude == () and result.best is not None and result.best.start == WordPlace(27, 30, 4)
    # A passage that merely starts like the basmala (27:30 from its first word) is not cut.
    result = small_search.search(recited(small_index, small_index.word_of(27, 30), 6))
    assert result.prelude == () and result.best is not None and result.best.start == WordPlace(27, 30, 0)


def test_noisy_decodes_are_located(small_index: PassageIndex, small_search: PassageSearch) -> None:
    queries = sample_queries(small_index, random.Random(11), 120, 4)
    rng = random.Random(12)
    for rate, floor in ((0.0, 0.99), (0.05, 0.96), (0.10, 0.93)):
        right = sum(
            is_right(small_search, small_search.search(NoiseModel(rate).apply(q.phonemes, rng)), q) for q in queries
        )
        assert right / len(queries) >= floor, (rate, right)


def test_short_foreign_or_empty_queries_give_no_span(small_search: PassageSearch) -> None:
    assert small_search.search("").candidates == ()
    assert small_search.search("بِس").candidates == ()
    assert small_search.search("abc def").best is None
    # Spaces and symbols outside the vocabulary are ignored.
    with_spaces = small_search.search("قُل هُوَ للَااهُ ءَحَد")
    assert with_spaces.best is not None and with_spaces.best.start == WordPlace(112, 1, 0)


def test_the_noise_model_is_seeded_and_edits_about_its_rate() -> None:
    text = "قُلهُوَللَااهُءَحَدءَللَااهُصصَمَدلَميَلِدوَلَميُۥۥلَد" * 20
    assert NoiseModel(0.0).apply(text, random.Random(1)) == text
    one = NoiseModel(0.1).apply(text, random.Random(1))
    assert one == NoiseModel(0.1).apply(text, random.Random(1))
    from rapidfuzz.distance import Levenshtein

    edits = Levenshtein.distance(NoiseModel(0.1, madd_jitter=0).apply(text, random.Random(2)), text)
    assert 0.06 * len(text) < edits < 0.12 * len(text)


def test_an_isti_adha_or_basmala_heard_so_far_is_only_a_prelude(
    small_index: PassageIndex, small_search: PassageSearch
) -> None:
    basmala = recited(small_index, small_index.word_of(1, 1), 4)
    passage = recited(small_index, small_index.word_of(112, 1), 3)
    # A live session hears the isti'adha a second at a time: every opening of it is no passage
    # yet (its first words would otherwise place at أَعُوذُ بِرَبِّ of 113:1 and 114:1).
    for cut in range(8, len(ISTIADHA) + 1, 4):
        assert small_search.prelude_only(ISTIADHA[:cut]), ISTIADHA[:cut]
    assert small_search.prelude_only(basmala) and small_search.prelude_only(ISTIADHA + basmala[:10])
    # Words of a passage after it are a passage, and so is a passage from its start.
    assert not small_search.prelude_only(ISTIADHA + basmala + passage)
    assert not small_search.prelude_only(basmala + passage)
    assert not small_search.prelude_only(passage)
    assert not small_search.prelude_only(recited(small_index, small_index.word_of(113, 1), 3))
