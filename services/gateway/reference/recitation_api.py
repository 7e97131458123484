"""The reference-recitation RPCs behind an admin key: the key's name must be listed in
MUAALEM_ADMIN_KEY_NAMES. Transport-free (the servicer passes the authorization header)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from services.common.audio import decode_message, peak_dbfs
from services.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.common.pb import gateway_pb2
from services.gateway.assess import Assessor
from services.gateway.prosody_stage import ProsodyStage
from services.gateway.reference.recitation_store import Registered
from services.gateway.reference.recitations import RecitationService


class RecitationHost(Protocol):
    """What the RPCs need of the gateway (its GatewayApp); named here so that the app, which
    builds this API, is not imported back."""

    assessor: Assessor
    recitations: RecitationService | None
    prosody: ProsodyStage | None

# A teacher's recording of a whole surah can be long; the asr streams it in chunks anyway.
MAX_REFERENCE_AUDIO_S = 1200.0


def _proto(item: Registered) -> gateway_pb2.ReferenceRecitation:
    return gateway_pb2.ReferenceRecitation(
        surah=item.surah,
        ayah=item.ayah,
        reciter=item.reciter,
        is_default=item.is_default,
        audio_sha256=item.audio_sha256,
        duration_s=item.duration_s,
    )


class RecitationApi:
    def __init__(
        self, app: RecitationHost, admin_key_names: frozenset[str], identify: Callable[[str | None], str]
    ) -> None:
        self.app = app
        self.admins = admin_key_names
        self.identify = identify

    def _admin(self, authorization: str | None) -> None:
        name = self.identify(authorization)
        if name not in self.admins:
            raise PermissionDenied(f"key {name!r} may not manage reference recitations (MUAALEM_ADMIN_KEY_NAMES)")
        if self.app.recitations is None or self.app.prosody is None:
            raise FailedPrecondition("reference recitations are off here (no prosody stage configured)")

    async def add(
        self, request: gateway_pb2.AddReferenceRecitationRequest, authorization: str | None
    ) -> gateway_pb2.AddReferenceRecitationResponse:
        self._admin(authorization)
        assert self.app.recitations is not None
        if not request.HasField("audio"):
            raise InvalidArgument("audio is missing")
        if request.last_ayah and request.last_ayah < request.ayah:
            raise InvalidArgument(f"last_ayah {request.last_ayah} is before ayah {request.ayah}")
        audio = await asyncio.to_thread(
            decode_message, request.audio, max_duration_s=MAX_REFERENCE_AUDIO_S, min_duration_s=0.5
        )
        # As Assess: silence or noise is refused here, not sent through the mesh to fail there.
        level = await asyncio.to_thread(peak_dbfs, audio.samples)
        await self.app.assessor.refuse_inaudible(audio, level, what="the reference audio")
        added = await self.app.recitations.add(
            audio.samples,
            surah=request.surah,
            ayah=request.ayah,
            last_ayah=request.last_ayah or None,
            reciter=request.reciter,
            make_default=request.make_default,
            model_version=await self.app.assessor.versions.current(),
        )
        return gateway_pb2.AddReferenceRecitationResponse(added=[_proto(a) for a in added])

    async def list(
        self, request: gateway_pb2.ListReferenceRecitationsRequest, authorization: str | None
    ) -> gateway_pb2.ListReferenceRecitationsResponse:
        self._admin(authorization)
        assert self.app.recitations is not None
        items = await asyncio.to_thread(self.app.recitations.store.list)
        return gateway_pb2.ListReferenceRecitationsResponse(recitations=[_proto(i) for i in items])

    async def remove(
        self, request: gateway_pb2.RemoveReferenceRecitationRequest, authorization: str | None
    ) -> gateway_pb2.RemoveReferenceRecitationResponse:
        self._admin(authorization)
        assert self.app.recitations is not None
        await asyncio.to_thread(self.app.recitations.remove, request.surah, request.ayah, request.reciter)
        return gateway_pb2.RemoveReferenceRecitationResponse()
