"""Live sessions behind both front ends (gRPC AssessLive, WebSocket /v1/live): the protocol
(config first, then audio, half-close ends), API keys, and the limits on sessions.

A front end hands over an async iterator of AssessLiveRequest and the caller's authorization, and
relays the AssessLiveResponse events it gets back; any MeshError ends the stream with that status.
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
from services.common.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidArgument,
    MeshError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.common.pb import gateway_pb2
from services.common.settings import ServerSettings
from services.gateway import metrics
from services.gateway.assess import Assessor
from services.gateway.auth import Guard
from services.gateway.live.session import LiveSession
from services.gateway.live.settings import LiveSettings

log = logging.getLogger(__name__)

# A live session holds its place for minutes: a caller refused for want of one is told to come
# back after this, an estimate (the service does not know when a learner will stop).
SESSION_RETRY_S = 5.0


class CapacityExhausted(ResourceExhausted):
    """The gateway's own session limit (the metric's `capacity`), not one key's."""


def reject_reason(exc: BaseException, draining: bool) -> str | None:
    """The muaalem_live_sessions_rejected_total reason of a session that ended with `exc`
    (None: the caller went away, which is no refusal)."""
    if isinstance(exc, Cancelled | asyncio.CancelledError | GeneratorExit):
        return None
    if isinstance(exc, CapacityExhausted):
        return "capacity"
    if isinstance(exc, ResourceExhausted):
        return "key_limit"
    if isinstance(exc, Unavailable):
        return "draining" if draining else "unavailable"
    if isinstance(exc, Unauthenticated | PermissionDenied):
        return "unauthenticated"
    if isinstance(exc, DeadlineExceeded):
        return "idle"
    if isinstance(exc, MeshError) and exc.http_status < 500:
        return "invalid"
    return "internal"


class LiveService:
    def __init__(self, assessor: Assessor, guard: Guard, settings: LiveSettings, final_timeout_s: float) -> None:
        self.assessor = assessor
        self.guard = guard
        self.settings = settings
        self.final_timeout_s = final_timeout_s
        self.open: Counter[str] = Counter()
        self.sessions: set[LiveSession] = set()
        # One-time tokens for browsers (set by the WebSocket front end): token -> key name.
        self.tokens: Any = None
        # Set on SIGTERM: running sessions stop reading audio and send their final Assessment.
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
        return sum(self.open.values())

    async def _next_or_drain(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], session: LiveSession
    ) -> gateway_pb2.AssessLiveRequest | None:
        """The next request, or None at the client's half-close or when the gateway drains."""
        if self.draining.is_set():
            return None
        following = asyncio.ensure_future(self._next(requests))
        drained = asyncio.ensure_future(self.draining.wait())
        try:
            await asyncio.wait({following, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
        if following.done():
            return following.result()
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, MeshError):
            await following
        session.warn_draining()
        return None

    async def _next(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest]
    ) -> gateway_pb2.AssessLiveRequest | None:
        try:
            return await asyncio.wait_for(anext(requests), self.settings.idle_timeout_s)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"the live session was idle: no message for {self.settings.idle_timeout_s:.0f} s"
            ) from exc

    @contextlib.asynccontextmanager
    async def _admitted(self, config: gateway_pb2.LiveConfig, authorization: str | None) -> AsyncIterator[str]:
        # A browser's WebSocket cannot send headers: its key (or a token) comes in the config.
        redeemed = self.tokens.redeem(config.api_key) if config.api_key and self.tokens is not None else None
        if redeemed is not None:
            name = redeemed
        else:
            name = self.guard.identify(f"Bearer {config.api_key}" if config.api_key else authorization)
        await self.guard.rate.take(name)
        if self.active >= self.settings.max_sessions:
            raise CapacityExhausted(
                f"this gateway serves at most {self.settings.max_sessions} live sessions at once",
                retry_after_s=SESSION_RETRY_S,
            )
        if self.open[name] >= self.settings.max_sessions_per_key:
            raise ResourceExhausted(
                f"this API key holds {self.open[name]} live sessions, the most allowed at once; close one first",
                retry_after_s=SESSION_RETRY_S,
            )
        self.open[name] += 1
        metrics.LIVE_SESSIONS_ACTIVE.inc()
        try:
            yield name
        finally:
            metrics.LIVE_SESSIONS_ACTIVE.dec()
            self.open[name] -= 1
            if self.open[name] <= 0:
                del self.open[name]

    async def run(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], authorization: str | None
    ) -> AsyncGenerator[gateway_pb2.AssessLiveResponse, None]:
        """The session's events; any refusal or failure is counted by its reason, then raised."""
        try:
            async for event in self._run(requests, authorization):
                yield event
        except BaseException as exc:
            reason = reject_reason(exc, self.draining.is_set())
            if reason is not None:
                metrics.LIVE_SESSIONS_REJECTED.labels(reason).inc()
            raise

    async def _run(
        self, requests: AsyncIterator[gateway_pb2.AssessLiveRequest], authorization: str | None
    ) -> AsyncIterator[gateway_pb2.AssessLiveResponse]:
        if self.draining.is_set():
            raise Unavailable("the gateway is shutting down: open the live session again (another replica takes it)")
        first = await self._next(requests)
        if first is None:
            raise InvalidArgument("the live session ended before its config: send AssessLiveRequest.config first")
        if first.WhichOneof("part") != "config":
            raise InvalidArgument("audio before config: the first AssessLiveRequest must carry config")
        async with self._admitted(first.config, authorization):
            session = LiveSession(self.assessor, self.settings, first.config)
            self.sessions.add(session)
            reader: asyncio.Task[None] | None = None
            failure: list[BaseException] = []
            try:
                await session.start()

                async def read() -> None:
                    try:
                        while True:
                            request = await self._next_or_drain(requests, session)
                            if request is None:
                                break
                            if request.WhichOneof("part") != "audio":
                                raise InvalidArgument("a second config: a live session takes exactly one")
                            await session.feed(request.audio)
                        with call_context.deadline_at_most(self.final_timeout_s):
                            await session.finish()
                    except MeshError as exc:
                        failure.append(exc)
                    finally:
                        session.events.put_nowait(None)

                reader = asyncio.create_task(read(), name=f"live-reader-{session.session_id}")
                while True:
                    event = await session.events.get()
                    if event is None:
                        break
                    yield event
                if failure:
                    raise failure[0]
            finally:
                # The caller went away or the session failed: stop every stage call at once.
                if reader is not None and not reader.done():
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
                await session.close()
                self.sessions.discard(session)
