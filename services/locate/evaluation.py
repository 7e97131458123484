"""How well the search locates: recitation-like queries, a seeded decode-noise model, and the
rule that says whether a located span is right. Used by tests/locate and bench/locate.py; no
server imports it.

Queries are what a learner recites when starting at a word: the words phonetized on their own
(a hamzat al-wasl at the start is pronounced, the last word is read with a stop), one piece per
ayah with a stop at each ayah end (reciters stop at most ayah ends), so they differ from the
index's connected reading where a real recitation would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from quran_transcript import alphabet

from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.builder import phoneme_vocabulary
from services.locate.index import PassageIndex
from services.locate.phonetize import phonetize
from services.locate.prelude import istiadha_text
from services.locate.search import LocateResult, PassageSearch

_SPACE = alphabet.uthmani.space
_SYMBOLS = tuple(phoneme_vocabulary())
# Madd symbols: alif, yaa madd, waw madd (their counts are what varies most in a decode).
_MADD = frozenset("اۦۥ")
# Surahs whose ayahs are located from their first word; the other surahs' long ayahs from a word
# inside them (the acceptance sets).
SHORT_SURAHS = range(90, 115)
LONG_AYAH_WORDS = 12


@dataclass(frozen=True)
class NoiseModel:
    """A decode's errors: each phoneme is substituted, followed by an inserted phoneme, or
    deleted, each with probability rate / 3 (uniform over the vocabulary where a symbol is
    drawn), and each madd run's length moves by up to `madd_jitter` counts (never below one)."""

    rate: float
    madd_jitter: int = 2

    def apply(self, phonemes: str, rng: random.Random) -> str:
        if self.rate <= 0:
            return phonemes
        out: list[str] = []
        for symbol in _jitter_madd(phonemes, self.madd_jitter, rng):
            draw = rng.random()
            if draw < self.rate / 3:
                out.append(rng.choice([s for s in _SYMBOLS if s != symbol]))
            elif draw < 2 * self.rate / 3:
                out.extend((symbol, rng.choice(_SYMBOLS)))
            elif draw >= self.rate:
                out.append(symbol)
        return "".join(out)


def _jitter_madd(phonemes: str, jitter: int, rng: random.Random) -> str:
    if jitter <= 0:
        return phonemes
    out: list[str] = []
    i = 0
    while i < len(phonemes):
        j = i
        while j < len(phonemes) and phonemes[j] == phonemes[i]:
            j += 1
        run = j - i
        if phonemes[i] in _MADD:
            run = max(1, run + rng.randint(-jitter, jitter))
        out.append(phonemes[i] * run)
        i = j
    return "".join(out)


@dataclass(frozen=True)
class Query:
    first_word: int
    word_count: int
    # The words as a learner starting there would recite them, without decode noise.
    phonemes: str


def recited(index: PassageIndex, first_word: int, word_count: int) -> str:
    """Words first_word.. (word_count of them) recited from a start, stopping at each ayah end."""
    moshaf = moshaf_mod.to_model(index.moshaf)
    pieces: list[str] = []
    word = first_word
    end = min(first_word + word_count, index.word_count)
    while word < end:
        row = int(index.word_ayah[word])
        surah, ayah = int(index.ayah_surah[row]), int(index.ayah_number[row])
        ayah_first, ayah_end = int(index.ayah_first_word[row]), int(index.ayah_first_word[row + 1])
        stop = min(end, ayah_end)
        words = quran.ayah_text(surah, ayah).uthmani.split(_SPACE)[word - ayah_first : stop - ayah_first]
        pieces.append(phonetize(_SPACE.join(words), moshaf, surah)[0])
        word = stop
    return "".join(pieces)


def sample_queries(index: PassageIndex, rng: random.Random, count: int, word_count: int) -> list[Query]:
    """Half from the first word of random ayahs of surahs 90-114, half from a random word inside
    random long ayahs (>= LONG_AYAH_WORDS words) of the other surahs, as far as the index holds
    them (the other half takes all when the index has none of one kind)."""
    short_rows: list[int] = []
    long_rows: list[int] = []
    for row in range(index.ayah_count):
        words = int(index.ayah_first_word[row + 1] - index.ayah_first_word[row])
        if int(index.ayah_surah[row]) in SHORT_SURAHS:
            short_rows.append(row)
        elif words >= LONG_AYAH_WORDS:
            long_rows.append(row)
    queries: list[Query] = []
    for i in range(count):
        from_short = (i % 2 == 0 and short_rows) or not long_rows
        if from_short:
            first = int(index.ayah_first_word[rng.choice(short_rows)])
        else:
            row = rng.choice(long_rows)
            first = rng.randrange(int(index.ayah_first_word[row]) + 1, int(index.ayah_first_word[row + 1]))
        words = min(word_count, index.word_count - first)
        queries.append(Query(first, words, recited(index, first, words)))
    return queries


def sample_openings(index: PassageIndex, rng: random.Random, count: int, word_count: int) -> list[Query]:
    """Queries from the first word of random surahs (At-Tawbah aside: it has no basmala), for
    recitations said after a prelude."""
    openings = [
        int(index.ayah_first_word[row])
        for row in range(index.ayah_count)
        if int(index.ayah_number[row]) == 1 and int(index.ayah_surah[row]) not in (1, 9)
    ]
    queries = []
    for _ in range(count):
        first = rng.choice(openings)
        words = min(word_count, index.word_count - first)
        queries.append(Query(first, words, recited(index, first, words)))
    return queries


def recited_prelude(moshaf_values: dict[str, Any], names: tuple[str, ...]) -> str:
    """The isti'adha and/or the basmala as said before a passage, each with a stop."""
    moshaf = moshaf_mod.to_model(moshaf_values)
    texts = {"isti'adha": (istiadha_text(), 0), "basmala": (quran.ayah_text(1, 1).uthmani, 1)}
    return "".join(phonetize(texts[name][0], moshaf, texts[name][1])[0] for name in names)


def is_right(search: PassageSearch, result: LocateResult, query: Query) -> bool:
    """The best span starts at the query's first word, or at a place whose next words are the
    same words (the same collapsed phonemes: an identical-text alternative, which the search
    cannot and need not tell apart; it reports such places as tied)."""
    best = result.best
    if best is None:
        return False
    if best.first_word == query.first_word:
        return True
    end = best.first_word + query.word_count
    if end > search.index.word_count:
        return False
    return search.span_text(best.first_word, end) == search.span_text(
        query.first_word, query.first_word + query.word_count
    )
