"""Phonemes and word spans of an Uthmani text, the reference builder's way, without the sifat.

`quran_phonetizer` spends about 40 % of its time on the sifat (the raa tafkheem finder alone
~37 %), which the index does not need. This runs the same conversion steps in the same order
(the package's own OPERATION_ORDER and sub_with_mapping, as `quran_phonetizer` does) and maps
words back to phonemes as `services.gateway.reference.builder` does, so the index's phonemes
and word spans are the references' (tests/locate checks it against the builder).
"""

from __future__ import annotations

from quran_transcript import MoshafAttributes, alphabet
from quran_transcript.phonetics.conv_base_operation import sub_with_mapping
from quran_transcript.phonetics.operations import OPERATION_ORDER

from services.gateway.reference.builder import phoneme_vocabulary

_SPACE = alphabet.uthmani.space
_VOCAB = frozenset(phoneme_vocabulary())


class PhonetizeError(ValueError):
    """The phonetizer's output cannot be mapped back to the text's words."""


def phonetize(uthmani: str, moshaf: MoshafAttributes, surah: int = 0) -> tuple[str, list[int], list[int]]:
    """(phonemes without spaces, word starts, word ends): one span per word of `uthmani` split
    on the Uthmani space, as half-open offsets into the phonemes. The last word is read with a
    stop, as the phonetizer always reads it."""
    text, mappings = sub_with_mapping(r"\s+", _SPACE, uthmani)
    text, mappings = sub_with_mapping(r"(\s$|^\s)", r"", text, mappings=mappings)
    for operation in OPERATION_ORDER:
        text, mappings = operation.apply(text, moshaf, mappings, sura_idx=surah)
    phonemes, mappings = sub_with_mapping(_SPACE, r"", text, mappings=mappings)

    unknown = sorted(set(phonemes) - _VOCAB)
    if unknown:
        raise PhonetizeError(f"the phonetizer produced symbols outside the model vocabulary: {unknown}")
    if len(mappings) != len(uthmani):
        # The builder's own guard: quran-transcript 0.6.4 loses the mappings of some word ranges
        # (disjoint letters after other text); a single ayah never hits it.
        raise PhonetizeError("the phonetizer cannot map this text back to its words")

    starts: list[int] = []
    ends: list[int] = []
    cursor = 0
    for word in uthmani.split(_SPACE):
        positions = [mappings[c].pos for c in range(cursor, cursor + len(word))]
        start = min((p[0] for p in positions), default=0)
        starts.append(start)
        ends.append(max((p[1] for p in positions), default=start))
        cursor += len(word) + len(_SPACE)
    return phonemes, starts, ends
