"""One assessment of an uploaded recording, as the design lays out its flow:

decode audio once -> [reference || segments at pauses || learner's prosody]
    -> follow each segment (asr, locate, judge: alignment, tajweed, fusion) -> compose

The recording is followed as a live session of the same audio would be (services/gateway/follow:
the same segmenter and settings, the same follower), so Assess of a file and AssessLive of the
same audio give the same Assessment. Every stage call carries what is left of the caller's
deadline (minus a small reserve for fusion); a stage that fails or is late leaves a partial
answer that names it.
"""

from __future__ import annotations

import asyncio
import math
import time

from services.alignment.thresholds import problems as threshold_problems
from services.alignment.vocabulary import default_vocabulary
from services.common import context, tracing
from services.common.audio import DecodedAudio, decode_message, peak_dbfs
from services.common.errors import InvalidArgument, MeshError, Unavailable
from services.common.pb import common_pb2, gateway_pb2
from services.gateway import metrics
from services.gateway.config import GatewayConfig
from services.gateway.follow import ledger as ledgers
from services.gateway.follow.compose import compose
from services.gateway.follow.follower import RecitationFollower
from services.gateway.follow.offline import follow_all, segments_of
from services.gateway.follow.preludes import prelude_items
from services.gateway.follow.recording import Recording
from services.gateway.live.encoding import LiveEncoder
from services.gateway.live.segmenter import NO_SPEECH, has_speech
from services.gateway.live.settings import LiveSettings
from services.gateway.locating import LocateService, Location
from services.gateway.reference import moshaf as moshaf_mod
from services.gateway.reference import targets
from services.gateway.reference.comparison import Comparer
from services.gateway.reference.service import ReferenceResult, ReferenceService
from services.gateway.stage_calls import ModelVersionTracker, StageCalls
from services.gateway.stage_run import StageLedger
from services.gateway.stages import Stages, stage_timeout
from services.gateway.verification import ContentVerifier
from services.tajweed.model import VALIDATORS


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
        self.calls = StageCalls(config, stages, references)
        self.max_audio_s = max_audio_s
        self.max_stream_audio_s = max_stream_audio_s
        # The voice-activity settings of the "no recitation detected" check (the live ones).
        self.speech_settings: LiveSettings | None = None
        # The passage search behind locate targets (None: locate targets are refused).
        self.locator: LocateService | None = None

    @property
    def versions(self) -> ModelVersionTracker:
        return self.calls.versions

    async def reference(self, target: common_pb2.Target, moshaf: common_pb2.MoshafAttributes | None) -> ReferenceResult:
        return await self.calls.reference(target, moshaf)

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
        if request.target.WhichOneof("kind") == "locate":
            return await self._assess_located(request, streamed, ledger, started)
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

    async def _assess_located(
        self, request: gateway_pb2.AssessRequest, streamed: bool, ledger: StageLedger, started: float
    ) -> gateway_pb2.Assessment:
        """A locate target: the whole file's decode is searched for its passage, then the span
        found is assessed as if it had been the target (the follower decodes again, segment by
        segment); the answer says what was located and how sure the search was."""
        if self.locator is None:
            raise InvalidArgument("target.locate: locating is off on this gateway")
        moshaf = request.moshaf if request.HasField("moshaf") else None
        moshaf_mod.to_dict(moshaf)
        check_options(request.options)
        if request.HasField("compare_to") and self.comparer is None:
            raise InvalidArgument("compare_to: comparisons are off here (no prosody stage configured)")
        limit = self.max_stream_audio_s if streamed else self.max_audio_s
        audio_started = time.perf_counter()
        audio, level = await asyncio.to_thread(_decode_and_measure, request.audio, limit)
        await self.refuse_inaudible(audio, level)
        ledger.record("audio", common_pb2.STAGE_STATUS_OK, (time.perf_counter() - audio_started) * 1000)
        location = await self._locate(audio, request, moshaf)
        located = gateway_pb2.AssessRequest()
        located.CopyFrom(request)
        located.target.CopyFrom(location.target)
        if located.HasField("compare_to") and self.comparer is not None:
            self.comparer.check(located.target, located.compare_to)
        tracing.set_attributes(
            target=targets.target_from_proto(location.target).key(),
            streamed=streamed,
            located_sure=location.decision.sure,
        )
        assessment = await self._assess_decoded(located, audio, ledger, started)
        assessment.located.CopyFrom(location.located)
        assessment.total_ms = (time.perf_counter() - started) * 1000
        return assessment

    async def _locate(
        self, audio: DecodedAudio, request: gateway_pb2.AssessRequest, moshaf: common_pb2.MoshafAttributes | None
    ) -> Location:
        assert self.locator is not None
        try:
            transcription = await self.calls.transcribe(
                audio, request.options, stage_timeout(self.config.fusion_reserve_s)
            )
        except MeshError as exc:
            # Without a decode there is nothing to search: no partial answer could say which
            # passage it assessed.
            raise Unavailable(f"locating needs the asr stage's decode: {exc.message}") from exc
        await self.calls.observe(transcription)
        return await self.locator.locate(transcription.decode.phonemes, moshaf)

    async def _assess_decoded(
        self,
        request: gateway_pb2.AssessRequest,
        audio: DecodedAudio,
        ledger: StageLedger,
        started: float,
    ) -> gateway_pb2.Assessment:
        reserve = self.config.fusion_reserve_s
        moshaf = request.moshaf if request.HasField("moshaf") else None

        async def reference_call() -> ReferenceResult:
            return await self.reference(request.target, moshaf)

        reference_task = asyncio.create_task(ledger.run("reference", reference_call))
        segments_task = asyncio.create_task(
            asyncio.to_thread(segments_of, audio.samples, self.speech_settings or LiveSettings())
        )
        # The learner's prosody needs only the audio: beside the following, adding no latency.
        prosody_ledger = StageLedger()
        prosody_task = None
        if self.comparer is not None and request.HasField("compare_to"):
            comparer = self.comparer
            prosody_task = asyncio.create_task(
                prosody_ledger.run(
                    "prosody", lambda: comparer.analyze(audio, stage_timeout(reserve)), timings=lambda r: r.timings
                )
            )
        reference_result, segments = await asyncio.gather(reference_task, segments_task)
        if reference_result is None:
            # Validation passed above, so the only way here is an internal failure: say it plainly.
            failed = next(r for r in ledger.reports if r.stage == "reference")
            raise InvalidArgument(f"no reference: {failed.message}")
        if not segments:
            raise InvalidArgument(NO_SPEECH)
        follower = RecitationFollower(
            self.calls,
            self.verifier,
            request,
            reference_result,
            await prelude_items(moshaf, reference_result.reference.words),
            Recording.of(audio.samples),
            lambda: stage_timeout(reserve),
        )
        settings = self.speech_settings or LiveSettings()
        encoder = None
        if settings.encode_while_recited:
            timeout_s = stage_timeout(reserve) or settings.stage_timeout_s
            encoder = LiveEncoder(self.calls, context.request_id() or "assess", request.options, timeout_s)
        await follow_all(follower, segments, encoder)
        composition = await compose(follower.followed(), self.verifier, self.versions.model, ledger.reports)
        assessment = composition.assessment
        if prosody_task is not None and self.comparer is not None:
            version = await self.versions.current()
            reference, alignment = composition.compared
            comparison = await self.comparer.run(
                prosody_task, request, reference, alignment, prosody_ledger, version, stage_timeout(reserve)
            )
            if comparison is not None:
                assessment.comparison.CopyFrom(comparison)
            reports = ledgers.merged([*assessment.stages, *prosody_ledger.reports])
            del assessment.stages[:]
            assessment.stages.extend(reports)
            del assessment.degraded[:]
            assessment.degraded.extend(ledgers.degraded(reports))
        assessment.request_id = context.request_id() or ""
        assessment.total_ms = (time.perf_counter() - started) * 1000
        metrics.record_assessment(list(assessment.degraded))
        tracing.set_attributes(
            cache_hit=reference_result.cache_hit,
            degraded=list(assessment.degraded),
            segments=len(segments),
            **{"muaalem.content_status": gateway_pb2.ContentStatus.Name(assessment.content.status)},
        )
        return assessment
