"""What the text allows (bench/locate_live.py): how many words of a start's own text the search
needs before live mode may be sure of it."""

from __future__ import annotations

import pytest

from bench.locate_live import words_needed
from services.locate.build import build_index
from services.locate.search import PassageSearch


@pytest.fixture(scope="module")
def search() -> PassageSearch:
    return PassageSearch(build_index(surahs=(55, *range(108, 115)), workers=1))


def test_a_start_found_nowhere_else_needs_the_fewest_words_a_sure_answer_has(search: PassageSearch) -> None:
    assert words_needed(search, [(112, 1, 0, "", 0.0)] * 4) == 3


def test_a_recitation_shorter_than_a_sure_answer_never_allows_one(search: PassageSearch) -> None:
    # Two words are fewer than a sure answer has, whatever they are.
    assert words_needed(search, [(108, 3, 0, "", 0.0)] * 2) is None


def test_the_refrain_is_told_apart_only_by_the_ayah_after_it(search: PassageSearch) -> None:
    # 55:13 is five words, recited 31 times in the surah: the sixth word (55:14's first) decides.
    assert words_needed(search, [(55, 13, 0, "", 0.0)] * 8) == 6
    # 109:3 and 109:5 are the same five words; the ayahs after them differ from their first word.
    assert words_needed(search, [(109, 3, 0, "", 0.0)] * 8) == 6
