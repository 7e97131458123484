"""Content verification on real references: the match, the mismatch, and what was recited."""

from __future__ import annotations

import json
import random
from functools import cache

import pytest

from services.common.errors import InvalidArgument
from services.common.pb import gateway_pb2
from services.gateway.reference import builder, quran, targets
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.verification import ContentStatus, ContentVerifier, PassageFinder, similarity
from tests.conftest import FIXTURES_DIR


def phonemes(surah: int, ayah: int, last_ayah: int | None = None) -> str:
    target = (
        targets.ayah_target(surah, ayah) if last_ayah is None else targets.ayah_range_target(surah, ayah, last_ayah)
    )
    return builder.build_reference(target, moshaf_mod.default_values()).phonemes


@cache
def _alphabet() -> list[str]:
    return sorted(set(phonemes(2, 282)))


def corrupt(text: str, edits: int, seed: int) -> str:
    """Substitutes, inserts and deletes `edits` phonemes at random places."""
    rng = random.Random(seed)
    alphabet = _alphabet()
    out = list(text)
    for i in range(edits):
        where = rng.randrange(len(out))
        if i % 3 == 0:
            out[where] = rng.choice(alphabet)
        elif i % 3 == 1:
            out.insert(where, rng.choice(alphabet))
        else:
            del out[where]
    return "".join(out)


@pytest.fixture(scope="module")
def verifier() -> ContentVerifier:
    return ContentVerifier(finder=PassageFinder(search_groups=40, max_results=5))


def test_the_real_model_decode_matches_its_reference(verifier: ContentVerifier) -> None:
    fixture = json.loads((FIXTURES_DIR / "test_wav_real_model_output.json").read_text(encoding="utf-8"))
    result = verifier.verify(fixture["predicted"]["phonemes"], fixture["reference"]["phonemes"])
    assert result.status is ContentStatus.MATCH
    assert result.similarity == 1.0 and result.threshold == 0.6
    assert result.likely_recited == ()


