"""Live sessions behind both front ends (gRPC AssessLive, WebSocket /v1/live): the protocol
(config first, then audio, half-close ends), API keys, admission (admission.py) and draining.

A front end hands over an async iterator of AssessLiveRequest and the caller's authorization, and
relays the AssessLiveResponse events it gets back; any MeshError ends the stream with that status.
The requests are read without pause by the session's intake (intake.py), whatever the stages' pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from services.common import context as call_context
from services.common.errors import InvalidArgument, MeshError, Unavailable
from services.common.pb import gateway_pb2
from services.common.settings import ServerSettings
from services.gateway import metrics
from services.gateway.assess import Assessor
from services.gateway.auth import Guard
from services.gateway.live.admission import Admission, rejection_reason
from services.gateway.live.intake import Intake, next_request
from services.gateway.live.session import LiveSession
from services.gateway.live.settings import LiveSettings

log = logging.getLogger(__name__)

# After a drained session's final, how long its client is given to half-close (its audio read and
# dropped) before the call ends: it stops sending at the `draining` warning, one round trip.
LINGER_S = 10.0


class LiveService:
    def __init__(self, assessor: Assessor, guard: Guard, settings: LiveSettings, final_timeout_s: float) -> None:
        self.assessor = assessor
        self.guard = guard
        self.settings = settings
        self.final_timeout_s = final_timeout_s
        self.admission = Admission(assessor.calls.pace)
        self.admission.capacity(settings)
        self.sessions: set[LiveSession] = set()
        # One-time tokens for browsers (set by the WebSocket front end): token -> key name.
        self.tokens: Any = None
        # Set on SIGTERM: running sessions stop taking audio and send their final Assessment.
        self.draining = asyncio.Event()

    def connection_settings(self, server: ServerSettings) -> ServerSettings:
        """The gateway's server settings with room for live sessions: a connection closed for
        age keeps its calls for the longest session (plus its idle timeout and the final
        assessment), instead of cutting a recitation in the middle."""
        needed = self.settings.max_session_s + self.settings.idle_timeout_s + self.final_timeout_s
        if server.max_connection_age_grace_s >= needed:
            return server
        return dataclasses.replace(server, max_connection_age_grace_s=needed)

    async def drain(self) -> None:
        """Winds every session down: no new sessions, and each running one ends now with the
        final Assessment of the audio it has (the server's grace period covers that work)."""
        self.draining.set()

    @property
    def active(self) -> int:
        return self.admission.active

    @property
    def open(self) -> Counter[str]:
        return self.admission.open

    async def run(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], authorization: str | None
    ) -> AsyncGenerator[gateway_pb2.AssessLiveResponse, None]:
        try:
            async for event in self._run(requests, authorization):
                yield event
        except MeshError as exc:
            metrics.LIVE_SESSIONS_REJECTED.labels(rejection_reason(exc, self.draining.is_set())).inc()
            raise

    async def _identify(self, config: gateway_pb2.LiveConfig, authorization: str | None) -> str:
        # A browser's WebSocket cannot send headers: its key (or a token) comes in the config.
        redeemed = self.tokens.redeem(config.api_key) if config.api_key and self.tokens is not None else None
        if redeemed is not None:
            return str(redeemed)
        name = self.guard.identify(f"Bearer {config.api_key}" if config.api_key else authorization)
        await self.guard.rate.take(name)
        return name

    async def _run(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], authorization: str | None
    ) -> AsyncIterator[gateway_pb2.AssessLiveResponse]:
        if self.draining.is_set():
            raise Unavailable("the gateway is shutting down: open the live session again (another replica takes it)")
        settings = self.settings
        first = await next_request(requests, settings.idle_timeout_s)
        if first is None:
            raise InvalidArgument("the live session ended before its config: send AssessLiveRequest.config first")
        if first.WhichOneof("part") != "config":
            raise InvalidArgument("audio before config: the first AssessLiveRequest must carry config")
        name = await self._identify(first.config, authorization)
        with self.admission.admit(name, settings):
            session = LiveSession(self.assessor, settings, first.config)
            self.sessions.add(session)
            intake = Intake(requests, session, settings.idle_timeout_s, self.draining)
            worker: asyncio.Task[None] | None = None
            failure: list[BaseException] = []
            try:
                await session.start()
                intake.start()

                async def work() -> None:
                    try:
                        while (block := await intake.next_block()) is not None:
                            await session.take(*block)
                        if intake.error is not None:
                            raise intake.error
                        if self.draining.is_set():
                            await intake.stop()
                            session.warn_draining()
                        with call_context.deadline_at_most(self.final_timeout_s):
                            await session.finish()
                    except MeshError as exc:
                        failure.append(exc)
                    finally:
                        session.events.put_nowait(None)

                worker = asyncio.create_task(work(), name=f"live-session-{session.session_id}")
                while (event := await session.events.get()) is not None:
                    yield event
                await worker
                if failure:
                    raise failure[0]
                # Ended by the drain: the client may still be sending; its writes must not meet an
                # ended call (see intake.py), so its half-close is awaited, its audio dropped.
                await intake.linger(LINGER_S)
            finally:
                # The caller went away or the session failed: stop every stage call at once.
                if worker is not None and not worker.done():
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                await intake.close()
                await session.close()
                self.sessions.discard(session)
