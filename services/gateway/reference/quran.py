"""The Quran text as quran-transcript bundles it, loaded once per process.

quran-transcript's `Aya` parses its 3 MB JSON on every construction unless it is handed the
parsed dict; sharing one dict makes a reference build cost the phonetizer's time alone.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from importlib.resources import files
from typing import Any

from quran_transcript import Aya

SURAH_COUNT = 114
_lock = threading.Lock()


@cache
def quran_dict() -> dict[str, Any]:
    path = files("quran_transcript") / "quran-script" / "quran-uthmani-imlaey.json"
    with _lock:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def phonetizer_version() -> str:
    return version("quran-transcript")


def aya(surah: int, ayah: int) -> Aya:
    """An Aya cursor without re-reading the JSON. Indices must be valid (see ayah_count)."""
    return Aya(surah, ayah, quran_dict=quran_dict())


@dataclass(frozen=True)
class AyahText:
    surah: int
    ayah: int
    uthmani: str
    uthmani_words: tuple[str, ...]
    imlaey_words: tuple[str, ...]


@cache
def ayah_count(surah: int) -> int:
    return int(aya(surah, 1).get().num_ayat_in_sura)


@cache
def ayah_text(surah: int, ayah: int) -> AyahText:
    formatted = aya(surah, ayah).get()
    return AyahText(
        surah=surah,
        ayah=ayah,
        uthmani=formatted.uthmani,
        uthmani_words=tuple(formatted.uthmani_words),
        imlaey_words=tuple(formatted.imlaey_words),
    )


def next_ayah(surah: int, ayah: int) -> tuple[int, int] | None:
    """The ayah after (surah, ayah); None after the last ayah of the Quran."""
    if ayah < ayah_count(surah):
        return surah, ayah + 1
    if surah < SURAH_COUNT:
        return surah + 1, 1
    return None


def uthmani_between(first: tuple[int, int, int], last: tuple[int, int, int]) -> str:
    """The Uthmani words from `first` to `last` (surah, ayah, 0-based word; both included),
    across ayahs in mushaf order."""
    surah, ayah, word = first
    words: list[str] = []
    while True:
        ayah_words = ayah_text(surah, ayah).uthmani_words
        if (surah, ayah) == last[:2]:
            words.extend(ayah_words[word : last[2] + 1])
            return " ".join(words)
        words.extend(ayah_words[word:])
        following = next_ayah(surah, ayah)
        if following is None:
            return " ".join(words)
        (surah, ayah), word = following, 0


def total_ayahs() -> int:
    return sum(ayah_count(s) for s in range(1, SURAH_COUNT + 1))
