"""The reference builder, targets and MoshafAttributes checked against the real model's output
and the Quran's real bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from quran_transcript import chunck_phonemes

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2
from services.gateway.reference import builder, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from tests.conftest import FIXTURES_DIR

FIXTURE = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text(encoding="utf-8"))


def _ayah(surah: int, ayah: int) -> common_pb2.Target:
    return common_pb2.Target(ayah=common_pb2.AyahTarget(surah=surah, ayah=ayah))


def _fixture_reference() -> common_pb2.Reference:
    ref = FIXTURE["reference"]
    target = common_pb2.Target(
        words=common_pb2.WordRangeTarget(
            surah=ref["sura"],
            ayah=ref["aya"],
            start_word=ref["imlaey_word_start"],
            word_count=ref["imlaey_word_window"],
        )
    )
    values = moshaf_mod.to_dict(common_pb2.MoshafAttributes(**ref["moshaf"]))
    return builder.build_reference(targets.target_from_proto(target), values)


def test_the_fixture_reference_equals_what_the_real_model_was_compared_to() -> None:
    reference = _fixture_reference()
    assert reference.uthmani == FIXTURE["reference"]["uthmani"]
    assert reference.phonemes == FIXTURE["reference"]["phonemes"]
    # The real model decoded this clip exactly: its ids are the reference's ids.
    assert list(reference.phoneme_ids) == FIXTURE["predicted"]["ids"]
    assert reference.phonemes == FIXTURE["predicted"]["phonemes"]


def test_the_fixture_reference_crosses_into_the_next_ayah_word_by_word() -> None:
    reference = _fixture_reference()
    places = [(w.surah, w.ayah, w.word_in_ayah) for w in reference.words]
    assert places == [(8, 75, i) for i in range(17, 22)] + [(9, 1, i) for i in range(4)]
    # Words tile the phoneme string in order.
    assert reference.words[0].phoneme_start == 0
    assert reference.words[-1].phoneme_end == len(reference.phonemes)
    for before, after in zip(reference.words, reference.words[1:], strict=False):
        assert before.phoneme_end == after.phoneme_start
    for word in reference.words:
        assert reference.uthmani[word.uthmani_span.start : word.uthmani_span.end] == word.uthmani


@pytest.mark.parametrize(("surah", "ayah"), [(1, 1), (2, 1), (8, 75), (112, 1), (2, 282)])
def test_groups_tile_the_phonemes_and_carry_sifat(surah: int, ayah: int) -> None:
    reference = builder.build_reference(targets.ayah_target(surah, ayah), moshaf_mod.default_values())
    assert [g.phonemes for g in reference.groups] == chunck_phonemes(reference.phonemes)
    position = 0
    for group in reference.groups:
        assert (group.phoneme_start, group.phoneme_end) == (position, position + len(group.phonemes))
        assert group.sifat.phonemes_group == group.phonemes
        assert group.sifat.hams_or_jahr.label in {"hams", "jahr"}
        assert 0 <= group.word_index < len(reference.words)
        position = group.phoneme_end
    assert position == len(reference.phonemes)
    vocabulary = builder.phoneme_vocabulary()
    assert list(reference.phoneme_ids) == [vocabulary[p] for p in reference.phonemes]
    for rule in reference.rules:
        assert 0 <= rule.phoneme_start <= rule.phoneme_end <= len(reference.phonemes)
        assert rule.correctness_type in {"count", "match"}
    assert reference.phonetizer_version == quran.phonetizer_version()


def test_madd_lengths_follow_the_moshaf_attributes() -> None:
    """2:1 opens with lam-mim: its madd lazim is six alifs; a munfasil rule's golden length
    is the configured one."""
    target = targets.ayah_target(2, 4)
    short = builder.build_reference(target, moshaf_mod.to_dict(common_pb2.MoshafAttributes(madd_monfasel_len=2)))
    long = builder.build_reference(target, moshaf_mod.to_dict(common_pb2.MoshafAttributes(madd_monfasel_len=5)))
    munfasil = [r.golden_len for r in short.rules if r.rule == "MonfaselMaddRule"]
    assert munfasil and set(munfasil) == {2}
    assert {r.golden_len for r in long.rules if r.rule == "MonfaselMaddRule"} == {5}
    assert len(long.phonemes) == len(short.phonemes) + 3 * len(munfasil)
    opening = builder.build_reference(targets.ayah_target(2, 1), moshaf_mod.default_values())
    assert "ا" * 6 in opening.phonemes


def test_target_keys() -> None:
    assert targets.target_from_proto(_ayah(8, 75)).key() == "8:75"
    words = common_pb2.Target(words=common_pb2.WordRangeTarget(surah=8, ayah=75, start_word=17, word_count=9))
    assert targets.target_from_proto(words).key() == "8:75:w17+9"
    ayahs = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=2, first_ayah=1, last_ayah=5))
    assert targets.target_from_proto(ayahs).key() == "2:1-5"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (_ayah(0, 1), "valid surahs are 1..114"),
        (_ayah(115, 1), "valid surahs are 1..114"),
        (_ayah(112, 5), "valid ayahs are 1..4"),
        (_ayah(2, 0), "valid ayahs are 1..286"),
        (
            common_pb2.Target(words=common_pb2.WordRangeTarget(surah=114, ayah=6, start_word=0, word_count=10)),
            "at most 3 words are available",
        ),
        (
            common_pb2.Target(words=common_pb2.WordRangeTarget(surah=112, ayah=1, start_word=9, word_count=1)),
            "valid start_word: 0..3",
        ),
        (
            common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=112, first_ayah=3, last_ayah=2)),
            "comes before",
        ),
        (common_pb2.Target(), "target is missing"),
    ],
)
def test_invalid_targets_name_the_valid_range(target: common_pb2.Target, expected: str) -> None:
    with pytest.raises(InvalidArgument, match=expected):
        targets.target_from_proto(target)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"madd_monfasel_len": 7}, r"madd_monfasel_len=7 is not valid \(valid: 2, 3, 4, 5\)"),
        ({"rewaya": "warsh"}, r"rewaya='warsh' is not valid \(valid: hafs\)"),
        ({"madd_aared_len": 3}, r"valid: 2, 4, 6"),
    ],
)
def test_invalid_moshaf_values_list_the_valid_ones(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidArgument, match=expected):
        moshaf_mod.to_dict(common_pb2.MoshafAttributes(**fields))


def test_a_word_range_into_a_disjoint_letter_opening_is_refused_clearly() -> None:
    """quran-transcript 0.6.4 loses its mappings when الٓمٓ follows other text."""
    with pytest.raises(InvalidArgument, match="disjoint letters"):
        builder.build_reference(targets.word_range_target(1, 7, 8, 2), moshaf_mod.default_values())
