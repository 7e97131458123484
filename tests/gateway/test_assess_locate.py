"""Assess with a locate target through the real Assessor and stages (alignment, tajweed, the
follower), with the tone stand-in asr that hears exactly the phonemes it is played: the passage
is found in the decode of the whole file, assessed as the target it spans, and the answer says
so (live sessions that locate: tests/gateway/live/test_live_locate.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.locate_settings import LocateConfig
from services.gateway.locating import LocateService
from services.gateway.reference.cache import MemoryStore
from tests.gateway.live.harness import build_assessor, join
from tests.gateway.live.tone_asr import ToneAsr, tone_for

LOCATE = common_pb2.Target(locate=common_pb2.LocateTarget())


@pytest.fixture(scope="module")
def assessor() -> Assessor:
    assessor = build_assessor(ToneAsr())
    assessor.locator = LocateService(MemoryStore(8), LocateConfig(surahs=(111, 112, 113, 114), workers=1))
    return assessor


def _tones(assessor: Assessor, target: common_pb2.Target) -> npt.NDArray[np.float32]:
    reference = asyncio.run(assessor.reference(target, None)).reference
    return join(tone_for(reference.phonemes))


def _request(audio: npt.NDArray[np.float32]) -> gateway_pb2.AssessRequest:
    pcm = common_pb2.RawPcm(
        data=audio.astype("<f4").tobytes(), sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE
    )
    return gateway_pb2.AssessRequest(audio=common_pb2.Audio(pcm=pcm), target=LOCATE)


def test_two_ayahs_recited_with_no_target_are_located_and_assessed_as_that_range(assessor: Assessor) -> None:
    recited = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=113, first_ayah=1, last_ayah=2))
    audio = _tones(assessor, recited)
    assessment = asyncio.run(assessor.assess(_request(audio)))
    assert assessment.target == recited
    located = assessment.located
    assert located.sure and located.margin >= located.sure_margin
    assert (located.passage.surah, located.passage.ayah, located.passage.end_ayah) == (113, 1, 2)
    assert list(located.surahs) == [111, 112, 113, 114] and located.search_ms > 0
    assert assessment.content.status == gateway_pb2.CONTENT_STATUS_MATCH
    assert {(w.surah, w.ayah) for w in assessment.words} == {(113, 1), (113, 2)}
    # Located, it is assessed exactly as if the range had been named (the tones hold the madd
    # of أَعُوذُ and مَا short: the stand-in's, not the locate's, doing).
    named = _request(audio)
    named.target.CopyFrom(recited)
    expected = asyncio.run(assessor.assess(named))
    assert not expected.HasField("located")
    assert [(w.word_index, w.verdict) for w in assessment.words] == [(w.word_index, w.verdict) for w in expected.words]
    assert [e.message_en for e in assessment.errors] == [e.message_en for e in expected.errors]


def test_without_a_locator_a_locate_target_is_refused() -> None:
    bare = build_assessor(ToneAsr())
    with pytest.raises(InvalidArgument, match="locating is off"):
        asyncio.run(bare.assess(_request(np.zeros(16000, dtype=np.float32))))
