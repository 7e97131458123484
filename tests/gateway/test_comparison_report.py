"""The terminal report shows the comparison: the similarity, the feedback lines in both
languages, the madd table and the rhythm side by side; nothing when there is no comparison."""

from __future__ import annotations

from rich.console import Console

from services.client.report import render
from services.common.pb import gateway_pb2, prosody_pb2


def _text(assessment: gateway_pb2.Assessment) -> str:
    console = Console(record=True, width=200)
    render(assessment, console)
    return console.export_text()


def test_report_shows_the_comparison() -> None:
    comparison = prosody_pb2.Comparison(
        reciter="husary",
        similarity=72.4,
        tempo_ratio=1.31,
        tempo_source="haraka",
        key_shift_cents=-300,
        word_alignment="alignment",
        feedback=[
            prosody_pb2.FeedbackLine(
                kind="madd", en="your madd in قال is 2.1 harakat, your teacher holds 4", ar="مدّك في «قال» 2.1 حركة"
            )
        ],
        madds=[
            prosody_pb2.MaddComparison(
                text="قال", rule="MaddTabeeiRule", learner_harakat=2.1, reference_harakat=4.0, golden_len=2
            )
        ],
        learner_rhythm=prosody_pb2.Rhythm(npvi_v=41, percent_v=48),
        reference_rhythm=prosody_pb2.Rhythm(npvi_v=55, percent_v=52),
        learner_maqam=prosody_pb2.MaqamEstimate(name="Bayati", confidence=0.6),
        reference_maqam=prosody_pb2.MaqamEstimate(name="Rast", confidence=0.7),
    )
    text = _text(gateway_pb2.Assessment(comparison=comparison))
    assert "similarity 72/100 to husary" in text
    assert "tempo x1.31 (slower than the teacher, by haraka)" in text
    assert "key -3.0 semitones" in text
    assert "your madd in قال is 2.1 harakat, your teacher holds 4" in text
    assert "2.1 حركة" in text
    assert "madd lengths" in text and "MaddTabeeiRule" in text
    assert "rhythm" in text and "55" in text
    assert "Bayati (60%)" in text and "Rast (70%)" in text


def test_no_comparison_no_section() -> None:
    assert "next to your teacher" not in _text(gateway_pb2.Assessment())
