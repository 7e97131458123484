"""A live session encodes each segment while it is recited (live/encoding.py over the asr's
TranscribeLive): the follower then uses the streamed Transcription for the segment's window
instead of sending the whole segment at the pause. In process, with the committed demo
checkpoint (a model that hears) behind the real asr servicer, the real alignment and tajweed
stages, and a synthesized 112:1-4 with a stop at each ayah end."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner
from services.alignment.servicer import AlignmentServicer
from services.asr.checkpoint import DEMO_CHECKPOINT
from services.asr.engine import AsrEngine
from services.asr.servicer import AsrServicer
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.config import GatewayConfig
from services.gateway.live.session import LiveSession
from services.gateway.live.settings import LiveSettings
from services.gateway.reference.service import ReferenceService
from services.gateway.stages import LocalStages
from services.gateway.verification import ContentVerifier
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.servicer import TajweedServicer
from tests.asr import support
from tests.gateway.live.harness import ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
    pytest.mark.skipif(not (DEMO_CHECKPOINT / "model.safetensors").is_file(), reason="no demo checkpoint"),
]
TARGET = common_pb2.Target(ayah_range=common_pb2.AyahRangeTarget(surah=112, first_ayah=1, last_ayah=4))


class CountingAsr(AsrServicer):
    """The real servicer, counting the whole-segment Transcribe calls it answers (and apart, the
    calls for a stretch's frame phases, which only a stretch with letter errors makes)."""

    unary = 0
    phases = 0

    async def Transcribe(self, request: Any, context: Any) -> Any:
        if request.options.frame_phases > 1:
            self.phases += 1
        else:
            self.unary += 1
        return await super().Transcribe(request, context)


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[AsrEngine]:
    engine = AsrEngine(support.demo_config())
    await engine.start()
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture(scope="module")
def recitation() -> np.ndarray:
    from services.demo.synth.reciter import Spec, recite

    return recite(Spec(112, 1, last_ayah=4, tempo=0.3)).samples.astype(np.float32)


async def _live(engine: AsrEngine, audio: np.ndarray, *, encode: bool) -> tuple[CountingAsr, list[Any]]:
    asr = CountingAsr(engine)
    stages = LocalStages(
        asr,
        AlignmentServicer(Aligner.from_config(AlignmentConfig.from_env(ENV))),
        TajweedServicer(TajweedValidator(TajweedConfig.from_env(ENV))),
    )
    assessor = Assessor(
        GatewayConfig.from_env(ENV), stages, ReferenceService.from_env(ENV), ContentVerifier(), 600, 1200
    )
    config = gateway_pb2.LiveConfig(
        target=TARGET,
        pcm=common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE),
    )
    session = LiveSession(assessor, LiveSettings(encode_while_recited=encode), config)
    await session.start()
    data = audio.astype("<f4").tobytes()
    step = 1600 * 4  # 0.1 s
    for offset in range(0, len(data), step):
        await session.feed(data[offset : offset + step])
    await session.finish()
    events = []
    while not session.events.empty():
        events.append(session.events.get_nowait())
    await session.close()
    return asr, events


async def test_segments_encoded_while_recited_need_no_transcribe_at_the_pause(
    engine: AsrEngine, recitation: np.ndarray
) -> None:
    streamed, events = await _live(engine, recitation, encode=True)
    whole, baseline = await _live(engine, recitation, encode=False)
    segments = [e.segment for e in events if e.WhichOneof("kind") == "segment"]
    assert len(segments) >= 3, segments  # a stop at each ayah end
    # Without encoding, every segment is sent whole at its pause; with it, none of the segments
    # whose window the follower decodes as it is (the others: a held or looked-back word).
    assert whole.unary >= len(segments)
    assert streamed.unary < whole.unary / 2, (streamed.unary, whole.unary)
    final, final_whole = events[-1].final, baseline[-1].final
    assert final.content.status == gateway_pb2.CONTENT_STATUS_MATCH
    assert [w.uthmani for w in final.words] == [w.uthmani for w in final_whole.words]
    same = sum(a.verdict == b.verdict for a, b in zip(final.words, final_whole.words, strict=True))
    # The streamed posteriors agree with the whole segment's on ~97 % of frames (benchmarks.md):
    # a verdict may move, most do not.
    assert same >= 0.8 * len(final.words), [(w.uthmani, w.verdict) for w in final.words]
