"""The gateway's calls to its stages, as the Assess flow and the recitation follower make them:
the reference of a target, the asr's transcription of some audio, the alignment of a reference
to its log-probs, and the tajweed rules on that alignment.

Every call carries what is left of the caller's deadline (minus the reserve kept for fusion)
unless the caller gives its own timeout; a stage that fails or is late is recorded in the
caller's ledger and answers None, so the caller gives a partial answer that says so.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator

import numpy as np

from services.common.audio import DecodedAudio
from services.common.errors import FailedPrecondition, MeshError
from services.common.pb import alignment_pb2, asr_pb2, common_pb2, gateway_pb2, tajweed_pb2
from services.common.tensors import to_proto
from services.gateway.asr_pace import AsrPace
from services.gateway.config import GatewayConfig
from services.gateway.reference.cache import model_namespace
from services.gateway.reference.service import ReferenceResult, ReferenceService
from services.gateway.stage_run import StageLedger
from services.gateway.stages import Stages, stage_timeout
from services.gateway.vocabulary import VocabularyContract

log = logging.getLogger(__name__)

# Audio longer than this goes to the asr stage as a stream of chunks: a unary message of
# 16 kHz float32 must stay under the 10 MiB message limit.
UNARY_AUDIO_LIMIT_S = 100.0
STREAM_CHUNK_BYTES = 1 << 20


class ModelVersionTracker:
    """The asr model's version, which namespaces the reference cache: a new model starts a
    new namespace. Learnt from the asr stage and refreshed from every transcription."""

    # After a failed ask, references use the neutral namespace this long before asr is asked
    # again: while asr is down, every lookup would otherwise wait out its own GetModelInfo.
    RETRY_AFTER_S = 2.0

    def __init__(self, stages: Stages) -> None:
        self._stages = stages
        self._version: str | None = None
        self._failed_at = -math.inf
        self._asking = asyncio.Lock()
        self.model: common_pb2.ModelVersion | None = None
        self.vocabulary = VocabularyContract.default()
        # The tajweed thresholds fitted for this model (its checkpoint's calibration.json), passed
        # on to the tajweed stage with every request; "" when the checkpoint has none.
        self.tajweed_calibration_json = ""

    def observe(self, model: common_pb2.ModelVersion) -> None:
        self.model = model
        self._version = model_namespace(model)

    async def current(self, timeout: float = 1.0) -> str:
        # One ask at a time: concurrent first requests wait for it instead of each asking.
        async with self._asking:
            if self._version is None and time.monotonic() - self._failed_at >= self.RETRY_AFTER_S:
                try:
                    info = await self._stages.model_info(timeout)
                    self.observe(info.model_version)
                    self.tajweed_calibration_json = info.tajweed_calibration_json
                    await self.vocabulary.check(model_namespace(info.model_version), info)
                except MeshError:
                    self._failed_at = time.monotonic()
        # The asr stage is down: references are still served, under a neutral namespace.
        return self._version if self._version is not None else "unversioned"

    async def confirm_vocabulary(self, timeout: float = 1.0) -> None:
        """Checks the vocabulary contract again when the model version changed since the last
        check; raises while it is broken. An asr that cannot answer now is asked next time."""
        if self._version is not None and self._version != self.vocabulary.checked:
            async with self._asking:
                try:
                    info = await self._stages.model_info(timeout)
                    self.tajweed_calibration_json = info.tajweed_calibration_json
                    await self.vocabulary.check(model_namespace(info.model_version), info)
                except MeshError as exc:
                    log.warning("cannot check the asr vocabulary now: %s", exc)
        self.vocabulary.require()


class StageCalls:
    def __init__(self, config: GatewayConfig, stages: Stages, references: ReferenceService) -> None:
        self.config = config
        self.stages = stages
        self.references = references
        self.versions = ModelVersionTracker(stages)
        # The asr's real-time factor from its own timings: the measured live capacity (asr_pace.py).
        self.pace = AsrPace()

    async def reference(self, target: common_pb2.Target, moshaf: common_pb2.MoshafAttributes | None) -> ReferenceResult:
        return await self.references.get(target, moshaf, await self.versions.current())

    def asr_options(self, options: gateway_pb2.AssessOptions) -> asr_pb2.TranscribeOptions:
        """What the gateway asks of the asr for a request's options (Transcribe and TranscribeLive)."""
        return asr_pb2.TranscribeOptions(
            include_log_probs=True,
            levels=["phonemes"],
            force_segmentation=options.force_segmentation,
            detect_completeness=self.config.completeness_check
            and ("waqf" in options.validators or not options.validators),
        )

    async def transcribe(
        self,
        audio: DecodedAudio,
        options: gateway_pb2.AssessOptions,
        timeout: float | None,
        asr_options: asr_pb2.TranscribeOptions | None = None,
    ) -> asr_pb2.Transcription:
        asr_options = asr_options if asr_options is not None else self.asr_options(options)
        pcm = audio.samples.tobytes()  # already contiguous little-endian float32 (DecodedAudio)
        layout = common_pb2.RawPcm(sample_rate_hz=audio.sample_rate, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE)
        if audio.duration_s <= UNARY_AUDIO_LIMIT_S:
            layout.data = pcm
            request = asr_pb2.TranscribeRequest(audio=common_pb2.Audio(pcm=layout), options=asr_options)
            return await self.stages.transcribe(request, timeout)

        async def chunks() -> AsyncIterator[asr_pb2.TranscribeStreamRequest]:
            yield asr_pb2.TranscribeStreamRequest(
                header=asr_pb2.TranscribeStreamHeader(options=asr_options, pcm_format=layout)
            )
            for offset in range(0, len(pcm), STREAM_CHUNK_BYTES):
                yield asr_pb2.TranscribeStreamRequest(chunk=pcm[offset : offset + STREAM_CHUNK_BYTES])

        return await self.stages.transcribe_stream(chunks(), timeout)

    async def frame_phases(self, audio: DecodedAudio, ledger: StageLedger) -> tuple[str, ...] | None:
        """The phonemes of `audio` decoded at MUAALEM_LETTER_PHASES - 1 other frame phases (the
        tajweed stage weighs a letter error by how many phases hear it); None when the asr did
        not answer, recorded in the ledger as the "asr_phases" stage."""
        reserve = self.config.fusion_reserve_s
        options = asr_pb2.TranscribeOptions(skip_sifat=True, frame_phases=self.config.letter_phases)

        async def call() -> asr_pb2.Transcription:
            return await self.transcribe(audio, gateway_pb2.AssessOptions(), stage_timeout(reserve), options)

        transcription = await ledger.run("asr_phases", call, timings=lambda t: t.timings)
        return tuple(transcription.decode.phase_phonemes) if transcription is not None else None

    async def observe(self, transcription: asr_pb2.Transcription) -> None:
        """Every transcription names its model: a new model moves the reference cache's
        namespace, and must pass the vocabulary contract (Unavailable while it does not)."""
        self.versions.observe(transcription.model_version)
        self.pace.observe(transcription)
        await self.versions.confirm_vocabulary()

    async def align(
        self,
        transcription: asr_pb2.Transcription,
        reference: common_pb2.Reference,
        options: gateway_pb2.AssessOptions,
        ledger: StageLedger,
    ) -> common_pb2.Alignment | None:
        phoneme_log_probs = next((lp.log_probs for lp in transcription.log_probs if lp.level == "phonemes"), None)
        if phoneme_log_probs is None:
            ledger.record("alignment", common_pb2.STAGE_STATUS_FAILED, message="the asr stage returned no log-probs")
            return None
        request = alignment_pb2.AlignRequest(
            phoneme_log_probs=phoneme_log_probs,
            frame_duration_s=transcription.frame_duration_s,
            reference=reference,
            options=options.align,
            # The asr's own labels by id, checked against the reference's (vocabulary.py).
            vocabulary=self.versions.vocabulary.labels,
        )
        reserve = self.config.fusion_reserve_s

        async def call() -> alignment_pb2.AlignResponse:
            return await self.stages.align(request, stage_timeout(reserve))

        # The aligner refuses only audio that cannot hold the passage (too few frames for its
        # phonemes): that is the caller's input, not an outage, so no partial answer hides it.
        reply = await ledger.run("alignment", call, timings=lambda r: r.timings, raises=(FailedPrecondition,))
        return reply.alignment if reply is not None else None

    async def validate(
        self,
        reference: common_pb2.Reference,
        alignment: common_pb2.Alignment,
        transcription: asr_pb2.Transcription,
        energy: tuple[np.ndarray, float] | None,
        audio: DecodedAudio,
        options: gateway_pb2.AssessOptions,
        ledger: StageLedger,
    ) -> tajweed_pb2.ValidateResponse | None:
        request = tajweed_pb2.ValidateRequest(
            reference=reference,
            alignment=alignment,
            decode=transcription.decode,
            audio_duration_s=audio.duration_s,
            # The gateway always asks for passed checks: the tajweed score counts them.
            options=tajweed_pb2.ValidateOptions(validators=options.validators, include_correct=True),
            calibration_json=self.versions.tajweed_calibration_json,
        )
        if energy is not None:
            db, hop_s = energy
            request.energy.CopyFrom(tajweed_pb2.EnergyEnvelope(hop_s=hop_s, db=to_proto(db, "float32")))
        if transcription.HasField("is_complete"):
            request.is_complete = transcription.is_complete
        reserve = self.config.fusion_reserve_s

        async def call() -> tajweed_pb2.ValidateResponse:
            return await self.stages.validate(request, stage_timeout(reserve))

        return await ledger.run("tajweed", call, timings=lambda r: r.timings)
