"""The Assessor's branches with stand-in stages (microseconds each): the default content-mismatch
flow, and every degraded path (asr down or late, no log-probs, alignment down, tajweed down,
alignment refusing the input). The gateway's own parts (references, content check with its
phonetic search, fusion) are the real ones."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from services.client.options import build_request
from services.common.errors import DeadlineExceeded, FailedPrecondition, Unavailable
from services.common.pb import common_pb2, gateway_pb2, tajweed_pb2
from services.gateway.app import GatewayApp
from services.gateway.config import GatewayConfig
from services.gateway.likely import LikelyRecited
from services.gateway.locating import LocateService
from services.gateway.reference import builder, moshaf, targets
from services.locate.build import build_index
from services.locate.search import PassageSearch
from tests.gateway.standin import StandInStages, transcription

OK = common_pb2.STAGE_STATUS_OK
SKIPPED = common_pb2.STAGE_STATUS_SKIPPED
FAILED = common_pb2.STAGE_STATUS_FAILED
UNAVAILABLE = common_pb2.STAGE_STATUS_UNAVAILABLE
NOT_ASSESSED = gateway_pb2.WORD_VERDICT_NOT_ASSESSED


def _phonemes(surah: int, ayah: int) -> str:
    return builder.build_reference(targets.ayah_target(surah, ayah), moshaf.default_values()).phonemes


@pytest.fixture
async def app() -> AsyncIterator[GatewayApp]:
    env: dict[str, str] = {}
    built = GatewayApp.build(GatewayConfig.from_env(env), stages=StandInStages(), environ=env)
    yield built
    await built.close()


def _stages(app: GatewayApp) -> StandInStages:
    assert isinstance(app.stages, StandInStages)
    return app.stages


async def _assess(app: GatewayApp, wav: bytes, **options: bool) -> gateway_pb2.Assessment:
    request = build_request(wav, surah=1, ayah=2, name_hint="test.wav", **options)
    started = time.perf_counter()
    assessment = await app.assessor.assess(request)
    # Stand-ins answer at once: the branches cost the gateway's own work only.
    assert time.perf_counter() - started < 5.0
    return assessment


def _statuses(assessment: gateway_pb2.Assessment) -> dict[str, tuple[int, str]]:
    return {s.stage: (s.status, s.message) for s in assessment.stages}


async def test_default_mismatch_flow_skips_the_rules_and_names_what_was_recited(
    app: GatewayApp, test_wav_bytes: bytes
) -> None:
    stages = _stages(app)
    # The learner recited al-Ikhlas 112:1 where al-Fatiha 1:2 was expected.
    stages.transcription = transcription(_phonemes(112, 1))
    assessment = await _assess(app, test_wav_bytes)
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    assert assessment.content.similarity < assessment.content.threshold
    best = assessment.content.likely_recited[0]
    assert (best.surah, best.ayah) == (112, 1)
    statuses = _statuses(assessment)
    assert statuses["alignment"] == (SKIPPED, "content mismatch")
    assert statuses["tajweed"] == (SKIPPED, "content mismatch")
    assert "alignment" not in stages.calls and "tajweed" not in stages.calls
    assert list(assessment.degraded) == []
    assert not assessment.findings and not assessment.errors
    assert assessment.words and all(w.verdict == NOT_ASSESSED for w in assessment.words)
    assert assessment.model_version.name == "stand-in"

    # Asked to, the rules run anyway.
    forced = await _assess(app, test_wav_bytes, run_rules_on_mismatch=True)
    assert forced.content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
    assert _statuses(forced)["alignment"][0] == OK and _statuses(forced)["tajweed"][0] == OK


async def test_a_match_runs_every_stage(app: GatewayApp, test_wav_bytes: bytes) -> None:
    _stages(app).transcription = transcription(_phonemes(1, 2))
    assessment = await _assess(app, test_wav_bytes)
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MATCH
    assert all(status == OK for status, _ in _statuses(assessment).values())
    assert list(assessment.degraded) == []


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Unavailable("asr is down"), UNAVAILABLE),
        (DeadlineExceeded("asr was late"), common_pb2.STAGE_STATUS_DEADLINE_EXCEEDED),
    ],
)
async def test_without_asr_the_content_is_unknown_and_nothing_is_judged(
    app: GatewayApp, test_wav_bytes: bytes, error: Exception, status: int
) -> None:
    stages = _stages(app)
    stages.errors["asr"] = error  # type: ignore[assignment]
    assessment = await _assess(app, test_wav_bytes)
    statuses = _statuses(assessment)
    assert statuses["asr"][0] == status
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_UNKNOWN
    assert statuses["verification"] == (SKIPPED, "no transcription")
    assert statuses["alignment"] == (SKIPPED, "no transcription")
    assert statuses["tajweed"] == (SKIPPED, "no transcription")
    assert list(assessment.degraded) == ["asr"]
    assert all(w.verdict == NOT_ASSESSED for w in assessment.words)
    # The model version falls back to what the tracker learnt from GetModelInfo.
    assert assessment.model_version.name == "stand-in"


async def test_no_log_probs_fails_alignment_and_skips_tajweed(app: GatewayApp, test_wav_bytes: bytes) -> None:
    _stages(app).transcription = transcription(_phonemes(1, 2), log_probs=False)
    assessment = await _assess(app, test_wav_bytes)
    statuses = _statuses(assessment)
    assert statuses["alignment"] == (FAILED, "the asr stage returned no log-probs")
    assert statuses["tajweed"] == (SKIPPED, "no alignment")
    assert list(assessment.degraded) == ["alignment"]
    # The decode still judges the letters word by word.
    assert all(w.verdict == gateway_pb2.WORD_VERDICT_CORRECT for w in assessment.words)


async def test_alignment_down_skips_tajweed(app: GatewayApp, test_wav_bytes: bytes) -> None:
    stages = _stages(app)
    stages.transcription = transcription(_phonemes(1, 2))
    stages.errors["alignment"] = Unavailable("alignment is down")
    assessment = await _assess(app, test_wav_bytes)
    statuses = _statuses(assessment)
    assert statuses["alignment"] == (UNAVAILABLE, "alignment is down")
    assert statuses["tajweed"] == (SKIPPED, "no alignment")
    assert "tajweed" not in stages.calls
    assert list(assessment.degraded) == ["alignment"]


async def test_tajweed_down_leaves_the_decode_and_alignment(app: GatewayApp, test_wav_bytes: bytes) -> None:
    stages = _stages(app)
    stages.transcription = transcription(_phonemes(1, 2))
    stages.errors["tajweed"] = Unavailable("tajweed is down")
    assessment = await _assess(app, test_wav_bytes)
    statuses = _statuses(assessment)
    assert statuses["alignment"][0] == OK and statuses["tajweed"] == (UNAVAILABLE, "tajweed is down")
    assert list(assessment.degraded) == ["tajweed"]
    assert assessment.scores.tajweed == 0.0 and assessment.scores.accuracy == pytest.approx(100.0)


async def test_alignment_refusing_the_input_is_the_callers_error(app: GatewayApp, test_wav_bytes: bytes) -> None:
    stages = _stages(app)
    stages.transcription = transcription(_phonemes(1, 2))
    stages.errors["alignment"] = FailedPrecondition("12 frames cannot hold 40 phonemes")
    with pytest.raises(FailedPrecondition, match="12 frames"):
        await _assess(app, test_wav_bytes)


async def test_a_gateway_that_holds_the_passage_index_names_what_was_recited_from_it(
    monkeypatch: pytest.MonkeyPatch, test_wav_bytes: bytes
) -> None:
    """Held (after a locate target, or warmed), the index answers the mismatch in milliseconds;
    a small index stands in for the whole Quran's (45 s to build)."""
    search = PassageSearch(build_index(surahs=(112,), workers=1))
    monkeypatch.setattr(LocateService, "loaded_whole_quran", lambda self: search)
    env: dict[str, str] = {}
    app = GatewayApp.build(GatewayConfig.from_env(env), stages=StandInStages(), environ=env)
    try:
        _stages(app).transcription = transcription(_phonemes(112, 1))
        assessment = await _assess(app, test_wav_bytes)
        assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
        best = assessment.content.likely_recited[0]
        assert (best.surah, best.ayah, best.start_word, best.end_word) == (112, 1, 0, 4)
        finder = app.assessor.verifier.finder
        assert isinstance(finder, LikelyRecited) and finder.last_source == "passage-index"
    finally:
        await app.close()


