"""The reference for a target: quran-transcript's phonetic script, grouped, worded and ruled.

Everything downstream (alignment, tajweed, fusion) reads positions in one coordinate system:
indexes into the reference phoneme string (one character per phoneme, no spaces). Words and
rules are located there through the phonetizer's own character mappings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quran_transcript import alphabet, chunck_phonemes, quran_phonetizer

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2
from services.common.sifat import SIFA_LEVELS
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import quran
from services.gateway.reference.rule_spans import rule_span
from services.gateway.reference.targets import TargetSpec

_SPACE = alphabet.uthmani.space


def phoneme_vocabulary() -> dict[str, int]:
    """Phoneme -> model id, as the model author builds the phoneme level (blank is 0)."""
    return {symbol: index + 1 for index, symbol in enumerate(vars(alphabet.phonetics).values())}


_VOCAB = phoneme_vocabulary()


@dataclass(frozen=True)
class _WordSlot:
    surah: int
    ayah: int
    word_in_ayah: int


def _text_for(target: TargetSpec) -> tuple[str, list[_WordSlot]]:
    """The Uthmani text to phonetize and, for each of its words, where it sits in the Quran."""
    if target.kind == "ayah":
        text = quran.ayah_text(target.surah, target.ayah)
        return text.uthmani, [_WordSlot(target.surah, target.ayah, i) for i in range(len(text.uthmani.split(_SPACE)))]
    if target.kind == "ayah_range":
        parts: list[str] = []
        slots: list[_WordSlot] = []
        for ayah in range(target.ayah, target.last_ayah + 1):
            text = quran.ayah_text(target.surah, ayah)
            parts.append(text.uthmani)
            slots.extend(_WordSlot(target.surah, ayah, i) for i in range(len(text.uthmani.split(_SPACE))))
        return _SPACE.join(parts), slots
    segment = quran.aya(target.surah, target.ayah).get_by_imlaey_words(target.start_word, target.word_count)
    words = segment.uthmani.split(_SPACE)
    start_surah, start_ayah, start_index = segment.start_span
    surah, ayah, index = int(start_surah), int(start_ayah), int(start_index.uthmani)
    slots = []
    for _ in words:
        while index >= len(quran.ayah_text(surah, ayah).uthmani.split(_SPACE)):
            following = quran.next_ayah(surah, ayah)
            if following is None:
                raise InvalidArgument("the word range runs past the end of the Quran")
            (surah, ayah), index = following, 0
        slots.append(_WordSlot(surah, ayah, index))
        index += 1
    return segment.uthmani, slots


def _sifat(entry: Any) -> common_pb2.Sifat:
    return common_pb2.Sifat(
        phonemes_group=entry.phonemes,
        **{level: common_pb2.SifaValue(label=getattr(entry, level)) for level in SIFA_LEVELS},
    )


def build_reference(target: TargetSpec, moshaf_values: dict[str, Any]) -> common_pb2.Reference:
    """Phonetizes the target with the given (validated, defaults-applied) attributes."""
    uthmani, slots = _text_for(target)
    output = quran_phonetizer(uthmani, moshaf_mod.to_model(moshaf_values), remove_spaces=True, sura_idx=target.surah)
    phonemes = output.phonemes
    unknown = sorted({p for p in phonemes if p not in _VOCAB})
    if unknown:
        raise InvalidArgument(f"the phonetizer produced symbols outside the model vocabulary: {unknown}")

    # Character spans of the words in the Uthmani string (the mappings index its characters).
    word_chars: list[tuple[int, int]] = []
    cursor = 0
    for word in uthmani.split(_SPACE):
        word_chars.append((cursor, cursor + len(word)))
        cursor += len(word) + len(_SPACE)
    if len(output.mappings) != len(uthmani) or len(word_chars) != len(slots):
        # quran-transcript 0.6.4 loses its character mappings when disjoint letters (الٓمٓ) follow
        # other text, i.e. a word range running into the opening of surah 2, 3, 7...
        raise InvalidArgument(
            f"the phonetizer cannot map {target.key()} back to its words (a range that runs into "
            "a surah opening with disjoint letters such as الٓمٓ); request the ayahs separately"
        )

    words: list[common_pb2.ReferenceWord] = []
    char_to_word = [0] * len(uthmani)
    for index, ((start, end), slot) in enumerate(zip(word_chars, slots, strict=True)):
        positions = [output.mappings[c].pos for c in range(start, end)]
        ph_start = min((p[0] for p in positions), default=0)
        ph_end = max((p[1] for p in positions), default=ph_start)
        for c in range(start, min(end + len(_SPACE), len(uthmani))):
            char_to_word[c] = index
        words.append(
            common_pb2.ReferenceWord(
                uthmani=uthmani[start:end],
                surah=slot.surah,
                ayah=slot.ayah,
                word_in_ayah=slot.word_in_ayah,
                uthmani_span=common_pb2.TextSpan(start=start, end=end),
                phoneme_start=ph_start,
                phoneme_end=ph_end,
            )
        )
    phoneme_to_word = _phoneme_to_word(words, len(phonemes))

    groups: list[common_pb2.ReferenceGroup] = []
    position = 0
    chunks = chunck_phonemes(phonemes)
    if len(chunks) != len(output.sifat) or "".join(chunks) != phonemes:
        raise InvalidArgument(f"phoneme groups and sifat of {target.key()} disagree")
    for chunk, sifa in zip(chunks, output.sifat, strict=True):
        groups.append(
            common_pb2.ReferenceGroup(
                phonemes=chunk,
                phoneme_start=position,
                phoneme_end=position + len(chunk),
                word_index=phoneme_to_word[position],
                sifat=_sifat(sifa),
            )
        )
        position += len(chunk)

    rules: list[common_pb2.ReferenceRule] = []
    for char_index, mapping in enumerate(output.mappings):
        for rule in mapping.tajweed_rules or ():
            # The mapped span is the character's; the rule's own symbols are what clients mark.
            start, end = rule_span(type(rule).__name__, rule.tag or "", mapping.pos[0], mapping.pos[1], phonemes)
            rules.append(
                common_pb2.ReferenceRule(
                    rule=type(rule).__name__,
                    name_ar=rule.name.ar,
                    name_en=rule.name.en,
                    golden_len=int(rule.golden_len or 0),
                    tag=rule.tag or "",
                    correctness_type=rule.correctness_type,
                    phoneme_start=start,
                    phoneme_end=end,
                    uthmani_span=common_pb2.TextSpan(start=char_index, end=char_index + 1),
                    word_index=char_to_word[char_index],
                )
            )

    return common_pb2.Reference(
        target=target.to_proto(),
        moshaf=moshaf_mod.to_proto(moshaf_values),
        uthmani=uthmani,
        phonemes=phonemes,
        phoneme_ids=[_VOCAB[p] for p in phonemes],
        groups=groups,
        words=words,
        rules=rules,
        phonetizer_version=quran.phonetizer_version(),
        ends_with_waqf=True,
    )


def _phoneme_to_word(words: list[common_pb2.ReferenceWord], length: int) -> list[int]:
    """Word index of every phoneme; a phoneme shared by merged words goes to the earlier one."""
    owner = [0] * length
    for index in range(len(words) - 1, -1, -1):
        word = words[index]
        for p in range(word.phoneme_start, word.phoneme_end):
            owner[p] = index
    # Phonemes no word claims (none expected) inherit the previous phoneme's word.
    claimed = [False] * length
    for word in words:
        for p in range(word.phoneme_start, word.phoneme_end):
            claimed[p] = True
    for p in range(1, length):
        if not claimed[p]:
            owner[p] = owner[p - 1]
    return owner
