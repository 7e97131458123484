"""A live session's requests, read as they come, whatever the pace of the stages.

A WebSocket carries its keepalive in the same byte stream as the audio. When the gateway stopped
reading while the stages caught up (its backpressure), a client sending at 10x real time had its
pong (and its own pings) wait behind unread audio, and a minute in the connection closed with
1011 "keepalive ping timeout", without a final Assessment. So the front end is read without
pause: each chunk is decoded at once (16 kHz mono float32: at most MUAALEM_LIVE_MAX_SESSION_S of
it per session, which the session keeps for its final assessment anyway) and queued here, and
the session takes it at the stages' pace (its MUAALEM_LIVE_MAX_BUFFERED_S now pauses only this
queue's consumer). gRPC gets the same path; its pings never waited on the stream's data.

When the gateway drains, the session ends with the audio it has taken, and what the client still
sends is read and dropped until it half-closes (`linger`): a gRPC client whose write meets a
call the server has already ended reports INTERNAL, even after it received the final event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np

from services.common.errors import InvalidArgument
from services.common.pb import gateway_pb2
from services.gateway.live.admission import IdleTimeout
from services.gateway.live.session import LiveSession

Block = tuple[np.ndarray, float]  # decoded samples and when their chunk arrived (perf_counter)


async def next_request(
    requests: AsyncIterator[gateway_pb2.AssessLiveRequest], idle_timeout_s: float
) -> gateway_pb2.AssessLiveRequest | None:
    """The client's next request; None at its half-close."""
    try:
        return await asyncio.wait_for(anext(requests), idle_timeout_s)
    except StopAsyncIteration:
        return None
    except TimeoutError as exc:
        raise IdleTimeout(f"the live session was idle: no message for {idle_timeout_s:.0f} s") from exc


class Intake:
    def __init__(
        self,
        requests: AsyncIterator[gateway_pb2.AssessLiveRequest],
        session: LiveSession,
        idle_timeout_s: float,
        draining: asyncio.Event,
    ) -> None:
        self._requests = requests
        self._session = session
        self._idle_timeout_s = idle_timeout_s
        self._draining = draining
        self._blocks: asyncio.Queue[Block | None] = asyncio.Queue()
        # Held across a decode, so that the decoder is never flushed (finish) while it decodes.
        self._decoding = asyncio.Lock()
        self._stopped = False
        self.error: BaseException | None = None
        self.ended = asyncio.Event()  # the client half-closed, failed, or went away
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._read(), name=f"live-intake-{self._session.session_id}")

    async def _read(self) -> None:
        try:
            while (request := await next_request(self._requests, self._idle_timeout_s)) is not None:
                if request.WhichOneof("part") != "audio":
                    raise InvalidArgument("a second config: a live session takes exactly one")
                async with self._decoding:
                    if self._stopped:
                        continue  # the session has ended: read and dropped
                    samples = await self._session.decode(request.audio)
                self._blocks.put_nowait((samples, time.perf_counter()))
        except Exception as exc:
            # After the session stopped taking audio, what the client does is no longer its error.
            if not self._stopped:
                self.error = exc
        finally:
            self._blocks.put_nowait(None)
            self.ended.set()

    async def next_block(self) -> Block | None:
        """The next decoded chunk; None at the client's half-close, its error, or the drain."""
        if self._draining.is_set():
            return None
        taking = asyncio.ensure_future(self._blocks.get())
        drained = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({taking, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
        if taking.done():
            return taking.result()
        taking.cancel()
        return None

    async def stop(self) -> None:
        """No more audio for the session: a decode in flight ends first; later chunks are dropped."""
        async with self._decoding:
            self._stopped = True

    async def linger(self, timeout_s: float) -> None:
        """Waits (at most `timeout_s`) for the client's half-close, dropping its audio meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout_s)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
