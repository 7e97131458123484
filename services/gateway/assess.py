"""One assessment, as the design lays out its Assess flow:

decode audio once -> [reference || asr || energy] -> content check -> alignment -> tajweed -> fusion

Every stage call carries what is left of the caller's deadline (minus a small reserve for
fusion); a stage that fails or is late leaves a partial answer that names it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator

import numpy as np

from services.alignment.thresholds import problems as threshold_problems
from services.alignment.vocabulary import default_vocabulary
from services.common import context, tracing
from services.common.audio import DecodedAudio, decode_message, peak_dbfs
from services.common.errors import FailedPrecondition, InvalidArgument, MeshError
from services.common.pb import alignment_pb2, asr_pb2, common_pb2, gateway_pb2, tajweed_pb2
from services.common.tensors import to_proto
from services.gateway import metrics
from services.gateway.config import GatewayConfig
from services.gateway.fusion import FusionInput, fuse
from services.gateway.live.segmenter import NO_SPEECH, has_speech
from services.gateway.live.settings import LiveSettings
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import targets
from services.gateway.reference.cache import model_namespace
from services.gateway.reference.comparison import Comparer
from services.gateway.reference.service import ReferenceResult, ReferenceService
from services.gateway.stage_run import StageLedger
from services.gateway.stages import Stages, stage_timeout
from services.gateway.verification import ContentVerifier
from services.gateway.vocabulary import VocabularyContract
from services.tajweed.energy import energy_envelope
from services.tajweed.model import VALIDATORS

log = logging.getLogger(__name__)

# Audio longer than this goes to the asr stage as a stream of chunks: a unary message of
# 16 kHz float32 must stay under the 10 MiB message limit.
UNARY_AUDIO_LIMIT_S = 100.0
STREAM_CHUNK_BYTES = 1 << 20


def decode_audio(audio: common_pb2.Audio, *, max_duration_s: float) -> DecodedAudio:
    """The request's audio as 16 kHz mono float32 (rejections name the problem)."""
    return decode_message(audio, max_duration_s=max_duration_s, min_duration_s=0.1)


def _decode_and_measure(audio: common_pb2.Audio, max_duration_s: float) -> tuple[DecodedAudio, float]:
    decoded = decode_audio(audio, max_duration_s=max_duration_s)
    return decoded, peak_dbfs(decoded.samples)


def check_options(options: gateway_pb2.AssessOptions) -> None:
    """The caller's options, checked here: a stage that refused them later would only leave a
    partial answer, not tell the caller what to fix."""
    if options.HasField("content_threshold") and not 0.0 <= options.content_threshold <= 1.0:
        raise InvalidArgument(f"options.content_threshold must be within 0..1, got {options.content_threshold}")
    unknown = sorted(set(options.validators) - set(VALIDATORS))
    if unknown:
        raise InvalidArgument(f"options.validators: unknown {unknown}; valid: {', '.join(VALIDATORS)}")
    align = options.align
    if align.band_frames < 0:
        raise InvalidArgument(f"options.align.band_frames must be >= 0, got {align.band_frames}")
    if align.HasField("default_threshold") and not math.isfinite(align.default_threshold):
        raise InvalidArgument(f"options.align.default_threshold must be finite, got {align.default_threshold}")
    wrong = threshold_problems(dict(align.thresholds), default_vocabulary())
    if wrong:
        raise InvalidArgument("options.align.thresholds: " + "; ".join(wrong))


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


