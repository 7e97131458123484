"""What a reciter says before the passage: the isti'adha, then the basmala.

Reciters open with the isti'adha and, at the start of a surah (all but At-Tawbah), the basmala.
Neither is part of the ayahs the index holds for surahs 2-114 (the Tanzil text numbers the
basmala as an ayah of Al-Fatiha only), so a decode that opens with one would be placed with its
prelude matched against whatever precedes the passage in the mushaf: the end of the surah before.
The search therefore also tries the decode without a prelude it opens with, and keeps that
reading when it places the rest clearly better (search.py).

The texts are the Quran's own words (Tanzil, verbatim): the basmala of 1:1, and the isti'adha
as أَعُوذُ (2:67) followed by بِٱللَّهِ مِنَ ٱلشَّيْطَـٰنِ ٱلرَّجِيمِ (16:98), phonetized with the
index's MoshafAttributes and collapsed like every query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quran_transcript import alphabet
from rapidfuzz.distance import Levenshtein

from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.locate import script
from services.locate.phonetize import phonetize

_SPACE = alphabet.uthmani.space
# Similarity (0..1) of a decode's opening to a prelude for the search to try the decode without
# it (a false start costs one more search: the reading without the prelude must still place the
# passage clearly better to be kept).
MIN_SIMILARITY = 0.65
# Symbols of one prelude that the search of the next may skip (the cut between them is fuzzy).
MAX_SKIP = 3


@dataclass(frozen=True)
class Prelude:
    name: str
    # In the search's collapsed script.
    collapsed: str


def _collapsed(phonemes: str) -> str:
    ids = script.to_ids(phonemes)
    return script.from_ids(ids[script.run_starts(ids)])


def istiadha_text() -> str:
    """The isti'adha in the Quran's own Uthmani spelling."""
    audhu = next(word for word in quran.ayah_text(2, 67).uthmani_words if "عُوذ" in word)
    return _SPACE.join([audhu, *quran.ayah_text(16, 98).uthmani_words[4:8]])


def preludes(moshaf_values: dict[str, Any]) -> tuple[Prelude, ...]:
    """The isti'adha and the basmala, in the order they are said, read with a stop at the end
    (said on into the passage, the last vowel differs: one edit of the similarity)."""
    moshaf = moshaf_mod.to_model(moshaf_values)
    return (
        Prelude("isti'adha", _collapsed(phonetize(istiadha_text(), moshaf, 0)[0])),
        Prelude("basmala", _collapsed(phonetize(quran.ayah_text(1, 1).uthmani, moshaf, 1)[0])),
    )


def _opening(query: str, prelude: str, max_skip: int) -> tuple[float, int]:
    """(similarity, symbols taken) of the opening of `query` most like `prelude`, after skipping
    up to max_skip symbols (what an earlier prelude left). Of equally similar openings, the
    shortest: a passage symbol taken into the prelude makes the passage look as if it started a
    word later, a prelude symbol left to the passage costs every start the same."""
    slack = max(2, len(prelude) // 6)
    scored = [
        (float(Levenshtein.normalized_similarity(prelude, query[skip : skip + n])), skip + n)
        for skip in range(min(max_skip, len(query)) + 1)
        for n in range(max(1, len(prelude) - slack), min(len(query) - skip, len(prelude) + slack) + 1)
    ]
    if not scored:
        return 0.0, 0
    best = max(similarity for similarity, _ in scored)
    return min(((s, n) for s, n in scored if s == best), key=lambda item: item[1])


def strip(query: str, known: tuple[Prelude, ...]) -> tuple[tuple[str, ...], int]:
    """The preludes a collapsed query opens with, in order, and how many of its symbols they take.
    Each is looked for where the one before it ended, give or take a few symbols."""
    names: list[str] = []
    at = 0
    for prelude in known:
        similarity, taken = _opening(query[at:], prelude.collapsed, MAX_SKIP if names else 0)
        if similarity >= MIN_SIMILARITY:
            names.append(prelude.name)
            at += taken
    return tuple(names), at


def only_preludes(query: str, known: tuple[Prelude, ...], gram: int) -> bool:
    """Whether a collapsed query is nothing but the preludes it opens with, the last of them
    perhaps not finished: what is left after the whole ones is too short to place (under `gram`
    symbols), or reads like the opening of the next prelude (a recitation heard a second or two
    in, while the isti'adha is being said, would otherwise be placed at أَعُوذُ بِرَبِّ of 113:1)."""
    names, cut = strip(query, known)
    rest = query[cut:]
    if len(rest) < gram:
        return bool(names) or bool(rest)
    for prelude in known:
        if prelude.name in names or len(rest) > len(prelude.collapsed):
            continue
        opening = prelude.collapsed[: len(rest)]
        if Levenshtein.normalized_similarity(rest, opening) >= MIN_SIMILARITY:
            return True
    return False
