"""The calibration step's choice of the letter threshold, on findings of known truth: the highest
threshold that keeps every letter-level kind's recall at its floor, and what it removes."""

from __future__ import annotations

from typing import Any

from bench.calibrate import choose_letter_threshold, letter_figures


def _row(recitation: int, kind: str, word: int, confidence: float, mistakes: list[tuple[str, int]]) -> dict[str, Any]:
    on = [k for k, w in mistakes if w == word]
    return {"recitation": recitation, "kind": kind, "word_index": word, "mistakes": mistakes, "on_mistake": on,
            "rule": "RULE_PRONUNCIATION", "verdict": "VERDICT_WRONG", "confidence": confidence}


def test_the_threshold_stops_where_recall_would_fall_under_the_floor() -> None:
    rows = []
    # Ten letter mistakes, found with confidences 0.50..0.95; and slips on clean words at 0.3..0.6.
    for n in range(10):
        rows.append(_row(n, "letter", 2, 0.5 + 0.05 * n, [("letter", 2)]))
        rows.append(_row(100 + n, "clean", 1, 0.3 + 0.03 * n, []))
    threshold, curve = choose_letter_threshold(rows, clean_words=50)
    # Recall stays >= 0.9 up to the second-lowest true confidence (0.55): one of ten may go.
    assert threshold == 0.55
    chosen = letter_figures(rows, 50, threshold)
    assert chosen["recall"]["letter"] == 0.9
    assert curve[0]["letter_false_alarms_per_100_clean_words"] == 20.0
    assert chosen["letter_false_alarms_per_100_clean_words"] == 2.0  # only the 0.57 slip is left


def test_a_kind_already_under_the_floor_keeps_what_it_had() -> None:
    rows = [_row(0, "haraka", 1, 0.9, [("haraka", 1)]), _row(1, "haraka", 1, 0.2, [("haraka", 3)])]
    threshold, _ = choose_letter_threshold(rows, clean_words=10)
    # Half the haraka mistakes are found at any threshold up to 0.9: the floor is 0.5, not 0.9.
    assert threshold == 0.9