class Assessor:
    def __init__(
        self,
        config: GatewayConfig,
        stages: Stages,
        references: ReferenceService,
        verifier: ContentVerifier,
        max_audio_s: float,
        max_stream_audio_s: float,
        comparer: Comparer | None = None,
    ) -> None:
        self.comparer = comparer
        self.config = config
        self.stages = stages
        self.references = references
        self.verifier = verifier
        self.versions = ModelVersionTracker(stages)
        self.max_audio_s = max_audio_s
        self.max_stream_audio_s = max_stream_audio_s
        # The voice-activity settings of the "no recitation detected" check (the live ones).
        self.speech_settings: LiveSettings | None = None

    async def reference(self, target: common_pb2.Target, moshaf: common_pb2.MoshafAttributes | None) -> ReferenceResult:
        return await self.references.get(target, moshaf, await self.versions.current())

    async def refuse_inaudible(self, audio: DecodedAudio, level: float, what: str = "the audio") -> None:
        """InvalidArgument for silent audio, or loud audio with no speech in it (noise, hum, a
        tone): say so rather than judge noise as a recitation (or keep it as a reference)."""
        if level < self.config.min_peak_dbfs:
            raise InvalidArgument(
                f"{what} is silent: its loudest sample is {level:.1f} dBFS, below {self.config.min_peak_dbfs:.0f} dBFS"
            )
        if not await asyncio.to_thread(has_speech, audio.samples, self.speech_settings):
            raise InvalidArgument(NO_SPEECH if what == "the audio" else f"{what}: {NO_SPEECH}")

    async def assess(self, request: gateway_pb2.AssessRequest, *, streamed: bool = False) -> gateway_pb2.Assessment:
        started = time.perf_counter()
        ledger = StageLedger()
        # Validation first: a bad target, attribute or option costs nothing downstream.
        spec = targets.target_from_proto(request.target)
        tracing.set_attributes(target=spec.key(), streamed=streamed)
        moshaf_mod.to_dict(request.moshaf if request.HasField("moshaf") else None)
        check_options(request.options)
        if request.HasField("compare_to"):
            if self.comparer is None:
                raise InvalidArgument("compare_to: comparisons are off here (no prosody stage configured)")
            self.comparer.check(request.target, request.compare_to)

        audio_started = time.perf_counter()
        limit = self.max_stream_audio_s if streamed else self.max_audio_s
        # Decoding and the loudness scan both walk up to 20 minutes of samples: off the event loop.
        audio, level = await asyncio.to_thread(_decode_and_measure, request.audio, limit)
        await self.refuse_inaudible(audio, level)
        ledger.record("audio", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - audio_started) * 1000)
        tracing.set_attributes(audio_seconds=round(audio.duration_s, 3))
        return await self._assess_decoded(request, audio, ledger, started)

    async def _assess_decoded(
        self,
        request: gateway_pb2.AssessRequest,
        audio: DecodedAudio,
        ledger: StageLedger,
        started: float,
    ) -> gateway_pb2.Assessment:
        options = request.options
        reserve = self.config.fusion_reserve_s
        moshaf = request.moshaf if request.HasField("moshaf") else None

        async def reference_call() -> ReferenceResult:
            return await self.reference(request.target, moshaf)

        async def asr_call() -> asr_pb2.Transcription:
            return await self._transcribe(audio, options, stage_timeout(reserve))

        async def energy_call() -> tuple[np.ndarray, float]:
            return await asyncio.to_thread(energy_envelope, audio.samples, audio.sample_rate)

        reference_task = asyncio.create_task(ledger.run("reference", reference_call))

        def asr_timings(transcription: asr_pb2.Transcription) -> list[common_pb2.StageTiming]:
            return list(transcription.timings)

        asr_task = asyncio.create_task(ledger.run("asr", asr_call, timings=asr_timings))
        energy_task = asyncio.create_task(ledger.run("energy", energy_call))
        # The learner's prosody needs only the audio: beside the asr, adding no latency.
        prosody_task = None
        if self.comparer is not None and request.HasField("compare_to"):
            comparer = self.comparer
            prosody_task = asyncio.create_task(
                ledger.run(
                    "prosody", lambda: comparer.analyze(audio, stage_timeout(reserve)), timings=lambda r: r.timings
                )
            )
        reference_result, transcription, energy = await asyncio.gather(reference_task, asr_task, energy_task)
        if reference_result is None:
            # Validation passed above, so the only way here is an internal failure: say it plainly.
            failed = next(r for r in ledger.reports if r.stage == "reference")
            raise InvalidArgument(f"no reference: {failed.message}")
        reference = reference_result.reference
        if transcription is not None:
            self.versions.observe(transcription.model_version)
            await self.versions.confirm_vocabulary()

        # Content verification: is this the expected passage at all?
        verify_started = time.perf_counter()
        if transcription is None:
            content = gateway_pb2.ContentCheck(status=gateway_pb2.CONTENT_STATUS_UNKNOWN)
            ledger.record("verification", common_pb2.STAGE_STATUS_SKIPPED, message="no transcription")
        else:
            threshold = options.content_threshold if options.HasField("content_threshold") else None
            content = await asyncio.to_thread(self.verifier.check, transcription.decode.phonemes, reference, threshold)
            ledger.record("verification", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - verify_started) * 1000)

        mismatch = content.status == gateway_pb2.CONTENT_STATUS_MISMATCH
        rules_run = transcription is not None and (not mismatch or options.run_rules_on_mismatch)

        alignment: common_pb2.Alignment | None = None
        findings: list[common_pb2.Finding] | None = None
        tempo: common_pb2.Tempo | None = None
        if not rules_run:
            why = "content mismatch" if mismatch else "no transcription"
            ledger.record("alignment", common_pb2.STAGE_STATUS_SKIPPED, message=why)
            ledger.record("tajweed", common_pb2.STAGE_STATUS_SKIPPED, message=why)
        else:
            assert transcription is not None
            alignment = await self._align(transcription, reference, options, ledger, reserve)
            if alignment is None:
                ledger.record("tajweed", common_pb2.STAGE_STATUS_SKIPPED, message="no alignment")
            else:
                validated = await self._validate(
                    reference, alignment, transcription, energy, audio, options, ledger, reserve
                )
                if validated is not None:
                    findings = list(validated.findings)
                    tempo = validated.tempo

        comparison = None
        if prosody_task is not None and self.comparer is not None:
            version = await self.versions.current()
            comparison = await self.comparer.run(
                prosody_task, request, reference, alignment, ledger, version, stage_timeout(reserve)
            )

        fusion_started = time.perf_counter()
        fused = fuse(
            FusionInput(
                reference=reference,
                decode=transcription.decode if transcription is not None else None,
                alignment=alignment,
                findings=findings,
                content=content,
                rules_ran=rules_run,
                include_correct=options.include_correct,
            )
        )
        ledger.record("fusion", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - fusion_started) * 1000)

        assessment = gateway_pb2.Assessment(
            request_id=context.request_id() or "",
            target=request.target,
            content=content,
            words=fused.words,
            errors=fused.errors,
            findings=fused.findings,
            scores=fused.scores,
            stages=ledger.reports,
            cache_hit=reference_result.cache_hit,
            degraded=ledger.degraded(),
            audio_duration_s=audio.duration_s,
            uthmani=reference.uthmani,
        )
        if transcription is not None:
            assessment.model_version.CopyFrom(transcription.model_version)
        elif self.versions.model is not None:
            assessment.model_version.CopyFrom(self.versions.model)
        if tempo is not None:
            assessment.tempo.CopyFrom(tempo)
        if comparison is not None:
            assessment.comparison.CopyFrom(comparison)
        if options.include_details:
            assessment.reference.CopyFrom(reference)
            if transcription is not None:
                assessment.decode.CopyFrom(transcription.decode)
            if alignment is not None:
                assessment.alignment.CopyFrom(alignment)
        assessment.total_ms = (time.perf_counter() - started) * 1000
        metrics.record_assessment(list(assessment.degraded))
        tracing.set_attributes(
            cache_hit=reference_result.cache_hit,
            degraded=list(assessment.degraded),
            **{"muaalem.content_status": gateway_pb2.ContentStatus.Name(content.status)},
        )
        return assessment

    async def _transcribe(
        self, audio: DecodedAudio, options: gateway_pb2.AssessOptions, timeout: float | None
    ) -> asr_pb2.Transcription:
        asr_options = asr_pb2.TranscribeOptions(
            include_log_probs=True,
            levels=["phonemes"],
            force_segmentation=options.force_segmentation,
            detect_completeness=self.config.completeness_check
            and ("waqf" in options.validators or not options.validators),
        )
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

    async def _align(
        self,
        transcription: asr_pb2.Transcription,
        reference: common_pb2.Reference,
        options: gateway_pb2.AssessOptions,
        ledger: StageLedger,
        reserve: float,
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

        async def call() -> alignment_pb2.AlignResponse:
            return await self.stages.align(request, stage_timeout(reserve))

        # The aligner refuses only audio that cannot hold the passage (too few frames for its
        # phonemes): that is the caller's input, not an outage, so no partial answer hides it.
        reply = await ledger.run("alignment", call, timings=lambda r: r.timings, raises=(FailedPrecondition,))
        return reply.alignment if reply is not None else None

    async def _validate(
        self,
        reference: common_pb2.Reference,
        alignment: common_pb2.Alignment,
        transcription: asr_pb2.Transcription,
        energy: tuple[np.ndarray, float] | None,
        audio: DecodedAudio,
        options: gateway_pb2.AssessOptions,
        ledger: StageLedger,
        reserve: float,
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

        async def call() -> tajweed_pb2.ValidateResponse:
            return await self.stages.validate(request, stage_timeout(reserve))

        return await ledger.run("tajweed", call, timings=lambda r: r.timings)
