"""The phonetic script written in the mushaf's letters: the symbols agree with quran-transcript's
alphabet, and whole references of real ayahs read back as their letters."""

from __future__ import annotations

import pytest
from quran_transcript import alphabet

from services.common import script
from services.common.script import readable

PH = alphabet.phonetics


def test_the_symbols_are_quran_transcripts() -> None:
    assert set(script.LETTERS) == {getattr(PH, n) for n in (
        "hamza", "baa", "taa", "thaa", "jeem", "haa_mohmala", "khaa", "daal", "thaal", "raa", "zay", "seen",
        "sheen", "saad", "daad", "taa_mofakhama", "zaa_mofakhama", "ayn", "ghyn", "faa", "qaf", "kaf", "lam",
        "meem", "noon", "haa", "waw", "yaa")}
    ours = {
        "alif": script.ALIF, "yaa_madd": script.YAA_MADD, "waw_madd": script.WAW_MADD, "fatha": script.FATHA,
        "dama": script.DAMMA, "kasra": script.KASRA, "fatha_momala": script.FATHA_IMALA,
        "alif_momala": script.ALIF_IMALA, "hamza_mosahala": script.HAMZA_TASHEEL, "qlqla": script.QALQALAH,
        "noon_mokhfah": script.NOON_HIDDEN, "meem_mokhfah": script.MEEM_HIDDEN, "sakt": script.SAKT,
        "dama_mokhtalasa": script.DAMMA_IKHTILAS,
    }
    assert {name: getattr(PH, name) for name in ours} == ours
    # Every symbol of the alphabet is one readable() knows.
    known = set(script.LETTERS) | set(script.HARAKAT) | script.MADD | set(script._PLAIN)
    known |= {script.QALQALAH, script.SAKT}
    assert set(vars(PH).values()) <= known


@pytest.mark.parametrize(
    ("phonetic", "letters"),
    [
        ("بڇ", "بْ"),  # a qalqalah is a sakin letter with its release
        ("ققِ", "ق" + script.SHADDA + "ِ"),  # a doubled letter is a shadda (then its haraka)
        ("نننَ", "ن" + script.SHADDA + "َ"),  # a ghunnah's run too
        ("ۦۦ", "ي"),  # a madd is its letter once: the length is the madd rule's
        ("ں", "نْ"),  # the hidden noon of an ikhfa
        ("قُلهُوَ", "قُلْهُوَ"),
        ("ٲ۪", "ءَ"),
        ("", ""),
    ],
)
def test_readable(phonetic: str, letters: str) -> None:
    assert readable(phonetic) == letters


def test_no_model_symbol_survives_in_a_real_ayah() -> None:
    from services.gateway.reference import moshaf, targets
    from services.gateway.reference.builder import build_reference

    for surah, ayah in ((112, 1), (2, 255), (103, 3), (114, 4)):
        reference = build_reference(targets.ayah_target(surah, ayah), moshaf.default_values())
        text = readable(reference.phonemes)
        leftover = set(text) & {script.QALQALAH, script.YAA_MADD, script.WAW_MADD, script.NOON_HIDDEN,
                                script.MEEM_HIDDEN, script.HAMZA_TASHEEL, script.FATHA_IMALA, script.ALIF_IMALA}
        assert not leftover, (surah, ayah, text)
