"""The live capacity measured from the asr's own timings (services/gateway/asr_pace.py): the
real-time factor of each transcription's share of its batch, queueing left out, and the sessions
admitted from it against docs/live.md's formula worked by hand."""

from __future__ import annotations

import pytest

from services.common.pb import asr_pb2, common_pb2
from services.gateway.asr_pace import MIN_AUDIO_S, AsrPace
from services.gateway.live.admission import Admission, SessionRefused
from services.gateway.live.settings import LiveSettings


def _heard(audio_s: float, model_ms: float, *, batch: int = 1, queue_ms: float = 0.0) -> asr_pb2.Transcription:
    timings = [("features", 0.1 * model_ms), ("queue", queue_ms), ("model", 0.9 * model_ms), ("ctc_decode", 5.0)]
    return asr_pb2.Transcription(
        audio_duration_s=audio_s,
        batch_size=batch,
        timings=[common_pb2.StageTiming(stage=s, duration_ms=ms) for s, ms in timings],
    )


def _fed(pace: AsrPace, calls: int, **kind: float) -> AsrPace:
    for _ in range(calls):
        pace.observe(_heard(**kind))  # type: ignore[arg-type]
    return pace


def test_nothing_is_measured_before_enough_audio() -> None:
    pace = _fed(AsrPace(), int(MIN_AUDIO_S // 5) - 1, audio_s=5.0, model_ms=500.0)
    assert pace.rtf is None and pace.capacity() is None
    assert LiveSettings(max_sessions=64).admitted_at_once(pace.capacity()) == 64
    _fed(pace, 1, audio_s=5.0, model_ms=500.0)
    assert pace.rtf == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("batch", "queue_ms", "asr", "gateways", "sessions"),
    [
        (1, 0.0, 1, 1, 7),  # floor(1 x 0.7 / 0.1)
        (1, 4000.0, 1, 1, 7),  # a queue is what too many sessions make, not what one costs
        (2, 0.0, 1, 1, 14),  # a batch of two shares its compute: RTF 0.05
        (1, 0.0, 3, 2, 10),  # floor(3 x 0.7 / 0.1) / 2 = 10.5
    ],
)
def test_the_capacity_is_the_documented_formula(
    batch: int, queue_ms: float, asr: int, gateways: int, sessions: int
) -> None:
    pace = _fed(AsrPace(asr, gateways), 6, audio_s=5.0, model_ms=500.0, batch=batch, queue_ms=queue_ms)
    assert pace.capacity() == sessions


def test_a_slower_model_moves_the_capacity_within_minutes_of_audio() -> None:
    pace = _fed(AsrPace(), 60, audio_s=5.0, model_ms=500.0)  # RTF 0.1: 7 sessions
    assert pace.capacity() == 7
    _fed(pace, 120, audio_s=5.0, model_ms=3500.0)  # 10 minutes of audio at RTF 0.7
    assert pace.capacity() == 1


def test_admission_refuses_past_the_measured_capacity_and_a_set_one_wins() -> None:
    pace = _fed(AsrPace(), 10, audio_s=5.0, model_ms=1750.0)  # RTF 0.35: floor(0.7 / 0.35) = 2
    admission = Admission(pace)
    measured = LiveSettings(max_sessions=64, max_sessions_per_key=64)
    with admission.admit("a", measured), admission.admit("b", measured):
        with pytest.raises(SessionRefused) as refused, admission.admit("c", measured):
            pass
        assert refused.value.reason == "capacity" and "capacity of 2 live sessions" in refused.value.message
        # MUAALEM_LIVE_CAPACITY_SESSIONS, when set, is the operator's word over the measure.
        with admission.admit("c", LiveSettings(capacity_sessions=3, max_sessions_per_key=64)):
            assert admission.active == 3
