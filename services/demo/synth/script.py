"""The phonetic script as the reciter reads it: groups (a consonant run with its vowel, or a madd
run), each with its word and its sifat, taken from the gateway's reference builder."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from quran_transcript import alphabet

from services.common.pb import common_pb2
from services.common.sifat import SIFA_LEVELS

P = alphabet.phonetics
SHORT_VOWELS = frozenset({P.fatha, P.dama, P.kasra, P.fatha_momala, P.dama_mokhtalasa})
MADD = frozenset({P.alif, P.yaa_madd, P.waw_madd, P.alif_momala})
NASALS = frozenset({P.noon, P.meem, P.noon_mokhfah, P.meem_mokhfah})
QALQALAH = P.qlqla
SAKT = P.sakt
# The letter espeak-ng is given for a phoneme that has no letter of its own.
SPOKEN_AS: dict[str, str] = {P.noon_mokhfah: P.noon, P.meem_mokhfah: P.meem, P.hamza_mosahala: P.hamza}
VOWEL_MARK: dict[str, str] = {
    P.fatha: "\u064e", P.dama: "\u064f", P.kasra: "\u0650",
    P.fatha_momala: "\u064e", P.dama_mokhtalasa: "\u064f",
}
# The vowel a madd letter lengthens.
MADD_VOWEL: dict[str, str] = {P.alif: P.fatha, P.alif_momala: P.fatha, P.yaa_madd: P.kasra, P.waw_madd: P.dama}
SUKUN = "\u0652"


@dataclass(frozen=True)
class Group:
    """One phoneme group as recited: `consonant * count + vowel + qalqalah`, or a madd run."""

    phonemes: str
    word_index: int
    sifat: dict[str, str] = field(default_factory=dict, compare=False)
    # Where it sits in the reference (-1: inserted by a mistake).
    reference_index: int = -1

    @property
    def is_madd(self) -> bool:
        return self.phonemes[0] in MADD

    @property
    def is_sakt(self) -> bool:
        return self.phonemes == SAKT

    @property
    def consonant(self) -> str:
        return "" if self.is_madd or self.is_sakt else self.phonemes[0]

    @property
    def consonant_count(self) -> int:
        if not self.consonant:
            return 0
        count = 0
        for ch in self.phonemes:
            if ch in SHORT_VOWELS or ch == QALQALAH:
                break
            count += 1
        return count

    @property
    def vowel(self) -> str:
        return next((ch for ch in self.phonemes if ch in SHORT_VOWELS), "")

    @property
    def qalqalah(self) -> bool:
        return QALQALAH in self.phonemes

    @property
    def madd_count(self) -> int:
        return len(self.phonemes) if self.is_madd else 0

    def with_phonemes(self, phonemes: str, **sifat: str) -> Group:
        return replace(self, phonemes=phonemes, sifat={**self.sifat, **sifat, "phonemes_group": phonemes})


def sifat_of(entry: common_pb2.Sifat) -> dict[str, str]:
    values = {level: getattr(entry, level).label for level in SIFA_LEVELS}
    values["phonemes_group"] = entry.phonemes_group
    return values


def groups_of(reference: common_pb2.Reference) -> list[Group]:
    return [
        Group(g.phonemes, int(g.word_index), sifat_of(g.sifat), reference_index=i)
        for i, g in enumerate(reference.groups)
    ]


def reference_for(
    surah: int, ayah: int, last_ayah: int = 0, moshaf: dict[str, Any] | None = None,
    words: tuple[int, int] | None = None,
) -> common_pb2.Reference:
    """The gateway's reference for an ayah, a range, or `words` = (start_word, word_count) of an
    ayah, with the moshaf attributes over the defaults."""
    from services.gateway.reference import moshaf as moshaf_mod
    from services.gateway.reference.builder import build_reference
    from services.gateway.reference.targets import ayah_range_target, ayah_target, word_range_target

    values = moshaf_mod.to_dict(moshaf_mod.to_proto({**moshaf_mod.REQUIRED_DEFAULTS, **(moshaf or {})}))
    if words is not None:
        return build_reference(word_range_target(surah, ayah, words[0], words[1]), values)
    if last_ayah and last_ayah != ayah:
        # The reciter stops at every ayah end (reciter.py pauses there): each ayah is said in
        # its own form, its last word as stopped on and the next ayah's first as started, not in
        # the connected reading of the range (أَحَدُنِ ٱللَّهُ said with a pause in between).
        parts = [build_reference(ayah_target(surah, a), values) for a in range(ayah, last_ayah + 1)]
        return joined(parts, ayah_range_target(surah, ayah, last_ayah).to_proto())
    return build_reference(ayah_target(surah, ayah), values)


def joined(parts: list[common_pb2.Reference], target: common_pb2.Target) -> common_pb2.Reference:
    """One reference of consecutive references said one after another (their text joined by a
    space): phoneme, word, group and text positions moved along."""
    out = common_pb2.Reference(target=target, moshaf=parts[0].moshaf, phonetizer_version=parts[0].phonetizer_version,
                               ends_with_waqf=parts[-1].ends_with_waqf)
    phonemes = words = text = 0
    for part in parts:
        if text:
            out.uthmani += " "
            text += 1
        out.uthmani += part.uthmani
        out.phonemes += part.phonemes
        out.phoneme_ids.extend(part.phoneme_ids)
        out.words.extend(_moved(w, phonemes, text=text) for w in part.words)
        out.groups.extend(_moved(g, phonemes, words=words) for g in part.groups)
        out.rules.extend(_moved(r, phonemes, words=words, text=text) for r in part.rules)
        phonemes += len(part.phonemes)
        words += len(part.words)
        text += len(part.uthmani)
    return out


def _moved(message: Any, phonemes: int, *, words: int | None = None, text: int | None = None) -> Any:
    """A copy of a ReferenceWord, ReferenceGroup or ReferenceRule of one part, placed in the
    joined reference (its word index moved by `words`, its text span by `text`, when given)."""
    moved = type(message)()
    moved.CopyFrom(message)
    moved.phoneme_start += phonemes
    moved.phoneme_end += phonemes
    if words is not None:
        moved.word_index += words
    if text is not None:
        moved.uthmani_span.start += text
        moved.uthmani_span.end += text
    return moved
