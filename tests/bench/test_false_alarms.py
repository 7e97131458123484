"""The false-alarm causes of bench/false_alarms.py on a made-up recitation of known truth."""

from __future__ import annotations

from typing import Any

from bench.false_alarms import causes, cut_inside


def _recitation(segments: list[list[Any]]) -> dict[str, Any]:
    words = [{"start_s": 0.5 + k, "end_s": 1.4 + k} for k in range(4)]  # four words, 0.9 s each
    return {"truth_words": words, "segments": segments, "mistakes": []}


def _row(word: int, **fields: Any) -> dict[str, Any]:
    row = {"recitation": 0, "kind": "clean", "word_index": word, "mistakes": [], "rule": "RULE_PRONUNCIATION",
           "verdict": "VERDICT_WRONG", "confidence": 0.9, "source": "explain_error", "rule_name": "normal replace"}
    return row | fields


def test_a_pause_inside_a_word_cuts_it_and_one_between_words_does_not() -> None:
    recitation = _recitation([[0.4, 1.9, True], [2.3, 4.5, True]])  # silence 1.9-2.3: inside word 1
    assert [cut_inside(recitation, w) for w in range(4)] == [False, True, False, False]
    between = _recitation([[0.4, 2.42, True], [2.48, 4.5, True]])  # 2.42-2.48: between words 1 and 2
    assert not any(cut_inside(between, w) for w in range(4))


def test_each_false_alarm_gets_the_first_cause_that_applies() -> None:
    recitation = _recitation([[0.4, 1.9, True], [2.3, 4.5, True]])
    rows = [
        _row(1),  # inside the cut word
        _row(0, rule_name="normal insert"),  # an extra sound before the cut word
        _row(2, confidence=0.7),  # a slip
        _row(3, verdict="VERDICT_CORRECT"),  # not an error line
    ]
    table = causes(rows, {0: recitation})
    assert table == {"segment cut inside the word": 2, "model slip (pronunciation), confidence under 0.80": 1}


def test_a_last_word_left_out_without_a_pause_in_it_is_the_followers() -> None:
    recitation = _recitation([[0.4, 4.5, True]])
    rows = [_row(3, source="follower", rule_name="not recited", verdict="VERDICT_MISSING"),
            _row(2, rule_name="normal insert"), _row(0)]
    table = causes(rows, {0: recitation})
    assert table["follower: last word lost"] == 2
    assert table["model slip (pronunciation), confidence 0.80-0.95"] == 1
