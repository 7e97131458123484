"""Start-up work done before the server reports SERVING, so the first request is not slow.

Loads the mushaf with the stop marks (~40 ms) and runs the phonetizer and explain_error
once (their regular expressions compile on first use).
"""

from __future__ import annotations

from quran_transcript import explain_error, quran_phonetizer

from services.tajweed import waqf_marks
from services.tajweed.phonetics import moshaf_model

# 112:1 as quran-transcript spells it.
_TEXT = "قُلْ هُوَ ٱللَّهُ أَحَدٌ"
_MOSHAF = {"rewaya": "hafs", "madd_monfasel_len": 4, "madd_mottasel_len": 4, "madd_mottasel_waqf": 4,
           "madd_aared_len": 4}


def warm_up() -> None:
    output = quran_phonetizer(_TEXT, moshaf_model(_MOSHAF), remove_spaces=True, sura_idx=112)
    explain_error(_TEXT, output.phonemes, output.phonemes, output.mappings)
    waqf_marks.preload()
