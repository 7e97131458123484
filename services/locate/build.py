"""Building the passage index: every ayah phonetized as the reference builder does, over a
process pool.

The phonetizer is pure Python (about 40 s for the whole Quran on one core with the sifat; without
them, phonetize.py, about 60 % of that), so threads would not help; processes do. Ayahs go out
longest first (their cost grows faster than their length: 2:282 alone takes ~0.2 s) so that no
worker is left with a long tail, and come back in mushaf order.
Workers are spawned, not forked: the caller may be a server with threads and an event loop, which
a fork would copy half-way through whatever they were doing. (A spawned worker imports the
caller's main module, so that module must keep its work under `if __name__ == "__main__"`.)
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from quran_transcript import MoshafAttributes, alphabet

from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.locate.index import PassageIndex
from services.locate.phonetize import phonetize

# (phonemes, word starts, word ends, word opens with hamzat al-wasl), the starts and ends
# relative to the ayah's phonemes.
AyahPhonemes = tuple[str, list[int], list[int], list[bool]]
_WASL = "\u0671"  # ٱ

_SPACE = alphabet.uthmani.space
DEFAULT_WORKERS = 2


def phonetize_ayah(surah: int, ayah: int, moshaf: MoshafAttributes) -> AyahPhonemes:
    """One ayah's phonemes and word spans as the reference cache builds them (its last word read
    with a stop)."""
    text = quran.ayah_text(surah, ayah).uthmani
    phonemes, starts, ends = phonetize(text, moshaf, surah)
    return phonemes, starts, ends, [word.startswith(_WASL) for word in text.split(_SPACE)]


def _phonetize_many(places: Sequence[tuple[int, int]], moshaf_values: dict[str, Any]) -> list[AyahPhonemes]:
    moshaf = moshaf_mod.to_model(moshaf_values)
    return [phonetize_ayah(s, a, moshaf) for s, a in places]


def ayah_places(surahs: Iterable[int] | None = None) -> list[tuple[int, int]]:
    """(surah, ayah) of every ayah of `surahs` (all 114 when None), in mushaf order."""
    chosen = range(1, quran.SURAH_COUNT + 1) if surahs is None else sorted(set(surahs))
    places: list[tuple[int, int]] = []
    for surah in chosen:
        if not 1 <= surah <= quran.SURAH_COUNT:
            raise ValueError(f"surah {surah} does not exist")
        places.extend((surah, ayah) for ayah in range(1, quran.ayah_count(surah) + 1))
    return places


def build_index(
    moshaf_values: dict[str, Any] | None = None,
    *,
    surahs: Iterable[int] | None = None,
    workers: int = DEFAULT_WORKERS,
) -> PassageIndex:
    """The index of `surahs` (the whole mushaf when None) for validated MoshafAttributes values
    (`moshaf.to_dict`; the defaults when None). workers <= 1 phonetizes in this process."""
    values = dict(moshaf_values) if moshaf_values is not None else moshaf_mod.default_values()
    places = ayah_places(surahs)
    results = _phonetize_all(places, values, workers)
    return assemble(places, results, values, quran.phonetizer_version())


def _phonetize_all(places: list[tuple[int, int]], values: dict[str, Any], workers: int) -> list[AyahPhonemes]:
    workers = max(1, min(workers, os.cpu_count() or 1, len(places)))
    if workers == 1:
        return _phonetize_many(places, values)
    # Longest first, dealt in batches small enough to balance and large enough that the
    # per-task pickling does not show; the text length is a good enough proxy of the cost.
    by_cost = sorted(range(len(places)), key=lambda i: -len(quran.ayah_text(*places[i]).uthmani))
    batch = 16
    batches = [by_cost[i : i + batch] for i in range(0, len(by_cost), batch)]
    results: list[AyahPhonemes | None] = [None] * len(places)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [(b, pool.submit(_phonetize_many, [places[i] for i in b], values)) for b in batches]
        for members, future in futures:
            for i, result in zip(members, future.result(), strict=True):
                results[i] = result
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def assemble(
    places: Sequence[tuple[int, int]],
    results: Sequence[AyahPhonemes],
    moshaf_values: dict[str, Any],
    phonetizer_version: str,
) -> PassageIndex:
    """The index from per-ayah phonemes and word spans (ayah-relative), in the order of `places`."""
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    wasl: list[bool] = []
    first_word = [0]
    offset = 0
    for phonemes, word_starts, word_ends, word_wasl in results:
        # Builder spans are min/max over the characters' mappings; a word the phonetizer merged
        # into its neighbour can start before the previous one does. Starts are kept monotone so
        # that a phoneme position maps to one word by bisection.
        previous = 0
        for mapped_start, end in zip(word_starts, word_ends, strict=True):
            start = max(mapped_start, previous)
            previous = start
            starts.append(offset + start)
            ends.append(offset + max(end, start))
        wasl.extend(word_wasl)
        parts.append(phonemes)
        offset += len(phonemes)
        first_word.append(len(starts))
    return PassageIndex(
        phonetizer_version=phonetizer_version,
        moshaf=dict(moshaf_values),
        phonemes="".join(parts),
        ayah_surah=np.array([s for s, _ in places], dtype=np.int32),
        ayah_number=np.array([a for _, a in places], dtype=np.int32),
        ayah_first_word=np.array(first_word, dtype=np.int32),
        word_start=np.array(starts, dtype=np.int32),
        word_end=np.array(ends, dtype=np.int32),
        word_wasl=np.array(wasl, dtype=bool),
    )
