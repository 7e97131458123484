"""The gateway's parts wired together, shared by its gRPC and HTTP front ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version

from services.common import context as call_context
from services.common.pb import gateway_pb2
from services.common.settings import MAX_AUDIO_S, MAX_MESSAGE_MB, MAX_STREAM_AUDIO_S
from services.gateway.assess import Assessor
from services.gateway.auth import ConcurrencyLimiter, Guard, KeyStore, RateLimiter
from services.gateway.config import GatewayConfig
from services.gateway.likely import LikelyRecited
from services.gateway.live.service import LiveService
from services.gateway.live.settings import LiveSettings
from services.gateway.locate_settings import LocateConfig
from services.gateway.locating import LocateService
from services.gateway.prosody_stage import GrpcProsody, ProsodyStage
from services.gateway.reference.comparison import Comparer
from services.gateway.reference.recitation_api import RecitationApi
from services.gateway.reference.recitation_settings import RecitationConfig
from services.gateway.reference.recitation_store import RecitationStore
from services.gateway.reference.recitations import RecitationService
from services.gateway.reference.service import ReferenceService
from services.gateway.reference.settings import ContentSearchConfig
from services.gateway.registry import StageRegistry
from services.gateway.stages import GrpcStages, Stages
from services.gateway.upload import collect_stream
from services.gateway.verification import ContentVerifier, PassageFinder


@dataclass
class GatewayApp:
    config: GatewayConfig
    stages: Stages
    references: ReferenceService
    assessor: Assessor
    guard: Guard
    recitations: RecitationService | None = None
    prosody: ProsodyStage | None = None
    environ: Mapping[str, str] | None = None
    # Live sessions (AssessLive, /v1/live); set by build().
    live: LiveService | None = None

    @property
    def registry(self) -> StageRegistry:
        """Every stage this gateway calls (health, readiness, GetServerInfo read it)."""
        return StageRegistry(self.stages, self.prosody)

    @classmethod
    def build(
        cls,
        config: GatewayConfig,
        stages: Stages | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        prosody: ProsodyStage | None = None,
    ) -> GatewayApp:
        """The gateway's parts; the settings GatewayConfig does not hold are read from environ too."""
        if stages is None:
            stages = GrpcStages(
                asr_target=config.asr_target,
                alignment_target=config.alignment_target,
                tajweed_target=config.tajweed_target,
                tls=config.tls if config.tls.enabled else None,
                max_message_bytes=int(MAX_MESSAGE_MB.get(environ) * 1024 * 1024),
            )
        references = ReferenceService.from_env(environ)
        # The passage index sits beside the references, in the same store.
        locator = LocateService(references.store, LocateConfig.from_env(environ), fallback=references.fallback)
        finder = LikelyRecited(
            PassageFinder.from_config(ContentSearchConfig.from_env(environ)), locator.loaded_whole_quran
        )
        verifier = ContentVerifier(threshold=config.content_threshold, finder=finder)
        recitation_config = RecitationConfig.from_env(environ)
        if prosody is None and recitation_config.prosody_target:
            prosody = GrpcProsody(
                recitation_config.prosody_target,
                tls=config.tls if config.tls.enabled else None,
                max_message_bytes=int(MAX_MESSAGE_MB.get(environ) * 1024 * 1024),
            )
        recitations = RecitationService(RecitationStore(recitation_config.directory), references, stages, prosody)
        assessor = Assessor(
            config,
            stages,
            references,
            verifier,
            max_audio_s=MAX_AUDIO_S.get(environ),
            max_stream_audio_s=MAX_STREAM_AUDIO_S.get(environ),
            comparer=Comparer(recitations, prosody) if prosody is not None else None,
        )
        keys = KeyStore.load(config.api_keys_file, config.api_keys)
        guard = Guard(
            keys,
            RateLimiter(config.rate_limit_rps, config.rate_limit_burst, references.redis_client()),
            ConcurrencyLimiter(config.max_concurrent_per_key, config.concurrent_wait_s),
        )
        app = cls(
            config=config,
            stages=stages,
            references=references,
            assessor=assessor,
            guard=guard,
            recitations=recitations,
            prosody=prosody,
            environ=environ,
        )
        live_settings = LiveSettings.from_env(environ)
        assessor.speech_settings = live_settings
        assessor.locator = locator
        app.live = LiveService(assessor, guard, live_settings, final_timeout_s=config.assess_timeout_s)
        return app

    # The handlers below are what both front ends (gRPC and HTTP) call: API key and limits
    # first, then the deadline, then the transport-free work.

    async def assess(self, request: gateway_pb2.AssessRequest, authorization: str | None) -> gateway_pb2.AssessResponse:
        async with self.guard.admit(authorization):
            with call_context.deadline_at_most(self.config.assess_timeout_s):
                assessment = await self.assessor.assess(request)
        return gateway_pb2.AssessResponse(assessment=assessment)

    async def assess_stream(
        self, parts: AsyncIterator[gateway_pb2.AssessStreamRequest], authorization: str | None
    ) -> gateway_pb2.AssessStreamResponse:
        async with self.guard.admit(authorization):
            with call_context.deadline_at_most(self.config.assess_timeout_s):
                request = await collect_stream(
                    parts, max_bytes=self.config.max_stream_bytes, max_audio_s=self.assessor.max_stream_audio_s
                )
                assessment = await self.assessor.assess(request, streamed=True)
        return gateway_pb2.AssessStreamResponse(assessment=assessment)

    async def get_reference(
        self, request: gateway_pb2.GetReferenceRequest, authorization: str | None
    ) -> gateway_pb2.GetReferenceResponse:
        async with self.guard.admit(authorization, metered=False):
            result = await self.assessor.reference(
                request.target, request.moshaf if request.HasField("moshaf") else None
            )
        return gateway_pb2.GetReferenceResponse(
            reference=result.reference, cache_hit=result.cache_hit, cache_key=result.key
        )

    async def get_server_info(self, authorization: str | None) -> gateway_pb2.GetServerInfoResponse:
        async with self.guard.admit(authorization, metered=False):
            return await self.server_info()

    async def server_info(self) -> gateway_pb2.GetServerInfoResponse:
        states = await self.registry.states(timeout=1.0)
        reply = gateway_pb2.GetServerInfoResponse(
            version=version("muaalem-mesh"),
            cache_backend=self.references.backend_name,
            stages=[gateway_pb2.StageInfo(stage=s.name, address=s.address, health=s.health) for s in states],
        )
        if self.assessor.versions.model is not None:
            reply.model_version.CopyFrom(self.assessor.versions.model)
        return reply

    def warm_up(self) -> None:
        """Loads what the first assessment would otherwise pay for: the Quran text and the
        phonetizer (one reference build) and the phonetic-search index of the content check."""
        from services.gateway.reference import builder, moshaf, targets

        builder.build_reference(targets.ayah_target(1, 1), moshaf.default_values())
        self.assessor.verifier.finder.load()

    def recitation_api(self) -> RecitationApi:
        """The admin-only reference-recitation calls (key names from MUAALEM_ADMIN_KEY_NAMES)."""
        admins = RecitationConfig.from_env(self.environ).admin_key_names
        return RecitationApi(self, admins, self.guard.identify)

    async def close(self) -> None:
        await self.registry.close()
        await self.references.close()
