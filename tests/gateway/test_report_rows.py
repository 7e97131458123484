"""The error table reads as a learner counts mistakes: a dropped word is one line, not one per
letter, and sounds missing from two different words stay two lines."""

from __future__ import annotations

from rich.console import Console

from services.client.report import render
from services.common.pb import common_pb2, gateway_pb2


def _missing(word: int, expected: str, start: float) -> gateway_pb2.ErrorItem:
    return gateway_pb2.ErrorItem(
        word_index=word, word=f"w{word}", kind="pronunciation", expected=expected, heard="",
        time_span=common_pb2.TimeSpan(start_s=start, end_s=start + 0.1),
        message_en=f"Missing: {expected} was not recited",
    )


def test_a_dropped_word_is_one_line() -> None:
    errors = [_missing(6, "بِ", 10.1), _missing(6, "ل", 10.2), _missing(6, "حَ", 10.3), _missing(7, "وَ", 10.6)]
    console = Console(record=True, width=200)
    render(gateway_pb2.Assessment(uthmani="قُلْ", errors=errors), console)
    text = console.export_text()
    assert "Not recited: بِلْحَ" in text  # in the mushaf's letters (services/common/script.py)
    assert "10.10-10.40 s" in text
    # The next word's missing letter is its own line, and nothing was merged in the message itself.
    assert "Missing: وَ was not recited" in text
    assert text.count("pronunciation") == 2


def test_inserted_sounds_in_one_word_are_one_line() -> None:
    extra = [
        gateway_pb2.ErrorItem(word_index=2, word="w2", kind="pronunciation", expected="", heard=h,
                              time_span=common_pb2.TimeSpan(start_s=s, end_s=s + 0.1), message_en=f"Extra: {h}")
        for h, s in (("ا", 3.0), ("ب", 3.1), ("ت", 3.2))
    ]
    console = Console(record=True, width=200)
    render(gateway_pb2.Assessment(uthmani="قُلْ", errors=extra), console)
    text = console.export_text()
    assert "Extra sounds not in the text: ابْتْ" in text and "3.00- 3.30 s" in text
    assert text.count("pronunciation") == 1