async def test_letter_errors_send_the_stretch_back_for_its_frame_phases(app: GatewayApp, test_wav_bytes: bytes) -> None:
    stages = _stages(app)
    stages.transcription = transcription(_phonemes(1, 2))
    # A clean stretch: its decode alone is judged.
    await _assess(app, test_wav_bytes)
    assert "asr_phases" not in stages.calls and stages.calls.count("tajweed") == 1
    assert not stages.validated[0].decode.phase_phonemes
    # A letter error: the stretch is decoded at its other phases and judged again with them.
    stages.calls.clear()
    stages.validated.clear()
    stages.phase_phonemes = ("a", "b", "c")
    wrong = common_pb2.Finding(rule=common_pb2.RULE_PRONUNCIATION, verdict=common_pb2.VERDICT_WRONG, word_index=0)
    stages.validation = tajweed_pb2.ValidateResponse(findings=[wrong])
    assessment = await _assess(app, test_wav_bytes)
    assert stages.calls.count("asr_phases") == 1 and stages.calls.count("tajweed") == 2
    assert list(stages.validated[1].decode.phase_phonemes) == ["a", "b", "c"]
    assert _statuses(assessment)["asr_phases"][0] == OK
    # The phases cannot be had: the first judgement stands, and the stage says so.
    stages.calls.clear()
    stages.errors["asr_phases"] = Unavailable("asr is down")
    assessment = await _assess(app, test_wav_bytes)
    assert stages.calls.count("tajweed") == 1 and _statuses(assessment)["asr_phases"][0] == UNAVAILABLE
    assert any(e.word_index == 0 for e in assessment.errors)
