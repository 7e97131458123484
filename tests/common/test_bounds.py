"""The ranges the front ends check without the Quran text agree with the text the gateway reads."""

from __future__ import annotations

from services.common import bounds
from services.gateway.reference import quran, targets


def test_the_ayah_counts_are_the_texts() -> None:
    assert bounds.SURAH_COUNT == quran.SURAH_COUNT
    assert list(bounds.AYAH_COUNTS) == [quran.ayah_count(s) for s in range(1, quran.SURAH_COUNT + 1)]
    assert sum(bounds.AYAH_COUNTS) == 6236


def test_no_ayah_has_more_words_than_the_bound() -> None:
    longest = max(
        len(quran.ayah_text(surah, ayah).imlaey_words)
        for surah in range(1, quran.SURAH_COUNT + 1)
        for ayah in range(1, quran.ayah_count(surah) + 1)
    )
    assert longest == bounds.MAX_WORDS_PER_AYAH


def test_the_gateway_checks_the_same_limits() -> None:
    assert targets.MAX_WORDS_PER_TARGET == bounds.MAX_WORDS_PER_TARGET
    assert targets.MAX_AYAHS_PER_TARGET == bounds.MAX_AYAHS_PER_TARGET


def test_a_value_in_a_message_is_cut_short() -> None:
    error = bounds.out_of_range("surah", 1, 114, "9" * 10_000)
    assert error.message.startswith("surah must be an integer in 1..114, got '999")
    assert error.message.endswith("(10002 characters)") and len(error.message) < 120
