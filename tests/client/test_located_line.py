"""The report's located line: one line of at most 80 columns that says which span was assessed
and, when the search was not sure, that it was not and what else it could be."""

from __future__ import annotations

from services.client.located import WIDTH, located_line, place
from services.client.options import target_or_locate
from services.common.pb import gateway_pb2


def _passage(
    surah: int, ayah: int, start: int, end_ayah: int, end_word: int, end_surah: int = 0
) -> gateway_pb2.RecognizedPassage:
    return gateway_pb2.RecognizedPassage(
        surah=surah,
        ayah=ayah,
        start_word=start,
        end_surah=end_surah or surah,
        end_ayah=end_ayah,
        end_word=end_word,
        similarity=0.93,
    )


def test_places_read_as_a_reciter_names_them() -> None:
    assert place(_passage(112, 2, 0, 2, 2)) == "112:2"
    assert place(_passage(114, 1, 0, 3, 2)) == "114:1-3"
    assert place(_passage(2, 255, 3, 256, 3)) == "2:255 w4-2:256 w3"
    assert place(_passage(113, 5, 0, 1, 4, end_surah=114)) == "113:5-114:1"


def test_a_sure_locate_says_so() -> None:
    line = located_line(gateway_pb2.Located(passage=_passage(112, 1, 0, 4, 3), margin=0.4, sure=True))
    assert line.plain == "located 112:1-4, sure: score 0.93, margin 0.40"


def test_a_doubtful_locate_says_not_sure_and_lists_the_others_within_80_columns() -> None:
    refrain = [_passage(55, a, 0, a, 4) for a in (16, 18, 21, 23, 25, 28, 30, 32)]
    located = gateway_pb2.Located(passage=_passage(55, 13, 0, 13, 4), ambiguous=True, candidates=refrain)
    line = located_line(located).plain
    assert line.startswith("located 55:13, NOT SURE: score 0.93, margin 0.00; same words at 55:16")
    assert "55:16" in line and len(line) <= WIDTH


def test_no_surah_and_no_ayah_is_a_locate_target() -> None:
    assert target_or_locate(None, None).WhichOneof("kind") == "locate"
    assert target_or_locate(1, 2).ayah.ayah == 2