def test_a_learner_level_error_rate_still_matches(verifier: ContentVerifier) -> None:
    expected = phonemes(8, 75)
    decoded = corrupt(expected, edits=len(expected) // 10, seed=1)
    result = verifier.verify(decoded, expected)
    assert result.status is ContentStatus.MATCH
    assert 0.85 <= result.similarity < 1.0


def test_another_ayah_is_a_mismatch_that_names_the_ayah_recited(verifier: ContentVerifier) -> None:
    result = verifier.verify(phonemes(112, 1), phonemes(8, 75))
    assert result.status is ContentStatus.MISMATCH
    assert result.similarity < 0.2
    best = result.likely_recited[0]
    assert (best.surah, best.ayah, best.start_word, best.end_surah, best.end_ayah, best.end_word) == (
        112,
        1,
        0,
        112,
        1,
        4,
    )
    assert best.uthmani == quran.ayah_text(112, 1).uthmani
    assert best.similarity == 1.0

    proto = result.to_proto()
    assert proto.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    assert proto.likely_recited[0].surah == 112 and proto.likely_recited[0].end_word == 4
    assert proto.threshold == pytest.approx(0.6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_few_corrupted_phonemes_still_name_the_ayah_recited(verifier: ContentVerifier, seed: int) -> None:
    decoded = corrupt(phonemes(112, 1), edits=2, seed=seed)
    result = verifier.verify(decoded, phonemes(8, 75))
    assert result.status is ContentStatus.MISMATCH
    best = result.likely_recited[0]
    assert (best.surah, best.ayah, best.start_word) == (112, 1, 0)
    assert 0.6 < best.similarity < 1.0


def test_a_recitation_across_ayahs_is_located_from_start_to_end(verifier: ContentVerifier) -> None:
    decoded = corrupt(phonemes(36, 1, 5), edits=4, seed=7)
    result = verifier.verify(decoded, phonemes(1, 1))
    best = result.likely_recited[0]
    assert (best.surah, best.ayah, best.start_word) == (36, 1, 0)
    assert (best.end_surah, best.end_ayah) == (36, 5)
    assert best.similarity > 0.9


def test_a_long_decode_is_searched_by_its_start_and_scored_whole(verifier: ContentVerifier) -> None:
    """2:282 whole takes 18 s in the phonetic search at a 20 % error budget; by its first 40
    groups it is found in milliseconds and the passage still runs to the ayah's last word."""
    decoded = corrupt(phonemes(2, 282), edits=20, seed=3)
    result = verifier.verify(decoded, phonemes(1, 1))
    best = result.likely_recited[0]
    assert (best.surah, best.ayah, best.start_word, best.end_surah, best.end_ayah) == (2, 282, 0, 2, 282)
    assert best.end_word >= 127
    assert best.similarity > 0.9


def test_a_decode_that_is_no_recitation_finds_nothing_close(verifier: ContentVerifier) -> None:
    rng = random.Random(5)
    noise = "".join(rng.choice("بتثجحخدذرزسشصضطظعغفقكلمنهوي") for _ in range(60))
    result = verifier.verify(noise, phonemes(8, 75))
    assert result.status is ContentStatus.MISMATCH
    assert all(p.similarity < 0.8 for p in result.likely_recited)


def test_no_decode_and_empty_decode(verifier: ContentVerifier) -> None:
    assert verifier.verify(None, phonemes(1, 1)).status is ContentStatus.UNKNOWN
    empty = verifier.verify("", phonemes(1, 1))
    assert empty.status is ContentStatus.MISMATCH and empty.likely_recited == ()


def test_thresholds(verifier: ContentVerifier) -> None:
    expected = phonemes(1, 2)
    decoded = corrupt(expected, edits=2, seed=4)
    assert verifier.verify(decoded, expected).status is ContentStatus.MATCH
    strict = verifier.verify(decoded, expected, threshold=1.0)
    assert strict.status is ContentStatus.MISMATCH and strict.threshold == 1.0
    assert strict.likely_recited[0].ayah == 2
    with pytest.raises(InvalidArgument, match=r"within 0\.\.1"):
        verifier.verify(decoded, expected, threshold=1.5)
    with pytest.raises(InvalidArgument, match=r"within 0\.\.1"):
        ContentVerifier(threshold=-0.1)


def test_check_takes_a_reference_and_answers_the_proto(verifier: ContentVerifier) -> None:
    reference = builder.build_reference(targets.ayah_target(8, 75), moshaf_mod.default_values())
    check = verifier.check(phonemes(112, 1), reference)
    assert isinstance(check, gateway_pb2.ContentCheck)
    assert check.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    assert check.likely_recited[0].uthmani.startswith("قُلْ")
    assert verifier.check(reference.phonemes, reference).status == gateway_pb2.CONTENT_STATUS_MATCH


def test_similarity_is_normalised() -> None:
    assert similarity("abc", "abc") == 1.0
    assert similarity("", "abc") == 0.0
    assert similarity("abcd", "abce") == pytest.approx(0.75)


def _without_word(surah: int, ayah: int, word: int) -> tuple[str, str]:
    reference = builder.build_reference(targets.ayah_target(surah, ayah), moshaf_mod.default_values())
    dropped = reference.words[word]
    return reference.phonemes, reference.phonemes[: dropped.phoneme_start] + reference.phonemes[dropped.phoneme_end :]


@pytest.mark.parametrize(("surah", "ayah", "word"), [(103, 2, 1), (112, 1, 3), (112, 4, 2), (103, 3, 6), (114, 4, 1)])
def test_a_dropped_word_is_still_the_passage(verifier: ContentVerifier, surah: int, ayah: int, word: int) -> None:
    expected, decoded = _without_word(surah, ayah, word)
    noisy = corrupt(decoded, edits=max(1, len(decoded) // 15), seed=surah + word)
    result = verifier.verify(noisy, expected)
    assert result.status is ContentStatus.MATCH, (similarity(noisy, expected), result)


@pytest.mark.parametrize(("recited", "target"), [((112, 1), (8, 75)), ((103, 2), (103, 3)), ((114, 2), (113, 2)),
                                                  ((1, 2), (1, 3)), ((108, 1), (2, 255))])
def test_another_passage_is_still_a_mismatch_when_drops_are_forgiven(
    verifier: ContentVerifier, recited: tuple[int, int], target: tuple[int, int]
) -> None:
    result = verifier.verify(corrupt(phonemes(*recited), edits=2, seed=9), phonemes(*target))
    assert result.status is ContentStatus.MISMATCH, result.similarity
