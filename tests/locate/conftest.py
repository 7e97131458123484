"""A small passage index for the unit tests: a few surahs, built in this process (~2 s).

Al-Fatiha and An-Naml carry the basmala twice (1:1, and inside 27:30); Ar-Rahman its refrain
(31 identical ayahs); 103-114 short ayahs, some of them near-identical openings."""

from __future__ import annotations

import pytest

from services.locate.build import build_index
from services.locate.index import PassageIndex
from services.locate.search import PassageSearch

SMALL_SURAHS = (1, 27, 55, *range(103, 115))


@pytest.fixture(scope="session")
def small_index() -> PassageIndex:
    return build_index(surahs=SMALL_SURAHS, workers=1)


@pytest.fixture(scope="session")
def small_search(small_index: PassageIndex) -> PassageSearch:
    return PassageSearch(small_index)
