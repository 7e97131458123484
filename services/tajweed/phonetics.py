"""The phonetic script's symbol classes, and the phonetizer's character mappings of a reference.

The Reference proto carries phonemes, groups, words and rules but not quran-transcript's
per-character mappings, which explain_error needs and which locate a phoneme group in the
Uthmani text to the character. They are rebuilt here by phonetizing the reference's own
Uthmani text with its own MoshafAttributes (the same call the gateway's builder makes),
checked against the reference's phonemes, and kept in a small LRU: a few milliseconds for
an ayah, ~0.2 s for the longest (2:282), once per distinct reference per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from quran_transcript import MoshafAttributes, alphabet, quran_phonetizer
from quran_transcript.phonetics.conv_base_operation import MappingListType

from services.common.errors import InvalidArgument
from services.tajweed.model import Group, Reference

PH = alphabet.phonetics
UTH = alphabet.uthmani

HARAKAT = frozenset(alphabet.phonetic_groups.harakat)
MADD_SYMBOLS = frozenset({PH.alif, PH.yaa_madd, PH.waw_madd, PH.alif_momala})
NASAL_CORES = frozenset(alphabet.phonetic_groups.ghonna)  # ن م ں ۾
# Noon merged into yaa or waw keeps its ghunnah on the (tripled) yaa or waw.
IDGHAM_GHUNNAH_CORES = frozenset({PH.yaa, PH.waw})
QALQALAH_MARK = PH.qlqla
ALPHABET = frozenset(vars(PH).values())
CONSONANTS = frozenset(alphabet.phonetic_groups.core) - MADD_SYMBOLS - {PH.noon_mokhfah, PH.meem_mokhfah}
# Hidden (ikhfa/iqlab) nasals and the clear letters an izhar would give instead.
HIDDEN_TO_CLEAR = {PH.noon_mokhfah: PH.noon, PH.meem_mokhfah: PH.meem}
# The script shows a ghunnah as a run of 3 (noon/meem with shadda: 4 with the voweled one).
GHUNNAH_RUN = 3

# Madd tag -> the symbol repeated in the script.
MADD_TAG_SYMBOL = {"alif": PH.alif, "yaa": PH.yaa_madd, "waw": PH.waw_madd}
LEEN_TAG_SYMBOL = {"yaa": PH.yaa, "waw": PH.waw}

IQLAB_MARKS = frozenset({UTH.meem_iqlab})
TANWEEN_FATH = frozenset({UTH.tanween_fath})
SILAH_MARKS = frozenset({UTH.small_waw, UTH.small_yaa_sila})


def is_voweled(group: Group) -> bool:
    return group.mark in HARAKAT


def is_madd_group(group: Group) -> bool:
    return group.core in MADD_SYMBOLS


def is_ghunnah_group(group: Group) -> bool:
    """A run of a nasal (or of yaa/waw after a merged noon) long enough to carry a ghunnah."""
    return group.count >= GHUNNAH_RUN and (group.core in NASAL_CORES or group.core in IDGHAM_GHUNNAH_CORES)


def is_cv_group(group: Group) -> bool:
    """A single consonant with a short vowel: one haraka's worth of speech."""
    return group.count == 1 and group.core in CONSONANTS and is_voweled(group)


def is_single_consonant(group: Group) -> bool:
    """A single unvoweled consonant (sakin), excluding yaa/waw that may be a leen vowel."""
    return group.count == 1 and not group.mark and group.core in CONSONANTS - IDGHAM_GHUNNAH_CORES


@dataclass(frozen=True)
class PhoneticIndex:
    """quran-transcript's mappings of a reference and the phoneme -> Uthmani character map."""

    phonemes: str
    mappings: MappingListType
    phoneme_to_char: tuple[int, ...]

    def text_span(self, phoneme_start: int, phoneme_end: int) -> tuple[int, int]:
        """The Uthmani characters a phoneme range was produced from; zero-width for an empty range."""
        if phoneme_end <= phoneme_start:
            anchor = self.phoneme_to_char[min(phoneme_start, len(self.phoneme_to_char) - 1)]
            return anchor, anchor
        chars = self.phoneme_to_char[phoneme_start:phoneme_end]
        return min(chars), max(chars) + 1

    def chars_of(self, phoneme_start: int, phoneme_end: int) -> set[int]:
        return set(self.phoneme_to_char[phoneme_start:phoneme_end])


def moshaf_model(values: dict[str, Any]) -> MoshafAttributes:
    try:
        return MoshafAttributes(**values)
    except ValueError as exc:
        raise InvalidArgument(f"reference.moshaf is not a valid MoshafAttributes: {exc}") from exc


def phonetic_index(reference: Reference) -> PhoneticIndex:
    """The phonetizer's mappings for the reference, rebuilt once and cached."""
    index = _index(reference.uthmani, reference.surah, tuple(sorted(reference.moshaf.items())))
    if index.phonemes != reference.phonemes:
        raise InvalidArgument(
            "reference.phonemes differ from quran-transcript's phonetization of reference.uthmani with "
            f"reference.moshaf (installed {installed_version()}, reference built by "
            f"{reference.phonetizer_version or 'an unknown version'}): rebuild the reference"
        )
    return index


@lru_cache(maxsize=256)
def _index(uthmani: str, surah: int, moshaf: tuple[tuple[str, Any], ...]) -> PhoneticIndex:
    output = quran_phonetizer(uthmani, moshaf_model(dict(moshaf)), remove_spaces=True, sura_idx=surah)
    owner = [-1] * len(output.phonemes)
    for char_index, mapping in enumerate(output.mappings):
        start, end = mapping.pos
        for p in range(start, end):
            owner[p] = char_index
    # A phoneme no character claims (not expected) takes its predecessor's character.
    for p in range(len(owner)):
        if owner[p] < 0:
            owner[p] = owner[p - 1] if p > 0 else 0
    return PhoneticIndex(phonemes=output.phonemes, mappings=output.mappings, phoneme_to_char=tuple(owner))


def installed_version() -> str:
    from importlib.metadata import version

    return version("quran-transcript")
