"""The follower's small parts on their own: which attempt stands, the decode shared out among
the words, one stage report per stage."""

from __future__ import annotations

from services.common.pb import common_pb2, gateway_pb2
from services.gateway.follow import ledger
from services.gateway.follow.attempts import Attempt, decoded_by_word
from services.gateway.follow.committer import Committer

OK = common_pb2.STAGE_STATUS_OK
SKIPPED = common_pb2.STAGE_STATUS_SKIPPED
UNAVAILABLE = common_pb2.STAGE_STATUS_UNAVAILABLE


def _attempt(index: int, segment: int, *, skipped: bool = False) -> Attempt:
    verdict = gateway_pb2.WORD_VERDICT_MISTAKE if skipped else gateway_pb2.WORD_VERDICT_CORRECT
    return Attempt(index, segment, gateway_pb2.WordAssessment(word_index=index, verdict=verdict), skipped=skipped)


def test_the_latest_recited_attempt_stands_and_lists_those_it_replaced() -> None:
    committer = Committer(3)
    first, again = _attempt(0, 0), _attempt(0, 2)
    assert committer.commit([first]) == [(first, [])]
    assert committer.commit([again]) == [(again, [first])]
    # A segment retried late (it is earlier in the recording) does not outrank a later attempt.
    retried = _attempt(0, 1)
    assert committer.commit([retried]) == []
    assert committer.settled(0) == (again, [first, retried])


def test_not_recited_stands_only_until_the_word_is_recited() -> None:
    committer = Committer(3)
    skip = _attempt(1, 2, skipped=True)
    assert committer.commit([skip]) == [(skip, [])]
    recited = _attempt(1, 1)  # heard in an earlier segment whose asr answered late
    assert committer.commit([recited]) == [(recited, [skip])]
    assert committer.commit([_attempt(1, 3, skipped=True)]) == []
    assert committer.settled(2) is None and committer.sent == {1}


def test_the_decode_is_shared_out_among_the_words_and_joins_back() -> None:
    reference = common_pb2.Reference(
        phonemes="abcdef",
        words=[
            common_pb2.ReferenceWord(phoneme_start=0, phoneme_end=3),
            common_pb2.ReferenceWord(phoneme_start=3, phoneme_end=6),
        ],
    )
    # An extra phoneme between the words goes with the word before; a missing one costs its word.
    assert decoded_by_word(reference, "abcXdef") == ["abcX", "def"]
    assert decoded_by_word(reference, "abdef") == ["ab", "def"]
    assert decoded_by_word(reference, "Yabcdef") == ["Yabc", "def"]
    assert "".join(decoded_by_word(reference, "xbqqef")) == "xbqqef"


def test_each_stage_is_reported_once_with_the_worst_that_mattered() -> None:
    reports = [
        common_pb2.StageReport(stage="tajweed", status=SKIPPED, message="content mismatch"),
        common_pb2.StageReport(
            stage="asr", status=OK, duration_ms=10, timings=[common_pb2.StageTiming(stage="model", duration_ms=4)]
        ),
        common_pb2.StageReport(stage="asr", status=UNAVAILABLE, duration_ms=1, message="asr is down"),
        common_pb2.StageReport(
            stage="asr", status=OK, duration_ms=20, timings=[common_pb2.StageTiming(stage="model", duration_ms=6)]
        ),
        common_pb2.StageReport(stage="tajweed", status=OK, duration_ms=5),
        common_pb2.StageReport(stage="alignment", status=SKIPPED, message="no transcription"),
    ]
    merged = ledger.merged(reports)
    assert [(r.stage, r.status, r.duration_ms, r.message) for r in merged] == [
        ("asr", UNAVAILABLE, 31, "asr is down"),
        ("alignment", SKIPPED, 0, "no transcription"),
        ("tajweed", OK, 5, ""),
    ]
    assert [(t.stage, t.duration_ms) for t in merged[0].timings] == [("model", 10)]
    assert ledger.degraded(merged) == ["asr"]
