"""The gateway's part of a comparison with a reference recitation: the learner's audio to the
prosody stage beside the asr (so it adds no latency), then, with the learner's alignment, the
reference recitation's cached analysis and one Compare call. Every failure here only drops the
comparison (the assessment is answered, marked degraded)."""

from __future__ import annotations

import asyncio

import numpy as np

from services.common.audio import DecodedAudio
from services.common.errors import InvalidArgument
from services.common.pb import common_pb2, gateway_pb2, prosody_pb2
from services.gateway.prosody_stage import ProsodyStage
from services.gateway.reference.recitations import Analysed, RecitationService, pcm_audio
from services.gateway.stage_run import StageLedger


class Comparer:
    def __init__(self, recitations: RecitationService, prosody: ProsodyStage) -> None:
        self.recitations = recitations
        self.prosody = prosody

    def check(self, target: common_pb2.Target, compare_to: str) -> tuple[int, int, str]:
        """(surah, ayah, reciter) of a comparison request; InvalidArgument naming what is wrong."""
        if target.WhichOneof("kind") != "ayah":
            raise InvalidArgument("compare_to needs a single-ayah target (reference recitations are kept per ayah)")
        surah, ayah = target.ayah.surah, target.ayah.ayah
        return surah, ayah, self.recitations.store.resolve(surah, ayah, compare_to)

    async def analyze(self, audio: DecodedAudio, timeout: float | None) -> prosody_pb2.AnalyzeResponse:
        samples = np.asarray(audio.samples, dtype=np.float32)
        return await self.prosody.analyze(prosody_pb2.AnalyzeRequest(audio=pcm_audio(samples)), timeout)

    async def reference(self, surah: int, ayah: int, reciter: str, model_version: str) -> Analysed:
        return await self.recitations.analysis(surah, ayah, reciter, model_version)

    async def compare(
        self,
        learner: prosody_pb2.ProsodyFeatures,
        reference_text: common_pb2.Reference,
        alignment: common_pb2.Alignment | None,
        teacher: Analysed,
        timeout: float | None,
    ) -> prosody_pb2.CompareResponse:
        mine = prosody_pb2.Recitation(features=learner, reference=reference_text)
        if alignment is not None:
            mine.alignment.CopyFrom(alignment)
        theirs = prosody_pb2.Recitation(
            features=teacher.analysis.features, reference=teacher.reference, alignment=teacher.analysis.alignment
        )
        request = prosody_pb2.CompareRequest(learner=mine, reference=theirs, reciter=teacher.analysis.reciter)
        return await self.prosody.compare(request, timeout)

    async def run(
        self,
        analyzed: asyncio.Task[prosody_pb2.AnalyzeResponse | None],
        request: gateway_pb2.AssessRequest,
        reference_text: common_pb2.Reference,
        alignment: common_pb2.Alignment | None,
        ledger: StageLedger,
        model_version: str,
        timeout: float | None,
    ) -> prosody_pb2.Comparison | None:
        """The comparison, or None with the reason in the ledger ("comparison" then counts as degraded)."""
        learner = await analyzed
        if learner is None:
            ledger.record("comparison", common_pb2.STAGE_STATUS_SKIPPED, message="no prosody features")
            return None

        async def call() -> prosody_pb2.CompareResponse:
            # Checked again here: the recitation may have been removed since the request was admitted.
            surah, ayah, reciter = self.check(request.target, request.compare_to)
            teacher = await self.reference(surah, ayah, reciter, model_version)
            reply = await self.compare(learner.features, reference_text, alignment, teacher, timeout)
            reply.timings.append(
                common_pb2.StageTiming(stage="comparison.reference_cache_hit", duration_ms=float(teacher.cache_hit))
            )
            return reply

        reply = await ledger.run("comparison", call, timings=lambda r: r.timings)
        return reply.comparison if reply is not None else None
