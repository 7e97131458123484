"""The live core driven without a network: the real reference service, alignment and tajweed
stages in-process, the tone stand-in for asr."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from services.alignment.config import AlignmentConfig
from services.alignment.core import Aligner
from services.alignment.servicer import AlignmentServicer
from services.common.pb import common_pb2, gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.config import GatewayConfig
from services.gateway.follow.stretch import stretch_target
from services.gateway.live.session import LiveSession
from services.gateway.live.settings import LiveSettings
from services.gateway.reference.service import ReferenceService
from services.gateway.stages import LocalStages
from services.gateway.verification import ContentVerifier
from services.tajweed.config import TajweedConfig
from services.tajweed.core import TajweedValidator
from services.tajweed.servicer import TajweedServicer
from tests.gateway.live.tone_asr import ToneAsr, silence, tone_for

ENV: dict[str, str] = {}


def local_stages(asr: ToneAsr) -> LocalStages:
    """The stand-in asr with the real alignment and tajweed stages, in-process."""
    return LocalStages(
        asr,
        AlignmentServicer(Aligner.from_config(AlignmentConfig.from_env(ENV))),
        TajweedServicer(TajweedValidator(TajweedConfig.from_env(ENV))),
    )


def build_assessor(asr: ToneAsr) -> Assessor:
    config = GatewayConfig.from_env(ENV)
    stages = local_stages(asr)
    assessor = Assessor(config, stages, ReferenceService.from_env(ENV), ContentVerifier(), 600.0, 1200.0)
    # Tones are not speech to Silero: the stand-in's sessions segment on energy alone.
    assessor.speech_settings = LiveSettings(vad="energy")
    return assessor


def pcm_config(target: common_pb2.Target) -> gateway_pb2.LiveConfig:
    return gateway_pb2.LiveConfig(
        target=target,
        pcm=common_pb2.RawPcm(sample_rate_hz=16000, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE),
    )


@dataclass
class Run:
    events: list[gateway_pb2.AssessLiveResponse] = field(default_factory=list)

    def of(self, kind: str) -> list[gateway_pb2.AssessLiveResponse]:
        return [e for e in self.events if e.WhichOneof("kind") == kind]

    @property
    def final(self) -> gateway_pb2.Assessment:
        return self.of("final")[-1].final

    def last_verdicts(self) -> dict[int, int]:
        verdicts: dict[int, int] = {}
        for event in self.of("words"):
            for word in event.words.words:
                verdicts[word.word_index] = word.verdict
        return verdicts


async def recite_words(assessor: Assessor, target: common_pb2.Target, first: int, end: int) -> npt.NDArray[np.float32]:
    """Tones of the target's words [first, end), read as a stretch that stops at its end."""
    words = list((await assessor.reference(target, None)).reference.words)
    stretch = (await assessor.reference(stretch_target(words, first, end), None)).reference
    return tone_for(stretch.phonemes)


async def run_session(
    assessor: Assessor, config: gateway_pb2.LiveConfig, audio: npt.NDArray[np.float32], chunk_s: float = 0.25
) -> Run:
    settings = LiveSettings(vad="energy")
    session = LiveSession(assessor, settings, config)
    await session.start()
    data = audio.astype("<f4").tobytes()
    step = int(chunk_s * 16000) * 4
    for offset in range(0, len(data), step):
        await session.feed(data[offset : offset + step])
    await session.finish()
    run = Run()
    while not session.events.empty():
        event = session.events.get_nowait()
        assert event is not None
        run.events.append(event)
    await session.close()
    return run


def join(*parts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    pieces = [silence(0.5)]
    for part in parts:
        pieces.extend([part, silence(0.8)])
    return np.concatenate(pieces)


__all__ = ["asyncio", "build_assessor", "join", "pcm_config", "recite_words", "run_session"]
