"""Fusion of stage outputs into word verdicts, the error table and scores, on a real reference."""

from __future__ import annotations

import pytest

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.fusion import FusionInput, fuse, words_with_letter_errors
from services.gateway.reference import builder, moshaf, targets


@pytest.fixture(scope="module")
def reference() -> common_pb2.Reference:
    values = moshaf.to_dict(
        common_pb2.MoshafAttributes(madd_monfasel_len=2, madd_mottasel_len=4, madd_mottasel_waqf=4, madd_aared_len=2)
    )
    return builder.build_reference(targets.word_range_target(8, 75, 17, 9), values)


def _finding(word: int, rule: int, verdict: int) -> common_pb2.Finding:
    return common_pb2.Finding(word_index=word, rule=rule, verdict=verdict, message_en="m")  # type: ignore[arg-type]


def _data(reference: common_pb2.Reference, **overrides: object) -> FusionInput:
    values: dict[str, object] = {
        "reference": reference,
        "decode": common_pb2.Decode(phonemes=reference.phonemes),
        "alignment": None,
        "findings": [],
        "content": gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_MATCH),
        "rules_ran": True,
        "include_correct": False,
    }
    values.update(overrides)
    return FusionInput(**values)  # type: ignore[arg-type]


def test_word_verdicts_follow_the_worst_finding(reference: common_pb2.Reference) -> None:
    findings = [
        _finding(0, common_pb2.RULE_GHUNNAH, common_pb2.VERDICT_TOO_SHORT),
        _finding(1, common_pb2.RULE_PRONUNCIATION, common_pb2.VERDICT_WRONG),
        _finding(1, common_pb2.RULE_MADD_TABEEI, common_pb2.VERDICT_TOO_LONG),
        _finding(2, common_pb2.RULE_SHADDA, common_pb2.VERDICT_CORRECT),
        _finding(3, common_pb2.RULE_MADD_TABEEI, common_pb2.VERDICT_UNCERTAIN),
    ]
    out = fuse(_data(reference, findings=findings))
    verdicts = [w.verdict for w in out.words]
    assert verdicts[0] == gateway_pb2.WORD_VERDICT_TAJWEED_ISSUE
    assert verdicts[1] == gateway_pb2.WORD_VERDICT_MISTAKE
    assert verdicts[2] == gateway_pb2.WORD_VERDICT_CORRECT  # a passed check is no problem
    assert verdicts[3] == gateway_pb2.WORD_VERDICT_CORRECT  # uncertain evidence does not condemn
    assert [e.kind for e in out.errors] == ["tajweed", "pronunciation", "tajweed"]
    assert all(out.findings[e.finding_index].word_index == e.word_index for e in out.errors)
    # Correct findings are dropped unless asked for; the tajweed score still counts them.
    assert len(out.findings) == 4
    assert out.scores.tajweed == pytest.approx(100 * 1 / 3)


def test_content_mismatch_leaves_words_not_assessed(reference: common_pb2.Reference) -> None:
    out = fuse(_data(reference, findings=None, rules_ran=False))
    assert {w.verdict for w in out.words} == {gateway_pb2.WORD_VERDICT_NOT_ASSESSED}
    assert out.scores.tajweed == 0


def test_without_tajweed_the_decode_still_marks_wrong_words(reference: common_pb2.Reference) -> None:
    # Replace the first letter of the third word (بِكُلِّ): the decode says ت.
    word = reference.words[2]
    wrong = reference.phonemes[: word.phoneme_start] + "ت" + reference.phonemes[word.phoneme_start + 1 :]
    assert words_with_letter_errors(reference, wrong) == {2}
    out = fuse(_data(reference, decode=common_pb2.Decode(phonemes=wrong), findings=None))
    assert [w.verdict for w in out.words].count(gateway_pb2.WORD_VERDICT_MISTAKE) == 1
    assert out.words[2].verdict == gateway_pb2.WORD_VERDICT_MISTAKE
    assert 90 < out.scores.accuracy < 100


def test_perfect_decode_scores_full_accuracy(reference: common_pb2.Reference) -> None:
    alignment = common_pb2.Alignment(confidence=1.0)
    out = fuse(_data(reference, alignment=alignment))
    assert out.scores.accuracy == 100 and out.scores.tajweed == 100 and out.scores.overall == 100
