"""Encoding a live segment while it is recited: the asr's TranscribeLive, one call per segment.

    segment opens  -> open(start_s): config, then the audio the recording holds from start_s
    audio arrives  -> feed(recording): what arrived since, as it arrives
    the pause      -> close(segment): `end` at the segment's last sample; the asr has only its
                      last window left to compute, and the answer is the segment's Transcription
    worker         -> result(segment): that Transcription (None: the follower calls Transcribe)
    Assess         -> encoded(recording, segment): the same call over a recorded segment, so a file
                      and a live session of it are followed on the same decode

A stream is only a head start: any failure (the asr without TranscribeLive, a deadline, a stream
refused for running ahead) leaves the segment to the unary Transcribe the follower makes anyway,
so a learner never loses a verdict to it. The answer is remembered for exactly the segment's
window (follow/follower.py's `remember`): a held-back word or a look-back decodes another window
and calls the asr as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from services.common.errors import MeshError
from services.common.pb import asr_pb2, common_pb2, gateway_pb2
from services.gateway.follow.follower import Decoded
from services.gateway.follow.recording import Recording
from services.gateway.live.segmenter import Segment
from services.gateway.stage_calls import StageCalls

log = logging.getLogger(__name__)

RATE = 16000


@dataclass
class _Stream:
    start_s: float
    sent_s: float
    requests: asyncio.Queue[asr_pb2.TranscribeLiveRequest | None] = field(default_factory=asyncio.Queue)
    answer: asyncio.Task[asr_pb2.Transcription | None] | None = None
    # perf_counter when `end` was sent and when the Transcription came: what the pause waited
    # for the asr.
    closed_at: float = 0.0
    answered_at: float = 0.0


class LiveEncoder:
    """The open segment's TranscribeLive call and the answers of the segments it closed."""

    def __init__(
        self, calls: StageCalls, session_id: str, options: gateway_pb2.AssessOptions, timeout_s: float
    ) -> None:
        self.stages = calls.stages
        self.session_id = session_id
        asr_options = calls.asr_options(options)
        # Segments are the live segmenter's already: TranscribeLive refuses force_segmentation.
        asr_options.ClearField("force_segmentation")
        self.config = asr_pb2.TranscribeLiveConfig(
            session_id=session_id,
            options=asr_options,
            pcm_format=common_pb2.RawPcm(sample_rate_hz=RATE, channels=1, encoding=common_pb2.PCM_ENCODING_F32LE),
        )
        self.timeout_s = timeout_s
        self._open: _Stream | None = None
        self._closed: dict[int, _Stream] = {}
        # Once the asr says it has no TranscribeLive (an older asr), no more streams are opened.
        self.unavailable = False

    def feed(self, recording: Recording, open_start_s: float | None) -> None:
        """Sends what the recording holds past what was sent; opens a stream for a segment that
        has started (the segmenter knows where it starts)."""
        if self.unavailable:
            return
        if self._open is None and open_start_s is not None:
            self._open = self._start(open_start_s)
        stream = self._open
        if stream is None:
            return
        self._send(stream, recording, recording.duration_s)

    def close(self, segment: Segment, recording: Recording) -> None:
        """The segment ended: its stream is told where, and the next segment opens its own."""
        stream, self._open = self._open, None
        if stream is None:
            return
        if abs(stream.start_s - segment.start_s) > 1e-6:
            # A start the segmenter moved (it should not): the answer would be another window.
            self._cancel(stream)
            return
        self._send(stream, recording, recording.duration_s)
        end = round((segment.end_s - segment.start_s) * RATE)
        stream.requests.put_nowait(
            asr_pb2.TranscribeLiveRequest(end=asr_pb2.TranscribeLiveEnd(segment_samples=min(end, self._sent(stream))))
        )
        stream.requests.put_nowait(None)
        stream.closed_at = time.perf_counter()
        self._closed[segment.index] = stream

    async def result(self, segment: Segment, wait_s: float) -> Decoded | None:
        """The segment's streamed Transcription, waited for at most wait_s; None without one."""
        stream = self._closed.pop(segment.index, None)
        if stream is None or stream.answer is None:
            return None
        try:
            transcription = await asyncio.wait_for(asyncio.shield(stream.answer), wait_s)
        except TimeoutError:
            self._cancel(stream)
            return None
        if transcription is None:
            return None
        return Decoded(transcription, max(0.0, stream.answered_at - stream.closed_at) * 1000)

    async def encoded(self, recording: Recording, segment: Segment) -> Decoded | None:
        """The segment of a whole recording encoded as a live session encodes it (Assess of a
        file), so that both follow the reciter on the same decode."""
        if self.unavailable:
            return None
        stream = self._start(segment.start_s)
        self._send(stream, recording, segment.end_s)
        self._open = stream
        self.close(segment, recording)
        return await self.result(segment, self.timeout_s)

    async def aclose(self) -> None:
        """Cancels every stream (the session ended or went away)."""
        streams = [s for s in [self._open, *self._closed.values()] if s is not None]
        self._open, self._closed = None, {}
        for stream in streams:
            self._cancel(stream)
        for stream in streams:
            if stream.answer is not None:
                with contextlib.suppress(asyncio.CancelledError, MeshError):
                    await stream.answer

    # -- the calls ------------------------------------------------------------------------

    def _start(self, start_s: float) -> _Stream:
        stream = _Stream(start_s=start_s, sent_s=start_s)
        stream.requests.put_nowait(asr_pb2.TranscribeLiveRequest(config=self.config))
        stream.answer = asyncio.create_task(self._call(stream), name=f"encode-{self.session_id}")
        return stream

    @staticmethod
    def _send(stream: _Stream, recording: Recording, until_s: float) -> None:
        """The recording from where the stream's audio stops to until_s, as one audio message."""
        if until_s > stream.sent_s:
            samples = recording.window(stream.sent_s, until_s).samples
            stream.requests.put_nowait(asr_pb2.TranscribeLiveRequest(audio=samples.astype("<f4").tobytes()))
            stream.sent_s = until_s

    @staticmethod
    def _sent(stream: _Stream) -> int:
        return round((stream.sent_s - stream.start_s) * RATE)

    async def _call(self, stream: _Stream) -> asr_pb2.Transcription | None:
        async def requests() -> AsyncIterator[asr_pb2.TranscribeLiveRequest]:
            while (request := await stream.requests.get()) is not None:
                yield request

        answer: asr_pb2.Transcription | None = None
        try:
            # Read to the stream's end (the asr closes it after the Transcription): a call ended
            # by the server, not cancelled by us.
            async for response in self.stages.transcribe_live(requests(), self.timeout_s):
                if response.WhichOneof("part") == "transcription":
                    stream.answered_at = time.perf_counter()
                    answer = response.transcription
            return answer
        except MeshError as exc:
            log.info("live encoding fell back to Transcribe", extra={"session": self.session_id, "error": exc.message})
        except (AttributeError, NotImplementedError):
            # An asr without TranscribeLive (an older one, a stand-in): Transcribe it is.
            self.unavailable = True
        return None

    @staticmethod
    def _cancel(stream: _Stream) -> None:
        if stream.answer is not None and not stream.answer.done():
            stream.answer.cancel()
